//! The MCP face of Warden (rmcp): one `execute_code` tool, the same service for every transport,
//! and one thin entry point per transport (stdio, Streamable HTTP).

mod approval;
mod fixtures;
pub mod http;
mod server;
mod stdio;
mod tool;

pub use approval::ApprovalStates;
pub use http::{HttpOptions, serve_http};
pub use server::WardenServer;
pub use stdio::serve_stdio;
pub use tool::{TOOL_NAME, execute_code_tool};
