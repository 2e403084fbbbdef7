//! Warden: an MCP `execute_code` server that runs untrusted JavaScript and TypeScript in a fresh
//! wasmtime sandbox per call, with its limits and policy inside.
//!
//! Data flows one way (see DESIGN.md): MCP request -> [`execution::parse_args`] ->
//! policy limits -> [`sandbox::Sandbox::run`] -> [`outcome::ExecutionResult`] -> MCP result.
//! The MCP layer knows nothing of wasmtime; the sandbox knows nothing of MCP; the policy module
//! knows nothing of either.

pub mod audit;
pub mod execution;
pub mod mcp;
pub mod metrics;
pub mod net;
pub mod outcome;
pub mod policy;
pub mod reload;
pub mod runtimes;
pub mod sandbox;
pub mod secrets;
