//! What a workspace operation can answer instead of doing it: errno-style, so that a guest's
//! shim can raise what its language's programs expect (`FileNotFoundError`, `ENOSPC`, ...).

use super::path::PathError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FsError {
    #[error("invalid path: {0}")]
    Path(#[from] PathError),
    #[error("no such file or directory: {0}")]
    NotFound(String),
    #[error("file exists: {0}")]
    Exists(String),
    #[error("not a directory: {0}")]
    NotADirectory(String),
    #[error("is a directory: {0}")]
    IsADirectory(String),
    #[error("directory not empty: {0}")]
    NotEmpty(String),
    #[error("cannot remove or replace {0}")]
    Busy(String),
    #[error("invalid operation: {0}")]
    Invalid(String),
    #[error("no space left in the workspace (its quota is {max} bytes)")]
    NoSpace { max: u64 },
    #[error("too many files and directories in the workspace (its quota is {max})")]
    TooManyEntries { max: u64 },
    #[error("file too large (the workspace allows at most {max} bytes per file)")]
    FileTooLarge { max: u64 },
    #[error("not a regular file or directory (links, devices and FIFOs are not supported): {0}")]
    Unsupported(String),
    #[error("input/output error: {0}")]
    Io(String),
}

impl FsError {
    pub(super) fn io(e: std::io::Error) -> FsError {
        match e.kind() {
            std::io::ErrorKind::NotFound => FsError::NotFound(e.to_string()),
            std::io::ErrorKind::AlreadyExists => FsError::Exists(e.to_string()),
            _ => FsError::Io(e.to_string()),
        }
    }

    /// The errno name a program would see for it.
    pub fn code(&self) -> &'static str {
        match self {
            FsError::Path(PathError::NameTooLong | PathError::PathTooLong) => "ENAMETOOLONG",
            FsError::Path(PathError::Outside(_) | PathError::ParentComponent) => "EACCES",
            FsError::Path(_) | FsError::Invalid(_) => "EINVAL",
            FsError::NotFound(_) => "ENOENT",
            FsError::Exists(_) => "EEXIST",
            FsError::NotADirectory(_) => "ENOTDIR",
            FsError::IsADirectory(_) => "EISDIR",
            FsError::NotEmpty(_) => "ENOTEMPTY",
            FsError::Busy(_) => "EBUSY",
            FsError::NoSpace { .. } => "ENOSPC",
            FsError::TooManyEntries { .. } => "EDQUOT",
            FsError::FileTooLarge { .. } => "EFBIG",
            FsError::Unsupported(_) => "EPERM",
            FsError::Io(_) => "EIO",
        }
    }
}
