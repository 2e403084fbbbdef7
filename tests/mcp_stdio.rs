//! The real binary over stdio, driven by an rmcp client: the tool contract as a client sees it.

mod common;

use std::time::{Duration, Instant};

use common::{start_server, status, structured};
use rmcp::model::{CallToolRequestParams, ClientRequest, Request};
use rmcp::service::PeerRequestOptions;
use serde_json::json;

const DATA_MUNGING: &str = r#"
class Order {
  constructor(id, customer, items) { this.id = id; this.customer = customer; this.items = items; }
  total() { return this.items.reduce((sum, i) => sum + i.price * i.qty, 0); }
}
const raw = JSON.parse(`[
  {"id": 1, "customer": "ada@example.com", "items": [{"sku": "A-1", "price": 9.5, "qty": 2}]},
  {"id": 2, "customer": "bob@example.org", "items": [{"sku": "B-2", "price": 20, "qty": 1}, {"sku": "A-1", "price": 9.5, "qty": 1}]},
  {"id": 3, "customer": "ada@example.com", "items": [{"sku": "C-3", "price": 5, "qty": 4}]}
]`);
const orders = raw.map(o => new Order(o.id, o.customer, o.items));
const byCustomer = new Map();
for (const o of orders) byCustomer.set(o.customer, (byCustomer.get(o.customer) ?? 0) + o.total());
const makeCounter = () => { let n = 0; return () => ++n; };
const next = makeCounter();
const domains = [...new Set(orders.map(o => o.customer.match(/@([\w.]+)$/)[1]))].sort();
const skuCounts = orders.flatMap(o => o.items).reduce((acc, i) => ({ ...acc, [i.sku]: (acc[i.sku] || 0) + i.qty }), {});
const enriched = await Promise.all(orders.map(async o => ({ id: o.id, seq: next(), total: o.total() })));
console.log(`processed ${orders.length} orders`);
({ totals: Object.fromEntries(byCustomer), domains, skuCounts, enriched })
"#;

#[tokio::test]
async fn lists_one_tool_with_the_contract_schemas() {
    let server = start_server(None).await;
    let tools = server.client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 1);
    let tool = &tools[0];
    assert_eq!(tool.name, "execute_code");
    let description = tool.description.as_deref().unwrap();
    assert!(
        description.contains("javascript, typescript"),
        "{description}"
    );
    assert!(description.contains("5000 ms"), "{description}");
    assert_eq!(tool.input_schema["required"], json!(["language", "code"]));
    let output = tool
        .output_schema
        .as_ref()
        .expect("an outputSchema is declared");
    assert!(
        output["properties"]["status"]["enum"]
            .as_array()
            .unwrap()
            .len()
            == 9
    );
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn realistic_javascript_program() {
    let server = start_server(None).await;
    let r = server.js(DATA_MUNGING).await;
    assert_eq!(status(&r), "ok", "{r:?}");
    assert_eq!(r.is_error, Some(false));
    let s = structured(&r);
    assert_eq!(s["stdout"], "processed 3 orders\n");
    assert_eq!(
        s["result"],
        json!({
            "totals": {"ada@example.com": 39, "bob@example.org": 29.5},
            "domains": ["example.com", "example.org"],
            "skuCounts": {"A-1": 3, "B-2": 1, "C-3": 4},
            "enriched": [{"id": 1, "seq": 1, "total": 19}, {"id": 2, "seq": 2, "total": 29.5}, {"id": 3, "seq": 3, "total": 20}]
        })
    );
    // One readable text block: stdout, then the result.
    let text = r.content[0].as_text().unwrap().text.clone();
    assert!(text.starts_with("processed 3 orders\nresult: {"), "{text}");
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn realistic_typescript_program() {
    let server = start_server(None).await;
    let code = r#"
        enum Priority { Low = 1, Medium, High }
        interface Task { title: string; priority: Priority; done: boolean; tags?: string[] }
        function groupBy<T, K extends PropertyKey>(xs: T[], key: (x: T) => K): Record<K, T[]> {
            return xs.reduce((acc, x) => { (acc[key(x)] ||= []).push(x); return acc; }, {} as Record<K, T[]>);
        }
        const tasks: Task[] = [
            { title: 'write tests', priority: Priority.High, done: false, tags: ['dev'] },
            { title: 'lunch', priority: Priority.Low, done: true },
            { title: 'review', priority: Priority.Medium, done: false },
        ];
        const open = tasks.filter((t): t is Task => !t.done).sort((a, b) => b.priority - a.priority);
        const grouped = groupBy(tasks, t => Priority[t.priority]);
        console.log(open.map(t => t.title).join(', '));
        ({ open: open.map(t => t.title), groups: Object.keys(grouped).sort(), high: Priority.High })
    "#;
    let r = server
        .call(json!({"language": "typescript", "code": code}))
        .await;
    assert_eq!(status(&r), "ok", "{r:?}");
    let s = structured(&r);
    assert_eq!(s["stdout"], "write tests, review\n");
    assert_eq!(
        s["result"],
        json!({"open": ["write tests", "review"], "groups": ["High", "Low", "Medium"], "high": 3})
    );
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn errors_limits_and_recovery_through_mcp() {
    let server = start_server(None).await;
    let cases: [(&str, &[&str]); 7] = [
        ("throw new TypeError('bad input')", &["error"]),
        ("let x = ;", &["error"]),
        ("while(true){}", &["timeout", "out_of_fuel"]),
        (
            "const a = []; while (true) a.push('x'.repeat(1 << 20) + a.length);",
            &["out_of_memory"],
        ),
        ("function f() { return f() }\nf()", &["error"]),
        ("console.log('x'.repeat(10 * 1024 * 1024))", &["ok"]),
        (
            "[typeof module, typeof process, typeof Deno, typeof std]",
            &["ok"],
        ),
    ];
    for (code, expected) in cases {
        let r = server.js(code).await;
        let got = status(&r).to_string();
        assert!(expected.contains(&got.as_str()), "{code}: got {got}: {r:?}");
        assert_eq!(r.is_error, Some(got != "ok"), "{code}");
        let s = structured(&r);
        match code {
            c if c.starts_with("throw") => {
                assert_eq!(s["error"]["type"], "TypeError");
                assert_eq!(s["error"]["message"], "bad input");
                assert!(
                    s["error"]["traceback"]
                        .as_str()
                        .unwrap()
                        .contains("main.js")
                );
            }
            c if c.starts_with("let x") => assert_eq!(s["error"]["type"], "SyntaxError"),
            c if c.starts_with("function f") => {
                assert!(
                    s["error"]["message"].as_str().unwrap().contains("stack"),
                    "{s}"
                )
            }
            c if c.starts_with("console.log") => {
                assert_eq!(s["truncated"]["stdout"], true);
                assert_eq!(s["stdout"].as_str().unwrap().len(), 1024 * 1024);
            }
            c if c.starts_with("[typeof") => assert_eq!(s["result"], json!(vec!["undefined"; 4])),
            _ => {}
        }
        // After every failure, the next run works.
        let next = server.js("6 * 7").await;
        assert_eq!(structured(&next)["result"], 42, "after {code}");
    }
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn malformed_arguments_are_tool_results_not_protocol_errors() {
    let server = start_server(None).await;
    let cases = [
        (json!({}), "`language` is required"),
        (json!({"language": "javascript"}), "`code` is required"),
        (
            json!({"language": "cobol", "code": "1"}),
            "unknown language",
        ),
        (
            json!({"language": "javascript", "code": 12}),
            "must be a string",
        ),
        (
            json!({"language": "javascript", "code": "1", "timeout_ms": "soon"}),
            "timeout_ms",
        ),
        (
            json!({"language": "javascript", "code": "x".repeat(300 * 1024)}),
            "at most 262144 bytes",
        ),
        (
            json!({"language": "javascript", "code": "1", "shell": true}),
            "unknown argument `shell`",
        ),
    ];
    for (args, expected) in cases {
        let r = server.call(args.clone()).await;
        assert_eq!(status(&r), "invalid_arguments", "{args}");
        assert_eq!(r.is_error, Some(true));
        let message = structured(&r)["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains(expected), "{args}: {message}");
    }
    assert_eq!(
        structured(&server.js("'still fine'").await)["result"],
        "still fine"
    );
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn timeout_ms_is_honoured_and_clamped() {
    let server = start_server(Some(
        "[limits]\nfuel = 1000000000000\nmax_timeout_ms = 1500\n",
    ))
    .await;
    let started = Instant::now();
    let r = server
        .call(json!({"language": "javascript", "code": "while(true){}", "timeout_ms": 200}))
        .await;
    assert_eq!(status(&r), "timeout");
    let wall = structured(&r)["usage"]["wall_ms"].as_u64().unwrap();
    assert!((200..1500).contains(&wall), "wall_ms {wall}");
    let r = server
        .call(json!({"language": "javascript", "code": "while(true){}", "timeout_ms": 100000}))
        .await;
    assert_eq!(status(&r), "timeout");
    assert!(structured(&r)["usage"]["wall_ms"].as_u64().unwrap() < 5000);
    assert!(started.elapsed() < Duration::from_secs(20));
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn cancelling_a_call_stops_its_run() {
    // One run at a time: if the cancelled run kept going, the next call would wait for it.
    let server = start_server(Some(
        "[limits]\nfuel = 1000000000000\nmax_timeout_ms = 30000\nmax_concurrent_runs = 1\n",
    ))
    .await;
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("execute_code").with_arguments(
            json!({"language": "javascript", "code": "while(true){}", "timeout_ms": 30000})
                .as_object()
                .cloned()
                .unwrap(),
        ),
    ));
    let mut options = PeerRequestOptions::no_options();
    options.timeout = Some(Duration::from_millis(500));
    let handle = server
        .client
        .send_cancellable_request(request, options)
        .await
        .unwrap();
    assert!(
        handle.await_response().await.is_err(),
        "the client gave up on the call"
    );
    let started = Instant::now();
    let r = server.js("'next'").await;
    assert_eq!(structured(&r)["result"], "next");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the cancelled run was not stopped: {:?}",
        started.elapsed()
    );
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn long_runs_report_progress() {
    let server = start_server(Some("[limits]\nfuel = 1000000000000\n")).await;
    let request = ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("execute_code").with_arguments(
            json!({"language": "javascript", "code": "while(true){}", "timeout_ms": 2600})
                .as_object()
                .cloned()
                .unwrap(),
        ),
    ));
    let handle = server
        .client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .unwrap();
    let token = handle.progress_token.clone();
    let response = handle.await_response().await.unwrap();
    assert!(format!("{response:?}").contains("timeout"));
    let progress = server.progress.lock().unwrap().clone();
    assert!(
        progress.len() >= 2,
        "expected progress after 1 s and 2 s, got {progress:?}"
    );
    assert!(progress.iter().all(|p| p.progress_token == token));
    assert!(
        progress.windows(2).all(|w| w[0].progress < w[1].progress),
        "progress increases"
    );
    // A short run sends none.
    let before = server.progress.lock().unwrap().len();
    server.js("1").await;
    assert_eq!(server.progress.lock().unwrap().len(), before);
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_session_client_that_declares_tasks_gets_its_run_as_a_task_with_progress() {
    use rmcp::model::{CallToolResponse, GetTaskParams, TaskStatus};
    // A 2025-11-25 session (initialize) whose client declares the extension: the run is a
    // task, and the connection living on, progress notifications follow the task.
    let client = common::TasksClient::default();
    let progress = client.progress.clone();
    let (client, _pid) = common::connect(None, client).await;
    let code = "const t = Date.now(); let n = 0; \
        while (Date.now() - t < 2500) { if (++n % 200000 === 0) console.log('step ' + n) } n";
    let request = CallToolRequestParams::new("execute_code").with_arguments(
        json!({"language": "javascript", "code": code})
            .as_object()
            .cloned()
            .unwrap(),
    );
    let request = ClientRequest::CallToolRequest(Request::new(request));
    let handle = client
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
        .unwrap();
    let token = handle.progress_token.clone();
    let response = handle.await_response().await.unwrap();
    let rmcp::model::ServerResult::CreateTaskResult(created) = response else {
        panic!("not a task: {response:?}");
    };
    let id = created.task.task_id;
    let started = Instant::now();
    let finished = loop {
        let task = client.get_task(GetTaskParams::new(&id)).await.unwrap();
        if task.task.status() == TaskStatus::Completed {
            break task;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{task:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let detail = serde_json::to_value(&finished).unwrap();
    let s = &detail["result"]["structuredContent"];
    assert_eq!(s["status"], "ok", "{detail}");
    assert!(s["result"].as_u64().unwrap() > 0);
    let progress = progress.lock().unwrap().clone();
    assert!(!progress.is_empty(), "no progress for the task");
    assert!(progress.iter().all(|p| p.progress_token == token));
    let messages: Vec<String> = progress.iter().filter_map(|p| p.message.clone()).collect();
    assert!(
        messages.iter().any(|m| m.contains(": step ")),
        "the progress carries what the run printed: {messages:?}"
    );
    // The same client's call as a plain request still works: it is a task too.
    let plain = client
        .call_tool_once(
            CallToolRequestParams::new("execute_code").with_arguments(
                json!({"language": "javascript", "code": "1"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert!(matches!(plain, CallToolResponse::Task(_)));
    client.cancel().await.unwrap();
}

/// Runs `runs` programs one after another (after `warm_up` to reach a steady state) and checks
/// that the server's RSS grew by less than `bound_mib`.
async fn assert_rss_bounded(
    language: &str,
    warm_up: usize,
    runs: usize,
    bound_mib: u64,
    program: impl Fn(usize) -> String,
) {
    let server = start_server(None).await;
    for i in 0..warm_up {
        server
            .call(json!({"language": language, "code": program(i)}))
            .await;
    }
    let baseline = server.rss_kib();
    for i in 0..runs {
        let r = server
            .call(json!({"language": language, "code": program(i)}))
            .await;
        assert_eq!(status(&r), "ok", "{r:?}");
    }
    let after = server.rss_kib();
    assert!(
        after < baseline + bound_mib * 1024,
        "{language}: RSS grew from {baseline} KiB to {after} KiB over {runs} runs"
    );
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn thousand_sequential_runs_keep_rss_bounded() {
    // Stated bound (README): 1,000 JavaScript runs grow the server's RSS by less than 64 MiB.
    assert_rss_bounded("javascript", 50, 1000, 64, |i| {
        format!("const xs = Array.from({{length: 100}}, (_, k) => k * {i}); xs.reduce((a, b) => a + b, 0)")
    })
    .await;
}

const PYTHON_REPORT: &str = r#"
from dataclasses import dataclass
from collections import defaultdict
import json, statistics

@dataclass
class Reading:
    sensor: str
    value: float

readings = [Reading(s, v) for s, v in json.loads('[["a", 1.5], ["b", 2.0], ["a", 2.5], ["b", 4.0]]')]
grouped = defaultdict(list)
for r in readings:
    grouped[r.sensor].append(r.value)
summary = {k: {"mean": statistics.mean(v), "max": max(v)} for k, v in sorted(grouped.items())}
print(f"{len(readings)} readings from {len(summary)} sensors")
summary
"#;

#[tokio::test]
async fn python_through_mcp() {
    let server = start_server(None).await;
    let r = server
        .call(json!({"language": "python", "code": PYTHON_REPORT}))
        .await;
    assert_eq!(status(&r), "ok", "{r:?}");
    let s = structured(&r);
    assert_eq!(s["stdout"], "4 readings from 2 sensors\n");
    assert_eq!(
        s["result"],
        json!({"a": {"mean": 2.0, "max": 2.5}, "b": {"mean": 3.0, "max": 4.0}})
    );
    for (code, expected_status, expected_type) in [
        ("1/0", "error", "ZeroDivisionError"),
        ("import os\nos._exit(3)", "error", "Exit"),
        ("x = bytearray(10**9)", "out_of_memory", "MemoryError"),
        ("import socket", "error", "ModuleNotFoundError"),
    ] {
        let r = server
            .call(json!({"language": "python", "code": code}))
            .await;
        assert_eq!(status(&r), expected_status, "{code}: {r:?}");
        assert_eq!(structured(&r)["error"]["type"], expected_type, "{code}");
        assert_eq!(r.is_error, Some(true));
        let next = server
            .call(json!({"language": "python", "code": "6 * 7"}))
            .await;
        assert_eq!(structured(&next)["result"], 42, "after {code}");
    }
    server.client.cancel().await.unwrap();
}

#[tokio::test]
async fn five_hundred_python_runs_keep_rss_bounded() {
    // Stated bound (README): 500 Python runs grow the server's RSS by less than 64 MiB.
    assert_rss_bounded("python", 20, 500, 64, |i| {
        format!("import json\nlen(json.dumps({{'i': {i}, 'xs': list(range(100))}}))")
    })
    .await;
}
