//! The mapping of every way a run can end (result, exception, trap, exit, exhausted limit) to
//! an [`ExecutionResult`].

use std::time::Instant;

use wasmtime::{Store, Trap};

use super::drive::Interrupted;
use super::run::{HasRunCore, Reported};
use crate::contract::{ErrorInfo, ErrorKind, ExecutionResult, Status, Truncated, Usage};

/// Turns the end of a run into its result. `diagnostics` is what the guest runtime itself
/// printed (e.g. a panic message), used to explain a crash.
pub fn finish<S: HasRunCore>(
    store: &mut Store<S>,
    outcome: wasmtime::Result<()>,
    diagnostics: &str,
    started: Instant,
    fuel_limit: u64,
) -> ExecutionResult {
    let fuel_left = store.get_fuel().unwrap_or(0);
    let core = store.data_mut().run_core();
    let usage = Usage {
        wall_ms: started.elapsed().as_millis() as u64,
        fuel: fuel_limit.saturating_sub(fuel_left),
        memory_peak_bytes: core.limiter.peak_bytes(),
        fetches: core.fetches,
    };
    let memory_exhausted = core.limiter.exhausted();
    let announced_exit = core.exit_code;
    let reported = core.reported.take();
    let (stdout, stdout_truncated) = core.stdout.take();
    let (stderr, stderr_truncated) = core.stderr.take();

    let mut result = ExecutionResult {
        status: Status::Ok,
        stdout,
        stderr,
        truncated: Truncated {
            stdout: stdout_truncated,
            stderr: stderr_truncated,
        },
        result: serde_json::Value::Null,
        error: None,
        usage,
        policy: None,
        files: Vec::new(),
        session: None,
    };

    let exit_code = match &outcome {
        Ok(()) => None,
        Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) if exit.0 != 0 => Some(announced_exit.unwrap_or(exit.0)),
            Some(_) => Some(0),
            None => {
                let (status, error) = classify_failure(e, memory_exhausted, diagnostics);
                result.status = status;
                result.error = Some(error);
                return result;
            }
        },
    };
    match exit_code {
        None => apply_reported(&mut result, reported, memory_exhausted),
        // An explicit successful exit is a successful run, with whatever result it reported.
        Some(0) if reported.is_none() => {}
        Some(0) => apply_reported(&mut result, reported, memory_exhausted),
        Some(exit_code) => {
            result.status = Status::Error;
            result.error = Some(ErrorInfo::new(
                ErrorKind::Exit,
                format!("the program exited with code {exit_code}"),
            ));
        }
    }
    result
}

fn apply_reported(
    result: &mut ExecutionResult,
    reported: Option<Reported>,
    memory_exhausted: bool,
) {
    let bytes = match reported {
        Some(Reported::Outcome(b)) => b,
        Some(Reported::TooLarge(n)) => {
            result.status = Status::Error;
            result.error = Some(ErrorInfo::new(
                ErrorKind::ResultTooLarge,
                format!(
                    "the result is {n} bytes of JSON, over this server's limit; return less, or print a summary"
                ),
            ));
            return;
        }
        None => {
            result.status = Status::Error;
            result.error = Some(ErrorInfo::new(
                ErrorKind::InternalError,
                "the guest ended without reporting a result",
            ));
            return;
        }
    };
    #[derive(serde::Deserialize)]
    struct GuestOutcome {
        ok: bool,
        #[serde(default)]
        result: serde_json::Value,
        #[serde(default)]
        error: Option<GuestError>,
    }
    /// The exception the program raised, as the guest reports it.
    #[derive(serde::Deserialize)]
    struct GuestError {
        #[serde(rename = "type")]
        name: String,
        message: String,
        #[serde(default)]
        traceback: Option<String>,
    }
    // JavaScript strings and Python str may hold lone surrogates, which JSON escapes but
    // serde (rightly) will not put in a Rust string: they become U+FFFD, as in any UTF-8 text.
    let parsed = serde_json::from_slice::<GuestOutcome>(&bytes).or_else(|e| {
        match replace_lone_surrogate_escapes(&bytes) {
            Some(repaired) => serde_json::from_slice::<GuestOutcome>(&repaired),
            None => Err(e),
        }
    });
    match parsed {
        Ok(GuestOutcome {
            ok: true,
            result: value,
            ..
        }) => result.result = value,
        Ok(GuestOutcome { error, .. }) => {
            let error = error.map_or_else(
                || ErrorInfo::raised("Error", "the program failed"),
                |e| ErrorInfo {
                    traceback: e.traceback,
                    ..ErrorInfo::raised(e.name, e.message)
                },
            );
            // Only the host knows whether memory ran out; the guest's word is not enough (a
            // program can throw an "out of memory" error of its own). QuickJS reports it as an
            // InternalError (or, when it cannot even allocate that error, by throwing `null`),
            // CPython as a MemoryError.
            let looks_like_oom = matches!(error.kind.as_str(), "InternalError" | "MemoryError")
                || error.message.contains("out of memory")
                || error.message == "Uncaught null";
            result.status = if memory_exhausted && looks_like_oom {
                Status::OutOfMemory
            } else {
                Status::Error
            };
            result.error = Some(error);
        }
        Err(e)
            if e.classify() == serde_json::error::Category::Syntax
                && e.to_string().contains("recursion limit") =>
        {
            result.status = Status::Error;
            result.error = Some(ErrorInfo::new(
                ErrorKind::ResultTooDeep,
                "the result nests more than 128 levels deep; flatten it or return it as a string",
            ));
        }
        Err(e) => {
            result.status = Status::Error;
            result.error = Some(ErrorInfo::new(
                ErrorKind::InternalError,
                format!("the guest reported a malformed outcome: {e}"),
            ));
        }
    }
}

/// `json` with every `\uXXXX` escape of a surrogate that is not half of a pair replaced by
/// `\ufffd`; `None` when there is none.
fn replace_lone_surrogate_escapes(json: &[u8]) -> Option<Vec<u8>> {
    fn unit_at(json: &[u8], at: usize) -> Option<u16> {
        let escape = json.get(at..at + 6)?;
        if escape[0] != b'\\' || escape[1] != b'u' {
            return None;
        }
        let hex = std::str::from_utf8(&escape[2..]).ok()?;
        u16::from_str_radix(hex, 16).ok()
    }
    let is_high = |u: u16| (0xD800..0xDC00).contains(&u);
    let is_low = |u: u16| (0xDC00..0xE000).contains(&u);
    let mut out = Vec::with_capacity(json.len());
    let mut changed = false;
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'\\' {
            out.push(json[i]);
            i += 1;
            continue;
        }
        match unit_at(json, i) {
            Some(high) if is_high(high) && unit_at(json, i + 6).is_some_and(is_low) => {
                out.extend_from_slice(&json[i..i + 12]);
                i += 12;
            }
            Some(unit) if is_high(unit) || is_low(unit) => {
                out.extend_from_slice(b"\\ufffd");
                changed = true;
                i += 6;
            }
            // Any other escape (`\\` included) is copied whole, so that its second
            // character is never read as the start of another escape.
            _ => {
                out.extend_from_slice(&json[i..(i + 2).min(json.len())]);
                i += 2;
            }
        }
    }
    changed.then_some(out)
}

fn classify_failure(
    e: &wasmtime::Error,
    memory_exhausted: bool,
    diagnostics: &str,
) -> (Status, ErrorInfo) {
    if let Some(i) = e.downcast_ref::<Interrupted>() {
        return match i {
            Interrupted::Deadline => (
                Status::Timeout,
                ErrorInfo::new(ErrorKind::Timeout, "the run exceeded its wall-clock limit"),
            ),
            Interrupted::Cancelled => (
                Status::Error,
                ErrorInfo::new(ErrorKind::Cancelled, "the run was cancelled by the client"),
            ),
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (
            Status::OutOfFuel,
            ErrorInfo::new(
                ErrorKind::OutOfFuel,
                "the run used up its CPU budget (fuel)",
            ),
        ),
        Some(Trap::StackOverflow) => (
            Status::Error,
            ErrorInfo::new(
                ErrorKind::RangeError,
                "Maximum call stack size exceeded (the sandbox's wasm stack limit was reached)",
            ),
        ),
        Some(_) if memory_exhausted => (
            Status::OutOfMemory,
            ErrorInfo::new(ErrorKind::OutOfMemory, "the run exceeded its memory limit"),
        ),
        Some(Trap::MemoryOutOfBounds) => (
            Status::Error,
            ErrorInfo::new(
                ErrorKind::RangeError,
                "Maximum call stack size exceeded (the guest runtime's stack overflowed into its \
                 heap, or it made another out-of-bounds access)",
            ),
        ),
        Some(trap) => {
            let detail = diagnostics.trim();
            let message = if detail.is_empty() {
                format!("the guest runtime crashed: {trap}")
            } else {
                format!("the guest runtime crashed: {trap}: {detail}")
            };
            (
                Status::Error,
                ErrorInfo::new(ErrorKind::GuestCrash, message),
            )
        }
        // E.g. instantiation refused because the guest's initial memory exceeds the limit.
        None if memory_exhausted => (
            Status::OutOfMemory,
            ErrorInfo::new(
                ErrorKind::OutOfMemory,
                format!("the run exceeded its memory limit: {e:#}"),
            ),
        ),
        None => (
            Status::Error,
            ErrorInfo::new(ErrorKind::InternalError, format!("the run failed: {e:#}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogate_escapes_become_replacement_characters() {
        let repaired = |s: &str| {
            replace_lone_surrogate_escapes(s.as_bytes()).map(|b| String::from_utf8(b).unwrap())
        };
        assert_eq!(repaired(r#""a\ud800b""#).as_deref(), Some(r#""a\ufffdb""#));
        assert_eq!(repaired(r#""\udc00""#).as_deref(), Some(r#""\ufffd""#));
        // A high surrogate followed by something else than a low one is lone too.
        assert_eq!(
            repaired(r#""\ud800\u0041""#).as_deref(),
            Some(r#""\ufffd\u0041""#)
        );
        // Pairs, other escapes and an escaped backslash before `u` are left alone.
        assert_eq!(repaired(r#""\ud83d\ude00 \n \u00e9""#), None);
        assert_eq!(repaired(r#""\\ud800""#), None);
        let s: serde_json::Value =
            serde_json::from_slice(&replace_lone_surrogate_escapes(br#"["\ud800"]"#).unwrap())
                .unwrap();
        assert_eq!(s[0], "\u{fffd}");
    }
}
