//! stdio transport: one client, the process's stdin/stdout, framed by [`LineTransport`] (which
//! answers malformed lines itself). Logs go to stderr only.

use std::sync::Arc;

use anyhow::Context as _;
use rmcp::ServiceExt;

use super::line_transport::LineTransport;
use super::{ApprovalStates, StateKeys, TaskStore, WardenServer};
use crate::service::Service;

/// Serves MCP on stdin/stdout until the client disconnects. rmcp answers what is in flight
/// when stdin closes (for up to 5 s) and closes the transport, which flushes stdout, before
/// this returns.
pub async fn serve_stdio(service: Arc<Service>, keys: StateKeys) -> anyhow::Result<()> {
    let approvals = Arc::new(ApprovalStates::new(keys, service.counter_store())?);
    let tasks = TaskStore::new();
    let (stdin, stdout) = super::std_streams::stdio();
    let served = async {
        let session = WardenServer::new(service, approvals, tasks.clone())
            .serve(LineTransport::new(stdin, stdout))
            .await
            .context("starting the MCP session on stdio")?;
        session.waiting().await.context("serving MCP on stdio")?;
        anyhow::Ok(())
    }
    .await;
    // The client is gone, and with it whoever could read the tasks' results.
    tasks.stop_all();
    served
}
