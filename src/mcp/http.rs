//! Streamable HTTP: one Warden shared by many callers. Each request's bearer token names its
//! grant (checked before the MCP layer sees the request); `/healthz` and `/metrics` serve
//! operations. Both the 2025-11-25 session protocol and the stateless 2026-07-28 protocol are
//! served by rmcp's `StreamableHttpService`, which also checks `Host` (DNS rebinding) and
//! `Origin`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::{ApprovalStates, StateKeys, TaskStore, WardenServer};
use crate::auth::bearer_token;
use crate::policy::{FailMode, LOCAL_GRANT};
use crate::service::Service;

/// The authenticated caller of one HTTP request (a request extension the MCP layer reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant(pub String);

/// How `warden serve --http` listens.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    /// Serve `/metrics` here instead of on `addr`.
    pub metrics_addr: Option<SocketAddr>,
    /// Accepted `Host` values (besides loopback names when listening on loopback).
    pub allowed_hosts: Vec<String>,
    /// Accepted browser `Origin`s (none: requests carrying an Origin are refused).
    pub allowed_origins: Vec<String>,
    /// How long running calls may finish after SIGTERM/SIGINT before they are cancelled.
    pub grace: Duration,
    /// The keys sealing approval questions: replicas share a keyring.
    pub state_keys: StateKeys,
}

#[derive(Clone)]
struct AuthState {
    service: Arc<Service>,
    /// No grant has a token and the listener is on loopback: callers are the local user.
    open_locally: bool,
}

/// Serves until `shutdown` is cancelled, then stops accepting, lets calls in flight finish
/// within the grace period, and cancels the rest.
pub async fn serve_http(
    service: Arc<Service>,
    options: HttpOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_http_with(service, options, shutdown, |server| server).await
}

/// [`serve_http`] with each session's handler made from Warden's by `handler` (a test server
/// can add tools of its own around it).
pub async fn serve_http_with<H, F>(
    service: Arc<Service>,
    options: HttpOptions,
    shutdown: CancellationToken,
    handler: F,
) -> anyhow::Result<()>
where
    H: rmcp::ServerHandler + 'static,
    F: Fn(WardenServer) -> H + Send + Sync + 'static,
{
    let loopback = options.addr.ip().is_loopback();
    if !service.has_token_grants() && !loopback {
        anyhow::bail!(
            "serving on {} needs callers to authenticate: define [grants.<name>] with a token \
             in the policy (or listen on a loopback address)",
            options.addr
        );
    }
    let approvals = Arc::new(ApprovalStates::new(
        options.state_keys.clone(),
        service.counter_store(),
    )?);
    let tasks = TaskStore::new();
    let sessions_stop = CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default()
        .with_cancellation_token(sessions_stop.clone())
        .enforce_origin_validation();
    let mut hosts: Vec<String> = options.allowed_hosts.clone();
    let mut origins: Vec<String> = options.allowed_origins.clone();
    if loopback {
        // A local server is reachable from local pages: accept loopback hosts and origins
        // (any port), nothing else unless configured (DNS-rebinding protection).
        hosts.extend(["localhost", "127.0.0.1", "::1", "[::1]"].map(String::from));
        for scheme in ["http", "https"] {
            for host in ["localhost", "127.0.0.1", "[::1]"] {
                origins.push(format!("{scheme}://{host}:*"));
            }
        }
    }
    if !hosts.is_empty() {
        config = config.with_allowed_hosts(hosts);
    }
    if !origins.is_empty() {
        config = config.with_allowed_origins(origins);
    }
    let session_service = service.clone();
    let session_tasks = tasks.clone();
    let mcp = StreamableHttpService::new(
        move || {
            Ok(handler(WardenServer::new(
                session_service.clone(),
                approvals.clone(),
                session_tasks.clone(),
            )))
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let auth = AuthState {
        service: service.clone(),
        open_locally: !service.has_token_grants(),
    };
    let mut app = Router::new()
        .nest_service("/mcp", mcp)
        .layer(axum::middleware::from_fn_with_state(auth, authenticate))
        .route(
            "/healthz",
            axum::routing::get(healthz).with_state(service.clone()),
        );
    let metrics_router = Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(service.clone());
    match options.metrics_addr {
        None => app = app.merge(metrics_router),
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics address {addr}"))?;
            tracing::info!("serving /metrics on http://{}", listener.local_addr()?);
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let served = axum::serve(listener, metrics_router)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!("the metrics listener failed: {e}");
                }
            });
        }
    }
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .with_context(|| format!("binding {}", options.addr))?;
    let local = listener.local_addr()?;
    tracing::info!(
        languages = ?service.languages(),
        "serving MCP on http://{local}/mcp"
    );
    // The line tests and scripts wait for.
    println!("listening on http://{local}/mcp");

    let draining = CancellationToken::new();
    let drain_signal = draining.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { drain_signal.cancelled().await });
    let server = tokio::spawn(async move { server.await });

    shutdown.cancelled().await;
    tracing::info!(
        in_flight = service.calls_in_flight(),
        grace_ms = options.grace.as_millis() as u64,
        "shutting down: no new connections; calls in flight may finish"
    );
    draining.cancel();
    // Tasks live in this process only: their results would be lost with it, so they stop now
    // rather than hold the grace period.
    tasks.stop_all();
    let deadline = tokio::time::Instant::now() + options.grace;
    while service.calls_in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if service.calls_in_flight() > 0 {
        tracing::warn!(
            in_flight = service.calls_in_flight(),
            "grace period over: cancelling the calls still running"
        );
    }
    sessions_stop.cancel();
    // Cancelled calls stop at their next fuel yield; give their answers a moment to go out.
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    Ok(())
}

/// Checks the bearer token and tags the request with its grant; anything else gets 401 with
/// `WWW-Authenticate`, and the attempt is audited.
async fn authenticate(
    State(state): State<AuthState>,
    mut request: Request,
    next: Next,
) -> Response {
    if state.open_locally {
        request
            .extensions_mut()
            .insert(Grant(LOCAL_GRANT.to_string()));
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let (grant, failure) = match presented {
        None => (None, "missing bearer token"),
        Some(token) => match state.service.authenticate(token) {
            Some(grant) => (Some(grant), ""),
            None => (None, "invalid bearer token"),
        },
    };
    match grant {
        Some(grant) => {
            request.extensions_mut().insert(Grant(grant));
            next.run(request).await
        }
        None => {
            state
                .service
                .record_auth_refusal(failure, request.uri().path());
            tracing::info!(reason = failure, "refused an unauthenticated request");
            let challenge = if presented.is_some() {
                r#"Bearer realm="warden", error="invalid_token""#
            } else {
                r#"Bearer realm="warden""#
            };
            let mut response = (
                StatusCode::UNAUTHORIZED,
                format!(
                    "{failure}: send `Authorization: Bearer <token>` for a grant of this server\n"
                ),
            )
                .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
            response
        }
    }
}

/// 200 and `ok` when the rate-limit store answers; when it does not, 503 and `unavailable` if
/// the store fails closed (every limited call would be refused: a load balancer should send
/// calls elsewhere), 200 and `degraded` if it fails open. The first line names the store.
async fn healthz(State(service): State<Arc<Service>>) -> Response {
    // A shared store's check is a network round trip with a timeout: off the reactor.
    let checked = tokio::task::spawn_blocking(move || {
        let mode = service.counter_fail_mode();
        (service.counter_health(), mode)
    })
    .await;
    let Ok((health, mode)) = checked else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the health check failed\n",
        )
            .into_response();
    };
    let store = format!("counters: {} {}", health.kind, health.location);
    match health.unavailable {
        None => format!("{store}: ok\nok\n").into_response(),
        Some(why) if mode == FailMode::Open => {
            format!("{store}: {why} (fail mode open)\ndegraded\n").into_response()
        }
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{store}: {why} (fail mode closed)\nunavailable\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    let mut response = service.metrics_text().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
