//! `[workspace]`: whether runs get a `/workspace`, where the directories live, and the quotas.
//! A run without a session gets a scratch workspace made on first use and removed when the
//! call ends; a session's lives as long as the session.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Quota;

const MIB: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkspaceSettings {
    /// Runs get a `/workspace` (default true). Off: every file call fails with ENOENT and the
    /// `files` argument is refused.
    pub enabled: bool,
    /// Where workspaces are made (default: `$WARDEN_WORKSPACE_DIR`, else
    /// `~/.cache/warden/workspaces`). Must belong to the server's user, mode 0700.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<PathBuf>,
    /// Bytes of all files in one workspace (default 64 MiB).
    pub max_bytes: u64,
    /// Files and directories in one workspace (default 1000).
    pub max_files: u64,
    /// Bytes of the largest file (default 16 MiB).
    pub max_file_bytes: u64,
    /// Bytes of the `files` argument, decoded, in all (default 8 MiB).
    pub max_input_bytes: u64,
    /// Bytes of files returned in a result's content (images, embedded files), in all
    /// (default 4 MiB); larger outputs are listed but not returned inline.
    pub max_returned_bytes: u64,
}

impl Default for WorkspaceSettings {
    fn default() -> Self {
        WorkspaceSettings {
            enabled: true,
            directory: None,
            max_bytes: 64 * MIB,
            max_files: 1000,
            max_file_bytes: 16 * MIB,
            max_input_bytes: 8 * MIB,
            max_returned_bytes: 4 * MIB,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("`{0}` must be at least 1")]
    Zero(&'static str),
    #[error("`max_file_bytes` ({file}) cannot exceed `max_bytes` ({total})")]
    FileOverTotal { file: u64, total: u64 },
}

impl WorkspaceSettings {
    pub fn quota(&self) -> Quota {
        Quota {
            max_bytes: self.max_bytes,
            max_entries: self.max_files,
            max_file_bytes: self.max_file_bytes,
        }
    }

    /// The base directory in force.
    pub fn base_dir(&self) -> Option<PathBuf> {
        self.directory
            .clone()
            .or_else(|| std::env::var_os("WARDEN_WORKSPACE_DIR").map(PathBuf::from))
            .or_else(|| dirs::cache_dir().map(|d| d.join("warden").join("workspaces")))
    }

    /// Problems, each with the key it is about.
    pub fn validate(&self) -> Vec<(&'static str, SettingsError)> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("max_bytes", self.max_bytes),
            ("max_files", self.max_files),
            ("max_file_bytes", self.max_file_bytes),
        ] {
            if value == 0 {
                problems.push((key, SettingsError::Zero(key)));
            }
        }
        if self.max_file_bytes > self.max_bytes {
            problems.push((
                "max_file_bytes",
                SettingsError::FileOverTotal {
                    file: self.max_file_bytes,
                    total: self.max_bytes,
                },
            ));
        }
        problems
    }
}
