//! JavaScript and TypeScript programs in the real sandbox (the QuickJS guest, through
//! `Service::call`, the server's pipeline, on its kind of blocking thread), with small limits.
//!
//! Input, one of:
//! - a source file: `//js\n` or `//ts\n`, then the program (the seed corpus holds readable
//!   programs; libFuzzer's dictionary, fuzz/dict/sandbox_js.dict, feeds it JavaScript tokens);
//! - anything else, read as structured input (`arbitrary`): the language, a timeout, an
//!   `input` value and a program, free text or blocks of a small grammar aimed at the limits:
//!   loops, spinning, recursion, allocation (strings, arrays, typed arrays), output floods,
//!   exceptions, promises, timers, catastrophic regexes, deep JSON, fetch, awkward results
//!   (BigInt, Map, circular, ...).
//!
//! Asserts (see `common::check_run`): the host never panics; every run returns within its
//! deadline plus a fixed slack; memory never exceeds the cap, fuel never the budget, output
//! never its caps; status and error agree; the host never fails on its own account; and after
//! a failed run, the next run works.

#![no_main]

mod common;

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use common::Count;
use libfuzzer_sys::fuzz_target;
use warden::contract::{ExecuteArgs, Language};

static SANDBOX: LazyLock<common::Sandbox> =
    LazyLock::new(|| common::Sandbox::with_small_limits(1000, 64 << 20));

#[derive(Debug, Arbitrary)]
struct Input {
    typescript: bool,
    timeout_ms: Option<u16>,
    input: Option<Json>,
    program: Program,
}

#[derive(Debug, Arbitrary)]
enum Program {
    Source(String),
    Blocks(Vec<Block>),
}

#[derive(Debug, Arbitrary)]
enum Json {
    Null,
    Bool(bool),
    Number(f64),
    Int(i64),
    Text(String),
    List(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn value(&self, depth: u32) -> serde_json::Value {
        use serde_json::Value;
        if depth > 8 {
            return Value::Null;
        }
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::from(*b),
            Json::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
            Json::Int(i) => Value::from(*i),
            Json::Text(s) => Value::from(s.clone()),
            Json::List(items) => items.iter().take(16).map(|j| j.value(depth + 1)).collect(),
            Json::Object(entries) => Value::Object(
                entries
                    .iter()
                    .take(16)
                    .map(|(k, v)| (k.clone(), v.value(depth + 1)))
                    .collect(),
            ),
        }
    }
}

/// Counts near this language's limits (string length, array length, safe integers).
const LIMIT_COUNTS: [u64; 9] = [
    1 << 16,
    1 << 20,
    1 << 24,
    1 << 26,
    (1 << 28) - 1,
    1 << 30,
    (1 << 31) - 1,
    1 << 32,
    (1 << 53) - 1,
];

impl Count {
    fn get(self) -> u64 {
        self.within(&LIMIT_COUNTS)
    }
}

#[derive(Debug, Arbitrary)]
enum Block {
    Loop(Count, Vec<Block>),
    Spin,
    Forever(Vec<Block>),
    Recurse(Count),
    RecurseForever,
    MutualRecursion,
    AllocString(Count),
    DoubleString,
    AllocArray(Count),
    TypedArray(Count),
    ArrayBuffer(Count),
    Grow(Count),
    Print(Expr),
    PrintError(Expr),
    Flood(Count),
    Throw(Expr),
    Try(Vec<Block>, Vec<Block>),
    Finally(Vec<Block>, Vec<Block>),
    Json(Count),
    Regex(Count),
    Promise(Vec<Block>),
    Reject(Expr),
    Await(Vec<Block>),
    Timer(u16, Vec<Block>),
    Interval(Vec<Block>),
    Fetch(u8),
    Result(Expr),
    Eval(String),
    Raw(String),
    Snippet(u8),
}

#[derive(Debug, Arbitrary)]
enum Expr {
    Number(f64),
    Int(i32),
    Text(String),
    BigInt(i64),
    Map,
    Set,
    Circular,
    NaN,
    Infinity,
    Undefined,
    Symbol,
    Function,
    Date,
    Input,
    Nested(Count),
    Huge(Count),
    Keep,
    Error,
}

const SNIPPETS: &[&str] = &[
    "globalThis.x = 1",
    "Object.prototype.toJSON = () => { throw new Error('no') }",
    "JSON.stringify = null",
    "Object.defineProperty(globalThis, 'console', { value: null })",
    "delete globalThis.console",
    "Promise.prototype.then = function () { while (true) {} }",
    "Array.prototype[Symbol.iterator] = null",
    "String.prototype.repeat = null",
    "new Proxy({}, { get() { throw 1 } })",
    "new Function('return this')()",
    "import('x').catch(e => e)",
    "queueMicrotask(() => { throw new Error('micro') })",
    "(async () => { throw new Error('async') })()",
    "Symbol.for('x').description",
    "Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10)",
    "WebAssembly.compile(new Uint8Array([0, 97, 115, 109]))",
    "console.log('%s %d %o', 'a', 1, {})",
    "console.log(new Error('x').stack)",
    "Date.now()",
    "Math.random()",
    "crypto.getRandomValues(new Uint8Array(16))",
    "new TextEncoder().encode('x'.repeat(1000))",
    "structuredClone({a: [1, 2]})",
    "require('fs')",
    "process.exit(3)",
    "globalThis.fetch = undefined",
    "setTimeout(() => { while (true) {} }, 0)",
    "let p = Promise.resolve(); for (let i = 0; i < 100000; i++) p = p.then(() => i); p",
    "new Promise(() => {})",
    "Promise.reject(new Error('unhandled'))",
    "'\\u{1F600}'.repeat(100)",
    "'\\ud800'",
    "String.fromCharCode(0xd800)",
    "`${'x'.repeat(1 << 20)}`.length",
    "[].concat.apply([], new Array(100000).fill([1]))",
    "Array.from({length: 1 << 20}, (_, i) => i).reduce((a, b) => a + b)",
    "eval('1 + 1')",
    "with (Math) { max(1, 2) }",
    "arguments",
    "this",
    "new.target",
    "(() => { 'use strict'; undeclared = 1 })()",
    "class A { #x = 1; static m() { return new A().#x } }; A.m()",
    "function* g() { while (true) yield 1 }; [...g()]",
    "for await (const x of [1, 2]) {}",
    "label: for (;;) { break label }",
    "Reflect.ownKeys(globalThis)",
    "input",
    "input && input.x",
    "print('x')",
];

const URLS: &[&str] = &[
    "http://127.0.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "https://example.com/",
    "file:///etc/passwd",
    "not a url",
    "http://[::1]:1/",
    "https://__WARDEN_SECRET_x__.example/",
];

fn source_input(typescript: bool, source: &[u8]) -> Input {
    Input {
        typescript,
        timeout_ms: None,
        input: None,
        program: Program::Source(String::from_utf8_lossy(source).into_owned()),
    }
}

struct Render {
    out: String,
    vars: u32,
}

impl Render {
    fn fresh(&mut self) -> String {
        self.vars += 1;
        format!("v{}", self.vars)
    }

    fn expr(&mut self, e: &Expr, depth: u32) -> String {
        match e {
            Expr::Number(n) => {
                if n.is_finite() {
                    format!("{n:?}")
                } else {
                    "0".into()
                }
            }
            Expr::Int(i) => i.to_string(),
            Expr::Text(s) => serde_json::to_string(s).unwrap(),
            Expr::BigInt(i) => format!("{i}n ** 5n"),
            Expr::Map => "new Map([[1, {a: 2}], ['k', [3n]]])".into(),
            Expr::Set => "new Set([1, 'two', null])".into(),
            Expr::Circular => "(() => { const o = {a: 1}; o.self = o; return o })()".into(),
            Expr::NaN => "NaN".into(),
            Expr::Infinity => "-Infinity".into(),
            Expr::Undefined => "undefined".into(),
            Expr::Symbol => "Symbol('s')".into(),
            Expr::Function => "(function f(a, b) { return a + b })".into(),
            Expr::Date => "new Date(0)".into(),
            Expr::Input => "input".into(),
            Expr::Nested(n) => format!(
                "(() => {{ let o = 0; for (let i = 0; i < {}; i++) o = [o]; return o }})()",
                n.get().min(1 << 20)
            ),
            Expr::Huge(n) => format!("'x'.repeat({})", n.get()),
            Expr::Keep => "globalThis.keep".into(),
            Expr::Error => {
                let _ = depth;
                "new TypeError('typed')".into()
            }
        }
    }

    /// Keeps `value` alive until the end of the run.
    fn keep(&mut self, value: &str) {
        self.out.push_str(&format!(
            "(globalThis.keep = globalThis.keep || []).push({value})"
        ));
    }

    fn blocks(&mut self, blocks: &[Block], depth: u32) {
        for b in blocks.iter().take(12) {
            if self.out.len() > 16 * 1024 {
                return;
            }
            self.block(b, depth);
            self.out.push('\n');
        }
    }

    fn nested(&mut self, blocks: &[Block], depth: u32) {
        if depth < 4 {
            self.blocks(blocks, depth + 1);
        }
    }

    fn block(&mut self, b: &Block, depth: u32) {
        match b {
            Block::Loop(n, body) => {
                let i = self.fresh();
                self.out
                    .push_str(&format!("for (let {i} = 0; {i} < {}; {i}++) {{\n", n.get()));
                self.nested(body, depth);
                self.out.push('}');
            }
            Block::Spin => self.out.push_str("while (true) {}"),
            Block::Forever(body) => {
                self.out.push_str("for (;;) {\n");
                self.nested(body, depth);
                self.out.push('}');
            }
            Block::Recurse(n) => {
                let f = self.fresh();
                self.out.push_str(&format!(
                    "(function {f}(n) {{ return n <= 0 ? 0 : 1 + {f}(n - 1) }})({})",
                    n.get()
                ));
            }
            Block::RecurseForever => {
                let f = self.fresh();
                self.out
                    .push_str(&format!("(function {f}() {{ return {f}() + 1 }})()"));
            }
            Block::MutualRecursion => self.out.push_str(
                "try { (function a() { try { a() } finally { a() } })() } catch (e) { e }",
            ),
            Block::AllocString(n) => self
                .out
                .push_str(&format!("globalThis.s = 'x'.repeat({})", n.get())),
            Block::DoubleString => self
                .out
                .push_str("globalThis.s = (globalThis.s || 'ab') + (globalThis.s || 'ab')"),
            Block::AllocArray(n) => self.keep(&format!("new Array({}).fill(7)", n.get())),
            Block::TypedArray(n) => self.keep(&format!("new Float64Array({})", n.get())),
            Block::ArrayBuffer(n) => self.keep(&format!("new ArrayBuffer({})", n.get())),
            Block::Grow(n) => self.out.push_str(&format!(
                "{{ const a = []; for (let i = 0; i < {}; i++) a.push({{i, s: 'y' + i}}); globalThis.keep = a }}",
                n.get()
            )),
            Block::Print(e) => {
                let e = self.expr(e, depth);
                self.out.push_str(&format!("console.log({e})"));
            }
            Block::PrintError(e) => {
                let e = self.expr(e, depth);
                self.out.push_str(&format!("console.error({e})"));
            }
            Block::Flood(n) => self.out.push_str(&format!(
                "for (let i = 0; i < {}; i++) console.log('line ' + i + ' ' + 'z'.repeat(100))",
                n.get()
            )),
            Block::Throw(e) => {
                let e = self.expr(e, depth);
                self.out.push_str(&format!("throw {e}"));
            }
            Block::Try(body, handler) => {
                self.out.push_str("try {\n");
                self.nested(body, depth);
                self.out.push_str("} catch (e) {\n");
                self.nested(handler, depth);
                self.out.push('}');
            }
            Block::Finally(body, handler) => {
                self.out.push_str("try {\n");
                self.nested(body, depth);
                self.out.push_str("} finally {\n");
                self.nested(handler, depth);
                self.out.push('}');
            }
            Block::Json(n) => self.out.push_str(&format!(
                "{{ let o = {{}}; for (let i = 0; i < {}; i++) o = {{o}}; JSON.parse(JSON.stringify(o)) }}",
                n.get()
            )),
            Block::Regex(n) => self.out.push_str(&format!(
                "/^(a+)+$/.test('a'.repeat({}) + 'b')",
                n.get().min(1 << 20)
            )),
            Block::Promise(body) => {
                self.out.push_str("new Promise((resolve) => {\n");
                self.nested(body, depth);
                self.out.push_str("\nresolve(1) })");
            }
            Block::Reject(e) => {
                let e = self.expr(e, depth);
                self.out.push_str(&format!("Promise.reject({e})"));
            }
            Block::Await(body) => {
                self.out.push_str("await (async () => {\n");
                self.nested(body, depth);
                self.out.push_str("\n})()");
            }
            Block::Timer(ms, body) => {
                self.out.push_str("setTimeout(() => {\n");
                self.nested(body, depth);
                self.out.push_str(&format!("\n}}, {ms})"));
            }
            Block::Interval(body) => {
                self.out.push_str("setInterval(() => {\n");
                self.nested(body, depth);
                self.out.push_str("\n}, 1)");
            }
            Block::Fetch(i) => {
                let url = URLS[usize::from(*i) % URLS.len()];
                self.out.push_str(&format!(
                    "await fetch({url:?}).then(r => r.text()).catch(e => String(e))"
                ));
            }
            Block::Result(e) => {
                let e = self.expr(e, depth);
                self.out.push_str(&format!("({e})"));
            }
            Block::Eval(s) => self
                .out
                .push_str(&format!("eval({})", serde_json::to_string(s).unwrap())),
            Block::Raw(s) => self.out.push_str(s),
            Block::Snippet(i) => self.out.push_str(SNIPPETS[usize::from(*i) % SNIPPETS.len()]),
        }
    }
}

fuzz_target!(
    // Start-up (compiling the guests into a cold cache) is not a run: it must not count
    // against libFuzzer's per-input timeout.
    init: {
        LazyLock::force(&SANDBOX);
    },
    |data: &[u8]| {
    let input = if let Some(source) = data.strip_prefix(b"//js\n") {
        source_input(false, source)
    } else if let Some(source) = data.strip_prefix(b"//ts\n") {
        source_input(true, source)
    } else {
        match Input::arbitrary_take_rest(arbitrary::Unstructured::new(data)) {
            Ok(input) => input,
            Err(_) => return,
        }
    };
    let code = match &input.program {
        Program::Source(s) => s.clone(),
        Program::Blocks(blocks) => {
            let mut r = Render {
                out: String::new(),
                vars: 0,
            };
            r.blocks(blocks, 0);
            r.out
        }
    };
    let language = if input.typescript {
        Language::Typescript
    } else {
        Language::Javascript
    };
    let timeout_ms = input.timeout_ms.map(|t| u64::from(t % 2000) + 1);
    let args = ExecuteArgs {
        language,
        code,
        timeout_ms,
        input: input.input.as_ref().map(|j| j.value(0)),
        files: None,
        session: None,
        session_action: None,
    };
    SANDBOX.run_and_check(args);
});
