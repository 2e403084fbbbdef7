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

use super::super::document::{Action, Policy, PolicyError, ToolPolicy};
use super::super::ratelimit::{LimitSpec, Scope, Window};
use super::super::rules::{ConditionSpec, Effect, Operator, RuleSpec};
use super::{Findings, Node, NodeValue, condition};

/// The shape of Intercept's `Config`, read from the tree with each value's node.
struct Rule<'a> {
    node: &'a Node,
    name: String,
    action: String,
    rate_limit: String,
    conditions: Vec<ConditionSpec>,
    conditions_written: bool,
    on_deny: String,
    state: Option<State<'a>>,
}

struct State<'a> {
    node: &'a Node,
    counter: String,
    window: String,
    increment: i64,
    increment_from: String,
}

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

fn ignored(node: &Node, key: &str, findings: &mut Findings) {
    findings.note(
        node,
        format!("`{key}` is not an Intercept policy key: ignored, as Intercept ignores it"),
    );
}

fn hide_list(node: &Node, findings: &mut Findings) -> Vec<String> {
    let Some(items) = node.as_list() else {
        findings.error(node, "hide: expected a list of tool names");
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = item
            .go_string(&format!("hide[{i}]"), findings)
            .unwrap_or_default();
        if name.trim().is_empty() {
            findings.error(item, format!("hide[{i}]: entry must not be empty"));
        } else if names.contains(&name) {
            findings.error(item, format!("hide: duplicate entry \"{name}\""));
        } else {
            names.push(name);
        }
    }
    names
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

fn read_rules<'a>(tool: &str, node: &'a Node, findings: &mut Findings) -> Vec<Rule<'a>> {
    let mut rules = Vec::new();
    if node.is_null() {
        return rules;
    }
    let Some(fields) = node.as_map() else {
        findings.error(
            node,
            format!("tools.{tool}: expected a mapping with `rules`"),
        );
        return rules;
    };
    for (key, value) in fields {
        if key != "rules" {
            ignored(value, &format!("tools.{tool}.{key}"), findings);
            continue;
        }
        let Some(items) = value.as_list() else {
            findings.error(
                value,
                format!("tools.{tool}.rules: expected a list of rules"),
            );
            continue;
        };
        let scope = if tool == "*" { "_global" } else { tool };
        for (i, item) in items.iter().enumerate() {
            if let Some(mut rule) = read_rule(&format!("tools.{tool}.rules[{i}]"), item, findings) {
                // As the gateway's loader does, before anything is checked.
                let can_desugar =
                    !rule.conditions_written && rule.state.is_none() && rule.action != "deny";
                if !rule.rate_limit.is_empty() && can_desugar {
                    desugar_rate_limit(&mut rule, scope);
                }
                rules.push(rule);
            }
        }
    }
    rules
}

fn read_rule<'a>(at: &str, node: &'a Node, findings: &mut Findings) -> Option<Rule<'a>> {
    let Some(fields) = node.as_map() else {
        findings.error(
            node,
            format!("{at}: a rule is a mapping (name, action, ...)"),
        );
        return None;
    };
    let mut rule = Rule {
        node,
        name: String::new(),
        action: String::new(),
        rate_limit: String::new(),
        conditions: Vec::new(),
        conditions_written: false,
        on_deny: String::new(),
        state: None,
    };
    for (key, value) in fields {
        let here = format!("{at}.{key}");
        let text = |findings: &mut Findings| value.go_string(&here, findings).unwrap_or_default();
        match key.as_str() {
            "name" => rule.name = text(findings),
            "action" => rule.action = text(findings),
            "rate_limit" => rule.rate_limit = text(findings),
            "on_deny" => rule.on_deny = text(findings),
            "conditions" => {
                let Some(items) = value.as_list() else {
                    findings.error(value, format!("{here}: expected a list of conditions"));
                    continue;
                };
                rule.conditions_written = !items.is_empty();
                for (j, item) in items.iter().enumerate() {
                    let at = format!("{at}.conditions[{j}]");
                    let mut unknown = |n: &Node, k: &str, f: &mut Findings| ignored(n, k, f);
                    if let Some(c) = condition(item, &at, findings, &mut unknown) {
                        rule.conditions.push(c);
                    }
                }
            }
            "state" if !value.is_null() => rule.state = read_state(&here, value, findings),
            "state" => {}
            _ => ignored(value, &here, findings),
        }
    }
    Some(rule)
}

fn read_state<'a>(at: &str, node: &'a Node, findings: &mut Findings) -> Option<State<'a>> {
    let Some(fields) = node.as_map() else {
        findings.error(
            node,
            format!("{at}: expected a mapping (counter, window, ...)"),
        );
        return None;
    };
    let mut state = State {
        node,
        counter: String::new(),
        window: String::new(),
        increment: 0,
        increment_from: String::new(),
    };
    for (key, value) in fields {
        let here = format!("{at}.{key}");
        match key.as_str() {
            "counter" => state.counter = value.go_string(&here, findings).unwrap_or_default(),
            "window" => state.window = value.go_string(&here, findings).unwrap_or_default(),
            "increment_from" => {
                state.increment_from = value.go_string(&here, findings).unwrap_or_default()
            }
            "increment" => match value.value {
                NodeValue::Int(n) => state.increment = n,
                NodeValue::Null => {}
                _ => findings.error(
                    value,
                    format!(
                        "{here}: cannot unmarshal a {} into an integer",
                        value.kind()
                    ),
                ),
            },
            _ => ignored(value, &here, findings),
        }
    }
    Some(state)
}

fn window(name: &str) -> Option<Window> {
    match name {
        "minute" => Some(Window::Minute),
        "hour" => Some(Window::Hour),
        "day" => Some(Window::Day),
        _ => None,
    }
}

/// `N/window`, as the gateway parses it.
fn parse_rate_limit(text: &str) -> Result<(u64, &str), String> {
    let Some((count, window_name)) = text.split_once('/') else {
        return Err(format!(
            "rate_limit must be in the format \"N/window\" (e.g. \"5/hour\"), got \"{text}\""
        ));
    };
    let count = match count.parse::<i64>() {
        Ok(n) if n > 0 => n as u64,
        _ => {
            return Err(format!(
                "rate_limit count must be a positive integer, got \"{count}\""
            ));
        }
    };
    if window(window_name).is_none() {
        return Err(format!(
            "rate_limit window must be \"minute\", \"hour\", or \"day\", got \"{window_name}\""
        ));
    }
    Ok((count, window_name))
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

/// The gateway's expansion of `rate_limit: N/window` (left as written if it cannot parse).
fn desugar_rate_limit(rule: &mut Rule<'_>, scope: &str) {
    let Ok((count, window_name)) = parse_rate_limit(&rule.rate_limit) else {
        return;
    };
    let window_name = window_name.to_string();
    let counter = format!("_rate_{window_name}");
    rule.conditions = vec![ConditionSpec::at_path(
        format!("state.{scope}.{counter}"),
        Operator::Lte,
        Some(count.into()),
    )];
    rule.conditions_written = true;
    rule.action = "evaluate".into();
    if rule.on_deny.is_empty() {
        rule.on_deny = format!("Rate limit of {count} per {window_name} reached. Try again later.");
    }
    rule.state = Some(State {
        node: rule.node,
        counter,
        window: window_name,
        increment: 1,
        increment_from: String::new(),
    });
    rule.rate_limit.clear();
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
    if !state.increment_from.is_empty() && !state.increment_from.starts_with("args.") {
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
