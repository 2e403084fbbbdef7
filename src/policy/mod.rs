//! The policy: the document ([`Policy`]: parse, validate, locate errors; PolicyLayer's JSON
//! translated), the callers it knows ([`Grant`]), and the engine that decides each call in
//! DESIGN.md's order: the caller's languages -> argument rules -> the tool's action (allow /
//! deny / require approval) -> rate limits (reserved atomically). Knows nothing of MCP, of
//! the sandbox or of transports.

mod admit;
mod dialect;
mod document;
mod engine;
mod explain;
mod grants;
mod limits;
mod locate;
mod notes;
pub mod ratelimit;
pub mod rules;
#[cfg(test)]
mod section_tests;
mod sessions;
mod tasks;
#[cfg(test)]
mod tests;
mod tool_calls;

pub use admit::{Reservation, STORE_UNAVAILABLE_RULE};
pub use document::{Action, AllTools, DEFAULT_POLICY, Policy, PolicyError, ToolPolicy};
pub use engine::{Decision, Denial, PolicyEngine, Question, now_ms};
pub use grants::{Grant, GrantSpec, LOCAL_GRANT};
pub use limits::{GUEST_THREAD_STACK_BYTES, Limits, LimitsOverride, MAX_WASM_STACK_BYTES};
pub use locate::Issue;
pub use ratelimit::{
    AdmitError, Caller, CounterKey, CounterStore, FailMode, LimitSpec, MemoryCounterStore, Refusal,
    Scope, StoreHealth, StoreUnavailable, Window,
};
pub use rules::{Arguments, ConditionSpec, Effect, Operator, Rule, RuleSpec};
pub use sessions::SessionSettings;
pub use tasks::TaskSettings;
pub use tool_calls::ToolCall;
