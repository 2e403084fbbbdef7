//! The `CounterStore` contract, run against every store: in memory, embedded SQLite and Redis
//! (a real `redis-server` on a loopback port). Then what only one store has: the embedded
//! database keeps counts across a reopen and refuses a corrupt or locked file at start; Redis
//! keys expire with their windows, and the store reconnects after Redis comes back.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::redis_server::RedisServer;
use proptest::prelude::*;
use warden::counters::{RedisCounterStore, SqliteCounterStore};
use warden::policy::{
    AdmitError, Caller, CounterKey, CounterStore, FailMode, LimitSpec, MemoryCounterStore, Refusal,
    Scope, Window,
};

fn key(name: &str, window_ms: u64, max: u64) -> CounterKey {
    CounterKey {
        key: name.to_string(),
        window_ms,
        max,
        amount: 1,
    }
}

fn refused(result: Result<(), AdmitError>) -> Refusal {
    match result {
        Err(AdmitError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn current(store: &dyn CounterStore, key: &str, window_ms: u64, now: u64) -> u64 {
    store
        .current(key, window_ms, now)
        .expect("the store answers")
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique() -> u64 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn temp_db() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "counters-{}-{}/counters.sqlite",
        std::process::id(),
        unique()
    ))
}

/// A fresh store of each kind: nothing counted yet (Redis: a prefix of its own on `redis`,
/// which each test starts and owns, so that it stops with the test).
fn stores(redis: &RedisServer) -> Vec<(&'static str, Arc<dyn CounterStore>)> {
    let prefix = format!("test{}:", unique());
    vec![
        ("memory", Arc::new(MemoryCounterStore::default())),
        (
            "sqlite",
            Arc::new(SqliteCounterStore::open(&temp_db(), FailMode::Closed).unwrap()),
        ),
        (
            "redis",
            Arc::new(RedisCounterStore::open(&redis.dsn(), &prefix, FailMode::Closed).unwrap()),
        ),
    ]
}

#[test]
fn admits_up_to_max_per_window_then_says_when_to_retry() {
    let redis = RedisServer::start();
    for (kind, store) in stores(&redis) {
        let k = [key("calls", 1000, 2)];
        assert!(store.try_admit(&k, 10_100).is_ok(), "{kind}");
        assert!(store.try_admit(&k, 10_200).is_ok(), "{kind}");
        assert_eq!(
            refused(store.try_admit(&k, 10_300)),
            Refusal {
                index: 0,
                retry_after_ms: 700
            },
            "{kind}"
        );
        assert!(store.try_admit(&k, 11_000).is_ok(), "{kind}: a new window");
    }
}

#[test]
fn a_refund_gives_the_call_back_only_in_its_own_window() {
    let redis = RedisServer::start();
    for (kind, store) in stores(&redis) {
        let k = [key("calls", 1000, 1)];
        assert!(store.try_admit(&k, 10_100).is_ok());
        assert!(store.try_admit(&k, 10_200).is_err());
        store.refund(&k, 10_100).unwrap();
        assert!(store.try_admit(&k, 10_300).is_ok(), "{kind}: freed again");
        // A refund for an earlier window must not free the current one.
        store.refund(&k, 9_100).unwrap();
        assert!(store.try_admit(&k, 10_400).is_err(), "{kind}");
        // Nor go below zero.
        store.refund(&k, 10_100).unwrap();
        store.refund(&k, 10_100).unwrap();
        assert!(store.try_admit(&k, 10_500).is_ok(), "{kind}");
        assert!(store.try_admit(&k, 10_600).is_err(), "{kind}");
    }
}

#[test]
fn a_refusal_consumes_nothing_anywhere() {
    let redis = RedisServer::start();
    for (kind, store) in stores(&redis) {
        let wide = key("wide", 60_000, 10);
        let narrow = key("narrow", 60_000, 1);
        assert!(store.try_admit(&[wide.clone(), narrow.clone()], 0).is_ok());
        for _ in 0..5 {
            let r = refused(store.try_admit(&[wide.clone(), narrow.clone()], 1));
            assert_eq!(r.index, 1, "{kind}");
        }
        // `wide` counted only the one admitted call: nine more fit.
        for _ in 0..9 {
            assert!(
                store.try_admit(std::slice::from_ref(&wide), 2).is_ok(),
                "{kind}"
            );
        }
        assert!(store.try_admit(&[wide], 3).is_err(), "{kind}");
    }
}

#[test]
fn a_call_counts_its_amount_and_a_refund_gives_it_back() {
    let redis = RedisServer::start();
    for (kind, store) in stores(&redis) {
        let spend = |amount| CounterKey {
            amount,
            ..key("spend", 60_000, 10_000)
        };
        assert!(store.try_admit(&[spend(6_000)], 1_000).is_ok());
        assert_eq!(current(&*store, "spend", 60_000, 2_000), 6_000, "{kind}");
        assert!(
            store.try_admit(&[spend(4_001)], 2_000).is_err(),
            "{kind}: past max"
        );
        assert!(
            store.try_admit(&[spend(4_000)], 2_000).is_ok(),
            "{kind}: up to max"
        );
        store.refund(&[spend(4_000)], 2_000).unwrap();
        assert_eq!(current(&*store, "spend", 60_000, 3_000), 6_000, "{kind}");
        assert_eq!(
            current(&*store, "spend", 60_000, 61_000),
            0,
            "{kind}: new window"
        );
        assert!(store.try_admit(&[spend(0)], 3_000).is_ok(), "{kind}");
        assert!(
            store.try_admit(&[key("never", 60_000, 0)], 3_000).is_err(),
            "{kind}: max 0 refuses every call"
        );
        // Absurd amounts saturate instead of wrapping round to room.
        assert!(
            store.try_admit(&[spend(u64::MAX)], 3_000).is_err(),
            "{kind}"
        );
        assert_eq!(current(&*store, "spend", 60_000, 3_000), 6_000, "{kind}");
    }
}

#[test]
fn limits_naming_the_same_counter_share_it_and_grants_are_apart() {
    let redis = RedisServer::start();
    for (kind, store) in stores(&redis) {
        let spec = LimitSpec::new("runs", Window::Minute, 2, Scope::Grant);
        let caller = |grant, session| Caller { grant, session };
        let admit = |c: Caller<'_>| store.try_admit(&[CounterKey::for_caller(&spec, &c)], 0);
        assert!(admit(caller("alice", "s1")).is_ok(), "{kind}");
        assert!(admit(caller("alice", "s2")).is_ok(), "{kind}");
        assert!(admit(caller("alice", "s1")).is_err(), "{kind}");
        assert!(
            admit(caller("bob", "s3")).is_ok(),
            "{kind}: grants are apart"
        );
    }
}

/// Found by the `counters` fuzz target: the embedded store set the count to what it had read
/// plus one amount, so a counter named twice in one admission counted once.
#[test]
fn one_admission_naming_a_counter_twice_counts_both_amounts() {
    let redis = RedisServer::start();
    for (kind, store) in stores(&redis) {
        let mut first = key("twice", 86_400_000, 7);
        first.amount = 3;
        let mut second = key("twice", 86_400_000, 6);
        second.amount = 3;
        assert!(
            store.try_admit(&[first.clone(), second], 1_000).is_ok(),
            "{kind}"
        );
        assert_eq!(current(&*store, "twice", 86_400_000, 1_000), 6, "{kind}");
        assert_eq!(refused(store.try_admit(&[first], 2_000)).index, 0, "{kind}");
    }
}

#[test]
fn concurrent_admission_is_exact() {
    let redis = RedisServer::start();
    for (kind, store) in stores(&redis) {
        let k = [key("c", 60_000, 10)];
        let admitted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..40)
                .map(|_| {
                    let store = store.clone();
                    let k = k.clone();
                    s.spawn(move || usize::from(store.try_admit(&k, 5).is_ok()))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 10, "{kind}");
        assert_eq!(current(&*store, "c", 60_000, 5), 10, "{kind}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// However calls arrive, no window ever admits more than `max`, and a call is refused
    /// only when its window is full; retry hints point at the window's end. Every store.
    #[test]
    fn never_more_than_max_per_window(
        max in 1u64..5,
        window_ms in 1u64..50,
        steps in proptest::collection::vec(0u64..20, 1..120),
    ) {
        thread_local! {
            // One server for all the cases (they run on the test's thread), stopped with it.
            static REDIS: RedisServer = RedisServer::start();
        }
        let stores = REDIS.with(stores);
        for (kind, store) in stores {
            let k = [key("p", window_ms, max)];
            let mut now = 0u64;
            let mut per_window: HashMap<u64, u64> = HashMap::new();
            for &step in &steps {
                now += step;
                let start = now - now % window_ms;
                let used = per_window.get(&start).copied().unwrap_or(0);
                match store.try_admit(&k, now) {
                    Ok(()) => {
                        prop_assert!(used < max, "{}", kind);
                        per_window.insert(start, used + 1);
                    }
                    Err(AdmitError::Refused(r)) => {
                        prop_assert_eq!(used, max, "{}", kind);
                        prop_assert_eq!(now + r.retry_after_ms, start + window_ms, "{}", kind);
                    }
                    Err(AdmitError::Unavailable(e)) => prop_assert!(false, "{}: {}", kind, e),
                }
            }
        }
    }
}

#[test]
fn the_embedded_store_keeps_its_counts_across_a_reopen() {
    let path = temp_db();
    let k = [key("day", 86_400_000, 3)];
    {
        let store = SqliteCounterStore::open(&path, FailMode::Closed).unwrap();
        assert!(store.try_admit(&k, 1_000).is_ok());
        assert!(store.try_admit(&k, 2_000).is_ok());
    }
    let store = SqliteCounterStore::open(&path, FailMode::Closed).unwrap();
    assert_eq!(current(&store, "day", 86_400_000, 3_000), 2);
    assert!(store.try_admit(&k, 3_000).is_ok());
    assert!(store.try_admit(&k, 4_000).is_err(), "the day's 3 are used");
    // Two stores on one file (two processes on one host) share the counts exactly.
    let other = SqliteCounterStore::open(&path, FailMode::Closed).unwrap();
    assert!(other.try_admit(&k, 5_000).is_err());
    assert!(other.try_admit(&[key("day", 86_400_000, 4)], 5_000).is_ok());
    assert_eq!(current(&store, "day", 86_400_000, 6_000), 4);
}

#[test]
fn a_corrupt_or_locked_database_is_a_clear_error_at_start() {
    let corrupt = temp_db();
    std::fs::create_dir_all(corrupt.parent().unwrap()).unwrap();
    std::fs::write(&corrupt, vec![0x5a; 8192]).unwrap();
    let e = format!(
        "{:#}",
        SqliteCounterStore::open(&corrupt, FailMode::Closed)
            .err()
            .unwrap()
    );
    assert!(e.contains("not a usable counter database"), "{e}");
    assert!(e.contains("--state-dir"), "{e}");

    let locked = temp_db();
    drop(SqliteCounterStore::open(&locked, FailMode::Closed).unwrap());
    let holder = rusqlite_holder(&locked);
    let e = format!(
        "{:#}",
        SqliteCounterStore::open(&locked, FailMode::Closed)
            .err()
            .unwrap()
    );
    assert!(e.contains("holds the database's write lock"), "{e}");
    drop(holder);
    assert!(SqliteCounterStore::open(&locked, FailMode::Closed).is_ok());
}

/// Another process's exclusive lock, as `sqlite3 file 'BEGIN EXCLUSIVE'` would hold it: a
/// second connection in this process stands in for it (SQLite locks per connection).
fn rusqlite_holder(path: &std::path::Path) -> impl Drop {
    struct Holder(Option<std::process::Child>);
    impl Drop for Holder {
        fn drop(&mut self) {
            if let Some(mut child) = self.0.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    // A Python child holds the lock: the same SQLite library semantics, another process.
    let python = format!("{}/.venv/bin/python", env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new(python)
        .arg("-c")
        .arg(
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(60)\n",
        )
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python from the venv (make setup)");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    Holder(Some(child))
}

#[test]
fn redis_keys_expire_with_their_windows_and_carry_the_prefix() {
    let redis = RedisServer::start();
    let prefix = format!("deploy{}:", unique());
    let store = RedisCounterStore::open(&redis.dsn(), &prefix, FailMode::Closed).unwrap();
    let now = warden::policy::now_ms();
    assert!(
        store
            .try_admit(&[key("calls/grant/local", 60_000, 5)], now)
            .is_ok()
    );
    let client = redis::Client::open(redis.dsn()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut connection)
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with(&format!("{prefix}calls/grant/local|60000|")));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query(&mut connection)
        .unwrap();
    assert!(
        ttl > 0 && ttl <= 65_000,
        "the key expires with its window: {ttl} ms"
    );
}

#[test]
fn redis_down_is_unavailable_at_once_and_counting_resumes_when_it_is_back() {
    let mut redis = RedisServer::start();
    let store = RedisCounterStore::open(&redis.dsn(), "t:", FailMode::Open).unwrap();
    let k = [key("c", 60_000, 2)];
    assert!(store.try_admit(&k, 1).is_ok());
    redis.stop();
    match store.try_admit(&k, 2) {
        Err(AdmitError::Unavailable(e)) => assert!(e.to_string().contains("Redis"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(store.health().unavailable.is_some());
    // Within the back-off, calls do not wait for a connect timeout.
    let started = std::time::Instant::now();
    assert!(store.current("c", 60_000, 3).is_err());
    assert!(started.elapsed() < std::time::Duration::from_millis(300));
    assert_eq!(store.fail_mode(), FailMode::Open);
    redis.restart();
    let back = std::time::Instant::now();
    while store.health().unavailable.is_some() {
        assert!(
            back.elapsed() < std::time::Duration::from_secs(5),
            "no reconnection"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A restarted Redis lost its keys (nothing was saved) and the script cache: both recover.
    assert!(store.try_admit(&k, 4).is_ok());
    assert!(store.try_admit(&k, 5).is_ok());
    assert!(store.try_admit(&k, 6).is_err());
}

#[test]
fn a_token_is_claimed_once_until_it_expires() {
    let redis = RedisServer::start();
    for (kind, store) in stores(&redis) {
        assert!(
            store.claim_once("approval|n1", 1_000, 5_000).unwrap(),
            "{kind}"
        );
        assert!(
            !store.claim_once("approval|n1", 2_000, 5_000).unwrap(),
            "{kind}: used"
        );
        assert!(
            store.claim_once("approval|n2", 2_000, 5_000).unwrap(),
            "{kind}"
        );
        let claims: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let store = store.clone();
                    s.spawn(move || {
                        usize::from(store.claim_once("approval|n3", 2_000, 5_000).unwrap())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(claims, 1, "{kind}: concurrent claims");
        if kind != "redis" {
            // Redis expires by its own clock; the others by the time they are given.
            assert!(
                store.claim_once("approval|n1", 6_000, 9_000).unwrap(),
                "{kind}: expired"
            );
        }
    }
}

/// A refused claim (the token is used) must not move the first claim's expiry: found by the
/// counters fuzz target, where the memory store let a refused claim with an earlier expiry
/// shorten the first, so that the token could be claimed again before the first claim expired.
#[test]
fn a_refused_claim_leaves_the_claim_as_it_was() {
    let redis = RedisServer::start();
    for (kind, store) in stores(&redis) {
        assert!(
            store.claim_once("approval|n4", 1_000, 5_000).unwrap(),
            "{kind}"
        );
        assert!(
            !store.claim_once("approval|n4", 1_000, 1_000).unwrap(),
            "{kind}: used"
        );
        assert!(
            !store.claim_once("approval|n4", 2_000, 9_000).unwrap(),
            "{kind}: still claimed until 5000"
        );
    }
}

#[test]
fn redis_over_tls_with_a_password() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "redis-tls-{}-{}",
        std::process::id(),
        unique()
    ));
    let redis = RedisServer::start_tls(&dir, "s3cret-pass");
    let tls = redis.tls().expect("tls");
    let ca = std::fs::read(tls.ca()).unwrap();
    let store =
        RedisCounterStore::open_with_ca(&redis.dsn(), "tls:", FailMode::Closed, Some(ca.clone()))
            .unwrap();
    let k = [key("c", 60_000, 1)];
    assert!(store.try_admit(&k, 1).is_ok());
    assert!(store.try_admit(&k, 2).is_err());
    assert!(store.health().unavailable.is_none());
    assert!(
        !store.health().location.contains("s3cret"),
        "the password is never shown: {}",
        store.health().location
    );

    // Without the CA, the web PKI roots do not trust the certificate; a wrong password is
    // refused: both are an unavailable store, naming why, never an admission.
    let untrusted = RedisCounterStore::open(&redis.dsn(), "tls:", FailMode::Closed).unwrap();
    let why = untrusted.health().unavailable.expect("not trusted");
    assert!(!why.contains("s3cret"), "{why}");
    let wrong = format!("rediss://:wrong@127.0.0.1:{}/0", redis.port);
    let refused =
        RedisCounterStore::open_with_ca(&wrong, "tls:", FailMode::Closed, Some(ca)).unwrap();
    match refused.try_admit(&k, 3) {
        Err(AdmitError::Unavailable(e)) => assert!(!e.to_string().contains("wrong@"), "{e}"),
        other => panic!("{other:?}"),
    }
}
