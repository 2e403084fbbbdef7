//! Huge and malformed arguments: oversize code and input, wrong types, unknown languages and
//! arguments, absurd timeouts, deeply nested input, NUL bytes and lone surrogates — through the
//! executor's argument checks, and (for what only a wire can carry) as raw JSON-RPC to the real
//! binary over stdio. Whatever arrives, the answer is a result (usually `invalid_arguments`)
//! and the next request works.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden::contract::{ErrorInfo, ExecutionResult, Status};

use crate::harness::*;

const MAX_CODE: usize = 8192;
const MAX_INPUT: usize = 8192;

fn env() -> Env {
    Env::new(EnvSpec {
        limits: &[
            ("max_code_bytes", MAX_CODE as u64),
            ("max_input_bytes", MAX_INPUT as u64),
            ("default_timeout_ms", 1_000),
            ("max_timeout_ms", 2_000),
            ("fuel", 100_000_000_000),
        ],
        api: false,
        sink: false,
        network: no_network,
    })
}

fn invalid(name: &str, args: Value, says: &'static str) -> Case {
    Case::args(name, args)
        .must("invalid_arguments, saying what is wrong; nothing runs")
        .status(&["invalid_arguments"])
        .error_type(&["InvalidArguments"])
        .error_has(says)
        .check(|o| {
            if o.result.usage.fuel == 0 {
                Ok(())
            } else {
                Err("something ran".into())
            }
        })
}

fn nested_input(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

pub fn cases(_: &Ports) -> Vec<Case> {
    let js = |code: &str| json!({"language": "javascript", "code": code});
    vec![
        invalid(
            "code one byte over max_code_bytes",
            js(&"1".repeat(MAX_CODE + 1)),
            "at most 8192 bytes",
        ),
        invalid(
            "code under the limit in characters but over it in bytes (multi-byte)",
            js(&format!("'{}'", "é".repeat(MAX_CODE / 2 + 10))),
            "at most 8192 bytes",
        ),
        Case::args("code exactly at max_code_bytes", js(&format!("1{}", " ".repeat(MAX_CODE - 1))))
            .must("accepted and run")
            .ok_with(json!(1)),
        invalid(
            "16 MiB of TypeScript (far over the limit; must not reach the compiler)",
            json!({"language": "typescript", "code": "(".repeat(16 << 20)}),
            "at most 8192 bytes",
        )
        .within_ms(5_000),
        invalid("code as a number", json!({"language": "javascript", "code": 12}), "`code` must be a string"),
        invalid("code as an array", json!({"language": "javascript", "code": ["1"]}), "`code` must be a string"),
        invalid(
            "code as an object with toString",
            json!({"language": "javascript", "code": {"toString": "1"}}),
            "`code` must be a string",
        ),
        invalid("code null", json!({"language": "javascript", "code": null}), "`code` is required"),
        invalid("code missing", json!({"language": "python"}), "`code` is required"),
        invalid("an unknown language", json!({"language": "ruby", "code": "1"}), "unknown language"),
        invalid(
            "the language in another case",
            json!({"language": "JavaScript", "code": "1"}),
            "unknown language",
        ),
        invalid(
            "the language with a trailing NUL",
            json!({"language": "javascript\u{0}", "code": "1"}),
            "unknown language",
        ),
        invalid(
            "the language as an array",
            json!({"language": ["javascript"], "code": "1"}),
            "`language` must be a string",
        ),
        invalid(
            "a negative timeout_ms",
            json!({"language": "javascript", "code": "1", "timeout_ms": -1}),
            "timeout_ms",
        ),
        invalid("a zero timeout_ms", json!({"language": "javascript", "code": "1", "timeout_ms": 0}), "timeout_ms"),
        invalid(
            "a fractional timeout_ms",
            json!({"language": "javascript", "code": "1", "timeout_ms": 0.5}),
            "timeout_ms",
        ),
        invalid(
            "timeout_ms as a string",
            json!({"language": "javascript", "code": "1", "timeout_ms": "100"}),
            "timeout_ms",
        ),
        invalid(
            "timeout_ms of 1e300",
            json!({"language": "javascript", "code": "1", "timeout_ms": 1e300}),
            "timeout_ms",
        ),
        Case::args(
            "timeout_ms of u64::MAX around a busy loop",
            json!({"language": "javascript", "code": "for (;;) {}", "timeout_ms": u64::MAX}),
        )
        .must("clamped to max_timeout_ms (2 s): ends as timeout")
        .status(&["timeout"])
        .within_ms(6_000),
        Case::args(
            "timeout_ms of 1 around a busy loop",
            json!({"language": "javascript", "code": "for (;;) {}", "timeout_ms": 1}),
        )
        .must("ends as timeout at once")
        .status(&["timeout"])
        .within_ms(1_500),
        invalid(
            "an unknown argument (cwd)",
            json!({"language": "javascript", "code": "1", "cwd": "/"}),
            "unknown argument `cwd`",
        ),
        invalid(
            "an unknown argument (env)",
            json!({"language": "python", "code": "1", "env": {"HOME": "/root"}}),
            "unknown argument `env`",
        ),
        invalid(
            "input over max_input_bytes",
            json!({"language": "javascript", "code": "1", "input": "x".repeat(MAX_INPUT)}),
            "`input` is",
        ),
        Case::args(
            "input 3000 arrays deep, read by JavaScript",
            json!({"language": "javascript", "code": "let d = 0, v = input; while (Array.isArray(v)) { v = v[0]; d++ } d", "input": nested_input(3000)}),
        )
        .must("a clean end: parsed, or refused by the guest's parser")
        .status(&["ok", "error"]),
        Case::args(
            "input 3000 arrays deep, read by Python",
            json!({"language": "python", "code": "d, v = 0, input\nwhile isinstance(v, list):\n    v = v[0]\n    d += 1\nd", "input": nested_input(3000)}),
        )
        .must("a clean end: parsed, or refused by the guest's parser")
        .status(&["ok", "error"]),
        Case::args(
            "input strings with NUL bytes and placeholders",
            json!({"language": "javascript", "code": "[input.s.length, input.s.charCodeAt(1), input.k]", "input": {"s": "a\u{0}b", "k": "__WARDEN_SECRET_x__"}}),
        )
        .must("delivered as data, unchanged")
        .ok_with(json!([3, 0, "__WARDEN_SECRET_x__"])),
        Case::js("a NUL byte in JavaScript code", "1;\u{0} while (true) {}")
            .must("a SyntaxError before anything runs (QuickJS would cut the program at the NUL)")
            .status(&["error"])
            .error_type(&["SyntaxError"]),
        Case::ts("a NUL byte in TypeScript code", "const a: number = 1;\u{0}\na")
            .must("a SyntaxError before anything runs")
            .status(&["error"])
            .error_type(&["SyntaxError"]),
        Case::py("a NUL byte in Python code", "1\n\u{0}\n")
            .must("a SyntaxError")
            .status(&["error"])
            .error_type(&["SyntaxError"]),
        Case::js("a byte-order mark and CRLF line ends", "\u{feff}const a = 1;\r\nconst b = 2;\r\na + b")
            .must("runs normally")
            .ok_with(json!(3)),
        Case::js("only comments", "// nothing\n/* at all */")
            .must("runs, with a null result")
            .ok_with(json!(null)),
        Case::js("JavaScript prints a lone surrogate", "console.log('\\ud800x'); 1")
            .must("a clean end, not a failure of the guest or the host")
            .status_not(&["out_of_memory", "timeout"])
            .check(no_internal_failure),
        Case::js("JavaScript returns a lone surrogate", "'\\ud800'")
            .must("a result (with U+FFFD) or a clean error of the program, not InternalError")
            .check(no_internal_failure),
        Case::js("JavaScript throws an error whose message is a lone surrogate", "throw new Error('\\udc00')")
            .must("a clean error of the program, not InternalError")
            .check(no_internal_failure),
        Case::py("Python returns a lone surrogate", "'\\ud800'")
            .must("a result or a clean error of the program, not GuestCrash")
            .check(no_internal_failure),
        Case::py("Python raises an exception whose message is a lone surrogate", "raise ValueError('\\ud800')")
            .must("a clean error of the program, not InternalError")
            .check(no_internal_failure),
        Case::custom("no arguments object at all", no_arguments)
        .must("invalid_arguments")
        .status(&["invalid_arguments"]),
        Case::custom(
            "raw JSON-RPC over stdio: a lone surrogate in code, 100000-deep input, 8 MiB of code, truncated JSON and binary garbage",
            raw_stdio,
        )
        .must("the server neither crashes nor stops answering: the next well-formed call works")
        .check(|o| match &o.result.result["next"] {
            Value::Object(next) if next.get("result") == Some(&json!(42)) => Ok(()),
            other => Err(format!("the next call got {other}")),
        })
        .check(|o| match o.result.result["replies"]["13"].as_str() {
            Some("invalid_arguments") => Ok(()),
            other => Err(format!("8 MiB of code should be invalid_arguments, got {other:?}")),
        }),
        Case::custom("raw JSON-RPC over stdio: every malformed message is answered", raw_stdio)
            .must("each malformed message gets a JSON-RPC error (DESIGN.md: protocol errors are for malformed messages), so the client is not left waiting")
            .check(|o| {
                let replies = &o.result.result["replies"];
                let missing: Vec<&str> = ["10", "11", "12", "null"]
                    .into_iter()
                    .filter(|id| replies.get(*id).is_none())
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!("no reply for the messages with id {missing:?}: {replies}"))
                }
            })
            .check(|o| {
                let replies = &o.result.result["replies"];
                let not_parse_errors: Vec<String> = ["10", "11", "12", "null"]
                    .into_iter()
                    .filter(|id| replies.get(*id) != Some(&json!("-32700")))
                    .map(|id| format!("{id}: {}", replies[id]))
                    .collect();
                if not_parse_errors.is_empty() {
                    Ok(())
                } else {
                    Err(format!("expected -32700 parse errors, got {not_parse_errors:?}"))
                }
            }),
    ]
}

fn no_arguments(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let parsed = env.executor.parse_args("local", None);
        let caller = warden::policy::Caller {
            grant: "local",
            session: "escapes",
        };
        env.executor
            .call(
                parsed,
                &caller,
                "no",
                &tokio_util::sync::CancellationToken::new(),
            )
            .await
    })
}

fn no_internal_failure(o: &Outcome) -> Result<(), String> {
    match &o.result.error {
        Some(e) if ["InternalError", "GuestCrash"].contains(&e.kind.as_str()) => {
            Err(format!("the run ended as {}", e.kind))
        }
        _ => Ok(()),
    }
}

/// Drives `warden serve` over raw stdio with malformed messages, then a well-formed call.
/// The result is `{"replies": {id: status or error code}, "next": structuredContent}`.
fn raw_stdio(_: &Env) -> BoxFut<'_> {
    Box::pin(async {
        let observed = tokio::task::spawn_blocking(raw_stdio_session)
            .await
            .unwrap_or_else(|e| json!({"panic": e.to_string()}));
        let mut result = ExecutionResult::without_run(Status::Ok, ErrorInfo::raised("", ""));
        result.error = None;
        result.result = observed;
        result
    })
}

fn raw_stdio_session() -> Value {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--cache-dir"])
        .arg(crate::common::cache_dir())
        .env("WARDEN_STATE_DIR", crate::common::state_dir())
        .env("WARDEN_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().unwrap();
    let mut send = |bytes: &[u8]| {
        let _ = stdin.write_all(bytes);
        let _ = stdin.write_all(b"\n");
        let _ = stdin.flush();
    };
    let call = |id: u32, arguments: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"execute_code","arguments":{arguments}}}}}"#
        )
    };
    send(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"escapes","version":"1"}}}"#);
    let mut replies = serde_json::Map::new();
    let mut next = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut initialized = false;
    let mut sent = false;
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let id = message["id"].clone();
        if id == json!(1) && !initialized {
            initialized = true;
            send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
            send(call(10, r#"{"language":"javascript","code":"'\ud800'"}"#).as_bytes());
            send(
                call(
                    11,
                    &format!(
                        r#"{{"language":"javascript","code":"1","input":{}{}}}"#,
                        "[".repeat(100_000),
                        "]".repeat(100_000)
                    ),
                )
                .as_bytes(),
            );
            send(
                call(
                    13,
                    &json!({"language": "typescript", "code": "(".repeat(8 << 20)}).to_string(),
                )
                .as_bytes(),
            );
            send(br#"{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"execute_code","arguments":{"language":"javascript","code":"1"}}"#);
            send(b"garbage\x00\xff\xfe{");
            send(call(99, r#"{"language":"javascript","code":"40 + 2"}"#).as_bytes());
            sent = true;
            continue;
        }
        if !sent {
            continue;
        }
        let key = match &id {
            Value::Number(n) => n.to_string(),
            _ => "null".to_string(),
        };
        if id == json!(99) {
            next = message["result"]["structuredContent"].clone();
            break;
        }
        let what = message["result"]["structuredContent"]["status"]
            .as_str()
            .map(str::to_string)
            .or_else(|| message["error"]["code"].as_i64().map(|c| c.to_string()))
            .unwrap_or_else(|| "?".into());
        replies.insert(key, json!(what));
    }
    // Replies to messages sent before the last call may still be on their way.
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
        if let Ok(message) = serde_json::from_str::<Value>(&line) {
            let key = match &message["id"] {
                Value::Number(n) => n.to_string(),
                _ => "null".to_string(),
            };
            let what = message["result"]["structuredContent"]["status"]
                .as_str()
                .map(str::to_string)
                .or_else(|| message["error"]["code"].as_i64().map(|c| c.to_string()))
                .unwrap_or_else(|| "?".into());
            replies.insert(key, json!(what));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    json!({"replies": replies, "next": next})
}

#[tokio::test]
async fn arguments() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("arguments", &env, cases, Mode::Regular).await;
}
