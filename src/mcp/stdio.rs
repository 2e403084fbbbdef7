//! stdio transport: one client, the process's stdin/stdout. Logs go to stderr only.

use std::sync::Arc;

use anyhow::Context as _;
use rmcp::ServiceExt;

use super::{ApprovalStates, WardenServer};
use crate::execution::Executor;

/// Serves MCP on stdin/stdout until the client disconnects.
pub async fn serve_stdio(executor: Arc<Executor>) -> anyhow::Result<()> {
    let approvals = Arc::new(ApprovalStates::new()?);
    let service = WardenServer::new(executor, approvals)
        .serve(rmcp::transport::stdio())
        .await
        .context("starting the MCP session on stdio")?;
    service.waiting().await.context("serving MCP on stdio")?;
    Ok(())
}
