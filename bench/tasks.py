#!/usr/bin/env python3
"""What running a call as an MCP task costs, measured on `warden serve --http` with the default
policy and audit on (as users run it), through the official Python SDK over the stateless
2026-07-28 protocol. The peer is the same call answered within its request on the same server
in the same run, so every figure is also a ratio.

- a JavaScript `1+1` and a Python `print(1+1)`: call round trip vs task (tools/call, then
  tasks/get polled every 5 ms until completed), p50 of --calls;
- cancellation: a spinning task, `tasks/cancel` acknowledged, then the time until the guest is
  gone (`warden_runs_active` back to 0 on /metrics) and until `tasks/get` says `cancelled`;
- memory: the server's RSS after --kept finished tasks of 100 KB output each, kept (the default
  `keep_results_s`), against its RSS before them.

Usage: bench/tasks.py [--calls N] [--kept N]   (WARDEN_BIN names the binary)
"""

import argparse
import asyncio
import hashlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
import tasks_client as tc  # noqa: E402

WARDEN = os.environ.get("WARDEN_BIN") or str(ROOT / "target" / "release" / "warden")
TOKEN = "bench-token-1f2e3d4c5b6a7988"
# The default policy plus one token grant (HTTP needs one to name the caller); the audit log
# stays on (stderr, the default).
POLICY = f"""
[grants.bench]
token_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"
"""


def server():
    path = Path(tempfile.mkdtemp()) / "policy.toml"
    path.write_text(POLICY)
    proc = subprocess.Popen(
        [WARDEN, "serve", "--http", "127.0.0.1:0", "--policy", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "WARDEN_STATE_DSN": "memory:"},
    )
    line = proc.stdout.readline().strip()
    assert line.startswith("listening on "), line
    return proc, line.removeprefix("listening on ")


def connect(url, tasks):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"})
    extensions = [tc.Tasks()] if tasks else []
    return Client(streamable_http_client(url, http_client=http), mode="auto", extensions=extensions)


def metric(url, name):
    text = urllib.request.urlopen(url.removesuffix("/mcp") + "/metrics", timeout=10).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def until_done(c, task_id, every=0.005):
    while True:
        task = await tc.get(c, task_id)
        if task.status in tc.TERMINAL:
            return task
        await asyncio.sleep(every)


async def measure(url, pid, calls, kept):
    rows = {}
    async with connect(url, False) as plain, connect(url, True) as tasks:
        for language, code in (("javascript", "1+1"), ("python", "print(1+1)")):
            args = {"language": language, "code": code}
            as_call, as_task = [], []
            for i in range(calls + 5):
                t = time.perf_counter()
                r = await plain.session.call_tool("execute_code", args)
                a = time.perf_counter() - t
                assert r.structured_content["status"] == "ok", r
                t = time.perf_counter()
                handle = await tc.start(tasks, args)
                done = await until_done(tasks, handle.task_id)
                b = time.perf_counter() - t
                assert done.status == "completed", done
                if i >= 5:
                    as_call.append(a * 1000)
                    as_task.append(b * 1000)
            rows[language] = (statistics.median(as_call), statistics.median(as_task))

        stops, settles = [], []
        for _ in range(10):
            handle = await tc.start(tasks, {"language": "javascript", "code": "while (true) {}"})
            while metric(url, "warden_runs_active") < 1:
                await asyncio.sleep(0.005)
            t = time.perf_counter()
            await tc.cancel(tasks, handle.task_id)
            while metric(url, "warden_runs_active") > 0:
                await asyncio.sleep(0.001)
            stops.append((time.perf_counter() - t) * 1000)
            await until_done(tasks, handle.task_id, every=0.001)
            settles.append((time.perf_counter() - t) * 1000)

        before = rss_mib(pid)
        chatty = {"language": "javascript", "code": "console.log('x'.repeat(100000)); 1"}
        for _ in range(kept):
            handle = await tc.start(tasks, chatty)
            if isinstance(handle, tc.TaskHandle):
                await until_done(tasks, handle.task_id)
        after = rss_mib(pid)
    return rows, stops, settles, before, after


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--kept", type=int, default=200)
    args = parser.parse_args()
    proc, url = server()
    try:
        rows, stops, settles, before, after = asyncio.run(measure(url, proc.pid, args.calls, args.kept))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print(f"machine: {platform.node()} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}, "
          f"`bench/tasks.py --calls {args.calls} --kept {args.kept}`\n")
    print("| work | call (p50) | task, created and polled to completed (p50) | task / call |")
    print("|---|---:|---:|---:|")
    for language, (call, task) in rows.items():
        code = "`1+1`" if language == "javascript" else "`print(1+1)`"
        print(f"| {language} {code} | {call:.2f} ms | {task:.2f} ms | {task / call:.2f}× |")
    print(f"\ncancel acknowledged → guest gone (runs_active 0): p50 {statistics.median(stops):.1f} ms, "
          f"max {max(stops):.1f} ms; → `tasks/get` says cancelled: p50 {statistics.median(settles):.1f} ms")
    print(f"server RSS before {args.kept} kept tasks of 100 KB output: {before:.1f} MiB, after: "
          f"{after:.1f} MiB (+{after - before:.1f} MiB; their results: "
          f"{args.kept * 0.2:.0f} MB as JSON, output twice: text block and structuredContent)")


if __name__ == "__main__":
    main()
