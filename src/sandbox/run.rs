//! One run: a fresh store with its limits, the `warden` host imports, and the mapping of every
//! way a run can end (result, exception, trap, exit, exhausted limit) to an [`ExecutionResult`].

use std::time::Instant;

use wasmtime::error::Context as _;
use wasmtime::{Caller, Engine, Extern, InstancePre, Linker, Memory, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::limiter::TotalMemoryLimiter;
use super::{CancelFlag, RunLimits};
use crate::outcome::{ErrorInfo, ExecutionResult, Status, Truncated, Usage};

/// Guest-side stderr (not the program's `console.error`, which goes through `warden.output`)
/// only ever carries a Rust panic message; a little of it is kept to explain a crash.
const GUEST_DIAGNOSTICS_BYTES: usize = 16 * 1024;

/// WASI preview 1 `errno::notsup`.
const ERRNO_NOTSUP: u32 = 58;

/// What one run needs from its caller.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The program, as the guest evaluates it (already type-stripped for TypeScript).
    pub source: String,
    /// The call's `input`, as JSON text ("null" when absent).
    pub input_json: String,
    /// The file name the guest reports in tracebacks (`main.js`, `main.ts`).
    pub filename: String,
    pub limits: RunLimits,
    pub cancel: CancelFlag,
}

/// Store data of one run.
pub struct RunState {
    wasi: WasiP1Ctx,
    limiter: TotalMemoryLimiter,
    request_fields: [Vec<u8>; 3],
    stdout: CappedText,
    stderr: CappedText,
    reported: Option<Reported>,
    max_result_bytes: usize,
    deadline: Instant,
    cancel: CancelFlag,
}

enum Reported {
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
        let room = self.cap.saturating_sub(self.bytes.len());
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
                let valid = e.utf8_error().valid_up_to();
                let mut bytes = e.into_bytes();
                if e_is_cut_at_end(&bytes, valid) {
                    bytes.truncate(valid);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }
}

fn e_is_cut_at_end(bytes: &[u8], valid: usize) -> bool {
    // A character split by the cap leaves fewer than 4 bytes after the last valid boundary.
    bytes.len() - valid < 4 && std::str::from_utf8(&bytes[valid..]).is_err()
}

pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<RunState>> {
    let mut linker: Linker<RunState> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut RunState| &mut s.wasi)
        .context("adding WASI to the linker")?;
    // WASI's poll_oneoff sleeps on the host thread, where the epoch deadline cannot interrupt
    // it: a guest could outlive its deadline. No guest needs to sleep, so it is not supported.
    linker.allow_shadowing(true);
    linker
        .func_wrap(
            "wasi_snapshot_preview1",
            "poll_oneoff",
            |_: Caller<'_, RunState>, _: u32, _: u32, _: u32, _: u32| -> u32 { ERRNO_NOTSUP },
        )
        .context("replacing poll_oneoff")?;
    linker.allow_shadowing(false);
    linker
        .func_wrap("warden", "request_len", host_request_len)
        .and_then(|l| l.func_wrap("warden", "request_read", host_request_read))
        .and_then(|l| l.func_wrap("warden", "output", host_output))
        .and_then(|l| l.func_wrap("warden", "set_result", host_set_result))
        .context("defining the warden host imports")?;
    Ok(linker)
}

fn guest_memory(caller: &mut Caller<'_, RunState>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(wasmtime::format_err!("the guest exports no memory")),
    }
}

fn request_field(state: &RunState, field: u32) -> wasmtime::Result<&[u8]> {
    state
        .request_fields
        .get(field as usize)
        .map(Vec::as_slice)
        .ok_or_else(|| wasmtime::format_err!("the guest asked for unknown request field {field}"))
}

fn host_request_len(caller: Caller<'_, RunState>, field: u32) -> wasmtime::Result<u32> {
    let len = request_field(caller.data(), field)?.len();
    u32::try_from(len).map_err(|_| wasmtime::format_err!("request field {field} is too large"))
}

fn host_request_read(
    mut caller: Caller<'_, RunState>,
    field: u32,
    dst: u32,
) -> wasmtime::Result<()> {
    let memory = guest_memory(&mut caller)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let src = request_field(state, field)?;
    let start = dst as usize;
    let target = data
        .get_mut(start..start.saturating_add(src.len()))
        .ok_or_else(|| wasmtime::format_err!("request_read: destination out of bounds"))?;
    target.copy_from_slice(src);
    Ok(())
}

fn guest_bytes(
    data: &[u8],
    ptr: u32,
    len: u32,
    what: &str,
) -> wasmtime::Result<std::ops::Range<usize>> {
    let start = ptr as usize;
    let end = start.saturating_add(len as usize);
    if end > data.len() {
        return Err(wasmtime::format_err!("{what}: buffer out of bounds"));
    }
    Ok(start..end)
}

fn host_output(
    mut caller: Caller<'_, RunState>,
    stream: u32,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<u32> {
    let memory = guest_memory(&mut caller)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let range = guest_bytes(data, ptr, len, "output")?;
    let sink = match stream {
        1 => &mut state.stdout,
        2 => &mut state.stderr,
        other => return Err(wasmtime::format_err!("output: unknown stream {other}")),
    };
    // Copy only what fits: a 10 MB print costs 1 MB of host memory, not 10.
    let keep = range.len().min(sink.room().saturating_add(1));
    let accepting = sink.push(&data[range.start..range.start + keep]);
    Ok(u32::from(accepting))
}

fn host_set_result(mut caller: Caller<'_, RunState>, ptr: u32, len: u32) -> wasmtime::Result<()> {
    let memory = guest_memory(&mut caller)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let range = guest_bytes(data, ptr, len, "set_result")?;
    state.reported = Some(if range.len() > state.max_result_bytes {
        Reported::TooLarge(range.len())
    } else {
        Reported::Outcome(data[range].to_vec())
    });
    Ok(())
}

/// Instantiates `pre` once (without running it) under a `memory_bytes` limit, so that a limit
/// too small for the guest's own snapshot fails at start-up instead of on every call.
pub fn check_instantiates(
    engine: &Engine,
    pre: &InstancePre<RunState>,
    memory_bytes: u64,
) -> wasmtime::Result<()> {
    let state = RunState {
        wasi: WasiCtxBuilder::new().build_p1(),
        limiter: TotalMemoryLimiter::new(memory_bytes),
        request_fields: Default::default(),
        stdout: CappedText::new(0),
        stderr: CappedText::new(0),
        reported: None,
        max_result_bytes: 0,
        deadline: Instant::now(),
        cancel: CancelFlag::new(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_fuel(u64::MAX)?;
    match pre.instantiate(&mut store) {
        Ok(_) => Ok(()),
        Err(_) if store.data().limiter.exhausted() => Err(wasmtime::format_err!(
            "limits.memory_bytes ({memory_bytes}) is too small for the guest to even start"
        )),
        Err(e) => Err(e),
    }
}

/// A result for a run that could not even start; never a panic.
pub fn internal_failure(message: String) -> ExecutionResult {
    tracing::error!("{message}");
    ExecutionResult::without_run(Status::Error, ErrorInfo::new("InternalError", message))
}

pub fn execute(
    engine: &Engine,
    pre: &InstancePre<RunState>,
    request: RunRequest,
) -> ExecutionResult {
    let started = Instant::now();
    let limits = request.limits.clone();
    let diagnostics = MemoryOutputPipe::new(GUEST_DIAGNOSTICS_BYTES);
    // Deny by default: no preopens, no environment, no inherited stdio, no sockets.
    let wasi = WasiCtxBuilder::new()
        .arg(&request.filename)
        .stderr(diagnostics.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build_p1();
    let state = RunState {
        wasi,
        limiter: TotalMemoryLimiter::new(limits.memory_bytes),
        request_fields: [
            request.source.into_bytes(),
            request.input_json.into_bytes(),
            request.filename.into_bytes(),
        ],
        stdout: CappedText::new(limits.stdout_bytes),
        stderr: CappedText::new(limits.stderr_bytes),
        reported: None,
        max_result_bytes: limits.max_result_bytes,
        deadline: limits.deadline,
        cancel: request.cancel,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    if let Err(e) = store.set_fuel(limits.fuel) {
        return finish(store, Err(e), &diagnostics, started, limits.fuel);
    }
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|ctx| {
        let state = ctx.data();
        if state.cancel.is_cancelled() {
            return Err(wasmtime::Error::new(Interrupted::Cancelled));
        }
        if Instant::now() >= state.deadline {
            return Err(wasmtime::Error::new(Interrupted::Deadline));
        }
        Ok(UpdateDeadline::Continue(1))
    });

    let outcome = pre
        .instantiate(&mut store)
        .and_then(|instance| instance.get_typed_func::<(), ()>(&mut store, "_start"))
        .and_then(|start| start.call(&mut store, ()));
    finish(store, outcome, &diagnostics, started, limits.fuel)
}

fn finish(
    mut store: Store<RunState>,
    outcome: wasmtime::Result<()>,
    diagnostics: &MemoryOutputPipe,
    started: Instant,
    fuel_limit: u64,
) -> ExecutionResult {
    let fuel_left = store.get_fuel().unwrap_or(0);
    let state = store.data_mut();
    let usage = Usage {
        wall_ms: started.elapsed().as_millis() as u64,
        fuel: fuel_limit.saturating_sub(fuel_left),
        memory_peak_bytes: state.limiter.peak_bytes(),
        fetches: 0,
    };
    let memory_exhausted = state.limiter.exhausted();
    let reported = state.reported.take();
    let stdout = std::mem::replace(&mut state.stdout, CappedText::new(0));
    let stderr = std::mem::replace(&mut state.stderr, CappedText::new(0));
    drop(store);

    let truncated = Truncated {
        stdout: stdout.truncated,
        stderr: stderr.truncated,
    };
    let mut result = ExecutionResult {
        status: Status::Ok,
        stdout: stdout.into_string(),
        stderr: stderr.into_string(),
        truncated,
        result: serde_json::Value::Null,
        error: None,
        usage,
        policy: None,
    };

    let exit_code = match &outcome {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
            Some(exit) => exit.0,
            None => {
                let (status, error) = classify_failure(e, memory_exhausted, diagnostics);
                result.status = status;
                result.error = Some(error);
                return result;
            }
        },
    };
    if exit_code == 0 {
        apply_reported(&mut result, reported, memory_exhausted);
    } else {
        result.status = Status::Error;
        result.error = Some(ErrorInfo::new(
            "Exit",
            format!("the program exited with code {exit_code}"),
        ));
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
            let looks_like_oom =
                error.kind == "InternalError" || error.message.contains("out of memory");
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
    diagnostics: &MemoryOutputPipe,
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
            let detail = String::from_utf8_lossy(&diagnostics.contents())
                .trim()
                .to_string();
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
