//! `[upstreams.<name>]`: an MCP server Warden connects to as a client, whose tools the code may
//! call. Either a command Warden starts (stdio) or a URL (Streamable HTTP).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One upstream server, as a policy writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    /// A program to start, speaking MCP on its stdin/stdout (its stderr is logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// The program's whole environment besides `PATH`: Warden's own is not passed on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// A Streamable HTTP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Credentials (of `[credentials]`) whose `inject` header goes on every request to `url`,
    /// each within its `hosts`; the code never sees them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<String>,
    /// Connect when the server starts (default: at the first use).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connect_at_start: bool,
    /// The longest one tool call may take (it always ends by the run's deadline too).
    #[serde(default = "default_call_timeout_ms")]
    pub call_timeout_ms: u64,
    /// The largest result (its JSON) the code gets back; a larger one is an error.
    #[serde(default = "default_max_result_bytes")]
    pub max_result_bytes: u64,
    /// A gateway policy written for this server (Warden TOML, PolicyLayer JSON or Intercept
    /// YAML, relative to the policy file): it decides this server's tools by their own names.
    /// Without one, Warden's policy decides them as `tools."<server>.<tool>"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
}

fn default_call_timeout_ms() -> u64 {
    30_000
}

fn default_max_result_bytes() -> u64 {
    1024 * 1024
}

/// How to reach the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint<'a> {
    Command {
        program: &'a str,
        args: &'a [String],
        env: &'a BTreeMap<String, String>,
    },
    Http {
        url: &'a str,
    },
}

impl UpstreamSpec {
    pub fn endpoint(&self) -> Option<Endpoint<'_>> {
        match (&self.command, &self.url) {
            (Some(program), None) => Some(Endpoint::Command {
                program,
                args: &self.args,
                env: &self.env,
            }),
            (None, Some(url)) => Some(Endpoint::Http { url }),
            _ => None,
        }
    }

    /// What is wrong with the section: the key at fault and why.
    pub fn validate(&self, name: &str) -> Result<(), (&'static str, String)> {
        if !is_server_name(name) {
            return Err((
                "",
                format!(
                    "upstream name \"{name}\" must be a lower-case identifier (a-z, 0-9, _; \
                     starting with a letter, at most 32 bytes): the code writes tools.{name}"
                ),
            ));
        }
        if RESERVED.contains(&name) {
            return Err((
                "",
                format!(
                    "upstream name \"{name}\" is taken: the code writes tools.{name}(…) for discovery"
                ),
            ));
        }
        match self.endpoint() {
            None => {
                return Err((
                    "command",
                    "an upstream has either `command` (stdio) or `url` (Streamable HTTP)".into(),
                ));
            }
            Some(Endpoint::Http { url }) => {
                let parsed = url::Url::parse(url).map_err(|e| ("url", format!("{url}: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(("url", format!("{url}: only http and https are supported")));
                }
                if !self.env.is_empty() || !self.args.is_empty() {
                    return Err(("env", "`args` and `env` are for a `command`".into()));
                }
            }
            Some(Endpoint::Command { program, .. }) => {
                if program.trim().is_empty() {
                    return Err(("command", "`command` is empty".into()));
                }
                if !self.credentials.is_empty() {
                    return Err((
                        "credentials",
                        "`credentials` are injected into HTTP requests: use them with `url`".into(),
                    ));
                }
            }
        }
        if self.call_timeout_ms == 0 || self.call_timeout_ms > 3_600_000 {
            return Err(("call_timeout_ms", "must be between 1 and 3600000".into()));
        }
        if self.max_result_bytes == 0 {
            return Err(("max_result_bytes", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// `tools.search(…)` and `tools.describe(…)` are discovery, never a server.
const RESERVED: [&str; 2] = ["search", "describe"];

/// Names the code writes as `tools.<name>` in JavaScript and Python alike.
pub fn is_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> UpstreamSpec {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn an_upstream_is_a_command_or_a_url_never_both() {
        assert!(spec("command = \"node\"").validate("everything").is_ok());
        assert!(
            spec("url = \"http://127.0.0.1:9/mcp\"")
                .validate("recorder")
                .is_ok()
        );
        let both = spec("command = \"node\"\nurl = \"http://127.0.0.1:9/mcp\"");
        assert_eq!(both.validate("x").unwrap_err().0, "command");
        assert_eq!(spec("").validate("x").unwrap_err().0, "command");
        assert_eq!(
            spec("url = \"file:///etc/passwd\"")
                .validate("x")
                .unwrap_err()
                .0,
            "url"
        );
        let creds_on_stdio = spec("command = \"node\"\ncredentials = [\"github\"]");
        assert_eq!(creds_on_stdio.validate("x").unwrap_err().0, "credentials");
    }

    #[test]
    fn server_names_are_identifiers_in_both_languages() {
        for good in ["github", "a1", "my_server"] {
            assert!(is_server_name(good), "{good}");
        }
        for bad in [
            "",
            "GitHub",
            "1a",
            "a-b",
            "a.b",
            "__proto__",
            "x".repeat(33).as_str(),
        ] {
            assert!(!is_server_name(bad), "{bad}");
        }
    }
}
