//! A run's workspace, as the service hands it to the sandbox: made on first use (a call that
//! never touches a file costs nothing), fed the call's `files`, and read back after the run for
//! the files the run created or changed. A call without a session gets one of its own, removed
//! when the call ends; a session keeps one for its life.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use crate::contract::{FileInfo, FileInput};
use crate::sandbox::FileBridge;
use crate::workspace::bridge::{self, Reply};
use crate::workspace::roots::{OwnedWorkspace, WorkspaceRoot};
use crate::workspace::{
    FsError, Kind, Quota, Workspace, WorkspacePath, is_raster_image, is_text, media_type,
};

/// A workspace directory, made when first used and removed when dropped.
pub(super) struct LazyWorkspace {
    root: Arc<WorkspaceRoot>,
    quota: Quota,
    made: Mutex<Option<OwnedWorkspace>>,
}

impl LazyWorkspace {
    pub(super) fn new(root: Arc<WorkspaceRoot>, quota: Quota) -> LazyWorkspace {
        LazyWorkspace {
            root,
            quota,
            made: Mutex::new(None),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Workspace) -> T) -> Result<T, FsError> {
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        if made.is_none() {
            *made = Some(self.root.create(self.quota)?);
        }
        match made.as_mut() {
            Some(owned) => Ok(f(&mut owned.workspace)),
            None => Err(FsError::Invalid("the workspace could not be made".into())),
        }
    }

    fn is_made(&self) -> bool {
        self.made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// The content of a file, for `resources/read`.
    pub(super) fn read(&self, path: &WorkspacePath) -> Result<Vec<u8>, FsError> {
        if !self.is_made() {
            return Err(FsError::NotFound(path.shown()));
        }
        self.with(|ws| ws.read(path))?
    }

    /// Every file, for `resources/list` (nothing if the workspace was never used).
    pub(super) fn files(&self) -> Vec<(WorkspacePath, u64)> {
        if !self.is_made() {
            return Vec::new();
        }
        self.with(|ws| ws.files())
            .and_then(|files| files)
            .map(|entries| {
                entries
                    .into_iter()
                    .filter(|e| e.kind == Kind::File)
                    .map(|e| (e.path, e.size))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One run's door to a workspace; remembers what the run changed.
pub(super) struct RunFiles {
    workspace: Arc<LazyWorkspace>,
    changed: Mutex<Vec<WorkspacePath>>,
}

impl FileBridge for RunFiles {
    fn call(&self, request: &[u8], data: &[u8]) -> (String, Vec<u8>) {
        match self.workspace.with(|ws| bridge::handle(ws, request, data)) {
            Ok(Reply {
                answer,
                bytes,
                changed,
            }) => {
                if let Some(path) = changed {
                    self.changed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(path);
                }
                (answer, bytes)
            }
            Err(e) => (
                serde_json::json!({"ok": false, "code": e.code(), "message": e.to_string()})
                    .to_string(),
                Vec::new(),
            ),
        }
    }
}

/// How a run's output files are returned.
pub(super) struct Returned<'a> {
    /// `Some(id)`: the files stay readable as resources of this (open) session.
    pub session: Option<&'a str>,
    /// Bytes of content the result may carry in all.
    pub max_bytes: u64,
}

impl RunFiles {
    pub(super) fn new(workspace: Arc<LazyWorkspace>) -> RunFiles {
        RunFiles {
            workspace,
            changed: Mutex::new(Vec::new()),
        }
    }

    /// Writes the call's `files` before the run (they are inputs, not outputs). A name the
    /// workspace refuses, or a quota exceeded, is the caller's error.
    pub(super) fn put(&self, files: &BTreeMap<String, FileInput>) -> Result<(), String> {
        for (name, input) in files {
            let shown = |e: &dyn std::fmt::Display| format!("`files.{name}`: {e}");
            let path = WorkspacePath::parse(name).map_err(|e| shown(&e))?;
            let bytes = input.bytes().map_err(|e| shown(&e))?;
            self.workspace
                .with(|ws| {
                    ws.mkdir(&path.parent(), true)?;
                    ws.write(&path, &bytes, crate::workspace::WriteMode::Replace)
                })
                .and_then(|written| written)
                .map_err(|e| shown(&e))?;
        }
        Ok(())
    }

    /// The files the run created or changed, sorted by path, with their content where the
    /// result may carry it: images always first in line, other files only without a session
    /// (a session's stay readable as resources).
    pub(super) fn outputs(&self, returned: &Returned<'_>) -> Vec<FileInfo> {
        let changed =
            std::mem::take(&mut *self.changed.lock().unwrap_or_else(PoisonError::into_inner));
        if changed.is_empty() {
            return Vec::new();
        }
        let mut budget = returned.max_bytes;
        let produced = self
            .workspace
            .files()
            .into_iter()
            .filter(|(path, _)| changed.iter().any(|c| c.contains(path)));
        let mut files = Vec::new();
        for (path, _) in produced {
            let Ok(bytes) = self.workspace.read(&path) else {
                continue;
            };
            let media = media_type(&path.relative(), &bytes);
            let inline = is_raster_image(media) || returned.session.is_none();
            let size = bytes.len() as u64;
            let content = (inline && size <= budget).then(|| {
                budget -= size;
                Arc::<[u8]>::from(bytes.as_slice())
            });
            files.push(FileInfo {
                path: path.shown(),
                size,
                media_type: media.to_string(),
                sha256: hex(&Sha256::digest(&bytes)),
                uri: returned
                    .session
                    .map(|id| super::resources::uri_of(id, &path)),
                content,
            });
        }
        files
    }
}

/// Whether a returned file's content is text (`resource` text) rather than bytes (`blob`).
pub fn is_text_file(file: &FileInfo) -> bool {
    is_text(&file.media_type)
        && file
            .content
            .as_deref()
            .is_some_and(|c| std::str::from_utf8(c).is_ok())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
