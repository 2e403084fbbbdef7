//! Guests in core-module form (the JavaScript guest): WASI preview 1 plus the `warden` imports
//! of guest-runtimes/ABI.md, every pointer and length checked against the guest's memory.

use wasmtime::error::Context as _;
use wasmtime::{Caller, Engine, Extern, Instance, InstancePre, Linker, Memory, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::capability::{HttpRequest, encode_frame};
use super::run::{HasRunCore, RunCore, RunRequest, adopt, drive_in, limited_store};
use super::session::{Kept, KeptForm, run_kept};
use super::{RunLimits, SessionRun};
use crate::contract::ExecutionResult;

/// Guest-side stderr (not the program's `console.error`, which goes through `warden.output`)
/// only ever carries a Rust panic message; a little of it is kept to explain a crash.
const GUEST_DIAGNOSTICS_BYTES: usize = 16 * 1024;

/// WASI preview 1 `errno::notsup`.
const ERRNO_NOTSUP: u32 = 58;

/// Store data of a core-module run.
pub struct CoreState {
    wasi: WasiP1Ctx,
    request_fields: [Vec<u8>; 3],
    /// The last fetch's or file call's answer frame, until the guest reads it.
    reply: Vec<u8>,
    /// The guest runtime's own stderr (a panic message), to explain a crash.
    diagnostics: MemoryOutputPipe,
    run: RunCore,
}

impl HasRunCore for CoreState {
    fn run_core(&mut self) -> &mut RunCore {
        &mut self.run
    }
}

pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<CoreState>> {
    let mut linker: Linker<CoreState> = Linker::new(engine);
    // WASI's async functions, polled inside the run's async call: the sync ones block on the
    // tokio runtime, which panics on the async worker where a run starts (`drive.rs`).
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut CoreState| &mut s.wasi)
        .context("adding WASI to the linker")?;
    // WASI's poll_oneoff sleeps on the host thread, where the deadline cannot interrupt it: a
    // guest could outlive its deadline. No guest needs to sleep, so it is not supported.
    linker.allow_shadowing(true);
    linker
        .func_wrap(
            "wasi_snapshot_preview1",
            "poll_oneoff",
            |_: Caller<'_, CoreState>, _: u32, _: u32, _: u32, _: u32| -> u32 { ERRNO_NOTSUP },
        )
        .context("replacing poll_oneoff")?;
    linker.allow_shadowing(false);
    linker
        .func_wrap("warden", "request_len", host_request_len)
        .and_then(|l| l.func_wrap("warden", "request_read", host_request_read))
        .and_then(|l| l.func_wrap("warden", "output", host_output))
        .and_then(|l| l.func_wrap("warden", "set_result", host_set_result))
        .and_then(|l| l.func_wrap("warden", "fetch", host_fetch))
        .and_then(|l| l.func_wrap("warden", "fetch_read", host_read_reply))
        .and_then(|l| l.func_wrap("warden", "workspace", host_workspace))
        .and_then(|l| l.func_wrap("warden", "workspace_read", host_read_reply))
        .and_then(|l| l.func_wrap("warden", "tools", host_tools))
        .and_then(|l| l.func_wrap("warden", "tools_read", host_read_reply))
        .context("defining the warden host imports")?;
    Ok(linker)
}

fn guest_memory(caller: &mut Caller<'_, CoreState>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => Err(wasmtime::format_err!("the guest exports no memory")),
    }
}

fn request_field(state: &CoreState, field: u32) -> wasmtime::Result<&[u8]> {
    state
        .request_fields
        .get(field as usize)
        .map(Vec::as_slice)
        .ok_or_else(|| wasmtime::format_err!("the guest asked for unknown request field {field}"))
}

fn host_request_len(caller: Caller<'_, CoreState>, field: u32) -> wasmtime::Result<u32> {
    let len = request_field(caller.data(), field)?.len();
    u32::try_from(len).map_err(|_| wasmtime::format_err!("request field {field} is too large"))
}

fn host_request_read(
    mut caller: Caller<'_, CoreState>,
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
    mut caller: Caller<'_, CoreState>,
    stream: u32,
    ptr: u32,
    len: u32,
) -> wasmtime::Result<u32> {
    let memory = guest_memory(&mut caller)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let range = guest_bytes(data, ptr, len, "output")?;
    let sink = match stream {
        1 => &state.run.stdout,
        2 => &state.run.stderr,
        other => return Err(wasmtime::format_err!("output: unknown stream {other}")),
    };
    // Copy only what fits: a 10 MB print costs 1 MB of host memory, not 10.
    let keep = range.len().min(sink.room().saturating_add(1));
    let accepting = sink.push(&data[range.start..range.start + keep]);
    Ok(u32::from(accepting))
}

fn host_set_result(mut caller: Caller<'_, CoreState>, ptr: u32, len: u32) -> wasmtime::Result<()> {
    let memory = guest_memory(&mut caller)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let range = guest_bytes(data, ptr, len, "set_result")?;
    state.run.report(&data[range]);
    Ok(())
}

/// Sends the request frame at `ptr..ptr+len` and keeps the response frame for `fetch_read`;
/// returns its length. A malformed request is an error response, not a trap.
fn host_fetch(mut caller: Caller<'_, CoreState>, ptr: u32, len: u32) -> wasmtime::Result<u32> {
    let memory = guest_memory(&mut caller)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let range = guest_bytes(data, ptr, len, "fetch")?;
    let request = super::capability::decode_frame(&data[range]).and_then(|(head, body)| {
        let mut request: HttpRequest =
            serde_json::from_slice(head).map_err(|e| format!("malformed fetch request: {e}"))?;
        request.body = body.to_vec();
        Ok(request)
    });
    let response = match request {
        Ok(request) => state.run.fetch(request)?,
        Err(malformed) => Err(malformed),
    };
    state.reply = match response {
        Ok(response) => {
            let mut head = serde_json::to_value(&response).unwrap_or_default();
            head["ok"] = serde_json::Value::Bool(true);
            encode_frame(head.to_string().as_bytes(), &response.body)
        }
        Err(error) => encode_frame(
            serde_json::json!({"ok": false, "error": error})
                .to_string()
                .as_bytes(),
            &[],
        ),
    };
    u32::try_from(state.reply.len())
        .map_err(|_| wasmtime::format_err!("fetch: the response is too large"))
}

/// A file call: the frame at `ptr..ptr+len` is the request's JSON head and the bytes of a
/// write; the answer frame (JSON head, bytes of a read) waits for `workspace_read`.
fn host_workspace(mut caller: Caller<'_, CoreState>, ptr: u32, len: u32) -> wasmtime::Result<u32> {
    let memory = guest_memory(&mut caller)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let range = guest_bytes(data, ptr, len, "workspace")?;
    let (answer, bytes) = match super::capability::decode_frame(&data[range]) {
        Ok((head, body)) => state.run.file_call(head, body)?,
        Err(e) => (
            serde_json::json!({"ok": false, "code": "EINVAL", "message": e}).to_string(),
            Vec::new(),
        ),
    };
    state.reply = encode_frame(answer.as_bytes(), &bytes);
    u32::try_from(state.reply.len())
        .map_err(|_| wasmtime::format_err!("workspace: the answer is too large"))
}

/// A call to an upstream tool (or discovery): the JSON request at `ptr..ptr+len`; the JSON
/// answer waits for `tools_read`.
fn host_tools(mut caller: Caller<'_, CoreState>, ptr: u32, len: u32) -> wasmtime::Result<u32> {
    let memory = guest_memory(&mut caller)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let range = guest_bytes(data, ptr, len, "tools")?;
    let answer = match std::str::from_utf8(&data[range]) {
        Ok(request) => state.run.tool_call(request)?,
        Err(_) => r#"{"ok":false,"kind":"invalid","message":"the request is not UTF-8"}"#.into(),
    };
    state.reply = answer.into_bytes();
    u32::try_from(state.reply.len())
        .map_err(|_| wasmtime::format_err!("tools: the answer is too large"))
}

/// Copies the pending answer frame (of `fetch` or `workspace`, or a tool's answer) to `dst`.
fn host_read_reply(mut caller: Caller<'_, CoreState>, dst: u32) -> wasmtime::Result<()> {
    let memory = guest_memory(&mut caller)?;
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let frame = std::mem::take(&mut state.reply);
    let start = dst as usize;
    let target = data
        .get_mut(start..start.saturating_add(frame.len()))
        .ok_or_else(|| wasmtime::format_err!("reading a reply: destination out of bounds"))?;
    target.copy_from_slice(&frame);
    Ok(())
}

/// Deny by default: no preopens, no environment, no inherited stdio, no sockets.
fn wasi_context(filename: &str, diagnostics: &MemoryOutputPipe) -> WasiP1Ctx {
    WasiCtxBuilder::new()
        .arg(filename)
        .stderr(diagnostics.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build_p1()
}

/// Runs `request` in a fresh instance: `spare` (made ahead of time, never run) when there is
/// one that fits, else a new one. Returns the result and the spent instance, to be torn down
/// off the call's path.
pub fn execute(
    engine: &Engine,
    pre: &InstancePre<CoreState>,
    spare: Option<CoreSession>,
    request: RunRequest,
) -> (ExecutionResult, Option<CoreSession>) {
    let mut spent = None;
    let run = run_in(engine, pre, &mut spent, spare, request, START_EXPORT);
    (run.result, spent)
}

/// [`execute`] without spares, letting `inspect` look at the instance once `_start` has
/// returned or trapped, before the store goes (see `Sandbox::run_core_module`).
#[cfg(any(test, feature = "fuzzing"))]
pub fn execute_and_inspect(
    engine: &Engine,
    pre: &InstancePre<CoreState>,
    request: RunRequest,
    inspect: impl FnOnce(&mut Store<CoreState>, &Instance),
) -> ExecutionResult {
    let started = std::time::Instant::now();
    let fuel = request.limits.fuel;
    let diagnostics = MemoryOutputPipe::new(GUEST_DIAGNOSTICS_BYTES);
    let mut store = match limited_store(engine, new_state(request, &diagnostics), fuel) {
        Ok(store) => store,
        Err(e) => return ExecutionResult::internal(format!("setting up the run failed: {e:#}")),
    };
    let outcome = match drive_in(&mut store, |store| pre.instantiate_async(store)) {
        Ok(instance) => {
            let outcome = instance
                .get_typed_func::<(), ()>(&mut store, START_EXPORT)
                .and_then(|start| drive_in(&mut store, |store| start.call_async(store, ())));
            inspect(&mut store, &instance);
            outcome
        }
        Err(e) => Err(e),
    };
    let detail = String::from_utf8_lossy(&diagnostics.contents()).into_owned();
    super::ending::finish(&mut store, outcome, &detail, started, fuel)
}

fn new_state(request: RunRequest, diagnostics: &MemoryOutputPipe) -> CoreState {
    CoreState {
        wasi: wasi_context(&request.filename, diagnostics),
        diagnostics: diagnostics.clone(),
        run: RunCore::new(&request),
        reply: Vec::new(),
        request_fields: [
            request.source.into_bytes(),
            request.input_json.into_bytes(),
            request.filename.into_bytes(),
        ],
    }
}

/// A fresh run's entry point (the guest's `main`).
const START_EXPORT: &str = "_start";
/// The guest's export that runs one more program in the same interpreter (a session's cell);
/// `_start` runs only once per instance.
const CELL_EXPORT: &str = "warden-run";

/// A JavaScript interpreter kept between calls.
pub type CoreSession = Kept<CoreState, Instance>;

/// An instance made ahead of time (see `spares.rs`): instantiated, never run.
pub fn make_spare(
    engine: &Engine,
    pre: &InstancePre<CoreState>,
    limits: &RunLimits,
) -> wasmtime::Result<CoreSession> {
    let state = doorless_state(limits, GUEST_DIAGNOSTICS_BYTES);
    let mut store = limited_store(engine, state, limits.fuel)?;
    let instance = drive_in(&mut store, |store| pre.instantiate_async(store))?;
    Ok(Kept { store, instance })
}

/// Runs `request` in `kept` (see `session::run_kept`): the first call starts an instance
/// without `_start` (`spare`, or a new one); every call runs the guest's `warden-run`.
pub fn execute_in_session(
    engine: &Engine,
    pre: &InstancePre<CoreState>,
    kept: &mut Option<CoreSession>,
    spare: Option<CoreSession>,
    request: RunRequest,
) -> SessionRun {
    run_in(engine, pre, kept, spare, request, CELL_EXPORT)
}

fn run_in(
    engine: &Engine,
    pre: &InstancePre<CoreState>,
    kept: &mut Option<CoreSession>,
    spare: Option<CoreSession>,
    request: RunRequest,
    export: &str,
) -> SessionRun {
    let fields = || {
        [
            request.source.as_bytes().to_vec(),
            request.input_json.as_bytes().to_vec(),
            request.filename.as_bytes().to_vec(),
        ]
    };
    let form = KeptForm {
        start: || {
            if let Some(mut spare) = spare
                && adopt(&mut spare.store, &request)?
            {
                let state = spare.store.data_mut();
                state.request_fields = fields();
                state.wasi = wasi_context(&request.filename, &state.diagnostics);
                return Ok((spare.store, Ok(spare.instance)));
            }
            let diagnostics = MemoryOutputPipe::new(GUEST_DIAGNOSTICS_BYTES);
            let state = new_state(request.clone(), &diagnostics);
            let mut store = limited_store(engine, state, request.limits.fuel)?;
            let instance = drive_in(&mut store, |store| pre.instantiate_async(store));
            Ok((store, instance))
        },
        refresh: |state: &mut CoreState| state.request_fields = fields(),
        call: |store: &mut Store<CoreState>, instance: &Instance| {
            let entry = instance.get_typed_func::<(), ()>(&mut *store, export)?;
            drive_in(store, |store| entry.call_async(store, ()))
        },
        diagnose: |state: &CoreState| {
            String::from_utf8_lossy(&state.diagnostics.contents()).into_owned()
        },
    };
    run_kept(kept, &request, form)
}

/// See [`super::run::check_instantiates`].
pub fn check_instantiates(
    engine: &Engine,
    pre: &InstancePre<CoreState>,
    limits: &RunLimits,
) -> wasmtime::Result<()> {
    let state = doorless_state(limits, 0);
    super::run::check_instantiates(engine, state, limits, |store| {
        drive_in(store, |store| pre.instantiate_async(store))
    })
}

/// The state of an instance that is not (yet) a call's: no fetch, workspace or tools.
fn doorless_state(limits: &RunLimits, diagnostics_bytes: usize) -> CoreState {
    let diagnostics = MemoryOutputPipe::new(diagnostics_bytes);
    CoreState {
        wasi: wasi_context("main", &diagnostics),
        diagnostics,
        run: RunCore::without_doors(limits),
        reply: Vec::new(),
        request_fields: Default::default(),
    }
}
