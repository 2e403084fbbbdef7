//! A workspace: one directory on the host, opened through `cap-std` so that no path can resolve
//! outside it, holding a guest's files under quotas. Every operation takes a guest's path
//! ([`WorkspacePath`]: checked before anything touches the disk) and either happens in full or
//! not at all, with an errno-style [`FsError`] the guest sees as an ordinary error. Only regular
//! files and directories exist here: nothing can create a link, device or FIFO, and one found
//! (put there by someone else) is refused, never followed.
//!
//! Knows nothing of guests, sessions or policies; [`roots`] places workspaces on the host.

pub mod bridge;
mod error;
mod inspect;
mod media;
mod path;
pub mod roots;
mod settings;

use std::io::Write;
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use serde::{Deserialize, Serialize};

pub use error::FsError;
use inspect::path_prefix;
pub use media::{is_raster_image, is_text, media_type, media_type_by_name};
pub use path::{MOUNT, PathError, WorkspacePath};
pub use settings::{SettingsError, WorkspaceSettings};

/// What a workspace may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Bytes of all files together.
    pub max_bytes: u64,
    /// Files and directories together.
    pub max_entries: u64,
    /// Bytes of the largest file.
    pub max_file_bytes: u64,
}

/// What a workspace holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub entries: u64,
}

/// How [`Workspace::write`] treats an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Replace it (atomically: readers see the old or the new content).
    Replace,
    Append,
    /// Refuse if it exists.
    CreateNew,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
}

/// A file or directory as `stat` and `list` describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: WorkspacePath,
    pub kind: Kind,
    /// Bytes (0 for a directory).
    pub size: u64,
    /// Last modification, in milliseconds since the Unix epoch.
    pub modified_ms: u64,
}

pub struct Workspace {
    dir: Dir,
    quota: Quota,
    used: Usage,
    temp_names: u64,
}

impl Workspace {
    /// Opens the directory at `path` (it must exist) and counts what it holds.
    pub fn open(path: &Path, quota: Quota) -> Result<Workspace, FsError> {
        let dir = Dir::open_ambient_dir(path, ambient_authority()).map_err(FsError::io)?;
        let mut workspace = Workspace {
            dir,
            quota,
            used: Usage::default(),
            temp_names: 0,
        };
        workspace.used = workspace.count(&WorkspacePath::root())?;
        Ok(workspace)
    }

    pub fn quota(&self) -> Quota {
        self.quota
    }

    pub fn usage(&self) -> Usage {
        self.used
    }

    /// A file's whole content.
    pub fn read(&self, path: &WorkspacePath) -> Result<Vec<u8>, FsError> {
        match self.kind_of(path)? {
            Some(Kind::File) => self.dir.read(path.relative()).map_err(FsError::io),
            Some(Kind::Directory) => Err(FsError::IsADirectory(path.shown())),
            None => Err(FsError::NotFound(path.shown())),
        }
    }

    /// Writes `data` to a file, within the quotas or not at all.
    pub fn write(
        &mut self,
        path: &WorkspacePath,
        data: &[u8],
        mode: WriteMode,
    ) -> Result<(), FsError> {
        if path.is_root() {
            return Err(FsError::IsADirectory(path.shown()));
        }
        self.require_directory(&path.parent())?;
        let existing = match self.kind_of(path)? {
            Some(Kind::Directory) => return Err(FsError::IsADirectory(path.shown())),
            Some(Kind::File) if mode == WriteMode::CreateNew => {
                return Err(FsError::Exists(path.shown()));
            }
            Some(Kind::File) => Some(self.metadata(path)?.len()),
            None => None,
        };
        let old = existing.unwrap_or(0);
        let new = match mode {
            WriteMode::Append => old.saturating_add(data.len() as u64),
            WriteMode::Replace | WriteMode::CreateNew => data.len() as u64,
        };
        self.check_room(new, old, existing.is_none())?;
        let relative = path.relative();
        match mode {
            WriteMode::Append if existing.is_some() => {
                let mut options = OpenOptions::new();
                options.append(true);
                let mut file = self
                    .dir
                    .open_with(&relative, &options)
                    .map_err(FsError::io)?;
                file.write_all(data).map_err(FsError::io)?;
            }
            _ => {
                // A whole new content goes to a temporary name first, then takes the place of
                // the old: a failed write never leaves half a file behind.
                self.temp_names += 1;
                let temp = path.parent().relative();
                let temp = format!("{temp}/{}tmp-{}", path::RESERVED_PREFIX, self.temp_names);
                let written = self
                    .dir
                    .write(&temp, data)
                    .and_then(|()| self.dir.rename(&temp, &self.dir, &relative));
                if let Err(e) = written {
                    let _ = self.dir.remove_file(&temp);
                    return Err(FsError::io(e));
                }
            }
        }
        self.used.bytes = self.used.bytes.saturating_sub(old) + new;
        self.used.entries += u64::from(existing.is_none());
        Ok(())
    }

    /// Creates a directory (and, with `parents`, the missing ones above it; an existing
    /// directory is then fine).
    pub fn mkdir(&mut self, path: &WorkspacePath, parents: bool) -> Result<(), FsError> {
        if parents {
            for depth in 1..=path.depth() {
                let next = path_prefix(path, depth);
                match self.kind_of(&next)? {
                    Some(Kind::Directory) => {}
                    Some(Kind::File) => return Err(FsError::NotADirectory(next.shown())),
                    None => self.create_dir(&next)?,
                }
            }
            return Ok(());
        }
        if path.is_root() || self.kind_of(path)?.is_some() {
            return Err(FsError::Exists(path.shown()));
        }
        self.require_directory(&path.parent())?;
        self.create_dir(path)
    }

    /// Removes a file, or a directory (with `recursive`, and everything in it; without, only
    /// when it is empty).
    pub fn remove(&mut self, path: &WorkspacePath, recursive: bool) -> Result<(), FsError> {
        if path.is_root() {
            return Err(FsError::Busy(path.shown()));
        }
        match self.kind_of(path)? {
            None => Err(FsError::NotFound(path.shown())),
            Some(Kind::File) => {
                let size = self.metadata(path)?.len();
                self.dir.remove_file(path.relative()).map_err(FsError::io)?;
                self.used.bytes = self.used.bytes.saturating_sub(size);
                self.used.entries = self.used.entries.saturating_sub(1);
                Ok(())
            }
            Some(Kind::Directory) => {
                let inside = self.count(path)?;
                if inside.entries > 0 && !recursive {
                    return Err(FsError::NotEmpty(path.shown()));
                }
                self.dir
                    .remove_dir_all(path.relative())
                    .map_err(FsError::io)?;
                self.used.bytes = self.used.bytes.saturating_sub(inside.bytes);
                self.used.entries = self.used.entries.saturating_sub(inside.entries + 1);
                Ok(())
            }
        }
    }

    /// Moves a file or directory. An existing file at `to` is replaced by a file; an existing
    /// empty directory by a directory.
    pub fn rename(&mut self, from: &WorkspacePath, to: &WorkspacePath) -> Result<(), FsError> {
        if from.is_root() || to.is_root() {
            return Err(FsError::Busy(MOUNT.to_string()));
        }
        let kind = self
            .kind_of(from)?
            .ok_or_else(|| FsError::NotFound(from.shown()))?;
        if from == to {
            return Ok(());
        }
        if kind == Kind::Directory && from.contains(to) {
            return Err(FsError::Invalid(format!(
                "cannot move {} into itself",
                from.shown()
            )));
        }
        self.require_directory(&to.parent())?;
        let replaced = match (kind, self.kind_of(to)?) {
            (_, None) => Usage::default(),
            (Kind::File, Some(Kind::File)) => Usage {
                bytes: self.metadata(to)?.len(),
                entries: 1,
            },
            (Kind::Directory, Some(Kind::Directory)) => {
                if self.count(to)?.entries > 0 {
                    return Err(FsError::NotEmpty(to.shown()));
                }
                Usage {
                    bytes: 0,
                    entries: 1,
                }
            }
            (Kind::File, Some(Kind::Directory)) => return Err(FsError::IsADirectory(to.shown())),
            (Kind::Directory, Some(Kind::File)) => {
                return Err(FsError::NotADirectory(to.shown()));
            }
        };
        self.dir
            .rename(from.relative(), &self.dir, to.relative())
            .map_err(FsError::io)?;
        self.used.bytes = self.used.bytes.saturating_sub(replaced.bytes);
        self.used.entries = self.used.entries.saturating_sub(replaced.entries);
        Ok(())
    }

    fn create_dir(&mut self, path: &WorkspacePath) -> Result<(), FsError> {
        self.check_room(0, 0, true)?;
        self.dir.create_dir(path.relative()).map_err(FsError::io)?;
        self.used.entries += 1;
        Ok(())
    }

    /// Whether a file growing from `old` to `new` bytes (and a new entry, if `adds_entry`) fits.
    fn check_room(&self, new: u64, old: u64, adds_entry: bool) -> Result<(), FsError> {
        if new > self.quota.max_file_bytes {
            return Err(FsError::FileTooLarge {
                max: self.quota.max_file_bytes,
            });
        }
        // Saturating: the directory may have changed behind the workspace's back.
        if self.used.bytes.saturating_sub(old).saturating_add(new) > self.quota.max_bytes {
            return Err(FsError::NoSpace {
                max: self.quota.max_bytes,
            });
        }
        if adds_entry && self.used.entries >= self.quota.max_entries {
            return Err(FsError::TooManyEntries {
                max: self.quota.max_entries,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
