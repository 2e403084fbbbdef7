//! The tool contract (DESIGN.md, "The tool contract"): what users and their clients rely on.
//! The arguments as one type with the schema and the parser derived from it, the result with
//! its statuses and error kinds as enums; strings only at the edge (serde).
//!
//! A leaf: it knows nothing of the policy, the sandbox or MCP.

mod args;
mod call_scope;
mod language;
mod result;
mod schema;

pub use args::{ArgumentLimits, ExecuteArgs, argument_names, input_schema, parse_args};
pub use call_scope::{Base64File, FileInput, SessionAction};
pub use language::Language;
pub use result::{
    ErrorInfo, ErrorKind, ErrorType, ExecutionResult, FileInfo, PolicyDecision, SessionInfo,
    Status, Truncated, Usage,
};
pub use schema::output_schema;

/// The one tool this server has.
pub const TOOL_NAME: &str = "execute_code";
