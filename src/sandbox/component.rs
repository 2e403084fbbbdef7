//! Guests in component form (the Python guest, built by componentize-py): the world of
//! guest-runtimes/wit/warden.wit over WASI preview 2. The program's stdout and stderr are the
//! guest's WASI stdout and stderr, captured with caps, so `print`, `sys.stdout` and writes
//! straight to file descriptors 1 and 2 all land in the result.

use std::pin::Pin;
use std::task::{Context, Poll};

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::capability::HttpRequest as HostRequest;
use super::run::{HasRunCore, RunCore, RunRequest, SharedText, adopt, drive_in, limited_store};
use super::session::{Kept, KeptForm, run_kept};
use super::{RunLimits, SessionRun};
use crate::contract::ExecutionResult;

// Exports are async so that a run can yield to `drive::drive` between slices of fuel; the
// imports stay blocking host functions, and may trap (a run stopped while one waited).
wasmtime::component::bindgen!({
    path: "guest-runtimes/wit",
    world: "guest",
    imports: { default: trappable },
    exports: { default: async },
});

pub use self::GuestPre as ComponentPre;

/// The WASI version whose `poll` is replaced (the one wasmtime-wasi defines).
const WASI_IO_POLL: &str = "wasi:io/poll@0.2.12";

/// Store data of a component run.
pub struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    run: RunCore,
}

impl HasRunCore for ComponentState {
    fn run_core(&mut self) -> &mut RunCore {
        &mut self.run
    }
}

impl GuestImports for ComponentState {
    fn exiting(&mut self, code: i32) -> wasmtime::Result<()> {
        self.run.exit_code = Some(code);
        Ok(())
    }

    fn workspace(&mut self, request: String, data: Vec<u8>) -> wasmtime::Result<(String, Vec<u8>)> {
        self.run.file_call(request.as_bytes(), &data)
    }

    fn tools(&mut self, request: String) -> wasmtime::Result<String> {
        self.run.tool_call(&request)
    }

    fn fetch(&mut self, request: HttpRequest) -> wasmtime::Result<Result<HttpResponse, String>> {
        let response = self.run.fetch(HostRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        })?;
        let response = match response {
            Ok(response) => response,
            Err(error) => return Ok(Err(error)),
        };
        Ok(Ok(HttpResponse {
            status: response.status,
            status_text: response.status_text,
            url: response.url,
            redirected: response.redirected,
            headers: response.headers,
            body: response.body,
        }))
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<ComponentState>> {
    let mut linker = Linker::new(engine);
    // WASI's async functions, polled inside the run's async call: the sync ones block on the
    // tokio runtime, which panics on the async worker where a run starts (`drive.rs`).
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).context("adding WASI to the linker")?;
    // WASI's poll blocks the host thread (a `time.sleep`), where the deadline cannot interrupt
    // it: a guest could outlive its deadline. Here every pollable is ready at once,
    // so sleeping takes no time, like the JavaScript guest's virtual timers.
    linker.allow_shadowing(true);
    let mut poll = linker.instance(WASI_IO_POLL)?;
    poll.func_wrap(
        "poll",
        |_store, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let ready = (0..u32::try_from(pollables.len()).unwrap_or(u32::MAX)).collect::<Vec<_>>();
            Ok((ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |_store, (_pollable,): (Resource<DynPollable>,)| Ok(()),
    )?;
    linker.allow_shadowing(false);
    Guest::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
        .context("adding the guest world's imports")?;
    Ok(linker)
}

/// Deny by default: no preopens, no environment, no arguments, no sockets, no stdin.
fn wasi_context(run: &RunCore) -> WasiCtx {
    WasiCtxBuilder::new()
        .stdout(OutputSink(run.stdout.clone()))
        .stderr(OutputSink(run.stderr.clone()))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

/// Runs `request` in a fresh instance: `spare` (made ahead of time, never run) when there is
/// one that fits, else a new one. Returns the result and the spent instance, to be torn down
/// off the call's path.
pub fn execute(
    engine: &Engine,
    pre: &ComponentPre<ComponentState>,
    spare: Option<ComponentSession>,
    request: RunRequest,
) -> (ExecutionResult, Option<ComponentSession>) {
    let mut spent = None;
    let run = execute_in_session(engine, pre, &mut spent, spare, request);
    (run.result, spent)
}

fn new_state(request: &RunRequest) -> ComponentState {
    state_of(RunCore::new(request))
}

/// A Python interpreter kept between calls: `run` called again on the same instance runs in
/// the same globals.
pub type ComponentSession = Kept<ComponentState, Guest>;

/// An instance made ahead of time (see `spares.rs`): instantiated, never run. Its output
/// streams write to the buffers that the adopting call's `begin_call` resets.
pub fn make_spare(
    engine: &Engine,
    pre: &ComponentPre<ComponentState>,
    limits: &RunLimits,
) -> wasmtime::Result<ComponentSession> {
    let mut store = limited_store(engine, doorless_state(limits), limits.fuel)?;
    let instance = drive_in(&mut store, |store| pre.instantiate_async(store))?;
    Ok(Kept { store, instance })
}

/// The state of an instance that is not (yet) a call's: no fetch, workspace or tools.
fn doorless_state(limits: &RunLimits) -> ComponentState {
    state_of(RunCore::without_doors(limits))
}

fn state_of(run: RunCore) -> ComponentState {
    ComponentState {
        wasi: wasi_context(&run),
        table: ResourceTable::new(),
        run,
    }
}

/// Runs `request` in `kept` (see `session::run_kept`), starting with `spare` or a new instance
/// when there is none.
pub fn execute_in_session(
    engine: &Engine,
    pre: &ComponentPre<ComponentState>,
    kept: &mut Option<ComponentSession>,
    spare: Option<ComponentSession>,
    request: RunRequest,
) -> SessionRun {
    let form = KeptForm {
        start: || {
            if let Some(mut spare) = spare
                && adopt(&mut spare.store, &request)?
            {
                return Ok((spare.store, Ok(spare.instance)));
            }
            let mut store = limited_store(engine, new_state(&request), request.limits.fuel)?;
            let guest = drive_in(&mut store, |store| pre.instantiate_async(store));
            Ok((store, guest))
        },
        refresh: |_: &mut ComponentState| {},
        call: |store: &mut wasmtime::Store<ComponentState>, guest: &Guest| {
            let json = drive_in(&mut *store, |store| {
                guest.call_run(
                    store,
                    &request.source,
                    &request.input_json,
                    &request.filename,
                )
            })?;
            store.data_mut().run.report(json.as_bytes());
            Ok(())
        },
        diagnose: |_: &ComponentState| String::new(),
    };
    run_kept(kept, &request, form)
}

/// See [`super::run::check_instantiates`].
pub fn check_instantiates(
    engine: &Engine,
    pre: &ComponentPre<ComponentState>,
    limits: &RunLimits,
) -> wasmtime::Result<()> {
    super::run::check_instantiates(engine, doorless_state(limits), limits, |store| {
        drive_in(store, |store| pre.instantiate_async(store))
    })
}

/// A WASI output stream that appends to a capped buffer. It never refuses a write: beyond the
/// cap the bytes are dropped (and the result says `truncated`), so a flood of output cannot
/// make the guest's `print` fail.
#[derive(Clone)]
struct OutputSink(SharedText);

/// What a writer may send in one go; the sink takes anything.
const SINK_PERMIT_BYTES: usize = 1 << 20;

impl IsTerminal for OutputSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputSink {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for OutputSink {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.0.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(SINK_PERMIT_BYTES)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for OutputSink {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for OutputSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
