//! Helpers shared by the integration tests: the real binary, a shared guest cache, an rmcp
//! client that records progress notifications, and small assertions on results.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use rmcp::model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

use warden::execution::Executor;
use warden::outcome::ExecutionResult;
use warden::policy::Policy;

pub fn cache_dir() -> PathBuf {
    std::env::var_os("WARDEN_TEST_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("warden-cache"))
}

/// One in-process executor per test binary (building it loads the guests once).
pub fn executor() -> Arc<Executor> {
    static EXECUTOR: OnceLock<Arc<Executor>> = OnceLock::new();
    EXECUTOR
        .get_or_init(|| Arc::new(Executor::new(&Policy::builtin(), Some(cache_dir())).unwrap()))
        .clone()
}

pub fn executor_with(policy_toml: &str) -> Executor {
    let policy = Policy::parse(policy_toml, "test policy").unwrap();
    Executor::new(&policy, Some(cache_dir())).unwrap()
}

pub async fn run_on(
    executor: &Executor,
    language: &str,
    code: &str,
    input: Option<Value>,
) -> ExecutionResult {
    let mut args = json!({"language": language, "code": code});
    if let Some(i) = input {
        args["input"] = i;
    }
    let parsed = executor.parse_args(args.as_object()).unwrap();
    executor
        .execute(parsed, tokio_util::sync::CancellationToken::new())
        .await
}

pub async fn js(code: &str) -> ExecutionResult {
    run_on(&executor(), "javascript", code, None).await
}

pub async fn ts(code: &str) -> ExecutionResult {
    run_on(&executor(), "typescript", code, None).await
}

/// Asserts status ok and returns the result value.
pub fn ok(r: &ExecutionResult) -> &Value {
    assert_eq!(r.status.as_str(), "ok", "expected ok, got {r:#?}");
    &r.result
}

/// A client that records every progress notification it receives.
#[derive(Clone, Default)]
pub struct RecordingClient {
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for RecordingClient {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut p) = self.progress.lock() {
            p.push(params);
        }
    }
}

pub struct Server {
    pub client: RunningService<RoleClient, RecordingClient>,
    pub pid: u32,
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

/// Starts `warden serve` (stdio) as a child process and connects an rmcp client to it.
pub async fn start_server(policy_toml: Option<&str>) -> Server {
    let handler = RecordingClient::default();
    let progress = handler.progress.clone();
    let (client, pid) = connect(policy_toml, handler).await;
    Server {
        client,
        pid,
        progress,
    }
}

/// Starts `warden serve` with `handler` as the client side.
pub async fn connect<H: ClientHandler>(
    policy_toml: Option<&str>,
    handler: H,
) -> (RunningService<RoleClient, H>, u32) {
    let mut extra = Vec::new();
    if let Some(text) = policy_toml {
        let path = std::env::temp_dir().join(format!(
            "warden-test-policy-{}-{}.toml",
            std::process::id(),
            blake3::hash(text.as_bytes()).to_hex()
        ));
        std::fs::write(&path, text).unwrap();
        extra.push("--policy".into());
        extra.push(path.display().to_string());
    }
    spawn(extra, handler).await
}

/// Starts `warden serve --policy <path>`: the file stays the test's to change.
pub async fn start_server_at(policy: &std::path::Path) -> Server {
    let handler = RecordingClient::default();
    let progress = handler.progress.clone();
    let extra = vec!["--policy".to_string(), policy.display().to_string()];
    let (client, pid) = spawn(extra, handler).await;
    Server {
        client,
        pid,
        progress,
    }
}

async fn spawn<H: ClientHandler>(
    extra: Vec<String>,
    handler: H,
) -> (RunningService<RoleClient, H>, u32) {
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--cache-dir".into(),
        cache_dir().display().to_string(),
    ];
    args.extend(extra);
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden")).configure(|cmd| {
        cmd.args(&args).env("WARDEN_LOG", "warn");
    });
    // The server's stderr carries its logs and audit events: not the tests' business.
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = transport.id().unwrap();
    let client = handler.serve(transport).await.unwrap();
    (client, pid)
}

/// Calls `execute_code` on any client.
pub async fn call_with<H: ClientHandler>(
    client: &RunningService<RoleClient, H>,
    arguments: Value,
) -> CallToolResult {
    let params = CallToolRequestParams::new("execute_code")
        .with_arguments(arguments.as_object().cloned().unwrap_or_default());
    client.call_tool(params).await.unwrap()
}

impl Server {
    pub async fn call(&self, arguments: Value) -> CallToolResult {
        call_with(&self.client, arguments).await
    }

    pub async fn js(&self, code: &str) -> CallToolResult {
        self.call(json!({"language": "javascript", "code": code}))
            .await
    }

    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid)
    }
}

pub fn structured(r: &CallToolResult) -> &Value {
    r.structured_content
        .as_ref()
        .expect("structuredContent is present")
}

pub fn status(r: &CallToolResult) -> &str {
    structured(r)["status"]
        .as_str()
        .expect("status is a string")
}

/// Resident set size of a process, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
