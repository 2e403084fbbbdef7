//! CPU exhaustion: loops in every shape, catastrophic regular expressions, huge numbers, work
//! hidden in microtasks, timers, comparators and C-level library calls. Each must end as
//! `timeout` or `out_of_fuel` (or a clean error the runtime raises first) within its limits:
//! fuel is 2·10⁹ units (a fraction of a second) and the wall clock 1.5 s. A second table gives
//! fuel for a minute and a 300 ms deadline, so that only the deadline can stop its work.

use crate::harness::*;

const FUEL: u64 = 2_000_000_000;
const TIMEOUT_MS: u64 = 1_500;

fn env() -> Env {
    env_with(&[
        ("fuel", FUEL),
        ("default_timeout_ms", TIMEOUT_MS),
        ("max_timeout_ms", 3_000),
    ])
}

/// No network, no API key, no sink: only the limits differ between the tables.
fn env_with(limits: &[(&str, u64)]) -> Env {
    Env::new(EnvSpec {
        limits,
        api: false,
        sink: false,
        network: no_network,
    })
}

/// A program that must be stopped by a limit.
fn burn(language: &str, name: &str, code: &str) -> Case {
    Case::code(language, name, code)
        .must("ends as timeout or out_of_fuel, within the limits")
        .status(&["timeout", "out_of_fuel"])
        .check(limits_held)
}

/// A program that a limit stops, unless the runtime refuses the work first with an error.
fn burn_or_refuse(language: &str, name: &str, code: &str) -> Case {
    Case::code(language, name, code)
        .must("ends as timeout, out_of_fuel or a clean error, within the limits")
        .status(&["timeout", "out_of_fuel", "error"])
        .check(limits_held)
}

fn limits_held(o: &Outcome) -> Result<(), String> {
    let u = &o.result.usage;
    if u.fuel > FUEL {
        return Err(format!("used {} fuel, over the limit {FUEL}", u.fuel));
    }
    // Generous slack: the machine may be busy with other tests.
    if o.elapsed.as_millis() as u64 > TIMEOUT_MS + 3_500 {
        return Err(format!("took {:?}", o.elapsed));
    }
    match (o.result.status.as_str(), o.result.error.as_ref()) {
        ("timeout", Some(e)) if e.kind == "Timeout" => Ok(()),
        ("out_of_fuel", Some(e)) if e.kind == "OutOfFuel" => Ok(()),
        ("timeout" | "out_of_fuel", _) => Err("a limit status without its error type".into()),
        _ => Ok(()),
    }
}

pub fn cases(_: &Ports) -> Vec<Case> {
    vec![
        burn(JS, "JavaScript while (true) {}", "while (true) {}"),
        burn(
            JS,
            "JavaScript loop that re-enters through finally",
            "for (;;) { try { throw 0 } catch (e) { } finally { continue } }",
        ),
        burn(
            JS,
            "JavaScript exception storm",
            "for (;;) { try { null.x } catch (e) { } }",
        ),
        burn(
            JS,
            "JavaScript catastrophic regex backtracking /(a+)+$/",
            "/(a+)+$/.test('a'.repeat(40) + 'b')",
        ),
        burn(
            JS,
            "JavaScript catastrophic regex with alternation /^(\\w+\\s?)*$/",
            "/^(\\w+\\s?)*$/.test('an example sentence that does not match at the very end!'.repeat(3))",
        ),
        burn_or_refuse(JS, "JavaScript 10n ** 10n ** 7n", "10n ** 10n ** 7n"),
        burn_or_refuse(
            JS,
            "JavaScript decimal conversion of a huge BigInt",
            "(7n ** 400000n).toString().length",
        ),
        burn(
            JS,
            "JavaScript microtask storm (each job queues the next)",
            "const f = () => Promise.resolve().then(f); f(); await new Promise(() => {})",
        ),
        burn(
            JS,
            "JavaScript endless virtual timers awaited in a loop",
            "for (;;) await new Promise((r) => setTimeout(r, 1000))",
        ),
        burn(
            JS,
            "JavaScript setInterval left running while awaiting forever",
            "setInterval(() => {}, 0); await new Promise(() => {})",
        ),
        burn(
            JS,
            "JavaScript sort with a slow comparator",
            "Array.from({ length: 200000 }, Math.random).sort((a, b) => { for (let i = 0; i < 200; i++); return a - b })",
        ),
        burn(
            JS,
            "JavaScript JSON round trips forever",
            "let v = { a: [1, 2, 3], b: 'x'.repeat(100) }; for (;;) v = JSON.parse(JSON.stringify(v))",
        ),
        burn_or_refuse(
            JS,
            "JavaScript recursion that retries from its own catch",
            "function f() { try { f() } catch (e) { f() } } f()",
        ),
        burn(
            JS,
            "JavaScript busy loop inside an error's name getter (run while describing the error)",
            "const e = new Error('x'); Object.defineProperty(e, 'name', { get() { for (;;) {} } }); throw e",
        ),
        burn(
            JS,
            "JavaScript busy loop inside a result's toJSON (run while serializing the result)",
            "({ toJSON() { for (;;) {} } })",
        ),
        burn(
            TS,
            "TypeScript typed busy loop",
            "let n: number = 0;\nwhile (true) { n = (n + 1) % 7; }",
        ),
        burn(PY, "Python while True: pass", "while True:\n    pass"),
        burn(PY, "Python 10 ** 10 ** 8", "x = 10 ** 10 ** 8"),
        burn(
            PY,
            "Python catastrophic regex backtracking",
            "import re\nre.match(r'(a+)+$', 'a' * 40 + 'b')",
        ),
        burn(PY, "Python sum(range(10**12))", "sum(range(10**12))"),
        burn(
            PY,
            "Python hashes 4 MiB over and over (C code)",
            "import hashlib\nb = bytes(2**22)\nwhile True:\n    b = hashlib.sha256(b).digest() * 2**17",
        ),
        burn(
            PY,
            "Python math.factorial(10**7) (C code)",
            "import math\nmath.factorial(10**7)",
        ),
        burn(
            PY,
            "Python exception storm",
            "while True:\n    try:\n        raise ValueError('x')\n    except ValueError:\n        pass",
        ),
        burn(
            PY,
            "Python catches BaseException around a busy loop, then loops again",
            "try:\n    while True:\n        pass\nexcept BaseException:\n    while True:\n        pass",
        ),
        burn(
            PY,
            "Python loops in a result's __repr__ (run while reporting the result)",
            "class Forever:\n    def __repr__(self):\n        while True:\n            pass\nForever()",
        ),
        burn(
            PY,
            "Python sleeps in a loop (time.sleep takes no time in the sandbox)",
            "import time\nwhile True:\n    time.sleep(10)",
        ),
        burn(
            JS,
            "JavaScript busy loop with a 200 ms timeout_ms",
            "for (;;) {}",
        )
        .timeout_ms(200)
        .within_ms(2_500),
    ]
}

/// Fuel the deadline cases cannot use up before their deadline (~60 s of the fastest loop).
const AMPLE_FUEL: u64 = 1_000_000_000_000;
const SHORT_TIMEOUT_MS: u64 = 300;

fn ample_fuel_env() -> Env {
    env_with(&[
        ("fuel", AMPLE_FUEL),
        ("memory_bytes", 256 << 20),
        ("default_timeout_ms", SHORT_TIMEOUT_MS),
    ])
}

/// Work that does much per unit of fuel (copies, fills and searches of 20 MB in C code, host
/// calls with large strings), with more fuel than it can use: only the wall clock stops it,
/// and the guest looks at the clock only when it yields, every 5 million units of fuel. This
/// holds as long as fuel tracks time: the guests' C libraries copy and fill in wasm loops that
/// pay fuel per word, and wasmtime charges a bulk `memory.copy` or `memory.fill` by its length
/// (src/sandbox/fuzzing.rs tests that for a raw module).
fn outlast(language: &str, name: &str, code: &str) -> Case {
    Case::code(language, name, code)
        .must("ends as timeout at its deadline, though its fuel would last a minute")
        .status(&["timeout"])
        .within_ms(SHORT_TIMEOUT_MS + 2_700)
}

pub fn deadline_cases(_: &Ports) -> Vec<Case> {
    vec![
        outlast(
            JS,
            "JavaScript slices a 20 MB string over and over",
            "const s = 'x'.repeat(20e6); let n = 0; for (;;) n += s.slice(1).length",
        ),
        outlast(
            JS,
            "JavaScript copies a 20 MB typed array over and over",
            "const b = new Uint8Array(20e6); for (;;) b.slice(1)",
        ),
        outlast(
            JS,
            "JavaScript copyWithin and fill on 20 MB",
            "const b = new Uint8Array(20e6); for (let i = 0; ; i++) { b.copyWithin(0, 1); b.fill(i & 255) }",
        ),
        outlast(
            JS,
            "JavaScript searches a 20 MB string",
            "const s = 'a'.repeat(20e6); let n = 0; for (;;) n += s.indexOf('b') + s.lastIndexOf('b')",
        ),
        outlast(
            JS,
            "JavaScript prints a 1 MB line over and over (the output cap is reached at once)",
            "const s = 'y'.repeat(1e6); for (;;) console.log(s)",
        ),
        outlast(
            JS,
            "JavaScript round-trips a 2 MB string through JSON",
            "const s = 'z'.repeat(2e6); for (;;) JSON.parse(JSON.stringify(s))",
        ),
        outlast(
            PY,
            "Python slices 20 MB of bytes over and over",
            "b = bytes(20_000_000)\nwhile True:\n    c = b[:-1]",
        ),
        outlast(
            PY,
            "Python allocates and zeroes 20 MB over and over",
            "while True:\n    b = bytearray(20_000_000)",
        ),
        outlast(
            PY,
            "Python searches and replaces in 20 MB",
            "b = b'a' * 20_000_000\nwhile True:\n    b.find(b'b')\n    c = b.replace(b'a', b'c')",
        ),
        outlast(
            PY,
            "Python joins and upper-cases 20 MB of text",
            "s = 'x' * 20_000_000\nwhile True:\n    t = ''.join([s, s]).upper()",
        ),
        outlast(
            PY,
            "Python prints 1 MB lines over and over (the output cap is reached at once)",
            "s = 'y' * 1_000_000\nwhile True:\n    print(s)",
        ),
    ]
}

#[tokio::test]
async fn cpu() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("cpu", &env, cases, Mode::Regular).await;
}

#[tokio::test]
async fn deadline_with_ample_fuel() {
    let env = ample_fuel_env();
    let cases = deadline_cases(&env.ports);
    run_table("cpu (deadline with ample fuel)", &env, cases, Mode::Regular).await;
}
