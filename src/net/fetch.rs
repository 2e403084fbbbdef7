//! A run's `fetch`: every request (and every redirect hop) is checked against the allowlist
//! (the policy's and the caller's), resolved and checked against the blocked networks, given
//! its credentials, sent with caps on size, count and time, audited, and its response
//! redacted before the guest sees it.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use url::{Host, Url};

use super::allowlist::AllowList;
use super::blocked::check_address;
use super::client::{Hop, Outbound};
use super::credentials::{Request, WithCredentials};
use super::headers;
use crate::audit::{AuditLog, FetchEvent};
use crate::sandbox::{CancelFlag, Fetcher, HttpRequest, HttpResponse};

/// Why a fetch produced no response. The message is what the guest's fetch rejects with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The request as the guest wrote it is not one (a bad URL, method or header).
    #[error("{0}")]
    Invalid(String),
    /// The policy refused it: nothing was sent.
    #[error("{0}")]
    Refused(String),
    /// It was sent (or sending was tried) and no usable response came back.
    #[error("{0}")]
    Failed(String),
}

impl FetchError {
    fn map_message(self, f: impl Fn(&str) -> String) -> FetchError {
        match self {
            FetchError::Invalid(m) => FetchError::Invalid(f(&m)),
            FetchError::Refused(m) => FetchError::Refused(f(&m)),
            FetchError::Failed(m) => FetchError::Failed(f(&m)),
        }
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

/// What one run may do with the outbound side: the policy's, narrowed by the caller's grant.
pub struct RunFetcher {
    outbound: Arc<Outbound>,
    /// A grant's narrowing of the hosts (a request must pass both lists).
    grant_hosts: Option<AllowList>,
    /// A grant's narrowing of the credentials.
    grant_credentials: Option<Vec<String>>,
    deadline: Instant,
    cancel: CancelFlag,
    runtime: tokio::runtime::Handle,
    audit: FetchAudit,
    sent: AtomicU32,
}

/// The caller's narrowing of the outbound side.
#[derive(Debug, Clone, Default)]
pub struct Narrowing {
    pub hosts: Option<AllowList>,
    pub credentials: Option<Vec<String>>,
}

impl RunFetcher {
    pub fn new(
        outbound: Arc<Outbound>,
        narrowing: Narrowing,
        deadline: Instant,
        cancel: CancelFlag,
        audit: FetchAudit,
        runtime: tokio::runtime::Handle,
    ) -> RunFetcher {
        RunFetcher {
            outbound,
            grant_hosts: narrowing.hosts,
            grant_credentials: narrowing.credentials,
            deadline,
            cancel,
            runtime,
            audit,
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

impl Fetcher for RunFetcher {
    fn fetch(&self, request: HttpRequest) -> Result<HttpResponse, crate::sandbox::FetchFailure> {
        let credentials = self.outbound.credentials();
        // Refusal messages quote only what the guest wrote, but keep the rule: nothing that
        // reaches the guest skips redaction.
        self.follow(request)
            .map_err(|e| Box::new(e.map_message(|m| credentials.redact(m))) as _)
    }
}

impl RunFetcher {
    /// Parses the guest's request and follows it hop by hop.
    fn follow(&self, request: HttpRequest) -> Result<HttpResponse, FetchError> {
        let network = &self.outbound.network;
        let method = request.method.to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(FetchError::Invalid(format!(
                "\"{}\" is not an HTTP method",
                request.method
            )));
        }
        let url = Url::parse(&request.url)
            .map_err(|e| FetchError::Invalid(format!("invalid URL \"{}\": {e}", request.url)))?;
        if request.body.len() as u64 > network.max_request_bytes {
            return Err(FetchError::Refused(format!(
                "the request body ({} bytes) exceeds max_request_bytes ({})",
                request.body.len(),
                network.max_request_bytes
            )));
        }
        headers::check_guest_headers(&request.headers).map_err(FetchError::Invalid)?;
        let origin = url.origin();
        let mut next = Request {
            method,
            url,
            headers: request.headers,
            body: request.body,
        };
        let mut redirects = 0;
        loop {
            let carry = next.url.origin() == origin;
            if !carry {
                // Nothing that could carry a credential crosses to another origin.
                let credentials = self.outbound.credentials();
                next.headers.retain(|(name, value)| {
                    !headers::carries_authority(name) && !credentials.refers_to_credential(value)
                });
            }
            match self.hop(&next, carry)? {
                Hop::Response(mut response) => {
                    response.redirected = redirects > 0;
                    return Ok(response);
                }
                Hop::Redirect { status, location } => {
                    // A server may echo a substituted value into the Location: turned back
                    // into its placeholder, it is re-checked like one (scope, origin).
                    let location = self.outbound.credentials().redact(&location);
                    redirects += 1;
                    if redirects > network.max_redirects {
                        return Err(FetchError::Refused(format!(
                            "too many redirects (more than max_redirects = {})",
                            network.max_redirects
                        )));
                    }
                    let url = next.url.join(&location).map_err(|e| {
                        FetchError::Failed(format!(
                            "the redirect to \"{location}\" is not a valid URL: {e}"
                        ))
                    })?;
                    // As browsers do: 303, and 301/302 after a POST, continue as a GET.
                    if status == 303 || (matches!(status, 301 | 302) && next.method == "POST") {
                        if next.method != "HEAD" {
                            next.method = "GET".into();
                        }
                        next.body.clear();
                        next.headers
                            .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
                    }
                    next.url = url;
                }
            }
        }
    }

    /// Checks and sends one request; a redirect is returned for the caller to follow.
    fn hop(&self, request: &Request, carry: bool) -> Result<Hop, FetchError> {
        let network = &self.outbound.network;
        let credentials = self.outbound.credentials();
        let mut event = FetchEvent::new(
            &self.audit.request_id,
            &self.audit.grant,
            &self.audit.session,
            &request.method,
        );
        event.target = credentials.redact(&loggable(&request.url));
        event.request_bytes = request.body.len();
        let refuse = |event: &mut FetchEvent<'_>, why: String| -> FetchError {
            event.decision = "refused";
            event.reason = Some(credentials.redact(&why));
            FetchError::Refused(why)
        };
        let prepared = match self.check(request, carry) {
            Ok(prepared) => prepared,
            Err(why) => {
                let error = refuse(&mut event, why);
                self.record(event);
                return Err(error);
            }
        };
        if prepared.request.body.len() as u64 > network.max_request_bytes {
            let error = refuse(
                &mut event,
                format!(
                    "the request body with credentials substituted ({} bytes) exceeds max_request_bytes ({})",
                    prepared.request.body.len(),
                    network.max_request_bytes
                ),
            );
            self.record(event);
            return Err(error);
        }
        let used = prepared.used;
        event.credentials = &used;
        let count = self
            .sent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(1))
            })
            .map_or(u32::MAX, |n| n.saturating_add(1));
        if count > network.max_fetches {
            let error = refuse(
                &mut event,
                format!(
                    "this run has made its {} fetches (max_fetches)",
                    network.max_fetches
                ),
            );
            self.record(event);
            return Err(error);
        }
        let outcome = self.outbound.send(
            prepared.request,
            &request.url,
            self.deadline,
            &self.cancel,
            &self.runtime,
        );
        match &outcome {
            Ok(sent) => {
                event.decision = "allow";
                event.status = Some(sent.status);
                event.response_bytes = sent.received;
            }
            Err(why) => {
                event.decision = "failed";
                event.reason = Some(credentials.redact(&why.to_string()));
            }
        }
        self.record(event);
        outcome.map(|sent| sent.hop)
    }

    /// The policy checks of one hop, and the request with its credentials.
    fn check(&self, request: &Request, carry: bool) -> Result<WithCredentials, String> {
        let (method, url) = (request.method.as_str(), &request.url);
        let allowed_by = self
            .outbound
            .allow
            .matching(method, url)
            .map_err(|r| r.to_string())?;
        let granted_by = match &self.grant_hosts {
            Some(grant_hosts) => Some(
                grant_hosts
                    .matching(method, url)
                    .map_err(|r| format!("{r} (for this caller)"))?,
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
        self.outbound
            .credentials()
            .apply(request, self.grant_credentials.as_deref(), carry)
    }
}
