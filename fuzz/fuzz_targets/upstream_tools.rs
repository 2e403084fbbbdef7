//! Tools from code, the parts a hostile upstream or hostile code controls: the declarations
//! made from an upstream's tool list (names, descriptions, schemas), and the policy's decision
//! on a call the code makes (any tool name, any arguments), in Warden's TOML and in an
//! upstream's own Intercept document.
//!
//! Input: a tool as `tools/list` describes it (JSON), then calls (a tool name, arguments).
//!
//! Asserts:
//! - a declaration never panics, and nothing a tool says can close its doc comment (TS) or
//!   its docstring (Python) early;
//! - deciding and counting never panic; a hidden tool is always denied by `hide`, a tool the
//!   document denies always by its action; no counter admits more than its max in one window.

#![no_main]

use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use warden::policy::{Caller, Decision, MemoryCounterStore, Policy, PolicyEngine, ToolCall};
use warden::upstream::declare_listed;

const WARDEN_POLICY: &str = r#"
hide = ["rec.secret"]

[tools."rec.delete"]
action = "deny"

[[tools."rec.create".limits]]
counter = "creates"
window = "hour"
max = 2
scope = "grant"
"#;

const OWN_POLICY: &str = r#"
version: "1"
default: allow
hide:
  - transfer
tools:
  create:
    rules:
      - name: "hourly"
        rate_limit: 3/hour
        on_deny: "three an hour"
      - name: "no secrets"
        conditions:
          - path: "args.title"
            op: "regex"
            value: "^secret"
        on_deny: "no secret titles"
  delete:
    rules:
      - name: "never"
        action: "deny"
        on_deny: "no"
  "*":
    rules:
      - name: "global"
        rate_limit: 5/minute
"#;

struct Engines {
    warden: PolicyEngine,
    own: PolicyEngine,
}

static ENGINES: LazyLock<Engines> = LazyLock::new(|| {
    let counters = Arc::new(MemoryCounterStore::default());
    let warden = Policy::parse(WARDEN_POLICY, "fuzz.toml").expect("the fuzz policy is valid");
    let (own, _) = Policy::from_intercept(OWN_POLICY, "own.yaml").expect("the own policy is valid");
    Engines {
        warden: PolicyEngine::new(warden, counters.clone()).expect("an engine"),
        own: PolicyEngine::for_upstream(own, counters, "rec").expect("an engine"),
    }
});

#[derive(Arbitrary, Debug)]
struct Input {
    listed: String,
    calls: Vec<(u8, String, String)>,
}

const NAMES: [&str; 6] = ["create", "delete", "secret", "transfer", "other", ""];

fuzz_target!(|input: Input| {
    if let Ok(listed) = serde_json::from_str::<Value>(&input.listed)
        && let Some(d) = declare_listed("rec", &listed)
    {
        let first_line = d.typescript.lines().next().unwrap_or("");
        assert_eq!(first_line.matches("*/").count(), 1, "{}", d.typescript);
        assert!(first_line.ends_with("*/"), "{}", d.typescript);
        let doc = d.python.lines().nth(1).unwrap_or("");
        assert_eq!(doc.matches("\"\"\"").count(), 2, "{}", d.python);
    }
    let engines = &*ENGINES;
    let caller = Caller {
        grant: "fuzz",
        session: "fuzz",
    };
    let now = 1_000_000;
    let mut admitted = [0u32; 2];
    for (which, name, arguments) in input.calls.iter().take(16) {
        let Ok(arguments) = serde_json::from_str::<Value>(arguments) else {
            continue;
        };
        let bare = match NAMES[usize::from(*which) % NAMES.len()] {
            "" => name.as_str(),
            known => known,
        };
        for (i, (engine, tool)) in [
            (&engines.warden, format!("rec.{bare}")),
            (&engines.own, bare.to_string()),
        ]
        .into_iter()
        .enumerate()
        {
            let call = ToolCall {
                tool: &tool,
                arguments: &arguments,
            };
            let decision = engine.check_tool(call, &caller);
            if engine.hides(&tool) {
                assert!(
                    matches!(&decision, Decision::Deny(d) if d.decision.rule == "hide"),
                    "{tool}: {decision:?}"
                );
            }
            if engine.denies_outright(&tool) {
                assert!(
                    matches!(decision, Decision::Deny(_)),
                    "{tool}: {decision:?}"
                );
            }
            if matches!(decision, Decision::Admit)
                && engine.admit_tool(call, &caller, now).is_ok()
                && bare == "create"
            {
                admitted[i] += 1;
            }
        }
    }
    // One input, one window: never more than the limits allow. (Counters persist across
    // inputs, so only a single input's count is bounded here.)
    assert!(admitted[0] <= 2 && admitted[1] <= 3, "{admitted:?}");
});
