#!/usr/bin/env python3
"""Tools from code, as users run it: `warden serve` over stdio with the built-in policy plus
one upstream (the recording server of the tests, Python MCP SDK over stdio), audit on (to
stderr, discarded), driven by raw JSON-RPC.

One `execute_code` call makes N calls to the upstream's `add` tool in a loop (JavaScript and
Python); its time per inner call is compared with the peer: the Python MCP SDK's own client
calling the same tool N times on the same kind of server, in the same run. The ratio is
Warden per call / SDK client per call (each inner call in Warden also passes the policy and
is audited).

Usage: bench/tools.py [--calls N] [--rounds R]   (WARDEN_BIN names the binary)
"""
import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARDEN = os.environ.get("WARDEN_BIN") or str(ROOT / "target" / "release" / "warden")
RECORDER = str(ROOT / "tests" / "python" / "upstream_recorder.py")
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def policy(log):
    # The built-in policy, with the budget raised for the loop.
    default = (ROOT / "policies" / "default.toml").read_text()
    default = default.replace("[limits]\n", "[limits]\nmax_tool_calls = 100000\n", 1)
    return default + f"""
[upstreams.rec]
command = "{PYTHON}"
args = ["{RECORDER}", "stdio", "{log}"]
"""


def rpc(proc, ident, method, params):
    proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": params}) + "\n")
    proc.stdin.flush()
    while True:
        message = json.loads(proc.stdout.readline())
        if message.get("id") == ident:
            return message


def warden_per_call(n, rounds):
    log = Path(tempfile.mkdtemp()) / "calls.jsonl"
    path = Path(tempfile.mkdtemp()) / "policy.toml"
    path.write_text(policy(log))
    proc = subprocess.Popen(
        [WARDEN, "serve", "--policy", str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, env={**os.environ, "WARDEN_LOG": "error"}, text=True, bufsize=1,
    )
    rpc(proc, 0, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}})
    proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}) + "\n")
    code = {
        "javascript": f"for (let i = 0; i < {n}; i++) await tools.rec.add({{ a: i, b: 1 }});",
        "python": f"for i in range({n}):\n    tools.rec.add(a=i, b=1)",
    }
    times = {lang: [] for lang in code}
    ident = 1
    for lang in code:  # warm up: connect, list, first call
        rpc(proc, ident, "tools/call", {"name": "execute_code", "arguments": {"language": lang, "code": code[lang].replace(str(n), "1", 1), "timeout_ms": 30000}})
        ident += 1
    for _ in range(rounds):
        for lang in code:
            started = time.perf_counter()
            answer = rpc(proc, ident, "tools/call", {"name": "execute_code", "arguments": {"language": lang, "code": code[lang], "timeout_ms": 30000}})
            times[lang].append((time.perf_counter() - started) / n)
            assert answer["result"]["structuredContent"]["status"] == "ok", answer
            ident += 1
    proc.terminate()
    return {lang: statistics.median(t) for lang, t in times.items()}


async def sdk_per_call(n, rounds):
    from mcp import Client, StdioServerParameters

    log = Path(tempfile.mkdtemp()) / "calls.jsonl"
    params = StdioServerParameters(command=PYTHON, args=[RECORDER, "stdio", str(log)])
    times = []
    async with Client(params, mode="legacy") as c:
        await c.call_tool("add", {"a": 0, "b": 1})
        for _ in range(rounds):
            started = time.perf_counter()
            for i in range(n):
                await c.call_tool("add", {"a": i, "b": 1})
            times.append((time.perf_counter() - started) / n)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sdk = asyncio.run(sdk_per_call(args.calls, args.rounds))
    warden = warden_per_call(args.calls, args.rounds)
    print(f"calls per run: {args.calls}, rounds: {args.rounds} (median of rounds)")
    print(f"| client | per inner call | ratio to the SDK client |\n|---|---:|---:|")
    print(f"| Python MCP SDK client (peer) | {sdk * 1e3:.3f} ms | 1.00 |")
    for lang, t in warden.items():
        print(f"| Warden, {lang} loop | {t * 1e3:.3f} ms | {t / sdk:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
