// Pyodide peer for bench/peers/run.py (Node 22).
//
// `node pyodide_worker.mjs reused`: loadPyodide() once, then each run is runPython(code) on that
// interpreter, in a fresh globals dict, with stdout captured by setStdout({batched}) (Warden
// captures stdout too).
// `node pyodide_worker.mjs fresh`: each run is a fresh loadPyodide() + setStdout + runPython(code).
// Both answer one JSON request per stdin line, {"code", "warmup", "iterations"}, with one JSON
// line: {"ok": true, "samples_ns": [...], "result": <last run's result>, "stdout": <its stdout>}
// or {"ok": false, "error"}.
import { createInterface } from "node:readline";
import { loadPyodide } from "pyodide";

const mode = process.argv[2] || "reused";
let lines = [];

async function load() {
  const pyodide = await loadPyodide();
  pyodide.setStdout({ batched: (line) => lines.push(line) });
  return pyodide;
}

const reused = mode === "reused" ? await load() : null;
const newDict = reused ? reused.runPython("dict") : null;

// The value of the last expression as plain JSON-able data (lists come back as PyProxies).
function plain(value) {
  if (value === undefined) return null;
  if (value && typeof value.toJs === "function") {
    const converted = value.toJs({ dict_converter: Object.fromEntries });
    value.destroy();
    return converted;
  }
  return value;
}

function runReused(code) {
  lines = [];
  const globals = newDict();
  try {
    return plain(reused.runPython(code, { globals }));
  } finally {
    globals.destroy();
  }
}

async function runFresh(code) {
  lines = [];
  const pyodide = await load();
  return plain(pyodide.runPython(code));
}

// `gap_ms`: idle this long before each timed run (as an agent's calls come apart).
const idle = (ms) => ms > 0 && Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

async function serve({ code, warmup = 0, iterations, gap_ms = 0 }) {
  let result = null;
  for (let i = 0; i < warmup; i++) result = reused ? runReused(code) : await runFresh(code);
  const samples = [];
  for (let i = 0; i < iterations; i++) {
    idle(gap_ms);
    if (mode === "fresh" && typeof globalThis.gc === "function") globalThis.gc();
    const start = process.hrtime.bigint();
    result = reused ? runReused(code) : await runFresh(code);
    samples.push(Number(process.hrtime.bigint() - start));
  }
  // `lines` holds the last run's stdout.
  return { ok: true, samples_ns: samples, result, stdout: lines.map((l) => l + "\n").join("") };
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = await serve(JSON.parse(line));
  } catch (e) {
    answer = { ok: false, error: String(e && e.stack || e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
