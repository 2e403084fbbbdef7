//! The gateway's dialects decide here as they do at the gateway: one test per documented
//! behaviour (PolicyLayer's docs, Intercept's POLICY.md), with POLICY.md's examples as fixtures.

use std::sync::Arc;

use serde_json::{Value, json};

use super::super::{
    Action, Caller, Decision, Denial, MemoryCounterStore, Policy, PolicyEngine, Reservation,
};
use crate::contract::{ExecuteArgs, Language, Status};

pub(super) const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/intercept");

const SEED: &str = r#"{"version": "1", "default": "deny",
 "tools": {"execute_code": {"limits": [
   {"counter": "execute_code_rate", "window": "minute", "max": 10, "scope": "grant"}]}}}"#;

pub(super) const ALICE: Caller<'static> = Caller {
    grant: "alice",
    session: "s1",
};

pub(super) fn intercept(text: &str) -> (Policy, Vec<String>) {
    Policy::from_intercept(text, "p.yaml").unwrap_or_else(|e| panic!("{e}"))
}

pub(super) fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

pub(super) fn engine(policy: Policy) -> PolicyEngine {
    PolicyEngine::new(policy, Arc::new(MemoryCounterStore::default())).unwrap()
}

pub(super) fn call(code: &str, timeout_ms: Option<u64>, input: Value) -> ExecuteArgs {
    ExecuteArgs {
        language: Language::Python,
        code: code.into(),
        timeout_ms,
        input: (!input.is_null()).then_some(input),
        files: None,
        session: None,
        session_action: None,
    }
}

/// The whole decision for one call at `now_ms`: the policy, then the counters.
pub(super) fn run(
    e: &PolicyEngine,
    args: &ExecuteArgs,
    now_ms: u64,
) -> Result<Reservation, Denial> {
    match e.decide(args, &ALICE) {
        Decision::Admit => e.admit(args, &ALICE, now_ms),
        Decision::Deny(d) => Err(d),
        Decision::NeedsApproval(q) => panic!("no approval in a gateway policy: {q:?}"),
    }
}

pub(super) fn denied(result: Result<Reservation, Denial>) -> Denial {
    result.expect_err("the call should be stopped")
}

#[test]
fn the_seed_policy_allows_its_listed_tool_ten_times_a_minute() {
    let e = engine(Policy::from_policylayer(SEED, "seed.json").unwrap());
    let args = call("1", None, Value::Null);
    let mut trace = e.explain(&args, &ALICE).join("\n");
    assert!(trace.contains("verdict: allow"), "{trace}");
    for i in 0..10 {
        assert!(run(&e, &args, 60_000 + i).is_ok(), "call {i}");
    }
    let d = denied(run(&e, &args, 60_500));
    assert_eq!(d.status, Status::RateLimited);
    assert_eq!(d.decision.rule, "rate_limit.execute_code_rate");
    assert_eq!(d.decision.retry_after_ms, Some(59_500));
    // Per grant: another caller has its own ten.
    let bob = Caller {
        grant: "bob",
        session: "s2",
    };
    assert!(e.admit(&args, &bob, 60_600).is_ok());
    // A call that never ran gives its count back.
    let reservation = e.admit(&args, &bob, 60_700).unwrap();
    e.refund(&reservation);
    trace = e.explain(&args, &bob).join("\n");
    assert!(
        trace.contains("counter `execute_code_rate/grant/bob`"),
        "{trace}"
    );
}

#[test]
fn under_default_deny_only_listed_tools_are_allowed() {
    let unlisted = r#"{"version": "1", "default": "deny", "tools": {"list_customers": {}}}"#;
    let e = engine(Policy::from_policylayer(unlisted, "p.json").unwrap());
    let d = denied(run(&e, &call("1", None, Value::Null), 0));
    assert_eq!(
        (d.status, d.decision.rule.as_str()),
        (Status::Denied, "default")
    );
    let listed = r#"{"version": "1", "default": "deny", "tools": {"execute_code": {}}}"#;
    let e = engine(Policy::from_policylayer(listed, "p.json").unwrap());
    assert!(run(&e, &call("1", None, Value::Null), 0).is_ok());
}

#[test]
fn policylayer_require_and_deny_if_decide_on_the_arguments() {
    let doc = r#"{"version": "1", "default": "allow", "tools": {"execute_code": {
        "require": [{"conditions": [{"path": "args.input.reason", "op": "exists", "value": true}],
                     "on_deny": "Say why"}],
        "deny_if": [{"conditions": [{"path": "args.timeout_ms", "op": "gt", "value": 10000}],
                     "on_deny": "Too long"},
                    {"conditions": [{"path": "args.code", "op": "contains", "value": "rm -rf"}]}]}}}"#;
    let e = engine(Policy::from_policylayer(doc, "p.json").unwrap());
    let why = json!({"reason": "report"});
    assert!(run(&e, &call("1", Some(5000), why.clone()), 0).is_ok());
    let d = denied(run(&e, &call("1", None, Value::Null), 0));
    assert_eq!(d.decision.reason, "Say why");
    assert_eq!(
        d.decision.rule,
        "/tools/execute_code/require/args.input.reason-exists"
    );
    let d = denied(run(&e, &call("1", Some(20_000), why.clone()), 0));
    assert_eq!(d.decision.reason, "Too long");
    let d = denied(run(&e, &call("rm -rf /", None, why), 0));
    assert_eq!(
        d.decision.rule,
        "/tools/execute_code/deny_if/args.code-contains"
    );
    // An empty deny_if entry denies every call (the docs' "Requires human approval.").
    let always = r#"{"version": "1", "default": "allow", "tools": {"execute_code": {
        "deny_if": [{"conditions": [], "on_deny": "Requires human approval."}]}}}"#;
    let e = engine(Policy::from_policylayer(always, "p.json").unwrap());
    let d = denied(run(&e, &call("1", None, Value::Null), 0));
    assert_eq!(d.decision.reason, "Requires human approval.");
}

#[test]
fn hide_removes_the_tool_and_denies_it() {
    for doc in [
        fixture("hide.yaml"),
        "version: \"1\"\nhide: [\"*\"]\ntools: {}\n".to_string(),
    ] {
        let e = engine(intercept(&doc).0);
        assert!(e.hides_the_tool());
        let d = denied(run(&e, &call("1", None, Value::Null), 0));
        assert_eq!(d.decision.rule, "hide");
        assert_eq!(
            d.decision.reason,
            "Tool \"execute_code\" is hidden by policy"
        );
    }
    let pl = r#"{"version": "1", "default": "allow", "hide": ["delete_account"]}"#;
    let (policy, notes) = (Policy::from_policylayer(pl, "p.json").unwrap(), vec![0]);
    assert!(!engine(policy.clone()).hides_the_tool(), "{notes:?}");
    assert!(policy.notes()[0].contains("`delete_account` is not a tool of this server"));
}

#[test]
fn intercept_default_deny_refuses_unlisted_tools_before_any_rule() {
    let (policy, notes) = intercept(&fixture("default_deny.yaml"));
    assert_eq!(policy.default, Action::Deny);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("read_file (0 rules") && n.contains("create_issue (1 rules")),
        "{notes:?}"
    );
    let e = engine(policy);
    // The wildcard's limit does not rescue execute_code, which is not listed.
    let d = denied(run(&e, &call("1", None, Value::Null), 0));
    assert_eq!(d.decision.rule, "default");
    let listed = fixture("default_deny.yaml").replace("  read_file:", "  execute_code:");
    let e = engine(intercept(&listed).0);
    for i in 0..60 {
        assert!(
            run(&e, &call("1", None, Value::Null), i).is_ok(),
            "call {i}"
        );
    }
    let d = denied(run(&e, &call("1", None, Value::Null), 100));
    assert_eq!(d.status, Status::RateLimited);
    assert_eq!(
        d.decision.reason,
        "Rate limit of 60 per minute reached. Try again later."
    );
    assert_eq!(d.decision.rule, "rate_limit._global._rate_minute");
}

#[test]
fn the_github_example_counts_every_call_in_its_wildcard_limit() {
    let (policy, notes) = intercept(&fixture("github.yaml"));
    assert_eq!(policy.hide, ["transfer_repository", "list_webhooks"]);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("delete_repository (1 rules, 0 limits)")),
        "{notes:?}"
    );
    let spec = &policy.tools["create_issue"].limits[0];
    assert_eq!(
        (spec.counter.as_str(), spec.max),
        ("create_issue._rate_hour", 5)
    );
    let e = engine(policy);
    for i in 0..60 {
        assert!(
            run(&e, &call("1", None, Value::Null), i).is_ok(),
            "call {i}"
        );
    }
    assert_eq!(
        denied(run(&e, &call("1", None, Value::Null), 100)).status,
        Status::RateLimited
    );
    assert!(
        run(&e, &call("1", None, Value::Null), 60_000).is_ok(),
        "a new minute"
    );
}

#[test]
fn the_stripe_example_loads_with_its_dynamic_increment() {
    let (policy, _) = intercept(&fixture("stripe.yaml"));
    let spend = &policy.tools["create_charge"].limits[0];
    assert_eq!(spend.counter, "create_charge.daily_spend");
    assert_eq!(spend.max, 1_000_000);
    assert_eq!(spend.increment_from.as_deref(), Some("args.amount"));
    assert_eq!(
        spend.message.as_deref(),
        Some("Daily spending cap of $10,000.00 reached")
    );
    let global = &policy.all_tools.limits[0];
    assert_eq!(
        (global.counter.as_str(), global.max),
        ("_global.calls_per_minute", 60)
    );
    let rules = &policy.tools["create_charge"].rules;
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[2].message, "Only USD and EUR charges are permitted");
}

#[test]
fn the_stripe_constructs_decide_execute_code_calls() {
    let e = engine(intercept(&fixture("execute_code.yaml")).0);
    let rows = |n: u64, dataset: &str| json!({"rows": n, "dataset": dataset});
    // A rule's conditions must all pass; the first failing rule names itself.
    let d = denied(run(&e, &call("1", Some(9000), rows(1, "sales")), 0));
    assert_eq!(
        (d.decision.rule.as_str(), d.status),
        ("short runs only", Status::Denied)
    );
    let d = denied(run(&e, &call("1", Some(100), rows(1, "hr")), 0));
    assert_eq!(d.decision.reason, "Only the sales and support datasets");
    let d = denied(run(&e, &call("!ls", Some(100), rows(1, "sales")), 0));
    assert_eq!(d.decision.reason, "No shell escapes");
    // timeout_ms absent: `lte` on an absent argument fails, as at the gateway.
    let d = denied(run(&e, &call("1", None, rows(1, "sales")), 0));
    assert_eq!(d.decision.rule, "short runs only");
    // increment_from counts the argument: 600 + 400 fit under `lt 1001`, 1 more does not.
    assert!(run(&e, &call("1", Some(100), rows(600, "sales")), 0).is_ok());
    assert!(run(&e, &call("1", Some(100), rows(400, "support")), 1).is_ok());
    let d = denied(run(&e, &call("1", Some(100), rows(1, "sales")), 2));
    assert_eq!(d.status, Status::RateLimited);
    assert_eq!(d.decision.reason, "Daily budget of 1000 rows reached");
    assert!(d.decision.retry_after_ms.is_some());
    // The wildcard's 3/minute counted the two admitted calls; rows 0 adds nothing to the budget.
    assert!(run(&e, &call("1", Some(100), rows(0, "sales")), 3).is_ok());
    let d = denied(run(&e, &call("1", Some(100), rows(0, "sales")), 4));
    assert_eq!(d.decision.rule, "rate_limit._global._rate_minute");
    // A call without the counted argument is refused (the gateway: "Internal policy error").
    let e = engine(intercept(&fixture("execute_code.yaml")).0);
    let d = denied(run(
        &e,
        &call("1", Some(100), json!({"dataset": "sales"})),
        0,
    ));
    assert!(
        d.decision.reason.contains("\"args.input.rows\" not found"),
        "{d:?}"
    );
    let d = denied(run(
        &e,
        &call(
            "1",
            Some(100),
            rows(0, "sales")
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("rows".into(), json!(-5));
                    Value::Object(o)
                })
                .unwrap(),
        ),
        0,
    ));
    assert!(d.decision.reason.contains("cannot go down"), "{d:?}");
}

#[test]
fn translated_policies_render_and_parse_back_unchanged() {
    for name in [
        "github.yaml",
        "stripe.yaml",
        "execute_code.yaml",
        "default_deny.yaml",
        "hide.yaml",
    ] {
        let (policy, _) = intercept(&fixture(name));
        let toml = policy.to_normalized_toml().unwrap();
        assert_eq!(
            Policy::parse(&toml, "n.toml").unwrap(),
            policy,
            "{name}:\n{toml}"
        );
    }
    let seed = Policy::from_policylayer(SEED, "seed.json").unwrap();
    let toml = seed.to_normalized_toml().unwrap();
    assert_eq!(Policy::parse(&toml, "n.toml").unwrap(), seed);
}
