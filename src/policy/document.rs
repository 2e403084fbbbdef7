//! The policy document: its sections, parsing (TOML, or PolicyLayer's JSON by extension) and
//! the validation serde cannot do, with every error located at a line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::grants::{Grant, GrantSpec, validate_grants};
use super::limits::Limits;
use super::locate::{Issue, describe_toml_error};
use super::ratelimit::LimitSpec;
use super::rules::{Rule, RuleSpec, is_gateway_path};
use crate::audit::AuditSettings;
use crate::contract::{Language, TOOL_NAME};
use crate::net::NetworkPolicy;
use crate::secrets::CredentialSpec;
use crate::upstream::UpstreamSpec;
use crate::workspace::WorkspaceSettings;

use super::sessions::SessionSettings;
use super::tasks::TaskSettings;

/// The policy compiled into the binary, used when no `--policy` is given.
pub const DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Format version of the document; only 1 exists.
    #[serde(default = "default_version")]
    pub version: u32,
    /// What the policy is for, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The action for a tool the document says nothing about.
    #[serde(default)]
    pub default: Action,
    /// Tools removed from the tool list and denied (`"*"`: all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hide: Vec<String>,
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
    #[serde(default)]
    pub workspace: WorkspaceSettings,
    /// Present: calls may open and continue sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionSettings>,
    /// Calls run as MCP tasks (on unless `enabled = false`).
    #[serde(default)]
    pub tasks: TaskSettings,
    /// MCP servers whose tools the code may call (`tools.<name>.<tool>(…)`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub upstreams: BTreeMap<String, UpstreamSpec>,
    /// The documents named by `upstreams.<name>.policy`, loaded (by [`Self::load`]).
    #[serde(skip)]
    pub upstream_policies: BTreeMap<String, Policy>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    Allow,
    Deny,
    RequireApproval,
}

/// `[tools.<name>]`: this server's tool is `execute_code`; rules for other tools are kept
/// (a gateway policy names them) but apply to no call.
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

/// `[all_tools]`: rules every tool call must pass (after the tool's own) and limits every
/// tool call counts against.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllTools {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleSpec>,
    #[serde(default)]
    pub limits: Vec<LimitSpec>,
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

    /// Loads a policy in the dialect its extension names: TOML, PolicyLayer JSON (`.json`) or
    /// Intercept YAML (`.yaml`, `.yml`).
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        Policy::load_with_notes(path).map(|(policy, _)| policy)
    }

    /// [`Self::load`], with what a person should know about the document: parts that apply to
    /// no call here, keys the dialect ignores ([`Self::notes`] and the translation's).
    pub fn load_with_notes(path: &Path) -> Result<(Policy, Vec<String>), PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let (mut policy, notes) = match extension {
            "json" => {
                let policy = Policy::from_policylayer(&text, &origin)?;
                let notes = policy.notes();
                (policy, notes)
            }
            "yaml" | "yml" => Policy::from_intercept(&text, &origin)?,
            _ => {
                let policy = Policy::parse(&text, &origin)?;
                let notes = policy.notes();
                (policy, notes)
            }
        };
        let base = path.parent().unwrap_or(Path::new("."));
        for (name, upstream) in &policy.upstreams {
            let Some(file) = &upstream.policy else {
                continue;
            };
            let own = Policy::load(&base.join(file)).map_err(|e| PolicyError::Invalid {
                origin: origin.clone(),
                message: format!("upstreams.{name}.policy: {e}"),
            })?;
            if !own.upstreams.is_empty() {
                return Err(PolicyError::Invalid {
                    origin: origin.clone(),
                    message: format!(
                        "upstreams.{name}.policy: an upstream's policy cannot name upstreams itself"
                    ),
                });
            }
            policy.upstream_policies.insert(name.clone(), own);
        }
        Ok((policy, notes))
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

    /// Checks what serde cannot: languages, rules, limits, hide.
    pub(super) fn validate(&self) -> Result<(), Issue> {
        self.limits.validate()?;
        for (i, name) in self.hide.iter().enumerate() {
            if name.trim().is_empty() {
                return Err(Issue::new(
                    &["hide", &i.to_string()],
                    format!("hide[{i}]: entry must not be empty"),
                ));
            }
        }
        for (name, tool) in &self.tools {
            if name != TOOL_NAME && tool.languages.is_some() {
                return Err(Issue::new(
                    &["tools", name, "languages"],
                    format!("[tools.{name}] languages: only `{TOOL_NAME}` takes a language"),
                ));
            }
            check_languages(
                &["tools", name],
                &format!("[tools.{name}]"),
                &tool.languages,
            )?;
            check_rules(&["tools", name], &tool.rules)?;
            check_limits(&["tools", name], &tool.limits)?;
        }
        check_rules(&["all_tools"], &self.all_tools.rules)?;
        check_limits(&["all_tools"], &self.all_tools.limits)?;
        self.network
            .validate()
            .map_err(|e| Issue::new(&["network", e.key], e.message))?;
        for (name, credential) in &self.credentials {
            credential.validate(name).map_err(|e| match e.key {
                Some(key) => Issue::new(&["credentials", name, key], e.message),
                None => Issue::new(&["credentials", name], e.message),
            })?;
        }
        if let Some((key, e)) = self.workspace.validate().into_iter().next() {
            return Err(Issue::new(&["workspace", key], format!("[workspace] {e}")));
        }
        if let Some(sessions) = &self.sessions {
            sessions.validate()?;
        }
        self.tasks.validate()?;
        for (name, upstream) in &self.upstreams {
            upstream.validate(name).map_err(|(key, message)| {
                let at = format!("[upstreams.{name}]");
                let path: &[&str] = if key.is_empty() {
                    &["upstreams", name]
                } else {
                    &["upstreams", name, key]
                };
                Issue::new(path, format!("{at} {message}"))
            })?;
            for credential in &upstream.credentials {
                match self.credentials.get(credential) {
                    Some(spec) if spec.inject.is_some() => {}
                    _ => {
                        return Err(Issue::new(
                            &["upstreams", name, "credentials"],
                            format!(
                                "[upstreams.{name}] credentials: \"{credential}\" must be a \
                                 credential of [credentials] with `inject`"
                            ),
                        ));
                    }
                }
            }
        }
        validate_grants(&self.grants, &self.limits, &self.credentials)
    }

    /// What a caller's arguments are checked against: `limits` (a grant's) plus what the
    /// policy's sections offer (a workspace, sessions).
    pub fn argument_limits(&self, limits: &Limits) -> crate::contract::ArgumentLimits {
        crate::contract::ArgumentLimits {
            max_files_bytes: if self.workspace.enabled {
                self.workspace.max_input_bytes.max(1)
            } else {
                0
            },
            sessions: self.sessions.is_some(),
            ..limits.argument_limits()
        }
    }

    /// `name` as a caller of this policy (its grant, if it has one).
    pub fn grant<'p>(&'p self, name: &'p str) -> Grant<'p> {
        Grant::new(self, name)
    }

    pub(super) fn tool(&self) -> Option<&ToolPolicy> {
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

/// Every name in a `languages` list (at `section`, shown as `shown`) is a contract name.
pub(super) fn check_languages(
    section: &[&str],
    shown: &str,
    languages: &Option<Vec<String>>,
) -> Result<(), Issue> {
    for (i, language) in languages.iter().flatten().enumerate() {
        if Language::from_contract_name(language).is_none() {
            let mut path = section.to_vec();
            let index = i.to_string();
            path.extend(["languages", index.as_str()]);
            return Err(Issue::new(
                &path,
                format!(
                    "{shown} languages: unknown language \"{language}\" (javascript, typescript, python)"
                ),
            ));
        }
    }
    Ok(())
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
        if let Some(path) = &l.increment_from
            && !is_gateway_path(path, true)
        {
            return Err(Issue::new(
                &at("increment_from"),
                format!("{shown} limits: increment_from must start with \"args.\", got \"{path}\""),
            ));
        }
    }
    Ok(())
}

fn check_rules(section: &[&str], rules: &[RuleSpec]) -> Result<(), Issue> {
    let shown = format!("[{}]", section.join("."));
    for (i, rule) in rules.iter().enumerate() {
        Rule::compile(rule).map_err(|e| {
            let index = i.to_string();
            let mut path = section.to_vec();
            path.extend(["rules", index.as_str()]);
            Issue::new(&path, format!("{shown} {e}"))
        })?;
    }
    Ok(())
}
