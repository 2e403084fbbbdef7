"""An upstream MCP server for the tools-from-code tests, written with the official Python MCP
SDK: it records every tool call it receives (one JSON line per call in LOG) so a test can say
exactly what reached it. usage: upstream_recorder.py stdio LOG | upstream_recorder.py http LOG
(http prints "listening on <url>" once it accepts connections)."""

import asyncio
import json
import os
import socket
import sys

from pydantic import BaseModel

from mcp.server.mcpserver import Context, MCPServer

LOG = sys.argv[2]
server = MCPServer("recorder")


def record(tool, **arguments):
    with open(LOG, "a") as f:
        f.write(json.dumps({"tool": tool, "arguments": arguments}) + "\n")


class Issue(BaseModel):
    number: int
    title: str


@server.tool(description="Creates an issue in the tracker and returns its number.")
def create_issue(title: str, body: str = "") -> Issue:
    record("create_issue", title=title, body=body)
    with open(LOG) as f:
        number = sum(1 for line in f if '"create_issue"' in line)
    return Issue(number=number, title=title)


@server.tool(description="Adds two numbers.")
def add(a: int, b: int) -> int:
    record("add", a=a, b=b)
    return a + b


@server.tool(description="Deletes a repository. Dangerous.")
def delete_repo(name: str) -> str:
    record("delete_repo", name=name)
    return f"deleted {name}"


@server.tool(description="Deletes a repository (the name GitHub's server uses).")
def delete_repository(name: str) -> str:
    record("delete_repository", name=name)
    return f"deleted {name}"


@server.tool(description="Transfers a repository to another owner.")
def transfer_repository(name: str, owner: str) -> str:
    record("transfer_repository", name=name, owner=owner)
    return f"transferred {name} to {owner}"


@server.tool(description="Always fails with the given message.")
def fail(message: str) -> str:
    record("fail", message=message)
    raise ValueError(message)


@server.tool(description="Sleeps for the given seconds, then answers.")
async def hang(seconds: float) -> str:
    record("hang", seconds=seconds)
    await asyncio.sleep(seconds)
    return "woke up"


@server.tool(description="Exits the server process at once.")
def crash() -> str:
    record("crash")
    os._exit(3)


@server.tool(description="Returns a string of n bytes.")
def huge(n: int) -> str:
    record("huge", n=n)
    return "x" * n


@server.tool(description="Returns the Authorization header this server received.")
def whoami(ctx: Context) -> str:
    record("whoami")
    headers = ctx.headers or {}
    return headers.get("authorization", "(none)")


@server.tool(description="Asks the client a question back (elicitation) before answering.")
async def ask_back(ctx: Context) -> str:
    record("ask_back")
    try:
        answer = await ctx.elicit("May I?", schema=None)
        return f"the client answered: {answer}"
    except Exception as e:  # the client offers no elicitation
        return f"the client cannot be asked: {type(e).__name__}"


def extra(word: str) -> str:
    record("extra", word=word)
    return word.upper()


@server.tool(description="Adds a tool named `extra` and tells the client its tool list changed.")
async def enable_extra(ctx: Context) -> str:
    record("enable_extra")
    server.add_tool(extra, name="extra", description="Upper-cases a word (added at run time).")
    await ctx.session.send_tool_list_changed()
    return "enabled"


def main():
    if sys.argv[1] == "stdio":
        server.run()
        return
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
    uv = uvicorn.Server(config)

    async def serve():
        task = asyncio.create_task(uv.serve(sockets=[sock]))
        while not uv.started:
            await asyncio.sleep(0.01)
        print(f"listening on http://127.0.0.1:{port}/mcp", flush=True)
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
