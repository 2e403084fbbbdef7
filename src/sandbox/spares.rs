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
//!
//! The server's thread runs only on CPU time no other thread wants ([`Background::IdleTime`]):
//! woken by a take, a normal thread was placed on the run's own CPU and preempted the run
//! while the other CPU idled (docs/benchmarks.md, issue 16). Under full load it may then not
//! run for a while; calls meanwhile start their own instances and drop their own stores, which
//! is the work the thread would have done, on a CPU that had none to spare.

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
pub(super) type Maker<S = Spare> = Box<dyn Fn() -> wasmtime::Result<S> + Send + Sync>;

/// How the background thread competes for the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Background {
    /// Linux's `SCHED_IDLE`: never preempts a normal thread, and a CPU running only such
    /// threads counts as idle when the kernel places a waking one.
    IdleTime,
    /// Like any other thread (tests whose progress must not depend on the machine's load).
    #[cfg_attr(not(test), allow(dead_code))]
    Normal,
}

/// Generic over what it keeps only so that its tests can count drops; the sandbox keeps
/// [`Spare`]s.
pub(super) struct Spares<S: Send + 'static = Spare> {
    shared: Arc<Shared<S>>,
}

struct Shared<S> {
    state: Mutex<State<S>>,
    wake: Condvar,
}

struct State<S> {
    ready: HashMap<&'static str, Vec<S>>,
    retired: Vec<S>,
    /// Retired stores the thread is dropping right now (they still hold their slots).
    tearing_down: usize,
    stop: bool,
}

impl<S> Default for State<S> {
    fn default() -> Self {
        State {
            ready: HashMap::new(),
            retired: Vec::new(),
            tearing_down: 0,
            stop: false,
        }
    }
}

impl<S: Send + 'static> Spares<S> {
    /// Starts the thread that keeps `per_guest` spares of each guest in `makers` ready and
    /// drops retired stores. With `per_guest == 0` nothing is made ahead of time; retired
    /// stores are still dropped off the caller's path.
    pub fn start(
        makers: Vec<(&'static str, Maker<S>)>,
        per_guest: usize,
        background: Background,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("warden-spares".into())
            .spawn(move || {
                if background == Background::IdleTime
                    && let Err(e) = run_in_idle_time_only()
                {
                    tracing::warn!("the spares thread keeps a normal priority: {e}");
                }
                worker.keep_ready(&makers, per_guest)
            })?;
        Ok(Spares { shared })
    }

    /// A spare of `guest`, if one is ready.
    pub fn take(&self, guest: &'static str) -> Option<S> {
        let spare = self.shared.lock().ready.get_mut(guest)?.pop();
        if spare.is_some() {
            self.shared.wake.notify_one();
        }
        spare
    }

    /// Hands an instance over to be dropped off the caller's path (or drops it here when the
    /// background thread is behind).
    pub fn retire(&self, instance: S) {
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

impl<S: Send + 'static> Drop for Spares<S> {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
    }
}

/// Puts the calling thread under `SCHED_IDLE` (Linux applies it per thread).
fn run_in_idle_time_only() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread, and `param` is a valid sched_param for the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// After a failed instantiation the thread waits this long before trying that guest again
/// (the pool may be momentarily full); calls meanwhile start their own instances.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(200);

impl<S> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, State<S>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn keep_ready(&self, makers: &[(&'static str, Maker<S>)], per_guest: usize) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    /// Counts its drops, and which of them happened on the spares thread.
    struct Counted(Arc<Drops>);

    #[derive(Default)]
    struct Drops {
        all: AtomicUsize,
        on_spares_thread: AtomicUsize,
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.all.fetch_add(1, Ordering::SeqCst);
            if std::thread::current().name() == Some("warden-spares") {
                self.0.on_spares_thread.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn start(drops: &Arc<Drops>, make_takes: Duration) -> Spares<Counted> {
        start_keeping(1, drops, make_takes)
    }

    fn start_keeping(
        per_guest: usize,
        drops: &Arc<Drops>,
        make_takes: Duration,
    ) -> Spares<Counted> {
        let drops = drops.clone();
        let maker: Maker<Counted> = Box::new(move || {
            std::thread::sleep(make_takes);
            Ok(Counted(drops.clone()))
        });
        Spares::start(vec![("guest", maker)], per_guest, Background::Normal)
            .expect("the spares thread starts")
    }

    /// A liveness bound, not a timing: the thread has far longer than it needs.
    fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "never happened: {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn every_take_is_followed_by_a_new_spare_even_when_the_thread_slept() {
        let drops = Arc::new(Drops::default());
        let spares = start(&drops, Duration::ZERO);
        for round in 0..200 {
            let mut taken = None;
            eventually(&format!("a spare for take {round}"), || {
                taken = spares.take("guest");
                taken.is_some()
            });
            // Now and then let the thread go back to waiting before the next take.
            if round % 10 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert!(spares.take("other").is_none());
    }

    /// What the server's second spare is for: calls back to back while the thread is still
    /// making the replacement of the first take.
    #[test]
    fn with_two_kept_a_call_right_after_another_finds_a_spare_while_the_next_is_made() {
        let drops = Arc::new(Drops::default());
        // Far longer than the two takes below are apart.
        let spares = start_keeping(2, &drops, Duration::from_millis(300));
        for round in 0..3 {
            eventually(&format!("two spares ready ({round})"), || {
                spares.shared.lock().ready.get("guest").map_or(0, Vec::len) == 2
            });
            let first = spares.take("guest");
            let second = spares.take("guest");
            assert!(first.is_some() && second.is_some(), "round {round}");
            assert!(
                spares.take("guest").is_none(),
                "only two are kept ({round})"
            );
        }
    }

    #[test]
    fn in_idle_time_the_thread_makes_its_spares_under_sched_idle() {
        let policies = Arc::new(Mutex::new(Vec::new()));
        let seen = policies.clone();
        let maker: Maker<i32> = Box::new(move || {
            // SAFETY: pid 0 is the calling thread.
            let policy = unsafe { libc::sched_getscheduler(0) };
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(policy);
            Ok(policy)
        });
        let spares = Spares::start(vec![("guest", maker)], 1, Background::IdleTime)
            .expect("the spares thread starts");
        let mut taken = None;
        eventually("a spare made in idle time", || {
            taken = spares.take("guest");
            taken.is_some()
        });
        assert_eq!(taken, Some(libc::SCHED_IDLE));
        let policies = policies.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(
            policies.iter().all(|&p| p == libc::SCHED_IDLE),
            "{policies:?}"
        );
    }

    #[test]
    fn retired_instances_are_dropped_on_the_spares_thread_while_it_is_busy_or_asleep() {
        let drops = Arc::new(Drops::default());
        // Making a spare takes a while, so most retirements find the thread busy.
        let spares = start(&drops, Duration::from_millis(2));
        let mut retired = 0;
        for round in 0..100 {
            if let Some(spare) = spares.take("guest") {
                spares.retire(spare);
                retired += 1;
            }
            if round % 10 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        assert!(retired > 0, "no spare was ever ready");
        eventually("every retired instance dropped", || {
            drops.all.load(Ordering::SeqCst) >= retired
        });
        // Beyond MAX_RETIRED waiting a retirement drops inline; the rest go to the thread.
        assert!(drops.on_spares_thread.load(Ordering::SeqCst) > 0);
        let at_end = drops.all.load(Ordering::SeqCst);
        assert_eq!(at_end, retired, "only retired instances were dropped");
    }
}
