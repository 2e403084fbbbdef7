//! Looking without touching: what is at a path (never following a link), listings, counts.

use std::time::UNIX_EPOCH;

use cap_std::fs::{Dir, Metadata, MetadataExt};

use super::{Entry, FsError, Kind, Usage, Workspace, WorkspacePath, path};

impl Workspace {
    pub fn stat(&self, path: &WorkspacePath) -> Result<Entry, FsError> {
        let kind = self
            .kind_of(path)?
            .ok_or_else(|| FsError::NotFound(path.shown()))?;
        let meta = self.metadata(path)?;
        Ok(entry(path.clone(), kind, &meta))
    }

    /// A directory's entries, by name.
    pub fn list(&self, path: &WorkspacePath) -> Result<Vec<Entry>, FsError> {
        self.require_directory(path)?;
        let mut entries = Vec::new();
        for item in self.dir_of(path)?.entries().map_err(FsError::io)? {
            let item = item.map_err(FsError::io)?;
            let Some(name) = item.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.starts_with(path::RESERVED_PREFIX) {
                continue;
            }
            let Ok(child) = path.join(&name) else {
                continue;
            };
            let meta = item.metadata().map_err(FsError::io)?;
            if let Some(kind) = kind_of_meta(&meta) {
                entries.push(entry(child, kind, &meta));
            }
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(entries)
    }

    /// Every file, at any depth, by path.
    pub fn files(&self) -> Result<Vec<Entry>, FsError> {
        let mut files = Vec::new();
        let mut pending = vec![WorkspacePath::root()];
        while let Some(dir) = pending.pop() {
            for item in self.list(&dir)? {
                match item.kind {
                    Kind::File => files.push(item),
                    Kind::Directory => pending.push(item.path),
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    pub(super) fn require_directory(&self, path: &WorkspacePath) -> Result<(), FsError> {
        match self.kind_of(path)? {
            Some(Kind::Directory) => Ok(()),
            Some(Kind::File) => Err(FsError::NotADirectory(path.shown())),
            None => Err(FsError::NotFound(path.shown())),
        }
    }

    /// What is at `path`, without following a link; anything but a file or a directory (a
    /// link, a device, a FIFO, a socket) is refused.
    pub(super) fn kind_of(&self, path: &WorkspacePath) -> Result<Option<Kind>, FsError> {
        // Every directory above must be a real directory too.
        for depth in 0..path.depth() {
            let above = path_prefix(path, depth);
            let meta = self.symlink_metadata(&above)?;
            match meta.as_ref().and_then(kind_of_meta) {
                Some(Kind::Directory) => {}
                Some(Kind::File) => return Err(FsError::NotADirectory(above.shown())),
                None if meta.is_none() => return Ok(None),
                None => return Err(FsError::Unsupported(above.shown())),
            }
        }
        match self.symlink_metadata(path)? {
            None => Ok(None),
            Some(meta) => kind_of_meta(&meta)
                .map(Some)
                .ok_or_else(|| FsError::Unsupported(path.shown())),
        }
    }

    pub(super) fn symlink_metadata(
        &self,
        path: &WorkspacePath,
    ) -> Result<Option<Metadata>, FsError> {
        let result = if path.is_root() {
            self.dir.dir_metadata()
        } else {
            self.dir.symlink_metadata(path.relative())
        };
        match result {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FsError::io(e)),
        }
    }

    pub(super) fn metadata(&self, path: &WorkspacePath) -> Result<Metadata, FsError> {
        self.symlink_metadata(path)?
            .ok_or_else(|| FsError::NotFound(path.shown()))
    }

    pub(super) fn dir_of(&self, path: &WorkspacePath) -> Result<Dir, FsError> {
        if path.is_root() {
            self.dir.try_clone().map_err(FsError::io)
        } else {
            self.dir.open_dir(path.relative()).map_err(FsError::io)
        }
    }

    /// Bytes and entries under `path` (not counting `path` itself).
    pub(super) fn count(&self, path: &WorkspacePath) -> Result<Usage, FsError> {
        let mut usage = Usage::default();
        let mut pending = vec![path.clone()];
        while let Some(dir) = pending.pop() {
            for item in self.list(&dir)? {
                usage.entries += 1;
                usage.bytes += item.size;
                if item.kind == Kind::Directory {
                    pending.push(item.path);
                }
            }
        }
        Ok(usage)
    }
}

/// The first `depth` components of `path`.
pub(super) fn path_prefix(path: &WorkspacePath, depth: usize) -> WorkspacePath {
    let mut prefix = path.clone();
    while prefix.depth() > depth {
        prefix = prefix.parent();
    }
    prefix
}

fn kind_of_meta(meta: &Metadata) -> Option<Kind> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        None
    } else if kind.is_file() {
        // A second name for a file may be a name for one outside the workspace.
        (meta.nlink() == 1).then_some(Kind::File)
    } else if kind.is_dir() {
        Some(Kind::Directory)
    } else {
        None
    }
}

fn entry(path: WorkspacePath, kind: Kind, meta: &Metadata) -> Entry {
    let modified_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.into_std().duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Entry {
        path,
        kind,
        size: if kind == Kind::File { meta.len() } else { 0 },
        modified_ms,
    }
}
