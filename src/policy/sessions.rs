//! `[sessions]`: calls that continue one another (a notebook's cells), opt-in. Without the
//! section there are no sessions, and a call asking for one is refused as invalid.

use serde::{Deserialize, Serialize};

use super::locate::Issue;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Live sessions in all (default 16). Each keeps an interpreter (its memory, up to
    /// `limits.memory_bytes`) and a workspace.
    pub max_sessions: u32,
    /// Live sessions per grant (default 4).
    pub max_per_grant: u32,
    /// A session nobody used for this long ends (default 600 s).
    pub idle_timeout_s: u64,
    /// A session ends this long after it opened, used or not (default 3600 s).
    pub max_lifetime_s: u64,
    /// Calls one session may take (default 1000); the next is refused and the session ends.
    pub max_calls: u64,
    /// Only the MCP session that opened a session may use it (default false: any MCP session
    /// of the same grant may, e.g. a client that reconnected).
    pub bind_to_mcp_session: bool,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            max_sessions: 16,
            max_per_grant: 4,
            idle_timeout_s: 600,
            max_lifetime_s: 3600,
            max_calls: 1000,
            bind_to_mcp_session: false,
        }
    }
}

impl SessionSettings {
    pub(super) fn validate(&self) -> Result<(), Issue> {
        for (key, value) in [
            ("max_sessions", u64::from(self.max_sessions)),
            ("max_per_grant", u64::from(self.max_per_grant)),
            ("idle_timeout_s", self.idle_timeout_s),
            ("max_lifetime_s", self.max_lifetime_s),
            ("max_calls", self.max_calls),
        ] {
            if value == 0 {
                return Err(Issue::new(
                    &["sessions", key],
                    format!(
                        "[sessions] {key} must be at least 1 (leave [sessions] out to turn sessions off)"
                    ),
                ));
            }
        }
        if self.max_per_grant > self.max_sessions {
            return Err(Issue::new(
                &["sessions", "max_per_grant"],
                format!(
                    "[sessions] max_per_grant ({}) cannot exceed max_sessions ({})",
                    self.max_per_grant, self.max_sessions
                ),
            ));
        }
        Ok(())
    }
}
