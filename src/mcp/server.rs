//! The MCP service shared by every transport: lists the one tool, drives a call through the
//! [`Service`]'s pipeline (asking a person when the policy wants approval), reports progress
//! on long runs and stops a run the client cancels.
//!
//! Bad code, bad arguments and exhausted limits are tool results (`isError: true` with a
//! `status`), never JSON-RPC errors; those are kept for malformed protocol messages (and an
//! unknown tool name, which the protocol itself defines as an invalid-params error).

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, CreateTaskResult, GetTaskParams,
    GetTaskResult, Implementation, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ServerCapabilities, ServerConfig, Task, Tool, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

use super::approval::{
    AnswerError, ApprovalStates, Asked, ElicitingAsker, ask_or_answer, call_binding, elicit,
};
use super::progress::with_progress;
use super::result::to_call_tool_result;
use super::tasks::{self, TaskStore};
use super::tool::execute_code_tool;
use crate::contract::{ExecutionResult, TOOL_NAME};
use crate::policy::{Caller, LOCAL_GRANT};
use crate::service::{AskPerson, Service, Step};

#[derive(Clone)]
pub struct WardenServer {
    service: Arc<Service>,
    /// Names this MCP session in session-scoped counters.
    session: Arc<str>,
    /// Open approval questions of the 2026-07-28 flow, shared by every session.
    approvals: Arc<ApprovalStates>,
    /// Calls run as tasks, shared by every session and transport of the server.
    tasks: Arc<TaskStore>,
}

/// How a call ended: with a result, or with a question for the person behind the client
/// (2026-07-28), which the client brings back answered in a new call.
enum Ended {
    Finished(ExecutionResult),
    Asking(rmcp::model::InputRequiredResult),
    /// It runs on as a task.
    Started(Task),
}

impl WardenServer {
    pub fn new(
        service: Arc<Service>,
        approvals: Arc<ApprovalStates>,
        tasks: Arc<TaskStore>,
    ) -> Self {
        static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        WardenServer {
            service,
            session: format!("{}-{n}", std::process::id()).into(),
            approvals,
            tasks,
        }
    }

    /// The server's tasks (a test server runs its own fixtures' tasks in the same store).
    pub fn tasks(&self) -> &Arc<TaskStore> {
        &self.tasks
    }

    /// The tool as the policy in force describes it to `grant` (a reload can change it).
    fn tool(&self, grant: &str) -> Tool {
        execute_code_tool(&self.service.caller_view(grant))
    }

    /// Runs a call. When the policy wants approval, a 2026-07-28 client is asked with an
    /// `InputRequiredResult` (and brings the answer back in a retry); older clients through
    /// elicitation, while the call waits.
    async fn call_execute_code(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let grant = grant_of(context);
        let session = session_of(context, &grant, &self.session);
        let caller = Caller {
            grant: &grant,
            session: &session,
        };
        // A 2026-07-28 retry carries its answer; a tampered one is the client's protocol error.
        let retry = if uses_input_required(context) {
            let binding = call_binding(&grant, request.arguments.as_ref());
            let answer = match self.approvals.redeem(
                &binding,
                request.request_state.as_deref(),
                request.input_responses.as_ref(),
            ) {
                Ok(answer) => answer.map(Ok),
                // A stale answer denies the call through the pipeline, so that it is audited.
                Err(AnswerError::Stale(why)) => Some(Err(why)),
                Err(AnswerError::Malformed(why)) => {
                    return Err(ErrorData::invalid_params(why, None));
                }
            };
            Some((binding, answer))
        } else {
            None
        };
        let parsed = self.service.parse_args(&grant, request.arguments.as_ref());
        // The server decides what becomes a task: every run, when the request declares the
        // extension (a call stopped before it runs is answered at once all the same).
        let as_task = self.service.task_settings().enabled
            && context
                .client_capabilities()
                .is_some_and(|c| c.supports_tasks());
        let limits = if as_task {
            self.service.task_limits(&grant)
        } else {
            self.service.limits(&grant)
        };
        let timeout_ms = limits.timeout_ms(parsed.as_ref().ok().and_then(|a| a.timeout_ms));
        let cancel = &context.ct;
        let call = async {
            let step = match self.service.decide(parsed, &caller, cancel) {
                Step::Approve(pending) => match retry {
                    Some((binding, answer)) => {
                        let can_elicit = context
                            .client_capabilities()
                            .is_some_and(|c| c.elicitation.is_some());
                        match ask_or_answer(
                            &self.approvals,
                            &binding,
                            answer,
                            can_elicit,
                            &pending.request(),
                        ) {
                            Asked::Answered(approval) => pending.answer(approval),
                            Asked::Question(question) => {
                                pending.defer();
                                return Ended::Asking(question);
                            }
                        }
                    }
                    None => {
                        let approval = tokio::select! {
                            // A client that gives up while a person is being asked stops
                            // waiting at once.
                            biased;
                            _ = cancel.cancelled() => None,
                            approval = elicit(&context.peer, pending.request()) => Some(approval),
                        };
                        match approval {
                            Some(approval) => pending.answer(approval),
                            None => return Ended::Finished(pending.cancelled()),
                        }
                    }
                },
                step => step,
            };
            Ended::Finished(match step {
                Step::Done(result) => result,
                Step::Run(admitted) if as_task => {
                    match tasks::start(
                        &self.service,
                        &self.tasks,
                        admitted,
                        &grant,
                        timeout_ms,
                        context,
                    ) {
                        Ok(task) => return Ended::Started(task),
                        Err(refused) => *refused,
                    }
                }
                Step::Run(admitted) => {
                    // Calls the code makes can be approved mid-run only by elicitation on a
                    // session; a 2026-07-28 client's round trips cannot pause a run.
                    let asker = (!uses_input_required(context)).then(|| {
                        Arc::new(ElicitingAsker(context.peer.clone())) as Arc<dyn AskPerson>
                    });
                    admitted.on_this_thread().run_asking(cancel, asker).await
                }
                Step::Approve(_) => ExecutionResult::internal("approval was asked twice"),
            })
        };
        match with_progress(call, context, timeout_ms).await {
            Ended::Finished(result) => Ok(to_call_tool_result(&result).into()),
            Ended::Asking(question) => Ok(CallToolResponse::InputRequired(question)),
            Ended::Started(task) => Ok(CallToolResponse::Task(CreateTaskResult::new(task))),
        }
    }
}

/// The caller's grant: set by the HTTP transport after checking its bearer token; the local
/// user on stdio.
pub fn grant_of(context: &RequestContext<RoleServer>) -> String {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<super::http::Grant>())
        .map_or_else(|| LOCAL_GRANT.to_string(), |g| g.0.clone())
}

/// The MCP session naming session-scoped counters: the HTTP session id when there is one;
/// a stateless (2026-07-28) HTTP caller has no session, so its calls share one per grant;
/// on stdio, the connection.
fn session_of(context: &RequestContext<RoleServer>, grant: &str, own: &str) -> String {
    match context.extensions.get::<http::request::Parts>() {
        Some(parts) => match parts
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        {
            Some(id) => format!("http:{id}"),
            None => format!("stateless:{grant}"),
        },
        None => own.to_string(),
    }
}

/// Whether the call speaks the 2026-07-28 protocol, where the server cannot send requests of
/// its own and asks for input with an `InputRequiredResult` instead.
fn uses_input_required(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

impl ServerHandler for WardenServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources();
        // The tasks extension, unless the policy in force turns it off.
        let capabilities = if self.service.task_settings().enabled {
            capabilities.enable_tasks().build()
        } else {
            capabilities.build()
        };
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("warden", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Warden runs untrusted code in a fresh WebAssembly sandbox per call. Use the \
                 execute_code tool; its description lists the languages and limits.",
            )
    }

    // Logging is not declared (and deprecated by SEP-2577).
    #[allow(deprecated)]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Err(ErrorData::method_not_found::<
            rmcp::model::SetLevelRequestMethod,
        >())
    }

    // Warden offers no prompts and does not declare them, so their list method is unknown
    // too (rmcp would answer with an empty list).
    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListPromptsResult, ErrorData> {
        Err(ErrorData::method_not_found::<
            rmcp::model::ListPromptsRequestMethod,
        >())
    }

    /// The files of the caller's code sessions.
    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, ErrorData> {
        let grant = grant_of(&context);
        let session = session_of(&context, &grant, &self.session);
        Ok(super::files::list_result(
            self.service.list_resources(&grant, &session),
        ))
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, ErrorData> {
        let grant = grant_of(&context);
        let session = session_of(&context, &grant, &self.session);
        match self.service.read_resource(&request.uri, &grant, &session) {
            Some(content) => Ok(super::files::read_result(content).into()),
            // The same answer for a file that is not there and one that is not the caller's.
            None => Err(ErrorData::resource_not_found(
                format!("no such resource: {}", request.uri),
                Some(serde_json::json!({"uri": request.uri})),
            )),
        }
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, ErrorData> {
        Err(ErrorData::method_not_found::<
            rmcp::model::ListResourceTemplatesRequestMethod,
        >())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // The description declares the upstream tools the code may call: list them first.
        self.service.list_upstream_tools().await;
        // A hidden tool is left out; calling it anyway is denied by the policy.
        let tools = if self.service.tool_hidden() {
            Vec::new()
        } else {
            vec![self.tool(&grant_of(&context))]
        };
        Ok(ListToolsResult::with_all_items(tools))
    }

    /// A task of the caller's grant; any other id gets the unknown-task error.
    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        let detailed = self.tasks.get(&grant_of(&context), &request.task_id)?;
        Ok(GetTaskResult::new(detailed))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks.update(
            &grant_of(&context),
            &request.task_id,
            request.input_responses,
        )
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks.cancel(&grant_of(&context), &request.task_id)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        (name == TOOL_NAME && !self.service.tool_hidden()).then(|| self.tool(LOCAL_GRANT))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != TOOL_NAME {
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool `{}`: this server has only `{TOOL_NAME}`",
                    request.name
                ),
                None,
            ));
        }
        self.call_execute_code(request, &context).await
    }
}
