//! What every run shares, whatever the guest's form (core module or component): the request,
//! the per-run state with its limits, capped output, the store set-up (fuel, epoch deadline,
//! cancellation, memory limiter), and the mapping of every way a run can end (result,
//! exception, trap, exit, exhausted limit) to an [`ExecutionResult`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::capability::{FetchCapability, HttpRequest, HttpResponse};
use super::limiter::TotalMemoryLimiter;
use super::{CancelFlag, RunLimits};
use crate::outcome::{ErrorInfo, ExecutionResult, Status, Truncated, Usage};

/// What one run needs from its caller.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The program, as the guest evaluates it (already type-stripped for TypeScript).
    pub source: String,
    /// The call's `input`, as JSON text ("null" when absent).
    pub input_json: String,
    /// The file name the guest reports in tracebacks (`main.js`, `main.ts`, `main.py`).
    pub filename: String,
    pub limits: RunLimits,
    pub cancel: CancelFlag,
    pub fetch: FetchCapability,
}

/// The part of a run's store data that does not depend on the guest's form.
pub struct RunCore {
    pub limiter: TotalMemoryLimiter,
    pub stdout: SharedText,
    pub stderr: SharedText,
    pub reported: Option<Reported>,
    pub max_result_bytes: usize,
    /// The exit code a guest announced before exiting (WASI preview 2 cannot carry it).
    pub exit_code: Option<i32>,
    /// The guest's door out, and how often it was used.
    pub fetch: FetchCapability,
    pub fetches: u32,
    deadline: Instant,
    cancel: CancelFlag,
}

impl RunCore {
    pub fn new(limits: &RunLimits, cancel: CancelFlag, fetch: FetchCapability) -> RunCore {
        RunCore {
            limiter: TotalMemoryLimiter::new(limits.memory_bytes),
            stdout: SharedText::new(limits.stdout_bytes),
            stderr: SharedText::new(limits.stderr_bytes),
            reported: None,
            max_result_bytes: limits.max_result_bytes,
            exit_code: None,
            fetch,
            fetches: 0,
            deadline: limits.deadline,
            cancel,
        }
    }

    /// The guest's fetch, counted in the run's usage.
    pub fn fetch(&mut self, request: HttpRequest) -> Result<HttpResponse, String> {
        if self.cancel.is_cancelled() {
            return Err("the run was cancelled".into());
        }
        self.fetches = self.fetches.saturating_add(1);
        self.fetch.fetch(request)
    }

    /// Keeps the guest's outcome, unless it is larger than the limit.
    pub fn report(&mut self, outcome: &[u8]) {
        self.reported = Some(if outcome.len() > self.max_result_bytes {
            Reported::TooLarge(outcome.len())
        } else {
            Reported::Outcome(outcome.to_vec())
        });
    }
}

/// Store data that carries a [`RunCore`].
pub trait HasRunCore: Send + 'static {
    fn run_core(&mut self) -> &mut RunCore;
}

pub enum Reported {
    Outcome(Vec<u8>),
    TooLarge(usize),
}

/// Why the epoch callback stopped a run.
#[derive(Debug, thiserror::Error)]
enum Interrupted {
    #[error("the run's deadline passed")]
    Deadline,
    #[error("the run was cancelled")]
    Cancelled,
}

/// A store with the run's limits: memory limiter, fuel, and an epoch callback that stops the
/// guest once the deadline passes or the run is cancelled.
pub fn limited_store<S: HasRunCore>(
    engine: &Engine,
    state: S,
    fuel: u64,
) -> wasmtime::Result<Store<S>> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.run_core().limiter);
    store.set_fuel(fuel)?;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let core = ctx.data_mut().run_core();
        if core.cancel.is_cancelled() {
            return Err(wasmtime::Error::new(Interrupted::Cancelled));
        }
        if Instant::now() >= core.deadline {
            return Err(wasmtime::Error::new(Interrupted::Deadline));
        }
        Ok(UpdateDeadline::Continue(1))
    });
    Ok(store)
}

/// A byte buffer that keeps at most `cap` bytes and remembers that it dropped some.
struct CappedText {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl CappedText {
    fn new(cap: usize) -> Self {
        CappedText {
            bytes: Vec::new(),
            cap,
            truncated: false,
        }
    }

    /// Appends what fits; returns whether the buffer still accepts more.
    fn push(&mut self, data: &[u8]) -> bool {
        let room = self.room();
        if data.len() > room {
            self.bytes.extend_from_slice(&data[..room]);
            self.truncated = true;
        } else {
            self.bytes.extend_from_slice(data);
        }
        !self.truncated
    }

    fn room(&self) -> usize {
        self.cap.saturating_sub(self.bytes.len())
    }

    /// The text, cut back to the last whole UTF-8 character if the cap split one, and whether
    /// anything was dropped. Invalid bytes become U+FFFD, which is three bytes long: the text
    /// is cut again so that it stays within the cap.
    fn into_text(self) -> (String, bool) {
        let cap = self.cap;
        let mut truncated = self.truncated;
        let mut text = match String::from_utf8(self.bytes) {
            Ok(s) => s,
            Err(e) => {
                // `error_len() == None` is std's "the input ended inside a character": that
                // is the cap's cut, dropped; any other invalid byte is replaced.
                let cut_at_end = e.utf8_error().error_len().is_none();
                let valid = e.utf8_error().valid_up_to();
                let mut bytes = e.into_bytes();
                if cut_at_end {
                    bytes.truncate(valid);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
        };
        if text.len() > cap {
            let mut end = cap;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            truncated = true;
        }
        (text, truncated)
    }
}

/// A [`CappedText`] shared between the store and the WASI output streams that write into it.
#[derive(Clone)]
pub struct SharedText(Arc<Mutex<CappedText>>);

impl SharedText {
    pub fn new(cap: usize) -> Self {
        SharedText(Arc::new(Mutex::new(CappedText::new(cap))))
    }

    /// Appends what fits; returns whether the stream still accepts more.
    pub fn push(&self, data: &[u8]) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(data)
    }

    /// Room left before the cap.
    pub fn room(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).room()
    }

    fn take(&self) -> (String, bool) {
        let mut text = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = std::mem::replace(&mut *text, CappedText::new(0));
        taken.into_text()
    }
}

/// Instantiates a guest once, without running it, under `limits`: a memory limit too small
/// for the guest's own snapshot then fails at start-up instead of on every call.
pub fn check_instantiates<S: HasRunCore, I>(
    engine: &Engine,
    state: S,
    limits: &RunLimits,
    instantiate: impl FnOnce(&mut Store<S>) -> wasmtime::Result<I>,
) -> wasmtime::Result<()> {
    let mut store = limited_store(engine, state, u64::MAX)?;
    match instantiate(&mut store) {
        Ok(_) => Ok(()),
        Err(_) if store.data_mut().run_core().limiter.exhausted() => Err(wasmtime::format_err!(
            "limits.memory_bytes ({}) is too small for the guest to even start",
            limits.memory_bytes
        )),
        Err(e) => Err(e),
    }
}

/// A result for a run that could not even start; never a panic.
pub fn internal_failure(message: String) -> ExecutionResult {
    tracing::error!("{message}");
    ExecutionResult::without_run(Status::Error, ErrorInfo::new("InternalError", message))
}

/// Turns the end of a run into its result. `diagnostics` is what the guest runtime itself
/// printed (e.g. a panic message), used to explain a crash.
pub fn finish<S: HasRunCore>(
    mut store: Store<S>,
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
    drop(store);

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
                "Exit",
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
                "ResultTooLarge",
                format!(
                    "the result is {n} bytes of JSON, over this server's limit; return less, or print a summary"
                ),
            ));
            return;
        }
        None => {
            result.status = Status::Error;
            result.error = Some(ErrorInfo::new(
                "InternalError",
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
        error: Option<ErrorInfo>,
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
            let error = error.unwrap_or_else(|| ErrorInfo::new("Error", "the program failed"));
            // Only the host knows whether memory ran out; the guest's word is not enough (a
            // program can throw an "out of memory" error of its own).
            let looks_like_oom = error.kind == "InternalError"
                || error.kind == "MemoryError"
                || error.message.contains("out of memory");
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
                "ResultTooDeep",
                "the result nests more than 128 levels deep; flatten it or return it as a string",
            ));
        }
        Err(e) => {
            result.status = Status::Error;
            result.error = Some(ErrorInfo::new(
                "InternalError",
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
                ErrorInfo::new("Timeout", "the run exceeded its wall-clock limit"),
            ),
            Interrupted::Cancelled => (
                Status::Error,
                ErrorInfo::new("Cancelled", "the run was cancelled by the client"),
            ),
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (
            Status::OutOfFuel,
            ErrorInfo::new("OutOfFuel", "the run used up its CPU budget (fuel)"),
        ),
        Some(Trap::StackOverflow) => (
            Status::Error,
            ErrorInfo::new(
                "RangeError",
                "Maximum call stack size exceeded (the sandbox's wasm stack limit was reached)",
            ),
        ),
        Some(_) if memory_exhausted => (
            Status::OutOfMemory,
            ErrorInfo::new("OutOfMemory", "the run exceeded its memory limit"),
        ),
        Some(Trap::MemoryOutOfBounds) => (
            Status::Error,
            ErrorInfo::new(
                "RangeError",
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
            (Status::Error, ErrorInfo::new("GuestCrash", message))
        }
        // E.g. instantiation refused because the guest's initial memory exceeds the limit.
        None if memory_exhausted => (
            Status::OutOfMemory,
            ErrorInfo::new(
                "OutOfMemory",
                format!("the run exceeded its memory limit: {e:#}"),
            ),
        ),
        None => (
            Status::Error,
            ErrorInfo::new("InternalError", format!("the run failed: {e:#}")),
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

    #[test]
    fn capped_text_keeps_the_prefix_and_flags_truncation() {
        let mut t = CappedText::new(5);
        assert!(t.push(b"abc"));
        assert!(!t.push(b"defgh"));
        assert!(t.truncated);
        assert_eq!(t.into_text(), ("abcde".to_string(), true));
    }

    #[test]
    fn capped_text_does_not_split_a_character() {
        let mut t = CappedText::new(4);
        t.push("ab€".as_bytes()); // € is 3 bytes: only one fits
        assert_eq!(t.into_text(), ("ab".to_string(), true));
    }

    #[test]
    fn invalid_bytes_replaced_still_fit_the_cap() {
        // Each invalid byte becomes U+FFFD (3 bytes): 8 bytes in would be 24 out.
        let mut t = CappedText::new(8);
        assert!(t.push(&[0xff; 8]));
        let (text, truncated) = t.into_text();
        assert!(text.len() <= 8, "{} bytes", text.len());
        assert_eq!(text, "\u{fffd}\u{fffd}");
        assert!(truncated, "what no longer fits is reported as dropped");
    }

    #[test]
    fn capped_text_exactly_full_is_not_truncated() {
        let mut t = CappedText::new(3);
        assert!(t.push(b"abc"));
        assert!(!t.truncated);
        assert_eq!(t.room(), 0);
    }
}
