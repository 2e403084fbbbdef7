//! The outbound client behind a guest's `fetch`: every request (and every redirect hop) is
//! checked against the allowlist, resolved and checked against the blocked networks, given
//! its credentials, sent with caps on size, count and time, audited, and its response
//! redacted before the guest sees it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::{Host, Url};

use super::allowlist::AllowList;
use super::blocked::check_address;
use crate::audit::{AuditLog, FetchEvent};
use crate::policy::NetworkPolicy;
use crate::policy::network::{HOST_CONTROLLED_HEADERS, allow_list};
use crate::sandbox::{CancelFlag, Fetcher, HttpRequest, HttpResponse};
use crate::secrets::{Credentials, OutgoingRequest, Redactor};

/// How often a fetch in flight looks at the run's cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// The server's outbound side for one policy version: the HTTP client (whose resolver refuses
/// blocked addresses), the allowlist, the caps and the credentials.
pub struct Outbound {
    client: reqwest::Client,
    allow: AllowList,
    network: NetworkPolicy,
    credentials: Arc<Credentials>,
    redactor: Redactor,
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
/// names it, does (see [`RunFetcher::check`]).
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

impl Outbound {
    pub fn new(network: &NetworkPolicy, credentials: Arc<Credentials>) -> anyhow::Result<Outbound> {
        let allow = allow_list(&network.allow);
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            // A proxy from the environment would connect to addresses nobody checked.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| anyhow::anyhow!("building the outbound HTTP client: {e}"))?;
        let redactor = credentials.redactor();
        Ok(Outbound {
            client,
            allow,
            network: network.clone(),
            credentials,
            redactor,
        })
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    pub fn allow_list(&self) -> &AllowList {
        &self.allow
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }
}

/// Who is fetching, for the audit log.
#[derive(Clone, Default)]
pub struct FetchAudit {
    pub log: Option<Arc<AuditLog>>,
    pub request_id: String,
    pub grant: String,
    pub session: String,
}

/// What one run may do with the outbound side.
pub struct RunFetcher {
    outbound: Arc<Outbound>,
    /// A grant's narrowing of the hosts (a request must pass both lists).
    pub grant_hosts: Option<AllowList>,
    /// A grant's narrowing of the credentials.
    pub grant_credentials: Option<Vec<String>>,
    pub deadline: Instant,
    pub cancel: CancelFlag,
    pub runtime: tokio::runtime::Handle,
    pub audit: FetchAudit,
    sent: AtomicU32,
}

impl RunFetcher {
    pub fn new(
        outbound: Arc<Outbound>,
        deadline: Instant,
        cancel: CancelFlag,
        runtime: tokio::runtime::Handle,
    ) -> RunFetcher {
        RunFetcher {
            outbound,
            grant_hosts: None,
            grant_credentials: None,
            deadline,
            cancel,
            runtime,
            audit: FetchAudit::default(),
            sent: AtomicU32::new(0),
        }
    }

    fn record(&self, event: FetchEvent<'_>) {
        if let Some(log) = &self.audit.log
            && let Err(e) = log.record(&event)
        {
            tracing::error!("the audit log cannot be written: {e}");
        }
    }
}

/// `scheme://host:port/path`, the part of a URL that may be logged.
fn loggable(url: &Url) -> String {
    let host = match url.host() {
        Some(Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(host) => host.to_string(),
        None => String::new(),
    };
    let port = url.port_or_known_default().unwrap_or(0);
    format!("{}://{host}:{port}{}", url.scheme(), url.path())
}

/// One hop's outcome.
enum Hop {
    Response(HttpResponse),
    Redirect { status: u16, location: String },
}

impl Fetcher for RunFetcher {
    fn fetch(&self, request: HttpRequest) -> Result<HttpResponse, String> {
        let redactor = &self.outbound.redactor;
        let result = self.fetch_unredacted(request);
        // Refusal messages quote only what the guest wrote, but keep the rule: nothing that
        // reaches the guest skips redaction.
        result.map_err(|e| redactor.redact(&e))
    }
}

impl RunFetcher {
    fn fetch_unredacted(&self, request: HttpRequest) -> Result<HttpResponse, String> {
        let network = &self.outbound.network;
        let method = request.method.to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!("\"{}\" is not an HTTP method", request.method));
        }
        let mut url = Url::parse(&request.url)
            .map_err(|e| format!("invalid URL \"{}\": {e}", request.url))?;
        if request.body.len() as u64 > network.max_request_bytes {
            return Err(format!(
                "the request body ({} bytes) exceeds max_request_bytes ({})",
                request.body.len(),
                network.max_request_bytes
            ));
        }
        for (name, value) in &request.headers {
            let lower = name.to_ascii_lowercase();
            if HOST_CONTROLLED_HEADERS.contains(&lower.as_str()) {
                return Err(format!(
                    "the {name} header is set by the host, not the code"
                ));
            }
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("\"{name}\" is not a valid header name"))?;
            HeaderValue::from_str(value)
                .map_err(|_| format!("the value of header {name} is not valid"))?;
        }
        let origin = url.origin();
        let mut method = method;
        let mut headers = request.headers;
        let mut body = request.body;
        let mut redirects = 0;
        loop {
            let carry = url.origin() == origin;
            if !carry {
                // Nothing that could carry a credential crosses to another origin.
                headers.retain(|(name, value)| {
                    let lower = name.to_ascii_lowercase();
                    !matches!(
                        lower.as_str(),
                        "authorization" | "cookie" | "proxy-authorization"
                    ) && !value.contains("__WARDEN_SECRET_")
                });
            }
            match self.hop(&method, &url, &headers, &body, carry)? {
                Hop::Response(mut response) => {
                    response.redirected = redirects > 0;
                    return Ok(response);
                }
                Hop::Redirect { status, location } => {
                    // A server may echo a substituted value into the Location: turned back
                    // into its placeholder, it is re-checked like one (scope, origin).
                    let location = self.outbound.redactor.redact(&location);
                    redirects += 1;
                    if redirects > network.max_redirects {
                        return Err(format!(
                            "too many redirects (more than max_redirects = {})",
                            network.max_redirects
                        ));
                    }
                    let next = url.join(&location).map_err(|e| {
                        format!("the redirect to \"{location}\" is not a valid URL: {e}")
                    })?;
                    // As browsers do: 303, and 301/302 after a POST, continue as a GET.
                    if status == 303 || (matches!(status, 301 | 302) && method == "POST") {
                        if method != "HEAD" {
                            method = "GET".into();
                        }
                        body.clear();
                        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
                    }
                    url = next;
                }
            }
        }
    }

    /// Checks and sends one request; a redirect is returned for the caller to follow.
    fn hop(
        &self,
        method: &str,
        url: &Url,
        headers: &[(String, String)],
        body: &[u8],
        carry: bool,
    ) -> Result<Hop, String> {
        let network = &self.outbound.network;
        let mut event = FetchEvent::new(
            &self.audit.request_id,
            &self.audit.grant,
            &self.audit.session,
            method,
        );
        event.target = self.outbound.redactor.redact(&loggable(url));
        event.request_bytes = body.len();
        let refuse = |event: &mut FetchEvent<'_>, why: String| -> String {
            event.decision = "refused";
            event.reason = Some(self.outbound.redactor.redact(&why));
            why
        };
        let checked = self.check(method, url, headers, body, carry);
        let prepared = match checked {
            Ok(prepared) => prepared,
            Err(why) => {
                let why = refuse(&mut event, why);
                self.record(event);
                return Err(why);
            }
        };
        if prepared.body.len() as u64 > network.max_request_bytes {
            let why = refuse(
                &mut event,
                format!(
                    "the request body with credentials substituted ({} bytes) exceeds max_request_bytes ({})",
                    prepared.body.len(),
                    network.max_request_bytes
                ),
            );
            self.record(event);
            return Err(why);
        }
        let used = prepared.used.clone();
        event.credentials = &used;
        let count = self
            .sent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(1))
            })
            .map_or(u32::MAX, |n| n.saturating_add(1));
        if count > network.max_fetches {
            let why = refuse(
                &mut event,
                format!(
                    "this run has made its {} fetches (max_fetches)",
                    network.max_fetches
                ),
            );
            self.record(event);
            return Err(why);
        }
        let outcome = self.send(method, url, prepared);
        match &outcome {
            Ok((_, status, bytes)) => {
                event.decision = "allow";
                event.status = Some(*status);
                event.response_bytes = *bytes;
            }
            Err(why) => {
                event.decision = "failed";
                event.reason = Some(self.outbound.redactor.redact(why));
            }
        }
        self.record(event);
        outcome.map(|(hop, _, _)| hop)
    }

    /// Sends one prepared request within the run's remaining time (and the per-request cap),
    /// reading at most `max_response_bytes` of body. `url` is the guest's view of the target
    /// (placeholders, not values), which is what the response reports.
    fn send(
        &self,
        method: &str,
        url: &Url,
        prepared: crate::secrets::Prepared,
    ) -> Result<(Hop, u16, usize), String> {
        let network = &self.outbound.network;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err("the run's deadline has passed".into());
        }
        let timeout = remaining.min(Duration::from_millis(network.fetch_timeout_ms));
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("\"{method}\" is not an HTTP method"))?;
        let mut header_map = HeaderMap::new();
        for (name, value) in &prepared.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("\"{name}\" is not a valid header name"))?;
            // The value may hold a secret: the message must not quote it.
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("the value of header {name} is not valid"))?;
            header_map.append(name, value);
        }
        let request = self
            .outbound
            .client
            .request(method, prepared.url)
            .headers(header_map)
            .body(prepared.body);
        let max = network.max_response_bytes;
        let redactor = &self.outbound.redactor;
        let guest_url = redactor.redact(url.as_str());
        let work = async move {
            let mut response = request.send().await.map_err(describe_error)?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = response.headers().get(reqwest::header::LOCATION)
            {
                let location = String::from_utf8_lossy(location.as_bytes()).into_owned();
                return Ok((
                    Hop::Redirect {
                        status: status.as_u16(),
                        location,
                    },
                    status.as_u16(),
                    0,
                ));
            }
            // Compressed bodies are decoded by the client (gzip, deflate); anything still
            // encoded could hide a secret from redaction.
            if let Some(encoding) = response.headers().get(reqwest::header::CONTENT_ENCODING)
                && !encoding.as_bytes().eq_ignore_ascii_case(b"identity")
            {
                return Err(format!(
                    "the response is {}-encoded, which cannot be checked for secrets",
                    String::from_utf8_lossy(encoding.as_bytes())
                ));
            }
            if let Some(length) = response.content_length()
                && length > max
            {
                return Err(format!(
                    "the response body ({length} bytes) exceeds max_response_bytes ({max})"
                ));
            }
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    let value = String::from_utf8_lossy(v.as_bytes());
                    // Names too: a server may reflect a secret into a header's name, and hyper
                    // hands names over lower-cased.
                    (
                        redactor.redact_case_folded(n.as_str()),
                        redactor.redact(&value),
                    )
                })
                .collect();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(describe_error)? {
                if (body.len() + chunk.len()) as u64 > max {
                    return Err(format!(
                        "the response body exceeds max_response_bytes ({max}); it was refused, not cut"
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            let received = body.len();
            let body = redactor.redact_bytes(&body).into_owned();
            Ok((
                Hop::Response(HttpResponse {
                    status: status.as_u16(),
                    status_text: status.canonical_reason().unwrap_or("").to_string(),
                    url: guest_url,
                    redirected: false,
                    headers,
                    body,
                }),
                status.as_u16(),
                received,
            ))
        };
        let cancel = self.cancel.clone();
        let cancelled = async move {
            loop {
                tokio::time::sleep(CANCEL_POLL).await;
                if cancel.is_cancelled() {
                    break;
                }
            }
        };
        self.runtime.block_on(async {
            tokio::select! {
                outcome = tokio::time::timeout(timeout, work) => outcome.unwrap_or_else(|_| {
                    Err(format!("the request timed out after {} ms", timeout.as_millis()))
                }),
                _ = cancelled => Err("the run was cancelled".into()),
            }
        })
    }

    /// The policy checks of one hop, and the request with its credentials.
    fn check(
        &self,
        method: &str,
        url: &Url,
        headers: &[(String, String)],
        body: &[u8],
        carry: bool,
    ) -> Result<crate::secrets::Prepared, String> {
        let allowed_by = self.outbound.allow.matching(method, url).map_err(|r| r.0)?;
        let granted_by = match &self.grant_hosts {
            Some(grant_hosts) => Some(
                grant_hosts
                    .matching(method, url)
                    .map_err(|r| format!("{} (for this caller)", r.0))?,
            ),
            None => None,
        };
        let literal = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal {
            // Only a rule that allows this very request may open a blocked address, and it
            // must name the address as written (`[::ffff:127.0.0.1]` is not 127.0.0.1).
            let named = |ip: IpAddr| {
                allowed_by.iter().any(|r| r.names_ip(ip))
                    && granted_by
                        .as_ref()
                        .is_none_or(|g| g.iter().any(|r| r.names_ip(ip)))
            };
            check_address(ip, named)?;
        }
        self.outbound.credentials.prepare(
            &OutgoingRequest {
                method: method.to_string(),
                url: url.clone(),
                headers: headers.to_vec(),
                body: body.to_vec(),
            },
            self.grant_credentials.as_deref(),
            carry,
        )
    }
}

/// The client's error in words the guest can act on, without the URL (which may hold a
/// substituted secret).
fn describe_error(error: reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&error);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<Blocked>() {
            return blocked.0.clone();
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
    if error.is_connect() {
        format!("could not connect ({text})")
    } else if error.is_timeout() {
        format!("the request timed out ({text})")
    } else {
        format!("the request failed ({text})")
    }
}
