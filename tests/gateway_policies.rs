//! Gateway policies end to end: `warden serve --policy` with a PolicyLayer JSON or Intercept
//! YAML document, driven by a real MCP client (rmcp over stdio).

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{status, structured};
use serde_json::{Value, json};

/// PolicyLayer's recommended policy for `execute_code`, as its docs give it.
const SEED: &str = r#"{"version": "1", "default": "deny",
 "tools": {"execute_code": {"limits": [
   {"counter": "execute_code_rate", "window": "minute", "max": 10, "scope": "grant"}]}}}"#;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/intercept");

fn write_policy(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "warden-gateway-{}-{}",
        std::process::id(),
        blake3::hash(text.as_bytes()).to_hex()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Waits until at least `needed` of the current UTC minute remains, so that a test's calls
/// fall in one fixed window.
async fn within_one_minute(needed: Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
    if Duration::from_secs(60) - into < needed {
        tokio::time::sleep(Duration::from_secs(60) - into + Duration::from_millis(50)).await;
    }
}

fn js(code: &str) -> Value {
    json!({"language": "javascript", "code": code})
}

#[tokio::test]
async fn the_seed_policy_runs_ten_calls_a_minute_and_rate_limits_the_eleventh() {
    let server = common::start_server_at(&write_policy("seed.json", SEED)).await;
    let tools = server.client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].name, "execute_code");
    within_one_minute(Duration::from_secs(20)).await;
    for i in 0..10 {
        let r = server.call(js(&format!("{i} + 1"))).await;
        assert_eq!(status(&r), "ok", "call {i}: {r:?}");
        assert_eq!(structured(&r)["result"], json!(i + 1));
    }
    let r = server.call(js("11")).await;
    assert_eq!(status(&r), "rate_limited", "{r:?}");
    let policy = &structured(&r)["policy"];
    assert_eq!(policy["rule"], "rate_limit.execute_code_rate");
    let retry = policy["retry_after_ms"].as_u64().unwrap();
    assert!(retry > 0 && retry <= 60_000, "{policy}");
    assert_eq!(r.is_error, Some(true));
}

#[tokio::test]
async fn a_call_that_never_starts_gives_its_count_back() {
    // The seed policy, with room for the calls that fill every sandbox plus two.
    let sandboxes = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max = sandboxes + 2;
    let policy = SEED.replace("\"max\": 10", &format!("\"max\": {max}"));
    let server = Arc::new(common::start_server_at(&write_policy("seed.json", &policy)).await);
    within_one_minute(Duration::from_secs(30)).await;
    let busy = "const end = Date.now() + 2500; while (Date.now() < end) {} 'done'";
    let long: Vec<_> = (0..sandboxes)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .call(json!({"language": "javascript", "code": busy, "timeout_ms": 10000}))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Every sandbox is busy: this call times out in the queue, never having run.
    let queued = server
        .call(json!({"language": "javascript", "code": "1", "timeout_ms": 300}))
        .await;
    assert_eq!(status(&queued), "timeout", "{queued:?}");
    let message = structured(&queued)["error"]["message"].as_str().unwrap();
    assert!(message.contains("waiting for a free sandbox"), "{message}");
    for call in long {
        assert_eq!(status(&call.await.unwrap()), "ok");
    }
    // It counted nothing: two more calls fit in the window, and only then is it full.
    for i in 0..2 {
        let r = server.call(js("1")).await;
        assert_eq!(status(&r), "ok", "call {i} after the queued one: {r:?}");
    }
    let full = server.call(js("1")).await;
    assert_eq!(status(&full), "rate_limited", "{full:?}");
}

#[tokio::test]
async fn a_hidden_tool_is_not_listed_and_calling_it_is_denied() {
    let server = common::start_server_at(&PathBuf::from(format!("{FIXTURES}/hide.yaml"))).await;
    assert!(server.client.list_all_tools().await.unwrap().is_empty());
    let r = server.call(js("1")).await;
    assert_eq!(status(&r), "denied");
    assert_eq!(
        structured(&r)["policy"],
        json!({"rule": "hide", "reason": "Tool \"execute_code\" is hidden by policy"})
    );
}

#[tokio::test]
async fn an_intercept_policy_decides_on_the_arguments_and_counts_an_argument() {
    let path = PathBuf::from(format!("{FIXTURES}/execute_code.yaml"));
    let server = common::start_server_at(&path).await;
    within_one_minute(Duration::from_secs(20)).await;
    let call = |code: &str, timeout_ms: u64, input: Value| json!({"language": "python", "code": code, "timeout_ms": timeout_ms, "input": input});
    let r = server
        .call(call("1", 9000, json!({"rows": 1, "dataset": "sales"})))
        .await;
    assert_eq!(status(&r), "denied");
    assert_eq!(
        structured(&r)["policy"],
        json!({"rule": "short runs only", "reason": "Runs longer than 5 s need a person"})
    );
    let r = server
        .call(call(
            "sum(range(input['rows']))",
            2000,
            json!({"rows": 900, "dataset": "sales"}),
        ))
        .await;
    assert_eq!(status(&r), "ok", "{r:?}");
    assert_eq!(structured(&r)["result"], json!(404_550));
    // 900 of the day's 1000 rows are spent: 200 more do not fit.
    let r = server
        .call(call("1", 2000, json!({"rows": 200, "dataset": "support"})))
        .await;
    assert_eq!(status(&r), "rate_limited", "{r:?}");
    assert_eq!(
        structured(&r)["policy"]["reason"],
        "Daily budget of 1000 rows reached"
    );
}
