//! The outbound side of one policy version: the HTTP client (whose resolver refuses blocked
//! networks), the allowlist, the caps and the credentials; and sending one prepared request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::allowlist::AllowList;
use super::blocked::check_address;
use super::config::NetworkPolicy;
use super::credentials::{CredentialBroker, Request};
use super::fetch::FetchError;
use crate::sandbox::{CancelFlag, HttpResponse};

/// How often a fetch in flight looks at the run's cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(20);

pub struct Outbound {
    client: reqwest::Client,
    pub(super) allow: AllowList,
    pub(super) network: NetworkPolicy,
    pub(super) credentials: Arc<dyn CredentialBroker>,
}

/// An address the resolver refused; found again in the client's error chain.
#[derive(Debug)]
struct Blocked(String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Blocked {}

/// Resolves names and refuses the answer if any address is in a blocked network. The client
/// connects only to what this returns, so the address checked is the address used. A name
/// never leads into a blocked network: only a request to the IP itself, allowed by a rule that
/// names it, does (see `RunFetcher::check`).
struct CheckedResolver;

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Box::new(Blocked(format!("cannot resolve {host}: {e}"))))?
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Blocked(format!("{host} has no address"))).into());
            }
            for addr in &addrs {
                let ip = addr.ip();
                check_address(ip, |_| false).map_err(|why| {
                    Box::new(Blocked(format!(
                        "{host} resolves to {ip}, in a blocked network ({why}); a name never \
                         leads there: put the IP in a rule and in the URL"
                    )))
                })?;
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// One hop's outcome.
pub(super) enum Hop {
    Response(HttpResponse),
    Redirect { status: u16, location: String },
}

/// What [`Outbound::send`] saw: the hop, its status and the body bytes received.
pub(super) struct Sent {
    pub hop: Hop,
    pub status: u16,
    pub received: usize,
}

impl Outbound {
    pub fn new(
        network: &NetworkPolicy,
        credentials: Arc<dyn CredentialBroker>,
    ) -> anyhow::Result<Outbound> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            // A proxy from the environment would connect to addresses nobody checked.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| anyhow::anyhow!("building the outbound HTTP client: {e}"))?;
        Ok(Outbound {
            client,
            allow: network.allow_list(),
            network: network.clone(),
            credentials,
        })
    }

    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    pub fn settings(&self) -> &NetworkPolicy {
        &self.network
    }

    pub fn credentials(&self) -> &dyn CredentialBroker {
        self.credentials.as_ref()
    }

    /// Sends one request (credentials in place) within `deadline` and the per-request cap,
    /// reading at most `max_response_bytes` of body, redacted. `guest_url` is the guest's
    /// view of the target (placeholders, not values), which the response reports.
    pub(super) fn send(
        &self,
        request: Request,
        guest_url: &Url,
        deadline: Instant,
        cancel: &CancelFlag,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Sent, FetchError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(FetchError::Failed("the run's deadline has passed".into()));
        }
        let timeout = remaining.min(Duration::from_millis(self.network.fetch_timeout_ms));
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            FetchError::Invalid(format!("\"{}\" is not an HTTP method", request.method))
        })?;
        let mut header_map = HeaderMap::new();
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                FetchError::Invalid(format!("\"{name}\" is not a valid header name"))
            })?;
            // The value may hold a secret: the message must not quote it.
            let value = HeaderValue::from_str(value).map_err(|_| {
                FetchError::Invalid(format!("the value of header {name} is not valid"))
            })?;
            header_map.append(name, value);
        }
        let outgoing = self
            .client
            .request(method, request.url)
            .headers(header_map)
            .body(request.body);
        let max = self.network.max_response_bytes;
        let credentials = self.credentials.as_ref();
        let guest_url = credentials.redact(guest_url.as_str());
        let work = async move {
            let mut response = outgoing.send().await.map_err(describe_error)?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(reqwest::header::LOCATION)
            {
                let location = String::from_utf8_lossy(location.as_bytes()).into_owned();
                return Ok(Sent {
                    hop: Hop::Redirect {
                        status: status.as_u16(),
                        location,
                    },
                    status: status.as_u16(),
                    received: 0,
                });
            }
            // Compressed bodies are decoded by the client (gzip, deflate); anything still
            // encoded could hide a secret from redaction.
            if let Some(encoding) = response.headers().get(reqwest::header::CONTENT_ENCODING)
                && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
            {
                return Err(FetchError::Failed(format!(
                    "the response is {}-encoded, which cannot be checked for secrets",
                    String::from_utf8_lossy(encoding.as_bytes())
                )));
            }
            if let Some(length) = response.content_length()
                && length > max
            {
                return Err(FetchError::Failed(format!(
                    "the response body ({length} bytes) exceeds max_response_bytes ({max})"
                )));
            }
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    let value = String::from_utf8_lossy(v.as_bytes());
                    // Names too: a server may reflect a secret into a header's name, and hyper
                    // hands names over lower-cased.
                    (
                        credentials.redact_case_folded(n.as_str()),
                        credentials.redact(&value),
                    )
                })
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(describe_error)? {
                if (body.len() + chunk.len()) as u64 > max {
                    return Err(FetchError::Failed(format!(
                        "the response body exceeds max_response_bytes ({max}); it was refused, not cut"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            let received = body.len();
            let body = credentials.redact_bytes(&body).into_owned();
            Ok(Sent {
                hop: Hop::Response(HttpResponse {
                    status: status.as_u16(),
                    status_text: status.canonical_reason().unwrap_or("").to_string(),
                    url: guest_url,
                    redirected: false,
                    headers,
                    body,
                }),
                status: status.as_u16(),
                received,
            })
        };
        let cancel = cancel.clone();
        let cancelled = async move {
            loop {
                tokio::time::sleep(CANCEL_POLL).await;
                if cancel.is_cancelled() {
                    break;
                }
            }
        };
        crate::sandbox::wait_on(runtime, async {
            tokio::select! {
                outcome = tokio::time::timeout(timeout, work) => outcome.unwrap_or_else(|_| {
                    Err(FetchError::Failed(format!("the request timed out after {} ms", timeout.as_millis())))
                }),
                _ = cancelled => Err(FetchError::Failed("the run was cancelled".into())),
            }
        })
    }
}

/// The client's error in words the guest can act on, without the URL (which may hold a
/// substituted secret).
fn describe_error(error: reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&error);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<Blocked>() {
            return FetchError::Failed(blocked.0.clone());
        }
        source = e.source();
    }
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    FetchError::Failed(if error.is_connect() {
        format!("could not connect ({text})")
    } else if error.is_timeout() {
        format!("the request timed out ({text})")
    } else {
        format!("the request failed ({text})")
    })
}
