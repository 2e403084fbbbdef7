#!/usr/bin/env python3
"""Sessions as users run them: `warden serve` over stdio with the built-in policy plus
`[sessions]` (audit on, to stderr), driven by raw JSON-RPC (no SDK time counted).

1. Latency: p50/p90 of N calls of `1+1` (JavaScript) and `print(1+1)` (Python), fresh sandbox
   per call versus the same code continuing one session, interleaved in one run so that the
   machine's speed is the same for both; the ratio is session / fresh.
2. Memory: RSS per idle session: open K sessions (each has run one cell and holds its
   interpreter), RSS delta / K.
3. With `--before BIN` (a build of the commit before sessions and workspaces): a call without
   a session on this build versus on BIN, both with the built-in policy, calls alternating
   between the two servers; the ratio is this / before.

Usage: bench/sessions.py [--calls N] [--sessions K] [--before BIN]   (WARDEN_BIN names the binary)
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
CODE = {"javascript": "1+1", "python": "print(1+1)"}
# The built-in policy, as users run it, with sessions turned on.
DEFAULT = (ROOT / "policies" / "default.toml").read_text()


class Server:
    def __init__(self, policy: str, binary: str = WARDEN):
        path = Path(tempfile.mkdtemp()) / "policy.toml"
        path.write_text(policy)
        self.proc = subprocess.Popen(
            [binary, "serve", "--policy", str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "WARDEN_LOG": "error"}, text=True, bufsize=1,
        )
        self.next_id = 0
        self.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                    "clientInfo": {"name": "bench", "version": "0"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message):
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def request(self, method, params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            reply = json.loads(self.proc.stdout.readline())
            if reply.get("id") == self.next_id:
                return reply["result"]

    def call(self, arguments):
        result = self.request("tools/call", {"name": "execute_code", "arguments": arguments})
        structured = result["structuredContent"]
        assert structured["status"] == "ok", structured
        return structured

    def rss_mib(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=20)


def pct(samples, q):
    return statistics.quantiles(samples, n=100)[q - 1]


def latency(server, language, calls):
    session = server.call({"language": language, "code": CODE[language], "session": "new"})["session"]["id"]
    fresh, kept = [], []
    for _ in range(20):
        server.call({"language": language, "code": CODE[language]})
        server.call({"language": language, "code": CODE[language], "session": session})
    for _ in range(calls):
        t = time.perf_counter()
        server.call({"language": language, "code": CODE[language]})
        fresh.append((time.perf_counter() - t) * 1e6)
        t = time.perf_counter()
        server.call({"language": language, "code": CODE[language], "session": session})
        kept.append((time.perf_counter() - t) * 1e6)
    server.call({"language": language, "code": "0", "session": session, "session_action": "close"})
    f50, k50 = statistics.median(fresh), statistics.median(kept)
    print(f"{language}: fresh p50 {f50:.0f} µs p90 {pct(fresh, 90):.0f} µs | session p50 {k50:.0f} µs "
          f"p90 {pct(kept, 90):.0f} µs | session/fresh {k50 / f50:.2f}")


def idle_rss(language, sessions):
    server = Server(f"{DEFAULT}\n[sessions]\nmax_sessions = {sessions}\nmax_per_grant = {sessions}\n")
    server.call({"language": language, "code": CODE[language]})
    before = server.rss_mib()
    ids = [server.call({"language": language, "code": CODE[language], "session": "new"})["session"]["id"]
           for _ in range(sessions)]
    time.sleep(0.5)
    after = server.rss_mib()
    for sid in ids:
        server.call({"language": language, "code": "0", "session": sid, "session_action": "close"})
    closed = server.rss_mib()
    server.close()
    print(f"{language}: {sessions} idle sessions: RSS {before:.1f} -> {after:.1f} MiB = "
          f"{(after - before) / sessions:.2f} MiB per idle session ({closed:.1f} MiB after closing them)")


def against_before(before, calls):
    now, then = Server(DEFAULT), Server(DEFAULT, before)
    for language in ("javascript", "python"):
        samples = {"now": [], "before": []}
        for _ in range(20):
            now.call({"language": language, "code": CODE[language]})
            then.call({"language": language, "code": CODE[language]})
        for _ in range(calls):
            for name, server in (("now", now), ("before", then)):
                t = time.perf_counter()
                server.call({"language": language, "code": CODE[language]})
                samples[name].append((time.perf_counter() - t) * 1e6)
        n50, b50 = statistics.median(samples["now"]), statistics.median(samples["before"])
        print(f"{language} without a session: this build p50 {n50:.0f} µs | before p50 {b50:.0f} µs "
              f"| this/before {n50 / b50:.2f}")
    now.close()
    then.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--before", help="a warden binary from before sessions, to compare with")
    args = ap.parse_args()
    if args.before:
        against_before(args.before, args.calls)
    server = Server(f"{DEFAULT}\n[sessions]\n")
    for language in ("javascript", "python"):
        latency(server, language, args.calls)
    server.close()
    for language in ("javascript", "python"):
        idle_rss(language, args.sessions)


if __name__ == "__main__":
    main()
