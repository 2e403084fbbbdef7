//! Host-bridge abuse. At the language level: prototype pollution of the JavaScript prelude
//! (fetch, Headers, Response, Array, Object, JSON), re-entrant calls into the bridge, and
//! monkey-patching of the Python shims and of the guest's own reporting code. At the ABI level:
//! hand-written guests calling the `warden` host imports with garbage pointers, lengths,
//! frames and call orders (new attempts; tests/guest_abi.rs holds the basic ones).
//!
//! Whatever the guest does to its own side of the bridge, the host's checks still apply, the
//! host never trusts the guest's report for a limit status, and a fresh sandbox per call means
//! the next run sees none of the damage.

use serde_json::json;

use crate::harness::*;
use crate::network::fetch_frame;

fn network(p: Ports) -> String {
    format!(
        "[network]\nallow = [\"http://127.0.0.1:{}\"]\nmax_fetches = 20\nmax_request_bytes = 65536\n{}",
        p.api,
        credentials(p, &["/echo"])
    )
}

fn env() -> Env {
    Env::new(EnvSpec {
        limits: &[("fuel", 3_000_000_000)],
        api: true,
        sink: false,
        network,
    })
}

/// JavaScript that replaces `Array.from` (which the prelude's fetch uses to list the headers)
/// so that the bridge receives `pairs` verbatim, then fetches `url`.
fn raw_headers(url: &str, pairs: &str) -> String {
    format!(
        "const from = Array.from;\nArray.from = (x, ...rest) => (x instanceof Headers ? {pairs} : from(x, ...rest));\n{}",
        js_fetch(url, "{}")
    )
}

const PRISTINE_JS: &str = "[typeof ({}).then, typeof ({}).polluted, typeof [].polluted, String(fetch).includes('nativeFetch'), new Headers({a: '1'}).get('a'), typeof Response.prototype.json, JSON.stringify({a: 1}), Array.from([1, 2]).length]";

/// The frame of a valid GET request.
fn valid_frame() -> Vec<u8> {
    fetch_frame(r#"{"method":"GET","url":"http://127.0.0.1/","headers":[]}"#)
}

/// A WAT guest that sends `frame` (placed at 4096) with `fetch` and reports the response head.
fn send_frame(frame: Vec<u8>) -> WatGuest {
    WatGuest::new(format!(
        "(drop (call $fetch (i32.const 4096) (i32.const {}))) {REPORT_FETCH_HEAD}",
        frame.len()
    ))
    .data(4096, frame)
    .with_fetcher()
}

/// The guest's report is a refusal frame mentioning `text`.
fn refusal_frame(text: &'static str) -> impl Fn(&Outcome) -> Result<(), String> + Send + Sync {
    move |o| {
        let head = &o.result.result;
        if o.result.status.as_str() == "ok"
            && head["ok"] == json!(false)
            && head["error"].as_str().is_some_and(|e| e.contains(text))
        {
            Ok(())
        } else {
            Err(format!("expected a refusal frame mentioning {text:?}"))
        }
    }
}

/// The run trapped on a host-side bounds check (never the host itself).
fn trapped(o: &Outcome) -> Result<(), String> {
    match (&o.result.error, o.result.status.as_str()) {
        (Some(e), "error") if e.kind == "InternalError" && e.message.contains("the run failed") => {
            Ok(())
        }
        _ => Err("expected the run to be stopped by the host's check".into()),
    }
}

pub fn cases(p: &Ports) -> Vec<Case> {
    let echo = format!("http://127.0.0.1:{}/echo", p.api);
    let mut cases = vec![
        // ----------------------------------------------------- the JavaScript prelude
        Case::js(
            "JavaScript replaces Array.from so the prelude's fetch sends a raw Host header",
            raw_headers(&echo, "[['Host', 'evil.example']]"),
        )
        .must("the host refuses the header itself: nothing is sent")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::js(
            "JavaScript smuggles CRLF into a header value past the prelude's validation",
            raw_headers(&echo, "[['X-A', 'v\\r\\nInjected: 1']]"),
        )
        .must("the host refuses the value: nothing is sent")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::js(
            "JavaScript smuggles its own Authorization past the prelude for a host with an injected credential",
            raw_headers(&echo, "[['Authorization', 'Bearer mine']]"),
        )
        .must("refused: the host sets that header; nothing is sent")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::js(
            "JavaScript smuggles an invalid header name past the prelude",
            raw_headers(&echo, "[['X A:b', '1']]"),
        )
        .must("the host refuses the name: nothing is sent")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::js(
            "JavaScript request-line smuggling through the method",
            js_fetch(&echo, "{ method: 'GET /admin HTTP/1.1\\r\\nHost: evil' }"),
        )
        .must("the host refuses the method: nothing is sent")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::js(
            "JavaScript a 10 MiB URL",
            format!(
                "try {{ const r = await fetch({} + '?q=' + 'a'.repeat(10 << 20)); 'sent: ' + r.status }} catch (e) {{ 'refused: ' + e.message }}",
                lit(&echo)
            ),
        )
        .must("a clean end, whatever the server makes of it; the host survives")
        .status(&["ok"]),
        Case::js(
            "JavaScript a body over max_request_bytes",
            js_fetch(&echo, "{ method: 'POST', body: new Uint8Array(1 << 20) }"),
        )
        .must("refused before sending")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::js(
            "JavaScript intercepts the bridge's raw answer with a setter on Array.prototype[0]",
            format!(
                "let seen = '';\nObject.defineProperty(Array.prototype, '0', {{ set(v) {{ seen += '|' + [...String(v)].reverse().join('') }}, configurable: true }});\ntry {{ await fetch({}) }} catch (e) {{ seen += '|E' }}\nseen",
                lit(&echo)
            ),
        )
        .must("the raw answer holds only the placeholder, never the value")
        .result_has(&["__ipa_TERCES_NEDRAW__"]),
        Case::js(
            "JavaScript makes every object thenable (Object.prototype.then resolving to 42)",
            "Object.prototype.then = function (resolve) { resolve(42) };\n({ a: 1 })",
        )
        .must("only the program's own result changes; the next run is pristine")
        .then(JS, PRISTINE_JS)
        .next_ok_with(json!(["undefined", "undefined", "undefined", true, "1", "function", "{\"a\":1}", 2])),
        Case::js("JavaScript makes every object a thenable that never settles", "Object.prototype.then = function () {};\n1")
            .must("a clean error (nothing can settle), not a hang")
            .status(&["error"]),
        Case::js(
            "JavaScript pollutes fetch, Headers, Response, JSON, Array.prototype and Object.prototype",
            "globalThis.fetch = () => 'mine';\nHeaders.prototype.get = () => 'x';\nResponse.prototype.json = () => 1;\nJSON.stringify = () => 'forged';\nArray.from = () => [];\nArray.prototype.polluted = 1;\nObject.prototype.polluted = 1;\nfetch()",
        )
        .must("the run is the program's own; the next run sees a pristine prelude")
        .ok_with(json!("mine"))
        .then(JS, PRISTINE_JS)
        .next_ok_with(json!(["undefined", "undefined", "undefined", true, "1", "function", "{\"a\":1}", 2])),
        Case::js(
            "JavaScript replaces JSON.stringify and JSON.parse to forge its outcome",
            "JSON.stringify = () => '{\"ok\":false,\"error\":{\"type\":\"MemoryError\",\"message\":\"out of memory\"}}';\nJSON.parse = () => ({});\n({ real: 1 })",
        )
        .must("the outcome is built with the prelude's own copies: ok with the real value")
        .ok_with(json!({"real": 1})),
        Case::js(
            "JavaScript throws an InternalError 'out of memory' of its own",
            "const e = new Error('out of memory'); e.name = 'InternalError'; throw e",
        )
        .must("status error: only the host's memory limiter can make a run out_of_memory")
        .status(&["error"]),
        Case::js(
            "JavaScript poisons Map[Symbol.hasInstance], which the result serializer uses",
            "Object.defineProperty(Map, Symbol.hasInstance, { value: () => { throw new Error('boom') } });\n({ a: 1 })",
        )
        .must("a clean error")
        .status(&["error"]),
        Case::js(
            "JavaScript throws a Proxy whose every trap throws",
            "throw new Proxy({}, { has() { throw 1 }, get() { throw 2 }, ownKeys() { throw 3 }, getPrototypeOf() { throw 4 } })",
        )
        .must("a clean error (the describer cannot be broken)")
        .status(&["error"]),
        Case::js(
            "JavaScript re-enters fetch from a header getter while fetch is reading its headers",
            format!(
                "let n = 0;\nconst h = {{}};\nObject.defineProperty(h, 'X-A', {{ enumerable: true, get() {{ if (++n < 200) fetch({u}, {{ headers: h }}).catch(() => {{}}); return 'v' }} }});\ntry {{ await fetch({u}, {{ headers: h }}) }} catch (e) {{ }}\nn",
                u = lit(&echo)
            ),
        )
        .must("the recursion ends; the host sends at most max_fetches (20) requests")
        .check(|o| {
            if o.api_hits <= 20 {
                Ok(())
            } else {
                Err(format!("{} requests reached the server", o.api_hits))
            }
        }),
        Case::js(
            "JavaScript re-enters console.log from a toString called by console.log",
            "let n = 0;\nconst o = { toString() { if (++n < 1e6) console.log('%s', o); return 'o' } };\nconsole.log('%s', o); n",
        )
        .must("a clean end (the recursion overflows the stack or finishes)")
        .status(&["ok", "error"]),
        Case::js(
            "JavaScript calls fetch with a resource whose url getter throws",
            "try { await fetch({ get url() { throw new Error('inside') } }); 'sent' } catch (e) { e.message }",
        )
        .must("the program's own error; nothing is sent")
        .ok_with(json!("inside"))
        .no_api_hits(),
        // ------------------------------------------------------------ the Python shims
        Case::py(
            "Python builds a raw wit_world request with a Host header, bypassing the shims",
            format!(
                "import wit_world\ntry:\n    wit_world.fetch(wit_world.HttpRequest(method='GET', url={}, headers=[('Host', 'evil.example')], body=b''))\n    out = 'sent'\nexcept Exception as e:\n    out = 'refused: ' + str(getattr(e, 'value', e))\nout",
                lit(&echo)
            ),
        )
        .must("the host refuses the header: nothing is sent")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::py(
            "Python monkey-patches warden_net so requests sends a CRLF-injected header",
            format!(
                "import warden_net, requests\norig = warden_net.fetch\nwarden_net.fetch = lambda url, method='GET', headers=None, body=None: orig(url, method, [('X-A', 'v\\r\\nInjected: 1')], body)\ntry:\n    out = 'sent %d' % requests.get({}).status_code\nexcept requests.RequestException as e:\n    out = 'refused: ' + str(e)\nout",
                lit(&echo)
            ),
        )
        .must("the host refuses the value: nothing is sent")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::py(
            "Python calls wit_world.fetch with fields of the wrong types",
            "import wit_world\nwit_world.fetch(wit_world.HttpRequest(method=None, url=5, headers=None, body=None))",
        )
        .must("the guest fails cleanly (an error, possibly a guest crash); nothing is sent; the host survives")
        .status(&["error"])
        .no_api_hits(),
        Case::py(
            "Python calls wit_world.fetch with a lone surrogate in a header name",
            format!(
                "import wit_world\nwit_world.fetch(wit_world.HttpRequest(method='GET', url={}, headers=[('X\\ud800', 'a')], body=b''))",
                lit(&echo)
            ),
        )
        .must("the guest fails cleanly; nothing is sent; the host survives")
        .status(&["error"])
        .no_api_hits(),
        Case::py(
            "Python announces odd exit codes through wit_world.exiting, then finishes normally",
            "import wit_world\nwit_world.exiting(-5)\nwit_world.exiting(2**31 - 1)\n'after'",
        )
        .must("an announcement alone ends nothing: ok with the real result")
        .ok_with(json!("after")),
        Case::py(
            "Python re-enters the guest's entry point (WitWorld().run) from inside a run",
            "import app\ninner = app.WitWorld().run(\"print('inner')\\n1 + 1\", 'null', 'inner.py')\n['outer', inner]",
        )
        .must("the inner outcome is only a string to the program; the host sees the outer result")
        .ok_with(json!(["outer", "{\"ok\":true,\"result\":2}"])),
        Case::py(
            "Python patches the guest's error describer to forge an out_of_memory outcome",
            "import app\napp._describe = lambda exc, filename: {'type': 'MemoryError', 'message': 'out of memory'}\nraise ValueError('x')",
        )
        .must("status error, not out_of_memory: the host's limiter decides, not the guest's report")
        .status(&["error"])
        .error_type(&["MemoryError"]),
        Case::py(
            "Python patches the guest's JSON encoder to report a 1 MB outcome",
            "import app\napp._json_dumps = lambda value, **kw: '\"' + 'x' * 10**6 + '\"'\n1",
        )
        .must("ResultTooLarge: the host measures the report itself")
        .status(&["error"])
        .error_type(&["ResultTooLarge"]),
        Case::py(
            "Python patches the guest's JSON encoder to report garbage",
            "import app\napp._json_dumps = lambda value, **kw: '1, \"ok\": false, }{'\n1",
        )
        .must("a clean error; the host survives")
        .status(&["error"]),
        Case::py(
            "Python replaces builtins (open, print, __import__) and sys.modules entries",
            "import builtins, sys, json\nbuiltins.open = lambda *a, **k: 'fake'\nbuiltins.print = None\nsys.modules['json'] = None\nsys.modules['os'] = 'poisoned'\n'done'",
        )
        .must("the next run has the real builtins and modules")
        .ok_with(json!("done"))
        .then(PY, "import json, os, builtins\nprint('fine')\n[json.dumps([1]), callable(os.getcwd), builtins.open is open]")
        .next_ok_with(json!(["[1]", true, true])),
    ];
    // ------------------------------------------------------------------ the raw ABI
    cases.extend([
        Case::wat(
            "fetch with an out-of-bounds frame pointer",
            WatGuest::new("(drop (call $fetch (i32.const -16) (i32.const 100)))").with_fetcher(),
        )
        .must("the host's bounds check stops the run; the fetcher is never called")
        .check(trapped)
        .fetcher_calls(0),
        Case::wat(
            "fetch with a length of 4 GiB - 1",
            WatGuest::new("(drop (call $fetch (i32.const 0) (i32.const -1)))").with_fetcher(),
        )
        .must("the host's bounds check stops the run; the fetcher is never called")
        .check(trapped)
        .fetcher_calls(0),
        Case::wat("fetch with an empty frame", send_frame(Vec::new()))
            .must("a refusal frame (not a trap, not a request)")
            .check(refusal_frame("shorter than its header"))
            .fetcher_calls(0),
        Case::wat(
            "fetch with a head length beyond the frame",
            send_frame({
                let mut f = valid_frame();
                f[0] = 0xff;
                f[1] = 0xff;
                f
            }),
        )
        .must("a refusal frame; the fetcher is never called")
        .check(refusal_frame("shorter than its head"))
        .fetcher_calls(0),
        Case::wat("fetch with a head that is not JSON", send_frame(fetch_frame("GET / HTTP/1.1\r\n")))
            .must("a refusal frame; the fetcher is never called")
            .check(refusal_frame("malformed fetch request"))
            .fetcher_calls(0),
        Case::wat(
            "fetch with a JSON head of the wrong shape",
            send_frame(fetch_frame(r#"{"method":1,"url":["x"],"headers":{"a":"b"}}"#)),
        )
        .must("a refusal frame; the fetcher is never called")
        .check(refusal_frame("malformed fetch request"))
        .fetcher_calls(0),
        Case::wat("fetch with a valid frame (positive control)", send_frame(valid_frame()))
            .must("the fetcher is called exactly once and its answer comes back")
            .check(|o| {
                if o.result.result["ok"] == json!(true) && o.result.result["status"] == json!(200) {
                    Ok(())
                } else {
                    Err("the answer did not come back".into())
                }
            })
            .fetcher_calls(1),
        Case::wat(
            "fetch_read before any fetch",
            WatGuest::new(format!(
                "(i64.store (i32.const 8192) (i64.const 0x4141414141414141))
                 (call $fetch_read (i32.const 8192))
                 (if (i64.ne (i64.load (i32.const 8192)) (i64.const 0x4141414141414141)) (then unreachable))
                 {REPORT_7}"
            )),
        )
        .must("writes nothing: the run goes on")
        .ok_with(json!(7)),
        Case::wat(
            "fetch_read twice after one fetch",
            WatGuest::new(format!(
                "(drop (call $fetch (i32.const 4096) (i32.const {len})))
                 (call $fetch_read (i32.const 8192))
                 (i64.store (i32.const 12288) (i64.const 0x4141414141414141))
                 (call $fetch_read (i32.const 12288))
                 (if (i64.ne (i64.load (i32.const 12288)) (i64.const 0x4141414141414141)) (then unreachable))
                 {REPORT_7}",
                len = valid_frame().len()
            ))
            .data(4096, valid_frame())
            .with_fetcher(),
        )
        .must("the second read gets nothing: a response is handed over once")
        .ok_with(json!(7))
        .fetcher_calls(1),
        Case::wat(
            "fetch_read to an out-of-bounds destination",
            WatGuest::new(format!(
                "(drop (call $fetch (i32.const 4096) (i32.const {len}))) (call $fetch_read (i32.const 131070))",
                len = valid_frame().len()
            ))
            .data(4096, valid_frame())
            .with_fetcher(),
        )
        .must("the host's bounds check stops the run")
        .check(trapped),
        Case::wat(
            "1000 fetches without reading any answer (no network capability)",
            WatGuest::new(format!(
                "(local $i i32)
                 (loop $l
                   (drop (call $fetch (i32.const 4096) (i32.const {len})))
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
                 {REPORT_7}",
                len = valid_frame().len()
            ))
            .data(4096, valid_frame()),
        )
        .must("each answer replaces the last (no growth); the run ends ok and counts 1000 fetches")
        .ok_with(json!(7))
        .check(|o| {
            if o.result.usage.fetches == 1000 {
                Ok(())
            } else {
                Err(format!("usage.fetches = {}", o.result.usage.fetches))
            }
        }),
        Case::wat(
            "set_result twice: a malformed outcome, then a valid one",
            WatGuest::new(format!("(call $set_result (i32.const 2048) (i32.const 6)) {REPORT_7}")),
        )
        .must("the host keeps only the last report")
        .ok_with(json!(7)),
        Case::wat(
            "an outcome claiming MemoryError 'out of memory' without running out",
            WatGuest::new(format!(
                "(call $set_result (i32.const 4096) (i32.const {}))",
                FORGED_OOM.len()
            ))
            .data(4096, FORGED_OOM),
        )
        .must("status error: the host's limiter decides out_of_memory")
        .status(&["error"])
        .error_type(&["MemoryError"]),
        Case::wat(
            "an outcome nested 200 levels deep",
            WatGuest::new(format!(
                "(call $set_result (i32.const 4096) (i32.const {}))",
                deep_outcome().len()
            ))
            .data(4096, deep_outcome()),
        )
        .must("refused as ResultTooDeep (the host's parser has a depth limit)")
        .status(&["error"])
        .error_type(&["ResultTooDeep"]),
        Case::wat(
            "output of 0 bytes at exactly the end of memory",
            WatGuest::new(format!("(drop (call $output (i32.const 1) (i32.const 131072) (i32.const 0))) {REPORT_7}")),
        )
        .must("accepted: an empty range at the end is in bounds")
        .ok_with(json!(7)),
        Case::wat(
            "output of 0 bytes one past the end of memory",
            WatGuest::new("(drop (call $output (i32.const 1) (i32.const 131073) (i32.const 0)))"),
        )
        .must("the host's bounds check stops the run")
        .check(trapped),
        Case::wat(
            "request_read into the last bytes of memory (exactly fits)",
            WatGuest::new(format!(
                "(call $request_read (i32.const 2) (i32.sub (i32.const 131072) (call $request_len (i32.const 2)))) {REPORT_7}"
            )),
        )
        .must("accepted: the copy fits exactly")
        .ok_with(json!(7)),
        Case::wat(
            "request_read to address 0xFFFFFFFF",
            WatGuest::new("(call $request_read (i32.const 0) (i32.const -1))"),
        )
        .must("the host's bounds check stops the run (no address wrap-around)")
        .check(trapped),
        Case::wat("request_len of field 0xFFFFFFFF", WatGuest::new("(drop (call $request_len (i32.const -1)))"))
            .must("the host refuses the field: the run stops")
            .check(trapped),
        Case::wat(
            "a guest that does not export its memory calls output",
            WatGuest::new("(drop (call $output (i32.const 1) (i32.const 2048) (i32.const 6)))").without_memory_export(),
        )
        .must("the run fails with the host's message; the host survives")
        .status(&["error"])
        .error_has("exports no memory"),
        Case::wat(
            "memory.grow by 65535 pages, then carries on",
            WatGuest::new(format!(
                "(if (i32.ne (memory.grow (i32.const 65535)) (i32.const -1)) (then unreachable)) {REPORT_7}"
            )),
        )
        .must("the growth is refused (-1) and the guest goes on: ok")
        .ok_with(json!(7)),
        Case::wat("proc_exit with an out-of-range status (200)", WatGuest::new("(call $proc_exit (i32.const 200))"))
            .must("an error, not a success")
            .status(&["error"]),
        Case::wat(
            "proc_raise(SIGKILL)",
            WatGuest::new(format!("(if (i32.eqz (call $proc_raise (i32.const 9))) (then unreachable)) {REPORT_7}")),
        )
        .must("not supported: an error code, and the run goes on")
        .ok_with(json!(7)),
        Case::wat(
            "random_get into an out-of-bounds buffer",
            WatGuest::new(format!("(drop (call $random_get (i32.const 131000) (i32.const 4096))) {REPORT_7}")),
        )
        .must("refused (an error code or a stopped run); the host survives")
        .check(|o| match o.result.status.as_str() {
            "ok" | "error" => Ok(()),
            other => Err(format!("status {other}")),
        }),
        Case::wat(
            "1 MiB written to WASI stderr (not warden.output), then a crash",
            WatGuest::new(
                "(local $i i32)
                 (i32.store (i32.const 200) (i32.const 0)) (i32.store (i32.const 204) (i32.const 65536))
                 (loop $l
                   (drop (call $fd_write (i32.const 2) (i32.const 200) (i32.const 1) (i32.const 208)))
                   (local.set $i (i32.add (local.get $i) (i32.const 1)))
                   (br_if $l (i32.lt_u (local.get $i) (i32.const 16))))
                 unreachable",
            ),
        )
        .must("the crash message keeps only a bounded part of it (under 32 KiB)")
        .status(&["error"])
        .error_type(&["GuestCrash"])
        .check(|o| match &o.result.error {
            Some(e) if e.message.len() < 32 * 1024 => Ok(()),
            Some(e) => Err(format!("the message is {} bytes", e.message.len())),
            None => Err("no error".into()),
        }),
    ]);
    cases
}

const FORGED_OOM: &str = r#"{"ok":false,"error":{"type":"MemoryError","message":"out of memory"}}"#;

fn deep_outcome() -> String {
    format!(
        r#"{{"ok":true,"result":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    )
}

#[tokio::test]
async fn host_bridge() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("host_bridge", &env, cases, Mode::Regular).await;
}
