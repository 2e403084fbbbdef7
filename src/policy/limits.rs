//! `[limits]`: the resource limits every run gets. Defaults are safe for an untrusted caller.

use serde::Deserialize;

use super::Issue;

/// The largest wasm stack a policy may ask for. Guests run on the server's threads, whose
/// stacks are sized from this ([`GUEST_THREAD_STACK_BYTES`]), so it is a hard ceiling.
pub const MAX_WASM_STACK_BYTES: u64 = 8 * 1024 * 1024;

/// The stack of every thread that may run a guest: the largest wasm stack plus room for the
/// host's own frames (wasmtime, WASI and `fetch` calls) below it. A guest that exhausts its
/// wasm stack then traps instead of overflowing the thread, which would abort the process.
pub const GUEST_THREAD_STACK_BYTES: usize = MAX_WASM_STACK_BYTES as usize + 4 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock limit when the call gives no `timeout_ms` (queueing time included); like a
    /// requested one, it is clamped to `max_timeout_ms`.
    pub default_timeout_ms: u64,
    /// `timeout_ms` is clamped to this.
    pub max_timeout_ms: u64,
    /// Deterministic CPU budget (wasmtime fuel; roughly 10-14 million units per ms of JS).
    pub fuel: u64,
    /// Total linear memory of one run, across all memories of the instance.
    pub memory_bytes: u64,
    /// Maximum wasm call-stack size (applies to the whole engine).
    pub wasm_stack_bytes: u64,
    /// Captured bytes per stream; the rest is dropped and `truncated` says so.
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// Size caps on the call's arguments and on the returned result.
    pub max_code_bytes: u64,
    pub max_input_bytes: u64,
    pub max_result_bytes: u64,
    /// Runs executing at once; further calls queue (their wait counts against their deadline).
    /// 0 means one per CPU core.
    pub max_concurrent_runs: u32,
    /// Calls that may wait for a sandbox when all are busy; beyond that a call is refused at
    /// once with `rate_limited` and a retry hint.
    pub max_queued_runs: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_timeout_ms: 5_000,
            max_timeout_ms: 30_000,
            fuel: 20_000_000_000,
            memory_bytes: 128 * 1024 * 1024,
            wasm_stack_bytes: 1024 * 1024,
            stdout_bytes: 1024 * 1024,
            stderr_bytes: 1024 * 1024,
            max_code_bytes: 256 * 1024,
            max_input_bytes: 1024 * 1024,
            max_result_bytes: 1024 * 1024,
            max_concurrent_runs: 0,
            max_queued_runs: 64,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), Issue> {
        let positive = [
            ("default_timeout_ms", self.default_timeout_ms),
            ("max_timeout_ms", self.max_timeout_ms),
            ("fuel", self.fuel),
            ("memory_bytes", self.memory_bytes),
            ("wasm_stack_bytes", self.wasm_stack_bytes),
            ("max_code_bytes", self.max_code_bytes),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Issue::new(
                    &["limits", name],
                    format!("limits.{name} must be greater than 0"),
                ));
            }
        }
        const MIB: u64 = 1024 * 1024;
        let at_most = [
            ("max_timeout_ms", self.max_timeout_ms, 3_600_000, "1 hour"),
            ("stdout_bytes", self.stdout_bytes, 64 * MIB, "64 MiB"),
            ("stderr_bytes", self.stderr_bytes, 64 * MIB, "64 MiB"),
            ("max_code_bytes", self.max_code_bytes, 16 * MIB, "16 MiB"),
            ("max_input_bytes", self.max_input_bytes, 64 * MIB, "64 MiB"),
            (
                "max_result_bytes",
                self.max_result_bytes,
                64 * MIB,
                "64 MiB",
            ),
        ];
        for (name, value, max, max_text) in at_most {
            if value > max {
                return Err(Issue::new(
                    &["limits", name],
                    format!("limits.{name} may not exceed {max_text} (got {value})"),
                ));
            }
        }
        if self.max_queued_runs > 100_000 {
            return Err(Issue::new(
                &["limits", "max_queued_runs"],
                "limits.max_queued_runs may not exceed 100000",
            ));
        }
        if self.max_concurrent_runs > 1024 {
            return Err(Issue::new(
                &["limits", "max_concurrent_runs"],
                "limits.max_concurrent_runs may not exceed 1024",
            ));
        }
        // The sandbox's memory is 32-bit: more than 4 GiB cannot be used anyway.
        if self.memory_bytes > 4 * 1024 * 1024 * 1024 {
            return Err(Issue::new(
                &["limits", "memory_bytes"],
                "limits.memory_bytes may not exceed 4 GiB",
            ));
        }
        if self.wasm_stack_bytes > MAX_WASM_STACK_BYTES {
            return Err(Issue::new(
                &["limits", "wasm_stack_bytes"],
                "limits.wasm_stack_bytes may not exceed 8 MiB",
            ));
        }
        Ok(())
    }

    /// The effective run concurrency (0 = number of cores).
    pub fn concurrency(&self) -> usize {
        match self.max_concurrent_runs {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        }
    }

    /// The wall-clock budget of a call asking for `requested` ms.
    pub fn timeout_ms(&self, requested: Option<u64>) -> u64 {
        requested
            .unwrap_or(self.default_timeout_ms)
            .clamp(1, self.max_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Limits::default().validate().unwrap();
    }

    #[test]
    fn timeout_is_clamped() {
        let l = Limits::default();
        assert_eq!(l.timeout_ms(None), 5_000);
        assert_eq!(l.timeout_ms(Some(100)), 100);
        assert_eq!(l.timeout_ms(Some(10_000_000)), 30_000);
        assert_eq!(l.timeout_ms(Some(0)), 1);
        let short = Limits {
            max_timeout_ms: 2000,
            ..Limits::default()
        };
        assert_eq!(
            short.timeout_ms(None),
            2000,
            "the default is clamped to the maximum"
        );
    }

    #[test]
    fn zero_concurrency_means_cores() {
        assert!(Limits::default().concurrency() >= 1);
        let l = Limits {
            max_concurrent_runs: 3,
            ..Limits::default()
        };
        assert_eq!(l.concurrency(), 3);
    }

    #[test]
    fn absurd_values_are_rejected() {
        for l in [
            Limits {
                max_timeout_ms: 86_400_000,
                ..Limits::default()
            },
            Limits {
                stdout_bytes: u64::MAX,
                ..Limits::default()
            },
            Limits {
                max_result_bytes: 1 << 40,
                ..Limits::default()
            },
            Limits {
                max_concurrent_runs: 100_000,
                ..Limits::default()
            },
        ] {
            assert!(l.validate().unwrap_err().message.contains("may not exceed"));
        }
    }

    #[test]
    fn zero_fuel_is_rejected() {
        let l = Limits {
            fuel: 0,
            ..Limits::default()
        };
        let issue = l.validate().unwrap_err();
        assert!(issue.message.contains("fuel"));
        assert_eq!(issue.path, ["limits", "fuel"]);
    }
}
