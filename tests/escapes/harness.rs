//! The table machinery of the adversarial suite: a [`Case`] names what it tries and what must
//! hold; [`run_table`] runs a category's cases one after another against one environment (an
//! executor with the category's policy, local servers where the category needs them), checks
//! every case, checks that the next request is unaffected, and reports every failing case by
//! name at the end.
//!
//! Besides each case's own checks, every run is held to the invariants that make a sandbox a
//! sandbox: the run ends (well within its own wall-clock limit), it never reports more memory
//! or output than the policy allows, no credential value (or its reverse, which no redactor
//! would catch) appears anywhere in the result, and no credential value reaches the sink.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use warden::contract::ExecutionResult;
use warden::sandbox::{
    CancelFlag, FetchCapability, Fetcher, GuestBytes, GuestForm, GuestProgram, HttpRequest,
    HttpResponse, RunLimits, RunRequest, Sandbox, SandboxConfig,
};
use warden::service::Service;

use crate::common::FakeApi;

pub const JS: &str = "javascript";
pub const TS: &str = "typescript";
pub const PY: &str = "python";

/// The longest any single attempt may take before the suite calls it a hang.
const HANG: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------------------------ secrets

/// The bearer token the fake API accepts; injected by the host for the API's /user and /echo.
pub const API_TOKEN: &str = crate::common::FAKE_API_TOKEN;
/// A placeholder-only credential for a few paths of the fake API.
pub const KEY: &str = "kx_9b1e5c7a3d2f4068-escapes-0123456789ab";
/// Injected for the sink's /reflect-name only (a header-name-safe, lower-case value).
pub const SINK_SECRET: &str = "sk_live_4f9a0c1e7b2d8e3f6a5b";

pub fn reversed(s: &str) -> String {
    s.chars().rev().collect()
}

/// The spellings of `secret` that a server could receive: as is, percent-encoded (either hex
/// case), base64 and hex.
pub fn wire_forms(secret: &str) -> Vec<String> {
    use base64::Engine as _;
    let (mut upper, mut lower) = (String::new(), String::new());
    for b in secret.bytes() {
        if b.is_ascii_alphanumeric() {
            upper.push(b as char);
            lower.push(b as char);
        } else {
            upper.push_str(&format!("%{b:02X}"));
            lower.push_str(&format!("%{b:02x}"));
        }
    }
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        secret.to_string(),
        upper,
        lower,
        base64::engine::general_purpose::STANDARD.encode(secret),
        hex.clone(),
        hex.to_uppercase(),
    ]
}

/// Writes a credential value to a file of its own (categories run in parallel: no file is
/// ever rewritten while another executor may be reading it) and returns its path.
pub fn secret_file(tag: &str, value: &str) -> String {
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "warden-escapes-{}-{}-{tag}.secret",
        std::process::id(),
        FILES.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::write(&path, value).unwrap();
    path.display().to_string()
}

// ------------------------------------------------------------------------------------- cases

/// What a case sees after its attempt.
pub struct Outcome {
    pub result: ExecutionResult,
    pub elapsed: Duration,
    /// The case's follow-up run on the same executor, if it has one.
    pub next: Option<ExecutionResult>,
    /// Requests that reached the fake APIs (not through the suite's own bookkeeping).
    pub api_hits: u64,
    /// Requests that reached the sink, and their raw bytes.
    pub sink_hits: u64,
    pub sink_bytes: Vec<u8>,
    /// Calls that reached the WAT guest's recording fetcher.
    pub fetcher_calls: usize,
}

pub type Check = Box<dyn Fn(&Outcome) -> Result<(), String> + Send + Sync>;
pub type BoxFut<'a> = Pin<Box<dyn Future<Output = ExecutionResult> + 'a>>;
/// A case that needs more than one call (queues, concurrency, raw protocol).
pub type CustomFn = for<'a> fn(&'a Env) -> BoxFut<'a>;

pub enum Attempt {
    /// One `execute_code` call through the executor's whole pipeline.
    Call {
        args: Value,
        /// Cancel the call's token after this long (`Some(ZERO)`: before the call).
        cancel_after: Option<Duration>,
    },
    /// A hand-written core-module guest run straight in a sandbox (the guest ABI).
    Wat(WatGuest),
    Custom(CustomFn),
}

pub struct Case {
    /// What the case tries.
    pub name: String,
    /// What must hold.
    pub must: String,
    pub attempt: Attempt,
    checks: Vec<Check>,
    then: Option<(&'static str, String)>,
    /// A known containment bug this case demonstrates: run only by the `*_known_bugs` tests.
    pub bug: Option<&'static str>,
}

fn show(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn summary(r: &ExecutionResult) -> String {
    let error = r
        .error
        .as_ref()
        .map(|e| {
            let mut m = format!("{}: {}", e.kind, e.message);
            if m.len() > 300 {
                let mut cut = 300;
                while !m.is_char_boundary(cut) {
                    cut -= 1;
                }
                m.truncate(cut);
            }
            m
        })
        .unwrap_or_default();
    format!(
        "status={} error={error:?} result={} stdout[{}]={:?} stderr[{}] usage={:?}",
        r.status.as_str(),
        show(&r.result),
        r.stdout.len(),
        r.stdout.chars().take(120).collect::<String>(),
        r.stderr.len(),
        r.usage
    )
}

impl Case {
    fn new(name: impl Into<String>, attempt: Attempt) -> Case {
        Case {
            name: name.into(),
            must: String::new(),
            attempt,
            checks: Vec::new(),
            then: None,
            bug: None,
        }
    }

    /// A program in `language`.
    pub fn code(language: &str, name: impl Into<String>, code: impl Into<String>) -> Case {
        Case::new(
            name,
            Attempt::Call {
                args: json!({"language": language, "code": code.into()}),
                cancel_after: None,
            },
        )
    }

    pub fn js(name: impl Into<String>, code: impl Into<String>) -> Case {
        Case::code(JS, name, code)
    }

    pub fn ts(name: impl Into<String>, code: impl Into<String>) -> Case {
        Case::code(TS, name, code)
    }

    pub fn py(name: impl Into<String>, code: impl Into<String>) -> Case {
        Case::code(PY, name, code)
    }

    /// Raw `execute_code` arguments, exactly as a client might send them.
    pub fn args(name: impl Into<String>, args: Value) -> Case {
        Case::new(
            name,
            Attempt::Call {
                args,
                cancel_after: None,
            },
        )
    }

    pub fn wat(name: impl Into<String>, guest: WatGuest) -> Case {
        Case::new(name, Attempt::Wat(guest))
    }

    pub fn custom(name: impl Into<String>, run: CustomFn) -> Case {
        Case::new(name, Attempt::Custom(run))
    }

    pub fn must(mut self, text: impl Into<String>) -> Case {
        self.must = text.into();
        self
    }

    fn arg(mut self, key: &str, value: Value) -> Case {
        match &mut self.attempt {
            Attempt::Call { args, .. } => args[key] = value,
            _ => panic!("{}: only calls take arguments", self.name),
        }
        self
    }

    pub fn input(self, value: Value) -> Case {
        self.arg("input", value)
    }

    pub fn timeout_ms(self, ms: u64) -> Case {
        self.arg("timeout_ms", json!(ms))
    }

    /// Cancels the call's token `ms` after the call starts (0: before it starts).
    pub fn cancel_after(mut self, ms: u64) -> Case {
        match &mut self.attempt {
            Attempt::Call { cancel_after, .. } => *cancel_after = Some(Duration::from_millis(ms)),
            _ => panic!("{}: only calls can be cancelled", self.name),
        }
        self
    }

    pub fn bug(mut self, text: &'static str) -> Case {
        self.bug = Some(text);
        self
    }

    /// A second program run on the same executor right after the attempt; `check` sees it.
    pub fn then(mut self, language: &'static str, code: impl Into<String>) -> Case {
        self.then = Some((language, code.into()));
        self
    }

    pub fn check(
        mut self,
        f: impl Fn(&Outcome) -> Result<(), String> + Send + Sync + 'static,
    ) -> Case {
        self.checks.push(Box::new(f));
        self
    }

    /// The status is one of `statuses`.
    pub fn status(self, statuses: &'static [&'static str]) -> Case {
        self.check(move |o| {
            if statuses.contains(&o.result.status.as_str()) {
                Ok(())
            } else {
                Err(format!("status should be one of {statuses:?}"))
            }
        })
    }

    /// The status is not one of `statuses`.
    pub fn status_not(self, statuses: &'static [&'static str]) -> Case {
        self.check(move |o| {
            if statuses.contains(&o.result.status.as_str()) {
                Err(format!("status should not be any of {statuses:?}"))
            } else {
                Ok(())
            }
        })
    }

    pub fn ok_with(self, expected: Value) -> Case {
        self.check(move |o| {
            if o.result.status.as_str() != "ok" {
                return Err("status should be ok".into());
            }
            if o.result.result != expected {
                return Err(format!("result should be {}", show(&expected)));
            }
            Ok(())
        })
    }

    /// The error's type is one of `types`.
    pub fn error_type(self, types: &'static [&'static str]) -> Case {
        self.check(move |o| match &o.result.error {
            Some(e) if types.contains(&e.kind.as_str()) => Ok(()),
            _ => Err(format!("error type should be one of {types:?}")),
        })
    }

    pub fn error_has(self, text: &'static str) -> Case {
        self.check(move |o| match &o.result.error {
            Some(e) if e.message.contains(text) => Ok(()),
            _ => Err(format!("the error message should contain {text:?}")),
        })
    }

    /// The result is a string that starts with `prefix`.
    pub fn result_starts(self, prefix: &'static str) -> Case {
        self.check(move |o| match o.result.result.as_str() {
            Some(s) if o.result.status.as_str() == "ok" && s.starts_with(prefix) => Ok(()),
            _ => Err(format!(
                "result should be a string starting with {prefix:?}"
            )),
        })
    }

    /// The result, as JSON text, contains each of `texts`.
    pub fn result_has(self, texts: &'static [&'static str]) -> Case {
        self.check(move |o| {
            let text = o.result.result.to_string();
            match texts.iter().find(|t| !text.contains(**t)) {
                Some(t) => Err(format!("the result should contain {t:?}")),
                None => Ok(()),
            }
        })
    }

    /// The attempt ended within `ms` (wall clock, measured by the suite).
    pub fn within_ms(self, ms: u64) -> Case {
        self.check(move |o| {
            if o.elapsed <= Duration::from_millis(ms) {
                Ok(())
            } else {
                Err(format!("took {:?}, more than {ms} ms", o.elapsed))
            }
        })
    }

    /// No request reached any fake API.
    pub fn no_api_hits(self) -> Case {
        self.api_hits(0)
    }

    pub fn api_hits(self, n: u64) -> Case {
        self.check(move |o| {
            if o.api_hits == n {
                Ok(())
            } else {
                Err(format!(
                    "{} request(s) reached the fake API, expected {n}",
                    o.api_hits
                ))
            }
        })
    }

    /// No request reached the sink.
    pub fn no_sink_hits(self) -> Case {
        self.check(|o| {
            if o.sink_hits == 0 {
                Ok(())
            } else {
                Err(format!(
                    "{} request(s) reached the sink: {:?}",
                    o.sink_hits,
                    String::from_utf8_lossy(&o.sink_bytes)
                ))
            }
        })
    }

    /// The recording fetcher of a WAT guest was called exactly `n` times.
    pub fn fetcher_calls(self, n: usize) -> Case {
        self.check(move |o| {
            if o.fetcher_calls == n {
                Ok(())
            } else {
                Err(format!(
                    "the fetcher was called {} times, expected {n}",
                    o.fetcher_calls
                ))
            }
        })
    }

    /// The follow-up run (see [`Case::then`]) is ok with `expected`.
    pub fn next_ok_with(self, expected: Value) -> Case {
        self.check(move |o| match &o.next {
            Some(r) if r.status.as_str() == "ok" && r.result == expected => Ok(()),
            Some(r) => Err(format!(
                "the next run should be ok with {}, got {}",
                show(&expected),
                summary(r)
            )),
            None => Err("the case has no next run".into()),
        })
    }
}

// ------------------------------------------------------------------------------- environment

/// The numbers the cases are written against (ports of the local servers).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    pub api: u16,
    pub sink: u16,
}

/// The limits an environment's policy sets, held to by every run.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub memory_bytes: u64,
    pub stdout_bytes: usize,
    pub stderr_bytes: usize,
    pub max_timeout_ms: u64,
}

/// One category's world: its executor, the local servers, the secrets in play.
pub struct Env {
    pub executor: Arc<Service>,
    pub caps: Caps,
    pub ports: Ports,
    pub api: Option<FakeApi>,
    pub sink: Option<Sink>,
    /// Values that must never appear in a result (nor reversed).
    pub secrets: Vec<&'static str>,
    /// Values that must never reach the sink (in any wire form).
    pub sink_forbidden: Vec<&'static str>,
    /// The credential files written for this environment, removed with it.
    secret_files: Vec<String>,
    /// Arguments a health check adds so that the environment's policy admits it, and the
    /// languages it may use (a gateway policy allows only some).
    health: (Value, &'static [&'static str]),
}

impl Drop for Env {
    fn drop(&mut self) {
        for file in &self.secret_files {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// The `[limits]` table every environment starts from: small, so that exhaustion is quick.
pub fn limits_table(overrides: &[(&str, u64)]) -> (String, Caps) {
    let mut limits: BTreeMap<&str, u64> = [
        ("default_timeout_ms", 3_000),
        ("max_timeout_ms", 10_000),
        ("fuel", 4_000_000_000),
        ("memory_bytes", 64 << 20),
        ("stdout_bytes", 64 << 10),
        ("stderr_bytes", 64 << 10),
        ("max_code_bytes", 64 << 10),
        ("max_input_bytes", 64 << 10),
        ("max_result_bytes", 64 << 10),
        ("max_concurrent_runs", 2),
    ]
    .into_iter()
    .collect();
    for (k, v) in overrides {
        limits.insert(k, *v);
    }
    let mut text = String::from("[limits]\n");
    for (k, v) in &limits {
        text.push_str(&format!("{k} = {v}\n"));
    }
    let caps = Caps {
        memory_bytes: limits["memory_bytes"],
        stdout_bytes: limits["stdout_bytes"] as usize,
        stderr_bytes: limits["stderr_bytes"] as usize,
        max_timeout_ms: limits["max_timeout_ms"],
    };
    (text, caps)
}

pub struct EnvSpec<'a> {
    pub limits: &'a [(&'a str, u64)],
    pub api: bool,
    pub sink: bool,
    /// The rest of the policy (`[network]`, `[credentials.*]`), given the ports.
    pub network: fn(Ports) -> String,
}

pub fn no_network(_: Ports) -> String {
    String::new()
}

impl Env {
    pub fn new(spec: EnvSpec<'_>) -> Env {
        Env::with_counters(spec, None)
    }

    /// [`Env::new`] with the rate-limit counters in `store` (instead of memory).
    pub fn with_counters(
        spec: EnvSpec<'_>,
        store: Option<Arc<dyn warden::policy::CounterStore>>,
    ) -> Env {
        let api = spec.api.then(FakeApi::start);
        let sink = spec.sink.then(Sink::start);
        let ports = Ports {
            api: api.as_ref().map_or(0, |a| a.port),
            sink: sink.as_ref().map_or(0, |s| s.port),
        };
        let (limits, caps) = limits_table(spec.limits);
        let policy = format!("version = 1\n{limits}\n{}", (spec.network)(ports));
        let mut service = crate::common::executor_with(&policy);
        if let Some(store) = store {
            service = service.with_counters(store).expect("the policy builds");
        }
        let executor = Arc::new(service);
        let secret_named = |s: &str| policy.contains(credential_section(s));
        let secrets: Vec<&'static str> = [API_TOKEN, KEY, SINK_SECRET]
            .into_iter()
            .filter(|s| secret_named(s))
            .collect();
        let sink_forbidden = secrets
            .iter()
            .copied()
            .filter(|s| *s != SINK_SECRET)
            .collect();
        let secret_files = policy
            .lines()
            .filter_map(|l| l.strip_prefix("file = \""))
            .filter_map(|l| l.strip_suffix('"'))
            .map(str::to_string)
            .collect();
        Env {
            executor,
            secret_files,
            caps,
            ports,
            api,
            sink,
            secrets,
            sink_forbidden,
            health: (Value::Null, &[JS, TS, PY]),
        }
    }

    /// An executor under a gateway (Intercept YAML) policy, without network or credentials;
    /// health checks run in `languages`, with `health_args` added so that the policy admits
    /// them.
    pub fn intercept(yaml: &str, health_args: Value, languages: &'static [&'static str]) -> Env {
        let (policy, _notes) =
            warden::policy::Policy::from_intercept(yaml, "escapes.yaml").unwrap();
        let (_, caps) = limits_table(&[]);
        Env {
            executor: Arc::new(
                warden::service::Service::new(policy, Some(crate::common::cache_dir())).unwrap(),
            ),
            secret_files: Vec::new(),
            caps,
            ports: Ports::default(),
            api: None,
            sink: None,
            secrets: Vec::new(),
            sink_forbidden: Vec::new(),
            health: (health_args, languages),
        }
    }

    fn api_hits(&self) -> u64 {
        self.api.as_ref().map_or(0, FakeApi::hits)
    }

    /// One `execute_code` call through the whole pipeline (argument checks, policy, run).
    pub async fn call(&self, args: Value, cancel: CancellationToken) -> ExecutionResult {
        crate::common::call_as(&self.executor, "local", "escapes", args, &cancel).await
    }

    pub async fn run(&self, language: &str, code: &str) -> ExecutionResult {
        self.call(
            json!({"language": language, "code": code}),
            CancellationToken::new(),
        )
        .await
    }
}

/// The policy section that loads `secret` (see [`credentials`]).
fn credential_section(secret: &str) -> &'static str {
    match secret {
        s if s == API_TOKEN => "[credentials.api]",
        s if s == KEY => "[credentials.key]",
        _ => "[credentials.sinkkey]",
    }
}

/// `[credentials.*]` for the fake API (an injected bearer token and a placeholder-only key)
/// and for the sink's /reflect-name (an injected token).
pub fn credentials(p: Ports, key_paths: &[&str]) -> String {
    let api = secret_file("api", API_TOKEN);
    let key = secret_file("key", KEY);
    let key_hosts: Vec<String> = key_paths
        .iter()
        .map(|path| format!("\"http://127.0.0.1:{}{path}\"", p.api))
        .collect();
    let sink_credential = if p.sink == 0 {
        String::new()
    } else {
        let sink = secret_file("sink", SINK_SECRET);
        format!(
            r#"
[credentials.sinkkey]
file = "{sink}"
hosts = ["http://127.0.0.1:{s}/reflect-name"]
inject = {{ header = "Authorization", value = "Bearer {{secret}}" }}
"#,
            s = p.sink
        )
    };
    format!(
        r#"
[credentials.api]
file = "{api}"
hosts = ["http://127.0.0.1:{a}/user", "http://127.0.0.1:{a}/echo", "http://127.0.0.1:{a}/gzip-echo"]
inject = {{ header = "Authorization", value = "Bearer {{secret}}" }}

[credentials.key]
file = "{key}"
hosts = [{key_hosts}]
{sink_credential}"#,
        a = p.api,
        key_hosts = key_hosts.join(", "),
    )
}

// -------------------------------------------------------------------------------------- sink

/// A plain HTTP server on 127.0.0.1 that records every byte it receives: the place an
/// exfiltration would land. `/reflect-name` answers with a header whose *name* is the bearer
/// token it was sent (a misbehaving API); anything else gets `200 ok`.
pub struct Sink {
    pub port: u16,
    received: Arc<Mutex<Vec<u8>>>,
    hits: Arc<AtomicU64>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicU64::new(0));
        let (r, h) = (received.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (r, h) = (r.clone(), h.clone());
                std::thread::spawn(move || serve_sink(stream, &r, &h));
            }
        });
        Sink {
            port,
            received,
            hits,
        }
    }

    fn take(&self) -> (u64, Vec<u8>) {
        let bytes = std::mem::take(&mut *self.received.lock().unwrap());
        (self.hits.swap(0, Ordering::SeqCst), bytes)
    }
}

fn serve_sink(mut stream: TcpStream, received: &Mutex<Vec<u8>>, hits: &AtomicU64) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => {
                received.lock().unwrap().extend_from_slice(&data);
                return;
            }
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
        if data.len() > 1 << 20 {
            break data.len();
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(16 << 20);
    while data.len() < head_end + length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    hits.fetch_add(1, Ordering::SeqCst);
    received.lock().unwrap().extend_from_slice(&data);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut extra = String::new();
    if path.starts_with("/reflect-name") {
        let token = header("authorization")
            .and_then(|a| a.rsplit(' ').next().map(str::to_string))
            .filter(|t| {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
            })
            .unwrap_or_else(|| "x-no-token".into());
        extra = format!("{token}: 1\r\n");
    }
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n{extra}\r\nok"
    );
}

// ----------------------------------------------------------------------------------- WAT guests

/// A hand-written core-module guest: `_start` runs `body`. The data segments are:
/// 1024 `{"ok":true,"result":7}` (22 bytes), 512 `{"ok":true,"result":` (20 bytes),
/// 2048 `hello\n`, plus the case's own.
#[derive(Clone)]
pub struct WatGuest {
    pub body: String,
    pub data: Vec<(u32, Vec<u8>)>,
    /// Whether the module exports its memory as `memory` (the ABI requires it).
    pub export_memory: bool,
    /// Give the run a recording fetcher (otherwise the guest's fetch is refused).
    pub fetcher: bool,
    pub fuel: u64,
    pub timeout: Duration,
    pub stdout_bytes: usize,
    pub max_result_bytes: usize,
}

impl WatGuest {
    pub fn new(body: impl Into<String>) -> WatGuest {
        WatGuest {
            body: body.into(),
            data: Vec::new(),
            export_memory: true,
            fetcher: false,
            fuel: 100_000_000,
            timeout: Duration::from_secs(5),
            stdout_bytes: 64,
            max_result_bytes: 4096,
        }
    }

    pub fn data(mut self, offset: u32, bytes: impl Into<Vec<u8>>) -> WatGuest {
        self.data.push((offset, bytes.into()));
        self
    }

    pub fn with_fetcher(mut self) -> WatGuest {
        self.fetcher = true;
        self
    }

    pub fn without_memory_export(mut self) -> WatGuest {
        self.export_memory = false;
        self
    }
}

/// Reports `{"ok":true,"result":7}`.
pub const REPORT_7: &str = "(call $set_result (i32.const 1024) (i32.const 22))";
/// Reads the last fetch's response frame and reports its JSON head as the result.
pub const REPORT_FETCH_HEAD: &str = "(call $report_fetch_head)";

const WAT_IMPORTS: &str = r#"
  (import "warden" "request_len" (func $request_len (param i32) (result i32)))
  (import "warden" "request_read" (func $request_read (param i32 i32)))
  (import "warden" "output" (func $output (param i32 i32 i32) (result i32)))
  (import "warden" "set_result" (func $set_result (param i32 i32)))
  (import "warden" "fetch" (func $fetch (param i32 i32) (result i32)))
  (import "warden" "fetch_read" (func $fetch_read (param i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "proc_raise" (func $proc_raise (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_send" (func $sock_send (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv" (func $sock_recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_shutdown" (func $sock_shutdown (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
"#;

fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

impl WatGuest {
    fn module(&self) -> String {
        let memory = if self.export_memory {
            r#"(memory (export "memory") 2)"#
        } else {
            "(memory 2)"
        };
        let mut data = String::new();
        for (offset, bytes) in [
            (1024u32, br#"{"ok":true,"result":7}"#.to_vec()),
            (512, br#"{"ok":true,"result":"#.to_vec()),
            (2048, b"hello\n".to_vec()),
        ]
        .iter()
        .chain(self.data.iter())
        {
            data.push_str(&format!(
                "(data (i32.const {offset}) \"{}\")\n",
                wat_bytes(bytes)
            ));
        }
        format!(
            r#"(module {WAT_IMPORTS}
  {memory}
  {data}
  (func $recurse (param i32) (result i32) (call $recurse (i32.add (local.get 0) (i32.const 1))))
  ;; The response frame goes to 16400: [u32 head length][head][body]. The outcome prefix is
  ;; copied over the length word's place so that the head follows it, then '}}' closes it.
  (func $report_fetch_head (local $h i32)
    (call $fetch_read (i32.const 16400))
    (local.set $h (i32.load (i32.const 16400)))
    (memory.copy (i32.const 16384) (i32.const 512) (i32.const 20))
    (i32.store8 (i32.add (i32.const 16404) (local.get $h)) (i32.const 125))
    (call $set_result (i32.const 16384) (i32.add (local.get $h) (i32.const 21))))
  (func (export "_start") {body}))"#,
            body = self.body
        )
    }
}

/// A fetcher that answers every request with `200 pong` and counts the calls.
#[derive(Default)]
struct RecordingFetcher {
    calls: AtomicUsize,
}

impl Fetcher for RecordingFetcher {
    fn fetch(&self, request: HttpRequest) -> Result<HttpResponse, warden::sandbox::FetchFailure> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(HttpResponse {
            status: 200,
            status_text: "OK".into(),
            url: request.url,
            redirected: false,
            headers: vec![("x-recorded".into(), "1".into())],
            body: b"pong".to_vec(),
        })
    }
}

/// Runs `guest` in a sandbox of its own, then a healthy guest in the same sandbox; returns the
/// attempt's result, the fetcher's call count, and whether the healthy guest still works.
fn run_wat(guest: &WatGuest) -> Result<(ExecutionResult, usize), String> {
    let wasm =
        wat::parse_str(guest.module()).map_err(|e| format!("the WAT does not build: {e}"))?;
    let program: &'static GuestProgram = Box::leak(Box::new(GuestProgram {
        name: "escape-attempt",
        form: GuestForm::CoreModule,
        wasm: GuestBytes::Plain(Box::leak(wasm.into_boxed_slice())),
    }));
    let healthy_wasm = wat::parse_str(WatGuest::new(REPORT_7).module()).unwrap();
    let healthy: &'static GuestProgram = Box::leak(Box::new(GuestProgram {
        name: "healthy",
        form: GuestForm::CoreModule,
        wasm: GuestBytes::Plain(Box::leak(healthy_wasm.into_boxed_slice())),
    }));
    let config = SandboxConfig {
        wasm_stack_bytes: 256 * 1024,
        max_memory_bytes: 4 << 20,
        max_concurrent_runs: 1,
        kept_instances: 0,
        spares_per_guest: 1,
        cache_dir: None,
    };
    let sandbox =
        Sandbox::new(&config, &[program, healthy]).map_err(|e| format!("sandbox: {e:#}"))?;
    let fetcher = Arc::new(RecordingFetcher::default());
    let request = |fuel: u64, timeout: Duration, stdout: usize, result: usize, fetch| RunRequest {
        source: "escape".into(),
        input_json: "null".into(),
        filename: "main.wat".into(),
        limits: RunLimits {
            fuel,
            memory_bytes: 4 << 20,
            stdout_bytes: stdout,
            stderr_bytes: stdout,
            max_result_bytes: result,
            deadline: Instant::now() + timeout,
        },
        cancel: CancelFlag::new(),
        fetch,
        workspace: Default::default(),
        tools: Default::default(),
        output: Default::default(),
    };
    let capability = if guest.fetcher {
        FetchCapability(Some(fetcher.clone() as Arc<dyn Fetcher>))
    } else {
        FetchCapability::default()
    };
    let result = sandbox.run(
        program,
        request(
            guest.fuel,
            guest.timeout,
            guest.stdout_bytes,
            guest.max_result_bytes,
            capability,
        ),
    );
    let after = sandbox.run(
        healthy,
        request(
            1_000_000,
            Duration::from_secs(5),
            64,
            64,
            FetchCapability::default(),
        ),
    );
    if after.status.as_str() != "ok" || after.result != json!(7) {
        return Err(format!(
            "the next guest in the same sandbox failed: {}",
            summary(&after)
        ));
    }
    Ok((result, fetcher.calls.load(Ordering::SeqCst)))
}

// ------------------------------------------------------------------------------------ runner

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every case except the known bugs (which are listed).
    Regular,
    /// Only the known bugs: passes once they are fixed.
    KnownBugs,
}

/// A trivial program per language and the value it must produce.
const HEALTH: [(&str, &str, &str); 3] = [
    (JS, "[1, 2, 3].map((x) => x * 2)", "[2,4,6]"),
    (TS, "const n: number = 21; n * 2", "42"),
    (PY, "sorted({'b': 2, 'a': 1})", r#"["a","b"]"#),
];

async fn healthy(env: &Env, language: &str) -> Result<(), String> {
    let (health_args, languages) = &env.health;
    let language = if languages.contains(&language) {
        language
    } else {
        languages[0]
    };
    let (_, code, expected) = HEALTH
        .iter()
        .find(|(l, _, _)| *l == language)
        .copied()
        .unwrap_or(HEALTH[0]);
    let mut args = json!({"language": language, "code": code});
    for (key, value) in health_args.as_object().into_iter().flatten() {
        args[key] = value.clone();
    }
    let r = env.call(args, CancellationToken::new()).await;
    let expected: Value = serde_json::from_str(expected).unwrap();
    if r.status.as_str() == "ok" && r.result == expected {
        Ok(())
    } else {
        Err(format!(
            "the next {language} request was affected: {}",
            summary(&r)
        ))
    }
}

fn language_of(case: &Case) -> &str {
    match &case.attempt {
        Attempt::Call { args, .. } => match args["language"].as_str() {
            Some(l) if [JS, TS, PY].contains(&l) => l,
            _ => JS,
        },
        _ => JS,
    }
}

async fn attempt(env: &Env, case: &Case) -> Result<Outcome, String> {
    let api_before = env.api_hits();
    if let Some(sink) = &env.sink {
        sink.take();
    }
    let started = Instant::now();
    let mut fetcher_calls = 0;
    let result = match &case.attempt {
        Attempt::Call { args, cancel_after } => {
            let token = CancellationToken::new();
            match cancel_after {
                None => env.call(args.clone(), token).await,
                Some(d) if d.is_zero() => {
                    token.cancel();
                    env.call(args.clone(), token).await
                }
                Some(d) => {
                    let canceller = token.clone();
                    let d = *d;
                    let (r, ()) = tokio::join!(env.call(args.clone(), token), async move {
                        tokio::time::sleep(d).await;
                        canceller.cancel();
                    });
                    r
                }
            }
        }
        Attempt::Wat(guest) => {
            let module = guest.clone();
            let (r, calls) = tokio::task::spawn_blocking(move || run_wat(&module))
                .await
                .map_err(|e| format!("the WAT run panicked: {e}"))??;
            fetcher_calls = calls;
            r
        }
        Attempt::Custom(run) => run(env).await,
    };
    let elapsed = started.elapsed();
    let next = match &case.then {
        Some((language, code)) => Some(env.run(language, code).await),
        None => None,
    };
    let api_hits = env.api_hits().saturating_sub(api_before);
    let (sink_hits, sink_bytes) = env.sink.as_ref().map_or((0, Vec::new()), Sink::take);
    Ok(Outcome {
        result,
        elapsed,
        next,
        api_hits,
        sink_hits,
        sink_bytes,
        fetcher_calls,
    })
}

/// The invariants every run is held to, whatever the case.
fn invariants(env: &Env, case: &Case, o: &Outcome) -> Vec<String> {
    let mut broken = Vec::new();
    let r = &o.result;
    let is_wat = matches!(case.attempt, Attempt::Wat(_));
    if !is_wat {
        if r.usage.memory_peak_bytes > env.caps.memory_bytes {
            broken.push(format!(
                "memory_peak_bytes {} exceeds the cap {}",
                r.usage.memory_peak_bytes, env.caps.memory_bytes
            ));
        }
        if r.stdout.len() > env.caps.stdout_bytes || r.stderr.len() > env.caps.stderr_bytes {
            broken.push(format!(
                "output exceeds its cap: stdout {} / {}, stderr {} / {}",
                r.stdout.len(),
                env.caps.stdout_bytes,
                r.stderr.len(),
                env.caps.stderr_bytes
            ));
        }
        let limit = Duration::from_millis(env.caps.max_timeout_ms) + Duration::from_secs(5);
        if matches!(case.attempt, Attempt::Call { .. }) && o.elapsed > limit {
            broken.push(format!(
                "the call took {:?}, beyond max_timeout_ms + 5 s",
                o.elapsed
            ));
        }
    }
    let text = serde_json::to_string(r).unwrap_or_default()
        + &o.next
            .as_ref()
            .map(|n| serde_json::to_string(n).unwrap_or_default())
            .unwrap_or_default();
    for secret in &env.secrets {
        if text.contains(secret) {
            broken.push(format!("the credential value {secret:?} is in the result"));
        }
        if text.contains(&reversed(secret)) {
            broken.push(format!(
                "the credential value {secret:?} entered the sandbox (its reverse is in the result)"
            ));
        }
    }
    let received = String::from_utf8_lossy(&o.sink_bytes);
    for secret in &env.sink_forbidden {
        for form in wire_forms(secret) {
            if received.contains(&form) {
                broken.push(format!(
                    "the credential value {secret:?} reached the sink (as {form:?})"
                ));
            }
        }
    }
    broken
}

/// Runs `cases` (per `mode`), one after another, against `env`. Every failing case is
/// reported by name with what it tried, what must hold and what happened; afterwards the
/// same executor must still run a trivial program in each language.
pub async fn run_table(category: &str, env: &Env, cases: Vec<Case>, mode: Mode) {
    let total = cases.len();
    let mut failures: Vec<String> = Vec::new();
    let mut known_bugs: Vec<String> = Vec::new();
    let mut ran = 0;
    let started = Instant::now();
    for case in &cases {
        if case.must.is_empty() {
            failures.push(format!(
                "[{category}] {}: the case does not say what must hold",
                case.name
            ));
        }
        match (mode, case.bug) {
            (Mode::Regular, Some(bug)) => {
                known_bugs.push(format!("{} ({bug})", case.name));
                continue;
            }
            (Mode::KnownBugs, None) => continue,
            _ => {}
        }
        ran += 1;
        let outcome = match tokio::time::timeout(HANG, attempt(env, case)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(why)) => {
                failures.push(format!(
                    "[{category}] {}\n    must: {}\n    failed: {why}",
                    case.name, case.must
                ));
                continue;
            }
            Err(_) => {
                failures.push(format!(
                    "[{category}] {}\n    must: {}\n    failed: the attempt did not end within {HANG:?}",
                    case.name, case.must
                ));
                continue;
            }
        };
        let mut broken = invariants(env, case, &outcome);
        for check in &case.checks {
            if let Err(why) = check(&outcome) {
                broken.push(why);
            }
        }
        if let Err(why) = healthy(env, language_of(case)).await {
            broken.push(why);
        }
        if !broken.is_empty() {
            failures.push(format!(
                "[{category}] {}\n    must: {}\n    failed: {}\n    got: {} (in {:?})",
                case.name,
                case.must,
                broken.join("; "),
                summary(&outcome.result),
                outcome.elapsed
            ));
        }
    }
    // The next request is unaffected, in every language.
    for (language, _, _) in HEALTH {
        if let Err(why) = healthy(env, language).await {
            failures.push(format!("[{category}] after the table: {why}"));
        }
    }
    eprintln!(
        "escapes/{category}: {total} cases, {ran} run in {:?}, {} failing, {} known bug(s)",
        started.elapsed(),
        failures.len(),
        known_bugs.len()
    );
    for bug in &known_bugs {
        eprintln!("  known bug (run with --ignored): {bug}");
    }
    assert!(
        failures.is_empty(),
        "{} escape case(s) of {category} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `s` as a JavaScript (and Python) string literal.
pub fn lit(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// JavaScript that fetches `url` with `init` and evaluates to `"sent: <status>"` or
/// `"refused: <reason>"`.
pub fn js_fetch(url: &str, init: &str) -> String {
    format!(
        "try {{ const r = await fetch({}, {init}); 'sent: ' + r.status }} catch (e) {{ 'refused: ' + e.message }}",
        lit(url)
    )
}

/// Python that fetches `url` with requests and evaluates to `"sent: <status>"` or
/// `"refused: <reason>"`.
pub fn py_fetch(url: &str) -> String {
    format!(
        "import requests\ntry:\n    out = 'sent: %d' % requests.get({}).status_code\nexcept Exception as e:\n    out = 'refused: ' + str(e)\nout",
        lit(url)
    )
}

/// Percent-encodes everything but unreserved characters (for a URL inside a query).
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
