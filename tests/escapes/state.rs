//! The counter store (issue 17): rate-limit counts now live in a database on the host (SQLite
//! by default, Redis for replicas), which code would love to reset. Every attempt to reach it
//! from a run (its file by its real path and by guessed ones, SQLite from Python, the Redis
//! port, the variables that name it) fails as any file or socket does, and a run cannot give
//! its count back: calls that trap count like calls that succeed.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden::contract::{ErrorInfo, ExecutionResult, Status};
use warden::counters::SqliteCounterStore;
use warden::policy::{CounterStore, FailMode};

use crate::harness::*;

const WINDOW_MS: u64 = 3_600_000;
const KEY: &str = "calls/global";

fn state_dir() -> PathBuf {
    std::env::temp_dir().join(format!("warden-escapes-state-{}", std::process::id()))
}

fn database() -> String {
    state_dir().join("counters.sqlite").display().to_string()
}

static STORE: OnceLock<Arc<SqliteCounterStore>> = OnceLock::new();

fn store() -> Arc<SqliteCounterStore> {
    STORE
        .get_or_init(|| {
            let _ = std::fs::remove_dir_all(state_dir());
            Arc::new(
                SqliteCounterStore::open(&state_dir().join("counters.sqlite"), FailMode::Closed)
                    .expect("the counter store opens"),
            )
        })
        .clone()
}

/// Every call counts in one global hourly counter that never fills.
fn counted(_: Ports) -> String {
    format!(
        "[[tools.execute_code.limits]]\ncounter = \"calls\"\nwindow = \"hour\"\nmax = {}\nscope = \"global\"\n",
        1u64 << 40
    )
}

fn env() -> Env {
    Env::with_counters(
        EnvSpec {
            limits: &[],
            api: false,
            sink: false,
            network: counted,
        },
        Some(store() as Arc<dyn CounterStore>),
    )
}

fn count() -> u64 {
    store()
        .current(KEY, WINDOW_MS, warden::policy::now_ms())
        .expect("the store answers")
}

/// Three calls that trap (exit, timeout, out of memory) and two that succeed: the count grows
/// by five, whatever the guests did.
fn traps_count(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let before = count();
        let mut statuses = Vec::new();
        for (language, code, timeout) in [
            (PY, "import os\nos._exit(3)", 3000),
            (JS, "while (true) {}", 200),
            (
                JS,
                "let a = []; while (true) a.push(new Array(1e6).fill(1))",
                3000,
            ),
            (PY, "1", 3000),
            (JS, "1", 3000),
        ] {
            let r = crate::common::call_as(
                &env.executor,
                "local",
                "escapes",
                json!({"language": language, "code": code, "timeout_ms": timeout}),
                &CancellationToken::new(),
            )
            .await;
            statuses.push(r.status.as_str());
        }
        findings(json!({"statuses": statuses, "counted": count() - before}))
    })
}

fn findings(value: Value) -> ExecutionResult {
    let mut result = ExecutionResult::without_run(Status::Ok, ErrorInfo::raised("", ""));
    result.error = None;
    result.result = value;
    result
}

pub fn cases(_: &Ports) -> Vec<Case> {
    let db = database();
    let guesses = [
        db.clone(),
        "/root/.local/state/warden/counters.sqlite".to_string(),
        "~/.local/state/warden/counters.sqlite".to_string(),
        "../../counters.sqlite".to_string(),
        "/proc/self/cwd/counters.sqlite".to_string(),
    ];
    let py_list = serde_json::to_string(&guesses).unwrap_or_default();
    vec![
        Case::py(
            "Python opens the counter database by its real path and by guessed ones, to write it",
            format!(
                "out = []\nfor p in {py_list}:\n    try:\n        open(p, 'r+b').write(b'\\0' * 100)\n        out.append('written')\n    except OSError as e:\n        out.append(type(e).__name__)\nout"
            ),
        )
        .must("no path reaches it: each open fails as for any file outside the workspace")
        .check(|o| match o.result.result.as_array() {
            Some(all) if all.len() == 5 && all.iter().all(|s| s != "written") => Ok(()),
            _ => Err(format!("got {}", o.result.result)),
        }),
        Case::js(
            "JavaScript reads the counter database through fs by its real path",
            format!(
                "try {{ require('fs').readFileSync({}); 'read' }} catch (e) {{ e.code }}",
                serde_json::to_string(&db).unwrap_or_default()
            ),
        )
        .must("fs refuses the path (it is not in the workspace)")
        .status(&["ok"])
        .check(|o| match o.result.result.as_str() {
            Some("read") | None => Err(format!("got {}", o.result.result)),
            Some(_) => Ok(()),
        }),
        Case::py(
            "Python imports sqlite3 and _sqlite3 to open the database itself",
            "out = []\nfor m in ('sqlite3', '_sqlite3'):\n    try:\n        __import__(m)\n        out.append('imported')\n    except ImportError:\n        out.append('refused')\nout",
        )
        .must("both are refused")
        .ok_with(json!(["refused", "refused"])),
        Case::py(
            "Python looks for the store's address and keys in the environment",
            "import os\n[k for k in os.environ if 'STATE' in k or 'REDIS' in k or 'WARDEN' in k]",
        )
        .must("nothing of the host's environment is there")
        .ok_with(json!([])),
        Case::js(
            "JavaScript sends Redis commands to the usual Redis port through fetch",
            js_fetch(
                "http://127.0.0.1:6379/",
                "{method: 'POST', body: 'FLUSHALL\\r\\n'}",
            ),
        )
        .must("the request is refused before any connection (no [network] rule allows it)")
        .result_starts("refused: "),
        Case::custom(
            "calls that exit, time out or run out of memory, to avoid being counted",
            traps_count,
        )
        .must("every call that ran is counted: five calls, five counts (only a call that never started is given back)")
        .check(|o| {
            let counted = &o.result.result["counted"];
            if counted == &json!(5) {
                Ok(())
            } else {
                Err(format!("counted {counted}: {}", o.result.result))
            }
        }),
    ]
}

#[tokio::test]
async fn counter_store() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("counter store", &env, cases, Mode::Regular).await;
    // The store is intact after all of it: it still counts.
    let before = count();
    assert!(
        store()
            .try_admit(
                &[warden::policy::CounterKey {
                    key: KEY.to_string(),
                    window_ms: WINDOW_MS,
                    max: 1 << 40,
                    amount: 1
                }],
                warden::policy::now_ms()
            )
            .is_ok()
    );
    assert_eq!(count(), before + 1);
}
