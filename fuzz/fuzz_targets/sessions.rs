//! Code sessions and the workspace through the whole call pipeline: a sequence of calls by two
//! grants that open, continue, reset and close sessions, pass files, switch language, trap,
//! and use ids that are forged, mangled, another grant's or already closed.
//!
//! Asserts:
//! - nothing panics, and every call ends in a well-formed result;
//! - an id the caller does not own (forged, mangled, another grant's, closed) is always the
//!   one "no such session" answer, and never runs code;
//! - a session's result names that session, and a call's number in it grows by one;
//! - a grant never holds more sessions than `max_per_grant`, the server never more than
//!   `max_sessions`;
//! - state carries over exactly while the interpreter lives: a value set in a session is
//!   there in its next call unless the call between reset it or trapped (which says so);
//! - after every call, a fresh call without a session works.

#![no_main]

mod common;

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden::contract::{ExecutionResult, Language, Status};
use warden::policy::{Caller, Policy};
use warden::service::Service;

const POLICY: &str = r#"
[limits]
default_timeout_ms = 500
max_timeout_ms = 1000
fuel = 400000000
memory_bytes = 134217728
max_concurrent_runs = 1

[workspace]
max_bytes = 20000
max_files = 8
max_file_bytes = 10000
max_input_bytes = 20000

[sessions]
max_sessions = 3
max_per_grant = 2
"#;

const GRANTS: [&str; 2] = ["alice", "mallory"];

struct Target {
    rt: tokio::runtime::Runtime,
    service: Service,
}

static TARGET: LazyLock<Target> = LazyLock::new(|| {
    let (service, _policy): (Service, Policy) = common::service(POLICY);
    Target {
        rt: common::runtime(),
        service,
    }
});

#[derive(Arbitrary, Debug)]
enum Which {
    New,
    /// One of the sessions opened so far (by anyone), by its index.
    Known(u8),
    /// A known id, changed: a character flipped, cut, or extended.
    Mangled(u8, u8),
    Forged(String),
}

#[derive(Arbitrary, Debug)]
enum Cell {
    /// Sets the session's value to n.
    Set(u8),
    /// Reads it back.
    Get,
    /// Writes a file.
    Write(u8, u16),
    Spin,
    Exit,
}

#[derive(Arbitrary, Debug)]
struct Call {
    grant: bool,
    python: bool,
    which: Which,
    cell: Cell,
    action: u8,
    with_file: Option<(u8, u16)>,
}

fn code(python: bool, cell: &Cell) -> String {
    match (python, cell) {
        (false, Cell::Set(n)) => format!("globalThis.v = {n}; {n}"),
        (false, Cell::Get) => "typeof v === 'undefined' ? null : v".into(),
        (false, Cell::Write(name, len)) => {
            format!(
                "fs.writeFileSync('f{}', 'x'.repeat({})); 1",
                name % 10,
                len % 12000
            )
        }
        (false, Cell::Spin) => "for (;;) {}".into(),
        (false, Cell::Exit) => "throw new Error('x')".into(),
        (true, Cell::Set(n)) => format!("v = {n}\nv"),
        (true, Cell::Get) => "globals().get('v')".into(),
        (true, Cell::Write(name, len)) => {
            format!("open('f{}', 'w').write('x' * {})", name % 10, len % 12000)
        }
        (true, Cell::Spin) => "while True: pass".into(),
        (true, Cell::Exit) => "import os\nos._exit(2)".into(),
    }
}

fn is_no_such_session(r: &ExecutionResult) -> bool {
    r.status == Status::InvalidArguments
        && r.error
            .as_ref()
            .is_some_and(|e| e.message.starts_with("no such session"))
}

/// What the target believes about one session.
struct Known {
    id: String,
    owner: &'static str,
    python: bool,
    open: bool,
    calls: u64,
    /// The value set and not lost since, if any.
    value: Option<u8>,
}

fuzz_target!(
    // Start-up (compiling the guests into a cold cache) is not a run: it must not count
    // against libFuzzer's per-input timeout.
    init: {
        LazyLock::force(&TARGET);
    },
    |calls: Vec<Call>| {
    let t = &*TARGET;
    let mut known: Vec<Known> = Vec::new();
    for call in calls.iter().take(12) {
        let grant = GRANTS[usize::from(call.grant)];
        let (session, target): (String, Option<usize>) = match &call.which {
            Which::New => ("new".into(), None),
            Which::Known(i) if !known.is_empty() => {
                let i = usize::from(*i) % known.len();
                (known[i].id.clone(), Some(i))
            }
            Which::Mangled(i, how) if !known.is_empty() => {
                let mut id = known[usize::from(*i) % known.len()].id.clone();
                match how % 3 {
                    0 => id.push('0'),
                    1 => {
                        id.pop();
                    }
                    _ => id = id.replacen('s', "S", 1),
                }
                (id, None)
            }
            Which::Forged(text) if !text.is_empty() => (text.chars().take(64).collect(), None),
            _ => ("new".into(), None),
        };
        let mut args = json!({
            "language": if call.python { "python" } else { "javascript" },
            "code": code(call.python, &call.cell),
            "session": session,
            "timeout_ms": 300,
        });
        match call.action % 4 {
            1 => args["session_action"] = json!("reset"),
            2 => args["session_action"] = json!("close"),
            _ => {}
        }
        if let Some((name, len)) = call.with_file {
            args["files"] =
                json!({format!("in{}", name % 10): "y".repeat(usize::from(len) % 12000)});
        }
        let result = run(t, grant, &args);
        let owned = target.filter(|i| known[*i].open && known[*i].owner == grant);
        if session != "new" && owned.is_none() {
            assert!(
                is_no_such_session(&result),
                "{session:?} is not {grant}'s open session, yet: {result:#?}"
            );
            continue;
        }
        // Invalid arguments (a file over the quota) or a language switch end before the run.
        if result.status == Status::InvalidArguments {
            continue;
        }
        let Some(info) = result.session.clone() else {
            assert!(
                result.status == Status::RateLimited,
                "a session call without its session part: {result:#?}"
            );
            let mine = known.iter().filter(|k| k.open && k.owner == grant).count();
            let all = known.iter().filter(|k| k.open).count();
            assert!(
                mine >= 2 || all >= 3,
                "refused below the limits: {result:#?}"
            );
            continue;
        };
        let index = match owned {
            Some(i) => {
                assert_eq!(info.id, known[i].id);
                i
            }
            None => {
                known.push(Known {
                    id: info.id.clone(),
                    owner: grant,
                    python: call.python,
                    open: true,
                    calls: 0,
                    value: None,
                });
                known.len() - 1
            }
        };
        let k = &mut known[index];
        k.calls += 1;
        assert_eq!(info.call, k.calls, "{result:#?}");
        assert_eq!(
            k.python, call.python,
            "a session ran another language: {result:#?}"
        );
        if call.action % 4 == 1 {
            assert!(info.fresh, "a reset session starts fresh: {result:#?}");
            k.value = None;
        }
        match call.cell {
            Cell::Get if result.status == Status::Ok => {
                let want = k.value.map_or(Value::Null, |v| json!(v));
                assert_eq!(
                    result.result, want,
                    "state carried over wrongly: {result:#?}"
                );
            }
            Cell::Set(n) if result.status == Status::Ok => k.value = Some(n),
            _ => {}
        }
        if info.restarted {
            k.value = None;
        }
        if call.action % 4 == 2 || info.expires_in_s == 0 {
            k.open = false;
        }
    }
    for k in known.iter().filter(|k| k.open) {
        let args = json!({"language": if k.python { "python" } else { "javascript" },
            "code": "0", "session": k.id, "session_action": "close"});
        let closed = run(t, k.owner, &args);
        assert_eq!(closed.status, Status::Ok, "{closed:#?}");
    }
    common::check_next_run_works(
        &t.rt,
        &t.service,
        Language::Javascript,
        "a session sequence",
    );
});

fn run(t: &Target, grant: &str, args: &Value) -> ExecutionResult {
    let parsed = t.service.parse_args(grant, args.as_object());
    let caller = Caller {
        grant,
        session: common::SESSION,
    };
    t.rt.block_on(t.service.call(
        parsed,
        &caller,
        common::NO_APPROVER,
        &CancellationToken::new(),
    ))
}
