//! The policy document, its sections and the engine's decisions.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::contract::{ExecuteArgs, Language, Status, TOOL_NAME};

#[test]
fn builtin_policy_parses_and_matches_the_defaults() {
    let p = Policy::builtin();
    assert_eq!(p.version, 1);
    assert_eq!(p.limits, Limits::default());
}

#[test]
fn empty_document_means_defaults() {
    let p = Policy::parse("", "t").unwrap();
    assert_eq!(p.limits, Limits::default());
}

#[test]
fn limits_override_defaults() {
    let p = Policy::parse("[limits]\nfuel = 1000\nmax_timeout_ms = 2000\n", "t").unwrap();
    assert_eq!(p.limits.fuel, 1000);
    assert_eq!(p.limits.max_timeout_ms, 2000);
    assert_eq!(p.limits.memory_bytes, Limits::default().memory_bytes);
}

#[test]
fn unknown_key_is_an_error_with_line_and_column() {
    let e = Policy::parse("[limits]\nfuel = 1\nfule = 2\n", "p.toml").unwrap_err();
    let m = e.to_string();
    assert!(m.contains("p.toml"), "{m}");
    assert!(m.contains("line 3, column 1"), "{m}");
    assert!(m.contains("fule"), "{m}");
}

#[test]
fn wrong_type_is_an_error() {
    let e = Policy::parse("[limits]\nfuel = \"lots\"\n", "p.toml").unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn unsupported_version_is_an_error() {
    let e = Policy::parse("version = 2\n", "p.toml").unwrap_err();
    assert!(e.to_string().contains("version 2"), "{e}");
}

#[test]
fn invalid_limits_are_an_error() {
    let e = Policy::parse("[limits]\nmemory_bytes = 0\n", "p").unwrap_err();
    assert!(e.to_string().contains("limits.memory_bytes"), "{e}");
}

fn engine(toml: &str) -> PolicyEngine {
    PolicyEngine::new(
        Policy::parse(toml, "t").unwrap(),
        Arc::new(MemoryCounterStore::default()),
    )
    .unwrap()
}

fn args(language: &str, code: &str) -> ExecuteArgs {
    ExecuteArgs {
        language: Language::from_contract_name(language).unwrap(),
        code: code.to_string(),
        timeout_ms: None,
        input: None,
        files: None,
        session: None,
        session_action: None,
    }
}

/// The stdio caller, for decisions that do not depend on who calls.
const LOCAL: Caller<'static> = Caller {
    grant: LOCAL_GRANT,
    session: "s",
};

fn any_call() -> ExecuteArgs {
    args("python", "1")
}

#[test]
fn the_builtin_policy_allows() {
    let e = PolicyEngine::new(Policy::builtin(), Arc::new(MemoryCounterStore::default())).unwrap();
    assert_eq!(e.check(&args("python", "1"), &LOCAL), Decision::Admit);
    assert!(
        e.admit(
            &any_call(),
            &Caller {
                grant: "local",
                session: "s"
            },
            0
        )
        .is_ok()
    );
}

#[test]
fn deny_rules_stop_calls_with_their_message() {
    let e = engine(
        "[[tools.execute_code.rules]]\nname = \"no-eval\"\nmessage = \"eval is not allowed\"\n\
         when = [{ arg = \"code\", op = \"contains\", value = \"eval(\" }]\n",
    );
    match e.check(&args("javascript", "eval('1')"), &LOCAL) {
        Decision::Deny(d) => {
            assert_eq!(d.status, Status::Denied);
            assert_eq!(d.decision.rule, "no-eval");
            assert_eq!(d.decision.reason, "eval is not allowed");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.check(&args("javascript", "1"), &LOCAL), Decision::Admit);
}

#[test]
fn actions_and_the_default() {
    let deny_all = engine("default = \"deny\"\n");
    assert!(
        matches!(deny_all.check(&args("python", "1"), &LOCAL), Decision::Deny(d) if d.decision.rule == "default")
    );
    let approve = engine("[tools.execute_code]\naction = \"require_approval\"\n");
    assert!(matches!(
        approve.check(&args("python", "1"), &LOCAL),
        Decision::NeedsApproval(_)
    ));
    let overridden = engine("default = \"deny\"\n[tools.execute_code]\naction = \"allow\"\n");
    assert_eq!(
        overridden.check(&args("python", "1"), &LOCAL),
        Decision::Admit
    );
}

#[test]
fn approval_rules_ask_but_deny_rules_win() {
    let e = engine(
        "[[tools.execute_code.rules]]\nname = \"long\"\nmessage = \"long code needs a look\"\n\
         effect = \"require_approval\"\nwhen = [{ arg = \"code_length\", op = \"gt\", value = 3 }]\n\
         [[tools.execute_code.rules]]\nname = \"no-py\"\nmessage = \"no python\"\n\
         when = [{ arg = \"language\", op = \"eq\", value = \"python\" }]\n",
    );
    assert!(
        matches!(e.check(&args("javascript", "12345"), &LOCAL), Decision::NeedsApproval(Question { rule, .. }) if rule == "long")
    );
    assert!(
        matches!(e.check(&args("python", "12345"), &LOCAL), Decision::Deny(d) if d.decision.rule == "no-py")
    );
}

#[test]
fn languages_can_be_narrowed() {
    let e = engine("[tools.execute_code]\nlanguages = [\"python\"]\n");
    assert!(
        matches!(e.check(&args("javascript", "1"), &LOCAL), Decision::Deny(d) if d.decision.reason.contains("allowed: python"))
    );
    use crate::contract::Language;
    assert_eq!(
        e.grant(LOCAL_GRANT).languages(&Language::ALL),
        vec![Language::Python]
    );
}

#[test]
fn rate_limits_deny_with_a_retry_hint_and_scopes_apart() {
    let e = engine(
        "[[tools.execute_code.limits]]\ncounter = \"calls\"\nwindow = \"minute\"\nmax = 2\nscope = \"grant\"\n",
    );
    let a = Caller {
        grant: "a",
        session: "1",
    };
    let b = Caller {
        grant: "b",
        session: "2",
    };
    assert!(e.admit(&any_call(), &a, 1_000).is_ok());
    assert!(e.admit(&any_call(), &a, 2_000).is_ok());
    let d = e.admit(&any_call(), &a, 3_000).unwrap_err();
    assert_eq!(d.status, Status::RateLimited);
    assert_eq!(d.decision.rule, "rate_limit.calls");
    assert_eq!(d.decision.retry_after_ms, Some(57_000));
    assert!(e.admit(&any_call(), &b, 3_000).is_ok());
}

#[test]
fn a_counter_named_twice_counts_once_against_the_smaller_max() {
    let e = engine(
        "[[tools.execute_code.limits]]\ncounter = \"c\"\nwindow = \"hour\"\nmax = 3\nscope = \"global\"\n\
         [[all_tools.limits]]\ncounter = \"c\"\nwindow = \"hour\"\nmax = 2\nscope = \"global\"\n",
    );
    let caller = Caller {
        grant: "g",
        session: "s",
    };
    assert!(e.admit(&any_call(), &caller, 0).is_ok());
    assert!(e.admit(&any_call(), &caller, 1).is_ok());
    assert!(
        e.admit(&any_call(), &caller, 2).is_err(),
        "max 2, counted once per call"
    );
}

#[test]
fn a_matching_deny_rule_is_named_even_for_a_disallowed_language() {
    let e = engine(
        "[tools.execute_code]\nlanguages = [\"python\"]\n[[tools.execute_code.rules]]\nname = \"no-eval\"\n\
         message = \"m\"\nwhen = [{ arg = \"code\", op = \"contains\", value = \"eval\" }]\n",
    );
    assert!(
        matches!(e.check(&args("javascript", "eval(1)"), &LOCAL), Decision::Deny(d) if d.decision.rule == "no-eval")
    );
    assert!(
        matches!(e.check(&args("javascript", "1"), &LOCAL), Decision::Deny(d) if d.decision.rule.ends_with("languages"))
    );
}

#[test]
fn semantic_errors_name_the_line_and_column_of_what_is_wrong() {
    let cases = [
        (
            "version = 1\n\n[tools.execute_code]\nlanguages = [\"javascript\", \"cobol\"]\n",
            "line 4, column 28: [tools.execute_code] languages: unknown language \"cobol\"",
        ),
        (
            "[limits]\nfuel = 0\n",
            "line 2, column 1: limits.fuel must be greater than 0",
        ),
        (
            "[[all_tools.limits]]\ncounter = \"x\"\nwindow = \"day\"\nmax = 0\nscope = \"global\"\nincrement_from = \"amount\"\n",
            "line 6, column 1: [all_tools] limits: increment_from must start with \"args.\"",
        ),
        (
            "[tools.shell]\nlanguages = [\"python\"]\n",
            "line 2, column 1: [tools.shell] languages: only `execute_code` takes a language",
        ),
        (
            "[[tools.execute_code.rules]]\nname = \"ok\"\nmessage = \"m\"\nwhen = [{ arg = \"code\", op = \"contains\", value = \"x\" }]\n\n\
             [[tools.execute_code.rules]]\nname = \"r\"\nmessage = \"m\"\nwhen = [{ arg = \"code\", op = \"regex\", value = \"(\" }]\n",
            "line 6, column 1: [tools.execute_code] rule `r`, `when` condition 1: invalid regex",
        ),
        (
            "[grants.ci]\ntoken_env = \"CI_TOKEN\"\ncredentials = [\"github\"]\n",
            "line 3, column 16: [grants.ci] credentials: no credential named \"github\"",
        ),
        (
            "[grants.ci]\ntoken_env = \"CI_TOKEN\"\nlimits = { fuel = 0 }\n",
            "line 3, column 12: [grants.ci] limits.fuel must be greater than 0",
        ),
        (
            "[credentials.gh]\nenv = \"GH\"\nhosts = [\"https://a.example\"]\n\
             inject = { header = \"Host\", value = \"{secret}\" }\n",
            "line 4, column 1: [credentials.gh] inject: the host controls the Host header",
        ),
    ];
    for (doc, expected) in cases {
        let e = Policy::parse(doc, "p.toml").unwrap_err().to_string();
        assert!(e.contains(expected), "{doc:?}:\n{e}\nexpected: {expected}");
    }
}

#[test]
fn bad_documents_are_explained() {
    let cases = [
        (
            "[tools.shell]\nlanguages = [\"python\"]\n",
            "only `execute_code` takes a language",
        ),
        (
            "[tools.execute_code]\nlanguages = [\"cobol\"]\n",
            "unknown language \"cobol\"",
        ),
        ("[tools.execute_code]\naction = \"maybe\"\n", "line 2"),
        (
            "[[all_tools.limits]]\ncounter = \"x\"\nwindow = \"week\"\nmax = 1\nscope = \"global\"\n",
            "week",
        ),
        ("hide = [\" \"]\n", "hide[0]: entry must not be empty"),
        (
            "[[tools.execute_code.rules]]\nname = \"r\"\nmessage = \"m\"\nwhen = [{ arg = \"code\", op = \"regex\", value = \"(\" }]\n",
            "invalid regex",
        ),
        ("[audit]\nfail_open = true\n", "unknown field `fail_open`"),
        (
            "[[tools.execute_code.rules]]\nname = \"r\"\nmessage = \"m\"\nwhen = [{ arg = \"input.x\", op = \"eq\", value = nan }]\n",
            "nan and inf are not allowed",
        ),
    ];
    for (doc, needle) in cases {
        let e = Policy::parse(doc, "p.toml").unwrap_err().to_string();
        assert!(e.contains(needle), "{doc:?}: {e}");
        assert!(e.contains("p.toml"), "{e}");
    }
}

#[test]
fn the_normalized_policy_parses_back_to_itself() {
    for text in [
        DEFAULT_POLICY,
        include_str!("../../policies/locked-down.toml"),
        include_str!("../../policies/rest-apis.toml"),
    ] {
        let p = Policy::parse(text, "p").unwrap();
        let normalized = p.to_normalized_toml().unwrap();
        assert_eq!(
            Policy::parse(&normalized, "normalized").unwrap(),
            p,
            "{normalized}"
        );
    }
}

#[test]
fn explain_traces_every_step() {
    let e = engine(
        "[[tools.execute_code.rules]]\nname = \"no-eval\"\nmessage = \"m\"\n\
         when = [{ arg = \"code\", op = \"contains\", value = \"eval\" }]\n\
         [[tools.execute_code.limits]]\ncounter = \"c\"\nwindow = \"minute\"\nmax = 5\nscope = \"grant\"\n",
    );
    let caller = Caller {
        grant: "ci",
        session: "s",
    };
    let trace = e.explain(&args("javascript", "1"), &caller).join("\n");
    assert!(trace.contains("rule `no-eval` passes"), "{trace}");
    assert!(trace.contains("counter `c/grant/ci` allows 5"), "{trace}");
    assert!(
        trace.ends_with("decision: allow (if the counters have room)"),
        "{trace}"
    );
    let trace = e
        .explain(&args("javascript", "eval(1)"), &caller)
        .join("\n");
    assert!(
        trace.contains("rule `no-eval` applies")
            && trace.ends_with("decision: deny (nothing is counted)"),
        "{trace}"
    );
}

#[test]
fn policylayer_json_is_translated() {
    let p = Policy::from_policylayer(
        r#"{"version": "1", "default": "allow",
            "tools": {"execute_code": {"limits": [{"counter": "runs", "window": "minute", "max": 10, "scope": "session"}]}},
            "all_tools": {"limits": [{"counter": "all", "window": "day", "max": 1000, "scope": "global"}]}}"#,
        "pl.json",
    )
    .unwrap();
    let limits = &p.tools[TOOL_NAME].limits;
    assert_eq!(
        limits[0],
        LimitSpec::new("runs", Window::Minute, 10, Scope::Session)
    );
    assert_eq!(p.all_tools.limits[0].window, Window::Day);
    assert_eq!(p.default, Action::Allow);
    assert_eq!(p.limits, Limits::default());
    let shipped =
        Policy::from_policylayer(include_str!("../../policies/policylayer.json"), "shipped")
            .unwrap();
    assert!(!shipped.tools[TOOL_NAME].limits.is_empty());
}

#[test]
fn untranslatable_policylayer_constructs_are_errors() {
    let cases = [
        (
            r#"{"version": 2, "default": "allow"}"#,
            "line 1, column 13: version: only \"1\" is recognised",
        ),
        (r#"{"version": "1"}"#, "default is required"),
        (
            r#"{"default": "allow", "rules": []}"#,
            "`rules`: not a PolicyLayer field",
        ),
        (
            "{\"default\": \"allow\",\n \"tools\": {\"execute_code\": {\"conditions\": {}}}}",
            "line 2, column 43: tools.execute_code.conditions: not a PolicyLayer field",
        ),
        (
            r#"{"default": "allow", "tools": {"x": {"rules": []}}}"#,
            "Intercept's YAML form",
        ),
        (
            r#"{"default": "allow", "all_tools": {"limits": [{"counter": "x", "window": "fortnight", "max": 1, "scope": "global"}]}}"#,
            "all_tools.limits[0]: `window` must be",
        ),
        (
            r#"{"default": "allow", "tools": {"t": {"deny_if": [{"conditions": [{"path": "amount", "op": "gt", "value": 1}]}]}}}"#,
            "path must start with \"args.\" or \"state.\", got \"amount\"",
        ),
        (
            r#"{"default": "allow", "tools": {"t": {"require": [{"conditions": [{"path": "args.n", "op": "in", "value": 1}]}]}}}"#,
            "operator \"in\" requires a list value",
        ),
        (
            r#"{"default": "allow", "tools": {"t": {"require": [{"conditions": []}]}}}"#,
            "a requirement needs at least one condition",
        ),
        (r#"{"default": "maybe"}"#, "default: expected"),
        ("[1, 2]", "JSON object"),
        ("{\n  \"version\": }", "line 2"),
    ];
    for (doc, needle) in cases {
        let e = Policy::from_policylayer(doc, "pl.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle) && e.contains("pl.json"), "{doc}: {e}");
    }
}

#[test]
fn shipped_example_policies_are_valid() {
    for (name, text) in [
        (
            "locked-down.toml",
            include_str!("../../policies/locked-down.toml"),
        ),
        (
            "rest-apis.toml",
            include_str!("../../policies/rest-apis.toml"),
        ),
    ] {
        Policy::parse(text, name).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let e = Policy::load(Path::new("/nonexistent/warden.toml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/warden.toml"));
}
