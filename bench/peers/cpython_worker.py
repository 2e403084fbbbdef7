"""CPython peer for bench/peers/run.py (run with the machine's python3).

Answers one JSON request per stdin line, {"code", "warmup", "iterations"}, with one JSON line:
{"ok": true, "samples_ns": [...], "result": ..., "stdout": ...} or {"ok": false, "error"}.
A timed run is `exec(compile(src, "<main>", "exec"), {...fresh globals...})` with stdout
redirected to an io.StringIO. `result` (the value of a trailing expression, as Warden reports
it) and `stdout` come from one extra untimed run that evaluates the last expression apart.
"""
import ast
import contextlib
import io
import json
import sys
import time


def run_once(src):
    """One timed run: compile, exec in fresh globals, stdout captured. Returns the stdout."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(src, "<main>", "exec"), {"__name__": "__main__"})
    return buffer.getvalue()


def result_of(src):
    """An untimed run that also returns the trailing expression's value (None without one)."""
    tree = ast.parse(src, "<main>")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    namespace = {"__name__": "__main__"}
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(tree, "<main>", "exec"), namespace)
        value = eval(compile(ast.Expression(last.value), "<main>", "eval"), namespace) if last else None
    return value, buffer.getvalue()


def serve(request):
    src = request["code"]
    for _ in range(request.get("warmup", 0)):
        run_once(src)
    samples = []
    gap_s = request.get("gap_ms", 0) / 1000  # idle before each timed run, as calls come apart
    for _ in range(request["iterations"]):
        if gap_s:
            time.sleep(gap_s)
        start = time.perf_counter_ns()
        run_once(src)
        samples.append(time.perf_counter_ns() - start)
    result, stdout = result_of(src)
    return {"ok": True, "samples_ns": samples, "result": result, "stdout": stdout}


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = serve(json.loads(line))
        except Exception as e:  # reported to the harness, which stops
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
