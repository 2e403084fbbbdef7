//! The JavaScript and TypeScript runtimes in process (no MCP): language semantics, the prelude's
//! globals, console formatting, results and errors, and every limit mapping to its status.

mod common;

use common::{executor_with, js, ok, run_on, ts};
use serde_json::json;

#[tokio::test]
async fn completion_value_is_the_result() {
    assert_eq!(ok(&js("1 + 1").await), &json!(2));
    assert_eq!(
        ok(&js("const o = {a: [1, 'x', null]}; o").await),
        &json!({"a": [1, "x", null]})
    );
    assert_eq!(
        ok(&js("let x = 5; if (x > 2) { 'big' } else { 'small' }").await),
        &json!("big")
    );
    assert_eq!(ok(&js("undefined").await), &json!(null));
    assert_eq!(ok(&js("function f() {}").await), &json!(null));
}

#[tokio::test]
async fn promises_and_top_level_await_are_driven() {
    assert_eq!(ok(&js("await Promise.resolve(41) + 1").await), &json!(42));
    assert_eq!(ok(&js("Promise.resolve('later')").await), &json!("later"));
    let r = js(
        "const sleep = (ms) => new Promise(r => setTimeout(r, ms));\n\
                const order = [];\n\
                setTimeout(() => order.push('b'), 20);\n\
                setTimeout(() => order.push('a'), 10);\n\
                await sleep(50);\n\
                order",
    )
    .await;
    assert_eq!(ok(&r), &json!(["a", "b"]));
    let r = js("async function f() { throw new RangeError('nope') }\nawait f()").await;
    assert_eq!(r.status.as_str(), "error");
    assert_eq!(r.error.as_ref().unwrap().kind, "RangeError");
    let r = js("await new Promise(() => {})").await;
    assert_eq!(r.status.as_str(), "error");
    assert!(
        r.error.as_ref().unwrap().message.contains("never settled"),
        "{r:?}"
    );
}

#[tokio::test]
async fn input_is_a_global() {
    let e = common::executor();
    let r = run_on(
        &e,
        "javascript",
        "input.items.map(i => i * 2)",
        Some(json!({"items": [1, 2, 3]})),
    )
    .await;
    assert_eq!(ok(&r), &json!([2, 4, 6]));
    assert_eq!(ok(&js("input").await), &json!(null));
}

#[tokio::test]
async fn console_methods_go_to_the_right_stream() {
    let r = js("console.log('a', 1); console.info('b'); console.debug('c'); console.warn('w'); console.error('e')").await;
    ok(&r);
    assert_eq!(r.stdout, "a 1\nb\nc\n");
    assert_eq!(r.stderr, "w\ne\n");
}

#[tokio::test]
async fn console_formats_values_like_node() {
    let r = js(r#"
        class Point { constructor() { this.x = 1; this.y = 2 } }
        console.log({a: 1, b: 'two', c: [1, 2, 3], d: {e: {f: {g: 1}}}});
        console.log([1, 'a', null, undefined, true]);
        console.log(new Map([['k', 1]]), new Set([1, 2]));
        console.log(new Point());
        console.log('%s is %d years', 'Bob', 42);
        console.log(function named() {}, () => 1, Symbol('s'), 10n, -0);
        console.log([]);
        console.log({});
        const circ = {name: 'c'}; circ.self = circ; console.log(circ);
        console.log(new Uint8Array([1, 2]));
        console.log({'needs-quotes': 1, "it's": 'a\'b'});
    "#)
    .await;
    ok(&r);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "{ a: 1, b: 'two', c: [ 1, 2, 3 ], d: { e: { f: [Object] } } }"
    );
    assert_eq!(lines[1], "[ 1, 'a', null, undefined, true ]");
    assert_eq!(lines[2], "Map(1) { 'k' => 1 } Set(2) { 1, 2 }");
    assert_eq!(lines[3], "Point { x: 1, y: 2 }");
    assert_eq!(lines[4], "Bob is 42 years");
    assert_eq!(
        lines[5],
        "[Function: named] [Function (anonymous)] Symbol(s) 10n -0"
    );
    assert_eq!(lines[6], "[]");
    assert_eq!(lines[7], "{}");
    assert_eq!(lines[8], "{ name: 'c', self: [Circular *1] }");
    assert_eq!(lines[9], "Uint8Array(2) [ 1, 2 ]");
    assert_eq!(lines[10], "{ 'needs-quotes': 1, \"it's\": \"a'b\" }");
}

#[tokio::test]
async fn long_objects_break_over_lines() {
    let r = js("console.log({alpha: 'aaaaaaaaaaaaaaaa', beta: 'bbbbbbbbbbbbbbbbbbbb', gamma: 'cccccccccccccccccccccc'})").await;
    ok(&r);
    assert_eq!(
        r.stdout,
        "{\n  alpha: 'aaaaaaaaaaaaaaaa',\n  beta: 'bbbbbbbbbbbbbbbbbbbb',\n  gamma: 'cccccccccccccccccccccc'\n}\n"
    );
}

#[tokio::test]
async fn text_encoding_globals_work() {
    let r = js("const b = new TextEncoder().encode('héllo €😀');\n\
                [Array.from(b).length, new TextDecoder().decode(b), new TextDecoder().decode(new Uint8Array([0xff]))]")
        .await;
    assert_eq!(ok(&r), &json!([14, "héllo €😀", "\u{fffd}"]));
    let r = js("new TextDecoder('utf-8', {fatal: true}).decode(new Uint8Array([0xc3]))").await;
    assert_eq!(r.error.unwrap().kind, "TypeError");
}

#[tokio::test]
async fn base64_globals_work() {
    assert_eq!(
        ok(&js("[btoa('hello'), atob('aGVsbG8='), atob(btoa('\\xff\\x00'))]").await),
        &json!(["aGVsbG8=", "hello", "\u{ff}\u{0}"])
    );
    let r = js("btoa('€')").await;
    assert_eq!(r.error.unwrap().kind, "InvalidCharacterError");
}

#[tokio::test]
async fn url_globals_follow_whatwg() {
    let r = js(
        "const u = new URL('/a/../b?x=1&y=two#frag', 'HTTPS://Example.COM:443');\n\
                u.searchParams.append('z', 'a b');\n\
                [u.href, u.host, u.pathname, u.search, u.hash, u.origin, u.searchParams.get('y')]",
    )
    .await;
    assert_eq!(
        ok(&r),
        &json!([
            "https://example.com/b?x=1&y=two&z=a+b#frag",
            "example.com",
            "/b",
            "?x=1&y=two&z=a+b",
            "#frag",
            "https://example.com",
            "two"
        ])
    );
    let r = js("const p = new URLSearchParams({q: 'rust wasm', n: '1'}); p.set('n', '2'); [p.toString(), [...p.keys()], p.has('q')]").await;
    assert_eq!(ok(&r), &json!(["q=rust+wasm&n=2", ["q", "n"], true]));
    let r = js("new URL('not a url')").await;
    assert_eq!(r.error.unwrap().kind, "TypeError");
    assert_eq!(
        ok(
            &js("const u = new URL('http://h/p'); u.pathname = '/q r'; u.port = '8080'; u.href")
                .await
        ),
        &json!("http://h:8080/q%20r")
    );
    assert_eq!(
        ok(&js("new URL('http://Bücher.example/').hostname").await),
        &json!("xn--bcher-kva.example")
    );
}

#[tokio::test]
async fn structured_clone_deep_copies() {
    let r = js("const d = new Date(0); const o = {d, m: new Map([[1, {x: 1}]]), s: new Set([1]), a: [1, [2]]}; o.self = o;\n\
                const c = structuredClone(o);\n\
                [c !== o, c.self === c, c.d instanceof Date && c.d.getTime() === 0, c.m.get(1).x, c.a[1] !== o.a[1], c.s.has(1)]")
        .await;
    assert_eq!(ok(&r), &json!([true, true, true, 1, true, true]));
    let r = js("structuredClone({f() {}})").await;
    assert_eq!(r.error.unwrap().kind, "DataCloneError");
}

#[tokio::test]
async fn math_random_is_reseeded_every_run() {
    let a = js("[Math.random(), Math.random()]").await;
    let b = js("[Math.random(), Math.random()]").await;
    assert_ne!(ok(&a), ok(&b), "two runs produced the same random numbers");
    let r = js("const v = Math.random(); v >= 0 && v < 1").await;
    assert_eq!(ok(&r), &json!(true));
    let r =
        js("[crypto.randomUUID().length, crypto.getRandomValues(new Uint8Array(8)).length]").await;
    assert_eq!(ok(&r), &json!([36, 8]));
}

#[tokio::test]
async fn uncaught_errors_have_type_message_and_traceback() {
    let r = js("function inner() { null.x }\nfunction outer() { inner() }\nouter()").await;
    assert_eq!(r.status.as_str(), "error");
    let e = r.error.unwrap();
    assert_eq!(e.kind, "TypeError");
    assert!(e.message.contains("null"), "{}", e.message);
    let tb = e.traceback.unwrap();
    assert!(tb.contains("inner") && tb.contains("main.js:1"), "{tb}");
    let r = js("class ValidationError extends Error { constructor(m) { super(m); this.name = 'ValidationError' } }\nthrow new ValidationError('bad')").await;
    let e = r.error.unwrap();
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("ValidationError", "bad")
    );
    let r = js("throw 'a string'").await;
    assert_eq!(r.error.unwrap().message, "Uncaught 'a string'");
}

/// What quickjs-ng had and Bellard's QuickJS lacks, kept for code written against either (the
/// prelude's "what QuickJS-ng offered").
#[tokio::test]
async fn performance_capture_stack_trace_and_array_from_async() {
    let r = js(r#"
        class AppError extends Error {
            constructor(m) { super(m); this.name = 'AppError'; Error.captureStackTrace(this, AppError); }
        }
        function fail() { return new AppError('nope'); }
        const e = fail();
        const t0 = performance.now();
        let spins = 0;
        while (performance.now() === t0 && spins < 1e7) spins++;
        const later = performance.now();
        const plain = {};
        Error.captureStackTrace(plain);
        async function* numbers() { yield 1; yield 2; yield 3; }
        const fromAsync = await Array.fromAsync(numbers(), async (x, i) => x * 10 + i);
        const fromPromises = await Array.fromAsync([Promise.resolve('a'), 'b']);
        const fromArrayLike = await Array.fromAsync({ length: 2, 0: 'x', 1: Promise.resolve('y') });
        ({
            stackStartsAtCaller: e.stack.trimStart().startsWith('at fail (main.js:5:'),
            constructorFrameDropped: !e.stack.includes('at AppError'),
            plainHasStack: typeof plain.stack === 'string' && plain.stack.includes('main.js:12'),
            clockMoves: t0 >= 0 && later > t0,
            timeOrigin: Math.abs(performance.timeOrigin - Date.now()) < 60000,
            fromAsync, fromPromises, fromArrayLike,
        })
    "#)
    .await;
    assert_eq!(
        ok(&r),
        &json!({
            "stackStartsAtCaller": true, "constructorFrameDropped": true, "plainHasStack": true,
            "clockMoves": true, "timeOrigin": true,
            "fromAsync": [10, 21, 32], "fromPromises": ["a", "b"], "fromArrayLike": ["x", "y"]
        })
    );
    let r = js("Error.captureStackTrace(1)").await;
    assert_eq!(r.error.unwrap().kind, "TypeError");
}

#[tokio::test]
async fn syntax_errors_name_the_line() {
    let r = js("let a = 1;\nlet b = ;").await;
    assert_eq!(r.status.as_str(), "error");
    let e = r.error.unwrap();
    assert_eq!(e.kind, "SyntaxError");
    assert!(
        e.traceback.unwrap_or_default().contains("main.js:2"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn results_that_json_cannot_encode() {
    assert_eq!(ok(&js("10n ** 20n").await), &json!("100000000000000000000"));
    assert_eq!(ok(&js("new Map([['a', 1]])").await), &json!({"a": 1}));
    assert_eq!(
        ok(&js("[NaN, Infinity]").await),
        &json!(["NaN", "Infinity"])
    );
    let r = js("const o = {}; o.o = o; o").await;
    assert_eq!(ok(&r), &json!("{ o: [Circular *1] }"));
    assert!(r.stderr.contains("not JSON-serializable"));
}

#[tokio::test]
async fn typescript_runs_with_types_stripped() {
    let r = ts(r#"
        interface User { id: number; name: string; role?: Role }
        enum Role { Admin = 'admin', User = 'user' }
        type Pair<A, B> = [A, B];
        function first<T>(xs: T[]): T | undefined { return xs[0]; }
        class Repo<T extends { id: number }> {
            private items = new Map<number, T>();
            add(item: T): this { this.items.set(item.id, item); return this; }
            get(id: number): T { return this.items.get(id)!; }
        }
        const users: User[] = [{ id: 1, name: 'ada', role: Role.Admin }, { id: 2, name: 'bob' }];
        const repo = new Repo<User>().add(users[0]).add(users[1]);
        const pair: Pair<string, number> = ['x', 1];
        const cfg = { debug: true } satisfies Record<string, boolean>;
        const n = (first(users) as User).id;
        ({ admin: repo.get(1).role, name: repo.get(2)!.name, pair, n, cfg, enumValue: Role.User })
    "#)
    .await;
    assert_eq!(
        ok(&r),
        &json!({"admin": "admin", "name": "bob", "pair": ["x", 1], "n": 1, "cfg": {"debug": true}, "enumValue": "user"})
    );
}

#[tokio::test]
async fn typescript_numeric_enums_and_type_imports() {
    let r = ts("import type { Foo } from './foo';\nenum Dir { Up, Down }\nconst d: Dir = Dir.Down;\n[d, Dir[0]]").await;
    assert_eq!(ok(&r), &json!([1, "Up"]));
}

#[tokio::test]
async fn typescript_syntax_error_points_into_the_typescript() {
    let r = ts("interface A { x: number }\nconst a: A = { x: 1 };\nconst b = a.x +;\n").await;
    assert_eq!(r.status.as_str(), "error");
    let e = r.error.unwrap();
    assert_eq!(e.kind, "SyntaxError");
    assert!(e.message.contains("main.ts:3:"), "{}", e.message);
}

#[tokio::test]
async fn typescript_runtime_errors_point_into_the_typescript() {
    let r = ts("interface A {\n  x: number\n}\n\nfunction boom(a: A): never {\n  throw new Error('boom ' + a.x)\n}\nboom({ x: 1 })").await;
    let e = r.error.unwrap();
    assert_eq!(e.message, "boom 1");
    let tb = e.traceback.unwrap();
    assert!(tb.contains("main.ts:6:"), "{tb}");
}

#[tokio::test]
async fn infinite_loop_ends_by_fuel_or_deadline() {
    let r = js("while (true) {}").await;
    assert!(
        matches!(r.status.as_str(), "timeout" | "out_of_fuel"),
        "{r:?}"
    );
    let e = executor_with("[limits]\nfuel = 100000000000\ndefault_timeout_ms = 300\n");
    let r = run_on(&e, "javascript", "for (;;) {}", None).await;
    assert_eq!(r.status.as_str(), "timeout", "{r:?}");
    let e = executor_with("[limits]\nfuel = 5000000\n");
    let r = run_on(&e, "javascript", "let i = 0; while (true) { i++ }", None).await;
    assert_eq!(r.status.as_str(), "out_of_fuel", "{r:?}");
    assert!(r.usage.fuel >= 5_000_000);
}

#[tokio::test]
async fn memory_bombs_end_out_of_memory() {
    for bomb in [
        "const a = []; while (true) a.push(new Array(100000).fill(1));",
        "const parts = []; for (let i = 0; ; i++) parts.push('x'.repeat(1 << 20) + i);",
        "const bufs = []; while (true) bufs.push(new ArrayBuffer(1 << 20));",
    ] {
        let r = js(bomb).await;
        assert_eq!(r.status.as_str(), "out_of_memory", "{bomb}: {r:?}");
        assert!(r.usage.memory_peak_bytes <= 128 * 1024 * 1024);
    }
    // Caught and survived: the program decides, and the run is ok.
    let r = js("let caught = false; try { const a = []; while (true) a.push(new Array(1e5).fill(1)); } catch (e) { caught = true } caught").await;
    assert_eq!(ok(&r), &json!(true));
}

#[tokio::test]
async fn unbounded_recursion_is_a_clean_error() {
    for code in [
        "function f() { return f() + 1 }\nf()",
        "const g = (n) => [g(n + 1)]; g(0)",
        "JSON.stringify(Array(1e5).fill(0).reduce((a) => [a], []))",
    ] {
        let r = js(code).await;
        assert_eq!(r.status.as_str(), "error", "{code}: {r:?}");
        let e = r.error.unwrap();
        assert!(e.message.contains("stack"), "{code}: {e:?}");
    }
    assert_eq!(
        ok(&js("function f(n) { return n ? f(n - 1) : 'deep' }\nf(1000)").await),
        &json!("deep")
    );
}

#[tokio::test]
async fn huge_output_is_truncated_at_the_cap() {
    let r = js("console.log('x'.repeat(10 * 1024 * 1024)); 'done'").await;
    assert_eq!(ok(&r), &json!("done"));
    assert!(r.truncated.stdout);
    assert_eq!(r.stdout.len(), 1024 * 1024);
    let r = js("for (let i = 0; i < 200000; i++) console.error('line ' + i); 1").await;
    assert!(r.truncated.stderr);
    assert!(!r.truncated.stdout);
}

#[tokio::test]
async fn oversize_result_is_an_error() {
    let r = js("'x'.repeat(2 * 1024 * 1024)").await;
    assert_eq!(r.status.as_str(), "error");
    assert_eq!(r.error.unwrap().kind, "ResultTooLarge");
}

#[tokio::test]
async fn the_sandbox_has_no_files_environment_or_network() {
    let r = js("[typeof process, typeof Deno, typeof XMLHttpRequest, typeof WebSocket, typeof std, typeof os, typeof scriptArgs]").await;
    assert_eq!(ok(&r), &json!(vec!["undefined"; 7]));
    // `require` exists for the workspace's fs only.
    let r = js("try { require('child_process') } catch (e) { e.code }").await;
    assert_eq!(ok(&r), &json!("MODULE_NOT_FOUND"));
    // The one door out is the host's fetch, and the default policy allows no host.
    let r = js("try { await fetch('https://example.com/'); 'sent' } catch (e) { e.name + ': ' + e.message }").await;
    assert_eq!(
        ok(&r),
        &json!("TypeError: fetch failed: host example.com is not on the allowlist")
    );
    let r = js("await import('fs')").await;
    assert_eq!(r.status.as_str(), "error", "{r:?}");
    let r = js("await import('os')").await;
    assert_eq!(r.status.as_str(), "error", "{r:?}");
}

#[tokio::test]
async fn every_failure_leaves_the_next_run_working() {
    let failures = [
        "while (true) {}",
        "const a = []; while (true) a.push(new Array(100000).fill(1));",
        "function f() { return f() }\nf()",
        "throw new Error('x')",
        "let = ;",
        "console.log('y'.repeat(5e6))",
    ];
    for code in failures {
        let _ = js(code).await;
        assert_eq!(
            ok(&js("[1, 2, 3].map(x => x * 2)").await),
            &json!([2, 4, 6]),
            "after {code}"
        );
    }
}

#[tokio::test]
async fn globals_do_not_leak_between_runs() {
    ok(&js("globalThis.leak = 42; Array.prototype.polluted = 1; 0").await);
    assert_eq!(
        ok(&js("[typeof leak, [].polluted]").await),
        &json!(["undefined", null])
    );
}

/// A call whose future is dropped mid-run (a client that went away, a server shutting down)
/// stops its guest at once: the only sandbox is free for the next call, which would otherwise
/// wait out the abandoned run's 20-second deadline.
#[tokio::test]
async fn a_dropped_call_stops_its_guest() {
    let e = std::sync::Arc::new(executor_with(
        "[limits]\nfuel = 1000000000000\nmax_concurrent_runs = 1\n",
    ));
    let spinning = {
        let e = e.clone();
        tokio::spawn(async move {
            common::call_as(
                &e,
                "local",
                "s",
                json!({"language": "javascript", "code": "while(true){}", "timeout_ms": 20000}),
                &tokio_util::sync::CancellationToken::new(),
            )
            .await
        })
    };
    let waited = std::time::Instant::now();
    while e.calls_in_flight() == 0 {
        assert!(
            waited.elapsed().as_secs() < 20,
            "the spinning call never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    spinning.abort();
    assert!(spinning.await.unwrap_err().is_cancelled());
    let next = common::call_as(
        &e,
        "local",
        "s",
        json!({"language": "javascript", "code": "1+1", "timeout_ms": 5000}),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    assert_eq!(ok(&next), &json!(2));
}

#[tokio::test]
async fn queueing_counts_against_the_deadline() {
    let e = std::sync::Arc::new(executor_with(
        "[limits]\nfuel = 1000000000000\nmax_concurrent_runs = 1\n",
    ));
    let busy = {
        let e = e.clone();
        tokio::spawn(async move {
            common::call_as(
                &e,
                "local",
                "s",
                json!({"language": "javascript", "code": "while(true){}", "timeout_ms": 1500}),
                &tokio_util::sync::CancellationToken::new(),
            )
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let queued = common::call_as(
        &e,
        "local",
        "s",
        json!({"language": "javascript", "code": "1", "timeout_ms": 300}),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    assert_eq!(queued.status.as_str(), "timeout", "{queued:?}");
    assert!(
        queued
            .error
            .unwrap()
            .message
            .contains("waiting for a free sandbox")
    );
    assert_eq!(busy.await.unwrap().status.as_str(), "timeout");
}

#[tokio::test]
async fn timers_behave_as_in_node() {
    // A timeout still pending when the program's value is known runs before the end.
    let r = js("setTimeout(() => console.log('late'), 100); 'value'").await;
    assert_eq!(ok(&r), &json!("value"));
    assert_eq!(r.stdout, "late\n");
    // An interval nobody clears is dropped at the end instead of spinning forever.
    let r =
        js("let n = 0; setInterval(() => n++, 10); await new Promise(r => setTimeout(r, 55)); n")
            .await;
    assert_eq!(ok(&r), &json!(5));
    // An exception thrown in a timer callback is uncaught: the run fails with it.
    let r = js("setTimeout(() => { throw new TypeError('in timer') }, 0); await new Promise(r => setTimeout(r, 10)); 'unreached'").await;
    assert_eq!(r.status.as_str(), "error");
    assert_eq!(r.error.unwrap().message, "in timer");
    let r = js("setTimeout(() => { throw new RangeError('after the end') }, 5); 1").await;
    assert_eq!(r.error.unwrap().kind, "RangeError");
}

#[tokio::test]
async fn a_program_cannot_fake_its_own_limit_status() {
    let r = js("const e = new Error('out of memory'); e.name = 'InternalError'; throw e").await;
    assert_eq!(r.status.as_str(), "error", "{r:?}");
    let r = js("JSON.stringify = () => '{\"type\":\"InternalError\",\"message\":\"out of memory\"}'; String = null; throw new Error('real')").await;
    assert_eq!(r.status.as_str(), "error", "{r:?}");
    assert_eq!(r.error.unwrap().message, "real");
    let r = js("JSON.stringify = () => 'garbage'; ({fine: true})").await;
    assert_eq!(ok(&r), &json!({"fine": true}));
}

#[tokio::test]
async fn results_nested_too_deep_for_the_host_are_an_error() {
    let r = js("let v = 1; for (let i = 0; i < 200; i++) v = [v]; v").await;
    assert_eq!(r.status.as_str(), "error");
    assert_eq!(r.error.unwrap().kind, "ResultTooDeep");
    let r = js("let v = 1; for (let i = 0; i < 100; i++) v = [v]; v").await;
    ok(&r);
}

#[tokio::test]
async fn unhandled_rejections_fail_the_run_as_in_node() {
    let r = js("Promise.reject(new TypeError('nobody caught me')); 'value'").await;
    assert_eq!(r.status.as_str(), "error", "{r:?}");
    let e = r.error.unwrap();
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("TypeError", "nobody caught me")
    );
    let r = js("async function work() { throw new Error('lost') }\nwork(); 1").await;
    assert_eq!(r.error.unwrap().message, "lost");
    // Handled later (before the end) is fine.
    let r = js("const p = Promise.reject(new Error('late')); await null; p.catch(() => {}); 'ok'")
        .await;
    assert_eq!(ok(&r), &json!("ok"));
    let r = js("Promise.reject(1).catch(() => 0); 2").await;
    assert_eq!(ok(&r), &json!(2));
}

/// `enum` is transformed, not a crash of the type stripper (found by the sandbox_js fuzz
/// target: oxc panicked on every enum).
#[tokio::test]
async fn typescript_enums_are_transformed() {
    let r = ts("enum Color { Red, Green = 5, Blue }\nconst c: Color = Color.Blue;\n[c, Color[5]]")
        .await;
    assert_eq!(ok(&r), &json!([6, "Green"]));
}
