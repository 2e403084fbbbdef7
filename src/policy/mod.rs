//! The policy document. For now it carries the `[limits]` table; the decision pipeline
//! (argument rules, actions, rate limits) lands with the policy issue and extends this module
//! without changing the `[limits]` keys.
//!
//! Unknown keys are errors, and every error names the file, line and column.

mod limits;

pub use limits::Limits;

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The policy compiled into the binary, used when no `--policy` is given.
pub const DEFAULT_POLICY: &str = include_str!("../../policies/default.toml");

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Format version of the document; only 1 exists.
    #[serde(default = "default_version")]
    pub version: u32,
    #[serde(default)]
    pub limits: Limits,
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

    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::parse(&text, &path.display().to_string())
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
        policy
            .limits
            .validate()
            .map_err(|message| PolicyError::Invalid {
                origin: origin.to_string(),
                message,
            })?;
        Ok(policy)
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

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let e = Policy::load(Path::new("/nonexistent/warden.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/warden.toml"));
    }
}
