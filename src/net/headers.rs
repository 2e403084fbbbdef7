//! The HTTP rules the host keeps for itself: headers a guest may not set and a credential may
//! not be injected into.

use reqwest::header::{HeaderName, HeaderValue};

/// Headers the host owns: a credential cannot be injected into them, and the guest cannot set
/// them. Besides framing and hop-by-hop headers: content negotiation and ranges (a compressed
/// or partial echo of a secret would slip past redaction), and the forwarding headers some
/// services trust to say who the client is.
pub const HOST_CONTROLLED_HEADERS: [&str; 19] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
    "accept-encoding",
    "range",
    "if-range",
    "expect",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// Whether the host controls the header `name` (any case).
pub fn is_host_controlled(name: &str) -> bool {
    HOST_CONTROLLED_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

/// Whether `name` is an HTTP header name (a token).
pub fn is_header_name(name: &str) -> bool {
    HeaderName::from_bytes(name.as_bytes()).is_ok()
}

/// Headers that carry credentials by their nature; none crosses to another origin.
pub fn carries_authority(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "authorization" | "cookie" | "proxy-authorization"
    )
}

/// Checks the headers a guest wrote: no host-controlled header, valid names and values.
pub fn check_guest_headers(headers: &[(String, String)]) -> Result<(), String> {
    for (name, value) in headers {
        if is_host_controlled(name) {
            return Err(format!(
                "the {name} header is set by the host, not the code"
            ));
        }
        if !is_header_name(name) {
            return Err(format!("\"{name}\" is not a valid header name"));
        }
        HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header {name} is not valid"))?;
    }
    Ok(())
}
