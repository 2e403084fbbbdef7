//! The names a guest may use in its workspace: a pure grammar, checked before anything touches
//! the directory. A path is relative to `/workspace` (or spelled under it); it may not leave it,
//! by construction: no `..`, no other absolute path, no NUL or control characters, no
//! backslashes, no invisible or bidirectional-control characters, bounded lengths.

/// Where the workspace appears to the guest.
pub const MOUNT: &str = "/workspace";

/// Longest name of one file or directory, in bytes (as Linux's NAME_MAX).
pub const MAX_NAME_BYTES: usize = 255;
/// Longest path under the workspace, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Deepest nesting of directories.
pub const MAX_DEPTH: usize = 16;
/// Names Warden keeps for itself (temporary files of atomic writes).
pub const RESERVED_PREFIX: &str = ".warden-";

/// A checked path: its components, never empty strings, `.` or `..`. No components: the
/// workspace itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspacePath(Vec<String>);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("`{0}` is outside {MOUNT} (only {MOUNT} and paths relative to it are reachable)")]
    Outside(String),
    #[error("`..` is not allowed in workspace paths")]
    ParentComponent,
    #[error("a name may not contain {0}")]
    BadCharacter(&'static str),
    #[error("a name is longer than {MAX_NAME_BYTES} bytes")]
    NameTooLong,
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    PathTooLong,
    #[error("the path is nested deeper than {MAX_DEPTH} directories")]
    TooDeep,
    #[error("names starting with `{RESERVED_PREFIX}` are reserved")]
    Reserved,
}

impl WorkspacePath {
    /// The workspace itself.
    pub fn root() -> WorkspacePath {
        WorkspacePath(Vec::new())
    }

    /// Checks a path as the guest wrote it.
    pub fn parse(text: &str) -> Result<WorkspacePath, PathError> {
        if text.len() > MAX_PATH_BYTES + MOUNT.len() {
            return Err(PathError::PathTooLong);
        }
        let relative = match text.strip_prefix(MOUNT) {
            Some("") => "",
            Some(rest) if rest.starts_with('/') => rest,
            _ if text.starts_with('/') => return Err(PathError::Outside(shorten(text))),
            _ => text,
        };
        let mut components = Vec::new();
        for component in relative.split('/') {
            match component {
                "" | "." => continue,
                ".." => return Err(PathError::ParentComponent),
                name => {
                    check_name(name)?;
                    components.push(name.to_string());
                }
            }
        }
        if components.len() > MAX_DEPTH {
            return Err(PathError::TooDeep);
        }
        let path = WorkspacePath(components);
        if path.relative().len() > MAX_PATH_BYTES {
            return Err(PathError::PathTooLong);
        }
        Ok(path)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path relative to the workspace directory (`.` for the workspace itself).
    pub fn relative(&self) -> String {
        if self.0.is_empty() {
            ".".to_string()
        } else {
            self.0.join("/")
        }
    }

    /// As the guest sees it: `/workspace/...`.
    pub fn shown(&self) -> String {
        if self.0.is_empty() {
            MOUNT.to_string()
        } else {
            format!("{MOUNT}/{}", self.0.join("/"))
        }
    }

    /// The directory holding this path (the root holds itself).
    pub fn parent(&self) -> WorkspacePath {
        let mut parts = self.0.clone();
        parts.pop();
        WorkspacePath(parts)
    }

    /// `self` with one more component (already a checked name).
    pub fn join(&self, name: &str) -> Result<WorkspacePath, PathError> {
        check_name(name)?;
        let mut parts = self.0.clone();
        parts.push(name.to_string());
        if parts.len() > MAX_DEPTH {
            return Err(PathError::TooDeep);
        }
        Ok(WorkspacePath(parts))
    }

    /// Whether `other` is this path or lies under it.
    pub fn contains(&self, other: &WorkspacePath) -> bool {
        other.0.starts_with(&self.0)
    }

    pub fn depth(&self) -> usize {
        self.0.len()
    }
}

fn check_name(name: &str) -> Result<(), PathError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(PathError::NameTooLong);
    }
    if name.starts_with(RESERVED_PREFIX) {
        return Err(PathError::Reserved);
    }
    for c in name.chars() {
        let bad = match c {
            '\0' => Some("NUL"),
            '\\' => Some("a backslash"),
            c if c.is_control() => Some("control characters"),
            // Invisible or reordering characters make one name look like another.
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}' => Some("invisible or bidirectional-control characters"),
            _ => None,
        };
        if let Some(what) = bad {
            return Err(PathError::BadCharacter(what));
        }
    }
    Ok(())
}

fn shorten(text: &str) -> String {
    let mut end = text.len().min(80);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> String {
        WorkspacePath::parse(text).unwrap().relative()
    }

    #[test]
    fn paths_under_the_mount_or_relative_are_the_same() {
        assert_eq!(ok("/workspace/data/a.csv"), "data/a.csv");
        assert_eq!(ok("data/a.csv"), "data/a.csv");
        assert_eq!(ok("./data//a.csv/"), "data/a.csv");
        assert_eq!(ok("/workspace"), ".");
        assert_eq!(ok(""), ".");
        assert_eq!(ok("héllo wörld.txt"), "héllo wörld.txt");
        assert_eq!(
            WorkspacePath::parse("a/b").unwrap().shown(),
            "/workspace/a/b"
        );
    }

    #[test]
    fn nothing_leaves_the_workspace() {
        for (text, error) in [
            ("/etc/passwd", PathError::Outside("/etc/passwd".into())),
            ("/workspace2/x", PathError::Outside("/workspace2/x".into())),
            (
                "/proc/self/environ",
                PathError::Outside("/proc/self/environ".into()),
            ),
            ("../x", PathError::ParentComponent),
            ("a/../../x", PathError::ParentComponent),
            ("/workspace/..", PathError::ParentComponent),
            ("a\0b", PathError::BadCharacter("NUL")),
            ("a\\..\\b", PathError::BadCharacter("a backslash")),
            ("a\nb", PathError::BadCharacter("control characters")),
            (
                "evil\u{202E}txt.exe",
                PathError::BadCharacter("invisible or bidirectional-control characters"),
            ),
            (
                "a\u{200B}b",
                PathError::BadCharacter("invisible or bidirectional-control characters"),
            ),
            (".warden-tmp-1", PathError::Reserved),
        ] {
            assert_eq!(WorkspacePath::parse(text), Err(error), "{text:?}");
        }
        assert_eq!(
            WorkspacePath::parse(&"n".repeat(256)),
            Err(PathError::NameTooLong)
        );
        assert_eq!(
            WorkspacePath::parse(&"d/".repeat(17)),
            Err(PathError::TooDeep)
        );
        assert_eq!(
            WorkspacePath::parse(&format!(
                "{}/{}/{}/{}/{}",
                "a".repeat(250),
                "b".repeat(250),
                "c".repeat(250),
                "d".repeat(250),
                "e".repeat(250)
            )),
            Err(PathError::PathTooLong)
        );
    }

    #[test]
    fn parents_and_containment() {
        let p = WorkspacePath::parse("a/b/c").unwrap();
        assert_eq!(p.parent().relative(), "a/b");
        assert!(WorkspacePath::parse("a").unwrap().contains(&p));
        assert!(!WorkspacePath::parse("a/b/c/d").unwrap().contains(&p));
        assert!(WorkspacePath::root().contains(&p));
        assert_eq!(WorkspacePath::root().parent(), WorkspacePath::root());
    }
}
