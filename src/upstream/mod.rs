//! Upstream MCP servers: Warden as a client of other servers, whose tools the code calls as
//! functions (`tools.<server>.<tool>(…)`). This module connects, lists and calls; whether a
//! call may happen at all is the policy's (the service asks it before every call), and the
//! guest only ever reaches a tool through the service's bridge.

mod connection;
mod declare;
mod settings;

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::model::CallToolResult;
use serde_json::Value;

pub use connection::Upstream;
pub use declare::{Declaration, declare, declare_listed, python_name};
pub use settings::{Endpoint, UpstreamSpec, is_server_name};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to upstream server \"{server}\": {reason}")]
    Unreachable { server: String, reason: String },
    #[error("upstream server \"{server}\" failed: {reason}")]
    Failed { server: String, reason: String },
    #[error("upstream server \"{server}\" did not answer within {ms} ms")]
    Timeout { server: String, ms: u64 },
}

/// The upstream servers of the policy in force, by name.
#[derive(Debug, Default)]
pub struct Upstreams {
    servers: BTreeMap<String, Arc<Upstream>>,
}

impl Upstreams {
    /// `headers` gives each server's injected credential headers.
    pub fn new(
        specs: &BTreeMap<String, UpstreamSpec>,
        headers: impl Fn(&str, &UpstreamSpec) -> Vec<(String, String)>,
    ) -> Upstreams {
        let servers = specs
            .iter()
            .map(|(name, spec)| {
                let upstream = Upstream::new(name, spec.clone(), headers(name, spec));
                (name.clone(), Arc::new(upstream))
            })
            .collect();
        Upstreams { servers }
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    pub fn get(&self, server: &str) -> Option<&Arc<Upstream>> {
        self.servers.get(server)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.servers.values()
    }

    /// Connects (and lists the tools of) every server that asks to be connected at start, in
    /// the background; a failure is logged and the first use tries again.
    pub fn connect_at_start(&self) {
        for upstream in self.servers.values() {
            if upstream.spec().connect_at_start {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Err(e) = upstream.tools().await {
                        tracing::warn!("{e}");
                    }
                });
            }
        }
    }
}

/// What a tool's result is to the code: its structured content if it has one, else its text
/// (one string; several text blocks joined by newlines), else its content blocks as JSON. A
/// tool error is `Err` with its text.
pub fn result_value(result: &CallToolResult) -> Result<Value, String> {
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect();
    if result.is_error == Some(true) {
        return Err(if texts.is_empty() {
            "the tool reported an error".to_string()
        } else {
            texts.join("\n")
        });
    }
    if let Some(structured) = &result.structured_content {
        return Ok(structured.clone());
    }
    if texts.len() == result.content.len() {
        return Ok(Value::String(texts.join("\n")));
    }
    serde_json::to_value(&result.content).map_err(|e| format!("cannot read the result: {e}"))
}
