//! `[tasks]`: calls a client runs as MCP tasks (the tasks extension): answered at once with a
//! task id, run in the background under larger limits than a call's, their results kept for
//! a while for the client to fetch. On by default (a client opts in per call); bounded per
//! grant, in all, and in the memory their kept results take.

use serde::{Deserialize, Serialize};

use super::limits::Limits;
use super::locate::Issue;

/// The longest wall clock a task may be given: like a call's, it is tied to one process.
const MAX_TASK_TIMEOUT_MS: u64 = 24 * 3600 * 1000;

/// The longest a finished task's result may be kept.
const MAX_KEEP_S: u64 = 7 * 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskSettings {
    /// Whether the server offers the tasks extension at all (default true). Off: every call
    /// runs within its request under `[limits]`, whatever the client declares.
    pub enabled: bool,
    /// Wall clock of a task whose call gives no `timeout_ms` (default 300 000: 5 min); queueing
    /// for a sandbox counts, waiting for a person's answer does not.
    pub default_timeout_ms: u64,
    /// A task's `timeout_ms` is clamped to this (default 900 000: 15 min).
    pub max_timeout_ms: u64,
    /// A task's deterministic CPU budget (default 10¹³: five hundred calls' worth). Busy
    /// guests burn 8-10×10⁹ units a second on the fastest machine measured (2026-12-02), so
    /// by default a task's wall clock ends it before its fuel does; at 10¹² a two-minute Python
    /// task ran out of fuel there.
    pub fuel: u64,
    /// Tasks of one grant running or waiting at once (default 4); beyond that a call is
    /// answered `rate_limited` with a retry hint instead of becoming a task.
    pub max_per_grant: u32,
    /// Tasks running or waiting at once, all grants together (default 16).
    pub max_tasks: u32,
    /// How long a finished task's result stays readable, from when it finished (default
    /// 900 s). The task's `ttlMs` says so to the client.
    pub keep_results_s: u64,
    /// Memory the kept results may take in all (default 256 MiB); while it is full, new tasks
    /// are refused until the oldest results expire.
    pub max_kept_bytes: u64,
    /// How often a client is told to poll (default 1000 ms).
    pub poll_interval_ms: u64,
}

impl Default for TaskSettings {
    fn default() -> Self {
        TaskSettings {
            enabled: true,
            default_timeout_ms: 300_000,
            max_timeout_ms: 900_000,
            fuel: 10_000_000_000_000,
            max_per_grant: 4,
            max_tasks: 16,
            keep_results_s: 900,
            max_kept_bytes: 256 * 1024 * 1024,
            poll_interval_ms: 1000,
        }
    }
}

impl TaskSettings {
    /// `call`'s limits for a run started as a task: the task's wall clock and fuel instead of
    /// the call's, everything else as for a call (a grant's override then narrows them).
    pub fn run_limits(&self, call: &Limits) -> Limits {
        Limits {
            default_timeout_ms: self.default_timeout_ms,
            max_timeout_ms: self.max_timeout_ms,
            fuel: self.fuel,
            ..call.clone()
        }
    }

    pub(super) fn validate(&self) -> Result<(), Issue> {
        for (key, value) in [
            ("default_timeout_ms", self.default_timeout_ms),
            ("max_timeout_ms", self.max_timeout_ms),
            ("fuel", self.fuel),
            ("max_per_grant", u64::from(self.max_per_grant)),
            ("max_tasks", u64::from(self.max_tasks)),
            ("keep_results_s", self.keep_results_s),
            ("max_kept_bytes", self.max_kept_bytes),
            ("poll_interval_ms", self.poll_interval_ms),
        ] {
            if value == 0 {
                return Err(Issue::new(
                    &["tasks", key],
                    format!(
                        "[tasks] {key} must be at least 1 (set enabled = false to turn tasks off)"
                    ),
                ));
            }
        }
        if self.keep_results_s > MAX_KEEP_S {
            return Err(Issue::new(
                &["tasks", "keep_results_s"],
                format!("[tasks] keep_results_s cannot exceed {MAX_KEEP_S} (a week)"),
            ));
        }
        if self.max_timeout_ms > MAX_TASK_TIMEOUT_MS {
            return Err(Issue::new(
                &["tasks", "max_timeout_ms"],
                format!("[tasks] max_timeout_ms cannot exceed {MAX_TASK_TIMEOUT_MS} (a day)"),
            ));
        }
        for (key, value, limit, what) in [
            (
                "default_timeout_ms",
                self.default_timeout_ms,
                self.max_timeout_ms,
                "max_timeout_ms",
            ),
            (
                "max_per_grant",
                u64::from(self.max_per_grant),
                u64::from(self.max_tasks),
                "max_tasks",
            ),
        ] {
            if value > limit {
                return Err(Issue::new(
                    &["tasks", key],
                    format!("[tasks] {key} ({value}) cannot exceed {what} ({limit})"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_raise_only_wall_clock_and_fuel() {
        let tasks = TaskSettings::default();
        tasks.validate().unwrap();
        let call = Limits::default();
        let task = tasks.run_limits(&call);
        assert_eq!(task.max_timeout_ms, 900_000);
        assert_eq!(task.timeout_ms(None), 300_000);
        assert_eq!(task.fuel, 10_000_000_000_000);
        assert_eq!(task.memory_bytes, call.memory_bytes);
        assert_eq!(task.max_tool_calls, call.max_tool_calls);
    }

    #[test]
    fn zeros_and_inversions_are_refused_with_the_key() {
        let zero = TaskSettings {
            max_tasks: 0,
            ..TaskSettings::default()
        };
        assert!(zero.validate().unwrap_err().message.contains("max_tasks"));
        let inverted = TaskSettings {
            max_per_grant: 5,
            max_tasks: 4,
            ..TaskSettings::default()
        };
        let e = inverted.validate().unwrap_err().message;
        assert!(
            e.contains("max_per_grant (5) cannot exceed max_tasks (4)"),
            "{e}"
        );
        let long = TaskSettings {
            max_timeout_ms: MAX_TASK_TIMEOUT_MS + 1,
            ..TaskSettings::default()
        };
        assert!(long.validate().is_err());
        let kept = TaskSettings {
            keep_results_s: MAX_KEEP_S + 1,
            ..TaskSettings::default()
        };
        assert!(kept.validate().unwrap_err().message.contains("a week"));
    }

    #[test]
    fn a_grant_narrows_its_tasks_limits_too() {
        let p = crate::policy::Policy::parse(
            "[grants.small]\ntoken_env = \"SMALL\"\nlimits = { fuel = 1000, max_timeout_ms = 2000 }\n\n[grants.big]\ntoken_env = \"BIG\"\n",
            "t",
        )
        .unwrap();
        let small = p.grant("small").task_limits();
        assert_eq!((small.fuel, small.max_timeout_ms), (1000, 2000));
        let big = p.grant("big").task_limits();
        assert_eq!(big.fuel, p.tasks.fuel);
        assert_eq!(big.max_timeout_ms, p.tasks.max_timeout_ms);
        assert_eq!(big.memory_bytes, p.limits.memory_bytes);
    }
}
