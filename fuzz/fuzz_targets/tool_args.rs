//! Arbitrary JSON as `execute_code` arguments, through argument validation
//! (`Service::parse_args`) and the whole call pipeline (`Service::decide`, then
//! `PendingApproval::answer` and `AdmittedCall::run`: argument rules, the tool's action with
//! approval, rate limits, then the run), under a policy with rules of every operator.
//!
//! Input: a JSON document (an object is the arguments; anything else is "no arguments").
//!
//! Asserts:
//! - nothing panics;
//! - accepted arguments keep the contract: only the four argument names, a language this
//!   server offers, code within `max_code_bytes`, a positive whole `timeout_ms`, `input`
//!   within `max_input_bytes`; and they parse back to themselves;
//! - refused arguments end `invalid_arguments`;
//! - the call ends as the policy says: a denying rule or action gives `denied` naming the
//!   rule; approval is asked exactly when the policy wants it, and a declined or unavailable
//!   approval ends `approval_declined` / `denied`; an allowed call runs (or is rate limited);
//! - every result keeps the run invariants (deadline + slack, memory, fuel, output caps,
//!   status and error agree), and `isError` is set exactly when the status is not `ok`.

#![no_main]

mod common;

use std::sync::LazyLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use warden::contract::{ExecuteArgs, ExecutionResult, Status};
use warden::policy::{
    Caller, Decision, LOCAL_GRANT, MemoryCounterStore, Policy, PolicyEngine, Question,
};
use warden::service::{Approval, Service, Step};

const POLICY: &str = r#"
[limits]
default_timeout_ms = 500
max_timeout_ms = 1000
fuel = 1000000000
memory_bytes = 134217728
stdout_bytes = 4096
stderr_bytes = 4096
max_code_bytes = 2048
max_input_bytes = 2048
max_result_bytes = 4096
max_concurrent_runs = 1

[tools.execute_code]
action = "allow"

[[tools.execute_code.rules]]
name = "no-eval"
message = "eval is not allowed"
when = [{ arg = "code", op = "contains", value = "eval(" }]

[[tools.execute_code.rules]]
name = "no-os"
message = "no os module"
when = [{ arg = "language", op = "eq", value = "python" }, { arg = "code", op = "regex", value = "import\\s+os" }]

[[tools.execute_code.rules]]
name = "long-typescript"
message = "long TypeScript needs a look"
effect = "require_approval"
when = [{ arg = "language", op = "in", value = ["typescript"] }, { arg = "code_length", op = "gte", value = 64 }]

[[tools.execute_code.rules]]
name = "short-timeout"
message = "too short"
when = [{ arg = "timeout_ms", op = "lt", value = 3 }]

[[tools.execute_code.rules]]
name = "long-timeout"
message = "long runs need a look"
effect = "require_approval"
when = [{ arg = "timeout_ms", op = "gte", value = 900 }]

[[tools.execute_code.rules]]
name = "flagged"
message = "flagged input"
when = [{ arg = "input.deny", op = "exists" }]

[[tools.execute_code.rules]]
name = "role"
message = "role not allowed"
when = [{ arg = "input.user", op = "exists" }, { arg = "input.user.role", op = "not_in", value = ["admin", "dev", 1] }]

[[tools.execute_code.rules]]
name = "big-number"
message = "number too big"
effect = "require_approval"
when = [{ arg = "input.n", op = "gt", value = 1000 }, { arg = "input.n", op = "lte", value = 1e9 }, { arg = "input.n", op = "neq", value = 5000 }]

[[tools.execute_code.rules]]
name = "tags"
message = "secret tag"
when = [{ arg = "input.tags", op = "contains", value = "secret" }, { arg = "input", op = "exists", value = true }]

[[tools.execute_code.rules]]
name = "no-input-no-while"
message = "no while without input"
when = [{ arg = "input", op = "exists", value = false }, { arg = "code", op = "regex", value = "while\\s*\\(\\s*true" }]

[[tools.execute_code.limits]]
counter = "calls"
window = "second"
max = 200
scope = "session"

[[all_tools.limits]]
counter = "all"
window = "minute"
max = 100000
scope = "global"
"#;

/// The person asked for approval: approves, declines or cannot be asked, depending on the code
/// (so a case replays the same way).
fn approval_for(code: &str) -> Approval {
    match code.len() % 3 {
        0 => Approval::Approved,
        1 => Approval::Declined,
        _ => Approval::Unavailable("nobody is there (fuzz)".into()),
    }
}

/// Drives a call through the pipeline as the MCP server does, answering an approval question
/// with [`approval_for`] (never deferring it). Returns the result and whether approval was
/// asked.
async fn call(
    service: &Service,
    parsed: Result<ExecuteArgs, String>,
    caller: &Caller<'_>,
    cancel: &CancellationToken,
) -> (ExecutionResult, bool) {
    let mut asked = false;
    let step = match service.decide(parsed, caller, cancel) {
        Step::Approve(pending) => {
            asked = true;
            let approval = approval_for(pending.request().code);
            pending.answer(approval)
        }
        step => step,
    };
    let result = match step {
        Step::Done(result) => result,
        Step::Run(admitted) => admitted.run(cancel).await,
        Step::Approve(_) => panic!("approval was asked twice"),
    };
    (result, asked)
}

struct State {
    rt: tokio::runtime::Runtime,
    service: Service,
    policy: Policy,
    /// The same policy, to predict the decision (decisions count nothing).
    engine: PolicyEngine,
}

static STATE: LazyLock<State> = LazyLock::new(|| {
    let (service, policy) = common::service(POLICY);
    let engine = PolicyEngine::new(
        policy.clone(),
        std::sync::Arc::new(MemoryCounterStore::default()),
    )
    .expect("engine");
    State {
        rt: common::runtime(),
        service,
        policy,
        engine,
    }
});

fn to_map(args: &ExecuteArgs) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("language".into(), Value::from(args.language.as_str()));
    map.insert("code".into(), Value::from(args.code.clone()));
    if let Some(t) = args.timeout_ms {
        map.insert("timeout_ms".into(), Value::from(t));
    }
    if let Some(input) = &args.input {
        map.insert("input".into(), input.clone());
    }
    map
}

fuzz_target!(
    // Start-up (compiling the guests into a cold cache) is not a run: it must not count
    // against libFuzzer's per-input timeout.
    init: {
        LazyLock::force(&STATE);
    },
    |data: &[u8]| {
    let Ok(document) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let state = &*STATE;
    let limits = &state.policy.limits;
    let raw = document.as_object();
    let parsed = state.service.parse_args(LOCAL_GRANT, raw);

    match &parsed {
        Ok(args) => {
            let raw = raw.expect("arguments were accepted without an object");
            assert!(
                raw.keys()
                    .all(|k| ["language", "code", "timeout_ms", "input"].contains(&k.as_str())),
                "unknown argument accepted: {raw:?}"
            );
            assert_eq!(
                raw.get("language"),
                Some(&Value::from(args.language.as_str()))
            );
            assert!(state.service.languages().contains(&args.language));
            assert_eq!(raw.get("code"), Some(&Value::from(args.code.clone())));
            assert!(args.code.len() as u64 <= limits.max_code_bytes);
            if let Some(t) = args.timeout_ms {
                assert!(t > 0);
                assert_eq!(raw.get("timeout_ms").and_then(Value::as_u64), Some(t));
            } else {
                assert!(raw.get("timeout_ms").is_none_or(Value::is_null));
            }
            if let Some(input) = &args.input {
                assert!(
                    serde_json::to_string(input).unwrap().len() as u64 <= limits.max_input_bytes
                );
            }
            let again = state.service.parse_args(LOCAL_GRANT, Some(&to_map(args)));
            assert_eq!(
                again.as_ref(),
                Ok(args),
                "accepted arguments do not parse back"
            );
        }
        Err(message) => assert!(!message.is_empty()),
    }

    let caller = Caller {
        grant: LOCAL_GRANT,
        session: "fuzz",
    };
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let (result, asked) = state.rt.block_on(call(
        &state.service,
        parsed.clone(),
        &caller,
        &cancel,
    ));
    let elapsed = started.elapsed();
    assert_eq!(result.is_error(), result.status != Status::Ok);

    let args = match parsed {
        Err(_) => {
            assert_eq!(result.status, Status::InvalidArguments, "{result:#?}");
            assert!(!asked);
            return;
        }
        Ok(args) => args,
    };
    let decision = state.engine.decide(&args, &caller);
    let expect_run = match decision {
        Decision::Deny(denial) => {
            assert_eq!(result.status, denial.status, "{result:#?}");
            assert_eq!(result.policy.as_ref(), Some(&denial.decision));
            assert!(!asked, "asked before a denial");
            false
        }
        Decision::NeedsApproval(Question { rule, .. }) => {
            assert!(asked, "approval was not asked");
            match approval_for(&args.code) {
                Approval::Approved => true,
                Approval::Declined => {
                    assert_eq!(result.status, Status::ApprovalDeclined, "{result:#?}");
                    assert_eq!(
                        result.policy.as_ref().map(|p| p.rule.as_str()),
                        Some(rule.as_str())
                    );
                    false
                }
                _ => {
                    assert_eq!(result.status, Status::Denied, "{result:#?}");
                    assert_eq!(
                        result.policy.as_ref().map(|p| p.rule.as_str()),
                        Some(rule.as_str())
                    );
                    false
                }
            }
        }
        Decision::Admit => {
            assert!(!asked, "asked for an allowed call");
            true
        }
    };
    if expect_run {
        if result.status == Status::RateLimited {
            let policy = result.policy.as_ref().expect("a rate limit names itself");
            assert!(policy.rule.starts_with("rate_limit."), "{policy:?}");
            assert!(policy.retry_after_ms.is_some());
        } else {
            assert!(result.policy.is_none(), "{result:#?}");
            common::check_run(&result, elapsed, limits, args.timeout_ms, &args.code);
        }
    } else {
        assert!(elapsed < common::SLACK, "a refusal took {elapsed:?}");
        assert_eq!(result.usage.fuel, 0, "a refused call ran");
    }
});
