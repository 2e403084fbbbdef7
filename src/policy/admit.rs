//! Counting a call against its rate limits, and reading counters for conditions, through the
//! [`CounterStore`]; what a call meets when the store is unavailable ([`FailMode`]).

use std::cell::RefCell;

use super::engine::{Denial, PolicyEngine};
use super::ratelimit::{
    AdmitError, Caller, CounterKey, FailMode, LimitSpec, StoreUnavailable, increment_from,
};
use super::rules::{Arguments, Counters};
use crate::contract::{ExecuteArgs, Status};

/// The rule a call refused for an unavailable store names.
pub const STORE_UNAVAILABLE_RULE: &str = "state.unavailable";

/// How soon a call refused for an unavailable store may try again: a reconnection is tried at
/// most this often (the shared stores' back-off).
const STORE_RETRY_AFTER_MS: u64 = 1_000;

/// What an admitted call counted, to give back if it never runs.
#[derive(Debug, Clone, Default)]
pub struct Reservation {
    counted: Vec<CounterKey>,
    admitted_ms: u64,
    uncounted: Option<String>,
}

impl Reservation {
    /// Why the call was let through without being counted (the store was unavailable and its
    /// fail mode is `open`), for the audit log.
    pub fn uncounted(&self) -> Option<&str> {
        self.uncounted.as_deref()
    }
}

impl PolicyEngine {
    /// Counts the call against every rate limit that applies, all or nothing.
    pub fn admit(
        &self,
        args: &ExecuteArgs,
        caller: &Caller<'_>,
        now_ms: u64,
    ) -> Result<Reservation, Denial> {
        let specs: Vec<&LimitSpec> = self.limit_specs().collect();
        self.count(&specs, Arguments::Execute(args), caller, now_ms)
    }

    pub(super) fn count(
        &self,
        limits: &[&LimitSpec],
        args: Arguments<'_>,
        caller: &Caller<'_>,
        now_ms: u64,
    ) -> Result<Reservation, Denial> {
        let (keys, specs) = self.counter_keys(limits, args, caller)?;
        if keys.is_empty() {
            return Ok(Reservation::default());
        }
        match self.counters.try_admit(&keys, now_ms) {
            Ok(()) => Ok(Reservation {
                counted: keys,
                admitted_ms: now_ms,
                uncounted: None,
            }),
            Err(AdmitError::Refused(refusal)) => {
                let spec = specs[refusal.index.min(specs.len() - 1)];
                let reason = match &spec.message {
                    Some(message) => message.clone(),
                    None => format!(
                        "at most {} calls per {:?} ({:?} scope); try again in {} ms",
                        spec.max, spec.window, spec.scope, refusal.retry_after_ms
                    )
                    .to_lowercase(),
                };
                let mut denial = Denial::new(
                    Status::RateLimited,
                    format!("rate_limit.{}", spec.counter),
                    reason,
                );
                denial.decision.retry_after_ms = Some(refusal.retry_after_ms);
                Err(denial)
            }
            Err(AdmitError::Unavailable(why)) => match self.counters.fail_mode() {
                FailMode::Closed => Err(unavailable_denial(&why)),
                FailMode::Open => {
                    tracing::warn!("{why}: the call goes through uncounted (state fail mode open)");
                    Ok(Reservation {
                        counted: Vec::new(),
                        admitted_ms: now_ms,
                        uncounted: Some(format!(
                            "{why}; its rate limits were not counted (state fail mode open)"
                        )),
                    })
                }
            },
        }
    }

    /// Gives back what an admitted call counted, when it never ran (the server was too busy,
    /// or could not start it): a failed call consumes no quota.
    pub fn refund(&self, reservation: &Reservation) {
        if !reservation.counted.is_empty()
            && let Err(why) = self
                .counters
                .refund(&reservation.counted, reservation.admitted_ms)
        {
            tracing::warn!("a call that never ran keeps its count: {why}");
        }
    }

    /// The tool's limits, then every tool's.
    pub(super) fn limit_specs(&self) -> impl Iterator<Item = &LimitSpec> {
        self.policy
            .tool()
            .map(|t| t.limits.iter())
            .into_iter()
            .flatten()
            .chain(self.policy.all_tools.limits.iter())
    }

    /// The counters a call counts in, each with the limit it comes from.
    #[allow(clippy::type_complexity)]
    fn counter_keys<'s>(
        &self,
        limits: &[&'s LimitSpec],
        args: Arguments<'_>,
        caller: &Caller<'_>,
    ) -> Result<(Vec<CounterKey>, Vec<&'s LimitSpec>), Denial> {
        // The same counter named twice (e.g. by the tool and by all_tools) is one counter: the
        // call counts once, against the smaller max.
        let mut keys: Vec<CounterKey> = Vec::new();
        let mut key_specs: Vec<&LimitSpec> = Vec::new();
        for &spec in limits {
            let mut key = self.counter_key(spec, caller);
            if let Some(path) = &spec.increment_from {
                key.amount = increment_from(args, path).map_err(|why| {
                    Denial::new(Status::Denied, format!("rate_limit.{}", spec.counter), why)
                })?;
            }
            match keys
                .iter()
                .position(|k| k.key == key.key && k.window_ms == key.window_ms)
            {
                Some(i) if key.max < keys[i].max => {
                    keys[i] = key;
                    key_specs[i] = spec;
                }
                Some(_) => {}
                None => {
                    keys.push(key);
                    key_specs.push(spec);
                }
            }
        }
        Ok((keys, key_specs))
    }

    /// The counter `spec` names for `caller`; an upstream document's counters are its own.
    pub(super) fn counter_key(&self, spec: &LimitSpec, caller: &Caller<'_>) -> CounterKey {
        let mut key = CounterKey::for_caller(spec, caller);
        if let Some(server) = &self.upstream {
            key.key = format!("upstream:{server}:{}", key.key);
        }
        key
    }
}

fn unavailable_denial(why: &StoreUnavailable) -> Denial {
    let mut denial = Denial::new(
        Status::Denied,
        STORE_UNAVAILABLE_RULE,
        format!(
            "{why}; the call is refused because its limits cannot be checked (state fail mode closed)"
        ),
    );
    denial.decision.retry_after_ms = Some(STORE_RETRY_AFTER_MS);
    denial
}

/// Counters as a caller's conditions see them now. A counter that cannot be read reads as
/// zero, and the failure is kept for [`Reader::unavailable_denial`].
pub(super) struct Reader<'a> {
    engine: &'a PolicyEngine,
    caller: &'a Caller<'a>,
    now: u64,
    unavailable: RefCell<Option<StoreUnavailable>>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(engine: &'a PolicyEngine, caller: &'a Caller<'a>, now: u64) -> Reader<'a> {
        Reader {
            engine,
            caller,
            now,
            unavailable: RefCell::new(None),
        }
    }

    /// The denial for a call whose conditions read a counter the store could not give, when
    /// the store fails closed.
    pub(super) fn unavailable_denial(&self) -> Option<Denial> {
        let why = self.unavailable.borrow();
        match (why.as_ref(), self.engine.counters.fail_mode()) {
            (Some(why), FailMode::Closed) => Some(unavailable_denial(why)),
            (Some(why), FailMode::Open) => {
                tracing::warn!("{why}: counter conditions read zero (state fail mode open)");
                None
            }
            (None, _) => None,
        }
    }
}

impl Counters for Reader<'_> {
    fn current(&self, counter: &str) -> u64 {
        let Some(spec) = self.engine.limits_by_counter.get(counter) else {
            return 0;
        };
        let key = self.engine.counter_key(spec, self.caller);
        match self
            .engine
            .counters
            .current(&key.key, key.window_ms, self.now)
        {
            Ok(n) => n,
            Err(why) => {
                self.unavailable.borrow_mut().get_or_insert(why);
                0
            }
        }
    }
}
