//! Rate limits: fixed windows (as PolicyLayer counts them), keyed by counter name and scope.
//!
//! A call is admitted against every limit that applies to it at once, or against none: a
//! refused call consumes no quota anywhere. Counter state sits behind [`CounterStore`] so that
//! a shared store (for several replicas) can replace the in-memory one.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rules::Arguments;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSpec {
    /// Limits naming the same counter (and scope) share it.
    pub counter: String,
    pub window: Window,
    /// The most a window may count (0: every call is refused).
    pub max: u64,
    pub scope: Scope,
    /// What one call adds (default 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub increment: u64,
    /// Adds the value of this argument instead (`args.<key>...`), as PolicyLayer's
    /// `increment_from` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub increment_from: Option<String>,
    /// What the caller sees when the limit refuses a call (default: the limit, in words).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl LimitSpec {
    /// `max` per `window` of `counter` in `scope`, one per call.
    pub fn new(counter: impl Into<String>, window: Window, max: u64, scope: Scope) -> LimitSpec {
        LimitSpec {
            counter: counter.into(),
            window,
            max,
            scope,
            increment: 1,
            increment_from: None,
            message: None,
        }
    }
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    Second,
    Minute,
    Hour,
    Day,
}

impl Window {
    pub fn millis(self) -> u64 {
        match self {
            Window::Second => 1_000,
            Window::Minute => 60_000,
            Window::Hour => 3_600_000,
            Window::Day => 86_400_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The authenticated caller (`local` on stdio).
    Grant,
    /// The MCP session.
    Session,
    Global,
}

/// Who is calling, for scoped counters.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub grant: &'a str,
    pub session: &'a str,
}

/// One counter a call must fit in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterKey {
    /// `counter/scope/scope-key`, e.g. `calls/grant/local`.
    pub key: String,
    pub window_ms: u64,
    pub max: u64,
    /// What this call adds.
    pub amount: u64,
}

impl CounterKey {
    /// The counter `spec` names for `caller`, counting `spec.increment`.
    pub fn for_caller(spec: &LimitSpec, caller: &Caller<'_>) -> CounterKey {
        let scoped = match spec.scope {
            Scope::Grant => format!("grant/{}", caller.grant),
            Scope::Session => format!("session/{}", caller.session),
            Scope::Global => "global".to_string(),
        };
        CounterKey {
            key: format!("{}/{}", spec.counter, scoped),
            window_ms: spec.window.millis(),
            max: spec.max,
            amount: spec.increment,
        }
    }
}

/// Which limit refused a call, and when its window ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub index: usize,
    pub retry_after_ms: u64,
}

/// The store could not be read or written (a dead Redis, a broken database file): the limits
/// cannot be checked. What happens to the call is the store's [`FailMode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the rate-limit store is unavailable: {0}")]
pub struct StoreUnavailable(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitError {
    Refused(Refusal),
    Unavailable(StoreUnavailable),
}

/// What a call meets when its counters cannot be read (PolicyLayer's `--state-fail-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Refuse every call that a limit or a counter condition applies to (audited).
    #[default]
    Closed,
    /// Let such calls through uncounted, counters read as zero (audited, warned).
    Open,
}

/// What `/healthz` says about a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    /// `memory`, `sqlite`, `redis`.
    pub kind: &'static str,
    /// Where: a file, or a Redis address without credentials.
    pub location: String,
    /// None when the store answered; else why not.
    pub unavailable: Option<String>,
}

pub trait CounterStore: Send + Sync {
    /// Atomically: if every counter has room in its current window, counts the call in all of
    /// them; otherwise counts nothing and names the first full one.
    fn try_admit(&self, counters: &[CounterKey], now_ms: u64) -> Result<(), AdmitError>;

    /// Gives back a call admitted at `admitted_ms` that the server then could not start (it
    /// was refused for load), in every counter whose window is still the one it counted in.
    fn refund(&self, counters: &[CounterKey], admitted_ms: u64) -> Result<(), StoreUnavailable>;

    /// What `counter` has counted in its window at `now_ms` (0 for a counter never used).
    fn current(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<u64, StoreUnavailable>;

    /// Marks `token` used until `expires_ms`; true only for the first claim (on any replica
    /// sharing the store). An approval is redeemed once, wherever its answer arrives.
    fn claim_once(
        &self,
        token: &str,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<bool, StoreUnavailable>;

    /// What a call meets while the store is unavailable.
    fn fail_mode(&self) -> FailMode {
        FailMode::Closed
    }

    /// Whether the store answers now (for `/healthz`; a round trip to a shared store).
    fn health(&self) -> StoreHealth;
}

/// The embedded store: one mutex around a map, so admission is atomic.
#[derive(Debug, Default)]
pub struct MemoryCounterStore {
    windows: Mutex<HashMap<(String, u64), FixedWindow>>,
    /// Claimed tokens, with their expiry.
    claims: Mutex<HashMap<String, u64>>,
}

#[derive(Debug, Clone, Copy)]
struct FixedWindow {
    start_ms: u64,
    count: u64,
}

/// Above this many tracked counters, ones whose window has passed are dropped.
const PRUNE_ABOVE: usize = 10_000;

impl CounterStore for MemoryCounterStore {
    fn try_admit(&self, counters: &[CounterKey], now_ms: u64) -> Result<(), AdmitError> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (index, c) in counters.iter().enumerate() {
            let start = window_start(now_ms, c.window_ms);
            let used = windows
                .get(&(c.key.clone(), c.window_ms))
                .filter(|w| w.start_ms == start)
                .map_or(0, |w| w.count);
            if used.saturating_add(c.amount) > c.max {
                return Err(AdmitError::Refused(Refusal {
                    index,
                    retry_after_ms: retry_after(now_ms, c.window_ms),
                }));
            }
        }
        for c in counters {
            let start = window_start(now_ms, c.window_ms);
            let w = windows
                .entry((c.key.clone(), c.window_ms))
                .or_insert(FixedWindow {
                    start_ms: start,
                    count: 0,
                });
            if w.start_ms != start {
                *w = FixedWindow {
                    start_ms: start,
                    count: 0,
                };
            }
            w.count = w.count.saturating_add(c.amount);
        }
        if windows.len() > PRUNE_ABOVE {
            windows.retain(|(_, window_ms), w| w.start_ms == window_start(now_ms, *window_ms));
        }
        Ok(())
    }

    fn refund(&self, counters: &[CounterKey], admitted_ms: u64) -> Result<(), StoreUnavailable> {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in counters {
            if let Some(w) = windows.get_mut(&(c.key.clone(), c.window_ms))
                && w.start_ms == window_start(admitted_ms, c.window_ms)
            {
                w.count = w.count.saturating_sub(c.amount);
            }
        }
        Ok(())
    }

    fn current(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<u64, StoreUnavailable> {
        let windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(windows
            .get(&(key.to_string(), window_ms))
            .filter(|w| w.start_ms == window_start(now_ms, window_ms))
            .map_or(0, |w| w.count))
    }

    fn claim_once(
        &self,
        token: &str,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<bool, StoreUnavailable> {
        let mut claims = self
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        claims.retain(|_, expires| *expires > now_ms);
        // A refused claim leaves the first one as it was (its expiry included), as the other
        // stores' insert-if-absent does.
        match claims.entry(token.to_string()) {
            std::collections::hash_map::Entry::Occupied(_) => Ok(false),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(expires_ms);
                Ok(true)
            }
        }
    }

    fn health(&self) -> StoreHealth {
        StoreHealth {
            kind: "memory",
            location: "this process".to_string(),
            unavailable: None,
        }
    }
}

/// The start of the fixed window of `window_ms` that `now_ms` falls in (windows are aligned to
/// the Unix epoch, so every store and every replica agrees on them).
pub fn window_start(now_ms: u64, window_ms: u64) -> u64 {
    now_ms - now_ms % window_ms.max(1)
}

/// How long until the window `now_ms` falls in ends (at least 1 ms).
pub fn retry_after(now_ms: u64, window_ms: u64) -> u64 {
    (window_start(now_ms, window_ms) + window_ms)
        .saturating_sub(now_ms)
        .max(1)
}

/// What a call adds to a counter that counts an argument (`increment_from`): the argument's
/// number, its fraction dropped as PolicyLayer's gateway does. A call without that number, or
/// with a negative one (which would lower the counter), is refused.
pub(super) fn increment_from<'a>(
    args: impl Into<Arguments<'a>>,
    path: &str,
) -> Result<u64, String> {
    let value = super::rules::argument(args, path)
        .ok_or_else(|| format!("increment_from path \"{path}\" not found in arguments"))?;
    let number = match &value {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        other => {
            return Err(format!(
                "increment_from \"{path}\" is {other}, not a number"
            ));
        }
    };
    if number < 0.0 || number.is_nan() {
        return Err(format!(
            "increment_from \"{path}\" is {number}: a count cannot go down"
        ));
    }
    // `as` saturates: a huge number counts as the most a counter can hold.
    Ok(number.trunc() as u64)
}
