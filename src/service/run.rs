//! The run of an admitted call: a sandbox from admission, the fetch capability narrowed to the
//! caller, the guest on a blocking thread, cancellation, redaction of everything that comes
//! out, metrics.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::Service;
use super::admission::Counted;
use super::live::Live;
use super::pipeline::{AdmittedCall, AskPerson};
use super::place::Turn;
use super::tools::RunTools;
use crate::contract::{ExecuteArgs, ExecutionResult};
use crate::metrics::Metrics;
use crate::net::{FetchAudit, Narrowing, RunFetcher};
use crate::policy::Limits;
use crate::runtimes::remap_traceback;
use crate::sandbox::{
    CancelFlag, FetchCapability, OutputWatch, RunLimits, RunRequest, ToolsCapability,
    WorkspaceCapability,
};
use crate::secrets::Redactor;

impl Service {
    /// Runs a call the policy admitted (and counted), to its end. Never fails: every outcome
    /// is an [`ExecutionResult`]. A call that does not get to run gives its count back.
    pub(super) async fn run_counted(
        &self,
        mut counted: Counted,
        args: ExecuteArgs,
        audit: FetchAudit,
        how: RunHow,
        cancel: &CancellationToken,
    ) -> ExecutionResult {
        let RunHow {
            asker,
            as_task,
            watch,
            here,
        } = how;
        let live = counted.live().clone();
        let output = match watch {
            Some(watch) => watch.attach(live.clone()),
            None => OutputWatch::default(),
        };
        let policy = live.policy();
        let grant = live.engine.grant(&audit.grant);
        let limits = if as_task {
            grant.task_limits()
        } else {
            grant.limits()
        };
        let arrived = Instant::now();
        let timeout = Duration::from_millis(limits.timeout_ms(args.timeout_ms));
        // Limits cap timeouts at an hour, so this addition cannot overflow in practice.
        let deadline = arrived.checked_add(timeout).unwrap_or(arrived);
        let Some(runtime) = self.runtimes.get(args.language) else {
            return ExecutionResult::internal("the language's runtime is not loaded");
        };
        let guest_name = runtime.guest().name;

        // Until the run starts, a refusal gives the call's rate-limit count back (`counted`
        // is dropped unstarted).
        let place = match self.place(&args, policy, &audit) {
            Ok(place) => place,
            Err(refused) => return *refused,
        };
        let files = self.run_files(&place, policy);
        let interpreter = match place.session() {
            None => None,
            Some(session) => match self
                .turn_on(session, guest_name, &args, &audit, deadline, cancel)
                .await
            {
                Ok(turn) => Some(turn),
                Err(refused) => return self.abandon(&place, refused),
            },
        };
        if let (Some(given), Some(files)) = (&args.files, &files)
            && let Err(message) = files.put(given)
        {
            return self.abandon(&place, ExecutionResult::invalid_arguments(message));
        }

        let _task_turn = if as_task {
            match self.admission.task_turn(deadline, cancel).await {
                Ok(turn) => Some(turn),
                Err(refused) => return self.abandon(&place, refused),
            }
        } else {
            None
        };
        let slot = match self
            .admission
            .acquire(
                &audit.grant,
                grant.max_concurrent_runs(),
                limits.max_queued_runs,
                deadline,
                cancel,
            )
            .await
        {
            Ok(slot) => slot,
            Err(refused) => return self.abandon(&place, refused),
        };
        counted.started();
        let call_number = place.session().map_or(0, |s| s.begin_call());
        self.metrics.active().inc();
        let _active = ActiveRun(&self.metrics);

        let flag = CancelFlag::linked(cancel.clone());
        let narrowing = Narrowing {
            hosts: grant.host_list(),
            credentials: grant.credentials().map(<[String]>::to_vec),
        };
        let request_id = audit.request_id.clone();
        let grant_name = audit.grant.clone();
        let fetcher = RunFetcher::new(
            live.outbound.clone(),
            narrowing,
            deadline,
            flag.clone(),
            audit.clone(),
            tokio::runtime::Handle::current(),
        );
        let tools = (!live.upstreams.is_empty()).then(|| {
            Arc::new(RunTools {
                live: live.clone(),
                grant: audit.grant.clone(),
                session: audit.session.clone(),
                request_id: audit.request_id.clone(),
                max_calls: limits.max_tool_calls,
                calls: AtomicU64::new(0),
                paused_ns: AtomicU64::new(0),
                asker,
                deadline,
                cancel: flag.clone(),
                audit: audit.log.clone(),
                metrics: self.metrics.clone(),
                runtime: tokio::runtime::Handle::current(),
            }) as Arc<dyn crate::sandbox::ToolBridge>
        });
        let language = args.language;
        let request = RunRequest {
            source: String::new(),
            input_json: args
                .input
                .as_ref()
                .map_or_else(|| "null".to_string(), Value::to_string),
            filename: String::new(),
            limits: run_limits(&limits, deadline),
            cancel: flag.clone(),
            fetch: FetchCapability(Some(Arc::new(fetcher))),
            workspace: WorkspaceCapability(
                files
                    .clone()
                    .map(|f| f as Arc<dyn crate::sandbox::FileBridge>),
            ),
            tools: ToolsCapability(tools),
            output,
        };
        let (sandbox, runtimes) = (self.sandbox.clone(), self.runtimes.clone());
        let permit = slot.permit;
        let code = args.code.clone();
        let work = move || {
            let _permit = permit;
            let Some(runtime) = runtimes.get(language) else {
                return Ran::fresh(ExecutionResult::internal(
                    "the language's runtime is not loaded",
                ));
            };
            let prepared = match runtime.prepare(&code) {
                Ok(p) => p,
                // Nothing ran: a session's interpreter is as it was.
                Err(e) => {
                    return Ran {
                        result: ExecutionResult::without_run(crate::contract::Status::Error, e),
                        fresh: interpreter.as_ref().is_none_or(|turn| !turn.kept.is_live()),
                        restarted: false,
                    };
                }
            };
            let request = RunRequest {
                source: prepared.source,
                filename: runtime.filename().to_string(),
                ..request
            };
            let mut ran = match interpreter {
                None => Ran::fresh(sandbox.run(runtime.guest(), request)),
                Some(mut turn) => {
                    let run = sandbox.run_kept(runtime.guest(), &mut turn.kept, request);
                    turn.guest = Some(runtime.guest().name);
                    Ran {
                        result: run.result,
                        fresh: run.fresh,
                        restarted: run.discarded,
                    }
                }
            };
            if let (Some(map), Some(error)) = (&prepared.positions, ran.result.error.as_mut()) {
                let file = runtime.filename();
                error.message = remap_traceback(&error.message, file, map);
                if let Some(tb) = &error.traceback {
                    error.traceback = Some(remap_traceback(tb, file, map));
                }
            }
            ran
        };
        // A call whose future is dropped (the client went away, the server is shutting down)
        // stops its guest too: nothing waits for that result any more. Cancelling the call
        // raises the flag (it is linked to `cancel`); the guest sees it at its next fuel yield.
        let _stop_on_drop = StopOnDrop(flag.clone());
        let joined = if runs_here(here && !as_task) {
            Ok(work())
        } else {
            tokio::task::spawn_blocking(work).await
        };
        let Ran {
            mut result,
            fresh,
            restarted,
        } = match joined {
            Ok(ran) => ran,
            Err(e) => Ran::fresh(ExecutionResult::internal(format!(
                "the run's thread failed: {e}"
            ))),
        };
        result.usage.wall_ms = arrived.elapsed().as_millis() as u64;
        let server_failed = result.error.as_ref().is_some_and(|e| {
            e.kind == crate::contract::ErrorType::Host(crate::contract::ErrorKind::InternalError)
        });
        if server_failed {
            counted.server_failed();
        }
        redact_result(&mut result, live.credentials.redactor());
        let turn = Turn {
            call: call_number,
            fresh,
            restarted,
        };
        self.settle_session(&place, &turn, &args, policy, &audit, &mut result);
        if let Some(files) = &files {
            result.files = files.outputs(&self.returned(&place, policy));
        }
        self.metrics.run_finished(
            language.as_str(),
            result.status.as_str(),
            arrived.elapsed().as_secs_f64(),
            result.usage.fuel,
        );
        tracing::info!(
            request_id = %request_id,
            grant = %grant_name,
            language = %language,
            status = result.status.as_str(),
            wall_ms = result.usage.wall_ms,
            fuel = result.usage.fuel,
            memory_peak_bytes = result.usage.memory_peak_bytes,
            "run finished"
        );
        result
    }
}

impl AdmittedCall<'_> {
    /// For a caller whose task exists for this call alone (an MCP request handler): the run may
    /// start on this thread (`runs_here`), and its future is then not polled until the run ends:
    /// do not join it with others in one task; cancel it through its token.
    pub fn on_this_thread(mut self) -> Self {
        self.here = true;
        self
    }
}

/// Whether a run starts on the async worker that handles its call (asked for with
/// `AdmittedCall::on_this_thread`, on a multi-threaded runtime): most runs end within their
/// first fuel slice and so cross no thread, ~100 µs of a stdio round trip; longer runs and
/// waiting host calls go through `sandbox::may_block` (docs/benchmarks.md, issue 16). This
/// holds for Python since the spares thread runs in idle time only: before, woken by the take,
/// it preempted a Python run on the worker's own CPU.
fn runs_here(asked: bool) -> bool {
    asked
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// How an admitted call runs, besides its arguments.
pub(super) struct RunHow {
    /// Who is asked when the code's calls need approval.
    pub asker: Option<Arc<dyn AskPerson>>,
    /// Under `[tasks]` wall clock and fuel.
    pub as_task: bool,
    pub watch: Option<RunWatch>,
    /// The caller's task exists for this call alone: the run may start on its thread
    /// (`runs_here`).
    pub here: bool,
}

/// The longest line of output a running call shows, in bytes.
const MAX_PROGRESS_LINE: usize = 200;

/// What a running call shows of itself before it ends: the last line its program printed,
/// cleaned of secret values like everything else that leaves the sandbox.
#[derive(Clone, Default)]
pub struct RunWatch(Arc<OnceLock<(OutputWatch, Arc<Live>)>>);

impl RunWatch {
    fn attach(&self, live: Arc<Live>) -> OutputWatch {
        let output = OutputWatch::default();
        // A watch serves one run: a second attach gets a window nobody reads.
        let _ = self.0.set((output.clone(), live));
        output
    }

    /// The last whole line the program printed so far, if any, redacted and then shortened to
    /// 200 bytes (in this order: a secret cut in two would no longer be recognised).
    pub fn last_line(&self) -> Option<String> {
        let (output, live) = self.0.get()?;
        let line = live.credentials.redactor().redact(&output.last_line()?);
        let mut cut = line.len().min(MAX_PROGRESS_LINE);
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        Some(line[..cut].to_string())
    }
}

/// A run's result, and what became of a session's interpreter.
struct Ran {
    result: ExecutionResult,
    fresh: bool,
    restarted: bool,
}

impl Ran {
    fn fresh(result: ExecutionResult) -> Ran {
        Ran {
            result,
            fresh: true,
            restarted: false,
        }
    }
}

/// The sandbox's view of a caller's limits, for a run that must end by `deadline`.
fn run_limits(limits: &Limits, deadline: Instant) -> RunLimits {
    let bytes = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    RunLimits {
        fuel: limits.fuel,
        memory_bytes: limits.memory_bytes,
        stdout_bytes: bytes(limits.stdout_bytes),
        stderr_bytes: bytes(limits.stderr_bytes),
        max_result_bytes: bytes(limits.max_result_bytes),
        deadline,
    }
}

/// Cancels a run when dropped.
struct StopOnDrop(CancelFlag);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// A running sandbox, counted in the `runs_active` gauge until dropped.
struct ActiveRun<'a>(&'a Metrics);

impl Drop for ActiveRun<'_> {
    fn drop(&mut self) {
        self.0.active().dec();
    }
}

/// Secrets never enter the sandbox, but whatever leaves it is still cleaned of every value
/// (stdout, stderr, the result, the error).
fn redact_result(result: &mut ExecutionResult, redactor: &Redactor) {
    if redactor.is_empty() {
        return;
    }
    result.stdout = redactor.redact(&result.stdout);
    result.stderr = redactor.redact(&result.stderr);
    redactor.redact_json(&mut result.result);
    if let Some(error) = result.error.as_mut() {
        if let crate::contract::ErrorType::Guest(name) = &mut error.kind {
            *name = redactor.redact(name);
        }
        error.message = redactor.redact(&error.message);
        error.traceback = error.traceback.as_deref().map(|t| redactor.redact(t));
    }
}
