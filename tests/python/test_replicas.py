"""Replicas behind a load balancer, as the official Python MCP SDK sees them (issue 17): a
2026-07-28 approval asked by one replica is answered on another (a shared keyring, rotated
while the question is open), used once across both (its nonce is claimed in the shared Redis),
and refused by a replica that does not hold the keys."""

import asyncio
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client

from test_http import http_server

POLICY = """
[[tools.execute_code.rules]]
name = "python-needs-approval"
message = "Python runs need a person's approval"
effect = "require_approval"
when = [{ arg = "language", op = "eq", value = "python" }]
"""

OLD_KEY = "k2026-11 3f0c9d51e2a847b6c0d19e8f7a6b5c4d"
NEW_KEY = "k2026-12 9a8b7c6d5e4f30211f2e3d4c5b6a7980"
YES = {"approval": types.ElicitResult(action="accept", content={"approve": True})}


@contextmanager
def redis_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
                    c.sendall(b"PING\r\n")
                    if c.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert time.time() < deadline, "redis-server did not answer"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


async def never_called(context, params):
    raise AssertionError("2026-07-28 asks with an InputRequiredResult, answered by hand here")


def client(url):
    """A 2026-07-28 client that can be asked (elicitation declared)."""
    http = httpx2.AsyncClient()
    return Client(streamable_http_client(url, http_client=http), mode="auto",
                  elicitation_callback=never_called)


async def ask(url):
    async with client(url) as c:
        first = await c.session.call_tool(
            "execute_code", {"language": "python", "code": "6 * 7"}, allow_input_required=True
        )
        assert isinstance(first, types.InputRequiredResult), first
        return first.request_state


async def answer(url, state):
    async with client(url) as c:
        return await c.session.call_tool(
            "execute_code", {"language": "python", "code": "6 * 7"},
            input_responses=YES, request_state=state, allow_input_required=True,
        )


def test_an_approval_asked_on_one_replica_is_answered_on_another_once():
    keys = Path(tempfile.mkdtemp()) / "state.keys"
    keys.write_text(OLD_KEY + "\n")
    with redis_server() as dsn:
        shared = ["--state-dsn", dsn, "--state-prefix", "py-replicas:", "--state-key-file", str(keys)]
        with http_server(POLICY, shared) as a, http_server(POLICY, shared) as b, \
                http_server(POLICY, ["--state-dsn", dsn, "--state-prefix", "py-replicas:"]) as stranger:

            async def body():
                state = await ask(a)
                # Rotation while the question is open: the new key seals, the old still opens.
                time.sleep(0.05)
                keys.write_text(f"# rotated\n{NEW_KEY}\n{OLD_KEY}\n")
                done = await answer(b, state)
                assert done.structured_content["status"] == "ok", done
                assert done.structured_content["result"] == 42

                # The same answer again, on either replica: used once across both.
                for url in (a, b):
                    replay = await answer(url, state)
                    assert replay.structured_content["status"] == "denied", replay
                    assert "already used" in replay.structured_content["policy"]["reason"]

                # A question sealed by the new key is answered on the other replica too.
                state = await ask(b)
                done = await answer(a, state)
                assert done.structured_content["result"] == 42, done

                # A replica with its own random key cannot open the shared keyring's states.
                state = await ask(a)
                async with client(stranger) as c:
                    with pytest.raises(Exception, match="requestState"):
                        await c.session.call_tool(
                            "execute_code", {"language": "python", "code": "6 * 7"},
                            input_responses=YES, request_state=state, allow_input_required=True,
                        )

            asyncio.run(body())


def test_a_malformed_keyring_stops_the_server_at_start():
    keys = Path(tempfile.mkdtemp()) / "state.keys"
    keys.write_text("k1 too-short\n")
    from test_stdio import CACHE, WARDEN, server_env

    out = subprocess.run(
        [WARDEN, "serve", "--cache-dir", CACHE, "--state-key-file", str(keys)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, env=server_env(), timeout=60,
    )
    assert out.returncode == 2, out
    assert "approval keyring" in out.stderr and "at least 32" in out.stderr, out.stderr
