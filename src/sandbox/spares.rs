//! Instances made ahead of time, and stores torn down after the fact, both on a background
//! thread, so that a call's path holds only its own run.
//!
//! A spare is a guest instantiated from the same pre-initialized snapshot as an inline start,
//! under placeholder limits, and never run: the call that takes it gives it its own limits,
//! doors and output (`run::begin_call`) before any guest code of the call runs, and nothing
//! else ever uses it. Once a run has ended its store is retired here and dropped by the same
//! thread, which is where the pool resets the instance's memory (`memset` of the part kept
//! resident, `madvise` of the rest). Both only move work off the caller's path: a run is
//! exactly as fresh as an inline one, and the pool holds slots for every spare and every
//! retired store in addition to the runs (`pooling_config` in mod.rs).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::component::ComponentSession;
use super::core_module::CoreSession;

/// Stores waiting to be torn down; beyond this a run drops its own store inline.
pub(super) const MAX_RETIRED: usize = 2;

/// A guest instance that has not run (a spare), or whose run is over (retired).
pub(super) enum Spare {
    Core(CoreSession),
    Component(ComponentSession),
}

impl Spare {
    pub fn into_core(self) -> Option<CoreSession> {
        match self {
            Spare::Core(session) => Some(session),
            Spare::Component(_) => None,
        }
    }

    pub fn into_component(self) -> Option<ComponentSession> {
        match self {
            Spare::Component(session) => Some(session),
            Spare::Core(_) => None,
        }
    }
}

/// Makes one spare of a guest.
pub(super) type Maker = Box<dyn Fn() -> wasmtime::Result<Spare> + Send + Sync>;

pub(super) struct Spares {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    ready: HashMap<&'static str, Vec<Spare>>,
    retired: Vec<Spare>,
    /// Retired stores the thread is dropping right now (they still hold their slots).
    tearing_down: usize,
    stop: bool,
}

impl Spares {
    /// Starts the thread that keeps `per_guest` spares of each guest in `makers` ready and
    /// drops retired stores. With `per_guest == 0` nothing is made ahead of time; retired
    /// stores are still dropped off the caller's path.
    pub fn start(makers: Vec<(&'static str, Maker)>, per_guest: usize) -> std::io::Result<Spares> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("warden-spares".into())
            .spawn(move || worker.keep_ready(&makers, per_guest))?;
        Ok(Spares { shared })
    }

    /// A spare of `guest`, if one is ready.
    pub fn take(&self, guest: &'static str) -> Option<Spare> {
        let spare = self.shared.lock().ready.get_mut(guest)?.pop();
        if spare.is_some() {
            self.shared.wake.notify_one();
        }
        spare
    }

    /// Hands an instance over to be dropped off the caller's path (or drops it here when the
    /// background thread is behind).
    pub fn retire(&self, instance: Spare) {
        let mut state = self.shared.lock();
        if state.stop || state.retired.len() + state.tearing_down >= MAX_RETIRED {
            drop(state);
            drop(instance);
            return;
        }
        state.retired.push(instance);
        drop(state);
        self.shared.wake.notify_one();
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
    }
}

/// After a failed instantiation the thread waits this long before trying that guest again
/// (the pool may be momentarily full); calls meanwhile start their own instances.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(200);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn keep_ready(&self, makers: &[(&'static str, Maker)], per_guest: usize) {
        let mut failed_last_round = false;
        loop {
            let mut state = self.lock();
            let retired = std::mem::take(&mut state.retired);
            state.tearing_down = retired.len();
            let missing = makers
                .iter()
                .find(|(name, _)| state.ready.get(name).map_or(0, Vec::len) < per_guest);
            if state.stop {
                return;
            }
            if retired.is_empty() && (missing.is_none() || failed_last_round) {
                let timeout = if failed_last_round {
                    RETRY_AFTER_FAILURE
                } else {
                    Duration::from_secs(3600)
                };
                let (state, _) = self
                    .wake
                    .wait_timeout(state, timeout)
                    .unwrap_or_else(PoisonError::into_inner);
                drop(state);
                failed_last_round = false;
                continue;
            }
            drop(state);
            // Teardown first: it frees the pool slots a new spare may need.
            if !retired.is_empty() {
                drop(retired);
                self.lock().tearing_down = 0;
            }
            let Some((name, make)) = missing else {
                continue;
            };
            match make() {
                Ok(spare) => self.lock().ready.entry(name).or_default().push(spare),
                Err(e) => {
                    tracing::warn!(guest = name, "could not make a spare instance: {e:#}");
                    failed_last_round = true;
                }
            }
        }
    }
}
