//! Driving a guest call to its end on the calling thread. Guests run as async calls that yield
//! every [`FUEL_BETWEEN_CHECKS`] units of fuel; at each yield [`drive`] looks at the run's
//! [`Stop`] (its deadline and cancel flag) and drops the call when the run must end. That keeps
//! the wall-clock limit and cancellation without epoch checks in the compiled code, which
//! Cranelift puts at every function entry and loop header beside fuel's own (8-15% of compute,
//! docs/benchmarks.md).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

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

/// A run's cancellation flag, shared with whoever may cancel it.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag {
    raised: Arc<AtomicBool>,
    /// The caller's own cancellation, seen without anyone waiting on it: a run that started on
    /// the async worker that took its request holds that task until it ends (see
    /// [`may_block`]), so nothing there could copy the token into the flag meanwhile.
    linked: Option<tokio_util::sync::CancellationToken>,
}

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }
    /// A flag that is also raised when `token` is cancelled.
    pub fn linked(token: tokio_util::sync::CancellationToken) -> Self {
        Self {
            raised: Arc::default(),
            linked: Some(token),
        }
    }
    pub fn cancel(&self) {
        self.raised.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.raised.load(Ordering::Relaxed)
            || self
                .linked
                .as_ref()
                .is_some_and(tokio_util::sync::CancellationToken::is_cancelled)
    }
}

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
///
/// On a worker of a multi-threaded tokio runtime, a call that is not over at its first yield
/// goes on under [`may_block`]: short runs (most calls, well within one slice) finish on the
/// thread that read their request, with no hand-off to another thread and back.
pub fn drive<T>(
    stop: &Stop,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    let mut call = std::pin::pin!(call);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    // Also before the first poll: a run whose deadline passed while it queued never starts.
    stop.check().map_err(wasmtime::Error::new)?;
    if let Poll::Ready(outcome) = call.as_mut().poll(&mut context) {
        return outcome;
    }
    may_block(|| {
        loop {
            // A fuel yield has already woken us, so this returns at once. Only a call waiting
            // on something else would sleep here, and then not past a look at the cancel flag.
            let left = stop.deadline().saturating_duration_since(Instant::now());
            std::thread::park_timeout(left.min(CANCEL_LOOK));
            stop.check().map_err(wasmtime::Error::new)?;
            if let Poll::Ready(outcome) = call.as_mut().poll(&mut context) {
                return outcome;
            }
        }
    })
}

/// Runs `work`, which may block or take long, on this thread. On a worker of a multi-threaded
/// tokio runtime the worker's other tasks go to another thread first
/// (`tokio::task::block_in_place`), so that they are not held up; elsewhere (a blocking-pool
/// thread, the spares thread, a current-thread runtime's blocking pool) it just runs `work`.
/// Host calls that wait (fetch, upstream tools, a person's approval) go through this.
pub fn may_block<R>(work: impl FnOnce() -> R) -> R {
    let on_multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if on_multi_threaded {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Waits for `future` on `runtime` from a run's thread, through [`may_block`]: how a host call
/// waits for the server's async work (a fetch, an upstream tool, a person's answer).
pub fn wait_on<F: std::future::Future>(runtime: &tokio::runtime::Handle, future: F) -> F::Output {
    may_block(|| runtime.block_on(future))
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

    /// A run driven on the only worker of a multi-threaded runtime must not hold up that
    /// runtime's other tasks once it goes past its first slice: here the task that cancels it
    /// is one of them. Were the worker held, the run would end at its deadline instead.
    #[test]
    fn a_long_call_on_an_async_worker_lets_the_workers_other_tasks_run() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .unwrap();
        let token = tokio_util::sync::CancellationToken::new();
        let outcome = runtime.block_on(async {
            let canceller = {
                let token = token.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    token.cancel();
                })
            };
            let run = tokio::spawn(async move {
                let stop = Stop::new(
                    Instant::now() + Duration::from_secs(20),
                    CancelFlag::linked(token),
                );
                let started = Instant::now();
                let outcome = drive(&stop, yielding_forever(Arc::default()));
                (interruption(outcome), started.elapsed())
            });
            canceller.await.unwrap();
            run.await.unwrap()
        });
        assert_eq!(outcome.0, "the run was cancelled");
        assert!(outcome.1 < Duration::from_secs(10), "took {:?}", outcome.1);
    }

    #[test]
    fn may_block_runs_its_work_wherever_it_is_called() {
        // Outside any runtime, on a current-thread runtime and on a multi-threaded one's
        // worker, where a nested `block_on` is then allowed.
        assert_eq!(may_block(|| 1), 1);
        let current = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(current.block_on(async { may_block(|| 2) }), 2);
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let handle = multi.handle().clone();
        let nested = multi.block_on(async move {
            tokio::spawn(async move { may_block(|| handle.block_on(async { 3 })) })
                .await
                .unwrap()
        });
        assert_eq!(nested, 3);
    }
}
