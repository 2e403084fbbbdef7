//! What a run may be given beyond computing: the host's `fetch` and a workspace of files. The
//! sandbox only carries requests and answers across the boundary; deciding and doing is the
//! [`Fetcher`]'s and the [`FileBridge`]'s job (`crate::net` and the service, over
//! `crate::workspace`), so the sandbox knows nothing of allowlists, credentials or quotas.

use std::sync::Arc;

/// A request as the guest wrote it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    #[serde(skip)]
    pub body: Vec<u8>,
}

/// What the guest gets back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HttpResponse {
    pub status: u16,
    pub status_text: String,
    /// The final URL, after redirects.
    pub url: String,
    pub redirected: bool,
    pub headers: Vec<(String, String)>,
    #[serde(skip)]
    pub body: Vec<u8>,
}

/// Why a fetch gave no response, typed by whoever sent it; the guest sees its message.
pub type FetchFailure = Box<dyn std::error::Error + Send + Sync>;

/// Sends a guest's request, or says why not. Called on the run's blocking thread; it must
/// return by the run's deadline on its own, since the deadline is only looked at between
/// slices of the guest's fuel, not inside a host call.
pub trait Fetcher: Send + Sync {
    fn fetch(&self, request: HttpRequest) -> Result<HttpResponse, FetchFailure>;
}

/// A run's fetch capability (`None`: the guest's fetch always fails).
#[derive(Clone, Default)]
pub struct FetchCapability(pub Option<Arc<dyn Fetcher>>);

impl std::fmt::Debug for FetchCapability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "FetchCapability(on)"
        } else {
            "FetchCapability(off)"
        })
    }
}

impl FetchCapability {
    /// Sends through the fetcher, or refuses when the run has none. The error is the text
    /// the guest's fetch rejects with: this is the guest's edge.
    pub fn fetch(&self, request: HttpRequest) -> Result<HttpResponse, String> {
        match &self.0 {
            Some(fetcher) => fetcher.fetch(request).map_err(|e| e.to_string()),
            None => Err("network access is not enabled for this run".into()),
        }
    }
}

/// Answers the guest's file calls (the protocol of `crate::workspace::bridge`: a JSON request
/// plus bytes in, a JSON answer plus bytes out). Called on the run's blocking thread.
pub trait FileBridge: Send + Sync {
    fn call(&self, request: &[u8], data: &[u8]) -> (String, Vec<u8>);
}

/// A run's workspace (`None`: every file call fails, as if `/workspace` did not exist).
#[derive(Clone, Default)]
pub struct WorkspaceCapability(pub Option<Arc<dyn FileBridge>>);

impl std::fmt::Debug for WorkspaceCapability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "WorkspaceCapability(on)"
        } else {
            "WorkspaceCapability(off)"
        })
    }
}

impl WorkspaceCapability {
    pub fn call(&self, request: &[u8], data: &[u8]) -> (String, Vec<u8>) {
        match &self.0 {
            Some(bridge) => bridge.call(request, data),
            None => (
                r#"{"ok":false,"code":"ENOENT","message":"this server gives runs no workspace"}"#
                    .to_string(),
                Vec::new(),
            ),
        }
    }
}

/// Answers the guest's calls to upstream servers' tools (`tools.<server>.<tool>(…)`, plus
/// discovery): a JSON request in, a JSON answer out. Called on the run's blocking thread; it
/// must return by the run's deadline on its own. `paused` is time spent waiting for a person
/// (an approval), which the run's wall clock does not count.
pub trait ToolBridge: Send + Sync {
    fn call(&self, request: &str) -> ToolAnswer;
}

#[derive(Debug, Clone, Default)]
pub struct ToolAnswer {
    pub json: String,
    pub paused: std::time::Duration,
}

/// A run's tools (`None`: the server has no upstream servers; every call fails).
#[derive(Clone, Default)]
pub struct ToolsCapability(pub Option<Arc<dyn ToolBridge>>);

impl std::fmt::Debug for ToolsCapability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ToolsCapability(on)"
        } else {
            "ToolsCapability(off)"
        })
    }
}

impl ToolsCapability {
    pub fn call(&self, request: &str) -> ToolAnswer {
        match &self.0 {
            Some(bridge) => bridge.call(request),
            None => ToolAnswer {
                json: r#"{"ok":false,"kind":"not_found","message":"this server offers no tools to code"}"#
                    .to_string(),
                paused: std::time::Duration::ZERO,
            },
        }
    }
}

/// Frames for the core-module ABI: a little-endian u32 length of a JSON head, the head, then
/// the body bytes.
pub fn encode_frame(head: &[u8], body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(4 + head.len() + body.len());
    frame.extend_from_slice(&(head.len() as u32).to_le_bytes());
    frame.extend_from_slice(head);
    frame.extend_from_slice(body);
    frame
}

/// Splits a frame into its JSON head and body.
pub fn decode_frame(frame: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let len_bytes: [u8; 4] = frame
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("the request frame is shorter than its header")?;
    let head_len = u32::from_le_bytes(len_bytes) as usize;
    let rest = &frame[4..];
    if head_len > rest.len() {
        return Err("the request frame is shorter than its head".into());
    }
    Ok(rest.split_at(head_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_frames_are_errors() {
        let frame = encode_frame(b"{\"a\":1}", b"\x00\xffbody");
        assert_eq!(
            decode_frame(&frame).unwrap(),
            (&b"{\"a\":1}"[..], &b"\x00\xffbody"[..])
        );
        assert!(decode_frame(b"\x01").is_err());
        assert!(decode_frame(b"\x09\x00\x00\x00{}").is_err());
        assert_eq!(
            decode_frame(b"\x00\x00\x00\x00").unwrap(),
            (&b""[..], &b""[..])
        );
    }

    #[test]
    fn without_a_fetcher_every_fetch_is_refused() {
        let r = FetchCapability::default().fetch(HttpRequest {
            method: "GET".into(),
            url: "https://example.com".into(),
            headers: vec![],
            body: vec![],
        });
        assert!(r.unwrap_err().contains("not enabled"));
    }
}
