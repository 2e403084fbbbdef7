// quickjs-emscripten peer for bench/peers/run.py (Node 22, the default sync release variant).
//
// Loads the module once (getQuickJS()), then answers one JSON request per stdin line,
// {"code", "warmup", "iterations"}, with one JSON line: {"ok": true, "samples_ns": [...],
// "result": <the last run's result>} or {"ok": false, "error"}. A run is a fresh runtime and
// context, evalCode, reading the result (ctx.dump) and disposing of everything: what Warden's
// sandbox does per call.
import { createInterface } from "node:readline";
import { getQuickJS } from "quickjs-emscripten";

const QuickJS = await getQuickJS();

function runOnce(code) {
  const runtime = QuickJS.newRuntime();
  const context = runtime.newContext();
  try {
    const evaluated = context.evalCode(code, "main.js");
    if (evaluated.error) {
      const error = context.dump(evaluated.error);
      evaluated.error.dispose();
      throw new Error(`exception: ${JSON.stringify(error)}`);
    }
    const value = context.dump(evaluated.value);
    evaluated.value.dispose();
    return value === undefined ? null : value;
  } finally {
    context.dispose();
    runtime.dispose();
  }
}

// `gap_ms`: idle this long before each timed run (as an agent's calls come apart).
const idle = (ms) => ms > 0 && Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

function serve({ code, warmup = 0, iterations, gap_ms = 0 }) {
  let result = null;
  for (let i = 0; i < warmup; i++) result = runOnce(code);
  const samples = [];
  for (let i = 0; i < iterations; i++) {
    idle(gap_ms);
    const start = process.hrtime.bigint();
    result = runOnce(code);
    samples.push(Number(process.hrtime.bigint() - start));
  }
  return { ok: true, samples_ns: samples, result };
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = serve(JSON.parse(line));
  } catch (e) {
    answer = { ok: false, error: String(e && e.stack || e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
