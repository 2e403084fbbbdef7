//! `[grants.<name>]`: authenticated callers and what each may do. A grant narrows the policy;
//! it never widens it. [`Grant`] is a caller as a decision sees it: the policy, narrowed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::document::check_languages;
use super::{Issue, Limits, LimitsOverride, Policy};
use crate::contract::Language;
use crate::net::{AllowList, AllowRule};
use crate::secrets::{CredentialSpec, is_env_var_name};

/// The name of the caller on stdio and the command line.
pub const LOCAL_GRANT: &str = "local";

/// `[grants.<name>]`: an authenticated caller (HTTP bearer token) and what it may do. A grant
/// narrows the policy; it never widens it. `[grants.local]` (no token) narrows the stdio and
/// command-line caller.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// The environment variable holding the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// A file holding the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// The SHA-256 of the token (hex), so the policy need not point at the token at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// Languages this grant may use (within the tool's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub languages: Option<Vec<String>>,
    /// Credentials this grant may use (default: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<String>>,
    /// Hosts this grant may fetch from: a request must pass both `[network] allow` and these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<AllowRule>>,
    /// Upstream tools this grant may call, as `server.tool` or `server.*` (default: every
    /// tool the policy allows). Others do not exist for it: not listed, not callable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Runs of this grant at once (beyond that, calls get `rate_limited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs: Option<u32>,
    /// Lower per-run limits for this grant.
    #[serde(default, skip_serializing_if = "LimitsOverride::is_empty")]
    pub limits: LimitsOverride,
}

impl GrantSpec {
    pub(super) fn validate(
        &self,
        name: &str,
        limits: &Limits,
        credentials: &BTreeMap<String, CredentialSpec>,
    ) -> Result<(), Issue> {
        let at = format!("[grants.{name}]");
        let section = ["grants", name];
        let key = |key: &'static str| ["grants", name, key];
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !name_ok {
            return Err(Issue::new(
                &section,
                format!("{at}: a grant name uses letters, digits, -, _ and . (at most 64)"),
            ));
        }
        let sources = [
            self.token_env.is_some(),
            self.token_file.is_some(),
            self.token_sha256.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if name == LOCAL_GRANT {
            if sources != 0 {
                return Err(Issue::new(
                    &section,
                    format!("{at}: the local caller (stdio, command line) has no token"),
                ));
            }
        } else if sources != 1 {
            return Err(Issue::new(
                &section,
                format!("{at}: give exactly one of token_env, token_file, token_sha256"),
            ));
        }
        if let Some(env) = &self.token_env
            && !is_env_var_name(env)
        {
            return Err(Issue::new(
                &key("token_env"),
                format!(
                    "{at}: \"{env}\" is not an environment variable name (letters, digits and _)"
                ),
            ));
        }
        if let Some(hash) = &self.token_sha256 {
            let hex = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex {
                return Err(Issue::new(
                    &key("token_sha256"),
                    format!(
                        "{at}: token_sha256 must be 64 hexadecimal digits (sha256sum of the token)"
                    ),
                ));
            }
        }
        check_languages(&["grants", name], &at, &self.languages)?;
        for (i, credential) in self.credentials.iter().flatten().enumerate() {
            if !credentials.contains_key(credential) {
                return Err(Issue::new(
                    &["grants", name, "credentials", &i.to_string()],
                    format!(
                        "{at} credentials: no credential named \"{credential}\" in [credentials]"
                    ),
                ));
            }
        }
        if self.max_concurrent_runs == Some(0) {
            return Err(Issue::new(
                &key("max_concurrent_runs"),
                format!("{at}: max_concurrent_runs must be greater than 0"),
            ));
        }
        self.limits.validate(name, &at, limits)
    }
}

/// A caller as the policy sees it: the policy's limits, languages, hosts and credentials,
/// narrowed by the caller's grant (if the policy has one of that name).
#[derive(Debug, Clone, Copy)]
pub struct Grant<'p> {
    name: &'p str,
    spec: Option<&'p GrantSpec>,
    policy: &'p Policy,
}

impl<'p> Grant<'p> {
    pub(super) fn new(policy: &'p Policy, name: &'p str) -> Grant<'p> {
        Grant {
            name,
            spec: policy.grants.get(name),
            policy,
        }
    }

    pub fn name(&self) -> &'p str {
        self.name
    }

    /// The policy's limits, lowered where the grant says so.
    pub fn limits(&self) -> Limits {
        match self.spec {
            Some(spec) => spec.limits.narrow(&self.policy.limits),
            None => self.policy.limits.clone(),
        }
    }

    /// The limits of this caller's runs started as tasks: `[tasks]` wall clock and fuel in
    /// place of `[limits]`', then lowered where the grant says so (a grant only narrows).
    pub fn task_limits(&self) -> Limits {
        let base = self.policy.tasks.run_limits(&self.policy.limits);
        match self.spec {
            Some(spec) => spec.limits.narrow(&base),
            None => base,
        }
    }

    /// The languages this caller may use, out of `available`: the tool's, narrowed by the
    /// grant.
    pub fn languages(&self, available: &[Language]) -> Vec<Language> {
        let tool = self.policy.tool().and_then(|t| t.languages.as_ref());
        let grant = self.granted_languages();
        available
            .iter()
            .copied()
            .filter(|l| tool.is_none_or(|allowed| allowed.iter().any(|a| a == l.as_str())))
            .filter(|l| grant.is_none_or(|allowed| allowed.iter().any(|a| a == l.as_str())))
            .collect()
    }

    /// The grant's own language list, if it has one.
    pub fn granted_languages(&self) -> Option<&'p [String]> {
        self.spec.and_then(|g| g.languages.as_deref())
    }

    /// The grant's own allowlist (a request must pass the policy's and this one).
    pub fn hosts(&self) -> Option<&'p [AllowRule]> {
        self.spec.and_then(|g| g.hosts.as_deref())
    }

    pub fn host_list(&self) -> Option<AllowList> {
        self.hosts().map(|rules| AllowList::new(rules.to_vec()))
    }

    /// The credentials the grant may use (`None`: all of them).
    pub fn credentials(&self) -> Option<&'p [String]> {
        self.spec.and_then(|g| g.credentials.as_deref())
    }

    /// Whether the grant lets the code reach `server`'s `tool` at all.
    pub fn may_use_tool(&self, server: &str, tool: &str) -> bool {
        self.spec
            .and_then(|g| g.tools.as_deref())
            .is_none_or(|patterns| {
                patterns.iter().any(|p| match p.strip_suffix(".*") {
                    Some(only) => only == server,
                    None => p.split_once('.') == Some((server, tool)),
                })
            })
    }

    /// Runs of this caller at once.
    pub fn max_concurrent_runs(&self) -> Option<u32> {
        self.spec.and_then(|g| g.max_concurrent_runs)
    }
}

/// Checks credentials and grants against each other and the policy's limits.
pub(super) fn validate_grants(
    grants: &BTreeMap<String, GrantSpec>,
    limits: &Limits,
    credentials: &BTreeMap<String, CredentialSpec>,
) -> Result<(), Issue> {
    for (name, grant) in grants {
        grant.validate(name, limits, credentials)?;
    }
    Ok(())
}
