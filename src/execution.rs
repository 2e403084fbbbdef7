//! The `execute_code` call, independent of any transport: argument checks against the contract
//! and the limits, a bounded queue of runs, the run itself on a blocking thread, cancellation.
//! The MCP server and `warden run` both go through [`Executor`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditEvent, AuditLog};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::metrics::Metrics;
use crate::net::{FetchAudit, Outbound, RunFetcher};
use crate::outcome::{ErrorInfo, ExecutionResult, Status};
use crate::policy::{
    CallArgs, Caller, Denial, Limits, MemoryCounterStore, Policy, PolicyEngine, Verdict,
};
use crate::policy::{GrantSpec, LOCAL_GRANT};
use crate::runtimes::{Language, Runtimes, remap_traceback};
use crate::sandbox::{CancelFlag, FetchCapability, RunLimits, RunRequest, Sandbox, SandboxConfig};
use crate::secrets::{Credentials, GrantTokens, Redactor};

/// The arguments of one call, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecuteArgs {
    pub language: Language,
    pub code: String,
    pub timeout_ms: Option<u64>,
    pub input: Option<Value>,
}

const ARGUMENT_NAMES: [&str; 4] = ["language", "code", "timeout_ms", "input"];

pub struct Executor {
    sandbox: Arc<Sandbox>,
    runtimes: Arc<Runtimes>,
    permits: Arc<Semaphore>,
    /// The policy in force and its limits; swapped whole by [`Executor::reload`].
    live: std::sync::RwLock<Arc<Live>>,
    /// Rate-limit counters, kept across reloads.
    counters: Arc<MemoryCounterStore>,
    audit: Option<Arc<AuditLog>>,
    metrics: Arc<Metrics>,
    /// Calls waiting for a sandbox, and each grant's runs in progress (backpressure).
    queued: AtomicUsize,
    running_by_grant: std::sync::Mutex<HashMap<String, u32>>,
}

struct Live {
    engine: PolicyEngine,
    limits: Limits,
    /// The fetch side of this policy: allowlist, credentials, HTTP client.
    outbound: Arc<Outbound>,
    /// The grants' bearer tokens, as digests.
    tokens: GrantTokens,
}

impl Live {
    fn grant(&self, grant: &str) -> Option<&GrantSpec> {
        self.engine.policy().grants.get(grant)
    }

    /// The limits of `grant`: the policy's, lowered where the grant says so.
    fn limits_for(&self, grant: &str) -> Limits {
        match self.grant(grant) {
            Some(spec) => spec.limits.narrow(&self.limits),
            None => self.limits.clone(),
        }
    }
}

fn tokens_for(policy: &Policy) -> GrantTokens {
    let (tokens, warnings) = GrantTokens::load(&policy.grants);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    tokens
}

/// Suggested wait before retrying a call refused for load.
const BUSY_RETRY_MS: u64 = 250;

/// Builds the outbound side of `policy`, loading its credentials. A credential that cannot be
/// loaded is logged and unusable; it never stops the server.
fn outbound_for(policy: &Policy) -> anyhow::Result<Arc<Outbound>> {
    let (credentials, warnings) = Credentials::load(&policy.credentials);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    Ok(Arc::new(Outbound::new(
        &policy.network,
        Arc::new(credentials),
    )?))
}

/// Allowed hosts and credential names, for the tool description (never values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSummary {
    pub hosts: Vec<String>,
    pub credentials: Vec<String>,
    pub max_fetches: u32,
}

impl Live {
    fn audit_settings(&self) -> &crate::policy::AuditSettings {
        &self.engine.policy().audit
    }
}

/// Who is calling, and how to ask a person when the policy wants approval.
pub struct CallContext<'a> {
    /// The authenticated caller (`local` on stdio and the command line).
    pub grant: &'a str,
    /// The MCP session (or the command-line invocation).
    pub session: &'a str,
    pub approver: &'a dyn Approver,
}

/// What a person is asked to approve.
#[derive(Debug, Clone, Copy)]
pub struct ApprovalRequest<'a> {
    pub rule: &'a str,
    pub reason: &'a str,
    pub language: Language,
    pub code: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    Approved,
    Declined,
    /// Nobody can be asked; says why.
    Unavailable(String),
    /// The question went out with the call's answer (the 2026-07-28 input-required flow): the
    /// call ends here, and the client calls again with the person's answer.
    Asked,
}

/// How a call ended: with a result, or waiting for a person's approval that the client will
/// bring back in a new call.
#[derive(Debug)]
pub enum CallOutcome {
    Finished(Box<ExecutionResult>),
    AwaitingApproval,
}

impl CallOutcome {
    /// The result, for callers whose approver never defers; a deferral becomes a denial.
    pub fn into_result(self) -> ExecutionResult {
        match self {
            CallOutcome::Finished(result) => *result,
            CallOutcome::AwaitingApproval => denied(Denial::new(
                Status::Denied,
                "approval",
                "the call waits for an approval that this caller cannot bring back",
            )),
        }
    }
}

/// Why a call stopped before it ran.
enum Stop {
    Denied(Denial),
    AwaitingApproval { rule: String, reason: String },
}

impl From<Denial> for Stop {
    fn from(denial: Denial) -> Stop {
        Stop::Denied(denial)
    }
}

/// Asks a person to approve a call (through the MCP client, for instance).
pub trait Approver: Send + Sync {
    fn approve<'a>(
        &'a self,
        request: ApprovalRequest<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Approval> + Send + 'a>>;
}

/// For callers that cannot ask anyone: every approval is unavailable, for the given reason.
pub struct NoApprover(pub &'static str);

impl Approver for NoApprover {
    fn approve<'a>(
        &'a self,
        _request: ApprovalRequest<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Approval> + Send + 'a>> {
        Box::pin(std::future::ready(Approval::Unavailable(
            self.0.to_string(),
        )))
    }
}

impl Executor {
    /// Builds the sandbox (compiling or loading the guests) for `policy`.
    pub fn new(policy: &Policy, cache_dir: Option<PathBuf>) -> anyhow::Result<Executor> {
        let runtimes = Runtimes::builtin();
        let config = SandboxConfig {
            wasm_stack_bytes: usize::try_from(policy.limits.wasm_stack_bytes)?,
            max_memory_bytes: usize::try_from(policy.limits.memory_bytes)?,
            max_concurrent_runs: policy.limits.concurrency(),
            cache_dir,
        };
        let sandbox = Sandbox::new(&config, &runtimes.guests())?;
        let counters = Arc::new(MemoryCounterStore::default());
        let engine = PolicyEngine::new(policy.clone(), counters.clone())?;
        Ok(Executor {
            sandbox: Arc::new(sandbox),
            runtimes: Arc::new(runtimes),
            permits: Arc::new(Semaphore::new(policy.limits.concurrency())),
            live: std::sync::RwLock::new(Arc::new(Live {
                engine,
                limits: policy.limits.clone(),
                outbound: outbound_for(policy)?,
                tokens: tokens_for(policy),
            })),
            counters,
            audit: None,
            metrics: Arc::new(Metrics::new()),
            queued: AtomicUsize::new(0),
            running_by_grant: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Puts a new (already validated) policy in force for the calls that start from now on.
    /// Rate-limit counters carry over. The limits that shape the sandbox itself (memory,
    /// wasm stack, concurrency) keep their start-up values until a restart; a warning says so.
    pub fn reload(&self, policy: Policy) -> anyhow::Result<()> {
        let mut limits = policy.limits.clone();
        let current = self.live();
        for (name, old, new) in [
            (
                "memory_bytes",
                current.limits.memory_bytes,
                limits.memory_bytes,
            ),
            (
                "wasm_stack_bytes",
                current.limits.wasm_stack_bytes,
                limits.wasm_stack_bytes,
            ),
            (
                "max_concurrent_runs",
                u64::from(current.limits.max_concurrent_runs),
                u64::from(limits.max_concurrent_runs),
            ),
        ] {
            if old != new {
                tracing::warn!(
                    "limits.{name} changed from {old} to {new}: it takes effect at the next restart"
                );
            }
        }
        if &policy.audit != current.audit_settings() {
            tracing::warn!(
                "[audit] changed: the audit log keeps its start-up settings until the next restart"
            );
        }
        limits.memory_bytes = current.limits.memory_bytes;
        limits.wasm_stack_bytes = current.limits.wasm_stack_bytes;
        limits.max_concurrent_runs = current.limits.max_concurrent_runs;
        let outbound = outbound_for(&policy)?;
        let tokens = tokens_for(&policy);
        let engine = PolicyEngine::new(policy, self.counters.clone())?;
        let next = Arc::new(Live {
            engine,
            limits,
            outbound,
            tokens,
        });
        *self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
        Ok(())
    }

    fn live(&self) -> Arc<Live> {
        self.live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A call through the whole pipeline: the schema check's outcome (`parsed`), argument
    /// rules, the tool's action (asking for approval when needed), rate limits, then the run.
    /// Every decision and every run is an audit event.
    pub async fn call(
        &self,
        parsed: Result<ExecuteArgs, String>,
        context: &CallContext<'_>,
        cancel: CancellationToken,
    ) -> CallOutcome {
        static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request_id = format!("r-{}-{n}", std::process::id());
        let mut event = AuditEvent::new("decision", &request_id, context.grant, context.session);
        let args = match parsed {
            Ok(args) => args,
            Err(message) => {
                let result = invalid_arguments(message);
                event.decision = "invalid_arguments";
                event.reason = result.error.as_ref().map(|e| e.message.as_str());
                self.record(&event);
                return CallOutcome::Finished(Box::new(result));
            }
        };
        event.language = Some(args.language.as_str());
        if let Some(log) = &self.audit {
            log.describe_code(&mut event, &args.code);
        }
        let decision = tokio::select! {
            // Cancellation first: a call cancelled before it was decided is never admitted
            // (an unbiased select admitted about half of them).
            biased;
            // A client that gives up while a person is being asked stops waiting at once, too.
            _ = cancel.cancelled() => Err(Stop::Denied(Denial::new(
                Status::Denied,
                "cancelled",
                "the client cancelled the call before it was decided",
            ))),
            decision = self.decide(&args, context) => decision,
        };
        let (live, admitted_ms) = match decision {
            Ok(admitted) => admitted,
            Err(Stop::AwaitingApproval { rule, reason }) => {
                event.decision = "approval_requested";
                event.rule = Some(&rule);
                event.reason = Some(&reason);
                self.record(&event);
                return CallOutcome::AwaitingApproval;
            }
            Err(Stop::Denied(denial)) => {
                self.metrics.denied(&denial.decision.rule);
                let result = denied(denial);
                event.decision = match result.status {
                    Status::RateLimited => "rate_limited",
                    Status::ApprovalDeclined => "approval_declined",
                    _ => "deny",
                };
                event.rule = result.policy.as_ref().map(|p| p.rule.as_str());
                event.reason = result.policy.as_ref().map(|p| p.reason.as_str());
                self.record(&event);
                return CallOutcome::Finished(Box::new(result));
            }
        };
        if let Some(log) = &self.audit
            && let Err(e) = log.record(&event)
        {
            tracing::error!("the audit log cannot be written: {e}");
            if log.fail_closed() {
                // Refused after admission: the call gives its count back, as one refused for
                // load does.
                let caller = Caller {
                    grant: context.grant,
                    session: context.session,
                };
                live.engine.refund(&caller, admitted_ms);
                return CallOutcome::Finished(Box::new(denied(Denial::new(
                    Status::Denied,
                    "audit.fail_closed",
                    "the audit log cannot be written, and the policy denies unaudited calls",
                ))));
            }
        }
        let audit = FetchAudit {
            log: self.audit.clone(),
            request_id: request_id.clone(),
            grant: context.grant.to_string(),
            session: context.session.to_string(),
        };
        let result = match self.execute_with(&live, args, cancel, audit).await {
            Started::Ran(result) => result,
            Started::Not(result) => {
                let caller = Caller {
                    grant: context.grant,
                    session: context.session,
                };
                live.engine.refund(&caller, admitted_ms);
                result
            }
        };
        let mut run_event = event.clone();
        run_event.event = "run";
        run_event.decision = result.status.as_str();
        run_event.status = Some(result.status.as_str());
        run_event.usage = Some(result.usage);
        self.record(&run_event);
        CallOutcome::Finished(Box::new(result))
    }

    /// Rules, action (with approval), then rate limits.
    /// Returns the policy state the call was admitted under, and when it was counted.
    async fn decide(
        &self,
        args: &ExecuteArgs,
        context: &CallContext<'_>,
    ) -> Result<(Arc<Live>, u64), Stop> {
        let call_args = CallArgs {
            language: args.language.as_str(),
            code: &args.code,
            timeout_ms: args.timeout_ms,
            input: args.input.as_ref(),
        };
        let mut live = self.live();
        if let Some(allowed) = live.grant(context.grant).and_then(|g| g.languages.as_ref())
            && !allowed.iter().any(|l| l == args.language.as_str())
        {
            return Err(Denial::new(
                Status::Denied,
                format!("grants.{}.languages", context.grant),
                format!(
                    "this caller may not use {} (it may use: {})",
                    args.language,
                    allowed.join(", ")
                ),
            )
            .into());
        }
        match live.engine.check(&call_args) {
            Verdict::Allow => {}
            Verdict::Deny(denial) => return Err(denial.into()),
            Verdict::NeedsApproval { rule, reason } => {
                let request = ApprovalRequest {
                    rule: &rule,
                    reason: &reason,
                    language: args.language,
                    code: &args.code,
                };
                match context.approver.approve(request).await {
                    Approval::Approved => {
                        // The policy may have been reloaded while a person was deciding: the
                        // call must still pass the one in force now (approval is not asked
                        // twice).
                        live = self.live();
                        if let Verdict::Deny(denial) = live.engine.check(&call_args) {
                            return Err(denial.into());
                        }
                    }
                    Approval::Declined => {
                        return Err(Denial::new(
                            Status::ApprovalDeclined,
                            rule,
                            format!("approval was declined ({reason})"),
                        )
                        .into());
                    }
                    Approval::Unavailable(why) => {
                        return Err(Denial::new(
                            Status::Denied,
                            rule,
                            format!("this call needs a person's approval ({reason}), but {why}"),
                        )
                        .into());
                    }
                    Approval::Asked => return Err(Stop::AwaitingApproval { rule, reason }),
                }
            }
        }
        let caller = Caller {
            grant: context.grant,
            session: context.session,
        };
        let admitted_ms = now_ms();
        live.engine.admit(&caller, admitted_ms)?;
        Ok((live, admitted_ms))
    }

    /// Records an event whose loss cannot change the call any more (it is already decided).
    fn record(&self, event: &AuditEvent<'_>) {
        if let Some(log) = &self.audit
            && let Err(e) = log.record(event)
        {
            tracing::error!("the audit log cannot be written: {e}");
        }
    }

    /// Sends audit events to `log` (without one, nothing is audited).
    pub fn with_audit(mut self, log: Arc<AuditLog>) -> Executor {
        self.audit = Some(log);
        self
    }

    /// The limits in force (for the local caller).
    pub fn limits(&self) -> Limits {
        self.limits_for(LOCAL_GRANT)
    }

    /// The limits in force for `grant`.
    pub fn limits_for(&self, grant: &str) -> Limits {
        self.live().limits_for(grant)
    }

    /// The languages the local caller may use: the server's, narrowed by the policy.
    pub fn languages(&self) -> Vec<Language> {
        self.languages_for(LOCAL_GRANT)
    }

    /// The languages `grant` may use: the server's, narrowed by the policy and the grant.
    pub fn languages_for(&self, grant: &str) -> Vec<Language> {
        let live = self.live();
        let mut languages = live.engine.allowed_languages(&self.runtimes.languages());
        if let Some(allowed) = live.grant(grant).and_then(|g| g.languages.as_ref()) {
            languages.retain(|l| allowed.iter().any(|a| a == l.as_str()));
        }
        languages
    }

    /// Checks raw tool arguments; the error text tells the caller what to fix.
    pub fn parse_args(&self, raw: Option<&Map<String, Value>>) -> Result<ExecuteArgs, String> {
        self.parse_args_for(LOCAL_GRANT, raw)
    }

    /// [`Self::parse_args`] against `grant`'s limits.
    pub fn parse_args_for(
        &self,
        grant: &str,
        raw: Option<&Map<String, Value>>,
    ) -> Result<ExecuteArgs, String> {
        parse_args(raw, &self.limits_for(grant), &self.runtimes.languages())
    }

    /// The grant a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<String> {
        self.live().tokens.authenticate(token).map(str::to_string)
    }

    /// Whether the policy has grants that authenticate by token.
    pub fn has_token_grants(&self) -> bool {
        self.live().tokens.any()
    }

    pub fn audit_log(&self) -> Option<&Arc<AuditLog>> {
        self.audit.as_ref()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Runs executing or waiting for a sandbox right now.
    pub fn calls_in_flight(&self) -> i64 {
        self.metrics.active().get() + self.metrics.queued().get()
    }

    /// Runs one call to its end. Never fails: every outcome is an [`ExecutionResult`].
    pub async fn execute(&self, args: ExecuteArgs, cancel: CancellationToken) -> ExecutionResult {
        let live = self.live();
        let audit = FetchAudit {
            grant: crate::policy::LOCAL_GRANT.to_string(),
            ..FetchAudit::default()
        };
        self.execute_with(&live, args, cancel, audit)
            .await
            .into_result()
    }

    /// Allowed hosts and credential names of the policy in force (for the local caller).
    pub fn network_summary(&self) -> NetworkSummary {
        self.network_summary_for(LOCAL_GRANT)
    }

    /// Allowed hosts and credential names for `grant`: a grant with its own `hosts` lists those
    /// (a request must pass both lists), and its credentials only.
    pub fn network_summary_for(&self, grant: &str) -> NetworkSummary {
        let live = self.live();
        let spec = live.grant(grant);
        let describe = |r: &crate::net::AllowRule| match r.methods() {
            Some(methods) => format!("{r} ({})", methods.join(", ")),
            None => r.to_string(),
        };
        let policy_hosts: Vec<String> = live
            .outbound
            .allow_list()
            .rules()
            .iter()
            .map(describe)
            .collect();
        let hosts = match spec.and_then(|g| g.hosts.as_ref()) {
            Some(rules) if !policy_hosts.is_empty() => {
                rules.iter().map(|r| describe(&r.0)).collect()
            }
            _ => policy_hosts,
        };
        let credentials = live
            .outbound
            .credentials()
            .names()
            .filter(|name| {
                spec.and_then(|g| g.credentials.as_ref())
                    .is_none_or(|allowed| allowed.iter().any(|a| a == name))
            })
            .map(str::to_string)
            .collect();
        NetworkSummary {
            hosts,
            credentials,
            max_fetches: live.engine.policy().network.max_fetches,
        }
    }

    async fn execute_with(
        &self,
        live: &Live,
        args: ExecuteArgs,
        cancel: CancellationToken,
        audit: FetchAudit,
    ) -> Started {
        let limits = &live.limits_for(&audit.grant);
        let arrived = Instant::now();
        let timeout = Duration::from_millis(limits.timeout_ms(args.timeout_ms));
        // Limits cap timeouts at an hour, so this addition cannot overflow in practice.
        let deadline = arrived.checked_add(timeout).unwrap_or(arrived);

        // Backpressure: a grant over its own cap, or a full queue, gets `rate_limited` at once.
        let grant_cap = live.grant(&audit.grant).and_then(|g| g.max_concurrent_runs);
        let _grant_slot = match GrantSlot::take(&self.running_by_grant, &audit.grant, grant_cap) {
            Some(slot) => slot,
            None => {
                let denial = busy(
                    format!("grants.{}.max_concurrent_runs", audit.grant),
                    format!(
                        "this caller already has {} runs in progress (its limit)",
                        grant_cap.unwrap_or(0)
                    ),
                );
                self.metrics.denied(&denial.decision.rule);
                return Started::Not(denied(denial));
            }
        };
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let max_queued = live.limits.max_queued_runs as usize;
                let position = self.queued.fetch_add(1, Ordering::SeqCst);
                self.metrics.queued().inc();
                let _queued = QueueSlot(&self.queued, &self.metrics);
                if position >= max_queued {
                    let denial = busy(
                        "limits.max_queued_runs".to_string(),
                        format!(
                            "the server is busy: every sandbox is running and {max_queued} calls are waiting"
                        ),
                    );
                    self.metrics.denied(&denial.decision.rule);
                    return Started::Not(denied(denial));
                }
                // Wait for a free slot; the wait counts against the call's deadline.
                tokio::select! {
                    permit = self.permits.clone().acquire_owned() => match permit {
                        Ok(p) => p,
                        Err(_) => return Started::Not(internal("the run queue is closed (the server is shutting down)")),
                    },
                    _ = tokio::time::sleep_until(deadline.into()) => {
                        return Started::Not(ExecutionResult::without_run(
                            Status::Timeout,
                            ErrorInfo::new("Timeout", "the call timed out while waiting for a free sandbox (the server is busy)"),
                        ));
                    }
                    _ = cancel.cancelled() => return Started::Not(cancelled()),
                }
            }
        };
        // A cancellation that came while the call was admitted or queued stops it here: no
        // code of a cancelled call starts.
        if cancel.is_cancelled() {
            return Started::Not(cancelled());
        }
        self.metrics.active().inc();
        let _active = ActiveRun(&self.metrics);

        let flag = CancelFlag::new();
        let run_flag = flag.clone();
        let sandbox = self.sandbox.clone();
        let runtimes = self.runtimes.clone();
        let run_limits = RunLimits {
            fuel: limits.fuel,
            memory_bytes: limits.memory_bytes,
            stdout_bytes: usize::try_from(limits.stdout_bytes).unwrap_or(usize::MAX),
            stderr_bytes: usize::try_from(limits.stderr_bytes).unwrap_or(usize::MAX),
            max_result_bytes: usize::try_from(limits.max_result_bytes).unwrap_or(usize::MAX),
            deadline,
        };
        let input_json = args
            .input
            .as_ref()
            .map_or_else(|| "null".to_string(), Value::to_string);
        let language = args.language;
        let grant = live.engine.policy().grants.get(&audit.grant);
        let mut fetcher = RunFetcher::new(
            live.outbound.clone(),
            deadline,
            flag.clone(),
            tokio::runtime::Handle::current(),
        );
        fetcher.grant_hosts = grant
            .and_then(|g| g.hosts.as_deref())
            .map(crate::policy::network::allow_list);
        fetcher.grant_credentials = grant.and_then(|g| g.credentials.clone());
        let request_id = audit.request_id.clone();
        let grant = audit.grant.clone();
        fetcher.audit = audit;
        let fetch = FetchCapability(Some(Arc::new(fetcher)));
        let mut run = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let Some(runtime) = runtimes.get(language) else {
                return internal("the language's runtime is not loaded");
            };
            let prepared = match runtime.prepare(&args.code) {
                Ok(p) => p,
                Err(e) => return ExecutionResult::without_run(Status::Error, e),
            };
            let request = RunRequest {
                source: prepared.source,
                input_json,
                filename: runtime.filename().to_string(),
                limits: run_limits,
                cancel: run_flag,
                fetch,
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
            Err(e) => internal(&format!("the run's thread failed: {e}")),
        };
        result.usage.wall_ms = arrived.elapsed().as_millis() as u64;
        redact_result(&mut result, live.outbound.redactor());
        self.metrics.run_finished(
            language.as_str(),
            result.status.as_str(),
            arrived.elapsed().as_secs_f64(),
            result.usage.fuel,
        );
        tracing::info!(
            request_id = %request_id,
            grant = %grant,
            language = %language,
            status = result.status.as_str(),
            wall_ms = result.usage.wall_ms,
            fuel = result.usage.fuel,
            memory_peak_bytes = result.usage.memory_peak_bytes,
            "run finished"
        );
        Started::Ran(result)
    }
}

/// Whether a call the policy admitted got to run. One that did not (the server was too
/// busy, or the call was cancelled or timed out while queued) gets its rate-limit count back.
enum Started {
    Ran(ExecutionResult),
    Not(ExecutionResult),
}

impl Started {
    fn into_result(self) -> ExecutionResult {
        match self {
            Started::Ran(result) | Started::Not(result) => result,
        }
    }
}

/// A call refused for load: `rate_limited`, with a retry hint.
fn busy(rule: String, reason: String) -> Denial {
    let mut denial = Denial::new(Status::RateLimited, rule, reason);
    denial.decision.retry_after_ms = Some(BUSY_RETRY_MS);
    denial
}

/// One run of a grant with a concurrency cap, counted until dropped.
struct GrantSlot<'a> {
    running: &'a std::sync::Mutex<HashMap<String, u32>>,
    grant: Option<String>,
}

impl<'a> GrantSlot<'a> {
    /// A slot, or `None` when the grant is at its cap (no cap: always a slot).
    fn take(
        running: &'a std::sync::Mutex<HashMap<String, u32>>,
        grant: &str,
        cap: Option<u32>,
    ) -> Option<GrantSlot<'a>> {
        let Some(cap) = cap else {
            return Some(GrantSlot {
                running,
                grant: None,
            });
        };
        let mut map = running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = map.entry(grant.to_string()).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(GrantSlot {
            running,
            grant: Some(grant.to_string()),
        })
    }
}

impl Drop for GrantSlot<'_> {
    fn drop(&mut self) {
        if let Some(grant) = &self.grant {
            let mut map = self
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(count) = map.get_mut(grant) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    map.remove(grant);
                }
            }
        }
    }
}

/// A place in the queue, given back when dropped.
struct QueueSlot<'a>(&'a AtomicUsize, &'a Metrics);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        self.1.queued().dec();
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
        error.kind = redactor.redact(&error.kind);
        error.message = redactor.redact(&error.message);
        error.traceback = error.traceback.as_deref().map(|t| redactor.redact(t));
    }
}

/// Checks raw tool arguments against the contract and the limits; the error text tells the
/// caller what to fix.
pub fn parse_args(
    raw: Option<&Map<String, Value>>,
    limits: &Limits,
    available: &[Language],
) -> Result<ExecuteArgs, String> {
    let raw = raw.ok_or("arguments are missing: expected an object with `language` and `code`")?;
    if let Some(unknown) = raw.keys().find(|k| !ARGUMENT_NAMES.contains(&k.as_str())) {
        return Err(format!(
            "unknown argument `{unknown}` (the arguments are: {})",
            ARGUMENT_NAMES.join(", ")
        ));
    }
    let names = || {
        available
            .iter()
            .map(|l| format!("\"{l}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let language = match raw.get("language") {
        None | Some(Value::Null) => {
            return Err(format!("`language` is required: one of {}", names()));
        }
        Some(Value::String(s)) => match Language::from_contract_name(s) {
            Some(l) if available.contains(&l) => l,
            Some(l) => {
                return Err(format!(
                    "language \"{l}\" is not available on this server (available: {})",
                    names()
                ));
            }
            None => return Err(format!("unknown language \"{s}\": use one of {}", names())),
        },
        Some(other) => {
            return Err(format!(
                "`language` must be a string, not {}",
                kind_of(other)
            ));
        }
    };
    let code = match raw.get("code") {
        None | Some(Value::Null) => {
            return Err("`code` is required: the program to run, as a string".into());
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(format!("`code` must be a string, not {}", kind_of(other))),
    };
    if code.len() as u64 > limits.max_code_bytes {
        return Err(format!(
            "`code` is {} bytes; this server accepts at most {} bytes",
            code.len(),
            limits.max_code_bytes
        ));
    }
    let timeout_ms = match raw.get("timeout_ms") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(ms) if ms > 0 => Some(ms),
            _ => {
                return Err(format!(
                    "`timeout_ms` must be a positive whole number of milliseconds, not {n}"
                ));
            }
        },
        Some(other) => {
            return Err(format!(
                "`timeout_ms` must be a number, not {}",
                kind_of(other)
            ));
        }
    };
    let input = raw.get("input").cloned();
    if let Some(v) = &input {
        let size = serde_json::to_string(v).map_or(usize::MAX, |s| s.len());
        if size as u64 > limits.max_input_bytes {
            return Err(format!(
                "`input` is {size} bytes of JSON; this server accepts at most {} bytes",
                limits.max_input_bytes
            ));
        }
    }
    Ok(ExecuteArgs {
        language,
        code,
        timeout_ms,
        input,
    })
}

/// Turns a rejected argument list into the contract's `invalid_arguments` result.
pub fn invalid_arguments(message: String) -> ExecutionResult {
    ExecutionResult::without_run(
        Status::InvalidArguments,
        ErrorInfo::new("InvalidArguments", message),
    )
}

fn denied(denial: Denial) -> ExecutionResult {
    let kind = match denial.status {
        Status::RateLimited => "RateLimited",
        Status::ApprovalDeclined => "ApprovalDeclined",
        _ => "Denied",
    };
    let mut result = ExecutionResult::without_run(
        denial.status,
        ErrorInfo::new(kind, denial.decision.reason.clone()),
    );
    result.policy = Some(denial.decision);
    result
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn internal(message: &str) -> ExecutionResult {
    tracing::error!("{message}");
    ExecutionResult::without_run(Status::Error, ErrorInfo::new("InternalError", message))
}

fn cancelled() -> ExecutionResult {
    ExecutionResult::without_run(
        Status::Error,
        ErrorInfo::new(
            "Cancelled",
            "the call was cancelled by the client before it ran",
        ),
    )
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const JS_TS: [Language; 2] = [Language::Javascript, Language::Typescript];

    fn parse(v: Value) -> Result<ExecuteArgs, String> {
        parse_args(v.as_object(), &Limits::default(), &JS_TS)
    }

    #[test]
    fn accepts_the_contract_arguments() {
        let a = parse(
            json!({"language": "typescript", "code": "1", "timeout_ms": 50, "input": {"a": [1]}}),
        )
        .unwrap();
        assert_eq!(a.language, Language::Typescript);
        assert_eq!(a.timeout_ms, Some(50));
        assert_eq!(a.input, Some(json!({"a": [1]})));
    }

    #[test]
    fn missing_arguments_are_named() {
        assert!(
            parse_args(None, &Limits::default(), &JS_TS)
                .unwrap_err()
                .contains("missing")
        );
        assert!(
            parse(json!({"code": "1"}))
                .unwrap_err()
                .contains("`language` is required")
        );
        assert!(
            parse(json!({"language": "javascript"}))
                .unwrap_err()
                .contains("`code` is required")
        );
    }

    #[test]
    fn wrong_types_are_named() {
        assert!(
            parse(json!({"language": 3, "code": "1"}))
                .unwrap_err()
                .contains("`language` must be a string")
        );
        assert!(
            parse(json!({"language": "javascript", "code": ["x"]}))
                .unwrap_err()
                .contains("not an array")
        );
        assert!(
            parse(json!({"language": "javascript", "code": "1", "timeout_ms": "5"}))
                .unwrap_err()
                .contains("timeout_ms")
        );
        assert!(
            parse(json!({"language": "javascript", "code": "1", "timeout_ms": -5}))
                .unwrap_err()
                .contains("positive")
        );
        assert!(
            parse(json!({"language": "javascript", "code": "1", "timeout_ms": 1.5}))
                .unwrap_err()
                .contains("positive")
        );
    }

    #[test]
    fn unknown_and_unavailable_languages_are_explained() {
        let e = parse(json!({"language": "ruby", "code": "1"})).unwrap_err();
        assert!(
            e.contains("unknown language \"ruby\"") && e.contains("\"javascript\""),
            "{e}"
        );
        let e = parse(json!({"language": "python", "code": "1"})).unwrap_err();
        assert!(e.contains("not available"), "{e}");
    }

    #[test]
    fn unknown_arguments_are_rejected() {
        let e = parse(json!({"language": "javascript", "code": "1", "cwd": "/"})).unwrap_err();
        assert!(e.contains("unknown argument `cwd`"), "{e}");
    }

    #[test]
    fn oversize_code_and_input_are_rejected() {
        let limits = Limits {
            max_code_bytes: 10,
            max_input_bytes: 10,
            ..Limits::default()
        };
        let e = parse_args(
            json!({"language": "javascript", "code": "x".repeat(11)}).as_object(),
            &limits,
            &JS_TS,
        )
        .unwrap_err();
        assert!(e.contains("11 bytes") && e.contains("at most 10"), "{e}");
        let e = parse_args(
            json!({"language": "javascript", "code": "1", "input": "0123456789"}).as_object(),
            &limits,
            &JS_TS,
        )
        .unwrap_err();
        assert!(e.contains("`input` is 12 bytes"), "{e}");
    }

    #[test]
    fn invalid_arguments_result_has_the_status() {
        let r = invalid_arguments("x".into());
        assert_eq!(r.status, Status::InvalidArguments);
        assert!(r.is_error());
    }
}
