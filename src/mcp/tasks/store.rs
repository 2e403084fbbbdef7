//! The store of a server's tasks: each bound to the grant that started it, capped per grant and
//! in all, what they keep counted against a budget, and forgotten `keep` after they ended.
//!
//! rmcp's own `TaskManager` is not used: it knows no owner, counts a task's lifetime from its
//! creation (a long run would be aborted at its TTL, not stopped by Warden's limits), and has no
//! budget for the results it keeps.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rmcp::ErrorData;
use rmcp::model::{
    DetailedTask, InputRequest, InputRequests, InputResponses, JsonObject, Task, TaskPayload,
    TaskStatus,
};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{TaskContext, TaskEnd, TaskQuota, TaskRefused};

/// What a task costs the store besides its result (the entry, its id, timestamps, its owner):
/// so that many tiny results cannot grow the store without bound under the byte budget.
const ENTRY_BYTES: u64 = 1024;

/// The tasks of one server (every transport and MCP session shares it).
#[derive(Default)]
pub struct TaskStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    tasks: HashMap<String, Entry>,
    /// What every kept entry takes ([`Entry::bytes`] summed).
    bytes: u64,
    /// The server is stopping: no new task.
    closed: bool,
}

pub(super) struct Entry {
    owner: String,
    pub(super) task: Task,
    /// Set once, when the work ended.
    pub(super) outcome: Option<TaskPayload>,
    /// Open questions: the request, and where its answer goes.
    pub(super) pending: BTreeMap<String, (InputRequest, oneshot::Sender<Value>)>,
    pub(super) asked: HashSet<String>,
    cancel: CancellationToken,
    /// When a finished task is forgotten.
    expires: Option<Instant>,
    created: Instant,
    keep: Duration,
    bytes: u64,
}

impl Entry {
    pub(super) fn touch(&mut self) {
        self.task.last_updated_at = rmcp::task_manager::current_timestamp();
        self.task.status = self.status();
    }

    fn status(&self) -> TaskStatus {
        match &self.outcome {
            Some(payload) => payload.status(),
            None if !self.pending.is_empty() => TaskStatus::InputRequired,
            None => TaskStatus::Working,
        }
    }

    fn detailed(&self) -> DetailedTask {
        let payload = match &self.outcome {
            Some(payload) => payload.clone(),
            None if !self.pending.is_empty() => TaskPayload::InputRequired {
                input_requests: self
                    .pending
                    .iter()
                    .map(|(key, (request, _))| (key.clone(), request.clone()))
                    .collect::<InputRequests>(),
            },
            None => TaskPayload::Working,
        };
        DetailedTask::new(self.task.clone(), payload)
    }
}

impl TaskStore {
    pub fn new() -> Arc<TaskStore> {
        Arc::new(TaskStore::default())
    }

    /// Creates a task for `owner` whose work `make` returns, and starts it; the task is
    /// readable (`get`) before this returns. Refused when `quota` is full.
    pub fn spawn<F, W>(
        self: &Arc<Self>,
        owner: &str,
        quota: &TaskQuota,
        make: F,
    ) -> Result<Task, TaskRefused>
    where
        F: FnOnce(TaskContext) -> W,
        W: Future<Output = TaskEnd> + Send + 'static,
    {
        let id = new_task_id().map_err(|e| TaskRefused {
            rule: "tasks",
            reason: format!("no task id could be made: {e}"),
            retry_after_ms: quota.poll_interval_ms,
        })?;
        let cancel = CancellationToken::new();
        let task = {
            let mut inner = self.lock();
            inner.sweep(Instant::now());
            inner.admit(owner, quota)?;
            let now = rmcp::task_manager::current_timestamp();
            let keep_ms = u64::try_from(quota.keep.as_millis()).unwrap_or(u64::MAX);
            let task = Task::new(id.clone(), TaskStatus::Working, now.clone(), now)
                .with_ttl_ms(keep_ms)
                .with_poll_interval_ms(quota.poll_interval_ms);
            inner.bytes += ENTRY_BYTES;
            inner.tasks.insert(
                id.clone(),
                Entry {
                    owner: owner.to_string(),
                    task: task.clone(),
                    outcome: None,
                    pending: BTreeMap::new(),
                    asked: HashSet::new(),
                    cancel: cancel.clone(),
                    expires: None,
                    created: Instant::now(),
                    keep: quota.keep,
                    bytes: ENTRY_BYTES,
                },
            );
            task
        };
        let work = make(TaskContext {
            id: id.clone(),
            store: self.clone(),
            cancel,
        });
        let running = tokio::spawn(work);
        let store = self.clone();
        tokio::spawn(async move {
            // A panic in the work must still end the task (not leave it `working`).
            let end = match running.await {
                Ok(end) => end,
                Err(e) if e.is_panic() => {
                    tracing::error!(task = %id, "a task's work panicked");
                    TaskEnd::Failed(ErrorData::internal_error(
                        "the task failed inside the server",
                        None,
                    ))
                }
                Err(_) => TaskEnd::Cancelled,
            };
            store.settle(&id, end);
        });
        Ok(task)
    }

    /// The task `id` of `owner`, in full (`tasks/get`). Unknown, expired and other owners'
    /// tasks get the same invalid-params error.
    pub fn get(&self, owner: &str, id: &str) -> Result<DetailedTask, ErrorData> {
        let mut inner = self.lock();
        inner.sweep(Instant::now());
        inner.owned(owner, id).map(|entry| entry.detailed())
    }

    /// Answers open questions of a task (`tasks/update`); keys it did not ask, or asked and
    /// got answered already, are ignored.
    pub fn update(
        &self,
        owner: &str,
        id: &str,
        responses: InputResponses,
    ) -> Result<(), ErrorData> {
        let mut inner = self.lock();
        inner.sweep(Instant::now());
        let entry = inner.owned(owner, id)?;
        for (key, value) in responses {
            if let Some((_, answer)) = entry.pending.remove(&key) {
                // The asker may have gone (cancelled): the answer is then moot.
                let _ = answer.send(value);
            }
        }
        entry.touch();
        Ok(())
    }

    /// Asks a task to stop (`tasks/cancel`); a finished task is left as it is.
    pub fn cancel(&self, owner: &str, id: &str) -> Result<(), ErrorData> {
        let mut inner = self.lock();
        inner.sweep(Instant::now());
        let entry = inner.owned(owner, id)?;
        entry.cancel.cancel();
        Ok(())
    }

    /// Stops every task (the server is stopping).
    pub fn stop_all(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        for entry in inner.tasks.values() {
            entry.cancel.cancel();
        }
    }

    /// Tasks running or waiting, and the bytes everything kept takes.
    pub fn usage(&self) -> (usize, u64) {
        let mut inner = self.lock();
        inner.sweep(Instant::now());
        let live = inner.tasks.values().filter(|e| e.outcome.is_none()).count();
        (live, inner.bytes)
    }

    fn settle(&self, id: &str, end: TaskEnd) {
        let (payload, size) = match end {
            TaskEnd::Completed(result) => {
                let (result, size) = to_object(&result);
                (TaskPayload::Completed { result }, size)
            }
            TaskEnd::Failed(error) => {
                let (error, size) = to_object(&error);
                (TaskPayload::Failed { error }, size)
            }
            TaskEnd::Cancelled => (TaskPayload::Cancelled, 0),
        };
        let mut inner = self.lock();
        let Some(entry) = inner.tasks.get_mut(id) else {
            return;
        };
        entry.pending.clear();
        entry.outcome = Some(payload);
        entry.task.status_message = None;
        entry.touch();
        // Kept `keep` from now: `ttlMs` (from creation) becomes exact; until now it said the
        // least the task would be kept, `keep`.
        let now = Instant::now();
        let kept_for = now.duration_since(entry.created).saturating_add(entry.keep);
        entry.task.ttl_ms = Some(u64::try_from(kept_for.as_millis()).unwrap_or(u64::MAX));
        entry.expires = Some(now.checked_add(entry.keep).unwrap_or(now));
        entry.bytes += size;
        inner.bytes += size;
    }

    pub(super) fn with_entry<T>(&self, id: &str, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        self.lock().tasks.get_mut(id).map(f)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn sweep(&mut self, now: Instant) {
        let mut freed = 0;
        self.tasks.retain(|_, entry| {
            let keep = entry.expires.is_none_or(|at| at > now);
            if !keep {
                freed += entry.bytes;
            }
            keep
        });
        self.bytes -= freed;
    }

    /// Whether `quota` has room for another task of `owner`. Refusals name the caller's own
    /// numbers only: nothing tells one grant what others run.
    fn admit(&self, owner: &str, quota: &TaskQuota) -> Result<(), TaskRefused> {
        if self.closed {
            return Err(TaskRefused {
                rule: "tasks",
                reason: "the server is stopping".into(),
                retry_after_ms: quota.poll_interval_ms,
            });
        }
        let live = self.tasks.values().filter(|e| e.outcome.is_none());
        let (mine, all) = live.fold((0u32, 0u32), |(mine, all), e| {
            (mine + u32::from(e.owner == owner), all + 1)
        });
        let retry_after_ms = quota.poll_interval_ms;
        if mine >= quota.per_owner {
            return Err(TaskRefused {
                rule: "tasks.max_per_grant",
                reason: format!(
                    "this caller already has {mine} tasks running or waiting (the policy allows {})",
                    quota.per_owner
                ),
                retry_after_ms,
            });
        }
        if all >= quota.total {
            return Err(TaskRefused {
                rule: "tasks.max_tasks",
                reason: "the server runs as many tasks as its policy allows".into(),
                retry_after_ms,
            });
        }
        // A grant may keep its share of the budget (as many parts as it may run tasks), so that
        // one grant's results cannot keep every other grant from tasks.
        let share = u64::try_from(
            u128::from(quota.max_kept_bytes) * u128::from(quota.per_owner)
                / u128::from(quota.total.max(1)),
        )
        .unwrap_or(u64::MAX);
        let mine_bytes: u64 = self
            .tasks
            .values()
            .filter(|e| e.owner == owner)
            .map(|e| e.bytes)
            .sum();
        let (full, whose) = if mine_bytes + ENTRY_BYTES > share {
            (Some(share), Some(owner))
        } else if self.bytes + ENTRY_BYTES > quota.max_kept_bytes {
            (Some(quota.max_kept_bytes), None)
        } else {
            (None, None)
        };
        if let Some(limit) = full {
            // Room comes back when the oldest kept result (the caller's, for its share)
            // expires.
            let now = Instant::now();
            let soonest = self
                .tasks
                .values()
                .filter(|e| whose.is_none_or(|o| e.owner == o))
                .filter_map(|e| e.expires)
                .min()
                .map_or(retry_after_ms, |at| {
                    u64::try_from(at.saturating_duration_since(now).as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1)
                });
            return Err(TaskRefused {
                rule: "tasks.max_kept_bytes",
                reason: match whose {
                    Some(_) => format!(
                        "this caller's finished tasks keep its share of the results budget ({limit} bytes)"
                    ),
                    None => "the results kept for finished tasks fill the server's budget".into(),
                },
                retry_after_ms: soonest,
            });
        }
        Ok(())
    }

    fn owned(&mut self, owner: &str, id: &str) -> Result<&mut Entry, ErrorData> {
        match self.tasks.get_mut(id) {
            Some(entry) if entry.owner == owner => Ok(entry),
            _ => Err(unknown_task(id)),
        }
    }
}

/// The one answer for a task that does not exist, expired, or is not the caller's.
fn unknown_task(id: &str) -> ErrorData {
    // An id is echoed only if it looks like one of ours: the message must not carry
    // whatever a client sends.
    let shown = if id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        id
    } else {
        "(malformed id)"
    };
    ErrorData::invalid_params(format!("unknown task: {shown}"), None)
}

/// 128 random bits: ids cannot be guessed, and they are safe in the `Mcp-Name` header.
fn new_task_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("task-{hex}"))
}

/// `value` as the JSON object the wire carries, and its size in bytes.
fn to_object(value: &impl serde::Serialize) -> (JsonObject, u64) {
    let size = serde_json::to_vec(value).map_or(0, |v| v.len() as u64);
    match serde_json::to_value(value) {
        Ok(Value::Object(object)) => (object, size),
        // Cannot happen for results and errors; keep the wire shape even so.
        _ => (JsonObject::new(), size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{CallToolResult, ContentBlock};

    fn quota() -> TaskQuota {
        TaskQuota {
            per_owner: 2,
            total: 3,
            keep: Duration::from_secs(60),
            max_kept_bytes: 1 << 20,
            poll_interval_ms: 100,
        }
    }

    fn done(text: &str) -> TaskEnd {
        TaskEnd::Completed(CallToolResult::success(vec![ContentBlock::text(text)]))
    }

    async fn settled(store: &TaskStore, owner: &str, id: &str) -> DetailedTask {
        for _ in 0..200 {
            let task = store.get(owner, id).unwrap();
            if task.status().is_terminal() {
                return task;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("task {id} did not end");
    }

    #[tokio::test]
    async fn a_task_is_readable_at_once_and_only_by_its_owner() {
        let store = TaskStore::new();
        let task = store
            .spawn("alice", &quota(), |_| async { done("hi") })
            .unwrap();
        assert!(task.task_id.starts_with("task-") && task.task_id.len() == 37);
        assert_eq!(task.ttl_ms, Some(60_000));
        let finished = settled(&store, "alice", &task.task_id).await;
        assert_eq!(finished.status(), TaskStatus::Completed);
        let theirs = store.get("bob", &task.task_id).unwrap_err();
        let unknown = store.get("bob", "task-nope").unwrap_err();
        assert_eq!(theirs.code, unknown.code);
        assert_eq!(
            theirs.message.replace(&task.task_id, "ID"),
            unknown.message.replace("task-nope", "ID")
        );
        assert!(store.cancel("bob", &task.task_id).is_err());
        assert!(
            store
                .update("bob", &task.task_id, InputResponses::new())
                .is_err()
        );
    }

    #[tokio::test]
    async fn quotas_refuse_with_the_rule_and_free_up_when_tasks_end() {
        let store = TaskStore::new();
        let hold = CancellationToken::new();
        let mut ids = Vec::new();
        for owner in ["a", "a", "b"] {
            let hold = hold.clone();
            let task = store
                .spawn(owner, &quota(), move |_| async move {
                    hold.cancelled().await;
                    done("ok")
                })
                .unwrap();
            ids.push((owner, task.task_id));
        }
        let mine = store
            .spawn("a", &quota(), |_| async { done("x") })
            .unwrap_err();
        assert_eq!(mine.rule, "tasks.max_per_grant");
        assert_eq!(mine.retry_after_ms, 100);
        let all = store
            .spawn("c", &quota(), |_| async { done("x") })
            .unwrap_err();
        assert_eq!(all.rule, "tasks.max_tasks");
        hold.cancel();
        for (owner, id) in &ids {
            settled(&store, owner, id).await;
        }
        assert!(store.spawn("a", &quota(), |_| async { done("x") }).is_ok());
    }

    #[tokio::test]
    async fn finished_tasks_are_forgotten_after_keep_and_bounded_by_bytes() {
        let store = TaskStore::new();
        let short = TaskQuota {
            keep: Duration::from_millis(300),
            max_kept_bytes: 2 * ENTRY_BYTES + 100,
            per_owner: 3,
            total: 3,
            ..quota()
        };
        let first = store.spawn("a", &short, |_| async { done("1") }).unwrap();
        settled(&store, "a", &first.task_id).await;
        let second = store.spawn("a", &short, |_| async { done("2") }).unwrap();
        settled(&store, "a", &second.task_id).await;
        // Two entries and their results fill the budget: the next is refused until the
        // oldest expires, and the hint says when.
        let full = store
            .spawn("a", &short, |_| async { done("3") })
            .unwrap_err();
        assert_eq!(full.rule, "tasks.max_kept_bytes");
        assert!(full.retry_after_ms <= 300, "{full:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(store.get("a", &first.task_id).is_err(), "expired");
        assert_eq!(store.usage(), (0, 0));
        assert!(store.spawn("a", &short, |_| async { done("3") }).is_ok());
    }

    #[tokio::test]
    async fn one_grant_keeps_only_its_share_of_the_budget() {
        let store = TaskStore::new();
        // Two of four parts each: alice's two results fill her share, not bob's.
        let q = TaskQuota {
            per_owner: 2,
            total: 4,
            max_kept_bytes: 4 * ENTRY_BYTES + 400,
            ..quota()
        };
        for _ in 0..2 {
            let t = store.spawn("alice", &q, |_| async { done("a") }).unwrap();
            settled(&store, "alice", &t.task_id).await;
        }
        let refused = store
            .spawn("alice", &q, |_| async { done("a") })
            .unwrap_err();
        assert_eq!(refused.rule, "tasks.max_kept_bytes");
        assert!(refused.reason.contains("share"), "{}", refused.reason);
        assert!(store.spawn("bob", &q, |_| async { done("b") }).is_ok());
        // A stopping store takes no new task.
        store.stop_all();
        let closed = store.spawn("bob", &q, |_| async { done("b") }).unwrap_err();
        assert_eq!(closed.reason, "the server is stopping");
    }

    #[tokio::test]
    async fn questions_are_answered_by_update_and_withdrawn_by_cancel() {
        let store = TaskStore::new();
        let request: InputRequest = serde_json::from_value(serde_json::json!({
            "method": "elicitation/create",
            "params": {"mode": "form", "message": "ok?", "requestedSchema": {"type": "object", "properties": {}}}
        }))
        .unwrap();
        let asked = request.clone();
        let task = store
            .spawn("a", &quota(), move |ctx| async move {
                let first = ctx.ask("first", asked.clone()).await;
                assert!(
                    ctx.ask("first", asked.clone()).await.is_none(),
                    "keys are unique"
                );
                match first {
                    Some(answer) => done(&answer.to_string()),
                    None => TaskEnd::Cancelled,
                }
            })
            .unwrap();
        let id = task.task_id;
        let mut waiting = None;
        for _ in 0..200 {
            let t = store.get("a", &id).unwrap();
            if t.status() == TaskStatus::InputRequired {
                waiting = Some(t);
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let waiting = serde_json::to_value(waiting.expect("input_required")).unwrap();
        assert!(waiting["inputRequests"]["first"]["method"].is_string());
        let mut answer = InputResponses::new();
        answer.insert("first".into(), serde_json::json!({"action": "accept"}));
        answer.insert("never-asked".into(), serde_json::json!(1));
        store.update("a", &id, answer).unwrap();
        let end = serde_json::to_value(settled(&store, "a", &id).await).unwrap();
        assert_eq!(end["status"], "completed");

        let parked = store
            .spawn("a", &quota(), move |ctx| async move {
                match ctx.ask("q", request).await {
                    Some(_) => done("answered"),
                    None => TaskEnd::Cancelled,
                }
            })
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        store.cancel("a", &parked.task_id).unwrap();
        let end = settled(&store, "a", &parked.task_id).await;
        assert_eq!(end.status(), TaskStatus::Cancelled);
        // Cancelling a finished task is a no-op, not an error.
        store.cancel("a", &parked.task_id).unwrap();
    }

    #[tokio::test]
    async fn a_panicking_task_fails_instead_of_staying_working() {
        let store = TaskStore::new();
        let task = store
            .spawn("a", &quota(), |_| async { panic!("boom") })
            .unwrap();
        let end = serde_json::to_value(settled(&store, "a", &task.task_id).await).unwrap();
        assert_eq!(end["status"], "failed");
        assert!(end["error"]["code"].is_number());
    }

    #[test]
    fn hostile_ids_are_not_echoed() {
        let e = unknown_task("<script>\u{0}");
        assert_eq!(e.message, "unknown task: (malformed id)");
    }
}
