//! In-process runs: a fresh Store, instantiation from the pre-initialized guest, and the run.
//! `cargo bench --bench sandbox`; results in docs/benchmarks.md.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use warden::runtimes::{JAVASCRIPT_GUEST, PYTHON_GUEST};
use warden::sandbox::{CancelFlag, RunLimits, RunRequest, Sandbox, SandboxConfig};

fn request(code: &str) -> RunRequest {
    RunRequest {
        source: code.to_string(),
        input_json: "null".to_string(),
        filename: "main".to_string(),
        limits: RunLimits {
            fuel: 20_000_000_000,
            memory_bytes: 128 << 20,
            stdout_bytes: 1 << 20,
            stderr_bytes: 1 << 20,
            max_result_bytes: 1 << 20,
            deadline: Instant::now() + Duration::from_secs(60),
        },
        cancel: CancelFlag::new(),
        fetch: Default::default(),
        workspace: Default::default(),
        tools: Default::default(),
        output: Default::default(),
    }
}

/// One run at a time, with the server's spares of each guest.
fn sandbox() -> Sandbox {
    let config = SandboxConfig {
        wasm_stack_bytes: 1 << 20,
        max_memory_bytes: 128 << 20,
        max_concurrent_runs: 1,
        kept_instances: 0,
        spares_per_guest: warden::sandbox::SPARES_PER_GUEST,
        cache_dir: SandboxConfig::default_cache_dir(),
    };
    Sandbox::new(&config, &[&JAVASCRIPT_GUEST, &PYTHON_GUEST]).expect("sandbox")
}

fn runs(c: &mut Criterion) {
    let sandbox = sandbox();
    let check = sandbox.run(&JAVASCRIPT_GUEST, request("1+1"));
    assert_eq!(check.result, serde_json::json!(2), "{check:?}");

    let mut group = c.benchmark_group("in_process_javascript");
    group.bench_function("1+1", |b| {
        b.iter(|| sandbox.run(&JAVASCRIPT_GUEST, request("1+1")))
    });
    group.sample_size(20);
    group.bench_function("fib(25)", |b| {
        b.iter(|| {
            sandbox.run(
                &JAVASCRIPT_GUEST,
                request("function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) }\nfib(25)"),
            )
        })
    });
    group.finish();

    let check = sandbox.run(&PYTHON_GUEST, request("print(1+1)\n1+1"));
    assert_eq!(check.result, serde_json::json!(2), "{check:?}");
    let mut group = c.benchmark_group("in_process_python");
    group.bench_function("print(1+1)", |b| {
        b.iter(|| sandbox.run(&PYTHON_GUEST, request("print(1+1)")))
    });
    group.sample_size(20);
    group.bench_function("sum(range(10**6))", |b| {
        b.iter(|| sandbox.run(&PYTHON_GUEST, request("sum(range(10**6))")))
    });
    group.bench_function("json 1 MB dumps+loads", |b| {
        b.iter(|| sandbox.run(&PYTHON_GUEST, request(PYTHON_JSON_1MB)))
    });
    group.finish();
}

/// Builds a ~1 MB structure, then dumps and loads it.
const PYTHON_JSON_1MB: &str = "import json\n\
items = [{'id': i, 'name': f'item-{i}', 'tags': ['a', 'b', 'c'], 'price': i * 1.25, 'ok': i % 2 == 0, 'nested': {'x': i, 'y': 'yy'}} for i in range(9000)]\n\
s = json.dumps({'items': items})\n\
[len(s), len(json.loads(s)['items'])]";

/// `1+1` through the whole call pipeline as the server runs it: the built-in policy, argument
/// checks, decision, audit log on (to a sink), admission, run, redaction.
fn pipeline(c: &mut Criterion) {
    use std::sync::Arc;
    use warden::audit::AuditLog;
    use warden::policy::{Caller, LOCAL_GRANT, Policy};
    use warden::service::Service;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(warden::policy::GUEST_THREAD_STACK_BYTES)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let policy = Policy::builtin();
    let audit = AuditLog::to_writer(Box::new(std::io::sink()), &policy.audit);
    let service = Service::new(policy, SandboxConfig::default_cache_dir())
        .expect("service")
        .with_audit(Arc::new(audit));
    let raw = serde_json::json!({"language": "javascript", "code": "1+1"});
    let caller = Caller {
        grant: LOCAL_GRANT,
        session: "bench",
    };
    let call = || async {
        let parsed = service.parse_args(LOCAL_GRANT, raw.as_object());
        let cancel = tokio_util::sync::CancellationToken::new();
        service.call(parsed, &caller, "bench", &cancel).await
    };
    let check = rt.block_on(call());
    assert_eq!(check.result, serde_json::json!(2), "{check:?}");
    c.bench_function("pipeline/execute_code 1+1", |b| {
        b.iter(|| rt.block_on(call()))
    });
}

/// The programs of `bench/peers/programs.json`, which `bench/peers/run.py` also runs on Warden's
/// peers (quickjs-emscripten, native rquickjs, Pyodide, CPython): group `peers`, ids
/// `<language>/<name>` (criterion's directory `target/criterion/peers/<language>/<name>`).
/// Each program's result (and stdout, where the file gives one) is checked before it is timed.
fn peers(c: &mut Criterion) {
    // bench/peers/run.py may hand over its own copy (with its iteration counts).
    let path = std::env::var("WARDEN_BENCH_PROGRAMS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/bench/peers/programs.json").to_string()
    });
    let text = std::fs::read_to_string(&path).expect("bench/peers/programs.json");
    let file: serde_json::Value = serde_json::from_str(&text).expect("programs.json is JSON");
    let sandbox = sandbox();
    let programs = file["programs"].as_array().expect("programs");
    if let Some(gap) = std::env::var("WARDEN_BENCH_GAP_MS")
        .ok()
        .filter(|v| !v.is_empty())
    {
        let gap =
            Duration::from_secs_f64(gap.parse::<f64>().expect("WARDEN_BENCH_GAP_MS is ms") / 1e3);
        let out = std::env::var_os("WARDEN_BENCH_GAP_OUT").expect("WARDEN_BENCH_GAP_OUT");
        spaced(&sandbox, programs, gap, std::path::Path::new(&out));
        return;
    }
    let mut group = c.benchmark_group("peers");
    for program in programs {
        let language = program["language"].as_str().expect("language");
        let name = program["name"].as_str().expect("name");
        let code = program["code"].as_str().expect("code");
        let guest = match language {
            "javascript" => &JAVASCRIPT_GUEST,
            "python" => &PYTHON_GUEST,
            other => panic!("unknown language {other}"),
        };
        let check = sandbox.run(guest, request(code));
        assert_eq!(
            check.result, program["result"],
            "{language}/{name}: {check:?}"
        );
        if let Some(stdout) = program["stdout"].as_str() {
            assert_eq!(check.stdout, stdout, "{language}/{name}: {check:?}");
        }
        // Criterion's default of 100 samples for the ~0.1-5 ms runs, 10 for those over ~10 ms.
        group.sample_size(if program["kind"] == "compute" {
            10
        } else {
            100
        });
        group.bench_function(criterion::BenchmarkId::new(language, name), |b| {
            b.iter(|| sandbox.run(guest, request(code)))
        });
    }
    group.finish();
}

/// `WARDEN_BENCH_GAP_MS=N` (bench/peers/run.py --gap-ms, with its own `WARDEN_BENCH_PROGRAMS`):
/// instead of criterion's loop, which runs calls back to back, every program of the `peers`
/// group runs its programs.json warm-up and iterations with the sandbox idle for N ms before
/// each timed run, as an agent's calls come apart; the samples (ns) go to
/// `WARDEN_BENCH_GAP_OUT` as `{"language/name": [..]}`.
fn spaced(sandbox: &Sandbox, programs: &[serde_json::Value], gap: Duration, out: &std::path::Path) {
    let mut samples = serde_json::Map::new();
    for program in programs {
        let id = format!(
            "{}/{}",
            program["language"].as_str().expect("language"),
            program["name"].as_str().expect("name")
        );
        let guest = match program["language"].as_str() {
            Some("javascript") => &JAVASCRIPT_GUEST,
            Some("python") => &PYTHON_GUEST,
            other => panic!("unknown language {other:?}"),
        };
        let code = program["code"].as_str().expect("code");
        let count = |field: &str| program[field].as_u64().expect("warmup and iterations");
        let mut timed = Vec::new();
        for i in 0..count("warmup") + count("iterations") {
            std::thread::sleep(gap);
            let started = Instant::now();
            let outcome = sandbox.run(guest, request(code));
            let took = started.elapsed();
            assert_eq!(outcome.result, program["result"], "{id}: {outcome:?}");
            if i >= count("warmup") {
                timed.push(serde_json::json!(took.as_nanos() as u64));
            }
        }
        samples.insert(id, serde_json::Value::Array(timed));
    }
    std::fs::write(out, serde_json::Value::Object(samples).to_string())
        .expect("WARDEN_BENCH_GAP_OUT is writable");
}

criterion_group!(benches, runs, pipeline, peers);
criterion_main!(benches);
