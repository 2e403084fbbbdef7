//! A session's files as MCP resources: `resources/list` shows the files of the caller's
//! sessions, `resources/read` returns one. The same answer ("not found") for a file that does
//! not exist and for one in a session that is not the caller's.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::Service;
use crate::workspace::{WorkspacePath, media_type, media_type_by_name};

const SCHEME_PREFIX: &str = "warden://sessions/";
/// The caller's sessions themselves, as JSON.
const SESSIONS_URI: &str = "warden://sessions";

/// Everything but unreserved characters is escaped in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Where the files of session `id` are: `warden://sessions/<id>/files/`.
fn session_files_prefix(id: &str) -> String {
    format!("{SCHEME_PREFIX}{id}/files/")
}

pub(super) fn uri_of(id: &str, path: &WorkspacePath) -> String {
    let encoded: Vec<String> = path
        .relative()
        .split('/')
        .map(|segment| utf8_percent_encode(segment, SEGMENT).to_string())
        .collect();
    format!("{}{}", session_files_prefix(id), encoded.join("/"))
}

/// A file, as `resources/list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceEntry {
    pub uri: String,
    /// The path the code uses (`/workspace/...`).
    pub name: String,
    pub size: u64,
    pub media_type: String,
}

/// A file's content, for `resources/read`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceContent {
    pub uri: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Service {
    /// The files of the sessions `grant` (from MCP session `mcp_session`) may use.
    pub fn list_resources(&self, grant: &str, mcp_session: &str) -> Vec<ResourceEntry> {
        let live = self.policy.current();
        let policy = live.policy();
        self.sweep_sessions(policy);
        let Some(settings) = &policy.sessions else {
            return Vec::new();
        };
        let mut entries = vec![ResourceEntry {
            uri: SESSIONS_URI.to_string(),
            name: "your code sessions".to_string(),
            size: 0,
            media_type: "application/json".to_string(),
        }];
        for session in self.sessions.of(settings, grant, mcp_session) {
            let Some(workspace) = &session.workspace else {
                continue;
            };
            for (path, size) in workspace.files() {
                let shown = path.shown();
                entries.push(ResourceEntry {
                    uri: uri_of(&session.id, &path),
                    // The type by name only: listing does not read every file.
                    media_type: media_type_by_name(&shown).to_string(),
                    name: shown,
                    size,
                });
            }
        }
        entries
    }

    /// The file `uri` names, if it is in one of the caller's sessions.
    pub fn read_resource(
        &self,
        uri: &str,
        grant: &str,
        mcp_session: &str,
    ) -> Option<ResourceContent> {
        if uri == SESSIONS_URI {
            return self.sessions_listing(grant, mcp_session);
        }
        let rest = uri.strip_prefix(SCHEME_PREFIX)?;
        let (id, encoded) = rest.split_once("/files/")?;
        let decoded: Vec<String> = encoded
            .split('/')
            .map(|s| percent_decode_str(s).decode_utf8().map(|c| c.into_owned()))
            .collect::<Result<_, _>>()
            .ok()?;
        let path = WorkspacePath::parse(&decoded.join("/")).ok()?;
        let live = self.policy.current();
        let policy = live.policy();
        self.sweep_sessions(policy);
        let session = self
            .sessions
            .find(policy.sessions.as_ref()?, id, grant, mcp_session)?;
        let bytes = session.workspace.as_ref()?.read(&path).ok()?;
        Some(ResourceContent {
            uri: uri.to_string(),
            media_type: media_type(&path.relative(), &bytes).to_string(),
            bytes,
        })
    }
}

impl Service {
    /// `warden://sessions`: the caller's open sessions (id, calls, seconds idle and left).
    fn sessions_listing(&self, grant: &str, mcp_session: &str) -> Option<ResourceContent> {
        let live = self.policy.current();
        let policy = live.policy();
        self.sweep_sessions(policy);
        let settings = policy.sessions.as_ref()?;
        let listed: Vec<serde_json::Value> = self
            .sessions
            .of(settings, grant, mcp_session)
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.id,
                    "calls": s.calls(),
                    "idle_s": s.idle_s(),
                    "expires_in_s": s.expires_in_s(settings),
                })
            })
            .collect();
        Some(ResourceContent {
            uri: SESSIONS_URI.to_string(),
            media_type: "application/json".to_string(),
            bytes: serde_json::Value::Array(listed).to_string().into_bytes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_escape_every_segment_and_keep_the_slashes() {
        let path = WorkspacePath::parse("out dir/chart #1.png").unwrap();
        assert_eq!(
            uri_of("s-1", &path),
            "warden://sessions/s-1/files/out%20dir/chart%20%231.png"
        );
    }
}
