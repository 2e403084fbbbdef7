"""The real `warden serve` binary over stdio, driven by the official Python MCP SDK (mcp 2.x).

Each test runs under both connection modes of the SDK: "legacy" (the 2025-11-25 initialize
handshake) and "auto" (server/discover, the 2026-07-28 protocol, when the server offers it).
"""

import asyncio
import json
import os
import tempfile
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[2]
WARDEN = os.environ.get("WARDEN_BIN") or str(ROOT / "target" / "release" / "warden")
CACHE = os.environ.get("WARDEN_TEST_CACHE_DIR") or str(ROOT / "target" / "warden-test-cache")

MODES = ["legacy", "auto"]


def server_env() -> dict:
    """The environment of one server: its own state directory (rate-limit counters), so that
    no two servers of the suite, nor two runs of it, share counts."""
    return {"WARDEN_LOG": "warn", "WARDEN_STATE_DIR": tempfile.mkdtemp(prefix="warden-state-")}


def server(
    policy: str | None = None, pid_file: str | None = None, suffix: str = ".toml"
) -> StdioServerParameters:
    """`warden serve` over stdio; `policy` is written to a file named by `suffix` (its dialect)."""
    args = ["serve", "--cache-dir", CACHE]
    if policy is not None:
        path = Path(tempfile.mkdtemp()) / f"policy{suffix}"
        path.write_text(policy)
        args += ["--policy", str(path)]
    if pid_file is None:
        return StdioServerParameters(command=WARDEN, args=args, env=server_env())
    # `exec` keeps the PID, so the file names the server process itself.
    script = 'echo $$ > "$0"; exec "$@"'
    return StdioServerParameters(
        command="sh", args=["-c", script, pid_file, WARDEN, *args], env=server_env()
    )


async def call(client, code, language="javascript", **extra):
    result = await client.call_tool("execute_code", {"language": language, "code": code, **extra})
    return result, result.structured_content


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("mode", MODES)
def test_tool_is_listed_with_schemas(mode):
    async def body():
        async with Client(server(), mode=mode) as c:
            tools = (await c.list_tools()).tools
            assert [t.name for t in tools] == ["execute_code"]
            tool = tools[0]
            assert tool.input_schema["required"] == ["language", "code"]
            assert tool.output_schema["properties"]["status"]["enum"][0] == "ok"
            assert "javascript, typescript" in tool.description

    run(body())


DATA_MUNGING = r"""
const csv = `name,dept,salary
Ada,eng,120
Grace,eng,130
Linus,ops,90
Barbara,ops,95`;
const rows = csv.split('\n').slice(1).map(l => { const [name, dept, salary] = l.split(','); return {name, dept, salary: Number(salary)}; });
const byDept = rows.reduce((m, r) => m.set(r.dept, [...(m.get(r.dept) || []), r]), new Map());
const stats = {};
for (const [dept, people] of byDept) {
  const total = people.reduce((s, p) => s + p.salary, 0);
  stats[dept] = { count: people.length, avg: total / people.length, top: people.sort((a, b) => b.salary - a.salary)[0].name };
}
const slug = s => s.toLowerCase().replace(/[^a-z0-9]+/g, '-');
console.log('departments:', Object.keys(stats).join(','));
const later = await new Promise(resolve => setTimeout(() => resolve(slug('Hello, World!')), 10));
({ stats, later })
"""


@pytest.mark.parametrize("mode", MODES)
def test_realistic_programs(mode):
    async def body():
        async with Client(server(), mode=mode) as c:
            r, s = await call(c, DATA_MUNGING)
            assert s["status"] == "ok", s
            assert r.is_error is False
            assert s["stdout"] == "departments: eng,ops\n"
            assert s["result"] == {
                "stats": {
                    "eng": {"count": 2, "avg": 125, "top": "Grace"},
                    "ops": {"count": 2, "avg": 92.5, "top": "Barbara"},
                },
                "later": "hello-world-",
            }
            assert r.content[0].text.startswith("departments: eng,ops\nresult: ")

            ts = """
            interface Shape { kind: 'circle' | 'square'; size: number }
            enum Unit { Cm = 'cm', In = 'in' }
            function area<T extends Shape>(s: T): number {
                return s.kind === 'circle' ? Math.round(Math.PI * s.size ** 2) : s.size ** 2;
            }
            const shapes: Shape[] = [{ kind: 'circle', size: 2 }, { kind: 'square', size: 3 }];
            shapes.map(s => `${area(s)} ${Unit.Cm}`)
            """
            r, s = await call(c, ts, language="typescript")
            assert s["status"] == "ok", s
            assert s["result"] == ["13 cm", "9 cm"]

            r, s = await call(c, "input.a + input.b", input={"a": 2, "b": 3})
            assert s["result"] == 5

    run(body())


@pytest.mark.parametrize("mode", MODES)
def test_failures_are_clean_and_the_next_run_works(mode):
    cases = [
        ("throw new Error('boom')", {"error"}),
        ("function (", {"error"}),
        ("while(true){}", {"timeout", "out_of_fuel"}),
        ("const a = []; while (true) a.push(new Array(1e5).fill(7));", {"out_of_memory"}),
        ("const f = () => f(); f()", {"error"}),
        ("console.log('z'.repeat(10 * 1024 * 1024))", {"ok"}),
    ]

    async def body():
        async with Client(server(), mode=mode) as c:
            for code, expected in cases:
                r, s = await call(c, code)
                assert s["status"] in expected, (code, s)
                assert r.is_error is (s["status"] != "ok"), code
                if code.startswith("throw"):
                    assert s["error"]["type"] == "Error"
                    assert s["error"]["message"] == "boom"
                    assert "main.js" in s["error"]["traceback"]
                if code.startswith("function ("):
                    assert s["error"]["type"] == "SyntaxError"
                if code.startswith("const f"):
                    assert "stack" in s["error"]["message"]
                if code.startswith("console.log"):
                    assert s["truncated"] == {"stdout": True, "stderr": False}
                    assert len(s["stdout"]) == 1024 * 1024
                _, nxt = await call(c, "[1,2,3].reduce((a, b) => a + b)")
                assert nxt["result"] == 6, f"after {code}: {nxt}"

    run(body())


@pytest.mark.parametrize("mode", MODES)
def test_typescript_syntax_error_has_position(mode):
    async def body():
        async with Client(server(), mode=mode) as c:
            _, s = await call(c, "const a: number = 1;\nconst b: = 2;", language="typescript")
            assert s["status"] == "error"
            assert s["error"]["type"] == "SyntaxError"
            assert "main.ts:2:" in s["error"]["message"]

    run(body())


@pytest.mark.parametrize("mode", MODES)
def test_no_files_environment_or_sockets(mode):
    # `require` exists, for the workspace's fs only (test_sessions.py); no host runtime does.
    probes = """
    const found = [];
    for (const name of ['process', 'Deno', 'Bun', 'XMLHttpRequest', 'WebSocket', 'std', 'os'])
      if (typeof globalThis[name] !== 'undefined') found.push(name);
    let imported = 'no';
    try { await import('fs'); imported = 'yes'; } catch (e) { imported = e.name; }
    let fetched = 'no';
    try { await fetch('http://169.254.169.254/latest/meta-data/'); fetched = 'yes'; } catch (e) { fetched = e.message; }
    ({ found, imported, fetched })
    """

    async def body():
        async with Client(server(), mode=mode) as c:
            _, s = await call(c, probes)
            assert s["status"] == "ok", s
            assert s["result"]["found"] == []
            assert s["result"]["imported"] != "yes"
            assert "not on the allowlist" in s["result"]["fetched"], s

    run(body())


@pytest.mark.parametrize("mode", MODES)
def test_malformed_arguments_are_tool_results(mode):
    async def body():
        async with Client(server(), mode=mode) as c:
            for args, needle in [
                ({"code": "1"}, "`language` is required"),
                ({"language": "javascript"}, "`code` is required"),
                ({"language": "perl", "code": "1"}, "unknown language"),
                ({"language": "javascript", "code": "1", "timeout_ms": -3}, "positive"),
                ({"language": "javascript", "code": "x" * (300 * 1024)}, "at most"),
            ]:
                r = await c.call_tool("execute_code", args)
                s = r.structured_content
                assert r.is_error is True
                assert s["status"] == "invalid_arguments", s
                assert needle in s["error"]["message"], s
            _, s = await call(c, "'fine'")
            assert s["result"] == "fine"

    run(body())


@pytest.mark.parametrize("mode", MODES)
def test_progress_is_reported_on_long_runs(mode):
    async def body():
        seen = []

        async def on_progress(progress, total, message):
            seen.append((progress, total, message))

        async with Client(server("[limits]\nfuel = 1000000000000\n"), mode=mode) as c:
            r = await c.call_tool(
                "execute_code",
                {"language": "javascript", "code": "while(true){}", "timeout_ms": 2500},
                progress_callback=on_progress,
            )
            assert r.structured_content["status"] == "timeout"
            assert len(seen) >= 2, seen
            assert all(total == 2500 for _, total, _ in seen)

    run(body())


def test_cancelled_call_stops_its_run():
    policy = "[limits]\nfuel = 1000000000000\nmax_timeout_ms = 30000\nmax_concurrent_runs = 1\n"

    async def body():
        async with Client(server(policy), mode="legacy") as c:
            with anyio.move_on_after(0.5) as scope:
                await c.call_tool("execute_code", {"language": "javascript", "code": "for(;;){}", "timeout_ms": 30000})
            assert scope.cancelled_caught
            with anyio.fail_after(10):  # far less than the cancelled run's 30 s
                _, s = await call(c, "'after cancel'")
            assert s["result"] == "after cancel"

    run(body())


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# Stated bounds (README): 1,000 JavaScript runs, or 500 Python runs, grow RSS by less than 64 MiB.
@pytest.mark.parametrize(
    "language,runs,program",
    [
        ("javascript", 1000, "JSON.stringify({{i: {i}, xs: [1,2,3]}}).length"),
        ("python", 500, "[x * {i} for x in range(50)][-1]"),
    ],
)
def test_sequential_runs_keep_rss_bounded(language, runs, program):
    pid_file = Path(tempfile.mkdtemp()) / "pid"

    async def body():
        async with Client(server(pid_file=str(pid_file)), mode="legacy") as c:
            for _ in range(20):
                await call(c, "1", language=language)
            pid = int(pid_file.read_text())
            baseline = rss_kib(pid)
            for i in range(runs):
                _, s = await call(c, program.format(i=i), language=language)
                assert s["status"] == "ok", s
            after = rss_kib(pid)
            assert after < baseline + 64 * 1024, (baseline, after)

    run(body())


if __name__ == "__main__":
    print(json.dumps({"warden": WARDEN, "cache": CACHE}))


PYTHON_AGENT = """
from dataclasses import dataclass, field
import re, itertools
from datetime import datetime

@dataclass(order=True)
class Commit:
    when: datetime
    author: str
    message: str = field(compare=False)

log = '''2026-11-20T10:00 ada fix: parser crash
2026-11-21T09:30 bob feat: add cache
2026-11-21T12:15 ada feat: stream output'''
commits = sorted(Commit(datetime.fromisoformat(w), a, m) for w, a, m in (l.split(' ', 2) for l in log.splitlines()))
kinds = {k: [c.author for c in g] for k, g in itertools.groupby(sorted(commits, key=lambda c: c.message), key=lambda c: re.match(r'(\\w+):', c.message).group(1))}
print(f"{len(commits)} commits, latest by {commits[-1].author}")
{"kinds": kinds, "first": commits[0].when.strftime('%d %b')}
"""


@pytest.mark.parametrize("mode", MODES)
def test_python_programs(mode):
    async def body():
        async with Client(server(), mode=mode) as c:
            r, s = await call(c, PYTHON_AGENT, language="python")
            assert s["status"] == "ok", s
            assert s["stdout"] == "3 commits, latest by ada\n"
            assert s["result"] == {"kinds": {"feat": ["bob", "ada"], "fix": ["ada"]}, "first": "20 Nov"}
            for code, status, etype in [
                ("raise KeyError('k')", "error", "KeyError"),
                ("while True:\n    pass", None, None),
                ("import os\nos._exit(3)", "error", "Exit"),
                ("raise SystemExit(2)", "error", "SystemExit"),
                ("open('/etc/passwd').read()", "error", "FileNotFoundError"),
            ]:
                r, s = await call(c, code, language="python")
                if status is None:
                    assert s["status"] in ("timeout", "out_of_fuel"), s
                else:
                    assert (s["status"], s["error"]["type"]) == (status, etype), s
                assert r.is_error is True
                _, nxt = await call(c, "sum(range(10))", language="python")
                assert nxt["result"] == 45, f"after {code}: {nxt}"

    run(body())
