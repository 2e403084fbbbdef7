//! What every run shares, whatever the guest's form (core module or component): the request,
//! the per-run state with its limits, capped output, and the store set-up (fuel, memory
//! limiter); `drive.rs` runs a guest call while watching its deadline and cancellation. How a
//! run ends is mapped in `ending.rs`.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use wasmtime::{Engine, Store};

use super::capability::{
    FetchCapability, HttpRequest, HttpResponse, ToolsCapability, WorkspaceCapability,
};
use super::drive::{FUEL_BETWEEN_CHECKS, Stop, drive};
use super::limiter::TotalMemoryLimiter;
use super::{CancelFlag, RunLimits};

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
    pub workspace: WorkspaceCapability,
    pub tools: ToolsCapability,
    /// Where the run's stdout can be read while it runs (a task's progress).
    pub output: OutputWatch,
}

/// A window on a run's stdout while it runs: the last line the program printed.
#[derive(Clone, Default)]
pub struct OutputWatch(Arc<Mutex<Option<SharedText>>>);

impl std::fmt::Debug for OutputWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputWatch")
    }
}

impl OutputWatch {
    fn attach(&self, stdout: &SharedText) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(stdout.clone());
    }

    /// The last whole line the run printed (not a line still being written; at most the last
    /// 4 KiB of the output); `None` before the first.
    pub fn last_line(&self) -> Option<String> {
        let stdout = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let text = stdout.0.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes = &text.bytes;
        let end = bytes.iter().rposition(|&b| b == b'\n')?;
        // Only the end is looked at: blank lines after the last one are skipped.
        let whole = &bytes[end.saturating_sub(4096)..end];
        let line = whole
            .split(|&b| b == b'\n')
            .rev()
            .map(String::from_utf8_lossy)
            .find(|line| !line.trim().is_empty())?;
        Some(line.trim().to_string())
    }
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
    workspace: WorkspaceCapability,
    tools: ToolsCapability,
    stop: Stop,
}

impl RunCore {
    pub fn new(request: &RunRequest) -> RunCore {
        let limits = &request.limits;
        let stdout = SharedText::new(limits.stdout_bytes);
        request.output.attach(&stdout);
        RunCore {
            limiter: TotalMemoryLimiter::new(limits.memory_bytes),
            stdout,
            stderr: SharedText::new(limits.stderr_bytes),
            reported: None,
            max_result_bytes: limits.max_result_bytes,
            exit_code: None,
            fetch: request.fetch.clone(),
            fetches: 0,
            workspace: request.workspace.clone(),
            tools: request.tools.clone(),
            stop: Stop::new(limits.deadline, request.cancel.clone()),
        }
    }

    /// A core with no fetch, workspace or tools (checking that a guest instantiates).
    pub fn without_doors(limits: &RunLimits) -> RunCore {
        RunCore::new(&RunRequest {
            source: String::new(),
            input_json: String::new(),
            filename: String::new(),
            limits: limits.clone(),
            cancel: CancelFlag::new(),
            fetch: FetchCapability::default(),
            workspace: WorkspaceCapability::default(),
            tools: ToolsCapability::default(),
            output: OutputWatch::default(),
        })
    }

    /// Makes this core the next call's, on an instance kept between calls (a session): its
    /// output, result, usage and doors are that call's alone.
    fn begin_call(&mut self, request: &RunRequest) {
        self.limiter.begin_call(request.limits.memory_bytes);
        self.stdout.reset(request.limits.stdout_bytes);
        request.output.attach(&self.stdout);
        self.stderr.reset(request.limits.stderr_bytes);
        self.reported = None;
        self.max_result_bytes = request.limits.max_result_bytes;
        self.exit_code = None;
        self.fetch = request.fetch.clone();
        self.fetches = 0;
        self.workspace = request.workspace.clone();
        self.tools = request.tools.clone();
        self.stop = Stop::new(request.limits.deadline, request.cancel.clone());
    }

    /// Traps when the run must end: checked before each door that may wait (fetch, files,
    /// tools), so that a stopped run opens none, and after it, so that a run whose deadline
    /// passed meanwhile, or that was cancelled, ends there rather than go on with the answer
    /// until its next fuel slice.
    fn check_stop(&self) -> wasmtime::Result<()> {
        self.stop.check().map_err(wasmtime::Error::new)
    }

    /// When the current call must stop, for [`drive`].
    pub fn stop(&self) -> Stop {
        self.stop.clone()
    }

    /// The guest's fetch, counted in the run's usage.
    /// The outer `Err` is the run's stop (see [`RunCore::check_stop`]); each door below too.
    pub fn fetch(
        &mut self,
        request: HttpRequest,
    ) -> wasmtime::Result<Result<HttpResponse, String>> {
        self.check_stop()?;
        self.fetches = self.fetches.saturating_add(1);
        let response = self.fetch.fetch(request);
        self.check_stop()?;
        Ok(response)
    }

    /// The guest's file call (see [`WorkspaceCapability`]).
    pub fn file_call(
        &mut self,
        request: &[u8],
        data: &[u8],
    ) -> wasmtime::Result<(String, Vec<u8>)> {
        self.check_stop()?;
        let answer = self.workspace.call(request, data);
        self.check_stop()?;
        Ok(answer)
    }

    /// The guest's call to an upstream tool (see [`ToolsCapability`]). Time the call spent
    /// waiting for a person moves the run's deadline: an approval is not the code's time.
    pub fn tool_call(&mut self, request: &str) -> wasmtime::Result<String> {
        self.check_stop()?;
        let answer = self.tools.call(request);
        self.stop.postpone(answer.paused);
        self.check_stop()?;
        Ok(answer.json)
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

/// A store with the run's limits: memory limiter and fuel. The guest yields every
/// [`FUEL_BETWEEN_CHECKS`] units of fuel, so that [`drive`] can stop it at its deadline or on
/// cancellation: that is cheaper than epoch checks, which Cranelift puts at every function
/// entry and loop header beside fuel's own (8-15% of compute, docs/benchmarks.md).
pub fn limited_store<S: HasRunCore>(
    engine: &Engine,
    state: S,
    fuel: u64,
) -> wasmtime::Result<Store<S>> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.run_core().limiter);
    store.set_fuel(fuel)?;
    store.fuel_async_yield_interval(Some(FUEL_BETWEEN_CHECKS))?;
    Ok(store)
}

/// [`drive`] for a store's current call.
pub fn drive_in<'store, S: HasRunCore, T, F>(
    store: &'store mut Store<S>,
    call: impl FnOnce(&'store mut Store<S>) -> F,
) -> wasmtime::Result<T>
where
    F: Future<Output = wasmtime::Result<T>> + 'store,
{
    let stop = store.data_mut().run_core().stop();
    drive(&stop, call(store))
}

/// Gives a kept store the next call's limits: its fuel, its deadline and a fresh [`RunCore`]
/// state (see [`RunCore::begin_call`]).
pub fn begin_call<S: HasRunCore>(
    store: &mut Store<S>,
    request: &RunRequest,
) -> wasmtime::Result<()> {
    store.data_mut().run_core().begin_call(request);
    store.set_fuel(request.limits.fuel)?;
    Ok(())
}

/// Makes a spare (an instance made ahead of time, never run) the store of `request`'s run, as
/// [`begin_call`] does for a kept one. `false` when the memory the instance holds is already
/// over the request's limit: then the run must start its own instance (and fail as it would).
pub fn adopt<S: HasRunCore>(store: &mut Store<S>, request: &RunRequest) -> wasmtime::Result<bool> {
    if !store
        .data_mut()
        .run_core()
        .limiter
        .fits(request.limits.memory_bytes)
    {
        return Ok(false);
    }
    begin_call(store, request)?;
    Ok(true)
}

/// Placeholder limits of a spare until a call adopts it: it only instantiates.
pub fn spare_limits(max_memory_bytes: usize) -> RunLimits {
    RunLimits {
        fuel: u64::MAX,
        memory_bytes: u64::try_from(max_memory_bytes).unwrap_or(u64::MAX),
        stdout_bytes: 0,
        stderr_bytes: 0,
        max_result_bytes: 0,
        deadline: Instant::now() + std::time::Duration::from_secs(24 * 3600),
    }
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

    /// Empties the buffer and gives it a new cap (the next call of a session).
    pub fn reset(&self, cap: usize) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = CappedText::new(cap);
    }

    /// Room left before the cap.
    pub fn room(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).room()
    }

    pub(super) fn take(&self) -> (String, bool) {
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
#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_watch_shows_the_last_whole_line_shortened() {
        let watch = OutputWatch::default();
        assert_eq!(watch.last_line(), None);
        let stdout = SharedText::new(1 << 20);
        watch.attach(&stdout);
        stdout.push(b"half a li");
        assert_eq!(watch.last_line(), None, "a line being written is not shown");
        stdout.push(b"ne\n  rows: 10  \n\nrows: 2");
        assert_eq!(watch.last_line().as_deref(), Some("rows: 10"));
        stdout.push(b"0\n");
        assert_eq!(watch.last_line().as_deref(), Some("rows: 20"));
        stdout.push(&[b'x'; 5000]);
        stdout.push("é\n".as_bytes());
        let long = watch.last_line().unwrap();
        assert!(long.len() <= 4096 && long.ends_with('é'), "{}", long.len());
    }
}
