use super::*;
use crate::contract::ExecuteArgs;
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
        files: None,
        session: None,
        session_action: None,
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
    let spec: RuleSpec = serde_json::from_value(json!({"name": "", "message": "m"})).unwrap();
    assert!(
        Rule::compile(&spec)
            .unwrap_err()
            .contains("non-empty `name`")
    );
    let both = json!({"name": "x", "message": "m",
        "when": [{"arg": "code", "path": "args.code", "op": "exists"}]});
    let spec: RuleSpec = serde_json::from_value(both).unwrap();
    assert!(
        Rule::compile(&spec)
            .unwrap_err()
            .contains("either `arg` or `path`")
    );
}

/// No counter has counted anything.
struct Fresh;

impl Counters for Fresh {
    fn current(&self, _: &str) -> u64 {
        0
    }
}

trait Matches {
    fn matches(&self, args: &ExecuteArgs) -> bool;
}

impl Matches for Rule {
    fn matches(&self, args: &ExecuteArgs) -> bool {
        self.outcome(args, &Fresh) != Outcome::Passes
    }
}

fn spec(value: Value) -> Rule {
    Rule::compile(&serde_json::from_value(value).unwrap()).unwrap()
}

#[test]
fn a_rule_without_conditions_always_applies() {
    let r = spec(json!({"name": "x", "message": "m"}));
    assert!(r.matches(&call("", None, None)));
}

#[test]
fn require_applies_the_rule_when_one_condition_fails() {
    let r = spec(json!({"name": "x", "message": "m", "require": [
        {"path": "args.input.reason", "op": "exists", "value": true},
        {"path": "args.timeout_ms", "op": "lte", "value": 1000}]}));
    let with_reason = json!({"reason": "audit"});
    assert!(!r.matches(&call("", Some(500), Some(&with_reason))));
    assert!(r.matches(&call("", Some(5000), Some(&with_reason))));
    assert!(r.matches(&call("", Some(500), None)));
    // `when` narrows the calls the rule looks at.
    let r = spec(json!({"name": "x", "message": "m",
        "when": [{"arg": "language", "op": "eq", "value": "javascript"}],
        "require": [{"path": "args.timeout_ms", "op": "exists", "value": true}]}));
    assert!(!r.matches(&call("", None, None)), "python is not looked at");
}

#[test]
fn gateway_paths_read_the_arguments_as_sent() {
    let r = spec(json!({"name": "x", "message": "m", "when": [
        {"path": "args.code", "op": "contains", "value": "import os"},
        {"path": "args.language", "op": "in", "value": ["python"]}]}));
    assert!(r.matches(&call("import os\n", None, None)));
    // code_length is Warden's, not an argument: in the gateway's form it is absent.
    let r = spec(json!({"name": "x", "message": "m",
        "when": [{"path": "args.code_length", "op": "exists", "value": false}]}));
    assert!(r.matches(&call("1", None, None)));
    assert_eq!(missing_argument("args.code_length"), Some("code_length"));
    assert_eq!(missing_argument("args.input.a"), None);
    // The gateway's equality: a number equals its printed form.
    let r = spec(json!({"name": "x", "message": "m",
        "when": [{"path": "args.input.n", "op": "eq", "value": "5"}]}));
    assert!(r.matches(&call("", None, Some(&json!({"n": 5})))));
    let bad = json!({"name": "x", "message": "m",
        "when": [{"path": "input.n", "op": "exists"}]});
    let bad: RuleSpec = serde_json::from_value(bad).unwrap();
    assert!(
        Rule::compile(&bad)
            .unwrap_err()
            .contains("must start with \"args.\" or \"state.\"")
    );
}

#[test]
fn a_counter_bound_that_fails_says_which_counter() {
    struct At(u64);
    impl Counters for At {
        fn current(&self, _: &str) -> u64 {
            self.0
        }
    }
    let r = spec(json!({"name": "x", "message": "m",
        "require": [{"path": "state.tool.calls", "op": "lte", "value": 5}]}));
    let args = call("", None, None);
    assert_eq!(r.outcome(&args, &At(5)), Outcome::Passes);
    assert_eq!(
        r.outcome(&args, &At(6)),
        Outcome::AppliesAtCounter("tool.calls".into())
    );
    let r = spec(json!({"name": "x", "message": "m",
        "require": [{"path": "state.tool.calls", "op": "gte", "value": 1}]}));
    assert_eq!(r.outcome(&args, &At(0)), Outcome::Applies);
}

#[test]
fn rules_see_the_session_and_the_names_of_the_files() {
    let mut args = call("", None, None);
    assert!(!check("session", "exists", Some(json!(true)), &args));
    args.session = Some("new".into());
    args.files = Some(
        [(
            "data.csv".to_string(),
            crate::contract::FileInput::Text("a".into()),
        )]
        .into(),
    );
    assert!(check("session", "eq", Some(json!("new")), &args));
    assert!(check("files", "contains", Some(json!("data.csv")), &args));
    let gateway: RuleSpec = serde_json::from_value(json!({"name": "r", "message": "m",
        "when": [{"path": "args.session", "op": "exists", "value": true}]}))
    .unwrap();
    assert!(Rule::compile(&gateway).unwrap().matches(&args));
}
