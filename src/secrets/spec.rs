//! `[credentials.<name>]` as a policy writes it: where the value lives (never the value), the
//! hosts it may go to, and the header it is injected into. The policy document embeds these
//! and turns an [`InvalidCredential`] into a located error.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::net::{AllowRule, headers};

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
    pub hosts: Vec<AllowRule>,
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

/// What is wrong with a credential's settings: the key at fault (`None`: the section) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidCredential {
    pub key: Option<&'static str>,
    pub message: String,
}

fn invalid(key: Option<&'static str>, message: String) -> InvalidCredential {
    InvalidCredential { key, message }
}

/// Environment variable names: letters, digits and `_`, not starting with a digit.
pub fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Credential names: lower-case letters, digits, `-` and single `_`, starting with a letter
/// or digit and not ending in `_`, so that a placeholder's end is never ambiguous.
fn is_credential_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && !name.ends_with('_')
        && !name.contains("__")
}

impl CredentialSpec {
    pub fn validate(&self, name: &str) -> Result<(), InvalidCredential> {
        let at = format!("[credentials.{name}]");
        if !is_credential_name(name) {
            return Err(invalid(
                None,
                format!(
                    "{at}: a credential name uses lower-case letters, digits, - and single _ \
                     (at most 64, starting with a letter or digit, not ending in _)"
                ),
            ));
        }
        match (&self.env, &self.file) {
            (Some(env), None) if !is_env_var_name(env) => {
                return Err(invalid(
                    Some("env"),
                    format!(
                        "{at}: \"{env}\" is not an environment variable name (letters, digits and _)"
                    ),
                ));
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(invalid(
                    None,
                    format!(
                        "{at}: give exactly one source, `env` or `file` (a policy never holds a secret value)"
                    ),
                ));
            }
        }
        if self.hosts.is_empty() {
            return Err(invalid(
                Some("hosts"),
                format!("{at}: `hosts` is empty; name where the credential may be sent"),
            ));
        }
        if let Some(inject) = &self.inject {
            let inject_error = |message: String| invalid(Some("inject"), message);
            if !headers::is_header_name(&inject.header) {
                return Err(inject_error(format!(
                    "{at} inject: \"{}\" is not a header name",
                    inject.header
                )));
            }
            if headers::is_host_controlled(&inject.header) {
                return Err(inject_error(format!(
                    "{at} inject: the host controls the {} header",
                    inject.header
                )));
            }
            if inject.value.matches(SECRET_MARK).count() != 1 {
                return Err(inject_error(format!(
                    "{at} inject: value must contain {SECRET_MARK} exactly once (got \"{}\")",
                    inject.value
                )));
            }
            if inject.value.chars().any(char::is_control) {
                return Err(inject_error(format!(
                    "{at} inject: value contains a control character"
                )));
            }
        }
        Ok(())
    }
}
