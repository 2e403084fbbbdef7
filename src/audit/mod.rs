//! The audit log: one JSON line per decision and per run, to a file (appended, created 0600)
//! or to stderr. Events name the code by its SHA-256 and size; the code itself only with
//! `audit.include_code = true`. No secret values are ever passed here.

mod tool_call;

pub use tool_call::ToolCallEvent;

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::contract::{TOOL_NAME, Usage};

/// `[audit]`: where decision and run events go (JSON lines).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// A file to append to; without it, events go to stderr.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<std::path::PathBuf>,
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

pub struct AuditLog {
    sink: Mutex<Box<dyn Write + Send>>,
    include_code: bool,
    fail_closed: bool,
}

/// The code fields of an event (see [`AuditLog::code_fields`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeFields {
    pub sha256: String,
    pub bytes: usize,
    pub code: Option<String>,
}

/// What happened to one call, at one step.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent<'a> {
    pub time: String,
    /// `decision` (the policy's answer) or `run` (the run's outcome).
    pub event: &'static str,
    pub request_id: &'a str,
    pub grant: &'a str,
    pub session: &'a str,
    pub tool: &'static str,
    pub language: Option<&'a str>,
    pub code_sha256: Option<String>,
    pub code_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `allow`, `deny`, `rate_limited`, `approval_declined`, `invalid_arguments`; for runs, the
    /// status.
    pub decision: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl AuditLog {
    /// Opens the sink the settings name: the file (append) or stderr.
    pub fn open(settings: &AuditSettings) -> std::io::Result<AuditLog> {
        let sink: Box<dyn Write + Send> = match &settings.path {
            Some(path) => {
                use std::os::unix::fs::OpenOptionsExt;
                Box::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o600)
                        .open(path)?,
                )
            }
            None => Box::new(std::io::stderr()),
        };
        Ok(Self::to_writer(sink, settings))
    }

    pub fn to_writer(sink: Box<dyn Write + Send>, settings: &AuditSettings) -> AuditLog {
        AuditLog {
            sink: Mutex::new(sink),
            include_code: settings.include_code,
            fail_closed: settings.fail_closed,
        }
    }

    /// Whether a call must be denied when its decision cannot be recorded.
    pub fn fail_closed(&self) -> bool {
        self.fail_closed
    }

    /// What events say about `code`: its SHA-256 and size, and the code itself only if the
    /// settings include it.
    pub fn code_fields(&self, code: &str) -> CodeFields {
        CodeFields {
            sha256: hex(&Sha256::digest(code.as_bytes())),
            bytes: code.len(),
            code: self.include_code.then(|| code.to_string()),
        }
    }

    /// Writes one event as a line; an error means the event is lost.
    pub fn record<E: Serialize>(&self, event: &E) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        let mut sink = self
            .sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        sink.write_all(&line)?;
        sink.flush()
    }
}

/// One request a guest's `fetch` made (each redirect hop is one), or tried to make. The target
/// is `scheme://host:port/path` as the guest wrote it (placeholders, never values); queries and
/// bodies are not logged.
#[derive(Debug, Clone, Serialize)]
pub struct FetchEvent<'a> {
    pub time: String,
    pub event: &'static str,
    pub request_id: &'a str,
    pub grant: &'a str,
    pub session: &'a str,
    pub method: &'a str,
    pub target: String,
    /// `allow` (sent), `refused` (by policy, nothing sent) or `failed` (sent, no response).
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub request_bytes: usize,
    pub response_bytes: usize,
    /// Names of the credentials the request carried.
    pub credentials: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An HTTP request refused before the MCP layer: no token, or a token of no grant. The token
/// itself is never recorded.
#[derive(Debug, Clone, Serialize)]
pub struct AuthEvent<'a> {
    pub time: String,
    pub event: &'static str,
    pub decision: &'static str,
    pub reason: &'a str,
    pub path: &'a str,
}

impl<'a> AuthEvent<'a> {
    pub fn denied(reason: &'a str, path: &'a str) -> Self {
        AuthEvent {
            time: rfc3339_now(),
            event: "auth",
            decision: "deny",
            reason,
            path,
        }
    }
}

/// A session's life: `open`, `reset`, `restart` (a call trapped), `close`, `expire`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionEvent<'a> {
    pub time: String,
    pub event: &'static str,
    pub action: &'static str,
    /// The code session's id.
    pub id: &'a str,
    pub grant: &'a str,
    /// The MCP session it was opened from.
    pub session: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

impl<'a> SessionEvent<'a> {
    pub fn new(action: &'static str, id: &'a str, grant: &'a str, session: &'a str) -> Self {
        SessionEvent {
            time: rfc3339_now(),
            event: "code_session",
            action,
            id,
            grant,
            session,
            request_id: None,
            reason: None,
        }
    }
}

impl<'a> FetchEvent<'a> {
    pub fn new(request_id: &'a str, grant: &'a str, session: &'a str, method: &'a str) -> Self {
        FetchEvent {
            time: rfc3339_now(),
            event: "fetch",
            request_id,
            grant,
            session,
            method,
            target: String::new(),
            decision: "refused",
            status: None,
            request_bytes: 0,
            response_bytes: 0,
            credentials: &[],
            reason: None,
        }
    }
}

impl<'a> AuditEvent<'a> {
    pub fn new(event: &'static str, request_id: &'a str, grant: &'a str, session: &'a str) -> Self {
        AuditEvent::at(rfc3339_now(), event, request_id, grant, session)
    }

    /// Fills in the code fields.
    pub fn describe(&mut self, code: &CodeFields) {
        self.code_sha256 = Some(code.sha256.clone());
        self.code_bytes = Some(code.bytes);
        self.code = code.code.clone();
    }

    /// An event stamped with `time` (the steps of one call share the time it arrived).
    pub fn at(
        time: String,
        event: &'static str,
        request_id: &'a str,
        grant: &'a str,
        session: &'a str,
    ) -> Self {
        AuditEvent {
            time,
            event,
            request_id,
            grant,
            session,
            tool: TOOL_NAME,
            language: None,
            code_sha256: None,
            code_bytes: None,
            code: None,
            decision: "allow",
            rule: None,
            reason: None,
            status: None,
            usage: None,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The current UTC time as RFC 3339 with milliseconds.
pub fn rfc3339_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs(), now.subsec_millis())
}

fn rfc3339(secs: u64, millis: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_305_600, 7), "2026-11-22T00:00:00.007Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn events_are_json_lines_naming_code_by_hash() {
        let buf = Shared::default();
        let log = AuditLog::to_writer(Box::new(buf.clone()), &AuditSettings::default());
        let mut e = AuditEvent::new("decision", "r-1", "local", "s-1");
        e.describe(&log.code_fields("secret_token = 'abc'"));
        e.language = Some("python");
        log.record(&e).unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n') && text.lines().count() == 1);
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["code_bytes"], 20);
        assert_eq!(v["code_sha256"].as_str().unwrap().len(), 64);
        assert!(v.get("code").is_none(), "code stays out by default");
        assert!(!text.contains("abc"));
    }

    #[test]
    fn code_is_included_only_when_asked() {
        let buf = Shared::default();
        let settings = AuditSettings {
            include_code: true,
            ..AuditSettings::default()
        };
        let log = AuditLog::to_writer(Box::new(buf.clone()), &settings);
        let mut e = AuditEvent::new("decision", "r-1", "local", "s-1");
        e.describe(&log.code_fields("1 + 1"));
        log.record(&e).unwrap();
        assert!(
            String::from_utf8(buf.0.lock().unwrap().clone())
                .unwrap()
                .contains("\"code\":\"1 + 1\"")
        );
    }

    #[test]
    fn a_file_sink_appends_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let settings = AuditSettings {
            path: Some(path.clone()),
            ..AuditSettings::default()
        };
        for _ in 0..2 {
            let log = AuditLog::open(&settings).unwrap();
            log.record(&AuditEvent::new("run", "r", "g", "s")).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
