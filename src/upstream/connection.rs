//! One upstream server: connected on first use (or at start), reconnected after it fails, its
//! tool list cached until it says the list changed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResponse, ClientConfig, Implementation, Tool};
use rmcp::service::{NotificationContext, Peer, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::Value;
use tokio::sync::Mutex;

use super::UpstreamError;
use super::settings::{Endpoint, UpstreamSpec};

/// How long connecting (start, handshake, first list) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Upstream {
    name: String,
    spec: UpstreamSpec,
    /// Injected credential headers (secret values: never logged, never shown).
    headers: Vec<(String, String)>,
    state: Mutex<Option<Connection>>,
    /// Bumped by every new connection, so that a failure of an old one does not drop a new one.
    generation: AtomicU64,
}

struct Connection {
    service: RunningService<RoleClient, Watcher>,
    generation: u64,
    tools: Option<Arc<Vec<Tool>>>,
    stale: Arc<AtomicBool>,
}

/// Warden's client side: it follows `tools/list_changed` and offers the upstream nothing else
/// (no sampling, elicitation or roots), so an upstream cannot call back into a run.
#[derive(Clone)]
struct Watcher {
    stale: Arc<AtomicBool>,
}

impl ClientHandler for Watcher {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.stale.store(true, Ordering::Release);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            Default::default(),
            Implementation::new("warden", env!("CARGO_PKG_VERSION")),
        )
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("headers", &self.headers.len())
            .finish()
    }
}

impl Upstream {
    pub fn new(name: &str, spec: UpstreamSpec, headers: Vec<(String, String)>) -> Upstream {
        Upstream {
            name: name.to_string(),
            spec,
            headers,
            state: Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn spec(&self) -> &UpstreamSpec {
        &self.spec
    }

    /// The tools listed last, without waiting or connecting (`None`: not listed yet, or busy).
    pub fn cached_tools(&self) -> Option<Arc<Vec<Tool>>> {
        self.state.try_lock().ok()?.as_ref()?.tools.clone()
    }

    /// The server's tools, listed again once it said they changed (or after a reconnect).
    pub async fn tools(&self) -> Result<Arc<Vec<Tool>>, UpstreamError> {
        let mut state = self.state.lock().await;
        let connection = self.connected(&mut state).await?;
        if connection.stale.swap(false, Ordering::AcqRel) {
            connection.tools = None;
        }
        if let Some(tools) = &connection.tools {
            return Ok(tools.clone());
        }
        let listed =
            tokio::time::timeout(CONNECT_TIMEOUT, connection.service.peer().list_all_tools())
                .await
                .map_err(|_| self.failed("listing its tools timed out"))?;
        match listed {
            Ok(tools) => {
                let tools = Arc::new(tools);
                connection.tools = Some(tools.clone());
                Ok(tools)
            }
            Err(e) => {
                let error = self.failed(format!("listing its tools failed: {e}"));
                *state = None;
                Err(error)
            }
        }
    }

    /// Calls `tool`, for at most `timeout`. A connection that broke is dropped, so that the
    /// next call connects again.
    pub async fn call(
        &self,
        tool: &str,
        arguments: serde_json::Map<String, Value>,
        timeout: Duration,
    ) -> Result<CallToolResponse, UpstreamError> {
        let (peer, generation) = {
            let mut state = self.state.lock().await;
            let connection = self.connected(&mut state).await?;
            (connection.service.peer().clone(), connection.generation)
        };
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        // Dropping the call on timeout sends the upstream a cancellation.
        match tokio::time::timeout(timeout, call_once(&peer, params)).await {
            Err(_) => Err(UpstreamError::Timeout {
                server: self.name.clone(),
                ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(ServiceError::McpError(e))) => Err(self.failed(format!(
                "it answered with an error: {} (code {})",
                e.message, e.code.0
            ))),
            Ok(Err(e)) => {
                self.forget(generation).await;
                Err(self.failed(e.to_string()))
            }
        }
    }

    /// Connects, unless connected already (and still alive).
    async fn connected<'s>(
        &self,
        state: &'s mut Option<Connection>,
    ) -> Result<&'s mut Connection, UpstreamError> {
        if state
            .as_ref()
            .is_some_and(|c| c.service.is_transport_closed() || c.service.is_closed())
        {
            *state = None;
        }
        if state.is_none() {
            let stale = Arc::new(AtomicBool::new(false));
            let watcher = Watcher {
                stale: stale.clone(),
            };
            let service = tokio::time::timeout(CONNECT_TIMEOUT, self.connect(watcher))
                .await
                .map_err(|_| self.unreachable("connecting timed out"))??;
            tracing::info!(upstream = %self.name, "connected to the upstream server");
            *state = Some(Connection {
                service,
                generation: self.generation.fetch_add(1, Ordering::AcqRel) + 1,
                tools: None,
                stale,
            });
        }
        state
            .as_mut()
            .ok_or_else(|| self.unreachable("no connection"))
    }

    async fn connect(
        &self,
        watcher: Watcher,
    ) -> Result<RunningService<RoleClient, Watcher>, UpstreamError> {
        match self.spec.endpoint() {
            Some(Endpoint::Command { program, args, env }) => {
                let mut command = tokio::process::Command::new(program);
                command.args(args).env_clear().kill_on_drop(true);
                if let Some(path) = std::env::var_os("PATH") {
                    command.env("PATH", path);
                }
                command.envs(env);
                let (transport, stderr) = TokioChildProcess::builder(command)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|e| self.unreachable(format!("cannot start {program}: {e}")))?;
                if let Some(stderr) = stderr {
                    tokio::spawn(log_stderr(self.name.clone(), stderr));
                }
                watcher
                    .serve(transport)
                    .await
                    .map_err(|e| self.unreachable(e.to_string()))
            }
            Some(Endpoint::Http { url }) => {
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
                for (name, value) in &self.headers {
                    let (Ok(name), Ok(value)) = (
                        http::HeaderName::from_bytes(name.as_bytes()),
                        http::HeaderValue::from_str(value),
                    ) else {
                        return Err(self.unreachable(format!("header {name} is not valid")));
                    };
                    config.custom_headers.insert(name, value);
                }
                let transport = StreamableHttpClientTransport::from_config(config);
                watcher
                    .serve(transport)
                    .await
                    .map_err(|e| self.unreachable(e.to_string()))
            }
            None => Err(self.unreachable("it has neither a command nor a url")),
        }
    }

    async fn forget(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state.as_ref().is_some_and(|c| c.generation == generation) {
            *state = None;
        }
    }

    fn unreachable(&self, reason: impl Into<String>) -> UpstreamError {
        UpstreamError::Unreachable {
            server: self.name.clone(),
            reason: reason.into(),
        }
    }

    fn failed(&self, reason: impl Into<String>) -> UpstreamError {
        UpstreamError::Failed {
            server: self.name.clone(),
            reason: reason.into(),
        }
    }
}

async fn call_once(
    peer: &Peer<RoleClient>,
    params: CallToolRequestParams,
) -> Result<CallToolResponse, ServiceError> {
    peer.call_tool_once(params).await
}

/// An upstream's stderr goes to the log, a line at a time (at most 4 KiB of each).
async fn log_stderr(name: String, stderr: tokio::process::ChildStderr) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let end = line.floor_char_boundary(4096);
        tracing::debug!(upstream = %name, "stderr: {}", &line[..end]);
    }
}
