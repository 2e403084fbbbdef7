//! Tasks (the MCP tasks extension, SEP-2663): a call answered at once with a task id and run
//! in the background; the client polls `tasks/get`, answers questions with `tasks/update` and
//! stops it with `tasks/cancel`. The store binds each task to the grant that started it
//! (another grant gets exactly the answer an unknown id gets), bounds the tasks running or
//! waiting per grant and in all, bounds the memory finished tasks take, and forgets a result
//! `keep` after its task ended. Everything lives in this process: a restart forgets every task.
//! `store.rs` keeps the tasks; `call.rs` runs a call admitted as one.

mod call;
mod store;

use std::sync::Arc;
use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::{CallToolResult, InputRequest};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub use call::start;
pub use store::TaskStore;

/// How much a store lets tasks take, from the policy in force when a task is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskQuota {
    /// Tasks of one owner running or waiting at once.
    pub per_owner: u32,
    /// Tasks running or waiting at once, all owners together.
    pub total: u32,
    /// How long a finished task stays readable.
    pub keep: Duration,
    /// Memory all kept tasks may take (entries and results).
    pub max_kept_bytes: u64,
    /// The poll interval clients are told.
    pub poll_interval_ms: u64,
}

impl TaskQuota {
    /// The quota the policy's `[tasks]` gives.
    pub fn from_settings(settings: &crate::policy::TaskSettings) -> TaskQuota {
        TaskQuota {
            per_owner: settings.max_per_grant,
            total: settings.max_tasks,
            keep: Duration::from_secs(settings.keep_results_s),
            max_kept_bytes: settings.max_kept_bytes,
            poll_interval_ms: settings.poll_interval_ms,
        }
    }
}

/// Why a task was not created: the policy's rule, a reason for the caller, and when to try
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRefused {
    pub rule: &'static str,
    pub reason: String,
    pub retry_after_ms: u64,
}

/// How a task's work ended.
pub enum TaskEnd {
    /// A tool result, error results included (`isError: true` is a completed task).
    Completed(CallToolResult),
    /// A protocol-level failure: the task is `failed` with this error.
    Failed(ErrorData),
    /// It stopped because it was cancelled.
    Cancelled,
}

/// A task's view of itself, given to its work: its cancellation, its status message, and
/// questions for the client.
#[derive(Clone)]
pub struct TaskContext {
    id: String,
    store: Arc<TaskStore>,
    cancel: CancellationToken,
}

impl TaskContext {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Fires on `tasks/cancel` and when the server stops.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// What `tasks/get` says the task is doing (progress).
    pub fn set_status_message(&self, message: impl Into<String>) {
        let message = message.into();
        self.store.with_entry(&self.id, |entry| {
            if entry.outcome.is_none() {
                entry.task.status_message = Some(message);
                entry.touch();
            }
        });
    }

    /// Asks the client (`input_required`, with `request` under `key` in `inputRequests`)
    /// and waits for the answer a `tasks/update` brings. `None` when the task is cancelled
    /// first, or `key` was asked before (keys are unique over a task's life). The question is
    /// withdrawn however the wait ends, also when the caller stops waiting (a timeout).
    pub async fn ask(&self, key: &str, request: InputRequest) -> Option<Value> {
        let (answer, answered) = oneshot::channel();
        let asked = self.store.with_entry(&self.id, |entry| {
            if entry.outcome.is_some() || !entry.asked.insert(key.to_string()) {
                return false;
            }
            entry.pending.insert(key.to_string(), (request, answer));
            entry.touch();
            true
        });
        if asked != Some(true) {
            return None;
        }
        let _withdraw = Withdraw { task: self, key };
        tokio::select! {
            answer = answered => answer.ok(),
            _ = self.cancel.cancelled() => None,
        }
    }
}

/// Takes an unanswered question off its task when its wait ends, however it ends.
struct Withdraw<'a> {
    task: &'a TaskContext,
    key: &'a str,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.task.store.with_entry(&self.task.id, |entry| {
            if entry.pending.remove(self.key).is_some() {
                entry.touch();
            }
        });
    }
}
