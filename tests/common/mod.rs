//! Helpers shared by the integration tests: the real binary, a shared guest cache, an rmcp
//! client that records progress notifications, and small assertions on results.

#![allow(dead_code)] // each test crate uses a different subset

pub mod redis_server;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use rmcp::model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

use tokio_util::sync::CancellationToken;
use warden::contract::ExecutionResult;
use warden::policy::{Caller, LOCAL_GRANT, Policy};
use warden::service::Service;

pub fn cache_dir() -> PathBuf {
    std::env::var_os("WARDEN_TEST_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("warden-cache"))
}

/// A state directory of its own (the embedded counter database) for one server process, so
/// that no two servers of the suite, nor two runs of it, share rate-limit counts.
pub fn state_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "warden-state-{}-{}-{n}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// One in-process service per test binary (building it loads the guests once).
pub fn executor() -> Arc<Service> {
    static EXECUTOR: OnceLock<Arc<Service>> = OnceLock::new();
    EXECUTOR
        .get_or_init(|| Arc::new(Service::new(Policy::builtin(), Some(cache_dir())).unwrap()))
        .clone()
}

pub fn executor_with(policy_toml: &str) -> Service {
    let policy = Policy::parse(policy_toml, "test policy").unwrap();
    Service::new(policy, Some(cache_dir())).unwrap()
}

/// One call through the service's whole pipeline (schema, policy, rate limits, run) as the
/// local caller; nobody can be asked for approval.
pub async fn run_on(
    executor: &Service,
    language: &str,
    code: &str,
    input: Option<Value>,
) -> ExecutionResult {
    let mut args = json!({"language": language, "code": code});
    if let Some(i) = input {
        args["input"] = i;
    }
    call_as(
        executor,
        LOCAL_GRANT,
        "tests",
        args,
        &CancellationToken::new(),
    )
    .await
}

/// One call through the whole pipeline with raw arguments, as `grant` in `session`.
pub async fn call_as(
    service: &Service,
    grant: &str,
    session: &str,
    args: Value,
    cancel: &CancellationToken,
) -> ExecutionResult {
    let parsed = service.parse_args(grant, args.as_object());
    let caller = Caller { grant, session };
    service
        .call(parsed, &caller, "tests cannot ask anyone", cancel)
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
        write_whole(&path, text);
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
        cmd.args(&args)
            .env("WARDEN_LOG", "warn")
            .env("WARDEN_STATE_DIR", state_dir());
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

/// The bearer token the fake API accepts on `/user`.
pub const FAKE_API_TOKEN: &str = "tok_7a1f9c2e4b8d6053";

/// The fake REST API (tests/fixtures/fake_api.py) on a free port of 127.0.0.1.
pub struct FakeApi {
    child: std::process::Child,
    pub port: u16,
}

impl FakeApi {
    pub fn start() -> FakeApi {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut child = std::process::Command::new(format!("{root}/.venv/bin/python"))
            .arg(format!("{root}/tests/fixtures/fake_api.py"))
            .arg(FAKE_API_TOKEN)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting the fake API (run `make setup` for .venv)");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let port = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
        FakeApi { child, port }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests the server received so far (read without going through Warden).
    pub fn hits(&self) -> u64 {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET /hits HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        serde_json::from_str::<Value>(body).unwrap()["hits"]
            .as_u64()
            .unwrap()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `warden serve --http 127.0.0.1:0` as a child process.
pub struct HttpServer {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    pub port: u16,
}

impl HttpServer {
    pub fn start(policy_toml: &str, extra: &[&str]) -> HttpServer {
        let path = std::env::temp_dir().join(format!(
            "warden-http-policy-{}-{}.toml",
            std::process::id(),
            blake3::hash(policy_toml.as_bytes()).to_hex()
        ));
        write_whole(&path, policy_toml);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["serve", "--http", "127.0.0.1:0", "--cache-dir"])
            .env("WARDEN_STATE_DIR", state_dir())
            .arg(cache_dir())
            .arg("--policy")
            .arg(&path)
            .args(extra)
            .env("WARDEN_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        let port = url
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches("/mcp")
            .parse()
            .unwrap();
        HttpServer { child, url, port }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A plain HTTP request (no client library): status line, headers and body as text.
    pub fn raw(&self, request: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which lifecycle an HTTP client uses.
#[derive(Debug, Clone, Copy)]
pub enum Protocol {
    /// `initialize` and a session (2025-11-25).
    Session,
    /// `server/discover`, stateless (2026-07-28).
    Stateless,
}

/// An rmcp client over Streamable HTTP, with a bearer token if given.
pub async fn http_client(
    url: &str,
    token: Option<&str>,
    protocol: Protocol,
) -> RunningService<RoleClient, RecordingClient> {
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if let Some(token) = token {
        config = config.auth_header(token.to_string());
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    let handler = RecordingClient::default();
    match protocol {
        Protocol::Session => handler.serve(transport).await.unwrap(),
        Protocol::Stateless => handler
            .serve_with_lifecycle(
                transport,
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
                },
            )
            .await
            .unwrap(),
    }
}

/// A client that declares the MCP tasks extension (SEP-2663): the server runs its calls as tasks.
/// It records the progress notifications it gets.
#[derive(Clone, Default)]
pub struct TasksClient {
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for TasksClient {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut p) = self.progress.lock() {
            p.push(params);
        }
    }

    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_tasks()
                .build(),
            rmcp::model::Implementation::new("warden-tests", "1"),
        )
    }
}

/// A stateless (2026-07-28) rmcp client over Streamable HTTP that declares the tasks extension.
pub async fn tasks_client(url: &str, token: &str) -> RunningService<RoleClient, TasksClient> {
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string())
        .auth_header(token.to_string());
    TasksClient::default()
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_config(config),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap()
}

/// Writes `contents` to `path` so that a reader sees either the old file or the whole new one:
/// tests run in parallel, and two of them may write the same policy file while a server of a
/// third reads it (a truncated file would load as some other policy).
pub fn write_whole(path: &std::path::Path, contents: &str) {
    static WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let staging = path.with_extension(format!("partial-{n}"));
    std::fs::write(&staging, contents).unwrap();
    std::fs::rename(&staging, path).unwrap();
}
