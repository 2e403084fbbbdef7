//! The policy in force: the engine, the outbound side (allowlist, credentials, HTTP client)
//! and the grants' tokens of one policy version, swapped whole by a reload. Rate-limit
//! counters live outside it and carry over.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::auth::GrantTokens;
use crate::net::{CredentialBroker, Outbound, Request};
use crate::policy::{CounterStore, Policy, PolicyEngine};
use crate::secrets::Credentials;
use crate::upstream::{UpstreamSpec, Upstreams};

/// One policy version, ready to decide and to fetch.
pub(super) struct Live {
    pub engine: PolicyEngine,
    pub outbound: Arc<Outbound>,
    pub credentials: Arc<Credentials>,
    pub tokens: GrantTokens,
    /// The upstream servers, and the engines of those with their own policy document.
    pub upstreams: Arc<Upstreams>,
    pub upstream_engines: BTreeMap<String, PolicyEngine>,
}

impl Live {
    /// Loads `policy`'s credentials and tokens. One that cannot be loaded is logged and
    /// unusable; it never stops the server.
    fn build(policy: Policy, counters: Arc<dyn CounterStore>) -> anyhow::Result<Live> {
        let (credentials, warnings) = Credentials::load(&policy.credentials);
        let (tokens, token_warnings) = GrantTokens::load(&policy.grants);
        for warning in warnings.iter().chain(&token_warnings) {
            tracing::warn!("{warning}");
        }
        let credentials = Arc::new(credentials);
        let outbound = Arc::new(Outbound::new(&policy.network, credentials.clone())?);
        let upstreams = Upstreams::new(&policy.upstreams, |name, spec| {
            injected_headers(&credentials, name, spec)
        });
        let mut upstream_engines = BTreeMap::new();
        for (name, own) in &policy.upstream_policies {
            let engine = PolicyEngine::for_upstream(own.clone(), counters.clone(), name)?;
            upstream_engines.insert(name.clone(), engine);
        }
        Ok(Live {
            engine: PolicyEngine::new(policy, counters)?,
            outbound,
            credentials,
            tokens,
            upstreams: Arc::new(upstreams),
            upstream_engines,
        })
    }

    pub fn policy(&self) -> &Policy {
        self.engine.policy()
    }
}

/// The headers an upstream's credentials put on its requests, each only within its `hosts`
/// (as for the guest's fetch). One that does not apply is logged and left out.
fn injected_headers(
    credentials: &Credentials,
    name: &str,
    spec: &UpstreamSpec,
) -> Vec<(String, String)> {
    let (Some(url), false) = (&spec.url, spec.credentials.is_empty()) else {
        return Vec::new();
    };
    let Ok(url) = url::Url::parse(url) else {
        return Vec::new();
    };
    let request = Request {
        method: "POST".into(),
        url,
        headers: Vec::new(),
        body: Vec::new(),
    };
    match credentials.apply(&request, Some(&spec.credentials), true) {
        Ok(with) => {
            for missing in spec.credentials.iter().filter(|c| !with.used.contains(c)) {
                tracing::warn!(
                    "upstream `{name}`: credential `{missing}` is not sent (its url is outside the credential's hosts, or its value is unavailable)"
                );
            }
            with.request.headers
        }
        Err(why) => {
            tracing::warn!("upstream `{name}`: its credentials are not sent: {why}");
            Vec::new()
        }
    }
}

pub(super) struct PolicyInForce {
    live: RwLock<Arc<Live>>,
    counters: Arc<dyn CounterStore>,
}

impl PolicyInForce {
    pub fn with_counters(
        policy: Policy,
        counters: Arc<dyn CounterStore>,
    ) -> anyhow::Result<PolicyInForce> {
        Ok(PolicyInForce {
            live: RwLock::new(Arc::new(Live::build(policy, counters.clone())?)),
            counters,
        })
    }

    pub fn counters(&self) -> &dyn CounterStore {
        self.counters.as_ref()
    }

    pub fn counter_store(&self) -> Arc<dyn CounterStore> {
        self.counters.clone()
    }

    pub fn current(&self) -> Arc<Live> {
        self.live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts a new (already validated) policy in force for the calls that start from now on.
    /// The limits that shape the sandbox itself (memory, wasm stack, concurrency) keep their
    /// start-up values until a restart, and so does the audit log; a warning says so.
    pub fn reload(&self, mut policy: Policy) -> anyhow::Result<()> {
        let current = self.current();
        let pinned = &current.policy().limits;
        let limits = &mut policy.limits;
        for (name, old, new) in [
            (
                "memory_bytes",
                pinned.memory_bytes,
                &mut limits.memory_bytes,
            ),
            (
                "wasm_stack_bytes",
                pinned.wasm_stack_bytes,
                &mut limits.wasm_stack_bytes,
            ),
        ] {
            if old != *new {
                tracing::warn!(
                    "limits.{name} changed from {old} to {new}: it takes effect at the next restart"
                );
                *new = old;
            }
        }
        if pinned.max_concurrent_runs != limits.max_concurrent_runs {
            tracing::warn!(
                "limits.max_concurrent_runs changed from {} to {}: it takes effect at the next restart",
                pinned.max_concurrent_runs,
                limits.max_concurrent_runs
            );
            limits.max_concurrent_runs = pinned.max_concurrent_runs;
        }
        if policy.audit != current.policy().audit {
            tracing::warn!(
                "[audit] changed: the audit log keeps its start-up settings until the next restart"
            );
        }
        let next = Arc::new(Live::build(policy, self.counters.clone())?);
        *self.live.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(())
    }
}
