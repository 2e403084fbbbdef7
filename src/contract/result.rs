//! The tool contract's result (DESIGN.md, "The tool contract"): what every `execute_code`
//! call returns as `structuredContent`, whatever happened.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a call ended. Every status but `Ok` sets `isError: true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Error,
    Timeout,
    OutOfFuel,
    OutOfMemory,
    Denied,
    RateLimited,
    InvalidArguments,
    ApprovalDeclined,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Timeout => "timeout",
            Status::OutOfFuel => "out_of_fuel",
            Status::OutOfMemory => "out_of_memory",
            Status::Denied => "denied",
            Status::RateLimited => "rate_limited",
            Status::InvalidArguments => "invalid_arguments",
            Status::ApprovalDeclined => "approval_declined",
        }
    }

    pub const ALL: [Status; 9] = [
        Status::Ok,
        Status::Error,
        Status::Timeout,
        Status::OutOfFuel,
        Status::OutOfMemory,
        Status::Denied,
        Status::RateLimited,
        Status::InvalidArguments,
        Status::ApprovalDeclined,
    ];
}

/// The kinds of error the host itself reports. Anything else in `error.type` is the name of
/// the exception the program raised (`TypeError`, `ZeroDivisionError`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidArguments,
    Denied,
    RateLimited,
    ApprovalDeclined,
    Timeout,
    Cancelled,
    OutOfFuel,
    OutOfMemory,
    /// A stack overflow, named as JavaScript names it.
    RangeError,
    /// A TypeScript program the compiler rejects (or a JavaScript `import`).
    SyntaxError,
    Exit,
    GuestCrash,
    ResultTooLarge,
    ResultTooDeep,
    InternalError,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::InvalidArguments,
        ErrorKind::Denied,
        ErrorKind::RateLimited,
        ErrorKind::ApprovalDeclined,
        ErrorKind::Timeout,
        ErrorKind::Cancelled,
        ErrorKind::OutOfFuel,
        ErrorKind::OutOfMemory,
        ErrorKind::RangeError,
        ErrorKind::SyntaxError,
        ErrorKind::Exit,
        ErrorKind::GuestCrash,
        ErrorKind::ResultTooLarge,
        ErrorKind::ResultTooDeep,
        ErrorKind::InternalError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArguments => "InvalidArguments",
            ErrorKind::Denied => "Denied",
            ErrorKind::RateLimited => "RateLimited",
            ErrorKind::ApprovalDeclined => "ApprovalDeclined",
            ErrorKind::Timeout => "Timeout",
            ErrorKind::Cancelled => "Cancelled",
            ErrorKind::OutOfFuel => "OutOfFuel",
            ErrorKind::OutOfMemory => "OutOfMemory",
            ErrorKind::RangeError => "RangeError",
            ErrorKind::SyntaxError => "SyntaxError",
            ErrorKind::Exit => "Exit",
            ErrorKind::GuestCrash => "GuestCrash",
            ErrorKind::ResultTooLarge => "ResultTooLarge",
            ErrorKind::ResultTooDeep => "ResultTooDeep",
            ErrorKind::InternalError => "InternalError",
        }
    }
}

/// `error.type`: a kind the host reports, or the type of the exception the program raised.
/// A string on the wire either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorType {
    Host(ErrorKind),
    Guest(String),
}

impl ErrorType {
    pub fn as_str(&self) -> &str {
        match self {
            ErrorType::Host(kind) => kind.as_str(),
            ErrorType::Guest(name) => name,
        }
    }

    /// A host kind when the name is one, else the program's own type.
    pub fn from_name(name: &str) -> ErrorType {
        match ErrorKind::ALL.into_iter().find(|k| k.as_str() == name) {
            Some(kind) => ErrorType::Host(kind),
            None => ErrorType::Guest(name.to_string()),
        }
    }
}

impl From<ErrorKind> for ErrorType {
    fn from(kind: ErrorKind) -> ErrorType {
        ErrorType::Host(kind)
    }
}

impl PartialEq<&str> for ErrorType {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for ErrorType {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl std::fmt::Display for ErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(ErrorType::from_name(&name))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    #[serde(rename = "type")]
    pub kind: ErrorType,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

impl ErrorInfo {
    /// An error the host reports.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorInfo {
            kind: ErrorType::Host(kind),
            message: message.into(),
            traceback: None,
        }
    }

    /// An exception the program raised, by its type name.
    pub fn raised(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorInfo {
            kind: ErrorType::Guest(type_name.into()),
            message: message.into(),
            traceback: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncated {
    pub stdout: bool,
    pub stderr: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub wall_ms: u64,
    pub fuel: u64,
    pub memory_peak_bytes: u64,
    pub fetches: u32,
}

/// Why the policy stopped a call; present only on denials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDecision {
    pub rule: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// A file the run created or changed in its workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// As the code names it: `/workspace/...`.
    pub path: String,
    pub size: u64,
    pub media_type: String,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// Where `resources/read` finds it (files of a session, while the session lives).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The content, when it is returned in the result's content blocks (within the policy's
    /// `max_returned_bytes`); never part of `structuredContent`.
    #[serde(skip)]
    pub content: Option<std::sync::Arc<[u8]>>,
}

/// The session a call ran in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Pass it as `session` to continue.
    pub id: String,
    /// This call's number in the session (1 for the call that opened it).
    pub call: u64,
    /// The call ran in a new interpreter: the session's first call, or the first after a
    /// reset or a restart (nothing from earlier calls but the workspace was there).
    pub fresh: bool,
    /// The call ended in a trap (timeout, fuel, memory, exit, crash): the interpreter was
    /// restarted and its state is gone; the workspace is kept.
    pub restarted: bool,
    /// Seconds of idleness after which the session ends.
    pub idle_timeout_s: u64,
    /// Seconds until the session ends, used or not.
    pub expires_in_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResult {
    pub status: Status,
    pub stdout: String,
    pub stderr: String,
    pub truncated: Truncated,
    pub result: serde_json::Value,
    pub error: Option<ErrorInfo>,
    pub usage: Usage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyDecision>,
    /// Files the run created or changed in its workspace (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileInfo>,
    /// Present when the call ran in a session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Box<SessionInfo>>,
}

impl ExecutionResult {
    /// A call that ended before any code ran.
    pub fn without_run(status: Status, error: ErrorInfo) -> Self {
        ExecutionResult {
            status,
            stdout: String::new(),
            stderr: String::new(),
            truncated: Truncated::default(),
            result: serde_json::Value::Null,
            error: Some(error),
            usage: Usage::default(),
            policy: None,
            files: Vec::new(),
            session: None,
        }
    }

    /// A call whose arguments the contract rejects.
    pub fn invalid_arguments(message: impl Into<String>) -> Self {
        Self::without_run(
            Status::InvalidArguments,
            ErrorInfo::new(ErrorKind::InvalidArguments, message),
        )
    }

    /// A call the policy (or the server's load) stopped before it ran: the status with its
    /// `policy` part, and the reason as the error.
    pub fn stopped(status: Status, decision: PolicyDecision) -> Self {
        let kind = match status {
            Status::RateLimited => ErrorKind::RateLimited,
            Status::ApprovalDeclined => ErrorKind::ApprovalDeclined,
            _ => ErrorKind::Denied,
        };
        let mut result = Self::without_run(status, ErrorInfo::new(kind, decision.reason.clone()));
        result.policy = Some(decision);
        result
    }

    /// A failure of the server itself (logged; the caller sees the message).
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!("{message}");
        Self::without_run(
            Status::Error,
            ErrorInfo::new(ErrorKind::InternalError, message),
        )
    }

    pub fn is_error(&self) -> bool {
        self.status != Status::Ok
    }

    /// The one text block a model reads: stdout, then the result or the error.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        if !self.stdout.is_empty() {
            text.push_str(&self.stdout);
            if self.truncated.stdout {
                text.push_str("\n[stdout truncated]");
            }
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
        if !self.stderr.is_empty() {
            text.push_str("[stderr]\n");
            text.push_str(&self.stderr);
            if self.truncated.stderr {
                text.push_str("\n[stderr truncated]");
            }
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
        match (&self.error, self.status) {
            (None, Status::Ok) => {
                text.push_str("result: ");
                text.push_str(&self.result.to_string());
            }
            (error, status) => {
                text.push_str("status: ");
                text.push_str(status.as_str());
                if let Some(e) = error {
                    text.push_str(&format!("\n{}: {}", e.kind, e.message));
                    if let Some(tb) = &e.traceback {
                        text.push('\n');
                        text.push_str(tb);
                    }
                }
                if let Some(p) = &self.policy {
                    text.push_str(&format!("\npolicy rule {}: {}", p.rule, p.reason));
                    if let Some(ms) = p.retry_after_ms {
                        text.push_str(&format!(" (retry after {ms} ms)"));
                    }
                }
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialize_as_the_contract_spells_them() {
        for s in Status::ALL {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
    }

    #[test]
    fn result_has_the_contract_shape() {
        let r = ExecutionResult::without_run(
            Status::InvalidArguments,
            ErrorInfo::new(ErrorKind::InvalidArguments, "code: missing"),
        );
        let v = serde_json::to_value(&r).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "error",
                "result",
                "status",
                "stderr",
                "stdout",
                "truncated",
                "usage"
            ]
        );
        assert_eq!(v["error"]["type"], "InvalidArguments");
        assert!(v["error"].get("traceback").is_none());
        assert_eq!(v["usage"]["memory_peak_bytes"], 0);
        assert!(r.is_error());
    }

    #[test]
    fn text_block_shows_stdout_then_result() {
        let mut r =
            ExecutionResult::without_run(Status::Ok, ErrorInfo::new(ErrorKind::InternalError, "y"));
        r.error = None;
        r.stdout = "hello\n".into();
        r.result = serde_json::json!({"a": 1});
        assert_eq!(r.to_text(), "hello\nresult: {\"a\":1}");
    }

    #[test]
    fn text_block_shows_error_with_traceback() {
        let mut e = ErrorInfo::raised("TypeError", "x is not a function");
        e.traceback = Some("    at <eval> (main.js:1:1)".into());
        let r = ExecutionResult::without_run(Status::Error, e);
        let t = r.to_text();
        assert!(t.starts_with("status: error\nTypeError: x is not a function\n    at"));
    }
}
