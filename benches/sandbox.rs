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
    }
}

fn runs(c: &mut Criterion) {
    let config = SandboxConfig {
        wasm_stack_bytes: 1 << 20,
        max_memory_bytes: 128 << 20,
        max_concurrent_runs: 1,
        cache_dir: SandboxConfig::default_cache_dir(),
    };
    let sandbox = Sandbox::new(&config, &[&JAVASCRIPT_GUEST, &PYTHON_GUEST]).expect("sandbox");
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

criterion_group!(benches, runs);
criterion_main!(benches);
