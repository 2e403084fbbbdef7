//! Progress of a long run: a notification every second once it has run for a second, saying
//! how long it has run and its limit (calls answered within their request; tasks add the last
//! line their program printed).

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::ProgressNotificationParam;
use rmcp::service::RequestContext;

/// Runs shorter than this send no progress notifications.
pub(super) const PROGRESS_AFTER: Duration = Duration::from_secs(1);
pub(super) const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub(super) fn progress_message(elapsed_ms: f64, timeout_ms: u64) -> String {
    format!(
        "running for {:.1} s (limit {:.1} s)",
        elapsed_ms / 1000.0,
        timeout_ms as f64 / 1000.0
    )
}

/// Drives `call`, sending a progress notification every second once it has run for a second
/// (when the client asked for progress). The notifications come from a task of their own: the
/// run starts on the thread that polls `call` and holds it until it ends (`service/run.rs`),
/// so a ticker polled beside it would be silent for the whole run.
pub(super) async fn with_progress<T>(
    call: impl std::future::Future<Output = T>,
    context: &RequestContext<RoleServer>,
    timeout_ms: u64,
) -> T {
    let Some(token) = context.meta.get_progress_token() else {
        return call.await;
    };
    let peer = context.peer.clone();
    let ticker = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut ticks = tokio::time::interval_at(started + PROGRESS_AFTER, PROGRESS_EVERY);
        loop {
            ticks.tick().await;
            let elapsed_ms = started.elapsed().as_millis() as f64;
            let note = ProgressNotificationParam::new(token.clone(), elapsed_ms)
                .with_total(timeout_ms as f64)
                .with_message(progress_message(elapsed_ms, timeout_ms));
            if let Err(e) = peer.notify_progress(note).await {
                tracing::debug!("could not send a progress notification: {e}");
            }
        }
    });
    // Stopped when the call ends or is dropped.
    let _ticker = AbortOnDrop(ticker);
    call.await
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
