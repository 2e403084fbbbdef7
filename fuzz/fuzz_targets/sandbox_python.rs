//! Python programs in the real sandbox (the componentize-py guest, through
//! `Service::call`, the server's pipeline, on its kind of blocking thread), with small limits.
//!
//! Input, one of:
//! - a source file: `#py\n`, then the program (the seed corpus holds readable programs;
//!   fuzz/dict/sandbox_python.dict feeds it Python tokens);
//! - anything else, read as structured input (`arbitrary`): a timeout, an `input` value and a
//!   program, free text or blocks of a small grammar aimed at the limits and the sandbox's
//!   edges: loops, spinning, recursion (with a raised recursion limit), allocation, output
//!   floods, exceptions, exits (`sys.exit`, `os._exit`), blocked and unavailable imports,
//!   files, sleeping, catastrophic regexes, deep JSON, generators, `requests`/`urllib`
//!   fetches, awkward results (sets, bytes, NaN, cycles, ...).
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
    LazyLock::new(|| common::Sandbox::with_small_limits(1500, 128 << 20));

#[derive(Debug, Arbitrary)]
struct Input {
    timeout_ms: Option<u16>,
    input: Option<(String, i64)>,
    program: Program,
}

#[derive(Debug, Arbitrary)]
enum Program {
    Source(String),
    Blocks(Vec<Block>),
}

/// Counts near this language's limits (buffer sizes, machine integers).
const LIMIT_COUNTS: [u64; 9] = [
    1 << 16,
    1 << 20,
    1 << 24,
    1 << 26,
    1 << 28,
    1 << 30,
    (1 << 31) - 1,
    1 << 32,
    1 << 62,
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
    RecursionLimit(Count),
    AllocString(Count),
    AllocBytes(Count),
    AllocList(Count),
    DoubleString,
    Print(Expr),
    PrintError(Expr),
    Flood(Count),
    Raise(Expr),
    Try(Vec<Block>, Vec<Block>),
    Finally(Vec<Block>, Vec<Block>),
    Json(Count),
    Regex(Count),
    Generator(Count),
    Exit(i16, bool),
    Import(u8),
    Fetch(u8),
    Sleep(u16),
    Result(Expr),
    Exec(String),
    Raw(String),
    Snippet(u8),
}

#[derive(Debug, Arbitrary)]
enum Expr {
    Number(f64),
    Int(i64),
    Text(String),
    BigInt(u16),
    Set,
    Bytes,
    NaN,
    Cycle,
    Tuple,
    Complex,
    Object,
    Input,
    Nested(Count),
    Huge(Count),
    Keep,
}

const MODULES: &[&str] = &[
    "os",
    "sys",
    "subprocess",
    "socket",
    "ctypes",
    "threading",
    "multiprocessing",
    "asyncio",
    "signal",
    "mmap",
    "select",
    "_thread",
    "importlib",
    "pickle",
    "marshal",
    "json",
    "re",
    "requests",
    "urllib.request",
    "warden",
    "sqlite3",
    "zipimport",
    "resource",
    "gc",
    "inspect",
    "tracemalloc",
    "faulthandler",
    "this",
    "antigravity",
    "nonexistent_module_x",
];

const SNIPPETS: &[&str] = &[
    "import os; os.listdir('/')",
    "open('/etc/passwd').read()",
    "open('x.txt', 'w').write('x')",
    "import os; os.environ",
    "import os; os.getcwd()",
    "import os; os.system('ls')",
    "import sys; sys.modules.keys()",
    "import sys; sys.meta_path.clear(); import socket",
    "import sys; del sys.meta_path[:]",
    "__import__('socket')",
    "import importlib; importlib.import_module('ctypes')",
    "import builtins; builtins.__import__ = None",
    "import gc; gc.collect()",
    "import sys; sys.setrecursionlimit(10**6)",
    "import time; time.sleep(5)",
    "import time; time.time()",
    "import random; random.random()",
    "import hashlib; hashlib.sha256(b'x' * 10**6).hexdigest()",
    "import zlib; zlib.decompress(zlib.compress(b'\\0' * 10**7))",
    "import gzip; gzip.decompress(gzip.compress(b'a' * 10**6))",
    "import decimal; decimal.getcontext().prec = 10**6; decimal.Decimal(1) / 7",
    "2 ** 10**7",
    "str(10 ** 5000)",
    "int('9' * 10000)",
    "float('inf')",
    "[x for x in range(10**7)]",
    "sum(range(10**8))",
    "print(*range(100000))",
    "print('\\ud800')",
    "print('\\x00' * 100)",
    "import sys; sys.stdout.write('x' * 10**6)",
    "import sys; sys.stderr.write('e' * 10**6)",
    "import sys; sys.stdout.close()",
    "import sys; sys.stdout = None",
    "exit()",
    "quit(3)",
    "raise SystemExit('bye')",
    "raise KeyboardInterrupt",
    "raise MemoryError",
    "raise RecursionError",
    "import warnings; warnings.warn('w')",
    "async def f(): return 1\nimport asyncio; asyncio.run(f())",
    "def g():\n    yield from g()\nlist(g())",
    "class A:\n    def __del__(self): raise Exception('del')\nA()",
    "class M(type): pass\nclass B(metaclass=M): pass\nB",
    "globals()",
    "locals()",
    "input",
    "input['x'] if isinstance(input, dict) else input",
    "breakpoint()",
    "help()",
    "__builtins__",
    "import traceback; traceback.print_stack()",
    "import re; re.compile('(' * 100 + ')' * 100)",
    "eval(compile('1+1', 'x', 'eval'))",
    "memoryview(bytearray(10))[5:]",
    "from requests import get; get('http://127.0.0.1:1/')",
    "import urllib.request; urllib.request.urlopen('file:///etc/passwd')",
];

const URLS: &[&str] = &[
    "http://127.0.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "https://example.com/",
    "file:///etc/passwd",
    "http://[::1]:1/",
    "https://__WARDEN_SECRET_x__.example/",
];

struct Render {
    out: String,
    vars: u32,
}

impl Render {
    fn fresh(&mut self) -> String {
        self.vars += 1;
        format!("v{}", self.vars)
    }

    fn expr(&mut self, e: &Expr) -> String {
        match e {
            Expr::Number(n) => {
                if n.is_finite() {
                    format!("{n:?}")
                } else {
                    "0.0".into()
                }
            }
            Expr::Int(i) => i.to_string(),
            Expr::Text(s) => serde_json::to_string(s).unwrap(),
            Expr::BigInt(e) => format!("7 ** {e}"),
            Expr::Set => "{1, 'two', None}".into(),
            Expr::Bytes => "b'\\x00\\xff'".into(),
            Expr::NaN => "float('nan')".into(),
            Expr::Cycle => "(lambda l: (l.append(l), l)[1])([])".into(),
            Expr::Tuple => "(1, (2, [3]), {'k': (4,)})".into(),
            Expr::Complex => "1 + 2j".into(),
            Expr::Object => "object()".into(),
            Expr::Input => "input".into(),
            Expr::Nested(n) => format!(
                "__import__('functools').reduce(lambda o, _: [o], range({}), 0)",
                n.get().min(1 << 20)
            ),
            Expr::Huge(n) => format!("'x' * {}", n.get()),
            Expr::Keep => "globals().get('keep')".into(),
        }
    }

    fn line(&mut self, indent: usize, text: &str) {
        for l in text.lines() {
            self.out.push_str(&"    ".repeat(indent));
            self.out.push_str(l);
            self.out.push('\n');
        }
    }

    fn blocks(&mut self, blocks: &[Block], indent: usize) {
        let mut any = false;
        for b in blocks.iter().take(12) {
            if self.out.len() > 16 * 1024 {
                break;
            }
            self.block(b, indent);
            any = true;
        }
        if !any {
            self.line(indent, "pass");
        }
    }

    fn nested(&mut self, blocks: &[Block], indent: usize) {
        if indent < 4 {
            self.blocks(blocks, indent + 1);
        } else {
            self.line(indent + 1, "pass");
        }
    }

    fn block(&mut self, b: &Block, indent: usize) {
        match b {
            Block::Loop(n, body) => {
                let i = self.fresh();
                self.line(indent, &format!("for {i} in range({}):", n.get()));
                self.nested(body, indent);
            }
            Block::Spin => self.line(indent, "while True: pass"),
            Block::Forever(body) => {
                self.line(indent, "while True:");
                self.nested(body, indent);
            }
            Block::Recurse(n) => {
                let f = self.fresh();
                self.line(
                    indent,
                    &format!("def {f}(n): return 0 if n <= 0 else 1 + {f}(n - 1)"),
                );
                self.line(indent, &format!("{f}({})", n.get()));
            }
            Block::RecursionLimit(n) => self.line(
                indent,
                &format!("import sys; sys.setrecursionlimit({})", n.get().max(1)),
            ),
            Block::AllocString(n) => self.line(indent, &format!("s = 'x' * {}", n.get())),
            Block::AllocBytes(n) => self.line(
                indent,
                &format!("keep = globals().setdefault('keep', []); keep.append(bytearray({}))", n.get()),
            ),
            Block::AllocList(n) => self.line(
                indent,
                &format!("keep = globals().setdefault('keep', []); keep.append([7] * {})", n.get()),
            ),
            Block::DoubleString => self.line(indent, "s = globals().get('s', 'ab') * 2"),
            Block::Print(e) => {
                let e = self.expr(e);
                self.line(indent, &format!("print({e})"));
            }
            Block::PrintError(e) => {
                let e = self.expr(e);
                self.line(indent, &format!("import sys; print({e}, file=sys.stderr)"));
            }
            Block::Flood(n) => self.line(
                indent,
                &format!("for i in range({}): print('line', i, 'z' * 100)", n.get()),
            ),
            Block::Raise(e) => {
                let e = self.expr(e);
                self.line(indent, &format!("raise ValueError({e})"));
            }
            Block::Try(body, handler) => {
                self.line(indent, "try:");
                self.nested(body, indent);
                self.line(indent, "except BaseException as e:");
                self.nested(handler, indent);
            }
            Block::Finally(body, handler) => {
                self.line(indent, "try:");
                self.nested(body, indent);
                self.line(indent, "finally:");
                self.nested(handler, indent);
            }
            Block::Json(n) => self.line(
                indent,
                &format!(
                    "import json\no = {{}}\nfor i in range({}): o = {{'o': o}}\njson.loads(json.dumps(o))",
                    n.get()
                ),
            ),
            Block::Regex(n) => self.line(
                indent,
                &format!(
                    "import re; re.match(r'^(a+)+$', 'a' * {} + 'b')",
                    n.get().min(1 << 20)
                ),
            ),
            Block::Generator(n) => self.line(
                indent,
                &format!("sum(x * x for x in range({}))", n.get()),
            ),
            Block::Exit(code, hard) => {
                if *hard {
                    self.line(indent, &format!("import os; os._exit({code})"));
                } else {
                    self.line(indent, &format!("import sys; sys.exit({code})"));
                }
            }
            Block::Import(i) => {
                let m = MODULES[usize::from(*i) % MODULES.len()];
                self.line(indent, &format!("import {m}"));
            }
            Block::Fetch(i) => {
                let url = URLS[usize::from(*i) % URLS.len()];
                self.line(indent, "import requests");
                self.line(
                    indent,
                    &format!("try: requests.get({url:?}, timeout=1).text\nexcept Exception as e: print(type(e).__name__)"),
                );
            }
            Block::Sleep(ms) => self.line(
                indent,
                &format!("import time; time.sleep({})", f64::from(*ms) / 1000.0),
            ),
            Block::Result(e) => {
                let e = self.expr(e);
                self.line(indent, &e);
            }
            Block::Exec(s) => {
                let s = serde_json::to_string(s).unwrap();
                self.line(indent, &format!("exec({s})"));
            }
            Block::Raw(s) => {
                let s = s.replace(['\n', '\r'], " ");
                self.line(indent, &s);
            }
            Block::Snippet(i) => {
                let s = SNIPPETS[usize::from(*i) % SNIPPETS.len()];
                self.line(indent, s);
            }
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
    let input = if let Some(source) = data.strip_prefix(b"#py\n") {
        Input {
            timeout_ms: None,
            input: None,
            program: Program::Source(String::from_utf8_lossy(source).into_owned()),
        }
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
    let timeout_ms = input.timeout_ms.map(|t| u64::from(t % 2000) + 1);
    let args = ExecuteArgs {
        language: Language::Python,
        code,
        timeout_ms,
        input: input
            .input
            .as_ref()
            .map(|(k, n)| serde_json::json!({ k.clone(): n, "x": [1, 2] })),
        files: None,
        session: None,
        session_action: None,
    };
    SANDBOX.run_and_check(args);
});
