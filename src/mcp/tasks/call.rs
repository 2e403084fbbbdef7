//! A call admitted as a task: moved into the task store, run under the task's cancellation,
//! asking the client through the task, reporting progress as the task's status message.

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::model::{ProgressNotificationParam, ProgressToken, Task};
use rmcp::service::RequestContext;

use super::{TaskContext, TaskEnd, TaskQuota, TaskStore};
use crate::contract::{ExecutionResult, Status};
use crate::mcp::approval::TaskAsker;
use crate::mcp::progress::{PROGRESS_AFTER, PROGRESS_EVERY, progress_message};
use crate::mcp::result::to_call_tool_result;
use crate::policy::Denial;
use crate::service::{AdmittedCall, AskPerson, RunWatch, Service};

/// Runs an admitted call as a task of `grant`, or says why there is no room for it (a
/// `rate_limited` result, audited, its rate-limit count given back).
pub fn start(
    service: &Arc<Service>,
    tasks: &Arc<TaskStore>,
    admitted: AdmittedCall<'_>,
    grant: &str,
    timeout_ms: u64,
    context: &RequestContext<RoleServer>,
) -> Result<Task, Box<ExecutionResult>> {
    let quota = TaskQuota::from_settings(&service.task_settings());
    let mut call = Some(admitted.into_task(service));
    // Progress also goes to the client's token while its connection lives (stdio, an
    // HTTP session); `tasks/get` always carries it as the status message.
    let progress = context
        .meta
        .get_progress_token()
        .map(|token| (token, context.peer.clone()));
    let started = tasks.spawn(grant, &quota, |task| {
        let call = call.take();
        async move {
            match call {
                Some(call) => run(call, task, timeout_ms, progress).await,
                None => TaskEnd::Failed(rmcp::ErrorData::internal_error(
                    "the task lost its call",
                    None,
                )),
            }
        }
    });
    match (started, call) {
        (Ok(task), _) => Ok(task),
        (Err(refused), Some(call)) => {
            let mut denial = Denial::new(Status::RateLimited, refused.rule, refused.reason);
            denial.decision.retry_after_ms = Some(refused.retry_after_ms);
            Err(Box::new(call.refuse(denial)))
        }
        (Err(refused), None) => Err(Box::new(ExecutionResult::internal(format!(
            "the task was refused after it started: {}",
            refused.reason
        )))),
    }
}

/// A call's run as a task: stopped by `tasks/cancel`, asking the client through the task when
/// the code's calls need approval, reporting progress as the task's status message.
async fn run(
    call: AdmittedCall<'static>,
    task: TaskContext,
    timeout_ms: u64,
    progress: Option<(ProgressToken, rmcp::Peer<RoleServer>)>,
) -> TaskEnd {
    let cancel = task.cancellation().clone();
    let asker = Arc::new(TaskAsker::new(task.clone())) as Arc<dyn AskPerson>;
    let watch = RunWatch::default();
    let run = call.run_watched(&cancel, Some(asker), Some(watch.clone()));
    tokio::pin!(run);
    let started = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval_at(started + PROGRESS_AFTER, PROGRESS_EVERY);
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            _ = ticks.tick() => {
                let elapsed_ms = started.elapsed().as_millis() as f64;
                let mut message = progress_message(elapsed_ms, timeout_ms);
                // What the program reports: the last line it printed.
                if let Some(line) = watch.last_line() {
                    message = format!("{message}: {line}");
                }
                task.set_status_message(message.clone());
                if let Some((token, peer)) = &progress {
                    let note = ProgressNotificationParam::new(token.clone(), elapsed_ms)
                        .with_total(timeout_ms as f64)
                        .with_message(message);
                    // The connection may be gone (a stateless request) or stalled (a client
                    // not reading): the run, and its cancellation, never wait on it.
                    let _ = tokio::time::timeout(PROGRESS_EVERY, peer.notify_progress(note)).await;
                }
            }
        }
    };
    if cancel.is_cancelled() {
        TaskEnd::Cancelled
    } else {
        TaskEnd::Completed(to_call_tool_result(&result))
    }
}
