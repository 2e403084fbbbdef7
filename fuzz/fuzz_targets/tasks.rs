//! The task store (issue 19) under arbitrary sequences of what clients and task work can do:
//! tasks of three owners created under small caps, finishing (completed, failed, cancelled),
//! asking questions, being read, answered and cancelled by their owner, by other owners and by
//! raw ids (hostile strings), and expiring.
//!
//! Asserts:
//! - nothing panics;
//! - a task is never readable, cancellable or answerable by another owner, and the answer
//!   then is exactly the one an id that never existed gets;
//! - an owner never has more live tasks than its cap, nor all owners more than the total;
//! - a task that ended keeps its status until it expires;
//! - when every task has expired, the store holds nothing.

#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rmcp::model::{CallToolResult, ContentBlock, InputRequest, InputResponses, TaskStatus};
use serde_json::json;
use tokio::sync::oneshot;
use warden::mcp::{TaskEnd, TaskQuota, TaskStore};

const OWNERS: [&str; 3] = ["alice", "bob", "it's \"quoted\""];
const RAW_IDS: [&str; 6] = [
    "",
    "task-00000000000000000000000000000000",
    "task-\r\nX: 1",
    "../../etc/passwd",
    "TASK-ABC",
    "task-ffffffffffffffffffffffffffffffff",
];

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
});

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ending {
    Complete(u16),
    Fail,
    /// Ends `cancelled` once cancelled (and not before).
    UntilCancelled,
    /// Asks a question first, then completes with the answer.
    Ask,
}

#[derive(Arbitrary, Debug)]
enum Target {
    /// The n-th task created so far.
    Task(u8),
    Raw(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Spawn {
        owner: u8,
        ending: Ending,
        short_keep: bool,
    },
    /// Lets the n-th task's work end as it was told to.
    Release(u8),
    Get {
        owner: u8,
        target: Target,
    },
    Update {
        owner: u8,
        target: Target,
        key: u8,
    },
    Cancel {
        owner: u8,
        target: Target,
    },
    Wait,
}

struct Made {
    id: String,
    owner: &'static str,
    release: Option<oneshot::Sender<()>>,
    /// The status it ended with, once seen.
    ended: Option<TaskStatus>,
}

fn quota(short_keep: bool) -> TaskQuota {
    TaskQuota {
        per_owner: 2,
        total: 4,
        keep: if short_keep {
            Duration::from_millis(1)
        } else {
            Duration::from_secs(3600)
        },
        max_kept_bytes: 64 * 1024,
        poll_interval_ms: 10,
    }
}

fn question() -> InputRequest {
    serde_json::from_value(json!({
        "method": "elicitation/create",
        "params": {"mode": "form", "message": "ok?", "requestedSchema": {"type": "object", "properties": {}}}
    }))
    .expect("an elicitation request")
}

fn done(text: String) -> TaskEnd {
    TaskEnd::Completed(CallToolResult::success(vec![ContentBlock::text(text)]))
}

/// Tasks of `owner`, and of everyone, that have not ended.
fn live(store: &TaskStore, made: &[Made], owner: &str) -> (usize, usize) {
    let running = |m: &&Made| {
        store
            .get(m.owner, &m.id)
            .is_ok_and(|t| !t.status().is_terminal())
    };
    let all: Vec<&Made> = made.iter().filter(running).collect();
    (all.iter().filter(|m| m.owner == owner).count(), all.len())
}

fn id_of<'a>(target: &'a Target, made: &'a [Made]) -> Option<&'a str> {
    match target {
        Target::Task(n) if !made.is_empty() => Some(&made[usize::from(*n) % made.len()].id),
        Target::Task(_) => None,
        Target::Raw(n) => Some(RAW_IDS[usize::from(*n) % RAW_IDS.len()]),
    }
}

/// Checks that `e`, the answer for `id`, is the unknown-task answer: the same as for an id of
/// the same shape that was never made (ours are echoed, hostile ones are not), and never an
/// echo of a line break.
fn assert_unknown(e: &rmcp::ErrorData, id: &str, store: &TaskStore, owner: &str) {
    assert_eq!(e.code.0, -32602, "{e:?}");
    assert!(!e.message.contains(['\r', '\n']), "{e:?}");
    let never = format!("task-{}", "e".repeat(32));
    if id.len() == never.len() && id.starts_with("task-") {
        let unknown = store.get(owner, &never).expect_err("an id never made");
        assert_eq!(
            e.message.replace(id, "ID"),
            unknown.message.replace(&never, "ID")
        );
    }
}

fuzz_target!(|ops: Vec<Op>| {
    if ops.len() > 64 {
        return;
    }
    RUNTIME.block_on(async {
        let store = TaskStore::new();
        let mut made: Vec<Made> = Vec::new();
        for op in ops {
            match op {
                Op::Spawn {
                    owner,
                    ending,
                    short_keep,
                } => {
                    let owner = OWNERS[usize::from(owner) % OWNERS.len()];
                    // Tasks only end concurrently: counts taken before the spawn are at least
                    // the store's at the spawn, and counts after it at most those plus the new one.
                    let (mine, all) = live(&store, &made, owner);
                    let (release, released) = oneshot::channel::<()>();
                    let spawned = store.spawn(owner, &quota(short_keep), move |task| async move {
                        match ending {
                            Ending::Complete(n) => {
                                let _ = released.await;
                                done("x".repeat(usize::from(n) % 4096))
                            }
                            Ending::Fail => {
                                let _ = released.await;
                                TaskEnd::Failed(rmcp::ErrorData::internal_error("failed", None))
                            }
                            Ending::UntilCancelled => {
                                task.cancellation().cancelled().await;
                                TaskEnd::Cancelled
                            }
                            Ending::Ask => match task.ask("q", question()).await {
                                Some(answer) => done(answer.to_string()),
                                None => TaskEnd::Cancelled,
                            },
                        }
                    });
                    match spawned {
                        Ok(task) => {
                            made.push(Made {
                                id: task.task_id,
                                owner,
                                release: Some(release),
                                ended: None,
                            });
                            let (mine, all) = live(&store, &made, owner);
                            assert!(
                                mine <= 2 && all <= 4,
                                "a task past the caps: {mine} mine, {all} in all"
                            );
                        }
                        Err(refused) => assert!(
                            mine >= 2 || all >= 4 || refused.rule == "tasks.max_kept_bytes",
                            "refused with room: {refused:?}"
                        ),
                    }
                }
                Op::Release(n) if !made.is_empty() => {
                    let i = usize::from(n) % made.len();
                    if let Some(release) = made[i].release.take() {
                        let _ = release.send(());
                    }
                }
                Op::Release(_) | Op::Wait => tokio::time::sleep(Duration::from_millis(2)).await,
                Op::Get { owner, target } => {
                    let owner = OWNERS[usize::from(owner) % OWNERS.len()];
                    let Some(id) = id_of(&target, &made).map(str::to_string) else {
                        continue;
                    };
                    let theirs = made.iter().any(|m| m.id == id && m.owner != owner);
                    match store.get(owner, &id) {
                        Ok(task) => {
                            assert!(!theirs, "{owner} read another owner's task");
                            if let Some(m) = made.iter_mut().find(|m| m.id == id) {
                                let status = task.status();
                                if let Some(ended) = m.ended {
                                    assert_eq!(ended, status, "an ended task changed status");
                                }
                                if status.is_terminal() {
                                    m.ended = Some(status);
                                }
                            }
                        }
                        Err(e) => assert_unknown(&e, &id, &store, owner),
                    }
                }
                Op::Update { owner, target, key } => {
                    let owner = OWNERS[usize::from(owner) % OWNERS.len()];
                    let Some(id) = id_of(&target, &made).map(str::to_string) else {
                        continue;
                    };
                    let theirs = made.iter().any(|m| m.id == id && m.owner != owner);
                    let mut answer = InputResponses::new();
                    answer.insert(
                        ["q", "other", ""][usize::from(key) % 3].to_string(),
                        json!({"action": "accept"}),
                    );
                    match store.update(owner, &id, answer) {
                        Ok(()) => assert!(!theirs, "{owner} answered another owner's task"),
                        Err(e) => assert_unknown(&e, &id, &store, owner),
                    }
                }
                Op::Cancel { owner, target } => {
                    let owner = OWNERS[usize::from(owner) % OWNERS.len()];
                    let Some(id) = id_of(&target, &made).map(str::to_string) else {
                        continue;
                    };
                    let theirs = made.iter().any(|m| m.id == id && m.owner != owner);
                    match store.cancel(owner, &id) {
                        Ok(()) => assert!(!theirs, "{owner} cancelled another owner's task"),
                        Err(e) => assert_unknown(&e, &id, &store, owner),
                    }
                }
            }
        }
        // Everything ends and, with a short keep, is forgotten.
        for m in &made {
            let _ = store.cancel(m.owner, &m.id);
        }
        for m in &mut made {
            if let Some(release) = m.release.take() {
                let _ = release.send(());
            }
        }
        let (live, _) = store.usage();
        for _ in 0..500 {
            if store.usage().0 == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(
            store.usage().0,
            0,
            "tasks still live after everything ended ({live} before)"
        );
        if made.iter().all(|m| store.get(m.owner, &m.id).is_err()) {
            assert_eq!(store.usage(), (0, 0), "expired tasks left bytes behind");
        }
    });
});
