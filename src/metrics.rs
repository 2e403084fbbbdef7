//! Prometheus metrics (prometheus-client): runs by language and status, run durations, denials
//! by rule, fuel used, and the runs active and queued right now.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    language: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LanguageLabel {
    language: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabel {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolCallLabels {
    server: String,
    tool: String,
    outcome: String,
}

pub struct Metrics {
    registry: Registry,
    tool_calls: Family<ToolCallLabels, Counter>,
    tool_call_seconds: Family<ToolCallLabels, Histogram>,
    runs: Family<RunLabels, Counter>,
    durations: Family<LanguageLabel, Histogram>,
    denials: Family<RuleLabel, Counter>,
    fuel: Family<LanguageLabel, Counter<u64, AtomicU64>>,
    active: Gauge,
    queued: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("warden");
        let runs = Family::<RunLabels, Counter>::default();
        registry.register("runs", "Runs by language and status", runs.clone());
        let durations = Family::<LanguageLabel, Histogram>::new_with_constructor(|| {
            // 100 µs .. ~100 s.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0001, 4.0, 11,
            ))
        });
        registry.register(
            "run_duration_seconds",
            "Wall-clock time of runs, queueing included",
            durations.clone(),
        );
        let denials = Family::<RuleLabel, Counter>::default();
        registry.register(
            "denials",
            "Calls the policy stopped, by rule",
            denials.clone(),
        );
        let fuel = Family::<LanguageLabel, Counter<u64, AtomicU64>>::default();
        registry.register("fuel_used", "Fuel consumed by runs", fuel.clone());
        let active = Gauge::default();
        registry.register("runs_active", "Runs executing now", active.clone());
        let queued = Gauge::default();
        registry.register(
            "runs_queued",
            "Calls waiting for a free sandbox",
            queued.clone(),
        );
        let tool_calls = Family::<ToolCallLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "Calls the code made to upstream tools, by server, tool and outcome",
            tool_calls.clone(),
        );
        let tool_call_seconds = Family::<ToolCallLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.0001, 4.0, 11,
            ))
        });
        registry.register(
            "tool_call_duration_seconds",
            "Time of the code's calls to upstream tools (policy and approval included)",
            tool_call_seconds.clone(),
        );
        Metrics {
            registry,
            tool_calls,
            tool_call_seconds,
            runs,
            durations,
            denials,
            fuel,
            active,
            queued,
        }
    }

    pub fn run_finished(&self, language: &str, status: &str, seconds: f64, fuel: u64) {
        self.runs
            .get_or_create(&RunLabels {
                language: language.to_string(),
                status: status.to_string(),
            })
            .inc();
        let language = LanguageLabel {
            language: language.to_string(),
        };
        self.durations.get_or_create(&language).observe(seconds);
        self.fuel.get_or_create(&language).inc_by(fuel);
    }

    /// One call of the code to an upstream tool; `outcome` is `ok`, `tool_error`, `denied`,
    /// `rate_limited`, `failed`...
    pub fn tool_called(&self, server: &str, tool: &str, outcome: &str, seconds: f64) {
        let labels = ToolCallLabels {
            server: server.to_string(),
            tool: tool.to_string(),
            outcome: outcome.to_string(),
        };
        self.tool_calls.get_or_create(&labels).inc();
        self.tool_call_seconds
            .get_or_create(&labels)
            .observe(seconds);
    }

    pub fn denied(&self, rule: &str) {
        self.denials
            .get_or_create(&RuleLabel {
                rule: rule.to_string(),
            })
            .inc();
    }

    pub fn active(&self) -> &Gauge {
        &self.active
    }

    pub fn queued(&self) -> &Gauge {
        &self.queued
    }

    /// The Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!("encoding metrics failed: {e}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tool_calls_are_counted_by_server_tool_and_outcome() {
        let m = super::Metrics::new();
        m.tool_called("rec", "add", "ok", 0.01);
        m.tool_called("rec", "add", "ok", 0.02);
        m.tool_called("rec", "add", "rate_limited", 0.0);
        let text = m.encode();
        assert!(
            text.contains(r#"warden_tool_calls_total{server="rec",tool="add",outcome="ok"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"outcome="rate_limited"} 1"#), "{text}");
        assert!(
            text.contains("warden_tool_call_duration_seconds_count"),
            "{text}"
        );
    }

    use super::*;

    #[test]
    fn metrics_are_exposed_in_text_format() {
        let m = Metrics::new();
        m.run_finished("javascript", "ok", 0.002, 1000);
        m.run_finished("javascript", "ok", 0.003, 500);
        m.denied("no-eval");
        m.active().inc();
        let text = m.encode();
        assert!(
            text.contains(r#"warden_runs_total{language="javascript",status="ok"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"warden_denials_total{rule="no-eval"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"warden_fuel_used_total{language="javascript"} 1500"#),
            "{text}"
        );
        assert!(text.contains("warden_runs_active 1"), "{text}");
        assert!(
            text.contains("warden_run_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
