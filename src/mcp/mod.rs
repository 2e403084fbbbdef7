//! The MCP face of Warden (rmcp): one `execute_code` tool, the same handler for every
//! transport, one thin entry point per transport (stdio, Streamable HTTP), and the approval
//! UX (elicitation, or an input-required round on 2026-07-28), and a run's files as content
//! blocks and resources, and calls run as tasks.

mod approval;
mod files;
pub mod http;
mod line_transport;
mod progress;
mod result;
mod server;
mod state_keys;
mod std_streams;
mod stdio;
mod tasks;
mod tool;

pub use approval::ApprovalStates;
pub use http::{HttpOptions, serve_http, serve_http_with};
pub use line_transport::LineTransport;
pub use result::to_call_tool_result;
pub use server::{WardenServer, grant_of};
pub use state_keys::StateKeys;
pub use stdio::serve_stdio;
pub use tasks::{TaskContext, TaskEnd, TaskQuota, TaskRefused, TaskStore};
pub use tool::execute_code_tool;
