//! The engine: a policy ready to decide. `decide(call, caller)` answers admit, ask a person,
//! or deny (hide, the tool's action, argument rules, languages); `admit` counts the call
//! against every rate limit at once. Knows nothing of MCP or of the sandbox.

use std::collections::HashMap;
use std::sync::Arc;

use super::admit::Reader;
use super::document::{Action, Policy, PolicyError};
use super::grants::Grant;
use super::ratelimit::{Caller, CounterStore, LimitSpec};
use super::rules::{Arguments, Effect, Outcome, Rule};
use crate::contract::{ExecuteArgs, PolicyDecision, Status, TOOL_NAME};

/// What the policy says about a call before any rate limit is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Admit,
    /// Allowed once a person approves it.
    NeedsApproval(Question),
    Deny(Denial),
}

/// Why a call needs a person's approval: the rule that asks, and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub rule: String,
    pub reason: String,
}

/// A call the policy stopped: the contract's status plus `policy {rule, reason, retry_after_ms}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub status: Status,
    pub decision: PolicyDecision,
}

impl Denial {
    pub fn new(status: Status, rule: impl Into<String>, reason: impl Into<String>) -> Denial {
        Denial {
            status,
            decision: PolicyDecision {
                rule: rule.into(),
                reason: reason.into(),
                retry_after_ms: None,
            },
        }
    }
}

/// Milliseconds since the Unix epoch, the clock counters' windows are aligned to.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A policy ready to decide: rules compiled, counters attached. Counters live in the store,
/// not here, so that a reloaded policy keeps them.
pub struct PolicyEngine {
    pub(super) policy: Policy,
    /// `execute_code`'s rules, then the rules for every tool (`all_tools`), in order.
    pub(super) rules: Vec<Rule>,
    /// The rules of every other tool the document names (an upstream server's tools), each
    /// followed by `all_tools`' when the document is an upstream's own.
    pub(super) tool_rules: HashMap<String, Vec<Rule>>,
    /// Each counter a limit defines, by name, for conditions that read it.
    pub(super) limits_by_counter: HashMap<String, LimitSpec>,
    pub(super) counters: Arc<dyn CounterStore>,
    /// Set for an upstream server's own document: its `all_tools` governs that server's tools
    /// (not `execute_code`), and its counters are its own (prefixed with the server's name).
    pub(super) upstream: Option<String>,
}

/// A call the code makes to a tool of an upstream server, as the policy sees it: the tool's
/// name in the document (`server.tool` in Warden's own policy, the bare name in the server's
/// own document) and its arguments.
impl PolicyEngine {
    pub fn new(
        policy: Policy,
        counters: Arc<dyn CounterStore>,
    ) -> Result<PolicyEngine, PolicyError> {
        PolicyEngine::build(policy, counters, None)
    }

    pub(super) fn build(
        policy: Policy,
        counters: Arc<dyn CounterStore>,
        upstream: Option<String>,
    ) -> Result<PolicyEngine, PolicyError> {
        let compile = |specs: &mut dyn Iterator<Item = &super::rules::RuleSpec>| {
            specs
                .map(Rule::compile)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|message| PolicyError::Invalid {
                    origin: "policy".into(),
                    message,
                })
        };
        let own_rules = policy.tool().map(|t| &t.rules[..]).unwrap_or(&[]);
        let rules = compile(&mut own_rules.iter().chain(&policy.all_tools.rules))?;
        let every_tool: &[super::rules::RuleSpec] = if upstream.is_some() {
            &policy.all_tools.rules
        } else {
            &[]
        };
        let mut tool_rules = HashMap::new();
        for (name, tool) in policy.tools.iter().filter(|(n, _)| *n != TOOL_NAME) {
            tool_rules.insert(
                name.clone(),
                compile(&mut tool.rules.iter().chain(every_tool))?,
            );
        }
        let mut limits_by_counter = HashMap::new();
        for spec in policy.tools.values().flat_map(|t| &t.limits) {
            limits_by_counter
                .entry(spec.counter.clone())
                .or_insert_with(|| spec.clone());
        }
        for spec in &policy.all_tools.limits {
            limits_by_counter
                .entry(spec.counter.clone())
                .or_insert_with(|| spec.clone());
        }
        Ok(PolicyEngine {
            policy,
            rules,
            tool_rules,
            limits_by_counter,
            counters,
            upstream,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// `grant` as a caller of the policy in force.
    pub fn grant<'a>(&'a self, grant: &'a str) -> Grant<'a> {
        self.policy.grant(grant)
    }

    /// Whether the policy hides the tool (from the tool list, and from every call).
    pub fn hides_the_tool(&self) -> bool {
        self.policy.hide.iter().any(|h| h == TOOL_NAME || h == "*")
    }

    /// The caller's own language list, then [`Self::check`]. Counts nothing.
    pub fn decide(&self, args: &ExecuteArgs, caller: &Caller<'_>) -> Decision {
        let grant = self.grant(caller.grant);
        if let Some(allowed) = grant.granted_languages()
            && !allowed.iter().any(|l| l == args.language.as_str())
        {
            return Decision::Deny(Denial::new(
                Status::Denied,
                format!("grants.{}.languages", grant.name()),
                format!(
                    "this caller may not use {} (it may use: {})",
                    args.language,
                    allowed.join(", ")
                ),
            ));
        }
        self.check(args, caller)
    }

    /// For any caller, in the gateway's order: hidden, the tool's action (or the default),
    /// argument rules (the tool's, then every tool's), the tool's languages; then approval.
    /// Counts nothing; conditions on counters read them as they stand now.
    pub fn check(&self, args: &ExecuteArgs, caller: &Caller<'_>) -> Decision {
        self.verdict(TOOL_NAME, Arguments::Execute(args), &self.rules, caller)
    }

    pub(super) fn verdict(
        &self,
        tool: &str,
        args: Arguments<'_>,
        rules: &[Rule],
        caller: &Caller<'_>,
    ) -> Decision {
        let now = now_ms();
        if self.hides(tool) {
            return Decision::Deny(Denial::new(
                Status::Denied,
                "hide",
                format!("Tool \"{tool}\" is hidden by policy"),
            ));
        }
        let (action, source) = self.action_of(tool);
        if action == Action::Deny {
            return Decision::Deny(Denial::new(
                Status::Denied,
                source,
                format!("the policy denies {tool}"),
            ));
        }
        let reader = Reader::new(self, caller, now);
        let mut approval = None;
        for rule in rules {
            let outcome = rule.outcome(args, &reader);
            match (rule.effect, outcome) {
                (_, Outcome::Passes) => {}
                (Effect::Deny, Outcome::AppliesAtCounter(counter)) => {
                    let mut denial = Denial::new(Status::Denied, &rule.name, &rule.message);
                    if let Some(spec) = self.limits_by_counter.get(&counter) {
                        let window = spec.window.millis();
                        denial.status = Status::RateLimited;
                        denial.decision.retry_after_ms =
                            Some((window - now % window.max(1)).max(1));
                    }
                    return Decision::Deny(denial);
                }
                (Effect::Deny, _) => {
                    return Decision::Deny(Denial::new(Status::Denied, &rule.name, &rule.message));
                }
                (Effect::RequireApproval, _) => {
                    approval.get_or_insert_with(|| (rule.name.clone(), rule.message.clone()));
                }
            }
        }
        if let Some(denial) = reader.unavailable_denial() {
            return Decision::Deny(denial);
        }
        if let Arguments::Execute(args) = args
            && let Some(allowed) = self.policy.tool().and_then(|t| t.languages.as_ref())
            && !allowed.iter().any(|l| l == args.language.as_str())
        {
            return Decision::Deny(Denial::new(
                Status::Denied,
                format!("tools.{TOOL_NAME}.languages"),
                format!(
                    "the policy does not allow {} here (allowed: {})",
                    args.language,
                    allowed.join(", ")
                ),
            ));
        }
        match (action, approval) {
            (_, Some((rule, reason))) => Decision::NeedsApproval(Question { rule, reason }),
            (Action::RequireApproval, None) => Decision::NeedsApproval(Question {
                rule: source,
                reason: format!("the policy requires a person to approve every {tool} call"),
            }),
            (_, None) => Decision::Admit,
        }
    }

    /// The tool's action and where it comes from.
    pub(super) fn action(&self) -> (Action, String) {
        self.action_of(TOOL_NAME)
    }

    pub(super) fn action_of(&self, tool: &str) -> (Action, String) {
        match self.policy.tools.get(tool).and_then(|t| t.action) {
            Some(a) => (a, format!("tools.{tool}.action")),
            None => (self.policy.default, "default".to_string()),
        }
    }
}
