//! `[limits]`: the resource limits every run gets. Defaults are safe for an untrusted caller.

use serde::Deserialize;

use super::Issue;
use crate::contract::ArgumentLimits;

/// The largest wasm stack a policy may ask for. Guests run on the server's threads, whose
/// stacks are sized from this ([`GUEST_THREAD_STACK_BYTES`]), so it is a hard ceiling.
pub const MAX_WASM_STACK_BYTES: u64 = 8 * 1024 * 1024;

/// The stack of every thread that may run a guest: the largest wasm stack plus room for the
/// host's own frames (wasmtime, WASI and `fetch` calls) below it. A guest that exhausts its
/// wasm stack then traps instead of overflowing the thread, which would abort the process.
pub const GUEST_THREAD_STACK_BYTES: usize = MAX_WASM_STACK_BYTES as usize + 4 * 1024 * 1024;

/// Declares [`Limits`] and, from the same field list, [`LimitsOverride`]: the fields marked
/// `narrowable` are the optional fields of the override, which a grant may lower. One list, so
/// a new limit cannot be forgotten in the override.
macro_rules! limits {
    // Munch the list: every field goes into `Limits`, the narrowable ones into the override.
    (@munch [$($all:tt)*] [$($narrowable:ident)*]) => {
        limits!(@emit [$($all)*] [$($narrowable)*]);
    };
    (@munch [$($all:tt)*] [$($narrowable:ident)*]
        $(#[doc = $doc:literal])* $field:ident: $ty:ty = $default:expr, narrowable; $($rest:tt)*) => {
        limits!(@munch [$($all)* ($(#[doc = $doc])* $field: $ty = $default)] [$($narrowable)* $field] $($rest)*);
    };
    (@munch [$($all:tt)*] [$($narrowable:ident)*]
        $(#[doc = $doc:literal])* $field:ident: $ty:ty = $default:expr, fixed; $($rest:tt)*) => {
        limits!(@munch [$($all)* ($(#[doc = $doc])* $field: $ty = $default)] [$($narrowable)*] $($rest)*);
    };
    (@emit [$(($(#[doc = $doc:literal])* $field:ident: $ty:ty = $default:expr))*] [$($narrowable:ident)*]) => {
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct Limits {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Default for Limits {
            fn default() -> Self {
                Limits { $( $field: $default, )* }
            }
        }

        /// The per-run limits a grant may lower: the narrowable fields of [`Limits`] (the wasm
        /// stack, concurrency and queue are engine-wide).
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct LimitsOverride {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $narrowable: Option<u64>,
            )*
        }

        impl LimitsOverride {
            /// Each narrowable limit: its name, this override's value, and the field in `limits`.
            fn fields_mut<'a>(
                &self,
                limits: &'a mut Limits,
            ) -> Vec<(&'static str, Option<u64>, &'a mut u64)> {
                vec![$( (stringify!($narrowable), self.$narrowable, &mut limits.$narrowable), )*]
            }
        }
    };
    ($($list:tt)*) => {
        limits!(@munch [] [] $($list)*);
    };
}

limits! {
    /// Wall-clock limit when the call gives no `timeout_ms` (queueing time included); like a
    /// requested one, it is clamped to `max_timeout_ms`.
    default_timeout_ms: u64 = 5_000, narrowable;
    /// `timeout_ms` is clamped to this.
    max_timeout_ms: u64 = 30_000, narrowable;
    /// Deterministic CPU budget (wasmtime fuel; roughly 10-14 million units per ms of JS).
    fuel: u64 = 20_000_000_000, narrowable;
    /// Total linear memory of one run, across all memories of the instance.
    memory_bytes: u64 = 128 * 1024 * 1024, narrowable;
    /// Maximum wasm call-stack size (applies to the whole engine).
    wasm_stack_bytes: u64 = 1024 * 1024, fixed;
    /// Captured bytes per stream; the rest is dropped and `truncated` says so.
    stdout_bytes: u64 = 1024 * 1024, narrowable;
    stderr_bytes: u64 = 1024 * 1024, narrowable;
    /// Size caps on the call's arguments and on the returned result.
    max_code_bytes: u64 = 256 * 1024, narrowable;
    max_input_bytes: u64 = 1024 * 1024, narrowable;
    max_result_bytes: u64 = 1024 * 1024, narrowable;
    /// Calls the code may make to upstream servers' tools in one run (`[upstreams]`).
    max_tool_calls: u64 = 100, narrowable;
    /// Runs executing at once; further calls queue (their wait counts against their deadline).
    /// 0 means one per CPU core.
    max_concurrent_runs: u32 = 0, fixed;
    /// Calls that may wait for a sandbox when all are busy; beyond that a call is refused at
    /// once with `rate_limited` and a retry hint.
    max_queued_runs: u32 = 64, fixed;
}

impl LimitsOverride {
    pub fn is_empty(&self) -> bool {
        self == &LimitsOverride::default()
    }

    /// `base` with these lower values in place (a value above the base never widens it).
    pub fn narrow(&self, base: &Limits) -> Limits {
        let mut limits = base.clone();
        for (_, value, field) in self.fields_mut(&mut limits) {
            if let Some(v) = value {
                *field = (*field).min(v);
            }
        }
        limits
    }

    /// A grant's override: no zeros (except output caps) and nothing above `base`.
    pub(super) fn validate(&self, grant: &str, at: &str, base: &Limits) -> Result<(), Issue> {
        let mut copy = base.clone();
        for (name, value, field) in self.fields_mut(&mut copy) {
            let path = ["grants", grant, "limits", name];
            match value {
                Some(0) if name != "stdout_bytes" && name != "stderr_bytes" => {
                    return Err(Issue::new(
                        &path,
                        format!("{at} limits.{name} must be greater than 0"),
                    ));
                }
                Some(v) if v > *field => {
                    return Err(Issue::new(
                        &path,
                        format!(
                            "{at} limits.{name} = {v} is above [limits] {name} = {}: a grant can only narrow",
                            *field
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
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

    /// What the contract checks a call's arguments against.
    pub fn argument_limits(&self) -> ArgumentLimits {
        ArgumentLimits {
            max_code_bytes: self.max_code_bytes,
            max_input_bytes: self.max_input_bytes,
            default_timeout_ms: self.default_timeout_ms,
            max_timeout_ms: self.max_timeout_ms,
            // The workspace and sessions are the policy's sections, not limits: the caller
            // that knows the policy fills them in (`Policy::argument_limits`).
            max_files_bytes: 0,
            sessions: false,
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
    fn the_override_has_every_per_run_limit_and_narrows_only() {
        let over = LimitsOverride {
            fuel: Some(10),
            memory_bytes: Some(u64::MAX),
            ..LimitsOverride::default()
        };
        let base = Limits::default();
        let narrowed = over.narrow(&base);
        assert_eq!(narrowed.fuel, 10);
        assert_eq!(narrowed.memory_bytes, base.memory_bytes, "never widened");
        let mut copy = base.clone();
        let names: Vec<_> = over
            .fields_mut(&mut copy)
            .into_iter()
            .map(|f| f.0)
            .collect();
        assert_eq!(
            names,
            [
                "default_timeout_ms",
                "max_timeout_ms",
                "fuel",
                "memory_bytes",
                "stdout_bytes",
                "stderr_bytes",
                "max_code_bytes",
                "max_input_bytes",
                "max_result_bytes",
                "max_tool_calls"
            ]
        );
    }

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
