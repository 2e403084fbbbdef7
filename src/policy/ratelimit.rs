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

pub trait CounterStore: Send + Sync {
    /// Atomically: if every counter has room in its current window, counts the call in all of
    /// them; otherwise counts nothing and names the first full one.
    fn try_admit(&self, counters: &[CounterKey], now_ms: u64) -> Result<(), Refusal>;

    /// Gives back a call admitted at `admitted_ms` that the server then could not start (it
    /// was refused for load), in every counter whose window is still the one it counted in.
    fn refund(&self, counters: &[CounterKey], admitted_ms: u64);

    /// What `counter` has counted in its window at `now_ms` (0 for a counter never used).
    fn current(&self, key: &str, window_ms: u64, now_ms: u64) -> u64;
}

/// The embedded store: one mutex around a map, so admission is atomic.
#[derive(Debug, Default)]
pub struct MemoryCounterStore {
    windows: Mutex<HashMap<(String, u64), FixedWindow>>,
}

#[derive(Debug, Clone, Copy)]
struct FixedWindow {
    start_ms: u64,
    count: u64,
}

/// Above this many tracked counters, ones whose window has passed are dropped.
const PRUNE_ABOVE: usize = 10_000;

impl CounterStore for MemoryCounterStore {
    fn try_admit(&self, counters: &[CounterKey], now_ms: u64) -> Result<(), Refusal> {
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
                return Err(Refusal {
                    index,
                    retry_after_ms: (start + c.window_ms).saturating_sub(now_ms).max(1),
                });
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

    fn refund(&self, counters: &[CounterKey], admitted_ms: u64) {
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
    }

    fn current(&self, key: &str, window_ms: u64, now_ms: u64) -> u64 {
        let windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        windows
            .get(&(key.to_string(), window_ms))
            .filter(|w| w.start_ms == window_start(now_ms, window_ms))
            .map_or(0, |w| w.count)
    }
}

fn window_start(now_ms: u64, window_ms: u64) -> u64 {
    now_ms - now_ms % window_ms.max(1)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(name: &str, window_ms: u64, max: u64) -> CounterKey {
        CounterKey {
            key: name.to_string(),
            window_ms,
            max,
            amount: 1,
        }
    }

    #[test]
    fn admits_up_to_max_per_window_then_says_when_to_retry() {
        let store = MemoryCounterStore::default();
        let k = [key("calls", 1000, 2)];
        assert!(store.try_admit(&k, 10_100).is_ok());
        assert!(store.try_admit(&k, 10_200).is_ok());
        assert_eq!(
            store.try_admit(&k, 10_300),
            Err(Refusal {
                index: 0,
                retry_after_ms: 700
            })
        );
        assert!(store.try_admit(&k, 11_000).is_ok(), "a new window starts");
    }

    #[test]
    fn a_refund_gives_the_call_back_only_in_its_own_window() {
        let store = MemoryCounterStore::default();
        let k = [key("calls", 1000, 1)];
        assert!(store.try_admit(&k, 10_100).is_ok());
        assert!(store.try_admit(&k, 10_200).is_err());
        store.refund(&k, 10_100);
        assert!(
            store.try_admit(&k, 10_300).is_ok(),
            "the refunded slot is free again"
        );
        // A refund for an earlier window must not free the current one.
        store.refund(&k, 9_100);
        assert!(store.try_admit(&k, 10_400).is_err());
        // Nor go below zero.
        store.refund(&k, 10_100);
        store.refund(&k, 10_100);
        assert!(store.try_admit(&k, 10_500).is_ok());
        assert!(store.try_admit(&k, 10_600).is_err());
    }

    #[test]
    fn a_refusal_consumes_nothing_anywhere() {
        let store = MemoryCounterStore::default();
        let wide = key("wide", 60_000, 10);
        let narrow = key("narrow", 60_000, 1);
        assert!(store.try_admit(&[wide.clone(), narrow.clone()], 0).is_ok());
        for _ in 0..5 {
            assert_eq!(
                store
                    .try_admit(&[wide.clone(), narrow.clone()], 1)
                    .unwrap_err()
                    .index,
                1
            );
        }
        // `wide` counted only the one admitted call: nine more fit.
        for _ in 0..9 {
            assert!(store.try_admit(std::slice::from_ref(&wide), 2).is_ok());
        }
        assert!(store.try_admit(&[wide], 3).is_err());
    }

    #[test]
    fn a_call_counts_its_amount_and_a_refund_gives_it_back() {
        let store = MemoryCounterStore::default();
        let spend = |amount| CounterKey {
            amount,
            ..key("spend", 60_000, 10_000)
        };
        assert!(store.try_admit(&[spend(6_000)], 1_000).is_ok());
        assert_eq!(store.current("spend", 60_000, 2_000), 6_000);
        assert!(store.try_admit(&[spend(4_001)], 2_000).is_err(), "past max");
        assert!(store.try_admit(&[spend(4_000)], 2_000).is_ok(), "up to max");
        store.refund(&[spend(4_000)], 2_000);
        assert_eq!(store.current("spend", 60_000, 3_000), 6_000);
        assert_eq!(store.current("spend", 60_000, 61_000), 0, "a new window");
        assert!(store.try_admit(&[spend(0)], 3_000).is_ok());
        assert!(
            store.try_admit(&[key("never", 60_000, 0)], 3_000).is_err(),
            "max 0 refuses every call"
        );
    }

    #[test]
    fn limits_naming_the_same_counter_share_it() {
        let store = MemoryCounterStore::default();
        let spec = LimitSpec::new("runs", Window::Minute, 2, Scope::Grant);
        let alice = Caller {
            grant: "alice",
            session: "s1",
        };
        let alice_elsewhere = Caller {
            grant: "alice",
            session: "s2",
        };
        let bob = Caller {
            grant: "bob",
            session: "s3",
        };
        assert!(
            store
                .try_admit(&[CounterKey::for_caller(&spec, &alice)], 0)
                .is_ok()
        );
        assert!(
            store
                .try_admit(&[CounterKey::for_caller(&spec, &alice_elsewhere)], 0)
                .is_ok()
        );
        assert!(
            store
                .try_admit(&[CounterKey::for_caller(&spec, &alice)], 0)
                .is_err()
        );
        assert!(
            store
                .try_admit(&[CounterKey::for_caller(&spec, &bob)], 0)
                .is_ok(),
            "grants are apart"
        );
    }

    #[test]
    fn concurrent_admission_is_exact() {
        let store = std::sync::Arc::new(MemoryCounterStore::default());
        let k = [key("c", 60_000, 10)];
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..100)
                .map(|_| {
                    let store = store.clone();
                    let k = k.clone();
                    s.spawn(move || usize::from(store.try_admit(&k, 5).is_ok()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 10);
    }

    proptest! {
        /// However calls arrive, no window ever admits more than `max`, and a call is refused
        /// only when its window is full; retry hints point at the window's end.
        #[test]
        fn never_more_than_max_per_window(
            max in 1u64..5,
            window_ms in 1u64..50,
            steps in proptest::collection::vec(0u64..20, 1..200),
        ) {
            let store = MemoryCounterStore::default();
            let k = [key("p", window_ms, max)];
            let mut now = 0u64;
            let mut per_window: HashMap<u64, u64> = HashMap::new();
            for step in steps {
                now += step;
                let start = now - now % window_ms;
                let used = per_window.get(&start).copied().unwrap_or(0);
                match store.try_admit(&k, now) {
                    Ok(()) => {
                        prop_assert!(used < max);
                        per_window.insert(start, used + 1);
                    }
                    Err(r) => {
                        prop_assert_eq!(used, max);
                        prop_assert_eq!(now + r.retry_after_ms, start + window_ms);
                    }
                }
            }
        }
    }
}
