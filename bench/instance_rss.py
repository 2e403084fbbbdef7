#!/usr/bin/env python3
"""RSS per concurrent live instance: N Python (or JavaScript) runs busy at once in one server.

Starts `warden serve` with max_concurrent_runs = N, warms it with one run, then keeps N CPU-bound
runs alive at once and samples the server's RSS while they run:
per instance = (RSS with N live runs - RSS after the warm-up run) / N.
Usage: bench/instance_rss.py [--runs N] [--language python|javascript]   (WARDEN_BIN names the binary)
"""
import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
WARDEN = os.environ.get("WARDEN_BIN") or str(ROOT / "target" / "release" / "warden")
BUSY = {"python": "while True:\n    pass", "javascript": "while (true) {}"}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def main(runs: int, language: str) -> None:
    work = Path(tempfile.mkdtemp())
    policy = work / "policy.toml"
    policy.write_text(f"[limits]\nmax_concurrent_runs = {runs}\nfuel = 1000000000000\n")
    pid_file = work / "pid"
    server = StdioServerParameters(
        command="sh",
        args=["-c", 'echo $$ > "$0"; exec "$@"', str(pid_file), WARDEN, "serve", "--policy", str(policy)],
        env={"WARDEN_LOG": "error"},
    )
    async with Client(server, mode="legacy") as c:
        await c.call_tool("execute_code", {"language": language, "code": "1"})
        pid = int(pid_file.read_text())
        baseline = rss_kib(pid)
        busy = [
            asyncio.create_task(
                c.call_tool("execute_code", {"language": language, "code": BUSY[language], "timeout_ms": 3000})
            )
            for _ in range(runs)
        ]
        await asyncio.sleep(1.5)
        during = rss_kib(pid)
        results = await asyncio.gather(*busy)
        assert all(r.structured_content["status"] == "timeout" for r in results)
    per = (during - baseline) / runs / 1024
    print(f"{language}: {runs} live runs: RSS {baseline / 1024:.1f} MiB idle -> {during / 1024:.1f} MiB "
          f"busy = {per:.2f} MiB per live instance")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--language", default="python", choices=sorted(BUSY))
    args = ap.parse_args()
    asyncio.run(main(args.runs, args.language))
