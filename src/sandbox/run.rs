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

    /// The text, cut back to the last whole UTF-8 character if the cap split one.
    fn into_string(self) -> String {
        match String::from_utf8(self.bytes) {
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
        }
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
        let truncated = taken.truncated;
        (taken.into_string(), truncated)
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
    match serde_json::from_slice::<GuestOutcome>(&bytes) {
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
    fn capped_text_keeps_the_prefix_and_flags_truncation() {
        let mut t = CappedText::new(5);
        assert!(t.push(b"abc"));
        assert!(!t.push(b"defgh"));
        assert!(t.truncated);
        assert_eq!(t.into_string(), "abcde");
    }

    #[test]
    fn capped_text_does_not_split_a_character() {
        let mut t = CappedText::new(4);
        t.push("ab€".as_bytes()); // € is 3 bytes: only one fits
        assert_eq!(t.into_string(), "ab");
    }

    #[test]
    fn capped_text_exactly_full_is_not_truncated() {
        let mut t = CappedText::new(3);
        assert!(t.push(b"abc"));
        assert!(!t.truncated);
        assert_eq!(t.room(), 0);
    }
}
