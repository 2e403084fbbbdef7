//! Intercept's documented behaviours that need more than one call or document: bounds on
//! counters, conditions on other counters, every validation error, ignored keys, the eleven
//! operators, and every published policy file.

use serde_json::{Value, json};

use super::super::Policy;
use super::tests::{FIXTURES, call, denied, engine, intercept, run};
use crate::contract::{Status, TOOL_NAME};

#[test]
fn lt_bounds_one_below_and_unbounded_counters_never_count() {
    let doc = "version: \"1\"\ntools:\n  execute_code:\n    rules:\n      - name: two\n        conditions:\n          - path: state.execute_code.n\n            op: lt\n            value: 3\n        state:\n          counter: n\n          window: hour\n";
    let e = engine(intercept(doc).0);
    assert!(run(&e, &call("1", None, Value::Null), 0).is_ok());
    assert!(run(&e, &call("1", None, Value::Null), 1).is_ok());
    assert_eq!(
        denied(run(&e, &call("1", None, Value::Null), 2))
            .decision
            .reason,
        "Rate limit exceeded for two"
    );
    // A state block whose rule bounds it only with `gte` is never counted (as at the gateway).
    let doc = doc
        .replace("op: lt", "op: gte")
        .replace("value: 3", "value: 0");
    let (policy, notes) = intercept(&doc);
    assert!(
        notes.iter().any(|n| n.contains("never counts it")),
        "{notes:?}"
    );
    assert!(policy.tools[TOOL_NAME].limits.is_empty());
    let e = engine(policy);
    for i in 0..5 {
        assert!(run(&e, &call("1", None, Value::Null), i).is_ok());
    }
}

#[test]
fn a_condition_on_another_counter_reads_it() {
    // Only after three calls has `warmup` counted enough for `gated` to pass.
    let doc = r#"
version: "1"
tools:
  execute_code:
    rules:
      - name: warmup
        conditions: [{path: state.execute_code.calls, op: lte, value: 100}]
        state: {counter: calls, window: day}
      - name: gated
        conditions:
          - {path: state.execute_code.calls, op: gte, value: 3}
          - {path: args.input.force, op: neq, value: true}
        on_deny: not yet
"#;
    let e = engine(intercept(doc).0);
    let d = denied(run(&e, &call("1", None, json!({"force": false})), 0));
    assert_eq!(
        (d.status, d.decision.reason.as_str()),
        (Status::Denied, "not yet")
    );
    // Denied calls count nothing; nothing else counts `calls` either, so it stays shut.
    assert!(run(&e, &call("1", None, json!({"force": false})), 1).is_err());
}

#[test]
fn validation_lists_every_error_at_its_line_and_column() {
    let doc = "version: \"2\"\ndefault: maybe\nhide: [a, a, \"\"]\ntools:\n  t:\n    rules:\n      - action: deny\n        conditions: [{path: args.x, op: eq, value: 1}]\n      - name: r\n        conditions: [{path: x, op: between, value: 1}]\n      - name: s\n        rate_limit: 0/week\n      - name: u\n        conditions: [{path: state.t.missing, op: lte, value: 1}]\n      - name: v\n        conditions: [{path: args.n, op: in, value: 1}, {path: args.s, op: regex, value: \"(\"}]\n        state: {counter: c, window: fortnight, increment_from: amount}\n";
    let e = Policy::from_intercept(doc, "bad.yaml")
        .unwrap_err()
        .to_string();
    for expected in [
        "line 2, column 10: default must be \"allow\" or \"deny\", got \"maybe\"",
        "line 3, column 11: hide: duplicate entry \"a\"",
        "line 3, column 14: hide[2]: entry must not be empty",
        "line 7, column 9: tools.t.rules[0]: rule must have a name",
        "tools.t.rules[0]: deny rules must not have conditions",
        "line 10, column 22: tools.t.rules[1].conditions[0]: path must start with \"args.\" or \"state.\", got \"x\"",
        "tools.t.rules[1].conditions[0]: unknown operator \"between\"",
        "line 11, column 9: tools.t.rules[2]: rate_limit count must be a positive integer, got \"0\"",
        "tools.t.rules[3]: condition references state.t.missing but no matching state block found",
        "tools.t.rules[4].conditions[0]: operator \"in\" requires a list value",
        "tools.t.rules[4].conditions[1]: invalid regex \"(\"",
        "tools.t.rules[4].state: window must be \"minute\", \"hour\", or \"day\", got \"fortnight\"",
        "line 1, column 10: version must be \"1\", got \"2\"",
    ] {
        assert!(e.contains(expected), "missing: {expected}\n{e}");
    }
    let e = Policy::from_intercept("version: \"1\"\ntools:\n  t:\n    rules:\n      - name: a\n        rate_limit: 5/hour\n      - name: b\n        rate_limit: 9/hour\n", "d.yaml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "tools.t.rules[1]: duplicate state counter \"_rate_hour\" (also used by rules[0])"
        ),
        "{e}"
    );
    for (doc, expected) in [
        (
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: a\n        rate_limit: 5/hour\n        action: deny\n",
            "rate_limit cannot be used with action \"deny\"",
        ),
        (
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: a\n        rate_limit: 5/hour\n        conditions: [{path: args.a, op: exists, value: true}]\n",
            "rate_limit cannot be combined with conditions or state",
        ),
        (
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: a\n",
            "evaluate rules must have at least one condition",
        ),
        (
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: a\n        action: block\n",
            "action must be \"evaluate\" or \"deny\", got \"block\"",
        ),
        (
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: a\n        rate_limit: often\n",
            "rate_limit must be in the format \"N/window\"",
        ),
        ("version: \"1\"\ntools: [\n", "line 3, column 1"),
        ("- a\n- b\n", "an Intercept policy is a mapping"),
        // Found by the policy_parse fuzz target: a null inside a list (an anchor with no value)
        // was accepted, and the normalized TOML could not render it.
        (
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: a\n        conditions: [{path: args.x, op: in, value: [&a, \"b\"]}]\n",
            "null cannot be compared",
        ),
    ] {
        let e = Policy::from_intercept(doc, "d.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{doc}\nmissing: {expected}\n{e}");
    }
}

#[test]
fn keys_the_gateway_ignores_are_noted_not_dropped_silently() {
    let doc = "version: 1\nowner: ops\ntools:\n  execute_code:\n    rules:\n      - name: a\n        action: deny\n        severity: high\n";
    let (policy, notes) = intercept(doc);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("line 2, column 8: `owner` is not an Intercept policy key")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("`tools.execute_code.rules[0].severity`")),
        "{notes:?}"
    );
    // `version: 1` is the string "1" to the gateway's YAML decoder.
    let d = denied(run(&engine(policy), &call("1", None, Value::Null), 0));
    assert_eq!(d.decision.reason, "Denied by rule \"a\"");
}

#[test]
fn every_published_intercept_policy_loads() {
    let dir = format!("{FIXTURES}/published");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let (policy, notes) = Policy::load_with_notes(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!policy.tools.is_empty(), "{}", path.display());
        assert!(
            notes
                .iter()
                .any(|n| n.contains("tools this server does not have")),
            "{}",
            path.display()
        );
        engine(policy);
        loaded += 1;
    }
    assert_eq!(loaded, 53);
}

#[test]
fn the_eleven_operators_decide_as_the_gateway_documents() {
    // One evaluate rule per case: the call passes exactly when the condition holds.
    let input = json!({"amount": 250, "currency": "usd", "tags": ["a", "b"], "note": "feat/x",
                       "flag": null, "n": "5"});
    let cases: [(&str, Value, bool); 24] = [
        ("eq", json!(["args.input.currency", "usd"]), true),
        ("eq", json!(["args.input.n", 5]), true),
        ("neq", json!(["args.input.currency", "eur"]), true),
        ("neq", json!(["args.input.missing", "eur"]), false),
        ("in", json!(["args.input.currency", ["usd", "eur"]]), true),
        ("in", json!(["args.input.currency", ["gbp"]]), false),
        ("not_in", json!(["args.input.currency", ["gbp"]]), true),
        ("not_in", json!(["args.input.missing", ["gbp"]]), false),
        ("lt", json!(["args.input.amount", 251]), true),
        ("lt", json!(["args.input.amount", 250]), false),
        ("lte", json!(["args.input.amount", 250]), true),
        ("gt", json!(["args.input.amount", 249.5]), true),
        ("gte", json!(["args.input.amount", 251]), false),
        ("gt", json!(["args.input.n", 1]), false),
        ("regex", json!(["args.input.note", "^feat/"]), true),
        ("regex", json!(["args.input.amount", "2"]), false),
        ("contains", json!(["args.input.note", "at/"]), true),
        ("contains", json!(["args.input.tags", "b"]), true),
        ("contains", json!(["args.input", "amount"]), false),
        ("exists", json!(["args.input.amount", true]), true),
        ("exists", json!(["args.input.flag", false]), true),
        ("exists", json!(["args.input.missing", true]), false),
        ("eq", json!(["args.language", "python"]), true),
        ("exists", json!(["args.timeout_ms", false]), true),
    ];
    for (op, operands, passes) in cases {
        let doc = format!(
            "version: \"1\"\ntools:\n  execute_code:\n    rules:\n      - name: r\n        conditions:\n          - {{path: {}, op: {op}, value: {}}}\n",
            operands[0].as_str().unwrap(),
            operands[1]
        );
        let e = engine(intercept(&doc).0);
        let outcome = run(&e, &call("1", None, input.clone()), 0);
        assert_eq!(outcome.is_ok(), passes, "{op} {operands}: {outcome:?}");
    }
}

#[test]
fn a_bare_prefix_is_a_located_error_not_a_translation_bug() {
    // `args.` and `state.` pass a bare prefix check; they name nothing.
    for (doc, expected) in [
        (
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: a\n        conditions: [{path: \"args.\", op: exists, value: true}]\n",
            "line 6, column 22: tools.t.rules[0].conditions[0]: path must start with",
        ),
        (
            "version: \"1\"\ntools:\n  t:\n    rules:\n      - name: a\n        conditions: [{path: state.t.c, op: lte, value: 1}]\n        state: {counter: c, window: day, increment_from: \"args.\"}\n",
            "tools.t.rules[0].state: increment_from must start with \"args.\"",
        ),
    ] {
        let e = Policy::from_intercept(doc, "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected) && !e.contains("Warden's bug"), "{e}");
    }
}
