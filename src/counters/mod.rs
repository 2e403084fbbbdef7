//! Where rate-limit counters live (issue 17): an embedded SQLite database in the state
//! directory by default, so that a restart keeps every window's counts; Redis when several
//! replicas must share them; this process's memory only when asked (`memory:`). Each store
//! implements the policy's [`CounterStore`] with the same atomic, all-or-nothing admission.

mod embedded;
mod shared;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

pub use embedded::SqliteCounterStore;
pub use shared::RedisCounterStore;

use crate::policy::{CounterStore, FailMode, MemoryCounterStore};

/// The embedded database's file name in the state directory.
pub const DATABASE_FILE: &str = "counters.sqlite";

/// The key prefix on a shared store when none is given.
pub const DEFAULT_PREFIX: &str = "warden:";

/// Where counters live, as the command line (or its environment variables) says.
#[derive(Debug, Clone)]
pub struct StateConfig {
    /// The state directory (the embedded database is in it).
    pub dir: PathBuf,
    /// `redis://…` / `rediss://…` for a shared store, `memory:` for none; None: embedded.
    pub dsn: Option<String>,
    /// Prepended to every key on a shared store, so that deployments can share one Redis.
    pub prefix: String,
    pub fail_mode: FailMode,
    /// PEM certificates to trust for `rediss://` instead of the web PKI roots.
    pub ca_file: Option<PathBuf>,
}

impl StateConfig {
    /// `$XDG_STATE_HOME/warden` (`~/.local/state/warden`), or the local data directory where
    /// the platform has no state directory.
    pub fn default_dir() -> Option<PathBuf> {
        dirs::state_dir()
            .or_else(dirs::data_local_dir)
            .map(|d| d.join("warden"))
    }

    /// Opens the store: an error here (a corrupt or locked database, a malformed DSN) stops
    /// the server at start, with what to do about it. A Redis that is down at start is not an
    /// error: the store reconnects when it comes back, and the fail mode applies meanwhile.
    pub fn open(&self) -> anyhow::Result<Arc<dyn CounterStore>> {
        match self.dsn.as_deref() {
            None => {
                let path = self.dir.join(DATABASE_FILE);
                let store = SqliteCounterStore::open(&path, self.fail_mode)
                    .with_context(|| format!("opening the counter store {}", path.display()))?;
                Ok(Arc::new(store))
            }
            Some("memory:") => Ok(Arc::new(MemoryCounterStore::default())),
            Some(dsn) if dsn.starts_with("redis://") || dsn.starts_with("rediss://") => {
                let ca = match &self.ca_file {
                    Some(path) => Some(std::fs::read(path).with_context(|| {
                        format!("reading the Redis CA file {}", path.display())
                    })?),
                    None => None,
                };
                let store = RedisCounterStore::open_with_ca(dsn, &self.prefix, self.fail_mode, ca)
                    .context("the --state-dsn Redis address")?;
                Ok(Arc::new(store))
            }
            Some(other) => anyhow::bail!(
                "--state-dsn {:?}: expected redis://…, rediss://… or memory:",
                shown(other)
            ),
        }
    }
}

/// A DSN as it may be logged: without its password.
pub(crate) fn shown(dsn: &str) -> String {
    match url::Url::parse(dsn) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "(not a URL)".to_string(),
    }
}
