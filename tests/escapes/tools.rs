//! Tools from code: the code reaches other MCP servers' tools only through the host's bridge,
//! which applies the policy to every call. Every attempt to reach a hidden tool or one of
//! another grant, to forge a server or tool name, to get past the call budget, to smuggle a
//! credential out through a tool's arguments, to make the upstream call back into the run, to
//! tamper with the `tools` object, or to hold the run past its deadline in a tool.

use serde_json::{Value, json};
use warden::contract::{ErrorInfo, ExecutionResult, Status};

use crate::harness::*;

/// Where the recording upstream writes the calls it receives (one file per test process).
fn recorder_log() -> String {
    std::env::temp_dir()
        .join(format!("warden-escapes-tools-{}.jsonl", std::process::id()))
        .display()
        .to_string()
}

/// The recording upstream (the Python MCP SDK, over stdio); `local` may use some of its
/// tools, `ops` all of them; one tool is denied to everyone (the policy's `hide` is tested
/// through the MCP client, tests/python/test_tools.py); five calls per run.
fn upstream(p: Ports) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    format!(
        r#"[tools."rec.delete_repo"]
action = "deny"

[grants.local]
tools = ["rec.add", "rec.create_issue", "rec.ask_back", "rec.hang", "rec.delete_repo"]

[grants.ops]
token_sha256 = "{hash}"
tools = ["rec.*"]

[upstreams.rec]
command = "{root}/.venv/bin/python"
args = ["{root}/tests/python/upstream_recorder.py", "stdio", "{log}"]
call_timeout_ms = 60000
{credentials}"#,
        hash = "0".repeat(64),
        log = recorder_log(),
        credentials = credentials(p, &["/echo"]),
    )
}

fn env() -> Env {
    Env::new(EnvSpec {
        limits: &[("max_tool_calls", 5)],
        api: true,
        sink: false,
        network: upstream,
    })
}

/// What reached the upstream so far: the tool and the arguments of each call.
fn received() -> Vec<Value> {
    std::fs::read_to_string(recorder_log())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn findings(value: Value) -> ExecutionResult {
    let mut result = ExecutionResult::without_run(Status::Ok, ErrorInfo::raised("", ""));
    result.error = None;
    result.result = value;
    result
}

/// The kind of refusal a JavaScript call gets (`called` if it went through).
fn js_kind(call: &str) -> String {
    format!("try {{ await {call}; 'called' }} catch (e) {{ e.kind || e.name }}")
}

fn py_kind(call: &str) -> String {
    format!(
        "try:\n    {call}\n    r = 'called'\nexcept Exception as e:\n    r = getattr(e, 'kind', type(e).__name__)\nr"
    )
}

/// A credential's placeholder written into a tool's arguments reaches the upstream as the
/// placeholder (it is not a fetch to the credential's hosts), never as the value.
fn placeholder_in_arguments(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let before = received().len();
        let r = env
            .run(
                JS,
                "(await tools.rec.create_issue({ title: '__WARDEN_SECRET_api__', body: 'Bearer __WARDEN_SECRET_api__' })).title",
            )
            .await;
        let after = received();
        let sent = after.get(before).cloned().unwrap_or(Value::Null);
        let leaked = after.iter().any(|c| c.to_string().contains(API_TOKEN));
        findings(
            json!({"status": r.status.as_str(), "sent": sent["arguments"]["title"], "leaked": leaked}),
        )
    })
}

/// The budget holds across both calling styles and through Promise.all.
fn budget_through_promise_all(env: &Env) -> BoxFut<'_> {
    Box::pin(async move {
        let before = received().len();
        let r = env
            .run(
                JS,
                "const calls = Array.from({ length: 20 }, (_, i) => tools.rec.add({ a: i, b: 0 }));\n\
                 const settled = await Promise.allSettled(calls);\n\
                 settled.filter(s => s.status === 'fulfilled').length",
            )
            .await;
        let reached = received().len() - before;
        findings(json!({"result": r.result, "reached": reached}))
    })
}

pub fn cases(_: &Ports) -> Vec<Case> {
    vec![
        // ---------------------------------------------------------------- hidden and other grants' tools
        Case::js("JavaScript calls a denied tool by guessing its name", js_kind("tools.rec.delete_repo({ name: 'prod' })"))
            .must("a denied tool does not exist for the code").ok_with(json!("not_found")),
        Case::py("Python calls a denied tool by guessing its name", py_kind("tools.rec.delete_repo(name='prod')"))
            .must("a denied tool does not exist for the code").ok_with(json!("not_found")),
        Case::js("JavaScript describes a denied tool", js_kind("tools.describe('rec.delete_repo')"))
            .must("describe knows nothing of it").ok_with(json!("not_found")),
        Case::js("JavaScript searches for the denied tool", "tools.search('delete').map(t => t.name)")
            .must("search does not list it").ok_with(json!([])),
        Case::js("JavaScript calls a tool only another grant may use", js_kind("tools.rec.transfer_repository({ name: 'x', owner: 'y' })"))
            .must("another grant's tool does not exist for this caller").ok_with(json!("not_found")),
        Case::py("Python calls a tool only another grant may use, by item", py_kind("tools['rec']['fail'](message='x')"))
            .must("another grant's tool does not exist for this caller").ok_with(json!("not_found")),
        Case::js("JavaScript lists every tool it can see", "tools.search('').map(t => t.name).sort()")
            .must("exactly the grant's visible tools").ok_with(json!(["rec.add", "rec.ask_back", "rec.create_issue", "rec.hang"])),
        // ---------------------------------------------------------------- forged names
        Case::js("JavaScript forges a server name with a path", js_kind("tools['../rec'].add({ a: 1, b: 1 })"))
            .must("no such server").ok_with(json!("not_found")),
        Case::js("JavaScript forges a server name with a NUL", js_kind("tools['rec\\u0000'].add({ a: 1, b: 1 })"))
            .must("no such server").ok_with(json!("not_found")),
        Case::js("JavaScript names the tool as server.tool on the server", js_kind("tools.rec['rec.add']({ a: 1, b: 1 })"))
            .must("no such tool").ok_with(json!("not_found")),
        Case::js("JavaScript forges the upstream name in upper case", js_kind("tools.REC.add({ a: 1, b: 1 })"))
            .must("names are exact").ok_with(json!("not_found")),
        Case::js("JavaScript reaches for __proto__ and constructor as tools", "[await tools.rec.__proto__?.({}).catch(e => e.kind), await tools.rec.constructor({}).catch(e => e.kind)]")
            .must("they are just names the host does not know").ok_with(json!(["not_found", "not_found"])),
        Case::py("Python sends a raw request for another server's tool through the WIT import", "import wit_world, json\njson.loads(wit_world.tools(json.dumps({'op': 'call', 'server': 'rec', 'tool': 'transfer_repository', 'arguments': {'name': 'x', 'owner': 'y'}})))['kind']")
            .must("the raw door applies the same checks").ok_with(json!("not_found")),
        Case::py("Python sends malformed requests through the WIT import", "import wit_world, json\n[json.loads(wit_world.tools(r))['kind'] for r in ['nope', '{\"op\": \"run\"}', '{\"op\": \"call\", \"server\": \"rec\", \"tool\": \"add\", \"arguments\": [1, 2]}']]")
            .must("each is refused as invalid, nothing is called").ok_with(json!(["invalid", "invalid", "invalid"])),
        // ---------------------------------------------------------------- tampering with `tools`
        Case::js("JavaScript replaces tools.rec and defines properties on tools", "'use strict';\nconst out = [];\ntry { tools.rec = { add: () => 'fake' }; out.push('assigned'); } catch (e) { out.push(e.name); }\ntry { Object.defineProperty(tools, 'rec', { value: 1 }); out.push('defined'); } catch (e) { out.push(e.name); }\nout.push((await tools.rec.add({ a: 2, b: 2 })).result);\nout")
            .must("tools cannot be changed; calls still reach the host").ok_with(json!(["TypeError", "TypeError", 4])),
        Case::py("Python sets attributes on tools", "try:\n    tools.rec = 1\n    r = 'set'\nexcept AttributeError:\n    r = 'refused'\n[r, tools.rec.add(a=3, b=4)['result']]")
            .must("tools is read-only").ok_with(json!(["refused", 7])),
        // ---------------------------------------------------------------- budget and exhaustion
        Case::js("JavaScript loops on a tool until refused", "let made = 0;\ntry { for (;;) { await tools.rec.add({ a: 1, b: 1 }); made++; } } catch (e) { [made, e.name, e.kind] }")
            .must("the run's budget stops it at max_tool_calls").ok_with(json!([5, "ToolDenied", "budget"])),
        Case::custom("JavaScript fires 20 calls at once with Promise.allSettled", budget_through_promise_all)
            .must("at most the budget reaches the upstream").ok_with(json!({"result": 5, "reached": 5})),
        Case::py("Python loops on a tool until refused", "made = 0\ntry:\n    while True:\n        tools.rec.add(a=1, b=1)\n        made += 1\nexcept ToolDenied as e:\n    r = [made, e.kind]\nr")
            .must("the run's budget stops it at max_tool_calls").ok_with(json!([5, "budget"])),
        Case::js("JavaScript holds the run in a tool that never answers", "await tools.rec.hang({ seconds: 600 })")
            .timeout_ms(500).must("the run's deadline holds").status(&["timeout"]).within_ms(5_000),
        Case::js("JavaScript calls a tool with 2 MB of arguments", "const big = 'x'.repeat(2 << 20);\ntry { await tools.rec.create_issue({ title: 'big', body: big }); 'called' } catch (e) { e.kind }")
            .must("the call either goes through or is refused; the server stays up").status(&["ok"]),
        // ---------------------------------------------------------------- credentials and re-entrancy
        Case::custom("a credential placeholder in a tool's arguments", placeholder_in_arguments)
            .must("the upstream gets the placeholder, never the value")
            .ok_with(json!({"status": "ok", "sent": "__WARDEN_SECRET_api__", "leaked": false})),
        Case::js("the upstream calls back into the client (elicitation) during a tool call", "(await tools.rec.ask_back({})).result")
            .must("Warden offers the upstream nothing to call: the request fails, the run goes on").result_starts("the client cannot be asked"),
        Case::js("JavaScript reads the tool list from the error of a refused call", "try { await tools.rec.transfer_repository({}) } catch (e) { JSON.stringify(e) + e.message + e.stack }")
            .must("a refusal names nothing the caller may not see").check(|o| {
                let text = o.result.result.to_string();
                if text.contains("fail") || text.contains("delete_repo") { Err("the error lists other tools".into()) } else { Ok(()) }
            }),
    ]
}

#[tokio::test]
async fn tools_from_code() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("tools from code", &env, cases, Mode::Regular).await;
    // What reached the upstream: never the hidden or the other grant's tools.
    let reached: Vec<String> = received()
        .iter()
        .map(|c| c["tool"].as_str().unwrap_or("").to_string())
        .collect();
    for forbidden in ["delete_repo", "transfer_repository", "fail"] {
        assert!(
            !reached.iter().any(|t| t == forbidden),
            "{forbidden} reached the upstream: {reached:?}"
        );
    }
    let _ = std::fs::remove_file(recorder_log());
}
