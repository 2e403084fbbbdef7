//! Tasks (issue 19): a call run as an MCP task outlives its request, so its id is a handle a
//! client keeps. Every attempt to reach another grant's task (by its id, by guessing ids, by
//! hostile ids), to read a result after it expired, to cancel or answer someone else's task,
//! to flood the server with tasks, to list tasks, or to outrun the task limits from the code.
//! Each case drives a real `warden serve --http` through rmcp's client, with two token grants.

use std::time::{Duration, Instant};

use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, GetTaskParams, UpdateTaskParams,
};
use rmcp::service::{RunningService, ServiceError};
use serde_json::{Value, json};
use warden::contract::{ErrorInfo, ExecutionResult, Status};

use crate::common::{HttpServer, TasksClient, tasks_client};
use crate::harness::*;

const ALICE: &str = "tasks-alice-6f1d0c3b9a2e4857";
const BOB: &str = "tasks-bob-3a8e5c1f7d9b2046";

type Client = RunningService<RoleClient, TasksClient>;

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A server for one case (each case its own, so that no process outlives the suite): two
/// grants, small task caps, results kept for one second.
fn server() -> HttpServer {
    let policy = format!(
        r#"[grants.alice]
token_sha256 = "{alice}"

[grants.bob]
token_sha256 = "{bob}"

[tasks]
max_per_grant = 3
max_tasks = 4
keep_results_s = 1
poll_interval_ms = 50
default_timeout_ms = 20000
max_timeout_ms = 20000
fuel = 40000000000
"#,
        alice = sha256_hex(ALICE),
        bob = sha256_hex(BOB),
    );
    HttpServer::start(&policy, &[])
}

async fn client(server: &HttpServer, token: &str) -> Client {
    tasks_client(&server.url, token).await
}

fn call(code: &str) -> CallToolRequestParams {
    CallToolRequestParams::new("execute_code").with_arguments(
        json!({"language": "javascript", "code": code})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    )
}

/// Starts `code` as a task: its id, or what came back instead.
async fn start(c: &Client, code: &str) -> Result<String, Value> {
    match c.peer().call_tool_once(call(code)).await {
        Ok(CallToolResponse::Task(task)) => Ok(task.task.task_id),
        Ok(CallToolResponse::Complete(result)) => {
            Err(result.structured_content.unwrap_or(Value::Null))
        }
        Ok(other) => Err(json!(format!("{other:?}"))),
        Err(e) => Err(json!(e.to_string())),
    }
}

/// The JSON-RPC error of a failed request (code and message), or the status it got.
fn error_of<T>(answer: Result<T, ServiceError>, status: impl Fn(&T) -> String) -> Value {
    match answer {
        Ok(value) => json!({"answered": status(&value)}),
        Err(ServiceError::McpError(e)) => json!({"code": e.code.0, "message": e.message}),
        Err(e) => json!({"transport": e.to_string()}),
    }
}

async fn get(c: &Client, id: &str) -> Value {
    let answer = c.peer().get_task(GetTaskParams::new(id)).await;
    error_of(answer, |t| {
        serde_json::to_value(t.task.status())
            .unwrap_or_default()
            .to_string()
    })
}

async fn cancel(c: &Client, id: &str) -> Value {
    error_of(
        c.peer().cancel_task(CancelTaskParams::new(id)).await,
        |_| "ack".into(),
    )
}

async fn update(c: &Client, id: &str) -> Value {
    let mut answer = rmcp::model::InputResponses::new();
    answer.insert(
        "approval-1".into(),
        json!({"action": "accept", "content": {"approve": true}}),
    );
    error_of(
        c.peer()
            .update_task(UpdateTaskParams::new(id, answer))
            .await,
        |_| "ack".into(),
    )
}

/// The task's status, polled until it is one of `until` (or 30 s pass).
async fn wait(c: &Client, id: &str, until: &[&str]) -> String {
    let started = Instant::now();
    loop {
        let status = match c.peer().get_task(GetTaskParams::new(id)).await {
            Ok(t) => serde_json::to_value(t.task.status())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            Err(e) => format!("error: {e}"),
        };
        if until.contains(&status.as_str()) || started.elapsed() > Duration::from_secs(30) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The answer to an unknown id, with the id replaced so that answers can be compared.
fn masked(answer: &Value, id: &str) -> Value {
    json!({
        "code": answer["code"],
        "message": answer["message"].as_str().map(|m| m.replace(id, "ID")),
    })
}

/// A case's findings: `problems` empty when everything held.
fn verdict(problems: Vec<String>, details: Value) -> ExecutionResult {
    let mut result = ExecutionResult::without_run(Status::Ok, ErrorInfo::raised("", ""));
    result.error = None;
    result.result = json!({"problems": problems, "details": details});
    result
}

fn no_problems(o: &Outcome) -> Result<(), String> {
    match o.result.result["problems"].as_array() {
        Some(problems) if problems.is_empty() => Ok(()),
        _ => Err(o.result.result.to_string()),
    }
}

const SPIN: &str = "while (true) {}";

fn other_grants_task(_: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let server = server();
        let (alice, bob) = (client(&server, ALICE).await, client(&server, BOB).await);
        let mut problems = Vec::new();
        let id = match start(&alice, SPIN).await {
            Ok(id) => id,
            Err(e) => return verdict(vec![format!("no task: {e}")], Value::Null),
        };
        let never = format!("task-{}", "f".repeat(32));
        let theirs = [
            get(&bob, &id).await,
            cancel(&bob, &id).await,
            update(&bob, &id).await,
        ];
        let unknown = [
            get(&bob, &never).await,
            cancel(&bob, &never).await,
            update(&bob, &never).await,
        ];
        for (t, u) in theirs.iter().zip(&unknown) {
            if masked(t, &id) != masked(u, &never) || t["code"] != json!(-32602) {
                problems.push(format!(
                    "another grant's task answered {t}, an unknown one {u}"
                ));
            }
        }
        // Bob's cancel and answer did nothing: Alice's task runs on, and is hers to stop.
        let still = wait(&alice, &id, &["working"]).await;
        if still != "working" {
            problems.push(format!("after bob's attempts alice's task is {still}"));
        }
        let _ = cancel(&alice, &id).await;
        let ended = wait(&alice, &id, &["cancelled"]).await;
        if ended != "cancelled" {
            problems.push(format!("alice's own cancel left it {ended}"));
        }
        verdict(problems, json!({"theirs": theirs, "unknown": unknown}))
    })
}

fn guessed_ids(_: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let server = server();
        let (alice, bob) = (client(&server, ALICE).await, client(&server, BOB).await);
        let mut problems = Vec::new();
        let id = match start(&alice, SPIN).await {
            Ok(id) => id,
            Err(e) => return verdict(vec![format!("no task: {e}")], Value::Null),
        };
        // Neighbours of a real id, counters, UUID shapes, and hostile strings.
        let mut guesses: Vec<String> = (0..16)
            .map(|i| {
                let mut near = id.clone();
                near.replace_range(id.len() - 1.., &format!("{i:x}"));
                near
            })
            .filter(|g| g != &id)
            .collect();
        guesses.extend((0..200).map(|n| format!("task-{n:032x}")));
        guesses.extend(
            [
                "",
                "0",
                "1",
                "task-",
                "00000000-0000-4000-8000-000000000000",
                "../../etc/passwd",
                "task-\r\nX-Injected: 1",
                "<script>alert(1)</script>",
                "%00",
            ]
            .map(String::from),
        );
        guesses.push("x".repeat(100_000));
        guesses.push(id.to_uppercase());
        let mut answers = std::collections::BTreeSet::new();
        for guess in &guesses {
            for client in [&bob, &alice] {
                let answer = get(client, guess).await;
                if answer.get("answered").is_some() {
                    problems.push(format!("a guessed id {guess:?} was readable: {answer}"));
                }
                let message = answer["message"].as_str().unwrap_or_default();
                if message.contains('\n') || message.contains('<') || message.len() > 120 {
                    problems.push(format!(
                        "the error echoes what the client sent: {message:?}"
                    ));
                }
                answers.insert(answer["code"].to_string());
            }
        }
        let _ = cancel(&alice, &id).await;
        verdict(
            problems,
            json!({"guesses": guesses.len(), "codes": answers.into_iter().collect::<Vec<_>>()}),
        )
    })
}

fn after_expiry(_: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let server = server();
        let alice = client(&server, ALICE).await;
        let mut problems = Vec::new();
        let id = match start(&alice, "6 * 7").await {
            Ok(id) => id,
            Err(e) => return verdict(vec![format!("no task: {e}")], Value::Null),
        };
        let done = wait(&alice, &id, &["completed"]).await;
        if done != "completed" {
            problems.push(format!("the task ended {done}"));
        }
        // Kept for one second after it ended, then gone for everyone, its owner included.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let never = format!("task-{}", "e".repeat(32));
        for (after, unknown) in [
            (get(&alice, &id).await, get(&alice, &never).await),
            (cancel(&alice, &id).await, cancel(&alice, &never).await),
            (update(&alice, &id).await, update(&alice, &never).await),
        ] {
            if masked(&after, &id) != masked(&unknown, &never) {
                problems.push(format!("after expiry: {after}, unknown: {unknown}"));
            }
        }
        verdict(problems, Value::Null)
    })
}

fn flood(_: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let server = server();
        let (alice, bob) = (client(&server, ALICE).await, client(&server, BOB).await);
        let mut problems = Vec::new();
        // 60 task creations at once from one grant: three become tasks (its cap), the rest
        // are refused with a retry hint, and the other grant still gets the one slot left.
        let attempts = futures::future::join_all((0..60).map(|_| start(&alice, SPIN))).await;
        let created: Vec<&String> = attempts.iter().filter_map(|a| a.as_ref().ok()).collect();
        let refusals: Vec<&Value> = attempts.iter().filter_map(|a| a.as_ref().err()).collect();
        if created.len() != 3 {
            problems.push(format!("{} tasks were created, not 3", created.len()));
        }
        for refused in &refusals {
            if refused["status"] != "rate_limited"
                || refused["policy"]["rule"] != "tasks.max_per_grant"
                || refused["policy"]["retry_after_ms"] != json!(50)
            {
                problems.push(format!("a refusal said {refused}"));
                break;
            }
        }
        let bobs = start(&bob, SPIN).await;
        let full = start(&bob, SPIN).await;
        match (&bobs, &full) {
            (Ok(_), Err(refused)) if refused["policy"]["rule"] == "tasks.max_tasks" => {}
            _ => problems.push(format!("bob got {bobs:?} then {full:?}")),
        }
        // Plain calls (no extension declared) are still answered meanwhile.
        let plain = crate::common::http_client(
            &server.url,
            Some(ALICE),
            crate::common::Protocol::Stateless,
        )
        .await;
        let r = crate::common::call_with(&plain, json!({"language": "javascript", "code": "1+1"}))
            .await;
        if crate::common::structured(&r)["result"] != json!(2) {
            problems.push(format!("a plain call got {:?}", r.structured_content));
        }
        for id in created {
            let _ = cancel(&alice, id).await;
        }
        if let Ok(id) = &bobs {
            let _ = cancel(&bob, id).await;
        }
        verdict(problems, json!({"refusals": refusals.len()}))
    })
}

fn enumerate(_: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let server = server();
        let bob = client(&server, BOB).await;
        let mut problems = Vec::new();
        for method in ["tasks/list", "tasks/result"] {
            let request = rmcp::model::ClientRequest::CustomRequest(
                rmcp::model::CustomRequest::new(method, Some(json!({"taskId": "task-0"}))),
            );
            match bob.peer().send_request(request).await {
                Err(ServiceError::McpError(e)) if e.code.0 == -32601 => {}
                other => problems.push(format!("{method} answered {other:?}")),
            }
        }
        verdict(problems, Value::Null)
    })
}

fn outrun_limits(_: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let server = server();
        let alice = client(&server, ALICE).await;
        let mut problems = Vec::new();
        // A task asks for an hour and spins: it gets [tasks] max_timeout_ms or its fuel, not
        // more; and the run's status says which.
        let mut request = call(SPIN);
        if let Some(args) = request.arguments.as_mut() {
            args.insert("timeout_ms".into(), json!(3_600_000));
        }
        let started = Instant::now();
        let id = match alice.peer().call_tool_once(request).await {
            Ok(CallToolResponse::Task(task)) => task.task.task_id,
            other => return verdict(vec![format!("no task: {other:?}")], Value::Null),
        };
        let ended = wait(&alice, &id, &["completed", "failed", "cancelled"]).await;
        let took = started.elapsed();
        let detail = alice
            .peer()
            .get_task(GetTaskParams::new(&id))
            .await
            .ok()
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or_default();
        let status = &detail["result"]["structuredContent"]["status"];
        if ended != "completed" || !(status == "out_of_fuel" || status == "timeout") {
            problems.push(format!("ended {ended} with {status}"));
        }
        if took > Duration::from_secs(25) {
            problems.push(format!("the task ran {took:?}, past its 20 s limit"));
        }
        verdict(
            problems,
            json!({"status": status, "took_ms": took.as_millis() as u64}),
        )
    })
}

pub fn cases(_: &Ports) -> Vec<Case> {
    vec![
        Case::custom("reading, cancelling and answering another grant's task by its id", other_grants_task)
            .must("each answer is the unknown-task error (-32602) an id that never existed gets; the owner's task runs on and only the owner stops it")
            .check(no_problems),
        Case::custom("guessing task ids: neighbours of a real id, counters, UUIDs, hostile and huge strings", guessed_ids)
            .must("nothing is readable, for the owner or anyone else; no error echoes newlines, markup or long input")
            .check(no_problems),
        Case::custom("reading, cancelling and answering a task after its result expired", after_expiry)
            .must("after keep_results_s the task is unknown to its owner too, with the same error as an id that never existed")
            .check(no_problems),
        Case::custom("flooding task creation: 60 at once from one grant", flood)
            .must("the grant gets its cap of tasks and a rate_limited result with the retry hint for the rest; the other grant gets what is left of the total; plain calls are still answered")
            .check(no_problems),
        Case::custom("listing tasks or fetching results through the removed methods", enumerate)
            .must("tasks/list and tasks/result do not exist (-32601): there is no way to enumerate tasks")
            .check(no_problems),
        Case::custom("a task asks for an hour and spins", outrun_limits)
            .must("the run stops at the task's own wall clock or fuel ([tasks]), with that status")
            .check(no_problems),
    ]
}

#[tokio::test]
async fn tasks() {
    let env = Env::new(EnvSpec {
        limits: &[],
        api: false,
        sink: false,
        network: no_network,
    });
    let cases = cases(&env.ports);
    run_table("tasks", &env, cases, Mode::Regular).await;
}
