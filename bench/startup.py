#!/usr/bin/env python3
"""Time from process start to the answer of the first `tools/list`, warm and cold guest cache.

Speaks raw JSON-RPC over the server's stdio (no SDK overhead in the measurement).
Usage: bench/startup.py [--warm N] [--cold N]   (WARDEN_BIN names the binary)
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARDEN = os.environ.get("WARDEN_BIN") or str(ROOT / "target" / "release" / "warden")


def one_start(cache_dir: str) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [WARDEN, "serve", "--cache-dir", cache_dir],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "WARDEN_LOG": "error"},
    )
    def send(msg):
        proc.stdin.write((json.dumps(msg) + "\n").encode())
        proc.stdin.flush()
    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "startup-bench", "version": "0"}}})
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("server exited before answering tools/list")
        msg = json.loads(line)
        if msg.get("id") == 2:
            elapsed = time.perf_counter() - started
            assert msg["result"]["tools"][0]["name"] == "execute_code"
            break
    proc.stdin.close()
    proc.wait(timeout=10)
    return elapsed * 1000


def summary(name, samples):
    samples = sorted(samples)
    print(f"{name}: n={len(samples)} min={samples[0]:.1f} ms median={statistics.median(samples):.1f} ms max={samples[-1]:.1f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warm", type=int, default=20)
    ap.add_argument("--cold", type=int, default=5)
    args = ap.parse_args()
    cold = []
    for _ in range(args.cold):
        with tempfile.TemporaryDirectory() as empty:
            cold.append(one_start(empty))
    with tempfile.TemporaryDirectory() as cache:
        one_start(cache)  # fill the cache
        warm = [one_start(cache) for _ in range(args.warm)]
    summary("cold start (empty cache) to tools/list", cold)
    summary("warm start (cached guest) to tools/list", warm)


if __name__ == "__main__":
    main()
