//! The embedded counter store against the in-memory one as its model: a sequence of
//! admissions (one to three counters, keys from hostile spellings: quotes, SQL, separators,
//! NUL, non-ASCII), refunds of earlier admissions, reads, claims and reopenings of the
//! database, with the clock moving forward by arbitrary steps.
//!
//! Asserts:
//! - nothing panics, and the SQLite store never reports itself unavailable;
//! - every admission has the same outcome in both stores (admitted, or refused naming the same
//!   counter and the same retry time), and so does every read and every claim;
//! - a reopened database carries on exactly where it was.

#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use warden::counters::SqliteCounterStore;
use warden::policy::{AdmitError, CounterKey, CounterStore, FailMode, MemoryCounterStore};

const KEYS: [&str; 8] = [
    "calls/grant/local",
    "calls/grant/it's",
    "x'); DROP TABLE counters; --",
    "a|60000|0",
    "a",
    "nul\0byte",
    "ünïcode/ключ/鍵",
    "",
];
const WINDOWS: [u64; 4] = [1, 1_000, 60_000, 86_400_000];

#[derive(Arbitrary, Debug)]
struct Counter {
    key: u8,
    window: u8,
    max: u8,
    amount: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Admit(Vec<Counter>),
    /// Gives back the n-th admission so far.
    Refund(u8),
    Read {
        key: u8,
        window: u8,
    },
    Claim {
        token: u8,
        ttl: u16,
    },
    Reopen,
    Wait(u32),
}

fn counter(c: &Counter) -> CounterKey {
    CounterKey {
        key: KEYS[usize::from(c.key) % KEYS.len()].to_string(),
        window_ms: WINDOWS[usize::from(c.window) % WINDOWS.len()],
        max: u64::from(c.max % 8),
        amount: u64::from(c.amount % 4),
    }
}

static DIR: LazyLock<tempfile::TempDir> =
    LazyLock::new(|| tempfile::tempdir().expect("a scratch directory"));

fuzz_target!(|ops: Vec<Op>| {
    let path = DIR.path().join("counters.sqlite");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(path.with_extension("sqlite-wal"));
    let _ = std::fs::remove_file(path.with_extension("sqlite-shm"));
    let model = MemoryCounterStore::default();
    let mut store = SqliteCounterStore::open(&path, FailMode::Closed).expect("opens");
    let mut now = 1_700_000_000_000u64;
    let mut admitted: Vec<(Vec<CounterKey>, u64)> = Vec::new();
    for op in ops.iter().take(64) {
        match op {
            Op::Admit(counters) => {
                let keys: Vec<CounterKey> = counters.iter().take(3).map(counter).collect();
                if keys.is_empty() {
                    continue;
                }
                let expected = model.try_admit(&keys, now);
                let got = store.try_admit(&keys, now);
                if let Err(AdmitError::Unavailable(e)) = &got {
                    panic!("the store failed: {e}");
                }
                assert_eq!(got, expected, "admit {keys:?} at {now}");
                if got.is_ok() {
                    admitted.push((keys, now));
                }
            }
            Op::Refund(n) => {
                if let Some((keys, at)) = admitted.get(usize::from(*n) % admitted.len().max(1)) {
                    model.refund(keys, *at).expect("memory");
                    store.refund(keys, *at).expect("the store refunds");
                }
            }
            Op::Read { key, window } => {
                let key_text = KEYS[usize::from(*key) % KEYS.len()];
                let window = WINDOWS[usize::from(*window) % WINDOWS.len()];
                assert_eq!(
                    store
                        .current(key_text, window, now)
                        .expect("the store reads"),
                    model.current(key_text, window, now).expect("memory"),
                    "read {key_text:?}/{window} at {now}"
                );
            }
            Op::Claim { token, ttl } => {
                let token = format!("approval|{}", KEYS[usize::from(*token) % KEYS.len()]);
                let expires = now + u64::from(*ttl);
                assert_eq!(
                    store
                        .claim_once(&token, now, expires)
                        .expect("the store claims"),
                    model.claim_once(&token, now, expires).expect("memory"),
                    "claim {token:?} at {now}"
                );
            }
            Op::Reopen => {
                drop(store);
                store = SqliteCounterStore::open(&path, FailMode::Closed).expect("reopens");
            }
            Op::Wait(ms) => now += u64::from(*ms % 200_000),
        }
    }
});
