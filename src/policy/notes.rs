//! What `policy check` tells a person about a valid document: the parts that apply to no call
//! on this server. A gateway policy names many tools; Warden keeps every part of it, and says
//! which parts have nothing to act on here rather than dropping them silently.

use super::document::Policy;
use super::rules::{ConditionSpec, RuleSpec, missing_argument};
use crate::contract::TOOL_NAME;

impl Policy {
    /// One line per part of the document that applies to no call here.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        // `<upstream>.<tool>` names a tool the code can call: it applies.
        let of_an_upstream = |name: &str| {
            name.split_once('.')
                .is_some_and(|(server, _)| self.upstreams.contains_key(server))
        };
        let other_tools: Vec<&String> = self
            .tools
            .keys()
            .filter(|n| *n != TOOL_NAME && !of_an_upstream(n))
            .collect();
        if !other_tools.is_empty() {
            let listed: Vec<String> = other_tools
                .iter()
                .map(|name| {
                    let tool = &self.tools[*name];
                    format!(
                        "{name} ({} rules, {} limits)",
                        tool.rules.len(),
                        tool.limits.len()
                    )
                })
                .collect();
            notes.push(format!(
                "tools this server does not have (kept as written; they apply to no call): {}",
                listed.join(", ")
            ));
        }
        for name in &self.hide {
            if name != TOOL_NAME && name != "*" {
                notes.push(format!(
                    "hide: `{name}` is not a tool of this server (nothing to hide)"
                ));
            }
        }
        let counted: Vec<&str> = self
            .tools
            .values()
            .flat_map(|t| &t.limits)
            .chain(&self.all_tools.limits)
            .map(|l| l.counter.as_str())
            .collect();
        let ours = self
            .tools
            .get(TOOL_NAME)
            .map(|t| &t.rules[..])
            .unwrap_or(&[]);
        for rule in ours.iter().chain(&self.all_tools.rules) {
            for condition in conditions(rule) {
                let Some(path) = &condition.path else {
                    continue;
                };
                if let Some(name) = missing_argument(path) {
                    notes.push(format!(
                        "rule `{}`: `{TOOL_NAME}` has no argument `{name}`: `{path}` is always absent",
                        rule.name
                    ));
                }
                if let Some(counter) = path.strip_prefix("state.")
                    && !counted.contains(&counter)
                {
                    notes.push(format!(
                        "rule `{}`: no limit counts `{counter}`: `{path}` always reads 0",
                        rule.name
                    ));
                }
            }
        }
        for (section, limits) in self
            .tools
            .iter()
            .filter(|(name, _)| *name == TOOL_NAME)
            .map(|(name, tool)| (format!("tools.{name}"), &tool.limits))
            .chain([("all_tools".to_string(), &self.all_tools.limits)])
        {
            for limit in limits.iter().filter(|l| l.max == 0) {
                notes.push(format!(
                    "{section}: counter `{}` has max 0: it refuses every call",
                    limit.counter
                ));
            }
            for limit in limits {
                if let Some(name) = limit.increment_from.as_deref().and_then(missing_argument) {
                    notes.push(format!(
                        "{section}: counter `{}` counts `{name}`, which `{TOOL_NAME}` does not have: every call is refused",
                        limit.counter
                    ));
                }
            }
        }
        notes
    }
}

fn conditions(rule: &RuleSpec) -> impl Iterator<Item = &ConditionSpec> {
    rule.when.iter().chain(&rule.require)
}
