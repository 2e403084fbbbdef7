//! Admission: the two guards between a decision and a run. [`Counted`] is a call counted in
//! its rate limits; dropped before its run started, it gives the count back, so that a caller
//! refused for load (or cancelled or timed out while queued) is not charged twice.
//! [`Admission`] hands out sandboxes: a grant under its concurrency cap, then a free permit,
//! waiting in a bounded queue. Rate limits and concurrency are separate layers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::live::Live;
use crate::contract::{ErrorInfo, ErrorKind, ExecutionResult, Status};
use crate::metrics::Metrics;
use crate::policy::{Denial, Reservation};

/// Suggested wait before retrying a call refused for load.
const BUSY_RETRY_MS: u64 = 250;

/// A call counted in its rate limits under the policy version `live`.
pub(super) struct Counted {
    live: Arc<Live>,
    reservation: Reservation,
    started: bool,
}

impl Counted {
    pub fn new(live: Arc<Live>, reservation: Reservation) -> Counted {
        Counted {
            live,
            reservation,
            started: false,
        }
    }

    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// The run started: the count stays.
    pub fn started(&mut self) {
        self.started = true;
    }

    /// The server failed the call (an internal error: it could not start the run, or lost
    /// it): as when a gateway's upstream fails, the count goes back.
    pub fn server_failed(mut self) {
        self.started = false;
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if !self.started {
            self.live.engine.refund(&self.reservation);
        }
    }
}

/// The server's sandboxes: permits for runs, the queue in front of them, and each capped
/// grant's runs in progress.
pub(super) struct Admission {
    permits: Arc<Semaphore>,
    /// Turns of tasks' runs: all sandboxes but one when there are several, so that calls
    /// answered within their request are not stuck behind tasks that run for minutes.
    task_turns: Arc<Semaphore>,
    queued: AtomicUsize,
    running_by_grant: Mutex<HashMap<String, u32>>,
    metrics: Arc<Metrics>,
}

/// A sandbox for one run: the permit (moved onto the run's thread) and the grant's slot.
pub(super) struct RunSlot<'a> {
    pub permit: OwnedSemaphorePermit,
    _grant: GrantSlot<'a>,
}

impl Admission {
    pub fn new(concurrency: usize, metrics: Arc<Metrics>) -> Admission {
        Admission {
            permits: Arc::new(Semaphore::new(concurrency)),
            task_turns: Arc::new(Semaphore::new(concurrency.saturating_sub(1).max(1))),
            queued: AtomicUsize::new(0),
            running_by_grant: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// A sandbox for a run of `grant` (at most `grant_cap` at once), or why not: `rate_limited`
    /// at once when the grant is at its cap or `max_queued` calls already wait; otherwise it
    /// waits for a permit until `deadline` (`timeout`) or cancellation.
    pub async fn acquire(
        &self,
        grant: &str,
        grant_cap: Option<u32>,
        max_queued: u32,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<RunSlot<'_>, ExecutionResult> {
        let Some(grant_slot) = GrantSlot::take(&self.running_by_grant, grant, grant_cap) else {
            return Err(self.busy(
                format!("grants.{grant}.max_concurrent_runs"),
                format!(
                    "this caller already has {} runs in progress (its limit)",
                    grant_cap.unwrap_or(0)
                ),
            ));
        };
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let max_queued = max_queued as usize;
                let position = self.queued.fetch_add(1, Ordering::SeqCst);
                self.metrics.queued().inc();
                let _queued = QueueSlot(&self.queued, &self.metrics);
                if position >= max_queued {
                    return Err(self.busy(
                        "limits.max_queued_runs".to_string(),
                        format!(
                            "the server is busy: every sandbox is running and {max_queued} calls are waiting"
                        ),
                    ));
                }
                // Wait for a free slot; the wait counts against the call's deadline.
                tokio::select! {
                    permit = self.permits.clone().acquire_owned() => permit.map_err(|_| {
                        ExecutionResult::internal("the run queue is closed (the server is shutting down)")
                    })?,
                    _ = tokio::time::sleep_until(deadline.into()) => {
                        return Err(ExecutionResult::without_run(
                            Status::Timeout,
                            ErrorInfo::new(
                                ErrorKind::Timeout,
                                "the call timed out while waiting for a free sandbox (the server is busy)",
                            ),
                        ));
                    }
                    _ = cancel.cancelled() => return Err(cancelled()),
                }
            }
        };
        // A cancellation that came while the call was admitted or queued stops it here: no
        // code of a cancelled call starts.
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        Ok(RunSlot {
            permit,
            _grant: grant_slot,
        })
    }

    /// A turn for a task's run, before it asks for a sandbox ([`Self::acquire`]); a task
    /// waits for one until its deadline.
    pub async fn task_turn(
        &self,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<OwnedSemaphorePermit, ExecutionResult> {
        tokio::select! {
            permit = self.task_turns.clone().acquire_owned() => permit.map_err(|_| {
                ExecutionResult::internal("the task queue is closed (the server is shutting down)")
            }),
            _ = tokio::time::sleep_until(deadline.into()) => Err(ExecutionResult::without_run(
                Status::Timeout,
                ErrorInfo::new(
                    ErrorKind::Timeout,
                    "the task timed out while waiting for its turn (other tasks hold the sandboxes tasks may use)",
                ),
            )),
            _ = cancel.cancelled() => Err(cancelled()),
        }
    }

    /// A call refused for load: `rate_limited`, with a retry hint.
    fn busy(&self, rule: String, reason: String) -> ExecutionResult {
        let mut denial = Denial::new(Status::RateLimited, rule, reason);
        denial.decision.retry_after_ms = Some(BUSY_RETRY_MS);
        self.metrics.denied(&denial.decision.rule);
        ExecutionResult::stopped(denial.status, denial.decision)
    }

    /// Calls running or waiting for a sandbox right now.
    pub fn in_flight(&self) -> i64 {
        self.metrics.active().get() + self.metrics.queued().get()
    }
}

fn cancelled() -> ExecutionResult {
    ExecutionResult::without_run(
        Status::Error,
        ErrorInfo::new(
            ErrorKind::Cancelled,
            "the call was cancelled by the client before it ran",
        ),
    )
}

/// One run of a grant with a concurrency cap, counted until dropped.
struct GrantSlot<'a> {
    running: &'a Mutex<HashMap<String, u32>>,
    grant: Option<String>,
}

impl<'a> GrantSlot<'a> {
    /// A slot, or `None` when the grant is at its cap (no cap: always a slot).
    fn take(
        running: &'a Mutex<HashMap<String, u32>>,
        grant: &str,
        cap: Option<u32>,
    ) -> Option<GrantSlot<'a>> {
        let Some(cap) = cap else {
            return Some(GrantSlot {
                running,
                grant: None,
            });
        };
        let mut map = running.lock().unwrap_or_else(PoisonError::into_inner);
        let count = map.entry(grant.to_string()).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(GrantSlot {
            running,
            grant: Some(grant.to_string()),
        })
    }
}

impl Drop for GrantSlot<'_> {
    fn drop(&mut self) {
        if let Some(grant) = &self.grant {
            let mut map = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = map.get_mut(grant) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    map.remove(grant);
                }
            }
        }
    }
}

/// A place in the queue, given back when dropped.
struct QueueSlot<'a>(&'a AtomicUsize, &'a Metrics);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        self.1.queued().dec();
    }
}
