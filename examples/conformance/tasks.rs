//! Fixtures for the tasks extension (SEP-2663). Their tasks run in Warden's own task store,
//! under the policy's `[tasks]` quota and owned by the caller's grant, so that the suite's
//! `tasks-*` scenarios exercise the store and `tasks/get|update|cancel` Warden ships.
//!
//! Whether a tool may or must run as a task is registration data here, never on the wire
//! (the 2026-07-28 Tool has no `execution` field). A task-optional tool runs within its request
//! when the request does not declare the extension; a task-required one is refused then.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ContentBlock,
    CreateTaskResult, InputRequest, JsonObject, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};
use warden::mcp::{TaskContext, TaskEnd, TaskQuota, WardenServer, grant_of};
use warden::service::Service;

use crate::input_required;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Support {
    Forbidden,
    Optional,
    Required,
}

/// Name, description, task support.
const FIXTURES: [(&str, &str, Support); 7] = [
    (
        "greet",
        "Conformance fixture: greets `name` (never a task)",
        Support::Forbidden,
    ),
    (
        "slow_compute",
        "Conformance fixture: waits `seconds`, then reports `label` (a task when it can be)",
        Support::Optional,
    ),
    (
        "failing_job",
        "Conformance fixture: a task that ends in a tool error",
        Support::Required,
    ),
    (
        "protocol_error_job",
        "Conformance fixture: fails with a protocol error (a task when it can be)",
        Support::Optional,
    ),
    (
        "confirm_delete",
        "Conformance fixture: asks to confirm deleting `filename` (a task when it can be)",
        Support::Optional,
    ),
    (
        "multi_input",
        "Conformance fixture: asks two questions at once (a task when it can be)",
        Support::Optional,
    ),
    (
        "test_tool_with_task",
        "Conformance fixture: asks for a name, then greets it in a task",
        Support::Required,
    ),
];

/// The longest `slow_compute` wait.
const MAX_SECONDS: f64 = 300.0;
/// How long `failing_job` works before it fails.
const FAILING_AFTER: Duration = Duration::from_secs(1);

fn schema(tool: &str) -> JsonObject {
    let schema = match tool {
        "greet" => json!({
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"]
        }),
        "slow_compute" => json!({
            "type": "object",
            "properties": {
                "seconds": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
                "label": {"type": "string"}
            }
        }),
        "confirm_delete" => json!({
            "type": "object",
            "properties": {"filename": {"type": "string"}},
            "required": ["filename"]
        }),
        _ => json!({"type": "object"}),
    };
    match schema {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

/// The fixtures' definitions.
pub fn tools() -> Vec<Tool> {
    FIXTURES
        .iter()
        .map(|(name, description, _)| Tool::new(*name, *description, Arc::new(schema(name))))
        .collect()
}

/// The quota Warden gives its own tasks, or `None` when the policy turns tasks off.
fn quota(service: &Service) -> Option<TaskQuota> {
    let settings = service.task_settings();
    settings
        .enabled
        .then(|| TaskQuota::from_settings(&settings))
}

fn text(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text.into())])
}

fn argument(request: &CallToolRequestParams, name: &str) -> Option<Value> {
    request.arguments.as_ref()?.get(name).cloned()
}

fn string_argument(request: &CallToolRequestParams, name: &str, default: &str) -> String {
    argument(request, name)
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| default.to_string())
}

/// The content of an accepted elicitation answer.
fn accepted(answer: &Value) -> Option<&JsonObject> {
    if answer.get("action").and_then(Value::as_str) != Some("accept") {
        return None;
    }
    answer.get("content")?.as_object()
}

fn confirm_request(filename: &str) -> Result<InputRequest, ErrorData> {
    input_required::input_request(
        "elicitation/create",
        json!({
            "mode": "form",
            "message": format!("Delete {filename}?"),
            "requestedSchema": {
                "type": "object",
                "properties": {"confirm": {"type": "boolean"}},
                "required": ["confirm"]
            }
        }),
    )
}

fn confirmed(answer: &Value) -> bool {
    accepted(answer).and_then(|c| c.get("confirm")?.as_bool()) == Some(true)
}

fn deleted(filename: &str, answer: &Value) -> CallToolResult {
    if confirmed(answer) {
        text(format!("Deleted {filename}"))
    } else {
        text(format!("Kept {filename}: the deletion was not confirmed"))
    }
}

fn name_of(answer: &Value) -> String {
    accepted(answer)
        .and_then(|c| c.get("name")?.as_str())
        .unwrap_or("(no name)")
        .to_string()
}

fn multi_answered(name: &Value, confirm: &Value) -> CallToolResult {
    text(format!(
        "Hello, {}! Confirmed: {}",
        name_of(name),
        confirmed(confirm)
    ))
}

fn protocol_error() -> ErrorData {
    ErrorData::internal_error("protocol_error_job failed on purpose", None)
}

/// How a task whose question went unanswered ends: `ask` gives up only on cancellation, or
/// when a key is asked twice (a fixture bug).
fn unanswered(task: &TaskContext) -> TaskEnd {
    if task.cancellation().is_cancelled() {
        TaskEnd::Cancelled
    } else {
        TaskEnd::Failed(ErrorData::internal_error(
            "the fixture asked the same question twice",
            None,
        ))
    }
}

/// Waits `duration` unless `cancel` fires first (then `None`).
async fn sleep_or_cancel(
    duration: Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> Option<()> {
    tokio::select! {
        _ = cancel.cancelled() => None,
        _ = tokio::time::sleep(duration) => Some(()),
    }
}

/// Starts a task of the caller's grant in Warden's store and answers with it at once.
fn start<F, W>(
    server: &WardenServer,
    quota: &TaskQuota,
    context: &RequestContext<RoleServer>,
    work: F,
) -> Result<CallToolResponse, ErrorData>
where
    F: FnOnce(TaskContext) -> W,
    W: Future<Output = TaskEnd> + Send + 'static,
{
    match server.tasks().spawn(&grant_of(context), quota, work) {
        Ok(task) => Ok(CreateTaskResult::new(task).into()),
        // Like Warden's own refusal: a tool error saying when to try again.
        Err(refused) => Ok(CallToolResult::error(vec![ContentBlock::text(format!(
            "no task was started ({}): {}; retry after {} ms",
            refused.rule, refused.reason, refused.retry_after_ms
        ))])
        .into()),
    }
}

/// Runs fixture `request.name`, or `None` when it is not one of these.
pub async fn call(
    server: &WardenServer,
    service: &Service,
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> Option<Result<CallToolResponse, ErrorData>> {
    let tool = request.name.as_ref();
    let (_, _, support) = FIXTURES.iter().find(|(name, _, _)| *name == tool)?;
    // Decided per request: a client declares the extension in each request's `_meta`.
    let declared = context
        .client_capabilities()
        .is_some_and(|c| c.supports_tasks());
    let quota = match (support, declared, quota(service)) {
        (Support::Forbidden, _, _) => None,
        (_, true, Some(quota)) => Some(quota),
        (Support::Optional, _, _) => None,
        (Support::Required, false, _) => {
            return Some(Err(ErrorData::missing_required_client_capability(
                ClientCapabilities::builder().enable_tasks().build(),
            )));
        }
        (Support::Required, true, None) => {
            return Some(Ok(CallToolResult::error(vec![ContentBlock::text(
                format!("{tool} runs only as a task, and the policy turns tasks off"),
            )])
            .into()));
        }
    };
    Some(match quota {
        Some(quota) => as_task(server, &quota, request, context).await,
        None => within_request(request, context).await,
    })
}

async fn as_task(
    server: &WardenServer,
    quota: &TaskQuota,
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    match request.name.as_ref() {
        "slow_compute" => {
            let (seconds, label) = slow_compute_arguments(request);
            start(server, quota, context, move |task| async move {
                match sleep_or_cancel(seconds, task.cancellation()).await {
                    Some(()) => TaskEnd::Completed(computed(&label, seconds)),
                    None => TaskEnd::Cancelled,
                }
            })
        }
        "failing_job" => start(server, quota, context, |task| async move {
            match sleep_or_cancel(FAILING_AFTER, task.cancellation()).await {
                Some(()) => TaskEnd::Completed(CallToolResult::error(vec![ContentBlock::text(
                    "failing_job failed on purpose",
                )])),
                None => TaskEnd::Cancelled,
            }
        }),
        "protocol_error_job" => start(server, quota, context, |_| async {
            TaskEnd::Failed(protocol_error())
        }),
        "confirm_delete" => {
            let filename = string_argument(request, "filename", "");
            let question = confirm_request(&filename)?;
            start(server, quota, context, move |task| async move {
                match task.ask("confirm", question).await {
                    Some(answer) => TaskEnd::Completed(deleted(&filename, &answer)),
                    None => unanswered(&task),
                }
            })
        }
        "multi_input" => {
            let name = input_required::elicit("What is your name?", "name")?;
            let confirm = confirm_request("nothing, really")?;
            start(server, quota, context, move |task| async move {
                // Both questions are open at once; answering one leaves the other pending.
                let (name, confirm) =
                    tokio::join!(task.ask("name", name), task.ask("confirm", confirm));
                match (name, confirm) {
                    (Some(name), Some(confirm)) => {
                        TaskEnd::Completed(multi_answered(&name, &confirm))
                    }
                    _ => unanswered(&task),
                }
            })
        }
        "test_tool_with_task" => {
            // An input-required round within the request first (SEP-2322), then the task.
            let responses = request.input_responses.as_ref();
            match input_required::elicited(responses, "user_name", "name") {
                Some(name) => {
                    let greeting = text(format!("Hello, {name}!"));
                    start(server, quota, context, |_| async {
                        TaskEnd::Completed(greeting)
                    })
                }
                None => input_required::ask(
                    vec![(
                        "user_name",
                        input_required::elicit("What is your name?", "name")?,
                    )],
                    None,
                ),
            }
        }
        _ => within_request(request, context).await,
    }
}

/// The fixtures without a task: the same work within the request, questions asked by
/// input-required rounds.
async fn within_request(
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    let responses = request.input_responses.as_ref();
    let answer = |key: &str| responses.and_then(|r| r.get(key));
    match request.name.as_ref() {
        "greet" => Ok(text(format!(
            "Hello, {}!",
            string_argument(request, "name", "World")
        ))
        .into()),
        "slow_compute" => {
            let (seconds, label) = slow_compute_arguments(request);
            match sleep_or_cancel(seconds, &context.ct).await {
                Some(()) => Ok(computed(&label, seconds).into()),
                None => Err(ErrorData::internal_error("cancelled by the client", None)),
            }
        }
        "protocol_error_job" => Err(protocol_error()),
        "confirm_delete" => {
            let filename = string_argument(request, "filename", "");
            match answer("confirm") {
                Some(answer) => Ok(deleted(&filename, answer).into()),
                None => input_required::ask(vec![("confirm", confirm_request(&filename)?)], None),
            }
        }
        "multi_input" => match (answer("name"), answer("confirm")) {
            (Some(name), Some(confirm)) => Ok(multi_answered(name, confirm).into()),
            _ => input_required::ask(
                vec![
                    (
                        "name",
                        input_required::elicit("What is your name?", "name")?,
                    ),
                    ("confirm", confirm_request("nothing, really")?),
                ],
                None,
            ),
        },
        tool => Err(ErrorData::internal_error(
            format!("{tool} has no way to run within a request"),
            None,
        )),
    }
}

fn slow_compute_arguments(request: &CallToolRequestParams) -> (Duration, String) {
    let seconds = argument(request, "seconds")
        .and_then(|v| v.as_f64())
        .filter(|s| s.is_finite())
        .unwrap_or(0.0)
        .clamp(0.0, MAX_SECONDS);
    let label = string_argument(request, "label", "slow_compute");
    (Duration::from_secs_f64(seconds), label)
}

fn computed(label: &str, waited: Duration) -> CallToolResult {
    text(format!("{label}: done after {}s", waited.as_secs_f64()))
}
