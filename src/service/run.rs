//! The run of an admitted call: a sandbox from admission, the fetch capability narrowed to the
//! caller, the guest on a blocking thread, cancellation, redaction of everything that comes
//! out, metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::Service;
use super::admission::Counted;
use crate::contract::{ExecuteArgs, ExecutionResult};
use crate::metrics::Metrics;
use crate::net::{FetchAudit, Narrowing, RunFetcher};
use crate::policy::Limits;
use crate::runtimes::remap_traceback;
use crate::sandbox::{CancelFlag, FetchCapability, RunLimits, RunRequest};
use crate::secrets::Redactor;

impl Service {
    /// Runs a call the policy admitted (and counted), to its end. Never fails: every outcome
    /// is an [`ExecutionResult`]. A call that does not get to run gives its count back.
    pub(super) async fn run_counted(
        &self,
        mut counted: Counted,
        args: ExecuteArgs,
        audit: FetchAudit,
        cancel: &CancellationToken,
    ) -> ExecutionResult {
        let live = counted.live().clone();
        let grant = live.engine.grant(&audit.grant);
        let limits = grant.limits();
        let arrived = Instant::now();
        let timeout = Duration::from_millis(limits.timeout_ms(args.timeout_ms));
        // Limits cap timeouts at an hour, so this addition cannot overflow in practice.
        let deadline = arrived.checked_add(timeout).unwrap_or(arrived);

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
            Err(refused) => return refused,
        };
        counted.started();
        self.metrics.active().inc();
        let _active = ActiveRun(&self.metrics);

        let flag = CancelFlag::new();
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
            audit,
            tokio::runtime::Handle::current(),
        );
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
        };
        let (sandbox, runtimes) = (self.sandbox.clone(), self.runtimes.clone());
        let permit = slot.permit;
        let mut run = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let Some(runtime) = runtimes.get(language) else {
                return ExecutionResult::internal("the language's runtime is not loaded");
            };
            let prepared = match runtime.prepare(&args.code) {
                Ok(p) => p,
                Err(e) => return ExecutionResult::without_run(crate::contract::Status::Error, e),
            };
            let request = RunRequest {
                source: prepared.source,
                filename: runtime.filename().to_string(),
                ..request
            };
            let mut result = sandbox.run(runtime.guest(), request);
            if let (Some(map), Some(error)) = (&prepared.positions, result.error.as_mut()) {
                let file = runtime.filename();
                error.message = remap_traceback(&error.message, file, map);
                if let Some(tb) = &error.traceback {
                    error.traceback = Some(remap_traceback(tb, file, map));
                }
            }
            result
        });
        // A call whose future is dropped (the client went away, the server is shutting down)
        // stops its guest too: nothing waits for that result any more.
        let _stop_on_drop = StopOnDrop(flag.clone());
        let joined = tokio::select! {
            joined = &mut run => joined,
            _ = cancel.cancelled() => {
                // The epoch callback sees the flag within a tick and stops the guest.
                flag.cancel();
                run.await
            }
        };
        let mut result = match joined {
            Ok(result) => result,
            Err(e) => ExecutionResult::internal(format!("the run's thread failed: {e}")),
        };
        result.usage.wall_ms = arrived.elapsed().as_millis() as u64;
        let server_failed = result.error.as_ref().is_some_and(|e| {
            e.kind == crate::contract::ErrorType::Host(crate::contract::ErrorKind::InternalError)
        });
        if server_failed {
            counted.server_failed();
        }
        redact_result(&mut result, live.credentials.redactor());
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
