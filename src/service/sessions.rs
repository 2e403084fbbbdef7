//! Code sessions: an interpreter and a workspace kept between calls, opted into by the policy
//! (`[sessions]`). A session belongs to the grant that opened it (and, where the policy says
//! so, to its MCP session): to anyone else its id is the same "no such session" as a forged
//! one. Calls on one session take turns (the interpreter is behind an async mutex). Sessions
//! live in this process's memory and end with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::files::LazyWorkspace;
use crate::policy::SessionSettings;
use crate::sandbox::KeptGuest;

/// The interpreter of a session and the guest it runs (fixed by its first call).
#[derive(Default)]
pub(super) struct Interpreter {
    pub kept: KeptGuest,
    pub guest: Option<&'static str>,
}

pub(super) struct CodeSession {
    pub id: String,
    pub grant: String,
    pub mcp_session: String,
    pub interpreter: Arc<tokio::sync::Mutex<Interpreter>>,
    pub workspace: Option<Arc<LazyWorkspace>>,
    opened: Instant,
    last_used: Mutex<Instant>,
    calls: AtomicU64,
}

impl CodeSession {
    /// Counts a call; returns its number in the session.
    pub fn begin_call(&self) -> u64 {
        *self
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.calls.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Seconds since the last call began.
    pub fn idle_s(&self) -> u64 {
        self.last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
            .as_secs()
    }

    /// Why the session is over at `now`, if it is.
    fn expired(&self, settings: &SessionSettings, now: Instant) -> Option<&'static str> {
        let idle = *self
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(self.opened)
            >= Duration::from_secs(settings.max_lifetime_s)
        {
            Some("its maximum lifetime passed")
        } else if now.saturating_duration_since(idle)
            >= Duration::from_secs(settings.idle_timeout_s)
        {
            Some("it was idle too long")
        } else {
            None
        }
    }

    /// Seconds until the lifetime ends.
    pub fn expires_in_s(&self, settings: &SessionSettings) -> u64 {
        settings
            .max_lifetime_s
            .saturating_sub(self.opened.elapsed().as_secs())
    }
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum OpenRefused {
    #[error(
        "this caller already has {0} open sessions (the policy's sessions.max_per_grant); close one with session_action \"close\""
    )]
    PerGrant(u32),
    #[error("the server has {0} open sessions (the policy's sessions.max_sessions)")]
    Total(u32),
    #[error("no unguessable session id could be made (the system's random source failed)")]
    NoRandomness,
}

#[derive(Default)]
pub(super) struct Sessions {
    table: Mutex<HashMap<String, Arc<CodeSession>>>,
}

impl Sessions {
    /// Opens a session for `grant` (from MCP session `mcp_session`), within the limits.
    /// `capacity` is what the sandbox's instance pool was sized for at start.
    pub fn open(
        &self,
        settings: &SessionSettings,
        capacity: u32,
        grant: &str,
        mcp_session: &str,
        workspace: Option<LazyWorkspace>,
    ) -> Result<Arc<CodeSession>, OpenRefused> {
        let id = new_id().ok_or(OpenRefused::NoRandomness)?;
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let total = settings.max_sessions.min(capacity);
        if table.len() >= total as usize {
            return Err(OpenRefused::Total(total));
        }
        let mine = table.values().filter(|s| s.grant == grant).count();
        if mine >= settings.max_per_grant as usize {
            return Err(OpenRefused::PerGrant(settings.max_per_grant));
        }
        let now = Instant::now();
        let session = Arc::new(CodeSession {
            id: id.clone(),
            grant: grant.to_string(),
            mcp_session: mcp_session.to_string(),
            interpreter: Arc::default(),
            workspace: workspace.map(Arc::new),
            opened: now,
            last_used: Mutex::new(now),
            calls: AtomicU64::new(0),
        });
        table.insert(id, session.clone());
        Ok(session)
    }

    /// The session `id` if `grant` (and, when bound, `mcp_session`) may use it.
    pub fn find(
        &self,
        settings: &SessionSettings,
        id: &str,
        grant: &str,
        mcp_session: &str,
    ) -> Option<Arc<CodeSession>> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table
            .get(id)
            .filter(|s| s.grant == grant)
            .filter(|s| !settings.bind_to_mcp_session || s.mcp_session == mcp_session)
            .cloned()
    }

    /// The sessions `grant` may use, oldest first.
    pub fn of(
        &self,
        settings: &SessionSettings,
        grant: &str,
        mcp_session: &str,
    ) -> Vec<Arc<CodeSession>> {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let mut mine: Vec<_> = table
            .values()
            .filter(|s| s.grant == grant)
            .filter(|s| !settings.bind_to_mcp_session || s.mcp_session == mcp_session)
            .cloned()
            .collect();
        mine.sort_by_key(|s| s.opened);
        mine
    }

    /// Removes a session; its workspace goes when the last call holding it ends.
    pub fn close(&self, id: &str) -> Option<Arc<CodeSession>> {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// Removes every session that is over (all of them when sessions are off), with why.
    pub fn sweep(
        &self,
        settings: Option<&SessionSettings>,
    ) -> Vec<(Arc<CodeSession>, &'static str)> {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.is_empty() {
            return Vec::new();
        }
        let now = Instant::now();
        let over: Vec<(String, &'static str)> = table
            .values()
            .filter_map(|s| {
                let why = match settings {
                    None => Some("the policy no longer has sessions"),
                    Some(settings) => s.expired(settings, now),
                };
                why.map(|why| (s.id.clone(), why))
            })
            .collect();
        over.into_iter()
            .filter_map(|(id, why)| table.remove(&id).map(|s| (s, why)))
            .collect()
    }

    pub fn is_open(&self, id: &str) -> bool {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(id)
    }
}

/// `s-` and 128 random bits from the OS, or nothing: a session id is a bearer of state and
/// must never be guessable.
fn new_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(format!(
        "s-{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(bind: bool) -> SessionSettings {
        SessionSettings {
            max_sessions: 3,
            max_per_grant: 2,
            bind_to_mcp_session: bind,
            ..SessionSettings::default()
        }
    }

    #[test]
    fn sessions_belong_to_their_grant_and_count_against_the_limits() {
        let sessions = Sessions::default();
        let s = settings(false);
        let a = sessions.open(&s, 3, "alice", "m1", None).unwrap();
        assert!(a.id.starts_with("s-") && a.id.len() == 34);
        assert!(
            sessions.find(&s, &a.id, "alice", "m2").is_some(),
            "any MCP session of the grant"
        );
        assert!(sessions.find(&s, &a.id, "bob", "m1").is_none());
        assert!(
            sessions
                .find(&settings(true), &a.id, "alice", "m2")
                .is_none(),
            "bound"
        );
        sessions.open(&s, 3, "alice", "m1", None).unwrap();
        assert_eq!(
            sessions.open(&s, 3, "alice", "m1", None).err(),
            Some(OpenRefused::PerGrant(2))
        );
        sessions.open(&s, 3, "bob", "m1", None).unwrap();
        assert_eq!(
            sessions.open(&s, 3, "carol", "m1", None).err(),
            Some(OpenRefused::Total(3))
        );
        assert_eq!(
            sessions.open(&s, 2, "dave", "m1", None).err(),
            Some(OpenRefused::Total(2)),
            "never more than the pool was sized for"
        );
        assert!(sessions.close(&a.id).is_some());
        assert!(!sessions.is_open(&a.id));
        assert_eq!(sessions.of(&s, "alice", "m1").len(), 1);
    }

    #[test]
    fn a_sweep_ends_what_is_over() {
        let sessions = Sessions::default();
        let s = settings(false);
        let a = sessions.open(&s, 3, "alice", "m1", None).unwrap();
        assert!(sessions.sweep(Some(&s)).is_empty());
        *a.last_used.lock().unwrap() = Instant::now() - Duration::from_secs(601);
        let swept = sessions.sweep(Some(&s));
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].1, "it was idle too long");
        let b = sessions.open(&s, 3, "alice", "m1", None).unwrap();
        assert!(b.id != a.id);
        assert_eq!(
            sessions.sweep(None)[0].1,
            "the policy no longer has sessions"
        );
    }
}
