//! Reading an Intercept policy's tree into the shape of its `Config`, as the gateway's loader
//! does (Go's yaml.v3 into its structs, then the `rate_limit` shorthand expanded).

use super::super::{Findings, Node, NodeValue, condition};
use crate::policy::ratelimit::Window;
use crate::policy::rules::{ConditionSpec, Operator};

/// The shape of Intercept's `Config`, read from the tree with each value's node.
pub(super) struct Rule<'a> {
    pub node: &'a Node,
    pub name: String,
    pub action: String,
    pub rate_limit: String,
    pub conditions: Vec<ConditionSpec>,
    pub conditions_written: bool,
    pub on_deny: String,
    pub state: Option<State<'a>>,
}

pub(super) struct State<'a> {
    pub node: &'a Node,
    pub counter: String,
    pub window: String,
    pub increment: i64,
    pub increment_from: String,
}

pub(super) fn ignored(node: &Node, key: &str, findings: &mut Findings) {
    findings.note(
        node,
        format!("`{key}` is not an Intercept policy key: ignored, as Intercept ignores it"),
    );
}

pub(super) fn hide_list(node: &Node, findings: &mut Findings) -> Vec<String> {
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

pub(super) fn read_rules<'a>(tool: &str, node: &'a Node, findings: &mut Findings) -> Vec<Rule<'a>> {
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

pub(super) fn read_rule<'a>(at: &str, node: &'a Node, findings: &mut Findings) -> Option<Rule<'a>> {
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

pub(super) fn read_state<'a>(
    at: &str,
    node: &'a Node,
    findings: &mut Findings,
) -> Option<State<'a>> {
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

pub(super) fn window(name: &str) -> Option<Window> {
    match name {
        "minute" => Some(Window::Minute),
        "hour" => Some(Window::Hour),
        "day" => Some(Window::Day),
        _ => None,
    }
}

/// `N/window`, as the gateway parses it.
pub(super) fn parse_rate_limit(text: &str) -> Result<(u64, &str), String> {
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

/// The gateway's expansion of `rate_limit: N/window` (left as written if it cannot parse).
pub(super) fn desugar_rate_limit(rule: &mut Rule<'_>, scope: &str) {
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
