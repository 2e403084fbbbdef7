//! Tools from code: the bridge behind the guest's `tools.<server>.<tool>(…)`. Every call goes
//! through the same policy as `execute_code` itself (hidden, the tool's action or `default`,
//! argument rules, rate limits), plus what only code needs: the grant's tool list, a budget
//! of calls per run, a timeout inside the run's deadline, a cap on the result, and redaction.
//! A tool the caller may not use does not exist for it: the same "no such tool" as a typo.
//!
//! The protocol (one JSON request, one JSON answer):
//! `{"op": "call", "server", "tool", "arguments"}` -> `{"ok": true, "value"}`;
//! `{"op": "search", "query"}` -> `{"ok": true, "value": [{"name", "description"}]}`;
//! `{"op": "describe", "name": "server.tool"}` -> `{"ok": true, "value": {…, "typescript",
//! "python"}}`; a refusal is `{"ok": false, "kind", "message", "rule"?, "retry_after_ms"?}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::{CallToolResponse, Tool};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::live::Live;
use super::pipeline::AskPerson;
use super::view::{engine_for, visible};
use crate::audit::{AuditLog, ToolCallEvent};
use crate::metrics::Metrics;
use crate::policy::{Caller, Decision, PolicyEngine, ToolCall, now_ms};
use crate::sandbox::{CancelFlag, ToolAnswer, ToolBridge};
use crate::upstream::{Upstream, UpstreamError, declare, python_name, result_value};

/// Search answers at most this many tools.
const MAX_SEARCH_RESULTS: usize = 50;

/// One run's door to the upstream tools.
pub(super) struct RunTools {
    pub live: Arc<Live>,
    pub grant: String,
    pub session: String,
    pub request_id: String,
    pub max_calls: u64,
    pub calls: AtomicU64,
    /// Time spent waiting for a person in this run: it moves the deadline.
    pub paused_ns: AtomicU64,
    pub asker: Option<Arc<dyn AskPerson>>,
    pub deadline: Instant,
    pub cancel: CancelFlag,
    pub audit: Option<Arc<AuditLog>>,
    pub metrics: Arc<Metrics>,
    pub runtime: tokio::runtime::Handle,
}

/// Why a call gave no value: the guest's error kind and message.
pub(super) struct Refused {
    pub kind: &'static str,
    pub message: String,
    pub rule: Option<String>,
    pub retry_after_ms: Option<u64>,
}

impl Refused {
    pub(super) fn new(kind: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            kind,
            message: message.into(),
            rule: None,
            retry_after_ms: None,
        }
    }

    fn answer(&self) -> Value {
        let mut answer = json!({"ok": false, "kind": self.kind, "message": self.message});
        if let Some(rule) = &self.rule {
            answer["rule"] = json!(rule);
        }
        if let Some(ms) = self.retry_after_ms {
            answer["retry_after_ms"] = json!(ms);
        }
        answer
    }
}

#[derive(serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Call {
        server: String,
        tool: String,
        #[serde(default)]
        arguments: Value,
    },
    Search {
        #[serde(default)]
        query: String,
    },
    Describe {
        name: String,
    },
}

impl ToolBridge for RunTools {
    fn call(&self, request: &str) -> ToolAnswer {
        let paused_before = self.paused();
        let answer = match serde_json::from_str::<Request>(request) {
            Err(e) => Refused::new("invalid", format!("not a tools request: {e}")).answer(),
            Ok(Request::Call {
                server,
                tool,
                arguments,
            }) => match self.call_tool(&server, &tool, arguments) {
                Ok(value) => json!({"ok": true, "value": value}),
                Err(refused) => refused.answer(),
            },
            Ok(Request::Search { query }) => match self.search(&query) {
                Ok(found) => json!({"ok": true, "value": found}),
                Err(refused) => refused.answer(),
            },
            Ok(Request::Describe { name }) => match self.describe(&name) {
                Ok(found) => json!({"ok": true, "value": found}),
                Err(refused) => refused.answer(),
            },
        };
        ToolAnswer {
            json: answer.to_string(),
            paused: self.paused().saturating_sub(paused_before),
        }
    }
}

impl RunTools {
    fn caller(&self) -> Caller<'_> {
        Caller {
            grant: &self.grant,
            session: &self.session,
        }
    }

    fn paused(&self) -> Duration {
        Duration::from_nanos(self.paused_ns.load(Ordering::Acquire))
    }

    /// The run's deadline, moved by the time it waited for a person.
    fn deadline(&self) -> Instant {
        self.deadline
            .checked_add(self.paused())
            .unwrap_or(self.deadline)
    }

    /// Ends when the run is cancelled (the flag is polled: it is set from another thread).
    pub(super) fn cancelled(&self) -> impl Future<Output = ()> + use<> {
        let cancel = self.cancel.clone();
        async move {
            while !cancel.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Runs `work` on the server's runtime, until the run's deadline or its cancellation.
    fn wait<T>(
        &self,
        limit: Duration,
        work: impl Future<Output = Result<T, Refused>>,
    ) -> Result<T, Refused> {
        let left = self.deadline().saturating_duration_since(Instant::now());
        let cancelled = self.cancelled();
        crate::sandbox::wait_on(&self.runtime, async {
            tokio::select! {
                done = tokio::time::timeout(left.min(limit), work) => done.unwrap_or_else(|_| {
                    Err(Refused::new("timeout", if left <= limit {
                        "the run's deadline passed while the tool was running".to_string()
                    } else {
                        format!("the tool did not answer within {} ms", limit.as_millis())
                    }))
                }),
                _ = cancelled => Err(Refused::new("cancelled", "the run was cancelled")),
            }
        })
    }

    fn engine_for<'l>(&'l self, server: &str, tool: &str) -> (&'l PolicyEngine, String) {
        engine_for(&self.live, server, tool)
    }

    fn visible(&self, server: &str, tool: &str) -> bool {
        visible(&self.live, &self.grant, server, tool)
    }

    /// The server's tools this caller may see.
    fn tools_of(&self, upstream: &Upstream) -> Result<Vec<Tool>, Refused> {
        let listed = self.wait(Duration::MAX, async {
            upstream.tools().await.map_err(|e| unavailable(&e))
        })?;
        Ok(listed
            .iter()
            .filter(|t| self.visible(upstream.name(), &t.name))
            .cloned()
            .collect())
    }

    /// The tool the guest named (its own name, or as Python writes it), if the caller may see it.
    fn find(&self, server: &str, tool: &str) -> Result<(Arc<Upstream>, Tool), Refused> {
        let no_such = || Refused::new("not_found", format!("no tool named {server}.{tool}"));
        let upstream = self.live.upstreams.get(server).ok_or_else(no_such)?.clone();
        let tools = self.tools_of(&upstream)?;
        let found = tools
            .iter()
            .find(|t| t.name == tool)
            .or_else(|| tools.iter().find(|t| python_name(&t.name) == tool))
            .cloned()
            .ok_or_else(no_such)?;
        Ok((upstream, found))
    }

    fn call_tool(&self, server: &str, tool: &str, arguments: Value) -> Result<Value, Refused> {
        let started = Instant::now();
        let mut event = ToolCallEvent::new(&self.request_id, &self.grant, &self.session);
        event.server = server;
        event.tool = tool;
        event.arguments_sha256 = hex_digest(&arguments);
        let outcome = self.decide_and_call(server, tool, arguments, &mut event);
        let (status, reason) = match &outcome {
            Ok(_) => ("ok", None),
            Err(refused) => (refused.kind, Some(refused.message.as_str())),
        };
        event.status = status;
        event.reason = reason;
        event.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Some(log) = &self.audit
            && let Err(e) = log.record(&event)
        {
            tracing::error!("cannot write the audit log: {e}");
        }
        self.metrics
            .tool_called(server, tool, status, started.elapsed().as_secs_f64());
        outcome
    }

    fn decide_and_call<'e>(
        &'e self,
        server: &str,
        tool: &str,
        arguments: Value,
        event: &mut ToolCallEvent<'e>,
    ) -> Result<Value, Refused> {
        let Value::Object(object) = arguments else {
            return Err(Refused::new(
                "invalid",
                "a tool's arguments are one object (JavaScript: {…}; Python: keyword arguments)",
            ));
        };
        let (upstream, found) = self.find(server, tool)?;
        let made = self.calls.fetch_add(1, Ordering::AcqRel);
        if made >= self.max_calls {
            return Err(Refused::new(
                "budget",
                format!("this run may call tools at most {} times", self.max_calls),
            ));
        }
        let (engine, name) = self.engine_for(server, &found.name);
        let arguments = Value::Object(object);
        let call = ToolCall {
            tool: &name,
            arguments: &arguments,
        };
        match engine.check_tool(call, &self.caller()) {
            Decision::Admit => {}
            Decision::Deny(denial) => return Err(refusal(denial)),
            Decision::NeedsApproval(question) => {
                self.ask(server, &found.name, &arguments, &question)?;
                event.decision = "approve";
            }
        }
        let reservation = engine
            .admit_tool(call, &self.caller(), now_ms())
            .map_err(refusal)?;
        if reservation.uncounted().is_some() {
            event.rule = Some("state.fail_open");
        }
        if event.decision != "approve" {
            event.decision = "allow";
        }
        let Value::Object(object) = arguments else {
            return Err(Refused::new("invalid", "the arguments are not an object"));
        };
        let spec = upstream.spec();
        let limit = Duration::from_millis(spec.call_timeout_ms);
        let response = self.wait(limit, async {
            upstream
                .call(&found.name, object, limit)
                .await
                .map_err(|e| unavailable(&e))
        })?;
        let result = match response {
            CallToolResponse::Complete(result) => result,
            _ => {
                return Err(Refused::new(
                    "failed",
                    format!(
                        "{server}.{tool} asked for input or started a task, which calls from code do not support"
                    ),
                ));
            }
        };
        let mut value = result_value(&result).map_err(|text| {
            Refused::new("tool_error", self.live.credentials.redactor().redact(&text))
        })?;
        self.live.credentials.redactor().redact_json(&mut value);
        let size = value.to_string().len() as u64;
        if size > spec.max_result_bytes {
            return Err(Refused::new(
                "too_large",
                format!(
                    "{server}.{tool} returned {size} bytes, more than the {} this server passes on",
                    spec.max_result_bytes
                ),
            ));
        }
        Ok(value)
    }

    /// Tools whose name or description contains every word of `query` (all, for an empty one).
    fn search(&self, query: &str) -> Result<Value, Refused> {
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let mut found = Vec::new();
        for upstream in self.live.upstreams.iter() {
            let tools = match self.tools_of(upstream) {
                Ok(tools) => tools,
                Err(refused) if refused.kind == "unavailable" => continue,
                Err(refused) => return Err(refused),
            };
            for tool in tools {
                let name = format!("{}.{}", upstream.name(), tool.name);
                let description = tool.description.as_deref().unwrap_or("");
                let haystack = format!("{name} {description}").to_lowercase();
                if words.iter().all(|w| haystack.contains(w.as_str())) {
                    let summary: String = description.chars().take(200).collect();
                    found.push(json!({"name": name, "description": summary}));
                }
            }
        }
        found.truncate(MAX_SEARCH_RESULTS);
        Ok(Value::Array(found))
    }

    fn describe(&self, name: &str) -> Result<Value, Refused> {
        let Some((server, tool)) = name.split_once('.') else {
            return Err(Refused::new(
                "not_found",
                format!("no tool named {name} (write server.tool)"),
            ));
        };
        let (_, found) = self.find(server, tool)?;
        let declaration = declare(server, &found);
        Ok(json!({
            "name": format!("{server}.{}", found.name),
            "description": found.description,
            "input_schema": *found.input_schema,
            "output_schema": found.output_schema.as_deref(),
            "typescript": declaration.typescript,
            "python": declaration.python,
        }))
    }
}

fn refusal(denial: crate::policy::Denial) -> Refused {
    Refused {
        kind: denial.status.as_str(),
        message: denial.decision.reason,
        rule: Some(denial.decision.rule),
        retry_after_ms: denial.decision.retry_after_ms,
    }
}

fn unavailable(error: &UpstreamError) -> Refused {
    match error {
        UpstreamError::Timeout { .. } => Refused::new("timeout", error.to_string()),
        UpstreamError::Unreachable { .. } => Refused::new("unavailable", error.to_string()),
        UpstreamError::Failed { .. } => Refused::new("failed", error.to_string()),
    }
}

fn hex_digest(value: &Value) -> String {
    Sha256::digest(value.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
