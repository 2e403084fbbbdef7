//! The gateway's dialects, translated into Warden's policy model: PolicyLayer's JSON
//! ([`policylayer`]) and Intercept's YAML ([`intercept`]). Both are read into one tree that
//! knows where each value sits (JSON is YAML 1.2), so every error names a line and column;
//! conditions and operators are shared, with Intercept's validation messages.

mod intercept;
#[cfg(test)]
mod intercept_tests;
mod policylayer;
#[cfg(test)]
mod tests;
mod tree;

use serde_json::Value;

use super::document::PolicyError;
use super::rules::{ConditionSpec, Operator, is_gateway_path};
pub(super) use tree::{Node, NodeValue};

/// The errors found in a document (all of them, as `intercept validate` lists them), and what
/// a person should know about it.
#[derive(Default)]
pub(super) struct Findings {
    errors: Vec<String>,
    pub notes: Vec<String>,
}

impl Findings {
    pub fn error(&mut self, node: &Node, message: impl std::fmt::Display) {
        self.errors.push(format!("{}: {message}", node.location()));
    }

    pub fn note(&mut self, node: &Node, message: impl std::fmt::Display) {
        self.notes.push(format!("{}: {message}", node.location()));
    }

    /// The document's errors as one, if it has any.
    pub fn into_result(self, origin: &str) -> Result<Vec<String>, PolicyError> {
        if self.errors.is_empty() {
            return Ok(self.notes);
        }
        Err(PolicyError::Invalid {
            origin: origin.to_string(),
            message: self.errors.join("\n"),
        })
    }
}

/// A condition (`path`, `op`, `value`) at `at`, checked as Intercept checks it; `None` (with
/// the errors recorded) when it is wrong. Keys other than the three are `unknown`'s to judge.
pub(super) fn condition(
    node: &Node,
    at: &str,
    findings: &mut Findings,
    unknown: &mut dyn FnMut(&Node, &str, &mut Findings),
) -> Option<ConditionSpec> {
    let Some(fields) = node.as_map() else {
        findings.error(
            node,
            format!("{at}: a condition is a mapping of path, op and value"),
        );
        return None;
    };
    let (mut path, mut op, mut value) = (None, None, None);
    for (key, field) in fields {
        match key.as_str() {
            "path" => path = field.go_string(at, findings),
            "op" => op = field.go_string(at, findings),
            "value" => value = Some(field),
            other => unknown(field, &format!("{at}.{other}"), findings),
        }
    }
    let path = path.unwrap_or_default();
    let op_name = op.unwrap_or_default();
    let mut ok = true;
    if !is_gateway_path(&path, false) {
        findings.error(
            node,
            format!("{at}: path must start with \"args.\" or \"state.\", got \"{path}\""),
        );
        ok = false;
    }
    let operator = Operator::from_name(&op_name);
    if operator.is_none() {
        findings.error(node, format!("{at}: unknown operator \"{op_name}\""));
    }
    let value_node = value;
    let value = match value_node.map(Node::to_json) {
        Some(Ok(v)) => Some(v),
        Some(Err(why)) => {
            findings.error(value_node.unwrap_or(node), format!("{at}.value: {why}"));
            return None;
        }
        None => None,
    };
    let operator = operator?;
    let shown = value_node.unwrap_or(node);
    let fits = match operator {
        Operator::In | Operator::NotIn => value.as_ref().is_some_and(Value::is_array),
        Operator::Lt | Operator::Lte | Operator::Gt | Operator::Gte => {
            value.as_ref().is_some_and(Value::is_number)
        }
        Operator::Exists => value.as_ref().is_some_and(Value::is_boolean),
        Operator::Regex => value.as_ref().is_some_and(Value::is_string),
        Operator::Eq | Operator::Neq | Operator::Contains => true,
    };
    if !fits {
        let need = match operator {
            Operator::In | Operator::NotIn => {
                format!("operator \"{op_name}\" requires a list value")
            }
            Operator::Exists => "operator \"exists\" requires a boolean value".to_string(),
            Operator::Regex => "regex value must be a string".to_string(),
            _ => format!("operator \"{op_name}\" requires a numeric value"),
        };
        findings.error(shown, format!("{at}: {need}"));
        ok = false;
    }
    if let (Operator::Regex, Some(Value::String(pattern))) = (operator, &value)
        && let Err(e) = regex::Regex::new(pattern)
    {
        findings.error(shown, format!("{at}: invalid regex \"{pattern}\": {e}"));
        ok = false;
    }
    if value.is_none() && operator != Operator::Exists && ok {
        findings.error(shown, format!("{at}: operator \"{op_name}\" needs a value"));
        ok = false;
    }
    ok.then(|| ConditionSpec::at_path(path, operator, value))
}
