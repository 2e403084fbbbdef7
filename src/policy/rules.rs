//! Argument rules: named conditions on a call's arguments. A rule whose conditions all hold
//! stops the call with the rule's message. Parsed (and regexes compiled) once, when the policy
//! is loaded; matched per call.

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::contract::ExecuteArgs;

/// A rule as written in the policy (`[[tools.execute_code.rules]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// What the caller sees when the rule stops the call.
    pub message: String,
    /// All must hold for the rule to apply.
    pub when: Vec<ConditionSpec>,
    #[serde(default)]
    pub effect: Effect,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    #[default]
    Deny,
    RequireApproval,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// `language`, `code`, `code_length`, `timeout_ms`, `input`, or `input.<key>.<key>...`.
    pub arg: String,
    pub op: Operator,
    /// The operand; not used by `exists` (which takes an optional boolean, default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Eq,
    Neq,
    In,
    NotIn,
    Lt,
    Lte,
    Gt,
    Gte,
    Regex,
    Contains,
    Exists,
}

/// A rule ready to match.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub message: String,
    pub effect: Effect,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
struct Condition {
    path: ArgPath,
    test: Test,
}

#[derive(Debug, Clone, PartialEq)]
enum ArgPath {
    Language,
    Code,
    CodeLength,
    TimeoutMs,
    /// `input` (empty) or a path of object keys into it.
    Input(Vec<String>),
}

#[derive(Debug, Clone)]
enum Test {
    Eq(Value),
    Neq(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Lt(f64),
    Lte(f64),
    Gt(f64),
    Gte(f64),
    Regex(Regex),
    Contains(Value),
    Exists(bool),
}

impl Rule {
    /// Checks a rule as written; the error says which condition is wrong and why.
    pub fn compile(spec: &RuleSpec) -> Result<Rule, String> {
        if spec.name.trim().is_empty() {
            return Err("a rule needs a non-empty `name`".into());
        }
        if spec.when.is_empty() {
            return Err(format!("rule `{}` has no conditions in `when`", spec.name));
        }
        let conditions = spec
            .when
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Condition::compile(c)
                    .map_err(|e| format!("rule `{}`, condition {}: {e}", spec.name, i + 1))
            })
            .collect::<Result<_, _>>()?;
        Ok(Rule {
            name: spec.name.clone(),
            message: spec.message.clone(),
            effect: spec.effect,
            conditions,
        })
    }

    pub fn matches(&self, args: &ExecuteArgs) -> bool {
        self.conditions.iter().all(|c| c.holds(args))
    }
}

impl Condition {
    fn compile(spec: &ConditionSpec) -> Result<Condition, String> {
        let path = match spec.arg.as_str() {
            "language" => ArgPath::Language,
            "code" => ArgPath::Code,
            "code_length" => ArgPath::CodeLength,
            "timeout_ms" => ArgPath::TimeoutMs,
            "input" => ArgPath::Input(Vec::new()),
            other => match other.strip_prefix("input.") {
                Some(rest) if !rest.is_empty() && rest.split('.').all(|k| !k.is_empty()) => {
                    ArgPath::Input(rest.split('.').map(str::to_string).collect())
                }
                _ => {
                    return Err(format!(
                        "unknown `arg` \"{other}\" (expected language, code, code_length, \
                         timeout_ms, input or input.<key>)"
                    ));
                }
            },
        };
        // TOML's nan and inf have no JSON form: they arrive as null, which a call's arguments
        // could never equal (found by the policy_parse fuzz target).
        if spec.value.as_ref().is_some_and(Value::is_null) {
            return Err("`value` is not a JSON value (nan and inf are not allowed)".into());
        }
        let operand = || {
            spec.value
                .clone()
                .ok_or_else(|| format!("operator `{}` needs a `value`", op_name(spec.op)))
        };
        let number = || {
            operand().and_then(|v| {
                v.as_f64().ok_or_else(|| {
                    format!("operator `{}` needs a number, not {v}", op_name(spec.op))
                })
            })
        };
        let list = || {
            operand().and_then(|v| match v {
                Value::Array(items) => Ok(items),
                other => Err(format!(
                    "operator `{}` needs a list, not {other}",
                    op_name(spec.op)
                )),
            })
        };
        let test = match spec.op {
            Operator::Eq => Test::Eq(operand()?),
            Operator::Neq => Test::Neq(operand()?),
            Operator::In => Test::In(list()?),
            Operator::NotIn => Test::NotIn(list()?),
            Operator::Lt => Test::Lt(number()?),
            Operator::Lte => Test::Lte(number()?),
            Operator::Gt => Test::Gt(number()?),
            Operator::Gte => Test::Gte(number()?),
            Operator::Regex => match operand()? {
                Value::String(pattern) => {
                    Test::Regex(Regex::new(&pattern).map_err(|e| format!("invalid regex: {e}"))?)
                }
                other => return Err(format!("operator `regex` needs a string, not {other}")),
            },
            Operator::Contains => Test::Contains(operand()?),
            Operator::Exists => match spec.value {
                None => Test::Exists(true),
                Some(Value::Bool(b)) => Test::Exists(b),
                Some(ref other) => {
                    return Err(format!(
                        "operator `exists` takes true or false, not {other}"
                    ));
                }
            },
        };
        Ok(Condition { path, test })
    }

    fn holds(&self, args: &ExecuteArgs) -> bool {
        let value = self.path.resolve(args);
        match (&self.test, value) {
            (Test::Exists(want), v) => v.is_some() == *want,
            (_, None) => false,
            (Test::Eq(x), Some(v)) => loosely_equal(&v, x),
            (Test::Neq(x), Some(v)) => !loosely_equal(&v, x),
            (Test::In(xs), Some(v)) => xs.iter().any(|x| loosely_equal(&v, x)),
            (Test::NotIn(xs), Some(v)) => !xs.iter().any(|x| loosely_equal(&v, x)),
            (Test::Lt(x), Some(v)) => v.as_f64().is_some_and(|n| n < *x),
            (Test::Lte(x), Some(v)) => v.as_f64().is_some_and(|n| n <= *x),
            (Test::Gt(x), Some(v)) => v.as_f64().is_some_and(|n| n > *x),
            (Test::Gte(x), Some(v)) => v.as_f64().is_some_and(|n| n >= *x),
            (Test::Regex(re), Some(Value::String(s))) => re.is_match(&s),
            (Test::Regex(_), Some(_)) => false,
            (Test::Contains(x), Some(Value::String(s))) => {
                x.as_str().is_some_and(|needle| s.contains(needle))
            }
            (Test::Contains(x), Some(Value::Array(items))) => {
                items.iter().any(|i| loosely_equal(i, x))
            }
            (Test::Contains(x), Some(Value::Object(map))) => {
                x.as_str().is_some_and(|k| map.contains_key(k))
            }
            (Test::Contains(_), Some(_)) => false,
        }
    }
}

impl ArgPath {
    fn resolve(&self, args: &ExecuteArgs) -> Option<Value> {
        match self {
            ArgPath::Language => Some(Value::from(args.language.as_str())),
            ArgPath::Code => Some(Value::from(args.code.as_str())),
            ArgPath::CodeLength => Some(Value::from(args.code.len())),
            ArgPath::TimeoutMs => args.timeout_ms.map(Value::from),
            ArgPath::Input(keys) => {
                let mut v = args.input.as_ref()?;
                for key in keys {
                    v = v.get(key)?;
                }
                Some(v.clone())
            }
        }
    }
}

/// Numbers compare by value (1 == 1.0); everything else structurally.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn op_name(op: Operator) -> &'static str {
    match op {
        Operator::Eq => "eq",
        Operator::Neq => "neq",
        Operator::In => "in",
        Operator::NotIn => "not_in",
        Operator::Lt => "lt",
        Operator::Lte => "lte",
        Operator::Gt => "gt",
        Operator::Gte => "gte",
        Operator::Regex => "regex",
        Operator::Contains => "contains",
        Operator::Exists => "exists",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(arg: &str, op: &str, value: Option<Value>) -> Result<Rule, String> {
        let mut condition = json!({"arg": arg, "op": op});
        if let Some(v) = value {
            condition["value"] = v;
        }
        let spec: RuleSpec =
            serde_json::from_value(json!({"name": "r", "message": "m", "when": [condition]}))
                .map_err(|e| e.to_string())?;
        Rule::compile(&spec)
    }

    fn call(code: &str, timeout_ms: Option<u64>, input: Option<&Value>) -> ExecuteArgs {
        ExecuteArgs {
            language: crate::contract::Language::Python,
            code: code.to_string(),
            timeout_ms,
            input: input.cloned(),
        }
    }

    fn check(
        arg: &str,
        op: &str,
        value: Option<Value>,
        args: impl std::borrow::Borrow<ExecuteArgs>,
    ) -> bool {
        rule(arg, op, value).unwrap().matches(args.borrow())
    }

    #[test]
    fn eq() {
        assert!(check(
            "language",
            "eq",
            Some(json!("python")),
            call("", None, None)
        ));
        assert!(!check(
            "language",
            "eq",
            Some(json!("javascript")),
            call("", None, None)
        ));
        assert!(check(
            "timeout_ms",
            "eq",
            Some(json!(500.0)),
            call("", Some(500), None)
        ));
    }

    #[test]
    fn neq() {
        assert!(check(
            "language",
            "neq",
            Some(json!("javascript")),
            call("", None, None)
        ));
        assert!(!check(
            "language",
            "neq",
            Some(json!("python")),
            call("", None, None)
        ));
    }

    #[test]
    fn in_list() {
        assert!(check(
            "language",
            "in",
            Some(json!(["python", "ruby"])),
            call("", None, None)
        ));
        assert!(!check(
            "language",
            "in",
            Some(json!(["javascript"])),
            call("", None, None)
        ));
        assert!(
            rule("language", "in", Some(json!("python")))
                .unwrap_err()
                .contains("needs a list")
        );
    }

    #[test]
    fn not_in_list() {
        assert!(check(
            "language",
            "not_in",
            Some(json!(["javascript"])),
            call("", None, None)
        ));
        assert!(!check(
            "language",
            "not_in",
            Some(json!(["python"])),
            call("", None, None)
        ));
    }

    #[test]
    fn lt_lte_gt_gte() {
        let c = call("12345", Some(100), None);
        assert!(check("code_length", "lt", Some(json!(6)), &c));
        assert!(!check("code_length", "lt", Some(json!(5)), &c));
        assert!(check("code_length", "lte", Some(json!(5)), &c));
        assert!(!check("code_length", "lte", Some(json!(4)), &c));
        assert!(check("timeout_ms", "gt", Some(json!(99)), &c));
        assert!(!check("timeout_ms", "gt", Some(json!(100)), &c));
        assert!(check("timeout_ms", "gte", Some(json!(100)), &c));
        assert!(!check("timeout_ms", "gte", Some(json!(101)), &c));
        assert!(
            !check("timeout_ms", "gt", Some(json!(1)), call("", None, None)),
            "absent never compares"
        );
        assert!(
            rule("code_length", "gt", Some(json!("5")))
                .unwrap_err()
                .contains("needs a number")
        );
    }

    #[test]
    fn regex() {
        assert!(check(
            "code",
            "regex",
            Some(json!(r"\bimport\s+os\b")),
            call("import os", None, None)
        ));
        assert!(!check(
            "code",
            "regex",
            Some(json!(r"^eval")),
            call("x = eval", None, None)
        ));
        assert!(
            rule("code", "regex", Some(json!("(")))
                .unwrap_err()
                .contains("invalid regex")
        );
    }

    #[test]
    fn contains() {
        assert!(check(
            "code",
            "contains",
            Some(json!("eval(")),
            call("x = eval(1)", None, None)
        ));
        assert!(!check(
            "code",
            "contains",
            Some(json!("exec(")),
            call("x = eval(1)", None, None)
        ));
        let input = json!({"tags": ["a", "b"], "meta": {"k": 1}});
        assert!(check(
            "input.tags",
            "contains",
            Some(json!("b")),
            call("", None, Some(&input))
        ));
        assert!(check(
            "input.meta",
            "contains",
            Some(json!("k")),
            call("", None, Some(&input))
        ));
        assert!(!check(
            "input.tags",
            "contains",
            Some(json!("z")),
            call("", None, Some(&input))
        ));
    }

    #[test]
    fn exists() {
        let input = json!({"user": {"id": 7}});
        assert!(check(
            "input.user.id",
            "exists",
            None,
            call("", None, Some(&input))
        ));
        assert!(!check(
            "input.user.name",
            "exists",
            None,
            call("", None, Some(&input))
        ));
        assert!(check(
            "input.user.name",
            "exists",
            Some(json!(false)),
            call("", None, Some(&input))
        ));
        assert!(check(
            "timeout_ms",
            "exists",
            Some(json!(false)),
            call("", None, None)
        ));
        assert!(!check("input", "exists", None, call("", None, None)));
    }

    #[test]
    fn all_conditions_must_hold() {
        let spec: RuleSpec = serde_json::from_value(json!({
            "name": "big-python", "message": "too big",
            "when": [{"arg": "language", "op": "eq", "value": "python"},
                     {"arg": "code_length", "op": "gt", "value": 3}]
        }))
        .unwrap();
        let r = Rule::compile(&spec).unwrap();
        assert!(r.matches(&call("12345", None, None)));
        assert!(!r.matches(&call("12", None, None)));
    }

    #[test]
    fn bad_rules_are_explained() {
        assert!(
            rule("cwd", "eq", Some(json!(1)))
                .unwrap_err()
                .contains("unknown `arg` \"cwd\"")
        );
        assert!(
            rule("input.", "exists", None)
                .unwrap_err()
                .contains("unknown `arg`")
        );
        assert!(
            rule("code", "eq", None)
                .unwrap_err()
                .contains("needs a `value`")
        );
        assert!(
            rule("code", "exists", Some(json!(3)))
                .unwrap_err()
                .contains("true or false")
        );
        let spec: RuleSpec =
            serde_json::from_value(json!({"name": "x", "message": "m", "when": []})).unwrap();
        assert!(Rule::compile(&spec).unwrap_err().contains("no conditions"));
    }
}
