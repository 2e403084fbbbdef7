//! Policy documents in every dialect: TOML (`Policy::parse`), PolicyLayer JSON
//! (`Policy::from_policylayer`) and Intercept YAML (`Policy::from_intercept`).
//!
//! Input: one selector byte (modulo 3: TOML, PolicyLayer JSON, Intercept YAML), then the
//! document.
//!
//! Asserts: parsing never panics, whatever the text; an accepted document renders to its
//! normalized TOML, which parses back to the very same policy and renders to the very same
//! text (normalization is idempotent); the redacted rendering works too; an accepted policy
//! builds a `PolicyEngine` (its rules compile) and explains a call without panicking.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use warden::contract::{ExecuteArgs, Language};
use warden::policy::{Caller, Decision, LOCAL_GRANT, MemoryCounterStore, Policy, PolicyEngine};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let parsed = match selector % 3 {
        0 => Policy::parse(text, "fuzz.toml"),
        1 => Policy::from_policylayer(text, "fuzz.json"),
        _ => Policy::from_intercept(text, "fuzz.yaml").map(|(policy, _notes)| policy),
    };
    let Ok(policy) = parsed else {
        return;
    };

    let normalized = policy
        .to_normalized_toml()
        .unwrap_or_else(|e| panic!("an accepted policy does not render: {e}\n{policy:#?}"));
    let again = Policy::parse(&normalized, "normalized.toml").unwrap_or_else(|e| {
        panic!("the normalized policy does not parse back: {e}\n--- normalized:\n{normalized}")
    });
    assert_eq!(
        again, policy,
        "the normalized policy parses back to another policy\n--- normalized:\n{normalized}"
    );
    let twice = again
        .to_normalized_toml()
        .expect("the re-parsed policy renders");
    assert_eq!(twice, normalized, "normalization is not idempotent");
    policy
        .to_redacted_toml()
        .expect("an accepted policy renders redacted");

    // Notes read every part of an accepted policy; they must never panic.
    let _notes = policy.notes();
    let engine = PolicyEngine::new(policy, Arc::new(MemoryCounterStore::default()))
        .expect("an accepted policy builds an engine");
    let _ = engine.grant(LOCAL_GRANT).languages(&Language::ALL);
    let input = serde_json::json!({"n": 1, "s": "x"});
    for language in Language::ALL {
        let args = ExecuteArgs {
            language,
            code: text.get(..64).unwrap_or(text).to_string(),
            timeout_ms: Some(1000),
            input: Some(input.clone()),
            files: None,
            session: None,
            session_action: None,
        };
        let caller = Caller {
            grant: LOCAL_GRANT,
            session: "fuzz",
        };
        let verdict = engine.decide(&args, &caller);
        let trace = engine.explain(&args, &caller);
        let last = trace.last().expect("explain says something");
        assert_eq!(
            last.starts_with("decision: deny"),
            matches!(verdict, Decision::Deny(_)),
            "explain and check disagree: {verdict:?} vs {trace:#?}"
        );
    }
});
