//! Intercept's YAML policy (PolicyLayer's open-source gateway: its POLICY.md and
//! `internal/config`, `internal/engine`), translated so that it decides here as it does there.
//!
//! - A tool listed under `tools` is allowed (`action = "allow"`), so `default: deny` denies
//!   only unlisted tools, before any rule; `"*"` rules become `[all_tools]` rules, after the
//!   tool's own.
//! - `action: deny` is a rule without conditions; `evaluate` is a rule that `require`s its
//!   conditions (any failing one denies). Conditions keep the gateway's form and comparisons.
//! - A `state` block is a limit on the counter `<tool>.<counter>` (`_global.<counter>` under
//!   `"*"`), global in scope as the gateway's counters are, counting `increment` or the
//!   `increment_from` argument. Its bound is where the gateway finds it: the rule's own `lt`
//!   (bound - 1) or `lte` condition on that counter; a counter without one is never counted
//!   (as there), which `policy check` notes.
//! - `rate_limit: N/window` is the gateway's shorthand for such a rule on `_rate_<window>`.
//! - Keys the gateway ignores are ignored here too, and noted.

mod read;

use super::{Findings, Node};
use crate::policy::document::{Action, Policy, PolicyError, ToolPolicy};
use crate::policy::ratelimit::{LimitSpec, Scope};
use crate::policy::rules::{Effect, Operator, RuleSpec, is_gateway_path};
use read::{Rule, State, hide_list, ignored, parse_rate_limit, read_rules, window};

impl Policy {
    /// Translates an Intercept policy. Every error is listed, each at its line and column;
    /// the notes say which keys the gateway would ignore, and [`Policy::notes`].
    pub fn from_intercept(text: &str, origin: &str) -> Result<(Policy, Vec<String>), PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let root = Node::parse_yaml(text).map_err(invalid)?;
        let mut findings = Findings::default();
        let mut policy = Policy::parse("", origin)?;
        policy.default = Action::Allow;
        let Some(entries) = root.as_map() else {
            return Err(invalid(format!(
                "{}: an Intercept policy is a mapping (version, tools, ...), not a {}",
                root.location(),
                root.kind()
            )));
        };
        let mut version = String::new();
        for (key, value) in entries {
            match key.as_str() {
                "version" => version = value.go_string(key, &mut findings).unwrap_or_default(),
                "description" => {
                    let text = value.go_string(key, &mut findings).unwrap_or_default();
                    policy.description = (!text.is_empty()).then_some(text);
                }
                "default" => {
                    match value
                        .go_string(key, &mut findings)
                        .unwrap_or_default()
                        .as_str()
                    {
                        "" | "allow" => policy.default = Action::Allow,
                        "deny" => policy.default = Action::Deny,
                        other => findings.error(
                            value,
                            format!("default must be \"allow\" or \"deny\", got \"{other}\""),
                        ),
                    }
                }
                "hide" => policy.hide = hide_list(value, &mut findings),
                "tools" => read_tools(value, &mut policy, &mut findings),
                other => ignored(value, other, &mut findings),
            }
        }
        if version != "1" {
            let at = entries
                .iter()
                .find(|(k, _)| k == "version")
                .map_or(&root, |(_, v)| v);
            findings.error(at, format!("version must be \"1\", got \"{version}\""));
        }
        let mut notes = findings.into_result(origin)?;
        notes.extend(policy.notes());
        policy.validate().map_err(|issue| {
            invalid(format!(
                "at {}: {} (this translation is Warden's bug: please report it)",
                issue.path.join("."),
                issue.message
            ))
        })?;
        Ok((policy, notes))
    }
}

fn read_tools(node: &Node, policy: &mut Policy, findings: &mut Findings) {
    if node.is_null() {
        return;
    }
    let Some(tools) = node.as_map() else {
        findings.error(node, "tools: expected a mapping of tool names to rules");
        return;
    };
    let mut defined: Vec<(String, Vec<String>)> = Vec::new();
    let mut read: Vec<(&String, Vec<Rule<'_>>)> = Vec::new();
    for (name, tool) in tools {
        let rules = read_rules(name, tool, findings);
        let counters = rules
            .iter()
            .filter_map(|r| r.state.as_ref().map(|s| s.counter.clone()))
            .collect();
        defined.push((name.clone(), counters));
        read.push((name, rules));
    }
    for (name, rules) in read {
        let scope = if name == "*" {
            "_global"
        } else {
            name.as_str()
        };
        let (specs, limits) = translate_rules(name, scope, rules, &defined, findings);
        if name == "*" {
            policy.all_tools.rules = specs;
            policy.all_tools.limits = limits;
        } else {
            policy.tools.insert(
                name.clone(),
                ToolPolicy {
                    action: Some(Action::Allow),
                    languages: None,
                    rules: specs,
                    limits,
                },
            );
        }
    }
}

/// One tool's rules as Warden rules and limits, after the gateway's own checks.
fn translate_rules(
    tool: &str,
    scope: &str,
    rules: Vec<Rule<'_>>,
    defined: &[(String, Vec<String>)],
    findings: &mut Findings,
) -> (Vec<RuleSpec>, Vec<LimitSpec>) {
    let mut specs = Vec::new();
    let mut limits = Vec::new();
    let mut counters_seen: Vec<(String, usize)> = Vec::new();
    for (i, rule) in rules.into_iter().enumerate() {
        let at = format!("tools.{tool}.rules[{i}]");
        if !rule.rate_limit.is_empty() {
            // Left as written: the shorthand could not be expanded; say why.
            if let Err(e) = parse_rate_limit(&rule.rate_limit) {
                findings.error(rule.node, format!("{at}: {e}"));
            }
            if rule.conditions_written || rule.state.is_some() {
                findings.error(
                    rule.node,
                    format!("{at}: rate_limit cannot be combined with conditions or state; use separate rules or the full syntax instead"),
                );
            }
            if rule.action == "deny" {
                findings.error(
                    rule.node,
                    format!("{at}: rate_limit cannot be used with action \"deny\""),
                );
            }
            continue;
        }
        if let Some(state) = &rule.state {
            match counters_seen.iter().find(|(c, _)| *c == state.counter) {
                Some((_, previous)) => findings.error(
                    state.node,
                    format!(
                        "{at}: duplicate state counter \"{}\" (also used by rules[{previous}])",
                        state.counter
                    ),
                ),
                None => counters_seen.push((state.counter.clone(), i)),
            }
        }
        if rule.name.is_empty() {
            findings.error(rule.node, format!("{at}: rule must have a name"));
        }
        let action = if rule.action.is_empty() {
            "evaluate"
        } else {
            rule.action.as_str()
        };
        match action {
            "deny" if rule.conditions_written => {
                findings.error(
                    rule.node,
                    format!("{at}: deny rules must not have conditions"),
                );
            }
            "evaluate" if !rule.conditions_written => findings.error(
                rule.node,
                format!("{at}: evaluate rules must have at least one condition"),
            ),
            "deny" | "evaluate" => {}
            other => findings.error(
                rule.node,
                format!("{at}: action must be \"evaluate\" or \"deny\", got \"{other}\""),
            ),
        }
        for c in &rule.conditions {
            let Some(path) = c.path.as_deref().and_then(|p| p.strip_prefix("state.")) else {
                continue;
            };
            if let Some((state_tool, counter)) = path.split_once('.') {
                let owner = if state_tool == "_global" {
                    "*"
                } else {
                    state_tool
                };
                let defines = defined
                    .iter()
                    .any(|(t, counters)| t == owner && counters.iter().any(|k| k == counter));
                if !defines {
                    findings.error(
                        rule.node,
                        format!("{at}: condition references state.{state_tool}.{counter} but no matching state block found"),
                    );
                }
            }
        }
        let message = if rule.on_deny.is_empty() {
            format!("Denied by rule \"{}\"", rule.name)
        } else {
            rule.on_deny.clone()
        };
        if let Some(state) = &rule.state
            && let Some(limit) = limit_of(&rule, state, scope, &at, findings)
        {
            limits.push(limit);
        }
        specs.push(RuleSpec {
            name: rule.name,
            message,
            when: Vec::new(),
            require: if action == "deny" {
                Vec::new()
            } else {
                rule.conditions
            },
            effect: Effect::Deny,
        });
    }
    (specs, limits)
}

/// A state block as a limit: bounded where the gateway looks (`lt`: bound - 1, `lte`: bound,
/// on the block's own counter), counting what the block says. `None` without such a bound.
fn limit_of(
    rule: &Rule<'_>,
    state: &State<'_>,
    scope: &str,
    at: &str,
    findings: &mut Findings,
) -> Option<LimitSpec> {
    if state.counter.is_empty() {
        findings.error(state.node, format!("{at}.state: counter must not be empty"));
    }
    let Some(window) = window(&state.window) else {
        findings.error(
            state.node,
            format!(
                "{at}.state: window must be \"minute\", \"hour\", or \"day\", got \"{}\"",
                state.window
            ),
        );
        return None;
    };
    if !state.increment_from.is_empty() && !is_gateway_path(&state.increment_from, true) {
        findings.error(
            state.node,
            format!(
                "{at}.state: increment_from must start with \"args.\", got \"{}\"",
                state.increment_from
            ),
        );
    }
    if state.increment < 0 {
        findings.error(
            state.node,
            format!("{at}.state: increment must not be negative (Warden never lowers a counter), got {}", state.increment),
        );
        return None;
    }
    let own = format!("state.{scope}.{}", state.counter);
    let bound = rule.conditions.iter().find_map(|c| {
        let n = c.value.as_ref()?.as_f64()?;
        match (c.path.as_deref() == Some(own.as_str()), c.op) {
            // Go's int64() truncates toward zero; a bound below zero admits nothing.
            (true, Operator::Lt) => Some((n.trunc() as i64).saturating_sub(1)),
            (true, Operator::Lte) => Some(n.trunc() as i64),
            _ => None,
        }
    });
    let Some(bound) = bound else {
        findings.note(
            state.node,
            format!("{at}: counter `{scope}.{}` has no `lt`/`lte` bound on `{own}` in its rule, so the gateway never counts it (nor does Warden): it always reads 0", state.counter),
        );
        return None;
    };
    let mut limit = LimitSpec::new(
        format!("{scope}.{}", state.counter),
        window,
        u64::try_from(bound).unwrap_or(0),
        Scope::Global,
    );
    // The gateway's increment 0 means its default, 1.
    limit.increment = u64::try_from(state.increment).unwrap_or(0).max(1);
    if !state.increment_from.is_empty() {
        limit.increment_from = Some(state.increment_from.clone());
    }
    limit.message = Some(if rule.on_deny.is_empty() {
        format!("Rate limit exceeded for {}", rule.name)
    } else {
        rule.on_deny.clone()
    });
    Some(limit)
}
