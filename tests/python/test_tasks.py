"""Long runs as MCP tasks (the tasks extension), through the official Python MCP SDK with the
extension declared (tasks_client.py): a two-minute Python run polled to completion with its
progress, cancellation that stops the guest, tasks bound to their grant, the per-grant cap with
a retry hint, the kept-result budget keeping the server's memory bounded, approval before and
during a task, sessions, and what a restart does."""

import asyncio
import hashlib
import subprocess
import time
import urllib.request

import httpx2
import pytest
from mcp import Client, MCPError, types
from mcp.client.streamable_http import streamable_http_client

import tasks_client as tc
from test_http import OTHER, TOKEN, client, http_server
from test_stdio import call, server
from test_tools import APPROVAL, calls_in, recorder_log, stdio_upstream

GRANTS = f"""
[grants.py]
token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"

[grants.other]
token_sha256 = "{hashlib.sha256(OTHER.encode()).hexdigest()}"
"""


def with_tasks(url, token):
    """An SDK client over HTTP, as `token`'s grant, declaring the tasks extension."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(url, http_client=http), mode="auto", extensions=[tc.Tasks()])


def run(coro):
    return asyncio.run(coro)


def metric(url, name):
    """A metric's value from the server's /metrics (summed over its labels)."""
    text = urllib.request.urlopen(url.removesuffix("/mcp") + "/metrics", timeout=10).read().decode()
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    ]
    return sum(values)


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# Two minutes of data work: rows generated, parsed and aggregated, with a line of progress
# every ten seconds (printed with flush=True, which is what a task's status message shows).
TWO_MINUTES = r"""
import time, json, statistics
start = time.time()
totals, rows, next_report = {}, 0, 10
while time.time() - start < 120:
    for i in range(2000):
        record = json.loads(json.dumps({"city": ("Oslo", "Lima", "Kyiv")[i % 3], "sales": i % 17}))
        totals[record["city"]] = totals.get(record["city"], 0) + record["sales"]
        rows += 1
    if time.time() - start >= next_report:
        print(f"processed {rows} rows after {next_report} s", flush=True)
        next_report += 10
{"rows": rows, "cities": sorted(totals), "mean": statistics.mean(totals.values()) > 0}
"""


def test_a_two_minute_python_run_as_a_task_is_polled_to_completion_with_progress():
    async def body():
        with http_server(GRANTS) as url:
            async with with_tasks(url, TOKEN) as c:
                handle = await tc.start(c, {"language": "python", "code": TWO_MINUTES})
                assert isinstance(handle, tc.TaskHandle), handle
                assert handle.status == "working" and handle.ttl_ms == 900_000
                # Calls of a client without the extension are answered within their request
                # while the task runs (tasks leave a sandbox free for them).
                async with client(url, TOKEN, "auto") as quick:
                    plain = await quick.session.call_tool(
                        "execute_code", {"language": "javascript", "code": "1+1"}
                    )
                seen = []
                task = await tc.wait(c, handle.task_id, timeout=400, seen=seen)
                assert task.status == "completed", task
                s = task.result["structuredContent"]
                assert s["status"] == "ok", s
                assert s["result"]["rows"] > 0 and s["result"]["cities"] == ["Kyiv", "Lima", "Oslo"]
                assert s["usage"]["wall_ms"] >= 120_000, s["usage"]
                # Progress: what the run printed, as it printed it.
                reported = [m for m in seen if "processed" in m]
                assert len(reported) >= 5, seen
                assert all(m.startswith("running for ") for m in reported), reported
                assert "processed" in s["stdout"]
                return plain

    plain = run(body())
    # The quick call was answered as a call, not queued behind the task.
    assert isinstance(plain, types.CallToolResult)
    assert plain.structured_content["status"] == "ok" and plain.structured_content["result"] == 2


def test_a_cancelled_task_stops_its_guest_at_once():
    async def body():
        with http_server(GRANTS) as url:
            async with with_tasks(url, TOKEN) as c:
                handle = await tc.start(c, {"language": "javascript", "code": "while (true) {}"})
                await tc.wait(c, handle.task_id, until=("working",))
                for _ in range(100):  # until the guest really runs
                    if metric(url, "warden_runs_active") >= 1:
                        break
                    await asyncio.sleep(0.05)
                assert metric(url, "warden_runs_active") == 1
                asked = time.monotonic()
                ack = await tc.cancel(c, handle.task_id)
                assert ack.result_type == "complete"
                task = await tc.wait(c, handle.task_id, timeout=30)
                ended_after = time.monotonic() - asked
                assert task.status == "cancelled", task
                assert task.result is None and task.error is None
                # The guest stopped, not just the status: no run is active any more.
                assert metric(url, "warden_runs_active") == 0
                # Cancelling again is a no-op; the task stays readable.
                await tc.cancel(c, handle.task_id)
                assert (await tc.get(c, handle.task_id)).status == "cancelled"
                print(f"cancel to terminal status: {ended_after * 1000:.0f} ms")
                assert ended_after < 10

    run(body())


def test_a_task_of_another_grant_is_unknown_to_it():
    async def body():
        with http_server(GRANTS) as url:
            async with with_tasks(url, TOKEN) as mine, with_tasks(url, OTHER) as theirs:
                handle = await tc.start(mine, {"language": "javascript", "code": "while (true) {}"})
                answers = []
                for task_id in (handle.task_id, "task-" + "0" * 32):
                    for op in (
                        tc.get(theirs, task_id),
                        tc.cancel(theirs, task_id),
                        tc.update(theirs, task_id, {"approval-1": {"action": "accept"}}),
                    ):
                        with pytest.raises(MCPError) as e:
                            await op
                        answers.append((e.value.error.code, e.value.error.message.replace(task_id, "ID")))
                # Another grant's task and a task that never existed get the same answers.
                assert answers[:3] == answers[3:], answers
                assert all(code == -32602 for code, _ in answers)
                # The owner's task ran on, untouched.
                assert (await tc.get(mine, handle.task_id)).status == "working"
                await tc.cancel(mine, handle.task_id)
                assert (await tc.wait(mine, handle.task_id)).status == "cancelled"

    run(body())


CAPPED = GRANTS + """
[tasks]
max_per_grant = 2
max_tasks = 3
poll_interval_ms = 300
"""


def test_more_tasks_than_allowed_are_refused_with_a_retry_hint():
    async def body():
        with http_server(CAPPED) as url:
            async with with_tasks(url, TOKEN) as c, with_tasks(url, OTHER) as other:
                spin = {"language": "javascript", "code": "while (true) {}"}
                running = [await tc.start(c, spin) for _ in range(2)]
                assert all(isinstance(h, tc.TaskHandle) for h in running)
                refused = await tc.start(c, spin)
                assert isinstance(refused, types.CallToolResult), refused
                s = refused.structured_content
                assert refused.is_error and s["status"] == "rate_limited", s
                assert s["policy"]["rule"] == "tasks.max_per_grant", s
                assert s["policy"]["retry_after_ms"] == 300, s
                # The cap is the grant's: another grant still gets a task, then the total is full.
                third = await tc.start(other, spin)
                assert isinstance(third, tc.TaskHandle)
                full = await tc.start(other, spin)
                assert full.structured_content["policy"]["rule"] == "tasks.max_tasks"
                # When one ends, there is room again.
                await tc.cancel(c, running[0].task_id)
                await tc.wait(c, running[0].task_id)
                again = await tc.start(c, spin)
                assert isinstance(again, tc.TaskHandle)
                for h, owner in ((running[1], c), (again, c), (third, other)):
                    await tc.cancel(owner, h.task_id)

    run(body())


COUNTED = GRANTS + """
[tasks]
max_per_grant = 1
poll_interval_ms = 50

[[tools.execute_code.limits]]
counter = "runs"
window = "hour"
max = 3
scope = "grant"
"""


def test_a_task_counts_once_against_rate_limits_and_a_refused_one_not_at_all():
    async def body():
        with http_server(COUNTED) as url:
            async with with_tasks(url, TOKEN) as c:
                spin = {"language": "javascript", "code": "while (true) {}"}
                first = await tc.start(c, spin)  # counted: 1
                assert isinstance(first, tc.TaskHandle)
                refused = await tc.start(c, spin)  # no room: given back
                assert refused.structured_content["policy"]["rule"] == "tasks.max_per_grant"
                for _ in range(20):  # polling is free
                    await tc.get(c, first.task_id)
                await tc.cancel(c, first.task_id)
                await tc.wait(c, first.task_id)
                for _ in range(2):  # counted: 2, 3
                    h = await tc.start(c, {"language": "javascript", "code": "1"})
                    assert (await tc.wait(c, h.task_id)).status == "completed"
                limited = await tc.start(c, {"language": "javascript", "code": "1"})
                assert isinstance(limited, types.CallToolResult), limited
                s = limited.structured_content
                assert s["status"] == "rate_limited" and not s["policy"]["rule"].startswith("tasks."), s

    run(body())


BUDGET = GRANTS + """
[tasks]
keep_results_s = 3
max_kept_bytes = 2000000
poll_interval_ms = 20
"""

# About 200 KB of output per task: without the budget, 120 tasks would keep 24 MB.
CHATTY = "console.log('x'.repeat(200000)); 1"


def test_many_finished_tasks_keep_the_servers_memory_bounded():
    async def body(url, pid):
        async with with_tasks(url, TOKEN) as c:
            async def finish_one():
                handle = await tc.start(c, {"language": "javascript", "code": CHATTY})
                if isinstance(handle, types.CallToolResult):
                    return handle.structured_content
                task = await tc.wait(c, handle.task_id)
                assert task.status == "completed" and len(task.result["structuredContent"]["stdout"]) == 200_001
                return None

            for _ in range(5):  # warm up the sandboxes
                await finish_one()
            await asyncio.sleep(3.5)
            before = rss_kib(pid)
            refusals = []
            for _ in range(120):
                refused = await finish_one()
                if refused is not None:
                    refusals.append(refused)
                    assert refused["policy"]["rule"] == "tasks.max_kept_bytes", refused
                    assert 0 < refused["policy"]["retry_after_ms"] <= 3000, refused
                    await asyncio.sleep(refused["policy"]["retry_after_ms"] / 1000)
            after = rss_kib(pid)
            return before, after, refusals

    with http_server(BUDGET) as url:
        pid = int(subprocess.check_output(["pgrep", "-n", "-f", "warden serve --http"]).strip())
        before, after, refusals = run(body(url, pid))
    print(f"RSS {before} KiB -> {after} KiB, {len(refusals)} refusals")
    # The budget (2 MB) is what finished tasks may keep: the rest was refused and retried.
    assert refusals, "the budget was never reached"
    assert after - before < 16 * 1024, (before, after)


def test_a_task_asks_for_approval_first_and_for_the_codes_calls_while_it_runs():
    log = recorder_log()
    policy = stdio_upstream(log, APPROVAL) + """
[[tools.execute_code.rules]]
name = "python-needs-approval"
message = "Python runs need a person's approval"
effect = "require_approval"
when = [{ arg = "language", op = "eq", value = "python" }]
"""
    asked = []

    async def on_elicitation(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    code = """
out = []
for title in ['plain', 'ask-yes']:
    out.append(tools.rec.create_issue(title=title)['title'])
out
"""

    async def body():
        async with Client(
            server(policy), mode="auto", elicitation_callback=on_elicitation, extensions=[tc.Tasks()]
        ) as c:
            # The call's approval comes first (an input-required round), then the task; the
            # SDK's claim turns the task back into the result. Mid-run, the code's call to
            # an upstream tool that needs approval turns the task input_required.
            handle = None
            first = await c.session.call_tool(
                "execute_code", {"language": "python", "code": code},
                allow_input_required=True, allow_claimed=True,
            )
            assert isinstance(first, types.InputRequiredResult), first
            yes = {"approval": types.ElicitResult(action="accept", content={"approve": True})}
            handle = await c.session.call_tool(
                "execute_code", {"language": "python", "code": code},
                input_responses={k: v.model_dump(by_alias=True) for k, v in yes.items()},
                request_state=first.request_state, allow_claimed=True,
            )
            assert isinstance(handle, tc.TaskHandle), handle
            waiting = await tc.wait(c, handle.task_id, until=("input_required",) + tc.TERMINAL)
            assert waiting.status == "input_required", waiting
            [(key, request)] = waiting.input_requests.items()
            assert request["method"] == "elicitation/create"
            assert "ask-before-asking" in request["params"]["message"]
            await tc.update(c, handle.task_id, {key: {"action": "accept", "content": {"approve": True}}})
            task = await tc.wait(c, handle.task_id)
            assert task.status == "completed", task
            assert task.result["structuredContent"]["result"] == ["plain", "ask-yes"], task.result

    run(body())
    assert [c["arguments"]["title"] for c in calls_in(log) if c["tool"] == "create_issue"] == [
        "plain", "ask-yes"
    ]


def test_a_tasks_files_come_back_with_its_result():
    async def body():
        with http_server(GRANTS) as url:
            async with with_tasks(url, TOKEN) as c:
                code = (
                    "import csv\nrows = [(i, i * i) for i in range(5)]\n"
                    "with open('squares.csv', 'w', newline='') as f:\n"
                    "    csv.writer(f).writerows(rows)\nlen(rows)"
                )
                handle = await tc.start(c, {"language": "python", "code": code})
                task = await tc.wait(c, handle.task_id)
                assert task.status == "completed", task
                result = types.CallToolResult.model_validate(task.result)
                [meta] = result.structured_content["files"]
                assert meta["path"] == "/workspace/squares.csv" and meta["media_type"] == "text/csv", meta
                [embedded] = [b for b in result.content if b.type == "resource"]
                assert embedded.resource.text.splitlines()[-1] == "4,16"
                # Read again later: the same result, as long as it is kept.
                again = await tc.get(c, handle.task_id)
                assert again.result == task.result

    run(body())


SESSIONS = """
[sessions]
max_sessions = 2
max_per_grant = 2
"""


def test_a_task_continues_a_session():
    async def body():
        async with Client(server(SESSIONS), mode="auto", extensions=[tc.Tasks()]) as c:
            opened = await tc.start(
                c, {"language": "python", "code": "rows = [1, 2, 3]\nlen(rows)", "session": "new"}
            )
            assert isinstance(opened, tc.TaskHandle), opened
            first = (await tc.wait(c, opened.task_id)).result["structuredContent"]
            assert first["status"] == "ok" and first["result"] == 3, first
            sid = first["session"]["id"]
            again = await tc.start(c, {"language": "python", "code": "sum(rows)", "session": sid})
            assert isinstance(again, tc.TaskHandle), again
            second = (await tc.wait(c, again.task_id)).result["structuredContent"]
            assert second["result"] == 6 and second["session"]["call"] == 2, second
            # The SDK's claim resolves a task to its result (a client's transparent path).
            _, s = await call(c, "rows.append(4)\nsum(rows)", language="python", session=sid)
            assert s["result"] == 10, s

    run(body())


TURNS = GRANTS + """
[limits]
max_concurrent_runs = 2
"""


def test_tasks_leave_a_sandbox_for_calls():
    async def body():
        with http_server(TURNS) as url:
            async with with_tasks(url, TOKEN) as c, client(url, TOKEN, "auto") as plain:
                spin = {"language": "javascript", "code": "while (true) {}"}
                tasks = [await tc.start(c, spin) for _ in range(2)]
                await asyncio.sleep(1)
                # Two sandboxes: tasks take one, the second task waits for its turn.
                assert metric(url, "warden_runs_active") == 1
                r = await plain.session.call_tool("execute_code", {"language": "javascript", "code": "2*3"})
                assert r.structured_content["result"] == 6, r
                await tc.cancel(c, tasks[0].task_id)
                await tc.wait(c, tasks[0].task_id)
                await asyncio.sleep(0.5)
                # The first task's run is over (it says cancelled): the one running is the second.
                assert (await tc.get(c, tasks[1].task_id)).status == "working"
                assert metric(url, "warden_runs_active") == 1, "the waiting task got its turn"
                await tc.cancel(c, tasks[1].task_id)

    run(body())


def test_tasks_do_not_survive_a_restart_and_can_be_turned_off():
    async def body():
        with http_server(GRANTS) as url:
            async with with_tasks(url, TOKEN) as c:
                handle = await tc.start(c, {"language": "javascript", "code": "while (true) {}"})
        with http_server(GRANTS) as url:
            async with with_tasks(url, TOKEN) as c:
                with pytest.raises(MCPError) as e:
                    await tc.get(c, handle.task_id)
                assert e.value.error.code == -32602
        with http_server(GRANTS + "\n[tasks]\nenabled = false\n") as url:
            async with with_tasks(url, TOKEN) as c:
                # The extension is not offered: the call is answered within its request.
                r = await tc.start(c, {"language": "javascript", "code": "2+2"})
                assert isinstance(r, types.CallToolResult) and r.structured_content["result"] == 4
                assert "tasks extension" not in (await c.list_tools()).tools[0].description

    run(body())
