//! The arguments that reach beyond one run: `files` for the workspace, `session` and
//! `session_action` for code sessions. Parsed here, in the contract's words, for
//! [`parse_args`](super::parse_args).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::args::{ArgumentLimits, kind_of};

/// A file given to the code: text, or bytes in base64.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum FileInput {
    /// The file's text (UTF-8).
    Text(String),
    /// The file's bytes.
    Bytes(Base64File),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Base64File {
    /// Standard base64 (RFC 4648, with padding).
    pub base64: String,
}

impl FileInput {
    /// The file's bytes, or why the base64 is not.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        match self {
            FileInput::Text(text) => Ok(text.as_bytes().to_vec()),
            FileInput::Bytes(file) => base64::engine::general_purpose::STANDARD
                .decode(&file.base64)
                .map_err(|e| format!("is not valid base64 ({e})")),
        }
    }
}

/// What a call does to its session besides running the code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionAction {
    #[default]
    Continue,
    Reset,
    Close,
}

impl SessionAction {
    const NAMES: [&'static str; 3] = ["continue", "reset", "close"];
}

/// `files`: an object of path -> text or `{"base64": ...}`, within the size limit. The paths
/// themselves are the workspace's to check (when the files are written).
pub(super) fn parse_files(
    raw: Option<&Value>,
    limits: &ArgumentLimits,
) -> Result<Option<BTreeMap<String, FileInput>>, String> {
    let entries = match raw {
        None | Some(Value::Null) => return Ok(None),
        Some(_) if limits.max_files_bytes == 0 => {
            return Err("`files`: this server gives runs no workspace".into());
        }
        Some(Value::Object(entries)) => entries,
        Some(other) => {
            return Err(format!(
                "`files` must be an object of path -> text or {{\"base64\": ...}}, not {}",
                kind_of(other)
            ));
        }
    };
    let mut files = BTreeMap::new();
    let mut total: u64 = 0;
    for (path, value) in entries {
        let file: FileInput = serde_json::from_value(value.clone()).map_err(|_| {
            format!(
                "`files.{path}` must be a string (text) or {{\"base64\": \"...\"}}, not {}",
                kind_of(value)
            )
        })?;
        let size = file
            .bytes()
            .map_err(|e| format!("`files.{path}` {e}"))?
            .len();
        total = total.saturating_add(size as u64);
        if total > limits.max_files_bytes {
            return Err(format!(
                "`files` holds more than {} bytes; this server accepts at most that many",
                limits.max_files_bytes
            ));
        }
        files.insert(path.clone(), file);
    }
    Ok(Some(files))
}

/// `session` and `session_action`: offered only when the policy keeps sessions.
pub(super) fn parse_session(
    raw: &Map<String, Value>,
    limits: &ArgumentLimits,
) -> Result<(Option<String>, Option<SessionAction>), String> {
    let session = match raw.get("session") {
        None | Some(Value::Null) => None,
        Some(_) if !limits.sessions => {
            return Err(
                "`session`: this server does not keep sessions (its policy has no [sessions])"
                    .into(),
            );
        }
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Some(other) => {
            return Err(format!(
                "`session` must be \"new\" or the id a previous result gave, not {}",
                kind_of(other)
            ));
        }
    };
    let session_action = match raw.get("session_action") {
        None | Some(Value::Null) => None,
        Some(_) if session.is_none() => {
            return Err(
                "`session_action` needs `session` (the id of the session to act on)".into(),
            );
        }
        Some(Value::String(s)) => Some(match s.as_str() {
            "continue" => SessionAction::Continue,
            "reset" => SessionAction::Reset,
            "close" => SessionAction::Close,
            _ => {
                return Err(format!(
                    "`session_action` must be one of {}, not \"{s}\"",
                    SessionAction::NAMES.join(", ")
                ));
            }
        }),
        Some(other) => {
            return Err(format!(
                "`session_action` must be a string, not {}",
                kind_of(other)
            ));
        }
    };
    Ok((session, session_action))
}
