//! Native rquickjs peer for `bench/peers/run.py`.
//!
//! Reads one JSON request per line on stdin, `{"code": "...", "warmup": W, "iterations": N}`,
//! and answers each with one JSON line on stdout,
//! `{"ok": true, "samples_ns": [...], "result": <the last run's result as JSON>}` (or
//! `{"ok": false, "error": "..."}`); `{"version": true}` answers `{"ok": true, "quickjs": "..."}`,
//! the version of the QuickJS (quickjs-ng) that rquickjs embeds. A run is what Warden's sandbox does per call, natively:
//! `Runtime::new()` + `Context::full()` + eval (global, non-strict, as the guest evaluates) +
//! `JSON.stringify` of the result + drop; W untimed runs, then N timed ones; the result is the last run's.

use std::io::{BufRead, Write};
use std::time::Instant;

use rquickjs::context::EvalOptions;
use rquickjs::{Context, Runtime, Value};

/// One fresh runtime and context: evaluates `code` and returns its result as JSON text.
fn run_once(code: &str) -> Result<String, String> {
    let runtime = Runtime::new().map_err(|e| format!("runtime: {e}"))?;
    let context = Context::full(&runtime).map_err(|e| format!("context: {e}"))?;
    context.with(|ctx| {
        let mut options = EvalOptions::default();
        options.global = true;
        options.strict = false;
        let value: Value = match ctx.eval_with_options(code, options) {
            Ok(v) => v,
            Err(rquickjs::Error::Exception) => {
                let exception = ctx.catch();
                let text = exception
                    .as_exception()
                    .map(|e| format!("{:?}: {:?}", e.message(), e.stack()))
                    .unwrap_or_else(|| format!("{exception:?}"));
                return Err(format!("exception: {text}"));
            }
            Err(e) => return Err(format!("eval: {e}")),
        };
        let json = ctx
            .json_stringify(value)
            .map_err(|e| format!("stringify: {e}"))?;
        Ok(match json {
            Some(s) => s.to_string().map_err(|e| format!("string: {e}"))?,
            None => "null".to_string(),
        })
    })
}

/// Runs one request: `warmup` untimed runs, then `iterations` timed ones.
fn serve(request: &serde_json::Value) -> Result<serde_json::Value, String> {
    if request["version"] == true {
        // SAFETY: JS_GetVersion returns a pointer to a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(rquickjs::qjs::JS_GetVersion()) };
        return Ok(serde_json::json!({"ok": true, "quickjs": version.to_string_lossy()}));
    }
    let code = request["code"].as_str().ok_or("request without \"code\"")?;
    let warmup = request["warmup"].as_u64().unwrap_or(0);
    let iterations = request["iterations"]
        .as_u64()
        .ok_or("request without \"iterations\"")?;
    let mut result = "null".to_string();
    for _ in 0..warmup {
        result = run_once(code)?;
    }
    // Idle this long before each timed run, as an agent's calls come apart.
    let gap = std::time::Duration::from_secs_f64(request["gap_ms"].as_f64().unwrap_or(0.0) / 1e3);
    let mut samples = Vec::with_capacity(iterations as usize);
    for _ in 0..iterations {
        std::thread::sleep(gap);
        let start = Instant::now();
        result = run_once(code)?;
        samples.push(start.elapsed().as_nanos() as u64);
    }
    let result: serde_json::Value =
        serde_json::from_str(&result).map_err(|e| format!("result is not JSON: {e}"))?;
    Ok(serde_json::json!({"ok": true, "samples_ns": samples, "result": result}))
}

fn main() {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.expect("stdin");
        if line.trim().is_empty() {
            continue;
        }
        let answer = serde_json::from_str::<serde_json::Value>(&line)
            .map_err(|e| format!("bad request: {e}"))
            .and_then(|request| serve(&request))
            .unwrap_or_else(|error| serde_json::json!({"ok": false, "error": error}));
        writeln!(stdout, "{answer}").expect("stdout");
        stdout.flush().expect("stdout");
    }
}
