//! `tool_call` events: one for every call the code made to an upstream server's tool, tied to
//! the run's request id. Arguments are never logged, only their digest.

use serde::Serialize;

use super::rfc3339_now;

#[derive(Debug, Clone, Serialize)]
pub struct ToolCallEvent<'a> {
    pub time: String,
    pub event: &'static str,
    pub request_id: &'a str,
    pub grant: &'a str,
    pub session: &'a str,
    pub server: &'a str,
    pub tool: &'a str,
    /// SHA-256 of the arguments' JSON (hex), to match calls without keeping their values.
    pub arguments_sha256: String,
    /// `allow`, `deny` or `approve` (a person approved it).
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    /// `ok`, `tool_error`, `denied`, `rate_limited`, `failed`, `timeout`, `too_large`...
    pub status: &'a str,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

impl<'a> ToolCallEvent<'a> {
    pub fn new(request_id: &'a str, grant: &'a str, session: &'a str) -> Self {
        ToolCallEvent {
            time: rfc3339_now(),
            event: "tool_call",
            request_id,
            grant,
            session,
            server: "",
            tool: "",
            arguments_sha256: String::new(),
            decision: "deny",
            rule: None,
            status: "",
            duration_ms: 0,
            reason: None,
        }
    }
}
