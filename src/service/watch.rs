//! Hot reload of the policy file: on SIGHUP, and when the file changes (checked every second).
//! A new document is validated first; an invalid one keeps the policy in force and says why.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::Service;
use crate::policy::Policy;

const POLL_EVERY: Duration = Duration::from_secs(1);

/// Watches `path` for the life of the server.
pub async fn watch(path: PathBuf, service: Arc<Service>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP ({e}); the policy file is still watched");
            None
        }
    };
    let mut seen = fingerprint(&path);
    // A change is acted on once the file has stayed the same for a whole tick, so that a
    // half-written file (an editor or `>` truncating first) is never loaded.
    let mut settling = None;
    let mut ticks = tokio::time::interval(POLL_EVERY);
    loop {
        let why = tokio::select! {
            _ = ticks.tick() => {
                let now = fingerprint(&path);
                if now == seen {
                    settling = None;
                    continue;
                }
                if settling != Some(now) {
                    settling = Some(now);
                    continue;
                }
                seen = now;
                settling = None;
                "the policy file changed"
            }
            Some(()) = async { match hangups.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                seen = fingerprint(&path);
                "SIGHUP"
            }
        };
        reload(&path, &service, why);
    }
}

fn reload(path: &Path, service: &Service, why: &str) {
    let loaded = Policy::load_with_notes(path).map(|(policy, notes)| {
        for note in notes {
            tracing::warn!(path = %path.display(), "{note}");
        }
        policy
    });
    match loaded
        .map_err(anyhow::Error::from)
        .and_then(|p| service.reload(p))
    {
        Ok(()) => tracing::info!(path = %path.display(), "{why}: reloaded the policy"),
        Err(e) => tracing::error!(
            path = %path.display(),
            "{why}: keeping the policy in force, the new one is invalid: {e:#}"
        ),
    }
}

/// What tells a changed file: modification time and size.
fn fingerprint(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}
