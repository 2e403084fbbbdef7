//! Limits that hold across restarts and replicas (issue 17), through the real binary over
//! Streamable HTTP: two replicas sharing a real `redis-server`, one restarted midway; Redis
//! stopped under `closed` and `open`, audited, and counting again when it is back; the
//! embedded store across a server restart; a corrupt counter database refused at start.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::{HttpServer, Protocol, call_with, http_client, structured};
use serde_json::{Value, json};

/// A policy with one global limit of `max` per `window`, audited to `audit`.
fn limited(max: u64, window: &str, audit: &Path) -> String {
    format!(
        "[audit]\npath = \"{}\"\n\n[[tools.execute_code.limits]]\ncounter = \"calls\"\n\
         window = \"{window}\"\nmax = {max}\nscope = \"global\"\n",
        audit.display()
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "replicas-{}-{name}-{}",
        std::process::id(),
        warden::policy::now_ms()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Waits while the current window of `window_ms` has less than `need` left, so that a test's
/// calls all fall in one window.
fn inside_one_window(window_ms: u64, need: Duration) {
    let now = warden::policy::now_ms();
    let left = window_ms - now % window_ms;
    if u128::from(left) < need.as_millis() {
        std::thread::sleep(Duration::from_millis(left + 50));
    }
}

/// `n` concurrent `1+1` calls spread over `servers` (two clients each); their statuses.
async fn concurrent_calls(servers: &[&HttpServer], n: usize) -> Vec<String> {
    let mut clients = Vec::new();
    for server in servers {
        for _ in 0..2 {
            clients.push(http_client(&server.url, None, Protocol::Session).await);
        }
    }
    let calls = (0..n).map(|i| {
        let client = &clients[i % clients.len()];
        async move {
            let r = call_with(client, json!({"language": "javascript", "code": "1+1"})).await;
            structured(&r)["status"].as_str().unwrap_or("?").to_string()
        }
    });
    let statuses = futures::future::join_all(calls).await;
    for client in clients {
        let _ = client.cancel().await;
    }
    statuses
}

fn count(statuses: &[String], status: &str) -> usize {
    statuses.iter().filter(|s| *s == status).count()
}

async fn one_call(server: &HttpServer) -> Value {
    let client = http_client(&server.url, None, Protocol::Session).await;
    let r = call_with(&client, json!({"language": "javascript", "code": "1+1"})).await;
    let _ = client.cancel().await;
    structured(&r).clone()
}

fn audit_decisions(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "decision")
        .collect()
}

fn healthz(server: &HttpServer) -> String {
    server.raw("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
}

fn replica(policy: &str, redis: &RedisServer, prefix: &str, mode: &str) -> HttpServer {
    HttpServer::start(
        policy,
        &[
            "--state-dsn",
            &redis.dsn(),
            "--state-prefix",
            prefix,
            "--state-fail-mode",
            mode,
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_sharing_redis_admit_exactly_the_limit() {
    let redis = RedisServer::start();
    let dir = scratch("two");
    let prefix = format!("two{}:", std::process::id());
    let a = replica(
        &limited(10, "minute", &dir.join("a.log")),
        &redis,
        &prefix,
        "closed",
    );
    let b = replica(
        &limited(10, "minute", &dir.join("b.log")),
        &redis,
        &prefix,
        "closed",
    );
    inside_one_window(60_000, Duration::from_secs(20));
    // One call on each replica first, so that both take part whatever the timing of the burst
    // (on a loaded machine one replica could otherwise win every race).
    for server in [&a, &b] {
        assert_eq!(one_call(server).await["status"], "ok");
    }
    let mut statuses = concurrent_calls(&[&a, &b], 38).await;
    statuses.extend(["ok".to_string(), "ok".to_string()]);
    assert_eq!(count(&statuses, "ok"), 10, "{statuses:?}");
    assert_eq!(count(&statuses, "rate_limited"), 30, "{statuses:?}");
    // Both replicas admitted some: the count is shared, not each replica's own.
    let admitted = |log: &Path| {
        audit_decisions(log)
            .iter()
            .filter(|e| e["decision"] == "allow")
            .count()
    };
    let (on_a, on_b) = (admitted(&dir.join("a.log")), admitted(&dir.join("b.log")));
    assert_eq!(on_a + on_b, 10);
    assert!(on_a > 0 && on_b > 0, "a: {on_a}, b: {on_b}");
    assert!(healthz(&a).starts_with("HTTP/1.1 200"));
    assert!(healthz(&a).contains("counters: redis redis://127.0.0.1:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_restarted_midway_keeps_counting_against_the_shared_limit() {
    let redis = RedisServer::start();
    let dir = scratch("restart");
    let prefix = format!("restart{}:", std::process::id());
    let policy = limited(10, "minute", &dir.join("audit.log"));
    let a = replica(&policy, &redis, &prefix, "closed");
    let b = replica(&policy, &redis, &prefix, "closed");
    inside_one_window(60_000, Duration::from_secs(25));
    let first = concurrent_calls(&[&a, &b], 6).await;
    assert_eq!(count(&first, "ok"), 6, "{first:?}");
    drop(b);
    let b = replica(&policy, &redis, &prefix, "closed");
    let rest = concurrent_calls(&[&a, &b], 34).await;
    assert_eq!(count(&rest, "ok"), 4, "{rest:?}");
    assert_eq!(count(&rest, "rate_limited"), 30, "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_closed_denies_open_allows_both_audited_and_counting_resumes() {
    let mut redis = RedisServer::start();
    let dir = scratch("down");
    let prefix = format!("down{}:", std::process::id());
    let (closed_log, open_log) = (dir.join("closed.log"), dir.join("open.log"));
    let closed = replica(&limited(3, "hour", &closed_log), &redis, &prefix, "closed");
    let open = replica(&limited(3, "hour", &open_log), &redis, &prefix, "open");
    inside_one_window(3_600_000, Duration::from_secs(30));
    assert_eq!(one_call(&closed).await["status"], "ok");
    assert_eq!(one_call(&open).await["status"], "ok");

    redis.stop();
    let denied = one_call(&closed).await;
    assert_eq!(denied["status"], "denied", "{denied}");
    assert_eq!(denied["policy"]["rule"], "state.unavailable", "{denied}");
    let reason = denied["policy"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("rate-limit store is unavailable") && reason.contains("Redis"),
        "{reason}"
    );
    assert!(
        denied["policy"]["retry_after_ms"].as_u64().is_some(),
        "{denied}"
    );
    let allowed = one_call(&open).await;
    assert_eq!(allowed["status"], "ok", "{allowed}");
    let health = healthz(&closed);
    assert!(
        health.starts_with("HTTP/1.1 503") && health.ends_with("unavailable\n"),
        "{health}"
    );
    let health = healthz(&open);
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("degraded\n"),
        "{health}"
    );
    let last = |log: &Path| audit_decisions(log).last().cloned().unwrap();
    let closed_event = last(&closed_log);
    assert_eq!(closed_event["decision"], "deny", "{closed_event}");
    assert_eq!(closed_event["rule"], "state.unavailable", "{closed_event}");
    let open_event = last(&open_log);
    assert_eq!(open_event["decision"], "allow", "{open_event}");
    assert_eq!(open_event["rule"], "state.fail_open", "{open_event}");
    assert!(
        open_event["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not counted")),
        "{open_event}"
    );

    // Back (empty: nothing was saved): both replicas count again, against one shared limit.
    redis.restart();
    let started = Instant::now();
    while !healthz(&closed).starts_with("HTTP/1.1 200") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no reconnection"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut statuses = Vec::new();
    for server in [&closed, &open, &closed, &open] {
        statuses.push(one_call(server).await["status"].clone());
    }
    assert_eq!(statuses, ["ok", "ok", "ok", "rate_limited"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_embedded_store_keeps_counts_across_a_restart_and_stays_exact_under_load() {
    let dir = scratch("embedded");
    let state = dir.join("state");
    let state_arg = state.to_str().unwrap();
    let policy = limited(10, "hour", &dir.join("audit.log"));
    inside_one_window(3_600_000, Duration::from_secs(30));
    let server = HttpServer::start(&policy, &["--state-dir", state_arg]);
    let statuses = concurrent_calls(&[&server], 4).await;
    assert_eq!(count(&statuses, "ok"), 4, "{statuses:?}");
    assert!(healthz(&server).contains("counters: sqlite "));
    drop(server);

    let server = HttpServer::start(&policy, &["--state-dir", state_arg]);
    let statuses = concurrent_calls(&[&server], 30).await;
    assert_eq!(
        count(&statuses, "ok"),
        6,
        "the restart kept 4: {statuses:?}"
    );
    assert_eq!(count(&statuses, "rate_limited"), 24, "{statuses:?}");
    assert!(state.join("counters.sqlite").exists());
}

#[test]
fn a_corrupt_counter_database_stops_the_server_at_start_with_what_to_do() {
    let dir = scratch("corrupt");
    std::fs::write(dir.join("counters.sqlite"), vec![0x42; 4096]).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--state-dir"])
        .arg(&dir)
        .arg("--cache-dir")
        .arg(common::cache_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("opening the counter store") && stderr.contains("counters.sqlite"),
        "{stderr}"
    );
    assert!(stderr.contains("not a usable counter database"), "{stderr}");

    let bad_dsn = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--state-dsn", "postgres://x"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(bad_dsn.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad_dsn.stderr);
    assert!(stderr.contains("expected redis://"), "{stderr}");
}
