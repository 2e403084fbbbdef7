//! Gateway policy bypasses: a caller under an Intercept policy (argument bounds, an allowlist of
//! languages, a spend counter fed by an argument) shapes its arguments to slip past the rules or
//! to lower the counter: absent arguments, numbers as strings, objects and lists where a number
//! is expected, negative and huge amounts, case games. Every attempt is stopped before anything
//! runs and counts nothing; the spend counter only ever grows.

use serde_json::{Value, json};

use crate::harness::*;

const POLICY: &str = r#"
version: "1"
default: deny
tools:
  execute_code:
    rules:
      - name: "bounded runs"
        conditions: [{path: args.timeout_ms, op: lte, value: 2000}]
        on_deny: "bounded"
      - name: "python only"
        conditions: [{path: args.language, op: in, value: [python]}]
        on_deny: "python only"
      - name: "small amounts"
        conditions: [{path: args.input.amount, op: lte, value: 100}]
        on_deny: "small"
      - name: "known accounts"
        conditions: [{path: args.input.account, op: eq, value: "ops"}]
        on_deny: "ops only"
      - name: "daily spend"
        conditions: [{path: state.execute_code.spend, op: lte, value: 150}]
        on_deny: "spent"
        state: {counter: spend, window: day, increment_from: args.input.amount}
"#;

fn env() -> Env {
    // Health checks are honest calls: bounded, in Python, spending nothing.
    let health = json!({"timeout_ms": 1000, "input": {"amount": 0, "account": "ops"}});
    Env::intercept(POLICY, health, &[PY])
}

fn spend(amount: Value) -> Value {
    json!({"language": "python", "code": "1", "timeout_ms": 1000,
           "input": {"amount": amount, "account": "ops"}})
}

/// A call the policy stops with `rule` before anything runs.
fn stopped(name: &str, args: Value, status: &'static [&'static str], rule: &'static str) -> Case {
    Case::args(name, args)
        .must("stopped by the policy before anything runs, naming the rule")
        .status(status)
        .check(move |o| match &o.result.policy {
            Some(p) if p.rule == rule && o.result.usage.fuel == 0 => Ok(()),
            other => Err(format!("expected rule {rule} and no run, got {other:?}")),
        })
}

fn denied(name: &str, args: Value, rule: &'static str) -> Case {
    stopped(name, args, &["denied"], rule)
}

pub fn cases(_: &Ports) -> Vec<Case> {
    let py = |extra: Value| {
        let mut args = json!({"language": "python", "code": "1",
                              "input": {"amount": 1, "account": "ops"}});
        for (k, v) in extra.as_object().into_iter().flatten() {
            args[k] = v.clone();
        }
        args
    };
    vec![
        denied(
            "timeout_ms left out to dodge its bound",
            py(json!({})),
            "bounded runs",
        ),
        denied(
            "another language than the allowlist's",
            py(json!({"language": "javascript", "timeout_ms": 1000})),
            "python only",
        ),
        Case::args(
            "the allowed language in another case",
            py(json!({"language": "Python", "timeout_ms": 1000})),
        )
        .must("an unknown language is invalid_arguments; nothing runs")
        .status(&["invalid_arguments"]),
        denied(
            "amount as a numeric string",
            spend(json!("50")),
            "small amounts",
        ),
        denied(
            "amount as an exponent string",
            spend(json!("1e9")),
            "small amounts",
        ),
        denied("amount as a list", spend(json!([1])), "small amounts"),
        denied(
            "amount as an operator object",
            spend(json!({"$lt": 1})),
            "small amounts",
        ),
        denied("amount as null", spend(Value::Null), "small amounts"),
        denied(
            "amount just above the bound",
            spend(json!(100.5)),
            "small amounts",
        ),
        denied(
            "amount far above the bound",
            spend(json!(1e300)),
            "small amounts",
        ),
        denied(
            "amount left out",
            json!({"language": "python", "code": "1", "timeout_ms": 1000,
                   "input": {"account": "ops"}}),
            "small amounts",
        ),
        denied(
            "a negative amount to lower the spend counter",
            spend(json!(-1000)),
            "rate_limit.execute_code.spend",
        ),
        denied(
            "a tiny negative amount to lower the spend counter",
            spend(json!(-0.5)),
            "rate_limit.execute_code.spend",
        ),
        denied(
            "the account in another case",
            json!({"language": "python", "code": "1", "timeout_ms": 1000,
                   "input": {"amount": 1, "account": "OPS"}}),
            "known accounts",
        ),
        denied(
            "the account with a trailing space",
            json!({"language": "python", "code": "1", "timeout_ms": 1000,
                   "input": {"amount": 1, "account": "ops "}}),
            "known accounts",
        ),
        Case::args("an honest spend of 100", spend(json!(100)))
            .must("runs, and counts 100")
            .status(&["ok"]),
        Case::args("an honest spend of 50.9 counts 50", spend(json!(50.9)))
            .must("runs: 100 + 50 fits under 150, the fraction dropped as at the gateway")
            .status(&["ok"]),
        stopped(
            "one more unit past the day's spend",
            spend(json!(1)),
            &["rate_limited"],
            "rate_limit.execute_code.spend",
        ),
        Case::args("a zero spend once the budget is used", spend(json!(0)))
            .must("runs: it adds nothing, and 150 is within the bound")
            .status(&["ok"]),
    ]
}

#[tokio::test]
async fn gateway() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("gateway", &env, cases, Mode::Regular).await;
}
