//! Timing of cancellation. Runs here have a 20 s deadline and practically unlimited fuel, so
//! only the client's cancellation (the call's `CancellationToken`) can end them early. A
//! cancelled run ends promptly as `error` with type `Cancelled` — inside a tight loop, a
//! regular expression, a C-level computation, or a host `fetch` waiting on a slow server — and
//! the next run works. One sandbox only (`max_concurrent_runs = 1`): a run that kept going
//! after its cancellation would hold up every later case.

use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden::contract::{ErrorInfo, ExecutionResult, Status};

use crate::harness::*;

fn network(p: Ports) -> String {
    format!(
        "[network]\nallow = [\"http://127.0.0.1:{}\"]\nfetch_timeout_ms = 10000\n",
        p.api
    )
}

fn env() -> Env {
    Env::new(EnvSpec {
        limits: &[
            ("fuel", 1_000_000_000_000),
            ("default_timeout_ms", 20_000),
            ("max_timeout_ms", 30_000),
            ("max_concurrent_runs", 1),
        ],
        api: true,
        sink: false,
        network,
    })
}

/// A program cancelled `after_ms` after its call started: `Cancelled` within 3 s of the start.
fn cancelled(language: &str, name: &str, code: impl Into<String>, after_ms: u64) -> Case {
    Case::code(language, name, code)
        .cancel_after(after_ms)
        .must("ends as error/Cancelled within 3 s (not at its 20 s deadline)")
        .status(&["error"])
        .error_type(&["Cancelled"])
        .within_ms(3_000)
}

fn describe(r: &ExecutionResult) -> Value {
    json!({
        "status": r.status.as_str(),
        "type": r.error.as_ref().map(|e| e.kind.clone()),
        "message": r.error.as_ref().map(|e| e.message.clone()),
    })
}

/// A spinning call holds the only sandbox; a second call waits in the queue and is cancelled
/// there; then the spinning one is cancelled too.
fn queued(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let busy_token = CancellationToken::new();
        let queued_token = CancellationToken::new();
        let busy = env.call(
            json!({"language": "javascript", "code": "for (;;) {}"}),
            busy_token.clone(),
        );
        let waiting = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            env.call(
                json!({"language": "javascript", "code": "'ran'"}),
                queued_token.clone(),
            )
            .await
        };
        let canceller = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            queued_token.cancel();
            tokio::time::sleep(Duration::from_millis(200)).await;
            busy_token.cancel();
        };
        let (busy, waiting, ()) = tokio::join!(busy, waiting, canceller);
        let mut result = ExecutionResult::without_run(Status::Ok, ErrorInfo::raised("", ""));
        result.error = None;
        result.result = json!({"busy": describe(&busy), "queued": describe(&waiting)});
        result
    })
}

/// Twenty calls with an already-cancelled token, each printing and then fetching from the fake
/// API; the result lists their statuses (with what they printed, if anything).
fn precancelled(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let code = format!(
            "console.log('ran'); await fetch('http://127.0.0.1:{}/json'); for (;;) {{}}",
            env.ports.api
        );
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let token = CancellationToken::new();
            token.cancel();
            let r = env
                .call(json!({"language": "javascript", "code": code}), token)
                .await;
            statuses.push(json!(format!(
                "{}{}",
                r.status.as_str(),
                if r.stdout.is_empty() {
                    ""
                } else {
                    " (printed)"
                }
            )));
        }
        let mut result = ExecutionResult::without_run(Status::Ok, ErrorInfo::raised("", ""));
        result.error = None;
        result.result = Value::Array(statuses);
        result
    })
}

pub fn cases(p: &Ports) -> Vec<Case> {
    let slow = format!("http://127.0.0.1:{}/slow?ms=5000", p.api);
    vec![
        cancelled(JS, "JavaScript tight loop", "for (;;) {}", 200),
        cancelled(TS, "TypeScript tight loop", "let i: number = 0;\nfor (;;) { i++ }", 200),
        cancelled(PY, "Python tight loop", "while True:\n    pass", 200),
        cancelled(
            JS,
            "JavaScript waiting in a host fetch on a server that answers after 5 s, then looping",
            format!("try {{ await fetch({}) }} catch (e) {{ }}\nfor (;;) {{}}", lit(&slow)),
            300,
        ),
        Case::js("JavaScript waiting in a host fetch on a server that answers after 5 s", format!("await fetch({}); 'late'", lit(&slow)))
            .cancel_after(300)
            .must("the fetch is abandoned at once: the run ends as an error about the cancellation within 3 s")
            .status(&["error"])
            .check(|o| match &o.result.error {
                Some(e) if e.kind == "Cancelled" || e.message.contains("cancelled") => Ok(()),
                _ => Err("the error does not say the run was cancelled".into()),
            })
            .within_ms(3_000),
        Case::py("Python requests.get waiting on a server that answers after 5 s", format!("import requests\nrequests.get({}).status_code", lit(&slow)))
            .cancel_after(300)
            .must("the fetch is abandoned at once: the run ends as an error about the cancellation within 3 s")
            .status(&["error"])
            .check(|o| match &o.result.error {
                Some(e) if e.kind == "Cancelled" || e.message.contains("cancelled") => Ok(()),
                _ => Err("the error does not say the run was cancelled".into()),
            })
            .within_ms(3_000),
        Case::js("a call whose token is cancelled before it starts", "for (;;) {}")
            .cancel_after(0)
            .must("ends at once: denied (rule `cancelled`) or Cancelled")
            .status(&["denied", "error"])
            .error_type(&["Denied", "Cancelled"])
            .within_ms(1_000),
        Case::custom("twenty calls whose tokens are cancelled before they start, each printing and fetching", precancelled)
            .must("each is refused before it is admitted, every time: no code of a cancelled call runs, nothing is printed or sent")
            .check(|o| match o.result.result.as_array() {
                Some(all) if all.iter().all(|s| s == "denied") => Ok(()),
                _ => Err(format!("got {}", o.result.result)),
            })
            .no_api_hits(),
        Case::js("a cancellation that arrives after the run finished", "6 * 7")
            .cancel_after(300)
            .must("changes nothing: the result stands")
            .ok_with(json!(42)),
        Case::js(
            "JavaScript growing memory slowly",
            "const a = []; for (;;) { a.push(new Uint8Array(1024)); for (let i = 0; i < 1e4; i++); }",
        )
        .cancel_after(200)
        .must("ends within 3 s, cancelled (or out of memory, had it got there first)")
        .check(|o| match (o.result.status.as_str(), o.result.error.as_ref()) {
            ("out_of_memory", _) => Ok(()),
            ("error", Some(e)) if e.kind == "Cancelled" => Ok(()),
            _ => Err("neither cancelled nor out of memory".into()),
        })
        .within_ms(3_000),
        cancelled(JS, "JavaScript flooding stdout", "for (;;) console.log('x'.repeat(100))", 200),
        cancelled(JS, "JavaScript inside catastrophic regex backtracking", "/(a+)+$/.test('a'.repeat(60) + 'b')", 200),
        cancelled(JS, "JavaScript microtask storm", "const f = () => Promise.resolve().then(f); f(); await new Promise(() => {})", 200),
        cancelled(PY, "Python inside 10 ** 10 ** 9 (C-level bignum work)", "x = 10 ** 10 ** 9", 300),
        cancelled(PY, "Python inside math.factorial(10**8) (C code)", "import math\nmath.factorial(10**8)", 300),
        cancelled(PY, "Python sleeping in a loop", "import time\nwhile True:\n    time.sleep(10)", 200),
        Case::py("Python cancelled 1 ms after the call starts (while its sandbox is being set up)", "while True:\n    pass")
            .cancel_after(1)
            .must("ends within 3 s as Cancelled (or denied, had the cancellation come before the decision)")
            .status(&["error", "denied"])
            .check(|o| match &o.result.error {
                Some(e) if e.kind == "Cancelled" || e.kind == "Denied" => Ok(()),
                _ => Err("neither cancelled nor denied".into()),
            })
            .within_ms(3_000),
        Case::custom("a call waiting in the queue behind a spinning run, cancelled there; then the spinning run", queued)
            .must("the queued call ends Cancelled without running; the spinning one ends Cancelled; both within 3 s")
            .check(|o| {
                let r = &o.result.result;
                let queued_ok = r["queued"]["type"] == "Cancelled"
                    && r["queued"]["message"].as_str().is_some_and(|m| m.contains("before it ran"));
                let busy_ok = r["busy"]["type"] == "Cancelled";
                if queued_ok && busy_ok {
                    Ok(())
                } else {
                    Err(format!("got {r}"))
                }
            })
            .within_ms(3_000),
    ]
}

#[tokio::test]
async fn cancellation() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("cancellation", &env, cases, Mode::Regular).await;
}
