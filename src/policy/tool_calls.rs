//! The engine's view of the calls the code makes to upstream servers' tools: the same steps
//! as for `execute_code` (hidden, the tool's action or `default`, argument rules, rate
//! limits), on the tool's own arguments. In an upstream's own document, `all_tools` governs
//! that server's tools and its counters are its own.

use std::sync::Arc;

use serde_json::Value;

use super::admit::Reservation;
use super::document::{Action, Policy, PolicyError};
use super::engine::{Decision, Denial, PolicyEngine};
use super::ratelimit::{Caller, CounterStore, LimitSpec};
use super::rules::Arguments;

#[derive(Debug, Clone, Copy)]
pub struct ToolCall<'a> {
    pub tool: &'a str,
    pub arguments: &'a Value,
}

impl PolicyEngine {
    /// The engine of an upstream server's own document (a gateway policy written for that
    /// server): it decides that server's tools by their bare names.
    pub fn for_upstream(
        policy: Policy,
        counters: Arc<dyn CounterStore>,
        server: &str,
    ) -> Result<PolicyEngine, PolicyError> {
        PolicyEngine::build(policy, counters, Some(server.to_string()))
    }

    /// [`Self::check`] for a tool the code calls on an upstream server. A tool the document
    /// does not name gets the `default` action (and, in an upstream's own document,
    /// `all_tools`' rules).
    pub fn check_tool(&self, call: ToolCall<'_>, caller: &Caller<'_>) -> Decision {
        let every_tool = if self.upstream.is_some() {
            &self.rules[self.rules.len() - self.policy.all_tools.rules.len()..]
        } else {
            &[]
        };
        let rules = self
            .tool_rules
            .get(call.tool)
            .map_or(every_tool, Vec::as_slice);
        self.verdict(call.tool, Arguments::Tool(call.arguments), rules, caller)
    }

    /// Whether the policy hides `tool`: named in `hide`, or `"*"`.
    pub fn hides(&self, tool: &str) -> bool {
        self.policy.hide.iter().any(|h| h == tool || h == "*")
    }

    /// Whether `tool`'s action (or the default) denies every call of it.
    pub fn denies_outright(&self, tool: &str) -> bool {
        self.action_of(tool).0 == Action::Deny
    }

    /// [`Self::admit`] for a tool the code calls: the tool's limits (and, in an upstream's own
    /// document, `all_tools`').
    pub fn admit_tool(
        &self,
        call: ToolCall<'_>,
        caller: &Caller<'_>,
        now_ms: u64,
    ) -> Result<Reservation, Denial> {
        let every_tool: &[LimitSpec] = if self.upstream.is_some() {
            &self.policy.all_tools.limits
        } else {
            &[]
        };
        let specs: Vec<&LimitSpec> = self
            .policy
            .tools
            .get(call.tool)
            .map(|t| &t.limits[..])
            .unwrap_or(&[])
            .iter()
            .chain(every_tool)
            .collect();
        self.count(&specs, Arguments::Tool(call.arguments), caller, now_ms)
    }
}
