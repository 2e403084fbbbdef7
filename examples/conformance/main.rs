//! The conformance test server: Warden's Streamable HTTP server with the fixture tools the
//! official MCP conformance suite calls (`test_*`, and the tasks extension's, whose tasks run
//! in Warden's store) beside `execute_code`, its fixture resources (`test://…`) beside
//! the files of Warden's code sessions, and its fixture prompts (Warden has none). A cargo
//! example, so that the fixtures are built for `tests/conformance/run.sh` and never ship in
//! the `warden` binary.
//! Usage: `conformance --http ADDR [--policy FILE] [--cache-dir DIR]`.

// The suite still exercises logging and sampling, which SEP-2577 deprecates; so do these
// fixtures (and nothing in Warden itself).
#![allow(deprecated)]

mod fixtures;
mod input_required;
mod prompts;
mod resources;
mod tasks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, ErrorCode, GetPromptRequestParams,
    GetPromptResponse, GetTaskParams, GetTaskResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
    SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio_util::sync::CancellationToken;
use warden::mcp::{HttpOptions, WardenServer, serve_http_with};
use warden::policy::Policy;
use warden::service::Service;

#[derive(Parser)]
struct Args {
    /// Serve Streamable HTTP on this address.
    #[arg(long)]
    http: SocketAddr,
    #[arg(long)]
    policy: Option<PathBuf>,
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

/// Warden's handler with the fixtures around it, one per MCP session (per request when
/// stateless); the service gives the task fixtures the policy's `[tasks]` quota.
#[derive(Clone)]
struct WithFixtures(WardenServer, resources::Subscriptions, Arc<Service>);

impl ServerHandler for WithFixtures {
    fn get_info(&self) -> ServerConfig {
        let mut info = self.0.get_info();
        // The logging fixture needs the logging capability, the resource fixtures
        // subscriptions (Warden's own resources offer none), the prompt fixtures prompts;
        // tasks as Warden offers them.
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_logging()
            .enable_prompts()
            .enable_resources()
            .enable_resources_subscribe();
        info.capabilities = if info.capabilities.supports_tasks() {
            capabilities.enable_tasks().build()
        } else {
            capabilities.build()
        };
        info
    }

    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    /// The fixture prompts, and Warden's if it comes to offer any.
    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let mut prompts = prompts::list();
        match self.0.list_prompts(request, context).await {
            Ok(own) => prompts.extend(own.prompts),
            Err(e) if e.code == ErrorCode::METHOD_NOT_FOUND => {}
            Err(e) => return Err(e),
        }
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if let Some(result) = prompts::get(&request) {
            return result;
        }
        // Prompts are declared here, so an unknown name is the caller's invalid params.
        let name = request.name.clone();
        match self.0.get_prompt(request, context).await {
            Err(e) if e.code == ErrorCode::METHOD_NOT_FOUND => Err(ErrorData::invalid_params(
                format!("no such prompt: {name}"),
                None,
            )),
            other => other,
        }
    }

    /// The fixture resources, then Warden's (the files of the caller's code sessions).
    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let mut result = self.0.list_resources(request, context).await?;
        result.resources.splice(0..0, resources::list());
        Ok(result)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        match resources::read(&request.uri) {
            Some(result) => Ok(result.into()),
            None => self.0.read_resource(request, context).await,
        }
    }

    /// The fixture templates, and Warden's if it comes to offer any.
    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let mut templates = resources::templates();
        match self.0.list_resource_templates(request, context).await {
            Ok(own) => templates.extend(own.resource_templates),
            Err(e) if e.code == ErrorCode::METHOD_NOT_FOUND => {}
            Err(e) => return Err(e),
        }
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    // Up to 2025-11-25; rmcp answers both as unknown methods in 2026-07-28 requests.
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.1.subscribe(&request.uri)
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.1.unsubscribe(&request.uri);
        Ok(())
    }

    // 2026-07-28: `subscriptions/listen` for fixture resources; the default `listen` holds
    // the stream open until the client cancels it.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(resources::accepted_filter(requested))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = self.0.list_tools(request, context).await?.tools;
        tools.extend(fixtures::tools());
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.0
            .get_tool(name)
            .or_else(|| fixtures::tools().into_iter().find(|t| t.name == name))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if let Some(result) = tasks::call(&self.0, &self.2, &request, &context).await {
            return result;
        }
        if let Some(result) = fixtures::call(&request, &context).await {
            return result;
        }
        self.0.call_tool(request, context).await
    }

    // The fixtures' tasks live in Warden's store, so Warden's own handling serves them.
    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        self.0.get_task(request, context).await
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.0.update_task(request, context).await
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.0.cancel_task(request, context).await
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        // As in `warden`: guests run on these threads.
        .thread_stack_size(warden::policy::GUEST_THREAD_STACK_BYTES)
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let policy = match &args.policy {
        Some(path) => Policy::load(path)?,
        None => Policy::builtin(),
    };
    let service = Arc::new(Service::new(policy, args.cache_dir)?);
    let fixtures_service = service.clone();
    let options = HttpOptions {
        addr: args.http,
        metrics_addr: None,
        allowed_hosts: Vec::new(),
        allowed_origins: Vec::new(),
        grace: std::time::Duration::from_secs(1),
        state_keys: Default::default(),
    };
    tracing::warn!("test server: the conformance suite's fixture tools and resources are offered");
    serve_http_with(service, options, CancellationToken::new(), move |server| {
        WithFixtures(
            server,
            resources::Subscriptions::default(),
            fixtures_service.clone(),
        )
    })
    .await
}
