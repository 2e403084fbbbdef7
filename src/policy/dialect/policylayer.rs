//! PolicyLayer's JSON policy (the hosted gateway's format: policylayer.com/docs/writing-policies),
//! translated into Warden's policy model.
//!
//! - `default` (required) decides tools not listed; a listed tool (even `{}`) is allowed.
//! - `hide` removes tools from the list and denies them (`"*"`: all).
//! - `tools.<name>.require[]`: each entry's conditions must all hold, or the call is denied
//!   with its `on_deny`; `deny_if[]`: an entry whose conditions all hold (an empty list always
//!   does) denies. Conditions are the gateway's (`path`, `op`, `value`). Then `limits[]`
//!   (`counter`, `window`, `max`, `scope`: `grant` unless said) and `all_tools.limits[]`.
//! - Anything else is an error that names it, at its line and column: nothing is dropped.

use serde_json::Value;

use super::{Findings, Node, NodeValue, condition};
use crate::policy::document::{Action, Policy, PolicyError, ToolPolicy};
use crate::policy::ratelimit::{LimitSpec, Scope, Window};
use crate::policy::rules::{ConditionSpec, Effect, RuleSpec};

impl Policy {
    /// Translates a PolicyLayer JSON document; every error is listed at its line and column.
    pub fn from_policylayer(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let json: Value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("line {}, column {}: {e}", e.line(), e.column())))?;
        // JSON is YAML: read again for positions (serde_json keeps none). A document only
        // serde_json accepts (duplicate keys) is still translated, without positions.
        let root = Node::parse_yaml(text).unwrap_or_else(|_| Node::from_json(&json));
        let Some(entries) = root.as_map() else {
            return Err(invalid("a PolicyLayer document is a JSON object".into()));
        };
        let mut findings = Findings::default();
        let mut policy = Policy::parse("", origin)?;
        let mut saw_default = false;
        for (key, value) in entries {
            match key.as_str() {
                "version" => {
                    let ok = matches!(&value.value, NodeValue::Str(v) if v == "1")
                        || value.value == NodeValue::Int(1);
                    if !ok {
                        findings.error(value, "version: only \"1\" is recognised");
                    }
                }
                "default" => {
                    saw_default = true;
                    match &value.value {
                        NodeValue::Str(v) if v == "allow" => policy.default = Action::Allow,
                        NodeValue::Str(v) if v == "deny" => policy.default = Action::Deny,
                        _ => findings.error(value, "default: expected \"allow\" or \"deny\""),
                    }
                }
                "hide" => policy.hide = strings(value, "hide", &mut findings),
                "tools" => match value.as_map() {
                    Some(tools) => {
                        for (name, tool) in tools {
                            let translated = translate_tool(name, tool, &mut findings);
                            policy.tools.insert(name.clone(), translated);
                        }
                    }
                    None => findings.error(value, "tools: expected an object of tools"),
                },
                "all_tools" => match value.as_map() {
                    Some(fields) => {
                        for (field, v) in fields {
                            match field.as_str() {
                                "limits" => {
                                    policy.all_tools.limits =
                                        limits(v, "all_tools.limits", &mut findings)
                                }
                                other => findings.error(
                                    v,
                                    format!("all_tools.{other}: not a PolicyLayer field (all_tools has only `limits`)"),
                                ),
                            }
                        }
                    }
                    None => findings.error(value, "all_tools: expected an object"),
                },
                other => findings.error(
                    value,
                    format!("`{other}`: not a PolicyLayer field (version, default, hide, tools, all_tools)"),
                ),
            }
        }
        if !saw_default {
            findings.error(&root, "default is required (\"allow\" or \"deny\")");
        }
        findings.into_result(origin)?;
        policy
            .validate()
            .map_err(|issue| invalid(format!("at {}: {}", issue.path.join("."), issue.message)))?;
        Ok(policy)
    }
}

fn strings(node: &Node, at: &str, findings: &mut Findings) -> Vec<String> {
    let Some(items) = node.as_list() else {
        findings.error(node, format!("{at}: expected a list of tool names"));
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| match &item.value {
            NodeValue::Str(s) if !s.trim().is_empty() => Some(s.clone()),
            _ => {
                findings.error(item, format!("{at}[{i}]: expected a tool name"));
                None
            }
        })
        .collect()
}

/// A listed tool: allowed, with its requirements, denials and limits.
fn translate_tool(name: &str, node: &Node, findings: &mut Findings) -> ToolPolicy {
    let mut tool = ToolPolicy {
        action: Some(Action::Allow),
        ..ToolPolicy::default()
    };
    let Some(fields) = node.as_map() else {
        findings.error(node, format!("tools.{name}: expected an object"));
        return tool;
    };
    for (field, value) in fields {
        let at = format!("tools.{name}.{field}");
        match field.as_str() {
            "require" | "deny_if" => {
                let Some(entries) = value.as_list() else {
                    findings.error(value, format!("{at}: expected a list"));
                    continue;
                };
                for (i, entry) in entries.iter().enumerate() {
                    let at = format!("{at}[{i}]");
                    if let Some(rule) = translate_entry(name, field, &at, i, entry, findings) {
                        tool.rules.push(rule);
                    }
                }
            }
            "limits" => tool.limits = limits(value, &at, findings),
            "rules" => findings.error(
                value,
                format!("{at}: `rules` is Intercept's YAML form; save the policy as .yaml, or use require / deny_if"),
            ),
            other => findings.error(
                value,
                format!("{at}: not a PolicyLayer field (a tool has `require`, `deny_if`, `limits`; `{other}` is none of them)"),
            ),
        }
    }
    tool
}

/// A `require` or `deny_if` entry as a rule, named as the gateway labels it in its logs
/// (`/tools/<tool>/<kind>/<path>-<op>` of its first condition).
fn translate_entry(
    tool: &str,
    kind: &str,
    at: &str,
    index: usize,
    node: &Node,
    findings: &mut Findings,
) -> Option<RuleSpec> {
    let Some(fields) = node.as_map() else {
        findings.error(node, format!("{at}: expected an object with `conditions`"));
        return None;
    };
    let mut conditions: Vec<ConditionSpec> = Vec::new();
    let mut on_deny = None;
    let mut ok = true;
    for (key, value) in fields {
        match key.as_str() {
            "conditions" => {
                let Some(items) = value.as_list() else {
                    findings.error(value, format!("{at}.conditions: expected a list"));
                    ok = false;
                    continue;
                };
                for (j, item) in items.iter().enumerate() {
                    let mut unknown = |n: &Node, k: &str, f: &mut Findings| {
                        f.error(n, format!("{k}: not a condition field (path, op, value)"))
                    };
                    let here = format!("{at}.conditions[{j}]");
                    match condition(item, &here, findings, &mut unknown) {
                        Some(c) => conditions.push(c),
                        None => ok = false,
                    }
                }
            }
            "on_deny" => match &value.value {
                NodeValue::Str(s) => on_deny = Some(s.clone()),
                _ => findings.error(value, format!("{at}.on_deny: expected a string")),
            },
            other => findings.error(
                value,
                format!("{at}.{other}: not a PolicyLayer field (conditions, on_deny)"),
            ),
        }
    }
    if kind == "require" && conditions.is_empty() && ok {
        findings.error(
            node,
            format!("{at}: a requirement needs at least one condition"),
        );
        return None;
    }
    let label = match conditions.first() {
        Some(c) => format!("{}-{}", c.path.as_deref().unwrap_or_default(), c.op.name()),
        None => index.to_string(),
    };
    let name = format!("/tools/{tool}/{kind}/{label}");
    let message = on_deny.unwrap_or_else(|| format!("Denied by policy rule {name}"));
    let (when, require) = if kind == "require" {
        (Vec::new(), conditions)
    } else {
        (conditions, Vec::new())
    };
    ok.then_some(RuleSpec {
        name,
        message,
        when,
        require,
        effect: Effect::Deny,
    })
}

fn limits(node: &Node, at: &str, findings: &mut Findings) -> Vec<LimitSpec> {
    let Some(items) = node.as_list() else {
        findings.error(node, format!("{at}: expected a list of limits"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let Some(fields) = item.as_map() else {
            findings.error(
                item,
                format!("{here}: expected an object (counter, window, max, scope)"),
            );
            continue;
        };
        let (mut counter, mut window, mut max, mut scope) = (None, None, None, Some(Scope::Grant));
        let mut ok = true;
        for (key, value) in fields {
            let text = match &value.value {
                NodeValue::Str(s) => Some(s.as_str()),
                _ => None,
            };
            match key.as_str() {
                "counter" => counter = text.filter(|t| !t.trim().is_empty()).map(str::to_string),
                "window" => {
                    window = match text {
                        Some("second") => Some(Window::Second),
                        Some("minute") => Some(Window::Minute),
                        Some("hour") => Some(Window::Hour),
                        Some("day") => Some(Window::Day),
                        _ => None,
                    }
                }
                "max" => {
                    max = match value.value {
                        NodeValue::Int(n) => u64::try_from(n).ok(),
                        _ => None,
                    }
                }
                "scope" => {
                    scope = match text {
                        Some("grant") => Some(Scope::Grant),
                        Some("session") => Some(Scope::Session),
                        Some("global") => Some(Scope::Global),
                        _ => None,
                    }
                }
                other => {
                    findings.error(
                        value,
                        format!("{here}.{other}: not a limit field (counter, window, max, scope)"),
                    );
                    ok = false;
                }
            }
        }
        let missing = |what: &str, findings: &mut Findings| {
            findings.error(item, format!("{here}: {what}"));
        };
        if counter.is_none() {
            missing("`counter` must be a non-empty string", findings);
        }
        if window.is_none() {
            missing(
                "`window` must be \"minute\", \"hour\" or \"day\" (or \"second\")",
                findings,
            );
        }
        if max.is_none() {
            missing("`max` must be a whole number, 0 or more", findings);
        }
        if scope.is_none() {
            missing(
                "`scope` must be \"grant\", \"session\" or \"global\"",
                findings,
            );
        }
        if let (true, Some(counter), Some(window), Some(max), Some(scope)) =
            (ok, counter, window, max, scope)
        {
            out.push(LimitSpec::new(counter, window, max, scope));
        }
    }
    out
}
