//! The policy pipeline end to end: denials through a real MCP client (rules, actions, rate
//! limits, approval accepted / declined / unavailable) and exact admission under concurrency.

mod common;

use std::sync::Arc;

use common::{call_with, connect, start_server, status, structured};
use rmcp::model::{
    ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult, ElicitationAction,
    Implementation,
};
use rmcp::service::RequestContext;
use rmcp::{ClientHandler, ErrorData, RoleClient};
use serde_json::json;

const POLICY: &str = r#"
[[tools.execute_code.rules]]
name = "no-eval"
message = "eval is not allowed"
when = [{ arg = "code", op = "contains", value = "eval(" }]

[[tools.execute_code.rules]]
name = "review-big-inputs"
message = "large inputs need a person's approval"
effect = "require_approval"
when = [{ arg = "input.rows", op = "gt", value = 100 }]

[[tools.execute_code.limits]]
counter = "calls"
window = "minute"
max = 3
scope = "session"
"#;

#[tokio::test]
async fn denials_are_tool_results_with_the_policy_decision() {
    let server = start_server(Some(POLICY)).await;
    // A rule denial consumes no quota: three calls still fit afterwards.
    for _ in 0..4 {
        let r = server.js("eval('1')").await;
        assert_eq!(status(&r), "denied");
        assert_eq!(r.is_error, Some(true));
        let s = structured(&r);
        assert_eq!(
            s["policy"],
            json!({"rule": "no-eval", "reason": "eval is not allowed"})
        );
        assert_eq!(s["usage"]["fuel"], 0, "nothing ran");
    }
    for i in 0..3 {
        let r = server.js(&format!("{i} + 1")).await;
        assert_eq!(status(&r), "ok", "call {i}: {r:?}");
    }
    let r = server.js("1").await;
    assert_eq!(status(&r), "rate_limited");
    let policy = &structured(&r)["policy"];
    assert_eq!(policy["rule"], "rate_limit.calls");
    let retry = policy["retry_after_ms"].as_u64().unwrap();
    assert!((1..=60_000).contains(&retry), "{retry}");
    assert!(r.content[0].as_text().unwrap().text.contains("retry after"));
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_denying_action_and_narrowed_languages() {
    let server = start_server(Some("[tools.execute_code]\nlanguages = [\"python\"]\n")).await;
    let tools = server.client.list_all_tools().await.unwrap();
    assert_eq!(
        tools[0].input_schema["properties"]["language"]["enum"],
        json!(["python"])
    );
    let r = server.js("1").await;
    assert_eq!(status(&r), "denied");
    assert_eq!(
        structured(&r)["policy"]["rule"],
        "tools.execute_code.languages"
    );
    server.client.cancel().await.unwrap();
    let server = start_server(Some("default = \"deny\"\n")).await;
    let r = server.js("1").await;
    assert_eq!(status(&r), "denied");
    assert_eq!(structured(&r)["policy"]["rule"], "default");
    server.client.cancel().await.unwrap();
}

/// A client that supports elicitation and answers every approval request the same way.
#[derive(Clone)]
struct Approver {
    approve: bool,
    asked: Arc<std::sync::Mutex<Vec<String>>>,
}

impl ClientHandler for Approver {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_elicitation().build(),
            Implementation::new("approver", "0"),
        )
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        if let ElicitRequestParams::FormElicitationParams { message, .. } = request {
            self.asked.lock().unwrap().push(message);
        }
        Ok(if self.approve {
            ElicitResult::new(ElicitationAction::Accept).with_content(json!({"approve": true}))
        } else {
            ElicitResult::new(ElicitationAction::Decline)
        })
    }
}

#[tokio::test]
async fn approval_accepted_declined_and_unavailable() {
    let big = json!({"language": "javascript", "code": "input.rows * 2", "input": {"rows": 500}});
    for (approve, expected) in [(true, "ok"), (false, "approval_declined")] {
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (client, _) = connect(
            Some(POLICY),
            Approver {
                approve,
                asked: asked.clone(),
            },
        )
        .await;
        let r = call_with(&client, big.clone()).await;
        assert_eq!(status(&r), expected, "{r:?}");
        if approve {
            assert_eq!(structured(&r)["result"], 1000);
        } else {
            assert_eq!(structured(&r)["policy"]["rule"], "review-big-inputs");
        }
        let asked = asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 1);
        assert!(
            asked[0].contains("review-big-inputs") && asked[0].contains("input.rows * 2"),
            "{asked:?}"
        );
        // Calls that need no approval do not ask.
        let r = call_with(&client, json!({"language": "javascript", "code": "1"})).await;
        assert_eq!(status(&r), "ok");
        client.cancel().await.unwrap();
    }
    // A client without elicitation cannot be asked: denied, and the reason says so.
    let server = start_server(Some(POLICY)).await;
    let r = server.call(big).await;
    assert_eq!(status(&r), "denied");
    let reason = structured(&r)["policy"]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("does not support elicitation"), "{reason}");
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn admission_is_atomic_under_concurrency() {
    let executor = Arc::new(common::executor_with(
        "[[all_tools.limits]]\ncounter = \"burst\"\nwindow = \"hour\"\nmax = 10\nscope = \"global\"\n",
    ));
    let calls = (0..100).map(|i| {
        let executor = executor.clone();
        async move {
            common::call_as(
                &executor,
                "g",
                "s",
                json!({"language": "javascript", "code": format!("{i}")}),
                &tokio_util::sync::CancellationToken::new(),
            )
            .await
        }
    });
    // All 100 start before any finishes: admission is decided under real contention.
    let results = futures::future::join_all(calls).await;
    let ok = results.iter().filter(|r| r.status.as_str() == "ok").count();
    let limited = results
        .iter()
        .filter(|r| r.status.as_str() == "rate_limited")
        .count();
    assert_eq!((ok, limited), (10, 90));
}

#[tokio::test]
async fn every_decision_and_run_is_audited_without_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let policy = format!("{POLICY}\n[audit]\npath = \"{}\"\n", log.display());
    let server = start_server(Some(&policy)).await;
    let secret = "sk-live-4f9a1c77e2";
    server
        .js(&format!("const token = '{secret}'; token.length"))
        .await;
    server.js("eval('2')").await;
    server.call(json!({"language": "cobol", "code": "1"})).await;
    server.client.cancel().await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(secret), "the code leaked into the audit log");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().into(),
                e["decision"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected = [
        ("decision", "allow"),
        ("run", "ok"),
        ("decision", "deny"),
        ("decision", "invalid_arguments"),
    ];
    assert_eq!(
        summary,
        expected.map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(events[0]["request_id"], events[1]["request_id"]);
    assert_eq!(events[0]["grant"], "local");
    assert_eq!(events[0]["code_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(events[1]["usage"]["fetches"], 0);
    assert_eq!(events[2]["rule"], "no-eval");
    for e in &events {
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
}

#[tokio::test]
async fn an_unwritable_audit_log_denies_calls_unless_fail_open() {
    let server = start_server(Some(
        "[audit]\npath = \"/dev/full\"\n\n[[tools.execute_code.limits]]\ncounter = \"calls\"\n\
         window = \"hour\"\nmax = 1\nscope = \"global\"\n",
    ))
    .await;
    // Both are refused for the log, not for the limit: a refused call gives its count back.
    for _ in 0..2 {
        let r = server.js("1").await;
        assert_eq!(status(&r), "denied");
        assert_eq!(structured(&r)["policy"]["rule"], "audit.fail_closed");
    }
    server.client.cancel().await.unwrap();
    let server = start_server(Some("[audit]\npath = \"/dev/full\"\nfail_closed = false\n")).await;
    assert_eq!(status(&server.js("1").await), "ok");
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_policy_reloads_while_calls_run_and_counters_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    let limit = "[[all_tools.limits]]\ncounter = \"calls\"\nwindow = \"hour\"\nmax = 4\nscope = \"global\"\n";
    std::fs::write(&path, format!("[limits]\nfuel = 1000000000000\n{limit}")).unwrap();
    let server = Arc::new(common::start_server_at(&path).await);
    assert_eq!(status(&server.js("1").await), "ok");
    // A long call is running when the policy changes under it.
    let long = {
        let server = server.clone();
        tokio::spawn(async move {
            server
                .call(
                    json!({"language": "javascript", "code": "while(true){}", "timeout_ms": 2500}),
                )
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let deny_eval = "[[tools.execute_code.rules]]\nname = \"no-eval\"\nmessage = \"no eval now\"\n\
                     when = [{ arg = \"code\", op = \"contains\", value = \"eval\" }]\n";
    std::fs::write(
        &path,
        format!("[limits]\nfuel = 1000000000000\n{limit}{deny_eval}"),
    )
    .unwrap();
    // The file watcher polls every second; SIGHUP makes it immediate.
    unsafe { libc::kill(server.pid as i32, libc::SIGHUP) };
    let mut reloaded = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = server.js("eval('1')").await;
        if status(&r) == "denied" {
            reloaded = true;
            break;
        }
    }
    assert!(reloaded, "the new rule never took effect");
    assert_eq!(
        status(&long.await.unwrap()),
        "timeout",
        "the running call finished under its own policy"
    );
    // An invalid document keeps the policy in force.
    std::fs::write(&path, "[tools.execute_code\n").unwrap();
    unsafe { libc::kill(server.pid as i32, libc::SIGHUP) };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(status(&server.js("eval('1')").await), "denied");
    // Counters survived the reload: 1 + long + at most a few probes were admitted out of 4.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(status(&server.js("2").await).to_string());
    }
    assert!(
        statuses.contains(&"rate_limited".to_string()),
        "{statuses:?}"
    );
}

/// A call the policy admitted but the server was too busy to start gets its rate-limit count
/// back: a caller told to retry is not charged twice.
#[tokio::test]
async fn a_call_refused_for_load_does_not_use_up_its_quota() {
    let executor = Arc::new(common::executor_with(
        r#"
[limits]
max_concurrent_runs = 1
max_queued_runs = 0

[[tools.execute_code.limits]]
counter = "calls"
window = "hour"
max = 2
scope = "global"
"#,
    ));
    let call = |executor: Arc<warden::service::Service>, code: &'static str| async move {
        common::call_as(
            &executor,
            "local",
            "s",
            json!({"language": "javascript", "code": code, "timeout_ms": 20000}),
            &tokio_util::sync::CancellationToken::new(),
        )
        .await
    };
    // The one sandbox is busy for a while...
    let long = tokio::spawn(call(
        executor.clone(),
        "const end = Date.now() + 1500; while (Date.now() < end) {} 'done'",
    ));
    let started = std::time::Instant::now();
    while executor.calls_in_flight() == 0 && started.elapsed().as_secs() < 20 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // ...so this call is refused for load (after the rate limit admitted it)...
    let busy = call(executor.clone(), "1").await;
    assert_eq!(busy.status.as_str(), "rate_limited", "{busy:?}");
    assert_eq!(
        busy.policy.as_ref().unwrap().rule,
        "limits.max_queued_runs",
        "{busy:?}"
    );
    assert_eq!(long.await.unwrap().status.as_str(), "ok");
    // ...and did not count: the second of the two calls an hour still runs.
    let retried = call(executor.clone(), "2").await;
    assert_eq!(retried.status.as_str(), "ok", "{retried:?}");
    let third = call(executor.clone(), "3").await;
    assert_eq!(third.status.as_str(), "rate_limited");
    assert_eq!(third.policy.as_ref().unwrap().rule, "rate_limit.calls");
}
