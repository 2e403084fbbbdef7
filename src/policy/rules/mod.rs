//! Argument rules: named conditions on a call's arguments (and on counters). A rule applies
//! when every `when` condition holds and, if it has `require` conditions, one of those fails;
//! an applying rule stops the call with its message (or asks a person). Parsed, and regexes
//! compiled, once when the policy is loaded; matched per call.
//!
//! Conditions come in two forms. `arg = "..."` is Warden's own (with `code_length`, and typos
//! refused). `path = "args.…"` or `path = "state.<counter>"` is the gateway's (PolicyLayer,
//! Intercept): it compares as the gateway does (see [`gateway`]), and an argument the call
//! does not have is simply absent.

mod gateway;
mod operator;
mod paths;

pub use operator::Operator;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use gateway::dotted_after;
pub use gateway::is_gateway_path;
use paths::{ArgPath, args_path};
pub use paths::{Arguments, argument, missing_argument};

/// A rule as written in the policy (`[[tools.execute_code.rules]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// What the caller sees when the rule stops the call.
    pub message: String,
    /// All must hold for the rule to apply (none: it always applies, unless `require` holds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<ConditionSpec>,
    /// The call must meet all of these: the rule applies when one fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<ConditionSpec>,
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
    /// Warden's form: `language`, `code`, `code_length`, `timeout_ms`, `input`, or
    /// `input.<key>.<key>...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg: Option<String>,
    /// The gateway's form: `args.<key>.<key>...` or `state.<counter>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub op: Operator,
    /// The operand; not used by `exists` (which takes an optional boolean, default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

impl ConditionSpec {
    /// A condition in the gateway's form.
    pub fn at_path(path: impl Into<String>, op: Operator, value: Option<Value>) -> ConditionSpec {
        ConditionSpec {
            arg: None,
            path: Some(path.into()),
            op,
            value,
        }
    }
}

/// What conditions can read besides the arguments: counters' values in their current window.
pub trait Counters {
    fn current(&self, counter: &str) -> u64;
}

/// How a rule came out for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passes,
    Applies,
    /// Applies because a counter reached a bound (`state.<counter>` with `lt`/`lte` failed):
    /// the call may pass once that counter's window ends.
    AppliesAtCounter(String),
}

/// A rule ready to match.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub message: String,
    pub effect: Effect,
    when: Vec<Condition>,
    require: Vec<Condition>,
}

#[derive(Debug, Clone)]
struct Condition {
    path: ArgPath,
    /// The keys after `args.` of a gateway path, as written: how it reads a tool's arguments.
    keys: Vec<String>,
    test: Test,
    /// Compares as the gateway does (a `path` condition).
    gateway: bool,
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
        let compile = |list: &[ConditionSpec], key: &str| -> Result<Vec<Condition>, String> {
            list.iter()
                .enumerate()
                .map(|(i, c)| {
                    Condition::compile(c).map_err(|e| {
                        format!("rule `{}`, `{key}` condition {}: {e}", spec.name, i + 1)
                    })
                })
                .collect()
        };
        Ok(Rule {
            name: spec.name.clone(),
            message: spec.message.clone(),
            effect: spec.effect,
            when: compile(&spec.when, "when")?,
            require: compile(&spec.require, "require")?,
        })
    }

    /// Whether the rule applies to a call (conditions on counters read `counters`).
    pub fn outcome<'a>(&self, args: impl Into<Arguments<'a>>, counters: &dyn Counters) -> Outcome {
        let args = args.into();
        if !self.when.iter().all(|c| c.holds(args, counters)) {
            return Outcome::Passes;
        }
        match self.require.iter().find(|c| !c.holds(args, counters)) {
            None if !self.require.is_empty() => Outcome::Passes,
            None => Outcome::Applies,
            Some(failed) => match (&failed.path, &failed.test) {
                (ArgPath::Counter(name), Test::Lt(_) | Test::Lte(_)) => {
                    Outcome::AppliesAtCounter(name.clone())
                }
                _ => Outcome::Applies,
            },
        }
    }

    /// The counters the rule's conditions read.
    pub fn counters_read(&self) -> impl Iterator<Item = &str> {
        self.when
            .iter()
            .chain(&self.require)
            .filter_map(|c| match &c.path {
                ArgPath::Counter(name) => Some(name.as_str()),
                _ => None,
            })
    }
}

impl Condition {
    fn compile(spec: &ConditionSpec) -> Result<Condition, String> {
        let keys = spec
            .path
            .as_deref()
            .and_then(|p| dotted_after(p, "args."))
            .map(|rest| rest.split('.').map(str::to_string).collect())
            .unwrap_or_default();
        let (path, gateway) = match (&spec.arg, &spec.path) {
            (Some(arg), None) => (Self::warden_arg(arg)?, false),
            (None, Some(path)) => (Self::gateway_path(path)?, true),
            _ => return Err("a condition has either `arg` or `path` (not both)".into()),
        };
        // TOML's nan and inf have no JSON form: they arrive as null, which a call's arguments
        // could never equal (found by the policy_parse fuzz target).
        if spec.value.as_ref().is_some_and(Value::is_null) {
            return Err("`value` is not a JSON value (nan and inf are not allowed)".into());
        }
        let operand = || {
            spec.value
                .clone()
                .ok_or_else(|| format!("operator `{}` needs a `value`", spec.op.name()))
        };
        let number = || {
            operand().and_then(|v| {
                v.as_f64()
                    .ok_or_else(|| format!("operator `{}` needs a number, not {v}", spec.op.name()))
            })
        };
        let list = || {
            operand().and_then(|v| match v {
                Value::Array(items) => Ok(items),
                other => Err(format!(
                    "operator `{}` needs a list, not {other}",
                    spec.op.name()
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
        Ok(Condition {
            path,
            keys,
            test,
            gateway,
        })
    }

    fn warden_arg(arg: &str) -> Result<ArgPath, String> {
        Ok(match arg {
            "language" => ArgPath::Language,
            "code" => ArgPath::Code,
            "code_length" => ArgPath::CodeLength,
            "timeout_ms" => ArgPath::TimeoutMs,
            "session" => ArgPath::Session,
            "files" => ArgPath::Files,
            "input" => ArgPath::Input(Vec::new()),
            other => match other.strip_prefix("input.") {
                Some(rest) if !rest.is_empty() && rest.split('.').all(|k| !k.is_empty()) => {
                    ArgPath::Input(rest.split('.').map(str::to_string).collect())
                }
                _ => {
                    return Err(format!(
                        "unknown `arg` \"{other}\" (expected language, code, code_length, \
                         timeout_ms, session, files, input or input.<key>)"
                    ));
                }
            },
        })
    }

    fn gateway_path(path: &str) -> Result<ArgPath, String> {
        if let Some(rest) = dotted_after(path, "args.") {
            return Ok(args_path(rest));
        }
        if let Some(counter) = dotted_after(path, "state.") {
            return Ok(ArgPath::Counter(counter.to_string()));
        }
        Err(format!(
            "path must start with \"args.\" or \"state.\", got \"{path}\" \
             (args.<key>.<key>... or state.<counter>)"
        ))
    }

    fn holds(&self, args: Arguments<'_>, counters: &dyn Counters) -> bool {
        let value = match (args, &self.path) {
            (Arguments::Execute(args), path) => path.resolve(args, counters),
            (Arguments::Tool(_), ArgPath::Counter(name)) => {
                Some(Value::from(counters.current(name)))
            }
            (Arguments::Tool(_), _) if self.keys.is_empty() => None,
            (Arguments::Tool(arguments), _) => self
                .keys
                .iter()
                .try_fold(arguments, |v, key| v.get(key))
                .cloned(),
        };
        if self.gateway {
            return gateway::holds(&self.test, value);
        }
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

/// Numbers compare by value (1 == 1.0); everything else structurally.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests;
