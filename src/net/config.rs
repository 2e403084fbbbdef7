//! `[network]`: where `fetch` may go, and the caps on it. The net capability owns its settings
//! (as Spin's factors do); the policy document embeds them and locates their errors.

use serde::{Deserialize, Serialize};

use super::allowlist::{AllowList, AllowRule};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkPolicy {
    /// No rule, no request.
    pub allow: Vec<AllowRule>,
    /// Fetches one run may make (each redirect hop counts).
    pub max_fetches: u32,
    /// Largest request body a guest may send.
    pub max_request_bytes: u64,
    /// Largest response body a guest may receive; a larger one is refused, not cut.
    pub max_response_bytes: u64,
    /// Per request, also bounded by the run's remaining time.
    pub fetch_timeout_ms: u64,
    /// Redirects followed (hop by hop, each re-checked) before the fetch fails.
    pub max_redirects: u32,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        NetworkPolicy {
            allow: Vec::new(),
            max_fetches: 50,
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 8 * 1024 * 1024,
            fetch_timeout_ms: 10_000,
            max_redirects: 5,
        }
    }
}

/// A setting out of bounds: which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidSetting {
    pub key: &'static str,
    pub message: String,
}

impl NetworkPolicy {
    pub fn allow_list(&self) -> AllowList {
        AllowList::new(self.allow.clone())
    }

    pub fn validate(&self) -> Result<(), InvalidSetting> {
        const MIB: u64 = 1024 * 1024;
        let bounds = [
            ("max_fetches", u64::from(self.max_fetches), 10_000, "10000"),
            (
                "max_request_bytes",
                self.max_request_bytes,
                256 * MIB,
                "256 MiB",
            ),
            (
                "max_response_bytes",
                self.max_response_bytes,
                256 * MIB,
                "256 MiB",
            ),
            (
                "fetch_timeout_ms",
                self.fetch_timeout_ms,
                3_600_000,
                "1 hour",
            ),
            ("max_redirects", u64::from(self.max_redirects), 20, "20"),
        ];
        for (key, value, max, max_text) in bounds {
            if value > max {
                return Err(InvalidSetting {
                    key,
                    message: format!("[network] {key} may not exceed {max_text} (got {value})"),
                });
            }
        }
        if self.fetch_timeout_ms == 0 {
            return Err(InvalidSetting {
                key: "fetch_timeout_ms",
                message: "[network] fetch_timeout_ms must be greater than 0".into(),
            });
        }
        Ok(())
    }
}
