//! Where workspaces live on the host: under a base directory (the policy's, or the state
//! directory's), each server process has its own directory, locked while the process lives.
//! At start, a process removes the directories of processes that are gone (their lock is
//! free), so a crash leaves nothing behind for long. Everything is created 0700.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{FsError, Quota, Workspace};

const PROCESS_PREFIX: &str = "warden-";
const LOCK_FILE: &str = ".lock";

/// This process's directory of workspaces.
pub struct WorkspaceRoot {
    dir: PathBuf,
    /// Held (flock) for the process's life: the directory is in use.
    _lock: File,
}

/// A workspace that removes its directory when dropped.
pub struct OwnedWorkspace {
    pub workspace: Workspace,
    path: PathBuf,
}

impl OwnedWorkspace {
    /// Where the workspace is on the host.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OwnedWorkspace {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), "cannot remove a workspace: {e}");
        }
    }
}

impl WorkspaceRoot {
    /// Opens `base` (creating it 0700), removes what processes that are gone left there, and
    /// makes this process's own directory. `base` must belong to this user and be closed to
    /// others: workspaces hold what guests wrote.
    pub fn open(base: &Path) -> io::Result<WorkspaceRoot> {
        DirBuilder::new().recursive(true).mode(0o700).create(base)?;
        let meta = std::fs::metadata(base)?;
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        if meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} must belong to this user and be closed to others (mode 0700)",
                    base.display()
                ),
            ));
        }
        remove_abandoned(base);
        let dir = base.join(format!("{PROCESS_PREFIX}{}", random_name()));
        DirBuilder::new().mode(0o700).create(&dir)?;
        let lock = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(dir.join(LOCK_FILE))?;
        if !try_lock(&lock) {
            return Err(io::Error::other("cannot lock a new workspace directory"));
        }
        Ok(WorkspaceRoot { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A new, empty workspace, removed when the value is dropped.
    pub fn create(&self, quota: Quota) -> Result<OwnedWorkspace, FsError> {
        let path = self.dir.join(format!("w-{}", random_name()));
        DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(FsError::io)?;
        let workspace = Workspace::open(&path, quota)?;
        Ok(OwnedWorkspace { workspace, path })
    }
}

impl Drop for WorkspaceRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the directories of processes that are gone: those whose lock nobody holds.
fn remove_abandoned(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(PROCESS_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let abandoned = match File::open(dir.join(LOCK_FILE)) {
            Ok(lock) => try_lock(&lock),
            // Without its lock, a directory is being made (or torn down) by another process:
            // it goes only once it is old.
            Err(e) => {
                e.kind() == io::ErrorKind::NotFound
                    && entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age.as_secs() > 60)
            }
        };
        if abandoned {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {
                    tracing::info!(path = %dir.display(), "removed the workspaces of a process that is gone")
                }
                Err(e) => {
                    tracing::warn!(path = %dir.display(), "cannot remove abandoned workspaces: {e}")
                }
            }
        }
    }
}

/// Takes an exclusive lock without waiting; held until the file is closed.
fn try_lock(file: &File) -> bool {
    // SAFETY: flock on a descriptor we own; it cannot affect memory.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

fn random_name() -> String {
    let mut bytes = [0u8; 12];
    // The OS's generator; if it fails, the pid and time still make the name unique enough.
    if getrandom::fill(&mut bytes).is_err() {
        let seed = std::process::id() as u128
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
        bytes.copy_from_slice(&seed.to_le_bytes()[..12]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
