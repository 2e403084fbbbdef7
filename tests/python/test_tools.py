"""Tools from code, end to end through the official Python MCP SDK: Warden connects to real
upstream MCP servers (a recording server written with the Python SDK, over stdio and over
Streamable HTTP, and the official reference server `server-everything`), the code calls their
tools in TypeScript and Python loops, and every inner call passes Warden's policy. The recorder
writes each call it receives to a log, so the tests say exactly what reached the upstream."""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from mcp import Client, types

from test_stdio import ROOT, WARDEN, CACHE, call, server

RECORDER = str(ROOT / "tests" / "python" / "upstream_recorder.py")
NODE = str(ROOT / ".tools" / "node22" / "node_modules" / ".bin" / "node")
EVERYTHING = str(
    ROOT / ".tools" / "everything" / "node_modules" / "@modelcontextprotocol"
    / "server-everything" / "dist" / "index.js"
)
TOKEN_VALUE = "upstream-token-7f3a9c2e5b8d1046"


def recorder_log():
    return str(Path(tempfile.mkdtemp()) / "calls.jsonl")


def calls_in(log):
    if not os.path.exists(log):
        return []
    return [json.loads(line) for line in Path(log).read_text().splitlines()]


def stdio_upstream(log, extra=""):
    return f"""
[upstreams.rec]
command = "{sys.executable}"
args = ["{RECORDER}", "stdio", "{log}"]
{extra}
"""


def run(coro):
    return asyncio.run(coro)


TS_LOOP = """
const titles: string[] = input.titles;
const numbers: number[] = [];
for (const title of titles) {
  const issue: { number: number; title: string } = await tools.rec.create_issue({ title, body: `about ${title}` });
  numbers.push(issue.number);
}
numbers
"""

PY_LOOP = """
made = []
for title in input["titles"]:
    made.append(tools.rec.create_issue(title=title)["title"])
made
"""


def test_typescript_and_python_programs_loop_over_an_upstream_tool():
    log = recorder_log()

    async def body():
        async with Client(server(stdio_upstream(log)), mode="legacy") as c:
            tool = (await c.list_tools()).tools[0]
            assert "tools.rec.create_issue(args: { body?: string; title: string })" in tool.description
            _, s = await call(c, TS_LOOP, "typescript", input={"titles": ["a", "b", "c"]})
            assert s["status"] == "ok", s
            assert s["result"] == [1, 2, 3]
            _, s = await call(c, PY_LOOP, "python", input={"titles": ["d", "e"]})
            assert s["status"] == "ok", s
            assert s["result"] == ["d", "e"]

    run(body())
    assert [c["arguments"]["title"] for c in calls_in(log)] == ["a", "b", "c", "d", "e"]
    assert calls_in(log)[0]["arguments"]["body"] == "about a"


RATE_LIMIT = """
[[tools."rec.create_issue".limits]]
counter = "issues"
window = "minute"
max = 3
scope = "grant"
"""

PY_UNTIL_REFUSED = """
made = 0
try:
    for i in range(10):
        tools.rec.create_issue(title=f"t{i}")
        made += 1
except ToolDenied as e:
    refusal = [e.kind, e.rule, str(e)]
[made, refusal]
"""


def test_a_rate_limit_stops_the_loop_at_exactly_n_and_nothing_more_reaches_the_upstream():
    log = recorder_log()

    async def body():
        async with Client(server(stdio_upstream(log, RATE_LIMIT)), mode="legacy") as c:
            _, s = await call(c, PY_UNTIL_REFUSED, "python")
            assert s["status"] == "ok", s
            made, (kind, rule, message) = s["result"]
            assert made == 3
            assert (kind, rule) == ("rate_limited", "rate_limit.issues")
            assert "at most 3 calls per minute" in message
            # The limit holds across runs too.
            _, s = await call(c, "try { await tools.rec.create_issue({title: 'x'}) } catch (e) { [e.name, e.kind] }")
            assert s["result"] == ["ToolDenied", "rate_limited"], s

    run(body())
    assert len(calls_in(log)) == 3


DENY_RULE = """
[[tools."rec.create_issue".rules]]
name = "no-secret-titles"
message = "titles may not start with secret"
when = [{ path = "args.title", op = "regex", value = "^secret" }]
"""


def test_a_deny_rule_on_an_argument_value_refuses_that_call_only():
    log = recorder_log()
    code = """
const out = [];
for (const title of ['public', 'secret plan', 'also public']) {
  try { out.push((await tools.rec.create_issue({ title })).title); }
  catch (e) { out.push([e.name, e.kind, e.rule, e.message]); }
}
out
"""

    async def body():
        async with Client(server(stdio_upstream(log, DENY_RULE)), mode="legacy") as c:
            _, s = await call(c, code)
            assert s["result"] == [
                "public",
                ["ToolDenied", "denied", "no-secret-titles", "titles may not start with secret"],
                "also public",
            ], s

    run(body())
    assert [c["arguments"]["title"] for c in calls_in(log)] == ["public", "also public"]


def test_a_hidden_tool_is_neither_declared_nor_reachable():
    log = recorder_log()
    code = """
const out = { listed: tools.search('').map(t => t.name) };
try { tools.describe('rec.delete_repo'); } catch (e) { out.describe = e.kind; }
try { await tools.rec.delete_repo({ name: 'prod' }); } catch (e) { out.call = [e.kind, e.message]; }
try { await tools.rec.no_such_tool({}); } catch (e) { out.typo = [e.kind, e.message]; }
out
"""

    async def body():
        # `hide` is a top-level key: it goes before the tables.
        policy = 'hide = ["rec.delete_repo"]\n' + stdio_upstream(log)
        async with Client(server(policy), mode="legacy") as c:
            tool = (await c.list_tools()).tools[0]
            assert "tools.rec.delete_repo(" not in tool.description
            assert "tools.rec.add(" in tool.description
            _, s = await call(c, code)
            r = s["result"]
            assert "rec.delete_repo" not in r["listed"] and "rec.add" in r["listed"], r
            assert r["describe"] == "not_found"
            # A hidden tool and a typo get the same answer.
            assert r["call"] == ["not_found", "no tool named rec.delete_repo"]
            assert r["typo"] == ["not_found", "no tool named rec.no_such_tool"]

    run(body())
    assert calls_in(log) == []


def test_an_upstream_that_hangs_crashes_or_floods_cannot_take_the_run_or_the_server_down():
    log = recorder_log()
    limits = '\ncall_timeout_ms = 20000\nmax_result_bytes = 100000\n'

    async def body():
        async with Client(server(stdio_upstream(log, limits)), mode="legacy") as c:
            started = time.monotonic()
            _, s = await call(c, "await tools.rec.hang({ seconds: 30 })", timeout_ms=1500)
            assert s["status"] == "timeout", s
            assert time.monotonic() - started < 10
            _, s = await call(c, "try { await tools.rec.crash({}) } catch (e) { [e.kind, e.message] }")
            kind, message = s["result"]
            assert kind == "failed" and "rec" in message, s
            # The next run connects again.
            _, s = await call(c, "tools.rec.add(a=2, b=3)", "python")
            assert s["status"] == "ok" and s["result"] == {"result": 5}, s
            _, s = await call(c, "try:\n    tools.rec.huge(n=500000)\nexcept ToolError as e:\n    r = [e.kind, str(e)]\nr", "python")
            kind, message = s["result"]
            assert kind == "too_large" and "100000" in message, s

    run(body())
    assert [c["tool"] for c in calls_in(log)] == ["hang", "crash", "add", "huge"]


def test_the_call_budget_reentrancy_and_forged_names_are_refused():
    log = recorder_log()
    code = """
const out = {};
let made = 0;
try { for (;;) { await tools.rec.add({ a: 1, b: 1 }); made++; } } catch (e) { out.budget = [made, e.name, e.kind]; }
out
"""
    other = """
const out = {};
for (const [server, tool] of [['rec/../x', 'add'], ['__proto__', 'add'], ['rec', '__proto__'], ['rec', 'constructor'], ['REC', 'add']]) {
  try { await tools[server][tool]({ a: 1, b: 1 }); out[server + ':' + tool] = 'called'; }
  catch (e) { out[server + ':' + tool] = e.kind; }
}
out.reentrant = (await tools.rec.ask_back({})).result;
try { await tools.rec.add([1, 2]); } catch (e) { out.array = e.name; }
out
"""

    async def body():
        async with Client(server(stdio_upstream(log, "\n[limits]\nmax_tool_calls = 5\n")), mode="legacy") as c:
            _, s = await call(c, code)
            assert s["result"]["budget"] == [5, "ToolDenied", "budget"], s
            _, s = await call(c, other)
            r = s["result"]
            for key in ["rec/../x:add", "__proto__:add", "rec:__proto__", "rec:constructor", "REC:add"]:
                assert r[key] == "not_found", (key, r)
            # The upstream cannot call back into the run: Warden offers it nothing to call.
            assert r["reentrant"].startswith("the client cannot be asked"), r
            assert r["array"] == "TypeError"

    run(body())
    tools_called = [c["tool"] for c in calls_in(log)]
    assert tools_called == ["add"] * 5 + ["ask_back"]


def start_http_recorder(log):
    proc = subprocess.Popen(
        [sys.executable, RECORDER, "http", log], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), line
    return proc, line.removeprefix("listening on ")


def test_an_http_upstream_gets_the_credential_the_code_never_sees():
    log = recorder_log()
    proc, url = start_http_recorder(log)
    try:
        port = url.split(":")[2].split("/")[0]
        policy = f"""
[credentials.up]
env = "UP_TOKEN"
hosts = ["http://127.0.0.1:{port}"]
inject = {{ header = "Authorization", value = "Bearer {{secret}}" }}

[upstreams.rec]
url = "{url}"
credentials = ["up"]
"""
        code = """
const seen = (await tools.rec.whoami({})).result;
const smuggled = await tools.rec.create_issue({ title: '__WARDEN_SECRET_up__' });
[seen, smuggled.title]
"""
        params = server(policy)
        params.env = {**params.env, "UP_TOKEN": TOKEN_VALUE}

        async def body():
            async with Client(params, mode="legacy") as c:
                _, s = await call(c, code)
                assert s["status"] == "ok", s
                seen, title = s["result"]
                # The upstream got the token; what came back to the code is redacted.
                assert seen == "Bearer __WARDEN_SECRET_up__", s
                assert TOKEN_VALUE not in json.dumps(s)
                assert title == "__WARDEN_SECRET_up__"

        run(body())
    finally:
        proc.terminate()
        proc.wait()
    # A placeholder in a tool's arguments is not a credential: the upstream got it verbatim.
    assert calls_in(log)[1]["arguments"]["title"] == "__WARDEN_SECRET_up__"
    assert TOKEN_VALUE not in Path(log).read_text()


def test_the_reference_server_everything_over_stdio():
    policy = f"""
[upstreams.everything]
command = "{NODE}"
args = ["{EVERYTHING}", "stdio"]
"""
    code = """
const names = tools.search('').map(t => t.name);
const echo = await tools.everything.echo({ message: 'hi' });
const sum = await tools.everything['get-sum']({ a: 2, b: 40 });
const env = await tools.everything['get-env']({});
({ names, echo, sum, env })
"""
    params = server(policy)
    params.env = {**params.env, "WARDEN_ONLY_SECRET": TOKEN_VALUE}

    async def body():
        async with Client(params, mode="legacy") as c:
            _, s = await call(c, code, timeout_ms=20000)
            assert s["status"] == "ok", s
            r = s["result"]
            assert "everything.echo" in r["names"] and "everything.get-sum" in r["names"]
            assert r["echo"] == "Echo: hi"
            assert "42" in json.dumps(r["sum"])
            # The upstream runs with its own environment: nothing of Warden's.
            assert TOKEN_VALUE not in json.dumps(r["env"]) and "WARDEN_LOG" not in json.dumps(r["env"])
            _, s = await call(c, "tools.everything.get_sum(a=1, b=2)", "python", timeout_ms=20000)
            assert "3" in json.dumps(s["result"]), s

    run(body())


def test_an_intercept_policy_written_for_the_upstream_applies_unchanged():
    log = recorder_log()
    github_policy = ROOT / "tests" / "fixtures" / "intercept" / "github.yaml"
    code = """
out = {"made": 0}
try:
    for i in range(8):
        tools.rec.create_issue(title=f"issue {i}")
        out["made"] += 1
except ToolDenied as e:
    out["limit"] = [e.kind, e.rule, str(e)]
try:
    tools.rec.delete_repository(name="prod")
except ToolError as e:
    out["delete"] = [type(e).__name__, e.kind, str(e)]
try:
    tools.rec.transfer_repository(name="prod", owner="someone")
except ToolError as e:
    out["transfer"] = [e.kind, str(e)]
out["listed"] = [t["name"] for t in tools.search("repository")]
out
"""

    async def body():
        policy = stdio_upstream(log, f'policy = "{github_policy}"')
        async with Client(server(policy), mode="legacy") as c:
            _, s = await call(c, code, "python")
            r = s["result"]
            assert r["made"] == 5, r
            kind, _, message = r["limit"]
            assert kind == "rate_limited" and message == "Hourly limit of 5 new issues reached", r
            assert r["delete"] == [
                "ToolDenied", "denied", "Repository deletion is not permitted via AI agents"
            ], r
            assert r["transfer"] == ["not_found", "no tool named rec.transfer_repository"], r
            assert "rec.transfer_repository" not in r["listed"], r

    run(body())
    assert [c["tool"] for c in calls_in(log)] == ["create_issue"] * 5


APPROVAL = """
[[tools."rec.create_issue".rules]]
name = "ask-before-asking"
message = "titles starting with ask need a person"
effect = "require_approval"
when = [{ path = "args.title", op = "regex", value = "^ask" }]
"""


def test_an_approval_accepted_and_one_declined_mid_loop_pause_the_run_not_its_clock():
    log = recorder_log()
    questions = []

    async def on_elicitation(context, params):
        questions.append(params.message)
        # Longer than the run's whole wall-clock budget: the wait is not the code's time.
        await asyncio.sleep(2.0)
        if "ask-yes" in params.message:
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action="decline")

    code = """
const out = [];
for (const title of ['plain', 'ask-yes', 'ask-no', 'after']) {
  try { out.push((await tools.rec.create_issue({ title })).title); }
  catch (e) { out.push([e.name, e.kind, e.rule]); }
}
out
"""

    async def body():
        async with Client(
            server(stdio_upstream(log, APPROVAL)), mode="legacy", elicitation_callback=on_elicitation
        ) as c:
            await call(c, "await tools.rec.add({ a: 1, b: 1 })")  # connect before the clock runs
            _, s = await call(c, code, timeout_ms=1500)
            assert s["status"] == "ok", s
            assert s["result"] == [
                "plain", "ask-yes", ["ToolDenied", "approval_declined", "ask-before-asking"], "after"
            ], s

    run(body())
    assert [c["arguments"]["title"] for c in calls_in(log) if c["tool"] == "create_issue"] == [
        "plain", "ask-yes", "after"
    ]
    assert len(questions) == 2
    # The question says which rule, which tool, which arguments and which run.
    assert "ask-before-asking" in questions[0] and "rec.create_issue" in questions[0]
    assert '"title": "ask-yes"' in questions[0] and "run r-" in questions[0]


def test_a_grant_reaches_only_the_tools_it_is_given():
    from test_http import OTHER, TOKEN, client, http_server
    import hashlib

    log = recorder_log()
    policy = f"""
[grants.py]
token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"
tools = ["rec.add"]

[grants.narrow]
token_sha256 = "{hashlib.sha256(OTHER.encode()).hexdigest()}"
""" + stdio_upstream(log)
    code = """
const out = { listed: tools.search('').map(t => t.name) };
try { await tools.rec.create_issue({ title: 'x' }); out.issue = 'called'; } catch (e) { out.issue = e.kind; }
out.sum = (await tools.rec.add({ a: 1, b: 2 })).result;
out
"""

    async def body():
        with http_server(policy) as url:
            async with client(url, TOKEN, "legacy") as c:
                tool = (await c.list_tools()).tools[0]
                assert "tools.rec.add(" in tool.description
                assert "create_issue" not in tool.description
                _, s = await call(c, code)
                assert s["result"] == {"listed": ["rec.add"], "issue": "not_found", "sum": 3}, s
            async with client(url, OTHER, "legacy") as c:
                _, s = await call(c, code)
                assert s["result"]["issue"] == "called" and "rec.create_issue" in s["result"]["listed"], s

    run(body())
    assert [c["tool"] for c in calls_in(log)] == ["add", "create_issue", "add"]


def test_a_tool_added_upstream_is_callable_once_the_upstream_says_the_list_changed():
    log = recorder_log()

    async def body():
        async with Client(server(stdio_upstream(log)), mode="legacy") as c:
            _, s = await call(c, "try { await tools.rec.extra({ word: 'a' }) } catch (e) { e.kind }")
            assert s["result"] == "not_found", s
            _, s = await call(c, "await tools.rec.enable_extra({})")
            assert s["status"] == "ok", s
            # The notification arrives on its own; the next lookup lists the tools again.
            for _ in range(50):
                _, s = await call(c, "try { await tools.rec.extra({ word: 'hi' }) } catch (e) { e.kind }")
                if s["result"] != "not_found":
                    break
                await asyncio.sleep(0.1)
            assert s["result"] == {"result": "HI"}, s
            tool = (await c.list_tools()).tools[0]
            assert "tools.rec.extra(" in tool.description

    run(body())
    assert [c["tool"] for c in calls_in(log)] == ["enable_extra", "extra"]
