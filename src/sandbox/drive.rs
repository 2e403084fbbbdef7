//! Driving a guest call to its end on the calling thread. Guests run as async calls that yield
//! every [`FUEL_BETWEEN_CHECKS`] units of fuel; at each yield [`drive`] looks at the run's
//! [`Stop`] (its deadline and cancel flag) and drops the call when the run must end. That keeps
//! the wall-clock limit and cancellation without epoch checks in the compiled code, which
//! Cranelift puts at every function entry and loop header beside fuel's own (8-15% of compute,
//! docs/benchmarks.md).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::CancelFlag;

/// Why a run was stopped before it ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum Interrupted {
    #[error("the run's deadline passed")]
    Deadline,
    #[error("the run was cancelled")]
    Cancelled,
}

/// How much fuel a guest burns between two looks at its deadline and cancel flag: a third to
/// two thirds of a millisecond of compute on the benchmark machine (JavaScript burns ~15 units
/// a microsecond, Python ~8), a few milliseconds on a slow one. Each look is a switch out of
/// the guest's stack and back, well under a microsecond.
pub(super) const FUEL_BETWEEN_CHECKS: u64 = 5_000_000;

/// When a running guest must stop: its deadline and its cancel flag. Shared between the
/// store (a tool call that waited for a person moves the deadline) and [`drive`].
#[derive(Debug, Clone)]
pub struct Stop {
    deadline: Arc<Mutex<Instant>>,
    cancel: CancelFlag,
}

impl Stop {
    pub(super) fn new(deadline: Instant, cancel: CancelFlag) -> Stop {
        Stop {
            deadline: Arc::new(Mutex::new(deadline)),
            cancel,
        }
    }

    fn deadline(&self) -> Instant {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Whether the run must end now, and why.
    pub(super) fn check(&self) -> Result<(), Interrupted> {
        if self.is_cancelled() {
            Err(Interrupted::Cancelled)
        } else if Instant::now() >= self.deadline() {
            Err(Interrupted::Deadline)
        } else {
            Ok(())
        }
    }

    pub(super) fn postpone(&self, by: Duration) {
        let mut deadline = self.deadline.lock().unwrap_or_else(PoisonError::into_inner);
        *deadline = deadline.checked_add(by).unwrap_or(*deadline);
    }
}

/// Runs a guest call (an instantiation or an export) on this thread until it ends, or until
/// `stop` says the run must end: then the call is dropped, which unwinds the guest's stack, and
/// the outcome is an [`Interrupted`]. Host calls run inside `call` and are not interrupted
/// (each bounds itself by the deadline; see `capability.rs`).
pub fn drive<T>(
    stop: &Stop,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    let mut call = std::pin::pin!(call);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    loop {
        // Also before the first poll: a run whose deadline passed while it queued never starts.
        stop.check().map_err(wasmtime::Error::new)?;
        if let Poll::Ready(outcome) = call.as_mut().poll(&mut context) {
            return outcome;
        }
        // A fuel yield has already woken us, so this returns at once. Only a call waiting on
        // something else would sleep here, and then not past a look at the cancel flag.
        let left = stop.deadline().saturating_duration_since(Instant::now());
        std::thread::park_timeout(left.min(CANCEL_LOOK));
    }
}

/// How long [`drive`] sleeps at most before looking at the cancel flag again.
const CANCEL_LOOK: Duration = Duration::from_millis(10);

/// Wakes the thread that drives a call.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call that never ends but yields like a guest between fuel slices.
    async fn yielding_forever(yields: Arc<Mutex<u64>>) -> wasmtime::Result<()> {
        loop {
            *yields.lock().unwrap() += 1;
            let mut yielded = false;
            std::future::poll_fn(|cx| {
                if yielded {
                    Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
        }
    }

    fn interruption(outcome: wasmtime::Result<()>) -> String {
        let error = outcome.expect_err("the call never ends on its own");
        error
            .downcast_ref::<Interrupted>()
            .map(ToString::to_string)
            .unwrap_or_else(|| format!("not an interruption: {error:#}"))
    }

    #[test]
    fn drive_stops_a_yielding_call_at_its_deadline() {
        let stop = Stop::new(
            Instant::now() + Duration::from_millis(30),
            CancelFlag::new(),
        );
        let yields = Arc::new(Mutex::new(0));
        let started = Instant::now();
        let outcome = drive(&stop, yielding_forever(yields.clone()));
        assert_eq!(interruption(outcome), "the run's deadline passed");
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(*yields.lock().unwrap() > 1, "the call ran between looks");
    }

    #[test]
    fn drive_stops_a_cancelled_call_and_honours_a_postponed_deadline() {
        let cancel = CancelFlag::new();
        let stop = Stop::new(Instant::now() + Duration::from_millis(20), cancel.clone());
        // A tool call that waited for a person moved the deadline well beyond 20 ms.
        stop.postpone(Duration::from_secs(3600));
        let canceller = {
            let cancel = cancel.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(60));
                cancel.cancel();
            })
        };
        let started = Instant::now();
        let outcome = drive(&stop, yielding_forever(Arc::default()));
        canceller.join().unwrap();
        assert_eq!(interruption(outcome), "the run was cancelled");
        assert!(started.elapsed() >= Duration::from_millis(60));
    }

    #[test]
    fn drive_returns_what_the_call_returns_and_wakes_for_a_pending_one() {
        let stop = Stop::new(Instant::now() + Duration::from_secs(60), CancelFlag::new());
        assert_eq!(drive(&stop, async { Ok(7) }).unwrap(), 7);
        let passed = Stop::new(Instant::now(), CancelFlag::new());
        let started = drive(&passed, async { panic!("a run past its deadline started") });
        assert_eq!(interruption(started), "the run's deadline passed");
        // Pending without a fuel yield: woken from another thread, not by a timer.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(11).unwrap();
        });
        let answer = drive(&stop, async { Ok(rx.await?) });
        sender.join().unwrap();
        assert_eq!(answer.unwrap(), 11);
    }
}
