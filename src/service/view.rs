//! What a caller may do, as one value: the tool description and the input schema are made
//! from it (never secret values, only credential names and their placeholders).

use super::live::Live;
use crate::contract::{ArgumentLimits, Language};
use crate::policy::{Limits, PolicyEngine, SessionSettings};
use crate::runtimes::PythonPackage;
use crate::upstream::declare;

/// The policy in force as `grant` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerView {
    pub limits: Limits,
    /// What the caller's arguments are checked against (the input schema's numbers).
    pub arguments: ArgumentLimits,
    /// The languages the server runs, narrowed by the policy and the grant.
    pub languages: Vec<Language>,
    pub network: NetworkSummary,
    /// `None`: runs get no `/workspace`.
    pub workspace: Option<WorkspaceSummary>,
    /// `None`: no sessions.
    pub sessions: Option<SessionSettings>,
    /// `None`: the policy names no upstream servers.
    pub tools: Option<ToolsSummary>,
    /// The packages built into the Python guest.
    pub python_packages: Vec<PythonPackage>,
    /// Present when calls may run as tasks: the policy's `[tasks]`.
    pub tasks: Option<crate::policy::TaskSettings>,
}

/// The upstream tools the caller may call from code, for the tool description: TypeScript
/// declarations of those listed so far (servers connect lazily, see `Service::list_tools`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolsSummary {
    pub servers: Vec<String>,
    pub declarations: Vec<String>,
    pub max_calls: u64,
}

/// The workspace's quotas, for the tool description.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkspaceSummary {
    pub max_bytes: u64,
    pub max_files: u64,
    pub max_file_bytes: u64,
}

/// Allowed hosts and credentials, for the tool description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSummary {
    pub hosts: Vec<String>,
    pub credentials: Vec<CredentialHint>,
    pub max_fetches: u32,
}

/// A credential the caller may use: its name and the placeholder the code writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialHint {
    pub name: String,
    pub placeholder: String,
}

/// The engine that decides `server`'s tools, and the name it knows `tool` by.
pub(super) fn engine_for<'l>(
    live: &'l Live,
    server: &str,
    tool: &str,
) -> (&'l PolicyEngine, String) {
    match live.upstream_engines.get(server) {
        Some(own) => (own, tool.to_string()),
        None => (&live.engine, format!("{server}.{tool}")),
    }
}

/// Whether `grant` may see `tool` at all: its grant names it, and the policy neither hides
/// nor denies it outright.
pub(super) fn visible(live: &Live, grant: &str, server: &str, tool: &str) -> bool {
    let (engine, name) = engine_for(live, server, tool);
    live.engine.grant(grant).may_use_tool(server, tool)
        && !engine.hides(&name)
        && !engine.denies_outright(&name)
}

/// What the tool description says about tools from code (the tools listed so far).
pub(super) fn summary(live: &Live, grant: &str, max_calls: u64) -> Option<ToolsSummary> {
    if live.upstreams.is_empty() {
        return None;
    }
    let mut declarations = Vec::new();
    for upstream in live.upstreams.iter() {
        for tool in upstream.cached_tools().iter().flat_map(|t| t.iter()) {
            if visible(live, grant, upstream.name(), &tool.name) {
                declarations.push(declare(upstream.name(), tool).typescript);
            }
        }
    }
    Some(ToolsSummary {
        servers: live
            .upstreams
            .iter()
            .map(|u| u.name().to_string())
            .collect(),
        declarations,
        max_calls,
    })
}
