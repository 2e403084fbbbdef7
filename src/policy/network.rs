//! `[network]`, `[credentials]` and `[grants]`: parsed and validated here; the fetch path
//! (`crate::net`, `crate::secrets`) and the HTTP transport use them.
//!
//! A policy never holds a secret value: credentials and grant tokens name where the value
//! lives (an environment variable or a file), or, for grant tokens, its SHA-256.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Issue, Limits};
use crate::net::{AllowList, AllowRule};

/// One allowlist rule as written in a policy: the rule string, or
/// `{ url = "...", methods = [...] }`. Parsed while the document is read, so that a bad rule
/// is reported at its line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule(pub AllowRule);

impl<'de> Deserialize<'de> for HostRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RuleVisitor;

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            url: String,
            methods: Option<Vec<String>>,
        }

        impl<'de> Visitor<'de> for RuleVisitor {
            type Value = HostRule;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rule such as \"https://api.example.com\" or { url = \"...\", methods = [\"GET\"] }")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<HostRule, E> {
                AllowRule::parse(text, None)
                    .map(HostRule)
                    .map_err(E::custom)
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<HostRule, M::Error> {
                let table = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                AllowRule::parse(&table.url, table.methods.as_deref())
                    .map(HostRule)
                    .map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(RuleVisitor)
    }
}

impl Serialize for HostRule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.methods() {
            None => serializer.collect_str(&self.0),
            Some(methods) => {
                #[derive(Serialize)]
                struct Table<'a> {
                    url: String,
                    methods: &'a [String],
                }
                Table {
                    url: self.0.to_string(),
                    methods,
                }
                .serialize(serializer)
            }
        }
    }
}

/// Builds the allowlist a list of policy rules describes.
pub fn allow_list(rules: &[HostRule]) -> AllowList {
    AllowList::new(rules.iter().map(|r| r.0.clone()).collect())
}

/// `[network]`: where `fetch` may go, and the caps on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkPolicy {
    /// No rule, no request.
    pub allow: Vec<HostRule>,
    /// Fetches one run may make (each redirect hop counts).
    pub max_fetches: u32,
    /// Largest request body a guest may send.
    pub max_request_bytes: u64,
    /// Largest response body a guest may receive; a larger one is refused, not cut.
    pub max_response_bytes: u64,
    /// Per request, also bounded by the run's remaining time.
    pub fetch_timeout_ms: u64,
    /// Redirects followed (hop by hop, each re-checked) before the fetch fails.
    pub max_redirects: u32,
}

impl Default for NetworkPolicy {
    fn default() -> Self {
        NetworkPolicy {
            allow: Vec::new(),
            max_fetches: 50,
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 8 * 1024 * 1024,
            fetch_timeout_ms: 10_000,
            max_redirects: 5,
        }
    }
}

impl NetworkPolicy {
    fn validate(&self) -> Result<(), Issue> {
        const MIB: u64 = 1024 * 1024;
        let bounds = [
            ("max_fetches", u64::from(self.max_fetches), 10_000, "10000"),
            (
                "max_request_bytes",
                self.max_request_bytes,
                256 * MIB,
                "256 MiB",
            ),
            (
                "max_response_bytes",
                self.max_response_bytes,
                256 * MIB,
                "256 MiB",
            ),
            (
                "fetch_timeout_ms",
                self.fetch_timeout_ms,
                3_600_000,
                "1 hour",
            ),
            ("max_redirects", u64::from(self.max_redirects), 20, "20"),
        ];
        for (name, value, max, max_text) in bounds {
            if value > max {
                return Err(Issue::new(
                    &["network", name],
                    format!("[network] {name} may not exceed {max_text} (got {value})"),
                ));
            }
        }
        if self.fetch_timeout_ms == 0 {
            return Err(Issue::new(
                &["network", "fetch_timeout_ms"],
                "[network] fetch_timeout_ms must be greater than 0",
            ));
        }
        Ok(())
    }
}

/// `[credentials.<name>]`: a secret the server holds and uses on the guest's behalf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSpec {
    /// The environment variable holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file holding the value (trailing newlines are dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Where the credential may be sent (allowlist rule syntax). A request elsewhere that
    /// carries its placeholder is refused.
    pub hosts: Vec<HostRule>,
    /// Set a header on every request to `hosts`; without it, the credential is used only where
    /// the code writes its placeholder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inject: Option<Injection>,
}

/// `inject = { header = "Authorization", value = "Bearer {secret}" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Injection {
    pub header: String,
    /// `{secret}` stands for the value.
    #[serde(default = "secret_alone")]
    pub value: String,
}

fn secret_alone() -> String {
    SECRET_MARK.to_string()
}

/// Where the value goes in an injection template.
pub const SECRET_MARK: &str = "{secret}";

/// Headers the host owns: a credential cannot be injected into them, and the guest cannot set
/// them. Besides framing and hop-by-hop headers: content negotiation and ranges (a compressed
/// or partial echo of a secret would slip past redaction), and the forwarding headers some
/// services trust to say who the client is.
pub const HOST_CONTROLLED_HEADERS: [&str; 19] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-connection",
    "accept-encoding",
    "range",
    "if-range",
    "expect",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// The placeholder code writes to use credential `name`. Only unreserved URL characters, so
/// that it survives URL and form encoding, f-strings and template literals unchanged.
pub fn placeholder(name: &str) -> String {
    format!("__WARDEN_SECRET_{name}__")
}

/// Credential names: lower-case letters, digits, `-` and single `_`, starting with a letter
/// or digit and not ending in `_`, so that a placeholder's end is never ambiguous.
fn check_credential_name(name: &str) -> Result<(), Issue> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && !name.ends_with('_')
        && !name.contains("__");
    if ok {
        Ok(())
    } else {
        Err(Issue::new(
            &["credentials", name],
            format!(
                "[credentials.{name}]: a credential name uses lower-case letters, digits, - and single _ \
                 (at most 64, starting with a letter or digit, not ending in _)"
            ),
        ))
    }
}

fn check_env_name(path: &[&str], at: &str, name: &str) -> Result<(), Issue> {
    let ok = !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Issue::new(
            path,
            format!("{at}: \"{name}\" is not an environment variable name (letters, digits and _)"),
        ))
    }
}

impl CredentialSpec {
    fn validate(&self, name: &str) -> Result<(), Issue> {
        check_credential_name(name)?;
        let at = format!("[credentials.{name}]");
        let section = ["credentials", name];
        let key = |key: &'static str| ["credentials", name, key];
        match (&self.env, &self.file) {
            (Some(env), None) => check_env_name(&key("env"), &at, env)?,
            (None, Some(_)) => {}
            _ => {
                return Err(Issue::new(
                    &section,
                    format!(
                        "{at}: give exactly one source, `env` or `file` (a policy never holds a secret value)"
                    ),
                ));
            }
        }
        if self.hosts.is_empty() {
            return Err(Issue::new(
                &key("hosts"),
                format!("{at}: `hosts` is empty; name where the credential may be sent"),
            ));
        }
        if let Some(inject) = &self.inject {
            let header = inject.header.to_ascii_lowercase();
            let token = !header.is_empty()
                && header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            let inject_at = key("inject");
            if !token {
                return Err(Issue::new(
                    &inject_at,
                    format!("{at} inject: \"{}\" is not a header name", inject.header),
                ));
            }
            if HOST_CONTROLLED_HEADERS.contains(&header.as_str()) {
                return Err(Issue::new(
                    &inject_at,
                    format!(
                        "{at} inject: the host controls the {} header",
                        inject.header
                    ),
                ));
            }
            if inject.value.matches(SECRET_MARK).count() != 1 {
                return Err(Issue::new(
                    &inject_at,
                    format!(
                        "{at} inject: value must contain {SECRET_MARK} exactly once (got \"{}\")",
                        inject.value
                    ),
                ));
            }
            if inject.value.chars().any(char::is_control) {
                return Err(Issue::new(
                    &inject_at,
                    format!("{at} inject: value contains a control character"),
                ));
            }
        }
        Ok(())
    }
}

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
    pub hosts: Option<Vec<HostRule>>,
    /// Runs of this grant at once (beyond that, calls get `rate_limited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_runs: Option<u32>,
    /// Lower per-run limits for this grant.
    #[serde(default, skip_serializing_if = "LimitsOverride::is_empty")]
    pub limits: LimitsOverride,
}

/// The name of the caller on stdio and the command line.
pub const LOCAL_GRANT: &str = "local";

/// The per-run limits a grant may lower. (The wasm stack and concurrency are engine-wide.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_code_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_input_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_result_bytes: Option<u64>,
}

impl LimitsOverride {
    pub fn is_empty(&self) -> bool {
        self == &LimitsOverride::default()
    }

    fn fields_mut<'a>(
        &self,
        limits: &'a mut Limits,
    ) -> [(&'static str, Option<u64>, &'a mut u64); 9] {
        [
            (
                "default_timeout_ms",
                self.default_timeout_ms,
                &mut limits.default_timeout_ms,
            ),
            (
                "max_timeout_ms",
                self.max_timeout_ms,
                &mut limits.max_timeout_ms,
            ),
            ("fuel", self.fuel, &mut limits.fuel),
            ("memory_bytes", self.memory_bytes, &mut limits.memory_bytes),
            ("stdout_bytes", self.stdout_bytes, &mut limits.stdout_bytes),
            ("stderr_bytes", self.stderr_bytes, &mut limits.stderr_bytes),
            (
                "max_code_bytes",
                self.max_code_bytes,
                &mut limits.max_code_bytes,
            ),
            (
                "max_input_bytes",
                self.max_input_bytes,
                &mut limits.max_input_bytes,
            ),
            (
                "max_result_bytes",
                self.max_result_bytes,
                &mut limits.max_result_bytes,
            ),
        ]
    }

    /// `base` with this grant's lower values in place (a value above the base never widens it).
    pub fn narrow(&self, base: &Limits) -> Limits {
        let mut limits = base.clone();
        for (_, value, field) in self.fields_mut(&mut limits) {
            if let Some(v) = value {
                *field = (*field).min(v);
            }
        }
        limits
    }

    fn validate(&self, grant: &str, at: &str, base: &Limits) -> Result<(), Issue> {
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

impl GrantSpec {
    fn validate(
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
        if let Some(env) = &self.token_env {
            check_env_name(&key("token_env"), &at, env)?;
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
        for (i, language) in self.languages.iter().flatten().enumerate() {
            if crate::runtimes::Language::from_contract_name(language).is_none() {
                return Err(Issue::new(
                    &["grants", name, "languages", &i.to_string()],
                    format!(
                        "{at} languages: unknown language \"{language}\" (javascript, typescript, python)"
                    ),
                ));
            }
        }
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

/// Checks the three sections against each other and the rest of the policy.
pub(super) fn validate_sections(
    network: &NetworkPolicy,
    credentials: &BTreeMap<String, CredentialSpec>,
    grants: &BTreeMap<String, GrantSpec>,
    limits: &Limits,
) -> Result<(), Issue> {
    network.validate()?;
    for (name, credential) in credentials {
        credential.validate(name)?;
    }
    for (name, grant) in grants {
        grant.validate(name, limits, credentials)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Policy;
    use super::*;

    const GOOD: &str = r#"
[network]
allow = [
  "https://api.github.com",
  { url = "https://api.example.com/v1/", methods = ["GET", "post"] },
  "http://127.0.0.1:8000-8100",
]
max_fetches = 10

[credentials.github]
env = "GITHUB_TOKEN"
hosts = ["https://api.github.com"]
inject = { header = "Authorization", value = "Bearer {secret}" }

[credentials.example-key]
file = "/run/secrets/example"
hosts = ["https://api.example.com"]

[grants.ci]
token_env = "WARDEN_TOKEN_CI"
languages = ["typescript"]
credentials = ["github"]
hosts = ["https://api.github.com"]
max_concurrent_runs = 2
limits = { fuel = 1000000, default_timeout_ms = 1000 }

[grants.bot]
token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

[grants.local]
languages = ["javascript"]
"#;

    #[test]
    fn a_full_document_parses_and_round_trips() {
        let p = Policy::parse(GOOD, "p.toml").unwrap();
        assert_eq!(p.network.allow.len(), 3);
        assert_eq!(p.network.max_fetches, 10);
        assert_eq!(p.network.max_redirects, 5, "defaults fill the rest");
        assert_eq!(
            p.network.allow[1].0.methods(),
            Some(&["GET".to_string(), "POST".to_string()][..])
        );
        let github = &p.credentials["github"];
        assert_eq!(github.env.as_deref(), Some("GITHUB_TOKEN"));
        assert_eq!(github.inject.as_ref().unwrap().value, "Bearer {secret}");
        assert_eq!(p.credentials["example-key"].inject, None);
        let ci = &p.grants["ci"];
        assert_eq!(ci.limits.fuel, Some(1_000_000));
        let narrowed = ci.limits.narrow(&p.limits);
        assert_eq!(narrowed.fuel, 1_000_000);
        assert_eq!(narrowed.memory_bytes, p.limits.memory_bytes);
        let normalized = p.to_normalized_toml().unwrap();
        assert_eq!(Policy::parse(&normalized, "n").unwrap(), p, "{normalized}");
    }

    #[test]
    fn the_redacted_form_hides_token_hashes_and_names_sources() {
        let p = Policy::parse(GOOD, "p.toml").unwrap();
        let shown = p.to_redacted_toml().unwrap();
        assert!(!shown.contains("9f86d081"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert!(shown.contains("GITHUB_TOKEN"));
        assert!(shown.contains("/run/secrets/example"));
    }

    #[test]
    fn placeholders_are_unreserved_url_characters() {
        let p = placeholder("github");
        assert_eq!(p, "__WARDEN_SECRET_github__");
        assert!(
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        );
    }

    #[test]
    fn bad_sections_say_where_and_what() {
        let cases = [
            // Rule grammar errors are reported at the rule.
            (
                "[network]\nallow = [\"ftp://x.example\"]\n",
                "line 2, column 10",
            ),
            (
                "[network]\nallow = [\"ftp://x.example\"]\n",
                "scheme \"ftp\" is not supported",
            ),
            (
                "[network]\nallow = [{ url = \"https://x.example\", verbs = [\"GET\"] }]\n",
                "unknown field `verbs`",
            ),
            (
                "[network]\nallow = [{ url = \"https://x.example\", methods = [] }]\n",
                "`methods` is empty",
            ),
            ("[network]\nallow = [3]\n", "a rule such as"),
            (
                "[network]\nmax_redirects = 50\n",
                "max_redirects may not exceed 20",
            ),
            ("[network]\nfetch_timeout_ms = 0\n", "greater than 0"),
            ("[network]\nproxy = \"x\"\n", "unknown field `proxy`"),
            (
                "[credentials.gh]\nhosts = [\"https://a.example\"]\n",
                "exactly one source",
            ),
            (
                "[credentials.gh]\nenv = \"A\"\nfile = \"/f\"\nhosts = [\"https://a.example\"]\n",
                "exactly one source",
            ),
            (
                "[credentials.gh]\nvalue = \"hunter2\"\nhosts = []\n",
                "unknown field `value`",
            ),
            (
                "[credentials.gh]\nenv = \"GH TOKEN\"\nhosts = [\"https://a.example\"]\n",
                "not an environment variable name",
            ),
            (
                "[credentials.gh]\nenv = \"A\"\nhosts = []\n",
                "`hosts` is empty",
            ),
            (
                "[credentials.GitHub]\nenv = \"A\"\nhosts = [\"https://a.example\"]\n",
                "a credential name uses",
            ),
            (
                "[credentials.a__b]\nenv = \"A\"\nhosts = [\"https://a.example\"]\n",
                "a credential name uses",
            ),
            (
                "[credentials.gh]\nenv = \"A\"\nhosts = [\"https://a.example\"]\ninject = { header = \"Host\" }\n",
                "the host controls the Host header",
            ),
            (
                "[credentials.gh]\nenv = \"A\"\nhosts = [\"https://a.example\"]\ninject = { header = \"Auth orization\" }\n",
                "is not a header name",
            ),
            (
                "[credentials.gh]\nenv = \"A\"\nhosts = [\"https://a.example\"]\ninject = { header = \"X-Key\", value = \"Bearer\" }\n",
                "exactly once",
            ),
            (
                "[credentials.gh]\nenv = \"A\"\nhosts = [\"https://a.example\"]\ninject = { header = \"X-Key\", value = \"{secret}\\r\\nX: {secret}\" }\n",
                "exactly once",
            ),
            (
                "[credentials.gh]\nenv = \"A\"\nhosts = [\"https://a.example\"]\ninject = { header = \"X-Key\", value = \"{secret}\\r\\n\" }\n",
                "control character",
            ),
            (
                "[grants.ci]\nlanguages = [\"javascript\"]\n",
                "exactly one of token_env",
            ),
            (
                "[grants.ci]\ntoken_env = \"A\"\ntoken_sha256 = \"00\"\n",
                "exactly one of token_env",
            ),
            (
                "[grants.ci]\ntoken_sha256 = \"abc\"\n",
                "64 hexadecimal digits",
            ),
            ("[grants.ci]\ntoken = \"s3cret\"\n", "unknown field `token`"),
            (
                "[grants.ci]\ntoken_env = \"A\"\nlanguages = [\"ruby\"]\n",
                "unknown language \"ruby\"",
            ),
            (
                "[grants.ci]\ntoken_env = \"A\"\ncredentials = [\"nope\"]\n",
                "no credential named \"nope\"",
            ),
            (
                "[grants.ci]\ntoken_env = \"A\"\nlimits = { fuel = 99999999999999 }\n",
                "a grant can only narrow",
            ),
            (
                "[grants.ci]\ntoken_env = \"A\"\nlimits = { wasm_stack_bytes = 1 }\n",
                "unknown field `wasm_stack_bytes`",
            ),
            (
                "[grants.ci]\ntoken_env = \"A\"\nlimits = { fuel = 0 }\n",
                "greater than 0",
            ),
            (
                "[grants.ci]\ntoken_env = \"A\"\nmax_concurrent_runs = 0\n",
                "greater than 0",
            ),
            (
                "[grants.ci]\ntoken_env = \"A\"\nhosts = [\"https://*.*\"]\n",
                "`*` may only be",
            ),
            ("[grants.local]\ntoken_env = \"A\"\n", "has no token"),
            ("[grants.\"a b\"]\ntoken_env = \"A\"\n", "a grant name uses"),
        ];
        for (doc, needle) in cases {
            let e = Policy::parse(doc, "p.toml").unwrap_err().to_string();
            assert!(e.contains(needle), "{doc:?}: {e}");
            assert!(e.contains("p.toml"), "{e}");
        }
    }
}
