//! The admission cost per call with each counter store: in memory, embedded SQLite (a file in
//! the target directory, WAL) and Redis on loopback (a `redis-server` the bench starts). One
//! call counted against two limits (a grant's minute and a global hour), as a typical policy
//! does; the limits never fill. `cargo bench --bench counters`; results in docs/benchmarks.md.

#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)] // the bench needs no TLS server
mod redis_server;

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use warden::counters::{RedisCounterStore, SqliteCounterStore};
use warden::policy::{CounterKey, CounterStore, FailMode, MemoryCounterStore};

fn keys() -> [CounterKey; 2] {
    [
        CounterKey {
            key: "calls/grant/bench".into(),
            window_ms: 60_000,
            max: u64::MAX >> 12,
            amount: 1,
        },
        CounterKey {
            key: "calls/global".into(),
            window_ms: 3_600_000,
            max: u64::MAX >> 12,
            amount: 1,
        },
    ]
}

fn admission(c: &mut Criterion) {
    let redis = redis_server::RedisServer::start();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-counters-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let stores: Vec<(&str, Arc<dyn CounterStore>)> = vec![
        ("memory", Arc::new(MemoryCounterStore::default())),
        (
            "sqlite",
            Arc::new(
                SqliteCounterStore::open(&dir.join("counters.sqlite"), FailMode::Closed)
                    .expect("sqlite store"),
            ),
        ),
        (
            "redis",
            Arc::new(
                RedisCounterStore::open(&redis.dsn(), "bench:", FailMode::Closed)
                    .expect("redis store"),
            ),
        ),
    ];
    let keys = keys();
    let mut group = c.benchmark_group("admission");
    for (name, store) in &stores {
        group.bench_function(*name, |b| {
            b.iter(|| {
                store
                    .try_admit(&keys, warden::policy::now_ms())
                    .expect("admitted")
            })
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, admission);
criterion_main!(benches);
