//! What a caller may do, as one value: the tool description and the input schema are made
//! from it (never secret values, only credential names and their placeholders).

use crate::contract::{ArgumentLimits, Language};
use crate::policy::{Limits, SessionSettings};

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
