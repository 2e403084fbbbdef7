//! The embedded store: SQLite in WAL mode, one row per counter and window length. Admission is
//! one `BEGIN IMMEDIATE` transaction (the write lock first, then read and write), so it is
//! atomic within this process and between processes sharing the file.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::policy::ratelimit::{retry_after, window_start};
use crate::policy::{
    AdmitError, CounterKey, CounterStore, FailMode, Refusal, StoreHealth, StoreUnavailable,
};

/// How long a start waits for another process's write lock before it says the file is locked.
const START_LOCK_WAIT: Duration = Duration::from_secs(2);
/// How long a call waits for another process's write lock.
const CALL_LOCK_WAIT: Duration = Duration::from_secs(5);
/// Rows of ended windows are deleted once every this many admissions.
const PRUNE_EVERY: u64 = 1_000;

pub struct SqliteCounterStore {
    connection: Mutex<Connection>,
    path: PathBuf,
    fail_mode: FailMode,
    admissions: AtomicU64,
}

impl SqliteCounterStore {
    /// Opens (or creates) the database at `path` and checks it.
    pub fn open(path: &Path, fail_mode: FailMode) -> anyhow::Result<SqliteCounterStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        }
        let connection = Connection::open(path)?;
        connection.busy_timeout(START_LOCK_WAIT)?;
        let ready = (|| -> rusqlite::Result<()> {
            // Not WAL yet on a new file; switching needs no other connection in the way.
            connection.pragma_update(None, "journal_mode", "WAL")?;
            // WAL with NORMAL: a commit survives the process dying; the last ones may be lost
            // only if the machine loses power.
            connection.pragma_update(None, "synchronous", "NORMAL")?;
            connection.execute_batch(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS counters (
                     key TEXT NOT NULL,
                     window_ms INTEGER NOT NULL,
                     start_ms INTEGER NOT NULL,
                     count INTEGER NOT NULL,
                     PRIMARY KEY (key, window_ms)
                 ) WITHOUT ROWID;
                 CREATE TABLE IF NOT EXISTS claims (
                     token TEXT PRIMARY KEY,
                     expires_ms INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 COMMIT;",
            )?;
            let check: String = connection.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
            if check != "ok" {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                    Some(check),
                ));
            }
            Ok(())
        })();
        if let Err(e) = ready {
            let locked = matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            );
            anyhow::bail!(if locked {
                format!(
                    "{e}: another process holds the database's write lock; stop it, or give this server its own --state-dir"
                )
            } else {
                format!(
                    "{e}: the file is not a usable counter database; move it away (the counts in it are lost) or give this server another --state-dir"
                )
            });
        }
        connection.busy_timeout(CALL_LOCK_WAIT)?;
        Ok(SqliteCounterStore {
            connection: Mutex::new(connection),
            path: path.to_path_buf(),
            fail_mode,
            admissions: AtomicU64::new(0),
        })
    }

    fn unavailable(&self, e: &rusqlite::Error) -> StoreUnavailable {
        StoreUnavailable(format!("SQLite {}: {e}", self.path.display()))
    }

    fn admit(&self, counters: &[CounterKey], now_ms: u64) -> rusqlite::Result<Option<Refusal>> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut starts = Vec::with_capacity(counters.len());
        for (index, c) in counters.iter().enumerate() {
            let start = window_start(now_ms, c.window_ms);
            let used = read(&tx, c, start)?;
            if used.saturating_add(c.amount) > c.max {
                return Ok(Some(Refusal {
                    index,
                    retry_after_ms: retry_after(now_ms, c.window_ms),
                }));
            }
            starts.push(start);
        }
        // Added, not set to what was read plus the amount: one admission may name the same
        // counter twice, and each adds its amount (as the in-memory store does).
        for (c, start) in counters.iter().zip(starts) {
            tx.prepare_cached(
                "INSERT INTO counters (key, window_ms, start_ms, count) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key, window_ms) DO UPDATE
                 SET count = CASE WHEN counters.start_ms = excluded.start_ms
                                  THEN counters.count + excluded.count ELSE excluded.count END,
                     start_ms = excluded.start_ms",
            )?
            .execute(params![c.key, int(c.window_ms), int(start), int(c.amount)])?;
        }
        if self
            .admissions
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(PRUNE_EVERY)
        {
            tx.execute(
                "DELETE FROM counters WHERE start_ms + window_ms <= ?1",
                params![int(now_ms)],
            )?;
        }
        tx.commit()?;
        Ok(None)
    }
}

/// What `c` has counted in the window starting at `start`.
fn read(connection: &Connection, c: &CounterKey, start: u64) -> rusqlite::Result<u64> {
    // Statements are prepared once per connection (rusqlite's cache), not per call.
    let used: Option<i64> = connection
        .prepare_cached(
            "SELECT count FROM counters WHERE key = ?1 AND window_ms = ?2 AND start_ms = ?3",
        )?
        .query_row(params![c.key, int(c.window_ms), int(start)], |row| {
            row.get(0)
        })
        .optional()?;
    Ok(used.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// SQLite's integers are signed: counts beyond i64 saturate (no real limit comes near).
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl CounterStore for SqliteCounterStore {
    fn try_admit(&self, counters: &[CounterKey], now_ms: u64) -> Result<(), AdmitError> {
        match self.admit(counters, now_ms) {
            Ok(None) => Ok(()),
            Ok(Some(refusal)) => Err(AdmitError::Refused(refusal)),
            Err(e) => Err(AdmitError::Unavailable(self.unavailable(&e))),
        }
    }

    fn refund(&self, counters: &[CounterKey], admitted_ms: u64) -> Result<(), StoreUnavailable> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let refunded = (|| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for c in counters {
                tx.execute(
                    "UPDATE counters SET count = max(count - ?4, 0)
                     WHERE key = ?1 AND window_ms = ?2 AND start_ms = ?3",
                    params![
                        c.key,
                        int(c.window_ms),
                        int(window_start(admitted_ms, c.window_ms)),
                        int(c.amount)
                    ],
                )?;
            }
            tx.commit()
        })();
        refunded.map_err(|e| self.unavailable(&e))
    }

    fn current(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<u64, StoreUnavailable> {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let probe = CounterKey {
            key: key.to_string(),
            window_ms,
            max: 0,
            amount: 0,
        };
        read(&connection, &probe, window_start(now_ms, window_ms)).map_err(|e| self.unavailable(&e))
    }

    fn claim_once(
        &self,
        token: &str,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<bool, StoreUnavailable> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let claimed = (|| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "DELETE FROM claims WHERE expires_ms <= ?1",
                params![int(now_ms)],
            )?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO claims (token, expires_ms) VALUES (?1, ?2)",
                params![token, int(expires_ms)],
            )?;
            tx.commit()?;
            Ok(inserted == 1)
        })();
        claimed.map_err(|e: rusqlite::Error| self.unavailable(&e))
    }

    fn fail_mode(&self) -> FailMode {
        self.fail_mode
    }

    fn health(&self) -> StoreHealth {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let answered = connection.query_row("SELECT count(*) FROM counters", [], |row| {
            row.get::<_, i64>(0)
        });
        StoreHealth {
            kind: "sqlite",
            location: self.path.display().to_string(),
            unavailable: answered.err().map(|e| self.unavailable(&e).0),
        }
    }
}
