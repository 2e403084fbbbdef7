//! The service: everything `execute_code` is, independent of any transport. It owns the
//! policy in force (and its reload), admission (queue, per-grant slots, permits) and the
//! sandbox, and drives each call through the pipeline ([`Service::decide`], `pipeline.rs`).
//! The MCP server and `warden run` both go through it.

mod admission;
mod files;
mod live;
mod pipeline;
mod place;
mod resources;
mod run;
mod sessions;
mod tool_approval;
mod tools;
mod view;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use anyhow::Context as _;

use crate::audit::{AuditLog, AuthEvent};
use crate::contract::{ExecuteArgs, Language, parse_args};
use crate::metrics::Metrics;
use crate::net::AllowRule;
use crate::policy::{CounterStore, FailMode, Limits, Policy, StoreHealth};
use crate::runtimes::Runtimes;
use crate::sandbox::{SPARES_PER_GUEST, Sandbox, SandboxConfig};
use crate::secrets::placeholder;
use crate::workspace::roots::WorkspaceRoot;

use admission::Admission;
pub use files::is_text_file;
use live::PolicyInForce;
pub use pipeline::{AdmittedCall, Approval, ApprovalRequest, AskPerson, PendingApproval, Step};
pub use resources::{ResourceContent, ResourceEntry};
pub use run::RunWatch;
use sessions::Sessions;
pub use view::{CallerView, CredentialHint, NetworkSummary, ToolsSummary, WorkspaceSummary};

pub struct Service {
    sandbox: Arc<Sandbox>,
    runtimes: Arc<Runtimes>,
    policy: PolicyInForce,
    admission: Admission,
    audit: Option<Arc<AuditLog>>,
    metrics: Arc<Metrics>,
    /// Where workspaces are made (`None`: the policy turns them off).
    workspaces: Option<Arc<WorkspaceRoot>>,
    sessions: Sessions,
    /// Sessions the sandbox's instance pool was sized for at start.
    session_capacity: u32,
}

impl Service {
    /// Builds the sandbox (compiling or loading the guests) for `policy`.
    pub fn new(policy: Policy, cache_dir: Option<PathBuf>) -> anyhow::Result<Service> {
        Service::with_store(
            policy,
            cache_dir,
            Arc::new(crate::policy::MemoryCounterStore::default()),
        )
    }

    /// [`Service::new`] with the rate-limit counters in `store`.
    pub fn with_store(
        policy: Policy,
        cache_dir: Option<PathBuf>,
        store: Arc<dyn CounterStore>,
    ) -> anyhow::Result<Service> {
        Service::with_runtimes(policy, cache_dir, store, Runtimes::builtin())
    }

    /// [`Service::with_store`] running `runtimes` (e.g. an operator's Python guest).
    pub fn with_runtimes(
        policy: Policy,
        cache_dir: Option<PathBuf>,
        store: Arc<dyn CounterStore>,
        runtimes: Runtimes,
    ) -> anyhow::Result<Service> {
        let limits = &policy.limits;
        let session_capacity = policy.sessions.as_ref().map_or(0, |s| s.max_sessions);
        let workspaces = if policy.workspace.enabled {
            let base = policy.workspace.base_dir().ok_or_else(|| {
                anyhow::anyhow!("no directory for workspaces: set [workspace] directory")
            })?;
            let root = WorkspaceRoot::open(&base)
                .with_context(|| format!("opening the workspace directory {}", base.display()))?;
            Some(Arc::new(root))
        } else {
            None
        };
        let config = SandboxConfig {
            wasm_stack_bytes: usize::try_from(limits.wasm_stack_bytes)?,
            max_memory_bytes: usize::try_from(limits.memory_bytes)?,
            max_concurrent_runs: limits.concurrency(),
            kept_instances: usize::try_from(session_capacity)?,
            spares_per_guest: SPARES_PER_GUEST,
            cache_dir,
        };
        let sandbox = Sandbox::new(&config, &runtimes.guests())?;
        let metrics = Arc::new(Metrics::new());
        Ok(Service {
            sandbox: Arc::new(sandbox),
            runtimes: Arc::new(runtimes),
            admission: Admission::new(limits.concurrency(), metrics.clone()),
            policy: PolicyInForce::with_counters(policy, store)?,
            audit: None,
            metrics,
            workspaces,
            sessions: Sessions::default(),
            session_capacity,
        })
    }

    /// Keeps rate-limit counters in `store` from now on (the policy in force is built again:
    /// [`Service::with_store`] does it once).
    pub fn with_counters(mut self, store: Arc<dyn CounterStore>) -> anyhow::Result<Service> {
        let policy = self.policy.current().engine.policy().clone();
        self.policy = PolicyInForce::with_counters(policy, store)?;
        Ok(self)
    }

    /// The counter store (approvals claim their answers in it, so that replicas sharing it
    /// redeem each answer once).
    pub fn counter_store(&self) -> Arc<dyn CounterStore> {
        self.policy.counter_store()
    }

    pub fn counter_fail_mode(&self) -> FailMode {
        self.policy.counters().fail_mode()
    }

    /// Whether the rate-limit store answers, for `/healthz`.
    pub fn counter_health(&self) -> StoreHealth {
        self.policy.counters().health()
    }

    /// Sends audit events to `log` (without one, nothing is audited).
    pub fn with_audit(mut self, log: Arc<AuditLog>) -> Service {
        self.audit = Some(log);
        self
    }

    /// Puts a new (already validated) policy in force for the calls that start from now on;
    /// rate-limit counters carry over (see `live.rs` for what waits for a restart).
    pub fn reload(&self, policy: Policy) -> anyhow::Result<()> {
        self.policy.reload(policy)
    }

    /// Whether the policy in force hides the tool: it is left out of the tool list (and every
    /// call is denied).
    pub fn tool_hidden(&self) -> bool {
        self.policy.current().engine.hides_the_tool()
    }

    /// The policy in force as `grant` sees it: limits, languages, hosts and credentials.
    pub fn caller_view(&self, grant: &str) -> CallerView {
        let live = self.policy.current();
        let caller = live.engine.grant(grant);
        let describe = |r: &AllowRule| match r.methods() {
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
        // A grant with its own hosts lists those (a request must pass both lists).
        let hosts = match caller.hosts() {
            Some(rules) if !policy_hosts.is_empty() => rules.iter().map(describe).collect(),
            _ => policy_hosts,
        };
        let credentials = live
            .credentials
            .names()
            .filter(|name| {
                caller
                    .credentials()
                    .is_none_or(|allowed| allowed.iter().any(|a| a == name))
            })
            .map(|name| CredentialHint {
                name: name.to_string(),
                placeholder: placeholder(name),
            })
            .collect();
        let policy = live.policy();
        let limits = caller.limits();
        let workspace = &policy.workspace;
        let tools = view::summary(&live, grant, limits.max_tool_calls);
        CallerView {
            arguments: policy.argument_limits(&limits),
            limits,
            languages: caller.languages(&self.runtimes.languages()),
            python_packages: self.runtimes.python_packages().to_vec(),
            workspace: workspace.enabled.then_some(WorkspaceSummary {
                max_bytes: workspace.max_bytes,
                max_files: workspace.max_files,
                max_file_bytes: workspace.max_file_bytes,
            }),
            sessions: policy.sessions.clone(),
            tasks: policy.tasks.enabled.then(|| policy.tasks.clone()),
            tools,
            network: NetworkSummary {
                hosts,
                credentials,
                max_fetches: live.policy().network.max_fetches,
            },
        }
    }

    /// Connects to the upstream servers not connected yet and lists their tools (each within
    /// a few seconds), so that the tool description can declare them.
    pub async fn list_upstream_tools(&self) {
        let live = self.policy.current();
        let lists = live.upstreams.iter().map(|upstream| async move {
            let listed =
                tokio::time::timeout(std::time::Duration::from_secs(5), upstream.tools()).await;
            if let Ok(Err(e)) = listed {
                tracing::warn!("{e}");
            }
        });
        for list in lists {
            list.await;
        }
    }

    /// The limits in force for `grant`.
    pub fn limits(&self, grant: &str) -> Limits {
        self.policy.current().engine.grant(grant).limits()
    }

    /// The limits a run of `grant` started as a task gets.
    pub fn task_limits(&self, grant: &str) -> Limits {
        self.policy.current().engine.grant(grant).task_limits()
    }

    /// The policy's `[tasks]` in force.
    pub fn task_settings(&self) -> crate::policy::TaskSettings {
        self.policy.current().policy().tasks.clone()
    }

    /// The languages the server runs.
    pub fn languages(&self) -> Vec<Language> {
        self.runtimes.languages()
    }

    /// Checks raw tool arguments against the contract and `grant`'s limits; the error text
    /// tells the caller what to fix.
    pub fn parse_args(
        &self,
        grant: &str,
        raw: Option<&Map<String, Value>>,
    ) -> Result<ExecuteArgs, String> {
        let live = self.policy.current();
        let limits = live.engine.grant(grant).limits();
        parse_args(
            raw,
            &live.policy().argument_limits(&limits),
            &self.runtimes.languages(),
        )
    }

    /// The grant a bearer token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<String> {
        self.policy
            .current()
            .tokens
            .authenticate(token)
            .map(str::to_string)
    }

    /// Whether the policy has grants that authenticate by token.
    pub fn has_token_grants(&self) -> bool {
        self.policy.current().tokens.any()
    }

    /// Audits a request refused before it reached the tool (no token, or a bad one).
    pub fn record_auth_refusal(&self, reason: &str, path: &str) {
        self.record(&AuthEvent::denied(reason, path));
    }

    /// The metrics, in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        self.metrics.encode()
    }

    /// Calls running or waiting for a sandbox right now.
    pub fn calls_in_flight(&self) -> i64 {
        self.admission.in_flight()
    }

    /// Records an event whose loss cannot change the call any more.
    fn record<E: serde::Serialize>(&self, event: &E) {
        if let Some(log) = &self.audit
            && let Err(e) = log.record(event)
        {
            tracing::error!("the audit log cannot be written: {e}");
        }
    }
}
