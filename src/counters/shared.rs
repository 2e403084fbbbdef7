//! The shared store: Redis, for replicas. Each counter's window is one key
//! (`<prefix><counter>|<window_ms>|<window start>`) that expires with its window; admission and
//! refunds are Lua scripts, which Redis runs atomically, so replicas never read-then-write.
//!
//! Calls are synchronous with short timeouts (admission happens before a run, on the caller's
//! path), each on a connection of its own from a small pool. After a failure the connections
//! are dropped; the next attempt waits [`RECONNECT_AFTER`], and calls meanwhile meet the fail
//! mode at once instead of each waiting for a timeout.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::policy::ratelimit::{retry_after, window_start};
use crate::policy::{
    AdmitError, CounterKey, CounterStore, FailMode, Refusal, StoreHealth, StoreUnavailable,
};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const IO_TIMEOUT: Duration = Duration::from_secs(1);
const RECONNECT_AFTER: Duration = Duration::from_millis(500);
/// Connections kept open for the next calls (as many run at once as admissions do).
const MAX_IDLE: usize = 16;
/// A window's key outlives its window by this much, for replicas whose clocks differ a little.
const EXPIRY_SLACK_MS: u64 = 5_000;
/// Lua's numbers are doubles: limits and amounts are kept well inside their exact range.
const LARGEST: u64 = 1 << 52;

/// KEYS: the call's windows; ARGV: max, amount, ttl_ms for each. Returns 0 when the call was
/// counted in every window, else the 1-based index of the first one without room.
const ADMIT: &str = r"
for i = 1, #KEYS do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used + tonumber(ARGV[3 * i - 1]) > tonumber(ARGV[3 * i - 2]) then
    return i
  end
end
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[3 * i - 1])
  redis.call('PEXPIRE', KEYS[i], ARGV[3 * i])
end
return 0
";

/// KEYS: the windows a call counted in; ARGV: its amount in each. A window already gone (it
/// ended) is left alone; none goes below zero.
const REFUND: &str = r"
for i = 1, #KEYS do
  local used = redis.call('GET', KEYS[i])
  if used then
    local left = tonumber(used) - tonumber(ARGV[i])
    if left < 0 then left = 0 end
    redis.call('SET', KEYS[i], left, 'KEEPTTL')
  end
end
return 0
";

pub struct RedisCounterStore {
    client: redis::Client,
    link: Mutex<Link>,
    prefix: String,
    fail_mode: FailMode,
    location: String,
    admit: redis::Script,
    refund: redis::Script,
}

/// Idle connections and the back-off. The lock is never held across a network call: calls run
/// concurrently, each on a connection of its own, and a slow connect blocks only its caller.
#[derive(Default)]
struct Link {
    idle: Vec<redis::Connection>,
    /// After a failure: no new attempt before this.
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

impl RedisCounterStore {
    /// Checks the address; connects on first use (a Redis down at start is not an error).
    pub fn open(dsn: &str, prefix: &str, fail_mode: FailMode) -> anyhow::Result<RedisCounterStore> {
        RedisCounterStore::open_with_ca(dsn, prefix, fail_mode, None)
    }

    /// [`Self::open`], trusting `ca_pem` (PEM certificates) instead of the web PKI roots for
    /// `rediss://` (a Redis with a private CA).
    pub fn open_with_ca(
        dsn: &str,
        prefix: &str,
        fail_mode: FailMode,
        ca_pem: Option<Vec<u8>>,
    ) -> anyhow::Result<RedisCounterStore> {
        let shown = super::shown(dsn);
        if dsn.starts_with("rediss://") {
            // rustls needs one crypto provider chosen for the process; the HTTP client's is
            // ring. Already installed is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        } else if ca_pem.is_some() {
            anyhow::bail!("{shown}: a CA file is for TLS (rediss://) only");
        }
        let client = match ca_pem {
            None => redis::Client::open(dsn),
            Some(pem) => redis::Client::build_with_tls(
                dsn,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            ),
        }
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        Ok(RedisCounterStore {
            client,
            link: Mutex::new(Link::default()),
            prefix: prefix.to_string(),
            fail_mode,
            location: shown,
            admit: redis::Script::new(ADMIT),
            refund: redis::Script::new(REFUND),
        })
    }

    /// Runs `op` on the connection, connecting first if needed.
    fn with_connection<T>(
        &self,
        op: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreUnavailable> {
        let idle = {
            let mut link = self.link();
            if let Some(at) = link.retry_at
                && Instant::now() < at
            {
                let why = link.last_error.clone().unwrap_or_default();
                return Err(self.unavailable(&why));
            }
            link.idle.pop()
        };
        let mut connection = match idle {
            Some(connection) => connection,
            None => self.connect().map_err(|e| self.failed(&e))?,
        };
        let value = op(&mut connection).map_err(|e| self.failed(&e))?;
        let mut link = self.link();
        if link.last_error.take().is_some() {
            tracing::info!("the rate-limit store {} answers again", self.location);
        }
        link.retry_at = None;
        if link.idle.len() < MAX_IDLE {
            link.idle.push(connection);
        }
        Ok(value)
    }

    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let connection = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        connection.set_read_timeout(Some(IO_TIMEOUT))?;
        connection.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(connection)
    }

    /// A failed connect or command: every idle connection is dropped too (they lead to the
    /// same server), and no new attempt is made for [`RECONNECT_AFTER`].
    fn failed(&self, e: &redis::RedisError) -> StoreUnavailable {
        let why = e.to_string();
        let mut link = self.link();
        if link.last_error.is_none() {
            tracing::warn!("the rate-limit store {} failed: {why}", self.location);
        }
        link.idle.clear();
        link.retry_at = Some(Instant::now() + RECONNECT_AFTER);
        link.last_error = Some(why.clone());
        self.unavailable(&why)
    }

    fn unavailable(&self, why: &str) -> StoreUnavailable {
        StoreUnavailable(format!("Redis {}: {why}", self.location))
    }

    fn key(&self, counter: &str, window_ms: u64, start: u64) -> String {
        format!("{}{counter}|{window_ms}|{start}", self.prefix)
    }
}

impl CounterStore for RedisCounterStore {
    fn try_admit(&self, counters: &[CounterKey], now_ms: u64) -> Result<(), AdmitError> {
        let mut invocation = self.admit.prepare_invoke();
        for c in counters {
            let start = window_start(now_ms, c.window_ms);
            let ttl = (start + c.window_ms).saturating_sub(now_ms) + EXPIRY_SLACK_MS;
            invocation
                .key(self.key(&c.key, c.window_ms, start))
                .arg(c.max.min(LARGEST))
                .arg(c.amount.min(LARGEST))
                .arg(ttl);
        }
        let full: usize = self
            .with_connection(|connection| invocation.invoke(connection))
            .map_err(AdmitError::Unavailable)?;
        match full.checked_sub(1) {
            None => Ok(()),
            Some(index) => Err(AdmitError::Refused(Refusal {
                index,
                retry_after_ms: retry_after(
                    now_ms,
                    counters[index.min(counters.len() - 1)].window_ms,
                ),
            })),
        }
    }

    fn refund(&self, counters: &[CounterKey], admitted_ms: u64) -> Result<(), StoreUnavailable> {
        let mut invocation = self.refund.prepare_invoke();
        for c in counters {
            let start = window_start(admitted_ms, c.window_ms);
            invocation
                .key(self.key(&c.key, c.window_ms, start))
                .arg(c.amount.min(LARGEST));
        }
        self.with_connection(|connection| invocation.invoke::<i64>(connection))
            .map(|_| ())
    }

    fn current(&self, key: &str, window_ms: u64, now_ms: u64) -> Result<u64, StoreUnavailable> {
        let key = self.key(key, window_ms, window_start(now_ms, window_ms));
        let used: Option<u64> =
            self.with_connection(|connection| redis::cmd("GET").arg(&key).query(connection))?;
        Ok(used.unwrap_or(0))
    }

    fn claim_once(
        &self,
        token: &str,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<bool, StoreUnavailable> {
        let key = format!("{}claim|{token}", self.prefix);
        let ttl = expires_ms.saturating_sub(now_ms).max(1) + EXPIRY_SLACK_MS;
        let set: Option<String> = self.with_connection(|connection| {
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .query(connection)
        })?;
        Ok(set.is_some())
    }

    fn fail_mode(&self) -> FailMode {
        self.fail_mode
    }

    fn health(&self) -> StoreHealth {
        let answered =
            self.with_connection(|connection| redis::cmd("PING").query::<String>(connection));
        StoreHealth {
            kind: "redis",
            location: self.location.clone(),
            unavailable: answered.err().map(|e| e.0),
        }
    }
}
