//! The engine: a policy ready to decide. `decide(call, grant)` answers admit, ask a person,
//! or deny (argument rules, then the tool's action); `admit` counts the call against every
//! rate limit at once. Knows nothing of MCP or of the sandbox.

use std::sync::Arc;

use super::document::{Action, Policy, PolicyError};
use super::grants::Grant;
use super::ratelimit::{Caller, CounterKey, CounterStore, LimitSpec};
use super::rules::{Effect, Rule};
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

/// A policy ready to decide: rules compiled, counters attached. Counters live in the store,
/// not here, so that a reloaded policy keeps them.
pub struct PolicyEngine {
    policy: Policy,
    rules: Vec<Rule>,
    counters: Arc<dyn CounterStore>,
}

impl PolicyEngine {
    pub fn new(
        policy: Policy,
        counters: Arc<dyn CounterStore>,
    ) -> Result<PolicyEngine, PolicyError> {
        let rules = match policy.tool() {
            Some(tool) => tool
                .rules
                .iter()
                .map(Rule::compile)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|message| PolicyError::Invalid {
                    origin: "policy".into(),
                    message,
                })?,
            None => Vec::new(),
        };
        Ok(PolicyEngine {
            policy,
            rules,
            counters,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// `grant` as a caller of the policy in force.
    pub fn grant<'a>(&'a self, grant: &'a str) -> Grant<'a> {
        self.policy.grant(grant)
    }

    /// The caller's own language list, then argument rules, then the tool's action. Counts
    /// nothing.
    pub fn decide(&self, args: &ExecuteArgs, grant: &Grant<'_>) -> Decision {
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
        self.check(args)
    }

    /// Argument rules, then the tool's action, for any caller. Counts nothing.
    pub fn check(&self, args: &ExecuteArgs) -> Decision {
        let tool = self.policy.tool();
        let mut approval = None;
        for rule in self.rules.iter().filter(|r| r.matches(args)) {
            match rule.effect {
                Effect::Deny => {
                    return Decision::Deny(Denial::new(Status::Denied, &rule.name, &rule.message));
                }
                Effect::RequireApproval => {
                    approval.get_or_insert_with(|| (rule.name.clone(), rule.message.clone()));
                }
            }
        }
        if let Some(allowed) = tool.and_then(|t| t.languages.as_ref())
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
        let (action, source) = match tool.and_then(|t| t.action) {
            Some(a) => (a, format!("tools.{TOOL_NAME}.action")),
            None => (self.policy.default, "default".to_string()),
        };
        match (action, approval) {
            (Action::Deny, _) => Decision::Deny(Denial::new(
                Status::Denied,
                source,
                format!("the policy denies {TOOL_NAME}"),
            )),
            (_, Some((rule, reason))) => Decision::NeedsApproval(Question { rule, reason }),
            (Action::RequireApproval, None) => Decision::NeedsApproval(Question {
                rule: source,
                reason: format!("the policy requires a person to approve every {TOOL_NAME} call"),
            }),
            (Action::Allow, None) => Decision::Admit,
        }
    }

    /// The decision for `args`, step by step, without counting anything: which rules match,
    /// what the action is, which counters the call would count against.
    pub fn explain(&self, args: &ExecuteArgs, caller: &Caller<'_>) -> Vec<String> {
        let mut trace = vec![format!(
            "caller: grant `{}`, session `{}`; language {}, {} bytes of code",
            caller.grant,
            caller.session,
            args.language,
            args.code.len()
        )];
        for rule in &self.rules {
            let effect = match rule.effect {
                Effect::Deny => "deny",
                Effect::RequireApproval => "require approval",
            };
            if rule.matches(args) {
                trace.push(format!(
                    "rule `{}` matches: {effect} ({})",
                    rule.name, rule.message
                ));
            } else {
                trace.push(format!("rule `{}` does not match", rule.name));
            }
        }
        let verdict = self.check(args);
        trace.push(match &verdict {
            Decision::Admit => "action: allow".to_string(),
            Decision::NeedsApproval(Question { rule, reason }) => {
                format!("action: require approval (rule `{rule}`: {reason})")
            }
            Decision::Deny(d) => format!(
                "action: {} (rule `{}`: {})",
                d.status.as_str(),
                d.decision.rule,
                d.decision.reason
            ),
        });
        if !matches!(verdict, Decision::Deny(_)) {
            let specs = self
                .policy
                .tool()
                .map(|t| t.limits.iter())
                .into_iter()
                .flatten()
                .chain(self.policy.all_tools.limits.iter());
            let mut any = false;
            for spec in specs {
                any = true;
                let key = CounterKey::for_caller(spec, caller);
                trace.push(format!(
                    "rate limit: counter `{}` allows {} per {:?}",
                    key.key, spec.max, spec.window
                ));
            }
            if !any {
                trace.push("rate limits: none apply".to_string());
            }
            trace.push(match verdict {
                Decision::Admit => "decision: allow (if the counters have room)".to_string(),
                _ => "decision: ask a person, then count and run".to_string(),
            });
        } else {
            trace.push("decision: deny (nothing is counted)".to_string());
        }
        trace
    }

    /// Counts the call against every rate limit that applies, all or nothing.
    pub fn admit(&self, caller: &Caller<'_>, now_ms: u64) -> Result<(), Denial> {
        let (keys, specs) = self.counter_keys(caller);
        if keys.is_empty() {
            return Ok(());
        }
        self.counters.try_admit(&keys, now_ms).map_err(|refusal| {
            let spec = specs[refusal.index.min(specs.len() - 1)];
            let mut denial = Denial::new(
                Status::RateLimited,
                format!("rate_limit.{}", spec.counter),
                format!(
                    "at most {} calls per {:?} ({:?} scope); try again in {} ms",
                    spec.max, spec.window, spec.scope, refusal.retry_after_ms
                )
                .to_lowercase(),
            );
            denial.decision.retry_after_ms = Some(refusal.retry_after_ms);
            denial
        })
    }

    /// Gives back a call [`admit`](Self::admit)ted at `admitted_ms` that never started because
    /// the server was too busy: a caller told to retry is not charged twice.
    pub fn refund(&self, caller: &Caller<'_>, admitted_ms: u64) {
        let (keys, _) = self.counter_keys(caller);
        if !keys.is_empty() {
            self.counters.refund(&keys, admitted_ms);
        }
    }

    /// The counters a call by `caller` counts in, each with the limit it comes from.
    fn counter_keys(&self, caller: &Caller<'_>) -> (Vec<CounterKey>, Vec<&LimitSpec>) {
        let specs: Vec<&LimitSpec> = self
            .policy
            .tool()
            .map(|t| t.limits.iter())
            .into_iter()
            .flatten()
            .chain(self.policy.all_tools.limits.iter())
            .collect();
        // The same counter named twice (e.g. by the tool and by all_tools) is one counter: the
        // call counts once, against the smaller max.
        let mut keys: Vec<CounterKey> = Vec::new();
        let mut key_specs: Vec<&LimitSpec> = Vec::new();
        for spec in &specs {
            let key = CounterKey::for_caller(spec, caller);
            match keys
                .iter()
                .position(|k| k.key == key.key && k.window_ms == key.window_ms)
            {
                Some(i) if key.max < keys[i].max => {
                    keys[i] = key;
                    key_specs[i] = spec;
                }
                Some(_) => {}
                None => {
                    keys.push(key);
                    key_specs.push(spec);
                }
            }
        }
        (keys, key_specs)
    }
}
