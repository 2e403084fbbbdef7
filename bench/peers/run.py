#!/usr/bin/env python3
"""Warden and its peers on exactly the same programs, in one run: a table of p50 latencies and
of ratios (Warden / peer), with the goals of docs/benchmarks.md checked.

What runs (every side reads bench/peers/programs.json and checks each program's result, and its
stdout where it captures one):
  - Warden stdio: `target/release/warden serve` with the built-in policy (no --policy, audit on,
    stderr discarded), driven by raw newline-delimited JSON-RPC; the latency of one
    `tools/call execute_code` round trip, measured here.
  - Warden in-process: the sandbox alone, benches/sandbox.rs's `peers` group, built once with
    `cargo bench --locked --bench sandbox --no-run` and then run as `cargo bench ... -- peers/`
    runs it (the same build in every round); criterion's median, target/criterion/peers/<id>/new.
    With --gap-ms the same executable runs its own spaced loop instead (WARDEN_BENCH_GAP_MS:
    the same warm-up and timed runs as every other side, each after the gap), since criterion
    runs calls back to back.
  - quickjs-emscripten (Node 22): per run a new runtime + context, evalCode, dump, dispose.
  - native rquickjs (bench/peers/rquickjs): per run Runtime::new + Context::full + eval + drop.
  - Pyodide reused (Node 22): loadPyodide() once, per run runPython(code) in fresh globals,
    stdout captured; Pyodide fresh: loadPyodide() + runPython("print(1+1)") per run.
  - CPython (the machine's python3): exec(compile(src)) in fresh globals, stdout to a StringIO.

How: every side except the in-process one is a long-lived process started once (the peers
speak one JSON request/answer per line on stdin/stdout and time themselves; Warden's round
trips are timed here). The run has R rounds; in each, criterion runs the in-process
programs once, then every program runs on every side in turn (the side order rotates from
round to round), each time W untimed then N timed runs. A side's figure for a program is the
median over the rounds of its per-round p50 (min: the lowest sample of all rounds), so that the
machine's drift weighs the same on every side. Only ratios carry from one run to another.

Usage: .venv/bin/python bench/peers/run.py [--rounds R] [--markdown] [--no-in-process]
           [--json FILE] [--fresh-iterations N] [--compute-iterations N] [--build] [--gap-ms MS]
(runs bench/peers/setup.sh first; WARDEN_BIN names another warden binary)
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
WARDEN = Path(os.environ.get("WARDEN_BIN") or TARGET / "release" / "warden")
NODE_BIN = ROOT / ".tools" / "node22" / "node_modules" / ".bin"
RQUICKJS = ROOT / "target" / "peers" / "release" / "warden-peer-rquickjs"
CRITERION = TARGET / "criterion" / "peers"
CPYTHON = "/usr/bin/python3"  # the machine's python3: Debian's 3.11
CARGO_BENCH = ["cargo", "bench", "--locked", "--bench", "sandbox", "--", "peers/",
               "--warm-up-time", "1", "--measurement-time", "3", "--noplot"]

# Columns of the table, in order: key, heading, languages it runs.
SIDES = [
    ("warden_stdio", "Warden stdio", {"javascript", "python"}),
    ("warden_in_process", "Warden in-process", {"javascript", "python"}),
    ("quickjs_emscripten", "quickjs-emscripten", {"javascript"}),
    ("rquickjs", "native rquickjs", {"javascript"}),
    ("pyodide", "Pyodide reused", {"python"}),
    ("pyodide_fresh", "Pyodide fresh", {"python"}),
    ("cpython", "CPython", {"python"}),
]
HEADING = {key: heading for key, heading, _ in SIDES}


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# The sides

class Measurement:
    """What one side answered for one program in one round."""

    def __init__(self, samples_ns, result=None, stdout=None):
        self.samples_ns = samples_ns
        self.result = result
        self.stdout = stdout  # None: this side does not capture stdout


class LineWorker:
    """A peer process speaking one JSON request / one JSON answer per line (the *_worker
    scripts and the rquickjs runner): {"code", "warmup", "iterations"} ->
    {"ok", "samples_ns", "result", "stdout"?}."""

    def __init__(self, name, argv, env=None):
        self.name = name
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, cwd=HERE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, bufsize=1,
                                     env={**os.environ, **(env or {})})

    def ask(self, request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.stderr.seek(0)
            tail = self.stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited ({self.proc.wait()}): {tail}")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"{self.name}: {answer.get('error')}")
        return answer

    def measure(self, code, warmup, iterations, gap_ms=0):
        answer = self.ask({"code": code, "warmup": warmup, "iterations": iterations,
                           "gap_ms": gap_ms})
        return Measurement(answer["samples_ns"], answer.get("result"), answer.get("stdout"))

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class WardenStdio:
    """`warden serve` over stdio with the built-in policy, driven by raw JSON-RPC (as
    bench/sessions.py): the latency of one execute_code round trip."""

    name = "warden stdio"

    def __init__(self, binary):
        self.proc = subprocess.Popen([str(binary), "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, bufsize=1)
        self.next_id = 0
        self.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                    "clientInfo": {"name": "bench-peers", "version": "0"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message):
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def request(self, method, params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"warden exited ({self.proc.wait()})")
            reply = json.loads(line)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"warden: {reply['error']}")
                return reply["result"]

    def call(self, language, code):
        result = self.request("tools/call", {"name": "execute_code", "arguments": {
            "language": language, "code": code, "timeout_ms": 30000}})
        structured = result["structuredContent"]
        if structured["status"] != "ok":
            raise RuntimeError(f"warden: {structured}")
        return structured

    def measure(self, language, code, warmup, iterations, gap_ms=0):
        structured = None
        for _ in range(warmup):
            structured = self.call(language, code)
        samples = []
        for _ in range(iterations):
            if gap_ms:
                time.sleep(gap_ms / 1000)
            start = time.perf_counter_ns()
            structured = self.call(language, code)
            samples.append(time.perf_counter_ns() - start)
        return Measurement(samples, structured["result"], structured["stdout"])

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_sides(programs):
    """Starts the long-lived sides: {key: object with .measure}."""
    node = str(NODE_BIN / "node")
    env = {"PATH": f"{NODE_BIN}:{os.environ.get('PATH', '')}"}
    sides = {"warden_stdio": WardenStdio(WARDEN)}
    languages = {p["language"] for p in programs}
    if "javascript" in languages:
        sides["quickjs_emscripten"] = LineWorker("quickjs-emscripten", [node, "quickjs_worker.mjs"], env)
        sides["rquickjs"] = LineWorker("rquickjs", [str(RQUICKJS)])
    if "python" in languages:
        sides["pyodide"] = LineWorker("pyodide", [node, "pyodide_worker.mjs", "reused"], env)
        sides["pyodide_fresh"] = LineWorker(
            "pyodide fresh", [node, "--expose-gc", "pyodide_worker.mjs", "fresh"], env)
        sides["cpython"] = LineWorker("cpython", [CPYTHON, "cpython_worker.py"])
    return sides


def counts(side, program, spec):
    """(warmup, iterations) of a side for a program; None when the side does not run it."""
    if program["language"] not in next(langs for key, _, langs in SIDES if key == side):
        return None
    if side == "pyodide_fresh":
        if program["kind"] != "fresh":
            return None
        return spec["pyodide_fresh"]["warmup"], spec["pyodide_fresh"]["iterations"]
    return program["warmup"], program["iterations"]


def check(side, program, measurement):
    """Raises unless the side's answer is the program's expected result (and stdout)."""
    pid = program_id(program)
    if measurement.result != program["result"]:
        raise RuntimeError(f"{side} {pid}: result {measurement.result!r}, expected {program['result']!r}")
    if "stdout" in program and measurement.stdout is not None and measurement.stdout != program["stdout"]:
        raise RuntimeError(f"{side} {pid}: stdout {measurement.stdout!r}, expected {program['stdout']!r}")


def program_id(program):
    return f"{program['language']}/{program['name']}"


# ---------------------------------------------------------------------------------------------
# Warden in-process: criterion

def build_bench(logfile):
    """`cargo bench --no-run` of benches/sandbox.rs, once, so that every round runs the same
    build even if the sources change during the run; returns the bench executable."""
    argv = CARGO_BENCH[:CARGO_BENCH.index("--")] + ["--no-run", "--message-format=json-render-diagnostics"]
    with open(logfile, "a") as err:
        err.write(f"$ {shlex.join(argv)}\n")
        err.flush()
        proc = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
    if proc.returncode != 0:
        tail = Path(logfile).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"cargo bench --no-run failed ({proc.returncode}); log {logfile}:\n{tail}")
    for line in proc.stdout.splitlines():
        message = json.loads(line)
        if (message.get("reason") == "compiler-artifact" and message["target"]["name"] == "sandbox"
                and message.get("executable")):
            # A copy: another build in the same target directory may overwrite the original.
            pinned = ROOT / "target" / "peers" / "sandbox-bench"
            shutil.copy2(message["executable"], pinned)
            return str(pinned)
    raise RuntimeError("cargo bench --no-run named no sandbox bench executable")


def criterion_round(executable, logfile, ids=None):
    """Runs the `peers` criterion group once (only `ids` if given), as `cargo bench` would run
    it; {program id: (median ns, min ns)}."""
    argv = [executable, "--bench"] + CARGO_BENCH[CARGO_BENCH.index("--") + 1:]
    if ids is not None:
        argv[argv.index("peers/")] = "^peers/(" + "|".join(re.escape(i) for i in ids) + ")$"
    started = time.time()
    with open(logfile, "a") as out:
        out.write(f"\n$ {shlex.join(argv)}\n")
        out.flush()
        code = subprocess.run(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "CARGO_TARGET_DIR": str(TARGET)}).returncode
    if code != 0:
        tail = Path(logfile).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the sandbox bench failed ({code}); log {logfile}:\n{tail}")
    figures = {}
    for estimates in CRITERION.glob("*/*/new/estimates.json"):
        if estimates.stat().st_mtime < started:
            continue  # left over from an earlier run
        pid = f"{estimates.parents[2].name}/{estimates.parents[1].name}"
        median = json.loads(estimates.read_text())["median"]["point_estimate"]
        sample = json.loads((estimates.parent / "sample.json").read_text())
        fastest = min(t / i for t, i in zip(sample["times"], sample["iters"]))
        figures[pid] = (median, fastest)
    return figures


def spaced_round(executable, logfile, spec, gap_ms):
    """The programs of `spec` in the bench's own loop, idle `gap_ms` before each timed run;
    {program id: [samples ns]}."""
    with tempfile.TemporaryDirectory() as tmp:
        programs, out = Path(tmp) / "programs.json", Path(tmp) / "samples.json"
        programs.write_text(json.dumps(spec))
        env = {**os.environ, "CARGO_TARGET_DIR": str(TARGET), "WARDEN_BENCH_GAP_MS": f"{gap_ms:g}",
               "WARDEN_BENCH_GAP_OUT": str(out), "WARDEN_BENCH_PROGRAMS": str(programs)}
        argv = [executable, "--bench", "peers/"]
        with open(logfile, "a") as log_out:
            log_out.write(f"\n$ WARDEN_BENCH_GAP_MS={env['WARDEN_BENCH_GAP_MS']} {shlex.join(argv)}\n")
            log_out.flush()
            code = subprocess.run(argv, cwd=ROOT, stdout=log_out, stderr=subprocess.STDOUT, env=env).returncode
        if code != 0:
            tail = Path(logfile).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the sandbox bench failed ({code}); log {logfile}:\n{tail}")
        return json.loads(out.read_text())


# ---------------------------------------------------------------------------------------------
# The run

def round_figures(samples_ns):
    """One side's figures for one program in one round."""
    return {"p50": statistics.median(samples_ns), "min": min(samples_ns), "n": len(samples_ns),
            "samples_ns": samples_ns}


def run_rounds(spec, rounds, in_process, logfile, filtered, gap_ms=0):
    """{side: {program id: [{"p50", "min", "n", "samples_ns"}, ...one per round]}}."""
    programs = spec["programs"]
    data = {key: {} for key, _, _ in SIDES}
    sides = start_sides(programs)
    order = [key for key, _, _ in SIDES if key in sides]
    try:
        if in_process:
            log(f"building the in-process bench: cargo bench --no-run (log {logfile})")
            executable = build_bench(logfile)
        for r in range(rounds):
            if in_process and gap_ms:
                log(f"round {r + 1}/{rounds}: spaced loop (Warden in-process; log {logfile})")
                for pid, samples in spaced_round(executable, logfile, spec, gap_ms).items():
                    data["warden_in_process"].setdefault(pid, []).append(round_figures(samples))
            elif in_process:
                log(f"round {r + 1}/{rounds}: criterion (Warden in-process; log {logfile})")
                figures = criterion_round(executable, logfile,
                                          [program_id(p) for p in programs] if filtered else None)
                for program in programs:
                    pid = program_id(program)
                    if pid not in figures:
                        raise RuntimeError(f"cargo bench gave no figure for peers/{pid}")
                    median, fastest = figures[pid]
                    data["warden_in_process"].setdefault(pid, []).append(
                        {"p50": median, "min": fastest, "n": None})
            rotated = order[r % len(order):] + order[:r % len(order)]
            for program in programs:
                pid = program_id(program)
                log(f"round {r + 1}/{rounds}: {pid}")
                for side in rotated:
                    n = counts(side, program, spec)
                    if n is None or n[1] == 0:
                        continue
                    if side == "warden_stdio":
                        m = sides[side].measure(program["language"], program["code"], *n, gap_ms)
                    else:
                        m = sides[side].measure(program["code"], *n, gap_ms)
                    check(side, program, m)
                    data[side].setdefault(pid, []).append(round_figures(m.samples_ns))
        return data, versions_of(sides)
    finally:
        for side in sides.values():
            side.close()


def summarize(data):
    """{side: {program id: {"p50": median of the per-round p50s, "min", "rounds"}}}."""
    return {side: {pid: {"p50": statistics.median(r["p50"] for r in per_round),
                         "min": min(r["min"] for r in per_round),
                         "rounds": [r["p50"] for r in per_round]}
                   for pid, per_round in programs.items()}
            for side, programs in data.items()}


# ---------------------------------------------------------------------------------------------
# Goals

def goals(spec, summary):
    """The goals of the brief: [{"what", "value", "target", "unit", "stdio", "pass"}]."""
    def p50(side, pid):
        figure = summary.get(side, {}).get(pid)
        return figure["p50"] if figure else None

    def ratio(a, b):
        return a / b if a is not None and b else None

    out = []

    def add_ratio(what, pid, peer, peer_pid, target):
        value = ratio(p50("warden_in_process", pid), p50(peer, peer_pid))
        out.append({"what": what, "value": value, "target": target, "unit": "ratio",
                    "stdio": ratio(p50("warden_stdio", pid), p50(peer, peer_pid)),
                    "pass": None if value is None else value <= target})

    programs = spec["programs"]
    for p in programs:
        pid = program_id(p)
        if p["kind"] != "compute":
            continue
        if p["language"] == "javascript":
            add_ratio(f"JS {p['name']}: in-process / quickjs-emscripten", pid, "quickjs_emscripten", pid, 1.0)
            add_ratio(f"JS {p['name']}: in-process / native rquickjs", pid, "rquickjs", pid, 2.0)
        else:
            add_ratio(f"Python {p['name']}: in-process / Pyodide reused", pid, "pyodide", pid, 1.0)
    js_fresh = next((program_id(p) for p in programs if p["language"] == "javascript" and p["kind"] == "fresh"), None)
    py_fresh = next((program_id(p) for p in programs if p["language"] == "python" and p["kind"] == "fresh"), None)
    if js_fresh:
        add_ratio("JS fresh `1+1`: in-process / native rquickjs fresh rt+ctx", js_fresh, "rquickjs", js_fresh, 0.3)
    if py_fresh:
        add_ratio("Python fresh `print(1+1)`: in-process / Pyodide reused", py_fresh, "pyodide", py_fresh, 2.0)
    if js_fresh:
        stdio, in_process = p50("warden_stdio", js_fresh), p50("warden_in_process", js_fresh)
        value = stdio - in_process if stdio is not None and in_process is not None else None
        out.append({"what": "JS `1+1`: stdio p50 - in-process p50", "value": value, "target": 150e3,
                    "unit": "ns", "stdio": None, "pass": None if value is None else value <= 150e3})
    return out


# ---------------------------------------------------------------------------------------------
# Output

def fmt_time(ns):
    if ns is None:
        return "—"
    for scale, unit in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
        if abs(ns) >= scale:
            v = ns / scale
            return f"{v:.3g} {unit}" if abs(v) < 100 else f"{v:.0f} {unit}"
    return f"{ns:.0f} ns"


def fmt_ratio(value):
    if value is None:
        return "—"
    return f"{value:.2f}" if value >= 0.095 else f"{value:.2g}"


def tables(spec, summary, markdown):
    """The text of the three tables: p50, min, ratios."""
    programs = spec["programs"]
    cols = [key for key, _, _ in SIDES if summary.get(key)]
    label = {program_id(p): p["label"] for p in programs}

    def render(header, rows):
        if markdown:
            lines = ["| " + " | ".join(header) + " |",
                     "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            return "\n".join(lines)
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
        line = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])

    def figure_table(field):
        rows = []
        for p in programs:
            pid = program_id(p)
            rows.append([label[pid]] + [fmt_time(summary[c][pid][field]) if pid in summary[c] else "—"
                                        for c in cols])
        return render(["work"] + [HEADING[c] for c in cols], rows)

    ratio_rows = []
    for p in programs:
        pid = program_id(p)
        for peer in ("quickjs_emscripten", "rquickjs", "pyodide", "pyodide_fresh", "cpython"):
            theirs = summary.get(peer, {}).get(pid)
            if not theirs:
                continue
            ours = {side: summary.get(side, {}).get(pid) for side in ("warden_in_process", "warden_stdio")}
            ratio_rows.append([label[pid], HEADING[peer], fmt_time(theirs["p50"])] + [
                fmt_ratio(ours[side]["p50"] / theirs["p50"]) if ours[side] else "—"
                for side in ("warden_in_process", "warden_stdio")])
    ratios = render(["work", "peer", "peer p50", "Warden in-process / peer", "Warden stdio / peer"], ratio_rows)
    return figure_table("p50"), figure_table("min"), ratios


def goals_text(goal_list, markdown):
    rows = []
    for g in goal_list:
        if g["unit"] == "ns":
            value, target = fmt_time(g["value"]), f"≤ {fmt_time(g['target'])}"
        else:
            value, target = fmt_ratio(g["value"]), f"≤ {g['target']:.1f}"
        verdict = "n/a" if g["pass"] is None else ("pass" if g["pass"] else "FAIL")
        rows.append([g["what"], value, fmt_ratio(g["stdio"]) if g["unit"] == "ratio" else "", target, verdict])
    header = ["goal", "value", "the same with Warden stdio", "target", "result"]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---:|---:|---|---|"]
        lines += ["| " + " | ".join(r[:4] + [f"**{r[4]}**" if r[4] == "FAIL" else r[4]]) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


# ---------------------------------------------------------------------------------------------
# Versions and machine

def output_of(argv, cwd=ROOT):
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def package_version(name):
    path = HERE / "node_modules" / name / "package.json"
    return json.loads(path.read_text())["version"] if path.exists() else "?"


def versions_of(sides):
    """Versions of every side; asks the running peers for their engines' versions."""
    v = {"node": output_of([str(NODE_BIN / "node"), "--version"]),
         "quickjs-emscripten": package_version("quickjs-emscripten"),
         "pyodide": package_version("pyodide"),
         "rustc": output_of(["rustc", "--version"]).removeprefix("rustc ")}
    readme = HERE / "node_modules" / "@jitl" / "quickjs-wasmfile-release-sync" / "README.md"
    match = re.search(r"Version \[([^\]]+)\]", readme.read_text()) if readme.exists() else None
    v["quickjs-emscripten engine"] = f"bellard/quickjs {match.group(1)}" if match else "?"
    guest_engine = ROOT / ".tools" / "quickjs" / "VERSION"
    v["warden engine"] = ("bellard/quickjs " + guest_engine.read_text().strip()
                          if guest_engine.exists() else "?")
    lock = (HERE / "rquickjs" / "Cargo.lock").read_text()
    match = re.search(r'name = "rquickjs"\nversion = "([^"]+)"', lock)
    v["rquickjs"] = match.group(1) if match else "?"
    version_code = "import sys\nsys.version.split()[0]"
    if "rquickjs" in sides:
        v["rquickjs engine"] = "quickjs-ng " + sides["rquickjs"].ask({"version": True})["quickjs"]
    if "pyodide" in sides:
        v["pyodide python"] = sides["pyodide"].measure(version_code, 1, 0).result
    if "cpython" in sides:
        v["python3"] = f"{sides['cpython'].measure(version_code, 0, 0).result} ({CPYTHON})"
    commit = output_of(["git", "rev-parse", "--short=12", "HEAD"])
    dirty = output_of(["git", "status", "--porcelain", "--untracked-files=no"])
    v["warden"] = commit + (" + uncommitted changes" if dirty not in ("", "?") else "")
    return v


def machine():
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}


def markdown_section(command, mach, versions, p50_table, min_table, ratio_table, goals_md, rounds, gap_ms=0):
    v = versions
    in_process = ("the bench's own loop with the same warm-up and timed runs as the other sides, "
                  f"p50; every side idles {gap_ms:g} ms before each timed run" if gap_ms else "criterion's median")
    return f"""## Warden and its peers (bench/peers), {mach['date']}

Machine: {mach['cpu']}, {mach['nproc']} cores (`nproc`), Linux {mach['kernel']}. Command:
`{command}`.

Versions: Warden {v.get('warden')} (JavaScript guest {v.get('warden engine', '?')}; rustc
{v.get('rustc')}); Node {v.get('node')};
quickjs-emscripten {v.get('quickjs-emscripten')} ({v.get('quickjs-emscripten engine')}, default sync
release variant); rquickjs {v.get('rquickjs')} ({v.get('rquickjs engine', '?')}); Pyodide {v.get('pyodide')}
(Python {v.get('pyodide python', '?')}); CPython {v.get('python3', '?')}.

Every side runs the same programs (`bench/peers/programs.json`) and checks their results. Warden
stdio is `warden serve` with the built-in policy (audit on), one raw JSON-RPC `execute_code` round
trip; Warden in-process is the sandbox alone (`cargo bench --bench sandbox -- peers/`,
{in_process}). The peers run in long-lived processes that time themselves: quickjs-emscripten and
native rquickjs make a new runtime and context per run; Pyodide reused runs `runPython` on one
interpreter (fresh globals); Pyodide fresh is `loadPyodide()` + `print(1+1)`; CPython is `exec`
in fresh globals. {rounds} rounds, every side running each program once per round in turn; a
figure is the median of the per-round p50s. The machine's speed varies several-fold from day to
day: **only the ratios carry over** to another day or machine.

p50:

{p50_table}

Ratios (Warden / peer; below 1 Warden is faster):

{ratio_table}

Goals:

{goals_md}

Fastest run (min over all rounds):

{min_table}
"""


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--markdown", action="store_true", help="print a docs/benchmarks.md section")
    ap.add_argument("--no-in-process", action="store_true",
                    help="skip `cargo bench` (Warden in-process), which rebuilds when sources changed")
    ap.add_argument("--json", metavar="FILE", help="write every figure, per round, to FILE")
    ap.add_argument("--fresh-iterations", type=int, help="timed runs of the fresh programs per side per round")
    ap.add_argument("--compute-iterations", type=int, help="timed runs of the compute programs per side per round")
    ap.add_argument("--pyodide-fresh-iterations", type=int, help="fresh loadPyodide() per round (default 1)")
    ap.add_argument("--only", metavar="REGEX", help="only the programs whose id matches (e.g. '^javascript/')")
    ap.add_argument("--build", action="store_true", help="cargo build --release --locked the warden binary first")
    ap.add_argument("--no-setup", action="store_true", help="do not run bench/peers/setup.sh first")
    ap.add_argument("--gap-ms", type=float, default=0,
                    help="every side idles this long before each timed run, as an agent's calls come "
                         "apart (Warden in-process then runs the bench's own loop, not criterion)")
    args = ap.parse_args()
    if args.gap_ms < 0:
        sys.exit("--gap-ms must be 0 or more")

    spec = json.loads((HERE / "programs.json").read_text())
    for program in spec["programs"]:
        if program["kind"] == "fresh" and args.fresh_iterations is not None:
            program["iterations"] = args.fresh_iterations
        if program["kind"] == "compute" and args.compute_iterations is not None:
            program["iterations"] = args.compute_iterations
    if args.pyodide_fresh_iterations is not None:
        spec["pyodide_fresh"]["iterations"] = args.pyodide_fresh_iterations
    if args.only:
        spec["programs"] = [p for p in spec["programs"] if re.search(args.only, program_id(p))]
        if not spec["programs"]:
            sys.exit(f"no program matches {args.only!r}")

    if not args.no_setup:
        subprocess.run(["bash", str(HERE / "setup.sh")], check=True)
    if args.build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "warden"], cwd=ROOT, check=True)
    if not WARDEN.exists():
        sys.exit(f"no warden binary at {WARDEN}: `cargo build --release` first (or --build)")
    log(f"warden: {WARDEN} (built {time.strftime('%Y-%m-%d %H:%M', time.localtime(WARDEN.stat().st_mtime))})")

    started = time.time()
    logfile = str(ROOT / "target" / "peers" / "cargo-bench.log")
    Path(logfile).parent.mkdir(parents=True, exist_ok=True)
    Path(logfile).write_text("")
    data, versions = run_rounds(spec, args.rounds, not args.no_in_process, logfile, bool(args.only),
                                args.gap_ms)
    summary = summarize(data)
    goal_list = goals(spec, summary)
    log(f"done in {time.time() - started:.0f} s")

    command = shlex.join([".venv/bin/python", "bench/peers/run.py"] + sys.argv[1:])
    mach = machine()
    if args.markdown:
        p50_table, min_table, ratio_table = tables(spec, summary, markdown=True)
        print(markdown_section(command, mach, versions, p50_table, min_table, ratio_table,
                               goals_text(goal_list, markdown=True), args.rounds, args.gap_ms))
    else:
        p50_table, min_table, ratio_table = tables(spec, summary, markdown=False)
        print(f"{mach['cpu']}, {mach['nproc']} cores, Linux {mach['kernel']}, {mach['date']}; "
              f"{args.rounds} rounds; figure = median of the per-round p50s\n")
        print("p50\n" + p50_table + "\n")
        print("min (over all rounds)\n" + min_table + "\n")
        print("ratios: Warden / peer\n" + ratio_table + "\n")
        print("goals\n" + goals_text(goal_list, markdown=False) + "\n")
        print("versions: " + "; ".join(f"{k} {v}" for k, v in versions.items()))
        print("only the ratios carry over to another day or machine")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "command": command, "machine": mach, "versions": versions, "rounds": args.rounds,
            "programs": spec["programs"], "pyodide_fresh": spec["pyodide_fresh"],
            "summary": summary, "goals": goal_list, "per_round": data}, indent=1) + "\n")


if __name__ == "__main__":
    main()
