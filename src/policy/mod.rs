//! The policy document and the decision pipeline it drives, in DESIGN.md's order:
//! schema (the executor's argument check) -> argument rules -> the tool's action
//! (allow / deny / require_approval) -> rate limits (reserved atomically) -> run.
//!
//! Unknown keys are errors, and every error names the file, line and column. This module knows
//! nothing of MCP or of the sandbox.

mod limits;
pub mod network;
pub mod ratelimit;
pub mod rules;

pub use limits::{GUEST_THREAD_STACK_BYTES, Limits, MAX_WASM_STACK_BYTES};
pub use network::{
    CredentialSpec, GrantSpec, HostRule, Injection, LOCAL_GRANT, LimitsOverride, NetworkPolicy,
};
pub use ratelimit::{Caller, CounterStore, LimitSpec, MemoryCounterStore, Scope, Window};
pub use rules::{CallArgs, Effect, Rule, RuleSpec};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::outcome::{PolicyDecision, Status};
use ratelimit::CounterKey;

/// The one tool this server has; `[tools.<name>]` may only name it.
pub const TOOL_NAME: &str = "execute_code";

/// The policy compiled into the binary, used when no `--policy` is given.
pub const DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Format version of the document; only 1 exists.
    #[serde(default = "default_version")]
    pub version: u32,
    /// The action for a tool the document says nothing about.
    #[serde(default)]
    pub default: Action,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub tools: BTreeMap<String, ToolPolicy>,
    #[serde(default)]
    pub all_tools: AllTools,
    #[serde(default)]
    pub audit: AuditSettings,
    #[serde(default)]
    pub network: NetworkPolicy,
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialSpec>,
    #[serde(default)]
    pub grants: BTreeMap<String, GrantSpec>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    Allow,
    Deny,
    RequireApproval,
}

/// `[tools.execute_code]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPolicy {
    /// Defaults to the document's `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Narrows the languages on offer (contract names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    #[serde(default)]
    pub limits: Vec<LimitSpec>,
}

/// `[all_tools]`: limits every tool call counts against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllTools {
    #[serde(default)]
    pub limits: Vec<LimitSpec>,
}

/// `[audit]`: where decision and run events go (JSON lines).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// A file to append to; without it, events go to stderr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Put the full code in events (otherwise only its SHA-256 and size).
    pub include_code: bool,
    /// Deny calls when an event cannot be written.
    pub fail_closed: bool,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            path: None,
            include_code: false,
            fail_closed: true,
        }
    }
}

fn default_version() -> u32 {
    1
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid policy {origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl Policy {
    /// The built-in policy (policies/default.toml).
    pub fn builtin() -> Policy {
        // The embedded document is checked by a unit test; failing to parse it is a build bug.
        Policy::parse(DEFAULT_POLICY, "<built-in default policy>")
            .unwrap_or_else(|e| panic!("the embedded default policy is invalid: {e}"))
    }

    /// Loads a TOML policy, or a PolicyLayer-style JSON one (by the `.json` extension).
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        if path.extension().is_some_and(|e| e == "json") {
            Policy::from_policylayer(&text, &origin)
        } else {
            Policy::parse(&text, &origin)
        }
    }

    /// Translates a PolicyLayer-style JSON document: `version`, `default`,
    /// `tools.<name>.limits[]` (`counter`, `window`, `max`, `scope`) and `all_tools.limits[]`.
    /// Anything else cannot be translated and is an error, never ignored.
    pub fn from_policylayer(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let doc: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| invalid(format!("line {}, column {}: {e}", e.line(), e.column())))?;
        let root = doc
            .as_object()
            .ok_or_else(|| invalid("a PolicyLayer document is a JSON object".into()))?;
        let mut policy = Policy::parse("", origin)?;
        for (key, value) in root {
            match key.as_str() {
                "version" => {
                    let ok = value == &serde_json::json!(1) || value == &serde_json::json!("1");
                    if !ok {
                        return Err(invalid(format!(
                            "version {value} is not supported (expected 1)"
                        )));
                    }
                }
                "default" => {
                    policy.default = serde_json::from_value(value.clone()).map_err(|_| {
                        invalid(format!(
                            "default: expected \"allow\" or \"deny\", got {value}"
                        ))
                    })?;
                }
                "tools" => {
                    let tools = value
                        .as_object()
                        .ok_or_else(|| invalid("tools: expected an object of tools".into()))?;
                    for (name, tool) in tools {
                        let tool = tool
                            .as_object()
                            .ok_or_else(|| invalid(format!("tools.{name}: expected an object")))?;
                        let mut translated = ToolPolicy::default();
                        for (field, v) in tool {
                            match field.as_str() {
                                "limits" => {
                                    translated.limits =
                                        translate_limits(v, &format!("tools.{name}.limits"))
                                            .map_err(invalid)?
                                }
                                other => {
                                    return Err(invalid(format!(
                                        "tools.{name}.{other}: cannot be translated (only `limits` can)"
                                    )));
                                }
                            }
                        }
                        policy.tools.insert(name.clone(), translated);
                    }
                }
                "all_tools" => {
                    let all = value
                        .as_object()
                        .ok_or_else(|| invalid("all_tools: expected an object".into()))?;
                    for (field, v) in all {
                        match field.as_str() {
                            "limits" => {
                                policy.all_tools.limits =
                                    translate_limits(v, "all_tools.limits").map_err(invalid)?
                            }
                            other => {
                                return Err(invalid(format!(
                                    "all_tools.{other}: cannot be translated (only `limits` can)"
                                )));
                            }
                        }
                    }
                }
                other => return Err(invalid(format!("`{other}`: cannot be translated"))),
            }
        }
        // A JSON document has no line and column here; the path says where.
        policy
            .validate()
            .map_err(|issue| invalid(format!("at {}: {}", issue.path.join("."), issue.message)))?;
        Ok(policy)
    }

    /// Parses and validates a TOML policy. `origin` names the document in error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Invalid {
            origin: origin.to_string(),
            message: describe_toml_error(text, &e),
        })?;
        if policy.version != 1 {
            return Err(PolicyError::Invalid {
                origin: origin.to_string(),
                message: format!("version {} is not supported (expected 1)", policy.version),
            });
        }
        policy.validate().map_err(|issue| PolicyError::Invalid {
            origin: origin.to_string(),
            message: issue.describe(text),
        })?;
        Ok(policy)
    }

    /// Checks what serde cannot: tool names, languages, rules, limits.
    fn validate(&self) -> Result<(), Issue> {
        self.limits.validate()?;
        for (name, tool) in &self.tools {
            if name != TOOL_NAME {
                return Err(Issue::new(
                    &["tools", name],
                    format!("[tools.{name}]: unknown tool (this server has only `{TOOL_NAME}`)"),
                ));
            }
            for (i, language) in tool.languages.iter().flatten().enumerate() {
                if crate::runtimes::Language::from_contract_name(language).is_none() {
                    return Err(Issue::new(
                        &["tools", name, "languages", &i.to_string()],
                        format!(
                            "[tools.{name}] languages: unknown language \"{language}\" (javascript, typescript, python)"
                        ),
                    ));
                }
            }
            for (i, rule) in tool.rules.iter().enumerate() {
                Rule::compile(rule).map_err(|e| {
                    Issue::new(
                        &["tools", name, "rules", &i.to_string()],
                        format!("[tools.{name}] {e}"),
                    )
                })?;
            }
            check_limits(&["tools", name], &tool.limits)?;
        }
        check_limits(&["all_tools"], &self.all_tools.limits)?;
        network::validate_sections(&self.network, &self.credentials, &self.grants, &self.limits)
    }

    fn tool(&self) -> Option<&ToolPolicy> {
        self.tools.get(TOOL_NAME)
    }

    /// The effective policy, every default filled in, as TOML; it parses back to the same
    /// policy. It holds no secret values (a policy cannot), but see [`Self::to_redacted_toml`].
    pub fn to_normalized_toml(&self) -> Result<String, String> {
        toml::to_string_pretty(self).map_err(|e| format!("cannot render the policy: {e}"))
    }

    /// The normalized policy for people to read: token hashes are redacted as well (a weak
    /// token could be guessed from its hash). Credentials show where their values come from,
    /// never the values.
    pub fn to_redacted_toml(&self) -> Result<String, String> {
        let mut shown = self.clone();
        for grant in shown.grants.values_mut() {
            if grant.token_sha256.is_some() {
                grant.token_sha256 = Some("<redacted>".into());
            }
        }
        shown.to_normalized_toml()
    }
}

fn translate_limits(value: &serde_json::Value, at: &str) -> Result<Vec<LimitSpec>, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("{at}: expected a list of limits"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value::<LimitSpec>(item.clone()).map_err(|e| format!("{at}[{i}]: {e}"))
        })
        .collect()
}

fn check_limits(section: &[&str], limits: &[LimitSpec]) -> Result<(), Issue> {
    let shown = format!("[{}]", section.join("."));
    for (i, l) in limits.iter().enumerate() {
        let index = i.to_string();
        let at = |key: &'static str| {
            let mut path = section.to_vec();
            path.extend(["limits", index.as_str(), key]);
            path
        };
        if l.counter.trim().is_empty() {
            return Err(Issue::new(
                &at("counter"),
                format!("{shown} limits: a limit needs a non-empty `counter`"),
            ));
        }
        if l.max == 0 {
            return Err(Issue::new(
                &at("max"),
                format!(
                    "{shown} limits: counter `{}` has max = 0 (use action = \"deny\" to refuse every call)",
                    l.counter
                ),
            ));
        }
    }
    Ok(())
}

/// A problem validation found in a parsed document, and where it is: the keys leading to it
/// (array items by their index), which [`Policy::parse`] turns into a line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: Vec<String>,
    pub message: String,
}

impl Issue {
    pub fn new<S: AsRef<str>>(path: &[S], message: impl Into<String>) -> Issue {
        Issue {
            path: path.iter().map(|s| s.as_ref().to_string()).collect(),
            message: message.into(),
        }
    }

    /// The message with the line and column of the deepest part of the path the document
    /// spells out (a default that is not written has no place of its own).
    fn describe(&self, text: &str) -> String {
        match locate(text, &self.path) {
            Some(offset) => {
                let (line, column) = line_column(text, offset);
                format!("line {line}, column {column}: {}", self.message)
            }
            None => self.message.clone(),
        }
    }
}

/// The byte offset of `path` (or of its longest prefix present) in a TOML document.
fn locate(text: &str, path: &[String]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    let mut found = None;
    for segment in path {
        let value = match array.take() {
            Some(items) => {
                let item = items.get(segment.parse::<usize>().ok()?)?;
                found = Some(item.span().start);
                item
            }
            None => {
                let (key, value) = table.iter().find(|(k, _)| k.get_ref() == segment)?;
                found = Some(key.span().start);
                value
            }
        };
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            DeValue::Array(items) => array = Some(items.as_ref()),
            _ => break,
        }
    }
    found
}

/// What the policy says about a call before any rate limit is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Allowed once a person approves it; `rule` and `reason` say why approval is needed.
    NeedsApproval {
        rule: String,
        reason: String,
    },
    Deny(Denial),
}

/// A call the policy stopped: the contract's status plus `policy {rule, reason, retry_after_ms}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub status: Status,
    pub decision: PolicyDecision,
}

impl Denial {
    pub fn new(status: Status, rule: impl Into<String>, reason: impl Into<String>) -> Denial {
        Denial {
            status,
            decision: PolicyDecision {
                rule: rule.into(),
                reason: reason.into(),
                retry_after_ms: None,
            },
        }
    }
}

/// A policy ready to decide: rules compiled, counters attached. Counters live in the store,
/// not here, so that a reloaded policy keeps them.
pub struct PolicyEngine {
    policy: Policy,
    rules: Vec<Rule>,
    counters: Arc<dyn CounterStore>,
}

impl PolicyEngine {
    pub fn new(
        policy: Policy,
        counters: Arc<dyn CounterStore>,
    ) -> Result<PolicyEngine, PolicyError> {
        let rules = match policy.tool() {
            Some(tool) => tool
                .rules
                .iter()
                .map(Rule::compile)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|message| PolicyError::Invalid {
                    origin: "policy".into(),
                    message,
                })?,
            None => Vec::new(),
        };
        Ok(PolicyEngine {
            policy,
            rules,
            counters,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The languages the policy lets callers use, out of those the server has.
    pub fn allowed_languages(
        &self,
        available: &[crate::runtimes::Language],
    ) -> Vec<crate::runtimes::Language> {
        match self.policy.tool().and_then(|t| t.languages.as_ref()) {
            None => available.to_vec(),
            Some(allowed) => available
                .iter()
                .copied()
                .filter(|l| allowed.iter().any(|a| a == l.as_str()))
                .collect(),
        }
    }

    /// Argument rules, then the tool's action. Counts nothing.
    pub fn check(&self, args: &CallArgs<'_>) -> Verdict {
        let tool = self.policy.tool();
        let mut approval = None;
        for rule in self.rules.iter().filter(|r| r.matches(args)) {
            match rule.effect {
                Effect::Deny => {
                    return Verdict::Deny(Denial::new(Status::Denied, &rule.name, &rule.message));
                }
                Effect::RequireApproval => {
                    approval.get_or_insert_with(|| (rule.name.clone(), rule.message.clone()));
                }
            }
        }
        if let Some(allowed) = tool.and_then(|t| t.languages.as_ref())
            && !allowed.iter().any(|l| l == args.language)
        {
            return Verdict::Deny(Denial::new(
                Status::Denied,
                format!("tools.{TOOL_NAME}.languages"),
                format!(
                    "the policy does not allow {} here (allowed: {})",
                    args.language,
                    allowed.join(", ")
                ),
            ));
        }
        let (action, source) = match tool.and_then(|t| t.action) {
            Some(a) => (a, format!("tools.{TOOL_NAME}.action")),
            None => (self.policy.default, "default".to_string()),
        };
        match (action, approval) {
            (Action::Deny, _) => Verdict::Deny(Denial::new(
                Status::Denied,
                source,
                format!("the policy denies {TOOL_NAME}"),
            )),
            (_, Some((rule, reason))) => Verdict::NeedsApproval { rule, reason },
            (Action::RequireApproval, None) => Verdict::NeedsApproval {
                rule: source,
                reason: format!("the policy requires a person to approve every {TOOL_NAME} call"),
            },
            (Action::Allow, None) => Verdict::Allow,
        }
    }

    /// The decision for `args`, step by step, without counting anything: which rules match,
    /// what the action is, which counters the call would count against.
    pub fn explain(&self, args: &CallArgs<'_>, caller: &Caller<'_>) -> Vec<String> {
        let mut trace = vec![format!(
            "caller: grant `{}`, session `{}`; language {}, {} bytes of code",
            caller.grant,
            caller.session,
            args.language,
            args.code.len()
        )];
        for rule in &self.rules {
            let effect = match rule.effect {
                Effect::Deny => "deny",
                Effect::RequireApproval => "require approval",
            };
            if rule.matches(args) {
                trace.push(format!(
                    "rule `{}` matches: {effect} ({})",
                    rule.name, rule.message
                ));
            } else {
                trace.push(format!("rule `{}` does not match", rule.name));
            }
        }
        let verdict = self.check(args);
        trace.push(match &verdict {
            Verdict::Allow => "action: allow".to_string(),
            Verdict::NeedsApproval { rule, reason } => {
                format!("action: require approval (rule `{rule}`: {reason})")
            }
            Verdict::Deny(d) => format!(
                "action: {} (rule `{}`: {})",
                d.status.as_str(),
                d.decision.rule,
                d.decision.reason
            ),
        });
        if !matches!(verdict, Verdict::Deny(_)) {
            let specs = self
                .policy
                .tool()
                .map(|t| t.limits.iter())
                .into_iter()
                .flatten()
                .chain(self.policy.all_tools.limits.iter());
            let mut any = false;
            for spec in specs {
                any = true;
                let key = CounterKey::for_caller(spec, caller);
                trace.push(format!(
                    "rate limit: counter `{}` allows {} per {:?}",
                    key.key, spec.max, spec.window
                ));
            }
            if !any {
                trace.push("rate limits: none apply".to_string());
            }
            trace.push(match verdict {
                Verdict::Allow => "decision: allow (if the counters have room)".to_string(),
                _ => "decision: ask a person, then count and run".to_string(),
            });
        } else {
            trace.push("decision: deny (nothing is counted)".to_string());
        }
        trace
    }

    /// Counts the call against every rate limit that applies, all or nothing.
    pub fn admit(&self, caller: &Caller<'_>, now_ms: u64) -> Result<(), Denial> {
        let (keys, specs) = self.counter_keys(caller);
        if keys.is_empty() {
            return Ok(());
        }
        self.counters.try_admit(&keys, now_ms).map_err(|refusal| {
            let spec = specs[refusal.index.min(specs.len() - 1)];
            let mut denial = Denial::new(
                Status::RateLimited,
                format!("rate_limit.{}", spec.counter),
                format!(
                    "at most {} calls per {:?} ({:?} scope); try again in {} ms",
                    spec.max, spec.window, spec.scope, refusal.retry_after_ms
                )
                .to_lowercase(),
            );
            denial.decision.retry_after_ms = Some(refusal.retry_after_ms);
            denial
        })
    }

    /// Gives back a call [`admit`](Self::admit)ted at `admitted_ms` that never started because
    /// the server was too busy: a caller told to retry is not charged twice.
    pub fn refund(&self, caller: &Caller<'_>, admitted_ms: u64) {
        let (keys, _) = self.counter_keys(caller);
        if !keys.is_empty() {
            self.counters.refund(&keys, admitted_ms);
        }
    }

    /// The counters a call by `caller` counts in, each with the limit it comes from.
    fn counter_keys(&self, caller: &Caller<'_>) -> (Vec<CounterKey>, Vec<&LimitSpec>) {
        let specs: Vec<&LimitSpec> = self
            .policy
            .tool()
            .map(|t| t.limits.iter())
            .into_iter()
            .flatten()
            .chain(self.policy.all_tools.limits.iter())
            .collect();
        // The same counter named twice (e.g. by the tool and by all_tools) is one counter: the
        // call counts once, against the smaller max.
        let mut keys: Vec<CounterKey> = Vec::new();
        let mut key_specs: Vec<&LimitSpec> = Vec::new();
        for spec in &specs {
            let key = CounterKey::for_caller(spec, caller);
            match keys
                .iter()
                .position(|k| k.key == key.key && k.window_ms == key.window_ms)
            {
                Some(i) if key.max < keys[i].max => {
                    keys[i] = key;
                    key_specs[i] = spec;
                }
                Some(_) => {}
                None => {
                    keys.push(key);
                    key_specs.push(spec);
                }
            }
        }
        (keys, key_specs)
    }
}

/// toml's message with a 1-based line and column in front, so that a person can jump to it.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_policy_parses_and_matches_the_defaults() {
        let p = Policy::builtin();
        assert_eq!(p.version, 1);
        assert_eq!(p.limits, Limits::default());
    }

    #[test]
    fn empty_document_means_defaults() {
        let p = Policy::parse("", "t").unwrap();
        assert_eq!(p.limits, Limits::default());
    }

    #[test]
    fn limits_override_defaults() {
        let p = Policy::parse("[limits]\nfuel = 1000\nmax_timeout_ms = 2000\n", "t").unwrap();
        assert_eq!(p.limits.fuel, 1000);
        assert_eq!(p.limits.max_timeout_ms, 2000);
        assert_eq!(p.limits.memory_bytes, Limits::default().memory_bytes);
    }

    #[test]
    fn unknown_key_is_an_error_with_line_and_column() {
        let e = Policy::parse("[limits]\nfuel = 1\nfule = 2\n", "p.toml").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("p.toml"), "{m}");
        assert!(m.contains("line 3, column 1"), "{m}");
        assert!(m.contains("fule"), "{m}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let e = Policy::parse("[limits]\nfuel = \"lots\"\n", "p.toml").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn unsupported_version_is_an_error() {
        let e = Policy::parse("version = 2\n", "p.toml").unwrap_err();
        assert!(e.to_string().contains("version 2"), "{e}");
    }

    #[test]
    fn invalid_limits_are_an_error() {
        let e = Policy::parse("[limits]\nmemory_bytes = 0\n", "p").unwrap_err();
        assert!(e.to_string().contains("limits.memory_bytes"), "{e}");
    }

    fn engine(toml: &str) -> PolicyEngine {
        PolicyEngine::new(
            Policy::parse(toml, "t").unwrap(),
            Arc::new(MemoryCounterStore::default()),
        )
        .unwrap()
    }

    fn args<'a>(language: &'a str, code: &'a str) -> CallArgs<'a> {
        CallArgs {
            language,
            code,
            timeout_ms: None,
            input: None,
        }
    }

    #[test]
    fn the_builtin_policy_allows() {
        let e =
            PolicyEngine::new(Policy::builtin(), Arc::new(MemoryCounterStore::default())).unwrap();
        assert_eq!(e.check(&args("python", "1")), Verdict::Allow);
        assert!(
            e.admit(
                &Caller {
                    grant: "local",
                    session: "s"
                },
                0
            )
            .is_ok()
        );
    }

    #[test]
    fn deny_rules_stop_calls_with_their_message() {
        let e = engine(
            "[[tools.execute_code.rules]]\nname = \"no-eval\"\nmessage = \"eval is not allowed\"\n\
             when = [{ arg = \"code\", op = \"contains\", value = \"eval(\" }]\n",
        );
        match e.check(&args("javascript", "eval('1')")) {
            Verdict::Deny(d) => {
                assert_eq!(d.status, Status::Denied);
                assert_eq!(d.decision.rule, "no-eval");
                assert_eq!(d.decision.reason, "eval is not allowed");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.check(&args("javascript", "1")), Verdict::Allow);
    }

    #[test]
    fn actions_and_the_default() {
        let deny_all = engine("default = \"deny\"\n");
        assert!(
            matches!(deny_all.check(&args("python", "1")), Verdict::Deny(d) if d.decision.rule == "default")
        );
        let approve = engine("[tools.execute_code]\naction = \"require_approval\"\n");
        assert!(matches!(
            approve.check(&args("python", "1")),
            Verdict::NeedsApproval { .. }
        ));
        let overridden = engine("default = \"deny\"\n[tools.execute_code]\naction = \"allow\"\n");
        assert_eq!(overridden.check(&args("python", "1")), Verdict::Allow);
    }

    #[test]
    fn approval_rules_ask_but_deny_rules_win() {
        let e = engine(
            "[[tools.execute_code.rules]]\nname = \"long\"\nmessage = \"long code needs a look\"\n\
             effect = \"require_approval\"\nwhen = [{ arg = \"code_length\", op = \"gt\", value = 3 }]\n\
             [[tools.execute_code.rules]]\nname = \"no-py\"\nmessage = \"no python\"\n\
             when = [{ arg = \"language\", op = \"eq\", value = \"python\" }]\n",
        );
        assert!(
            matches!(e.check(&args("javascript", "12345")), Verdict::NeedsApproval { rule, .. } if rule == "long")
        );
        assert!(
            matches!(e.check(&args("python", "12345")), Verdict::Deny(d) if d.decision.rule == "no-py")
        );
    }

    #[test]
    fn languages_can_be_narrowed() {
        let e = engine("[tools.execute_code]\nlanguages = [\"python\"]\n");
        assert!(
            matches!(e.check(&args("javascript", "1")), Verdict::Deny(d) if d.decision.reason.contains("allowed: python"))
        );
        use crate::runtimes::Language;
        assert_eq!(e.allowed_languages(&Language::ALL), vec![Language::Python]);
    }

    #[test]
    fn rate_limits_deny_with_a_retry_hint_and_scopes_apart() {
        let e = engine(
            "[[tools.execute_code.limits]]\ncounter = \"calls\"\nwindow = \"minute\"\nmax = 2\nscope = \"grant\"\n",
        );
        let a = Caller {
            grant: "a",
            session: "1",
        };
        let b = Caller {
            grant: "b",
            session: "2",
        };
        assert!(e.admit(&a, 1_000).is_ok());
        assert!(e.admit(&a, 2_000).is_ok());
        let d = e.admit(&a, 3_000).unwrap_err();
        assert_eq!(d.status, Status::RateLimited);
        assert_eq!(d.decision.rule, "rate_limit.calls");
        assert_eq!(d.decision.retry_after_ms, Some(57_000));
        assert!(e.admit(&b, 3_000).is_ok());
    }

    #[test]
    fn a_counter_named_twice_counts_once_against_the_smaller_max() {
        let e = engine(
            "[[tools.execute_code.limits]]\ncounter = \"c\"\nwindow = \"hour\"\nmax = 3\nscope = \"global\"\n\
             [[all_tools.limits]]\ncounter = \"c\"\nwindow = \"hour\"\nmax = 2\nscope = \"global\"\n",
        );
        let caller = Caller {
            grant: "g",
            session: "s",
        };
        assert!(e.admit(&caller, 0).is_ok());
        assert!(e.admit(&caller, 1).is_ok());
        assert!(e.admit(&caller, 2).is_err(), "max 2, counted once per call");
    }

    #[test]
    fn a_matching_deny_rule_is_named_even_for_a_disallowed_language() {
        let e = engine(
            "[tools.execute_code]\nlanguages = [\"python\"]\n[[tools.execute_code.rules]]\nname = \"no-eval\"\n\
             message = \"m\"\nwhen = [{ arg = \"code\", op = \"contains\", value = \"eval\" }]\n",
        );
        assert!(
            matches!(e.check(&args("javascript", "eval(1)")), Verdict::Deny(d) if d.decision.rule == "no-eval")
        );
        assert!(
            matches!(e.check(&args("javascript", "1")), Verdict::Deny(d) if d.decision.rule.ends_with("languages"))
        );
    }

    #[test]
    fn semantic_errors_name_the_line_and_column_of_what_is_wrong() {
        let cases = [
            (
                "version = 1\n\n[tools.execute_code]\nlanguages = [\"javascript\", \"cobol\"]\n",
                "line 4, column 28: [tools.execute_code] languages: unknown language \"cobol\"",
            ),
            (
                "[limits]\nfuel = 0\n",
                "line 2, column 1: limits.fuel must be greater than 0",
            ),
            (
                "[[all_tools.limits]]\ncounter = \"x\"\nwindow = \"day\"\nmax = 0\nscope = \"global\"\n",
                "line 4, column 1: [all_tools] limits: counter `x` has max = 0",
            ),
            (
                "[tools.shell]\naction = \"allow\"\n",
                "line 1, column 8: [tools.shell]: unknown tool",
            ),
            (
                "[[tools.execute_code.rules]]\nname = \"ok\"\nmessage = \"m\"\nwhen = [{ arg = \"code\", op = \"contains\", value = \"x\" }]\n\n\
                 [[tools.execute_code.rules]]\nname = \"r\"\nmessage = \"m\"\nwhen = [{ arg = \"code\", op = \"regex\", value = \"(\" }]\n",
                "line 6, column 1: [tools.execute_code] rule `r`, condition 1: invalid regex",
            ),
            (
                "[grants.ci]\ntoken_env = \"CI_TOKEN\"\ncredentials = [\"github\"]\n",
                "line 3, column 16: [grants.ci] credentials: no credential named \"github\"",
            ),
            (
                "[grants.ci]\ntoken_env = \"CI_TOKEN\"\nlimits = { fuel = 0 }\n",
                "line 3, column 12: [grants.ci] limits.fuel must be greater than 0",
            ),
            (
                "[credentials.gh]\nenv = \"GH\"\nhosts = [\"https://a.example\"]\n\
                 inject = { header = \"Host\", value = \"{secret}\" }\n",
                "line 4, column 1: [credentials.gh] inject: the host controls the Host header",
            ),
        ];
        for (doc, expected) in cases {
            let e = Policy::parse(doc, "p.toml").unwrap_err().to_string();
            assert!(e.contains(expected), "{doc:?}:\n{e}\nexpected: {expected}");
        }
    }

    #[test]
    fn bad_documents_are_explained() {
        let cases = [
            (
                "[tools.shell]\naction = \"allow\"\n",
                "[tools.shell]: unknown tool",
            ),
            (
                "[tools.execute_code]\nlanguages = [\"cobol\"]\n",
                "unknown language \"cobol\"",
            ),
            ("[tools.execute_code]\naction = \"maybe\"\n", "line 2"),
            (
                "[[all_tools.limits]]\ncounter = \"x\"\nwindow = \"week\"\nmax = 1\nscope = \"global\"\n",
                "week",
            ),
            (
                "[[all_tools.limits]]\ncounter = \"x\"\nwindow = \"day\"\nmax = 0\nscope = \"global\"\n",
                "max = 0",
            ),
            (
                "[[tools.execute_code.rules]]\nname = \"r\"\nmessage = \"m\"\nwhen = [{ arg = \"code\", op = \"regex\", value = \"(\" }]\n",
                "invalid regex",
            ),
            ("[audit]\nfail_open = true\n", "unknown field `fail_open`"),
            (
                "[[tools.execute_code.rules]]\nname = \"r\"\nmessage = \"m\"\nwhen = [{ arg = \"input.x\", op = \"eq\", value = nan }]\n",
                "nan and inf are not allowed",
            ),
        ];
        for (doc, needle) in cases {
            let e = Policy::parse(doc, "p.toml").unwrap_err().to_string();
            assert!(e.contains(needle), "{doc:?}: {e}");
            assert!(e.contains("p.toml"), "{e}");
        }
    }

    #[test]
    fn the_normalized_policy_parses_back_to_itself() {
        for text in [
            DEFAULT_POLICY,
            include_str!("../../policies/locked-down.toml"),
            include_str!("../../policies/rest-apis.toml"),
        ] {
            let p = Policy::parse(text, "p").unwrap();
            let normalized = p.to_normalized_toml().unwrap();
            assert_eq!(
                Policy::parse(&normalized, "normalized").unwrap(),
                p,
                "{normalized}"
            );
        }
    }

    #[test]
    fn explain_traces_every_step() {
        let e = engine(
            "[[tools.execute_code.rules]]\nname = \"no-eval\"\nmessage = \"m\"\n\
             when = [{ arg = \"code\", op = \"contains\", value = \"eval\" }]\n\
             [[tools.execute_code.limits]]\ncounter = \"c\"\nwindow = \"minute\"\nmax = 5\nscope = \"grant\"\n",
        );
        let caller = Caller {
            grant: "ci",
            session: "s",
        };
        let trace = e.explain(&args("javascript", "1"), &caller).join("\n");
        assert!(trace.contains("rule `no-eval` does not match"), "{trace}");
        assert!(trace.contains("counter `c/grant/ci` allows 5"), "{trace}");
        assert!(
            trace.ends_with("decision: allow (if the counters have room)"),
            "{trace}"
        );
        let trace = e
            .explain(&args("javascript", "eval(1)"), &caller)
            .join("\n");
        assert!(
            trace.contains("rule `no-eval` matches")
                && trace.ends_with("decision: deny (nothing is counted)"),
            "{trace}"
        );
    }

    #[test]
    fn policylayer_json_is_translated() {
        let p = Policy::from_policylayer(
            r#"{"version": "1", "default": "allow",
                "tools": {"execute_code": {"limits": [{"counter": "runs", "window": "minute", "max": 10, "scope": "session"}]}},
                "all_tools": {"limits": [{"counter": "all", "window": "day", "max": 1000, "scope": "global"}]}}"#,
            "pl.json",
        )
        .unwrap();
        let limits = &p.tools[TOOL_NAME].limits;
        assert_eq!(
            limits[0],
            LimitSpec {
                counter: "runs".into(),
                window: Window::Minute,
                max: 10,
                scope: Scope::Session
            }
        );
        assert_eq!(p.all_tools.limits[0].window, Window::Day);
        assert_eq!(p.default, Action::Allow);
        assert_eq!(p.limits, Limits::default());
        let shipped =
            Policy::from_policylayer(include_str!("../../policies/policylayer.json"), "shipped")
                .unwrap();
        assert!(!shipped.tools[TOOL_NAME].limits.is_empty());
    }

    #[test]
    fn untranslatable_policylayer_constructs_are_errors() {
        let cases = [
            (r#"{"version": 2}"#, "version 2"),
            (r#"{"rules": []}"#, "`rules`: cannot be translated"),
            (
                r#"{"tools": {"execute_code": {"conditions": {}}}}"#,
                "tools.execute_code.conditions: cannot be translated",
            ),
            (
                r#"{"all_tools": {"limits": [{"counter": "x", "window": "fortnight", "max": 1, "scope": "global"}]}}"#,
                "all_tools.limits[0]",
            ),
            (r#"{"tools": {"shell": {"limits": []}}}"#, "unknown tool"),
            (r#"{"default": "maybe"}"#, "default"),
            ("[1, 2]", "JSON object"),
            ("{\n  \"version\": }", "line 2"),
        ];
        for (doc, needle) in cases {
            let e = Policy::from_policylayer(doc, "pl.json")
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle) && e.contains("pl.json"), "{doc}: {e}");
        }
    }

    #[test]
    fn shipped_example_policies_are_valid() {
        for (name, text) in [
            (
                "locked-down.toml",
                include_str!("../../policies/locked-down.toml"),
            ),
            (
                "rest-apis.toml",
                include_str!("../../policies/rest-apis.toml"),
            ),
        ] {
            Policy::parse(text, name).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let e = Policy::load(Path::new("/nonexistent/warden.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/warden.toml"));
    }
}
