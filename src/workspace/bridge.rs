//! The one call a guest's file shim makes: a JSON request naming an operation, plus the bytes of
//! a write; a JSON answer, plus the bytes of a read. Both guests (the JavaScript `fs` and the
//! Python `open`/`os` shims) speak it, so the checks live here once.
//!
//! ```text
//! {"op": "read",   "path": P}                        -> {"ok": true}          + the bytes
//! {"op": "write",  "path": P, "mode": "replace" | "append" | "create_new"} + bytes -> {"ok": true}
//! {"op": "mkdir",  "path": P, "parents": bool}       -> {"ok": true}
//! {"op": "remove", "path": P, "recursive": bool}     -> {"ok": true}
//! {"op": "rename", "path": P, "to": Q}               -> {"ok": true}
//! {"op": "stat",   "path": P}                        -> {"ok": true, "entry": E}
//! {"op": "list",   "path": P}                        -> {"ok": true, "entries": [E]}
//! {"op": "usage"}                                    -> {"ok": true, "max_bytes", "max_files",
//!                                                        "max_file_bytes", "bytes", "files"}
//! anything refused                                   -> {"ok": false, "code": "ENOENT", "message": ...}
//! E = {"name", "path", "kind": "file" | "directory", "size", "modified_ms"}
//! ```

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Entry, FsError, Kind, Workspace, WorkspacePath, WriteMode};

/// A request larger than this is refused unread (paths are at most 1 KiB).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Request {
    Read {
        path: String,
    },
    Write {
        path: String,
        #[serde(default)]
        mode: Mode,
    },
    Mkdir {
        path: String,
        #[serde(default)]
        parents: bool,
    },
    Remove {
        path: String,
        #[serde(default)]
        recursive: bool,
    },
    Rename {
        path: String,
        to: String,
    },
    Stat {
        path: String,
    },
    List {
        path: String,
    },
    /// The quota and what is used of it (a shim that buffers writes checks them as it goes).
    Usage,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    #[default]
    Replace,
    Append,
    CreateNew,
}

/// The answer to one request.
#[derive(Debug)]
pub struct Reply {
    /// `{"ok": true, ...}` or `{"ok": false, "code", "message"}`.
    pub answer: String,
    /// The bytes of a read.
    pub bytes: Vec<u8>,
    /// What the request created or changed (a written file, a new directory, a rename's
    /// target), so the caller can tell which files a run produced.
    pub changed: Option<WorkspacePath>,
}

/// Carries out one request; never fails (a refusal is an answer).
pub fn handle(workspace: &mut Workspace, request: &[u8], data: &[u8]) -> Reply {
    match serve(workspace, request, data) {
        Ok((answer, bytes, changed)) => Reply {
            answer: answer.to_string(),
            bytes,
            changed,
        },
        Err(e) => Reply {
            answer: json!({"ok": false, "code": e.code(), "message": e.to_string()}).to_string(),
            bytes: Vec::new(),
            changed: None,
        },
    }
}

type Served = (Value, Vec<u8>, Option<WorkspacePath>);

fn serve(workspace: &mut Workspace, request: &[u8], data: &[u8]) -> Result<Served, FsError> {
    if request.len() > MAX_REQUEST_BYTES {
        return Err(FsError::Invalid("the request is too large".into()));
    }
    let request: Request = serde_json::from_slice(request)
        .map_err(|e| FsError::Invalid(format!("malformed request: {e}")))?;
    let path = |text: &str| WorkspacePath::parse(text).map_err(FsError::from);
    let done = || json!({"ok": true});
    Ok(match request {
        Request::Read { path: p } => (done(), workspace.read(&path(&p)?)?, None),
        Request::Write { path: p, mode } => {
            let mode = match mode {
                Mode::Replace => WriteMode::Replace,
                Mode::Append => WriteMode::Append,
                Mode::CreateNew => WriteMode::CreateNew,
            };
            let target = path(&p)?;
            workspace.write(&target, data, mode)?;
            (done(), Vec::new(), Some(target))
        }
        Request::Mkdir { path: p, parents } => {
            let target = path(&p)?;
            workspace.mkdir(&target, parents)?;
            (done(), Vec::new(), Some(target))
        }
        Request::Remove { path: p, recursive } => {
            workspace.remove(&path(&p)?, recursive)?;
            (done(), Vec::new(), None)
        }
        Request::Rename { path: p, to } => {
            let target = path(&to)?;
            workspace.rename(&path(&p)?, &target)?;
            (done(), Vec::new(), Some(target))
        }
        Request::Stat { path: p } => {
            let entry = workspace.stat(&path(&p)?)?;
            (
                json!({"ok": true, "entry": describe(&entry)}),
                Vec::new(),
                None,
            )
        }
        Request::List { path: p } => {
            let entries: Vec<Value> = workspace.list(&path(&p)?)?.iter().map(describe).collect();
            (json!({"ok": true, "entries": entries}), Vec::new(), None)
        }
        Request::Usage => {
            let (quota, used) = (workspace.quota(), workspace.usage());
            let answer = json!({"ok": true, "max_bytes": quota.max_bytes,
                "max_files": quota.max_entries, "max_file_bytes": quota.max_file_bytes,
                "bytes": used.bytes, "files": used.entries});
            (answer, Vec::new(), None)
        }
    })
}

fn describe(entry: &Entry) -> Value {
    let shown = entry.path.shown();
    let name = shown.rsplit('/').next().unwrap_or_default().to_string();
    json!({
        "name": name,
        "path": shown,
        "kind": match entry.kind { Kind::File => "file", Kind::Directory => "directory" },
        "size": entry.size,
        "modified_ms": entry.modified_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Quota;
    use super::super::roots::WorkspaceRoot;
    use super::*;

    fn ask(ws: &mut Workspace, request: Value, data: &[u8]) -> (Value, Vec<u8>) {
        let Reply { answer, bytes, .. } = handle(ws, request.to_string().as_bytes(), data);
        (serde_json::from_str(&answer).unwrap(), bytes)
    }

    #[test]
    fn a_guest_shim_reads_writes_and_lists_through_one_call() {
        let base = tempfile::tempdir().unwrap();
        let root = WorkspaceRoot::open(&base.path().join("w")).unwrap();
        let mut owned = root
            .create(Quota {
                max_bytes: 100,
                max_entries: 10,
                max_file_bytes: 50,
            })
            .unwrap();
        let ws = &mut owned.workspace;
        let (a, _) = ask(
            ws,
            json!({"op": "mkdir", "path": "/workspace/out", "parents": true}),
            b"",
        );
        assert_eq!(a, json!({"ok": true}));
        let (a, _) = ask(ws, json!({"op": "write", "path": "out/r.txt"}), b"hello");
        assert_eq!(a, json!({"ok": true}));
        ask(
            ws,
            json!({"op": "write", "path": "out/r.txt", "mode": "append"}),
            b"!",
        );
        let (a, bytes) = ask(ws, json!({"op": "read", "path": "out/r.txt"}), b"");
        assert_eq!((a, bytes), (json!({"ok": true}), b"hello!".to_vec()));
        let (a, _) = ask(ws, json!({"op": "list", "path": "out"}), b"");
        assert_eq!(a["entries"][0]["name"], "r.txt");
        assert_eq!(a["entries"][0]["path"], "/workspace/out/r.txt");
        assert_eq!(a["entries"][0]["size"], 6);
        let (a, _) = ask(ws, json!({"op": "stat", "path": "out"}), b"");
        assert_eq!(a["entry"]["kind"], "directory");
        let (a, _) = ask(ws, json!({"op": "usage"}), b"");
        assert_eq!(
            a,
            json!({"ok": true, "max_bytes": 100, "max_files": 10, "max_file_bytes": 50,
                "bytes": 6, "files": 2})
        );
        for (request, data, code) in [
            (json!({"op": "read", "path": "missing"}), &b""[..], "ENOENT"),
            (
                json!({"op": "read", "path": "../../etc/passwd"}),
                b"",
                "EACCES",
            ),
            (json!({"op": "write", "path": "/etc/x"}), b"x", "EACCES"),
            (json!({"op": "write", "path": "big"}), &[0; 51][..], "EFBIG"),
            (
                json!({"op": "write", "path": "out/r.txt", "mode": "create_new"}),
                b"",
                "EEXIST",
            ),
            (json!({"op": "chmod", "path": "x"}), b"", "EINVAL"),
            (json!({"op": "read"}), b"", "EINVAL"),
        ] {
            let (a, _) = ask(ws, request.clone(), data);
            assert_eq!(a["ok"], false, "{request}");
            assert_eq!(a["code"], code, "{request}: {a}");
        }
        let answer = handle(ws, &[b'{'; MAX_REQUEST_BYTES + 1], b"").answer;
        assert!(answer.contains("too large"));
        let answer = handle(ws, b"\xff\xfe", b"").answer;
        assert!(answer.contains("EINVAL"));
    }
}
