//! Memory exhaustion: arrays, strings, typed arrays, maps, BigInts, Python bytes, decompression
//! bombs. The policy allows 48 MiB of linear memory per run; every run reports at most that
//! (the suite checks `memory_peak_bytes` on every case), and one that runs out ends
//! `out_of_memory`, or with the runtime's own clean error when it refuses a size up front.

use serde_json::json;

use crate::harness::*;

const MEMORY: u64 = 48 << 20;

fn env() -> Env {
    Env::new(EnvSpec {
        limits: &[("memory_bytes", MEMORY), ("fuel", 5_000_000_000)],
        api: false,
        sink: false,
        network: no_network,
    })
}

const CHURN_AT_THE_CAP: &str = r#"
import random
rng = random.Random(7)
live = {}
n = 0
full = 0
for round_ in range(6):
    reserve = None
    try:
        reserve = bytearray(256 << 10)
        while True:
            size = rng.choice((8, 24, 40, 100, 200, 400, 480, 600, 5000))
            live[n] = bytes([n % 251]) * size
            n += 1
    except MemoryError:
        full += 1
    reserve = None
    for k in range(n):
        v = live.get(k)
        assert v is None or v == bytes([k % 251]) * len(v), k
    for k in range(n):
        if k in live and (round_ % 3 == 2 or rng.random() < 0.5):
            del live[k]
# A live object keeps its whole 256 KiB chunk from libc: drop the last ones the loops held.
live = v = k = None
[n > 5_000, full, len(bytearray(256 << 10))]
"#;

/// A program that must run out of memory.
fn oom(language: &str, name: &str, code: &str) -> Case {
    Case::code(language, name, code)
        .must("ends out_of_memory, never past the 48 MiB cap")
        .status(&["out_of_memory"])
}

/// A program whose size the runtime refuses before allocating: a clean error.
fn refused(language: &str, name: &str, code: &str, errors: &'static [&'static str]) -> Case {
    Case::code(language, name, code)
        .must("refused by the runtime with a clean error (or out_of_memory), never past the cap")
        .status(&["error", "out_of_memory"])
        .error_type(errors)
}

pub fn cases(_: &Ports) -> Vec<Case> {
    vec![
        refused(JS, "JavaScript new Uint8Array(2**31)", "new Uint8Array(2 ** 31).length", &["RangeError", "InternalError"]),
        refused(JS, "JavaScript new ArrayBuffer(2**32)", "new ArrayBuffer(2 ** 32).byteLength", &["RangeError", "InternalError"]),
        refused(JS, "JavaScript new SharedArrayBuffer(2**31)", "new SharedArrayBuffer(2 ** 31).byteLength", &["RangeError", "InternalError"]),
        refused(
            JS,
            "JavaScript resizable ArrayBuffer grown towards 2**31",
            "const b = new ArrayBuffer(8, { maxByteLength: 2 ** 31 }); b.resize(2 ** 30); b.byteLength",
            &["RangeError", "InternalError"],
        ),
        oom(JS, "JavaScript new Uint8Array(2**26) (64 MiB)", "new Uint8Array(2 ** 26).length"),
        oom(JS, "JavaScript new Float64Array(2**24) (128 MiB)", "new Float64Array(2 ** 24).length"),
        oom(
            JS,
            "JavaScript typed arrays of 1 MiB until memory runs out",
            "const a = []; for (;;) a.push(new Uint8Array(1 << 20));",
        ),
        oom(JS, "JavaScript 'x'.repeat(2**27)", "'x'.repeat(2 ** 27).length"),
        refused(
            JS,
            "JavaScript doubles a string forever",
            "let s = 'x'; for (;;) s = s + s;",
            &["InternalError", "RangeError"],
        ),
        oom(
            JS,
            "JavaScript objects pushed into an array forever",
            "const a = []; for (let i = 0; ; i++) a.push({ i, s: 'y' + i });",
        ),
        oom(JS, "JavaScript a Map grown forever", "const m = new Map(); for (let i = 0; ; i++) m.set(i, i);"),
        oom(JS, "JavaScript new Array(2**32 - 1).fill(0)", "new Array(2 ** 32 - 1).fill(0).length"),
        oom(
            JS,
            "JavaScript JSON.parse of an 8-million-element array",
            "JSON.parse('[' + '1,'.repeat(2 ** 23) + '1]').length",
        ),
        oom(JS, "JavaScript spreads a 16 MiB string into an array", "[...'x'.repeat(2 ** 24)].length"),
        oom(
            JS,
            "JavaScript spreads an infinite generator",
            "function* g() { for (let i = 0; ; i++) yield i } [...g()].length",
        ),
        refused(
            JS,
            "JavaScript squares a BigInt forever",
            "let a = 1n << 1000000n; for (;;) a = a * a",
            &["RangeError", "InternalError"],
        ),
        Case::js(
            "JavaScript catches its out-of-memory error and finishes",
            "let caught = false;\ntry { const a = []; for (;;) a.push(new Uint8Array(1 << 20)) } catch (e) { caught = true }\ncaught",
        )
        .must("the program decides: ok, and the next run gets all its memory back")
        .ok_with(json!(true))
        .then(JS, "new Uint8Array(32 << 20).length")
        .next_ok_with(json!(32 << 20)),
        refused(PY, "Python bytearray(2**34)", "bytearray(2**34)", &["OverflowError", "MemoryError"]),
        refused(PY, "Python 'x' * 2**40", "'x' * 2**40", &["OverflowError", "MemoryError"]),
        refused(PY, "Python b'x' * 2**31", "b'x' * 2**31", &["OverflowError", "MemoryError"]),
        refused(
            PY,
            "Python array.array('d') * 2**30",
            "import array\narray.array('d', [0]) * 2**30",
            &["MemoryError", "OverflowError"],
        ),
        oom(PY, "Python bytearray(2**26) (64 MiB)", "x = bytearray(2**26)")
            // Since issue 18 the Python snapshot (with its packages) holds 45 of these 48 MiB.
            .then(PY, "len(bytearray(1 << 20))")
            .next_ok_with(json!(1 << 20)),
        oom(PY, "Python 'x' * 2**26", "x = 'x' * (2**26)"),
        oom(PY, "Python bytes of 1 MiB appended forever", "l = []\nwhile True:\n    l.append(bytes(2**20))"),
        oom(PY, "Python list(range(10**8))", "x = list(range(10**8))"),
        oom(PY, "Python a dict grown forever", "d = {}\ni = 0\nwhile True:\n    d[i] = str(i)\n    i += 1"),
        // Every size class of the guest's small-object allocator (warden_alloc) runs dry, then
        // the next run allocates from fresh lists.
        oom(
            PY,
            "Python small objects of every size class until memory runs out",
            "keep = []\nn = 0\nwhile True:\n    keep.append(bytes(n % 520))\n    n += 1",
        )
        .then(PY, "sum(len(bytes(n % 520)) for n in range(20_000))")
        .next_ok_with(json!((0..20_000).map(|n| n % 520).sum::<u64>())),
        // Blocks emptied of small objects go back to libc when memory runs short, or this
        // megabyte would not fit beside the snapshot once small objects have filled the rest.
        Case::py(
            "Python fills memory with small objects, frees them, then needs a large buffer",
            "keep = []\ntry:\n    while True:\n        keep.append(bytes(24))\nexcept MemoryError:\n    pass\nn = len(keep)\ndel keep\n[len(bytearray(2**20)), n > 10_000]",
        )
        .must("memory freed as small objects serves a large buffer: ok")
        .ok_with(json!([1 << 20, true])),
        // Six times over: fill memory with objects of mixed sizes (so that reclaiming runs
        // with blocks partly free, bump blocks and chunks shared by classes), check every
        // survivor, free half of them at random (or all, every third round); then a chunk's
        // worth of buffer. (A MiB fitted or not depending on the build's snapshot layout.)
        Case::py("Python fills and half-frees memory six times, checking every survivor", CHURN_AT_THE_CAP)
            .must("every object keeps what was written through reclaims: ok")
            .ok_with(json!([true, 6, 256 << 10])),
        oom(
            PY,
            "Python array.array grown forever",
            "import array\na = array.array('b')\nwhile True:\n    a.frombytes(bytes(2**20))",
        ),
        oom(PY, "Python io.BytesIO grown forever", "import io\nb = io.BytesIO()\nwhile True:\n    b.write(b'x' * 2**20)"),
        oom(PY, "Python doubles bytes forever", "x = b'x' * 2**20\nwhile True:\n    x = x + x"),
        oom(
            PY,
            "Python zlib decompression bomb with a 256 MiB buffer",
            "import zlib\nzlib.decompress(zlib.compress(b'\\0' * 2**24), bufsize=2**28)[:1]",
        ),
        oom(
            PY,
            "Python gzip decompression bomb",
            "import gzip\nlen(gzip.decompress(gzip.compress(b'\\0' * 2**22) * 50))",
        ),
        oom(PY, "Python str.format with a 10**8 width", "'{:0>100000000}'.format(1)"),
        Case::py(
            "Python catches MemoryError and finishes",
            "try:\n    x = bytearray(2**26)\nexcept MemoryError:\n    x = None\nx is None",
        )
        .must("the program decides: ok")
        .ok_with(json!(true)),
    ]
}

#[tokio::test]
async fn memory() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("memory", &env, cases, Mode::Regular).await;
}
