//! The workspace's operations, quotas and refusals, on a real directory.

use super::roots::WorkspaceRoot;
use super::*;

const QUOTA: Quota = Quota {
    max_bytes: 1000,
    max_entries: 6,
    max_file_bytes: 600,
};

fn p(text: &str) -> WorkspacePath {
    WorkspacePath::parse(text).unwrap()
}

fn root() -> (tempfile::TempDir, WorkspaceRoot) {
    let base = tempfile::tempdir().unwrap();
    let root = WorkspaceRoot::open(&base.path().join("workspaces")).unwrap();
    (base, root)
}

#[test]
fn files_are_written_read_listed_and_removed() {
    let (_base, root) = root();
    let mut owned = root.create(QUOTA).unwrap();
    let ws = &mut owned.workspace;
    ws.mkdir(&p("data/raw"), true).unwrap();
    ws.write(
        &p("/workspace/data/raw/a.csv"),
        b"x,y\n1,2\n",
        WriteMode::Replace,
    )
    .unwrap();
    ws.write(&p("data/raw/a.csv"), b"3,4\n", WriteMode::Append)
        .unwrap();
    assert_eq!(ws.read(&p("data/raw/a.csv")).unwrap(), b"x,y\n1,2\n3,4\n");
    assert_eq!(
        ws.usage(),
        Usage {
            bytes: 12,
            entries: 3
        }
    );
    let listed: Vec<String> = ws
        .list(&p("data"))
        .unwrap()
        .iter()
        .map(|e| e.path.shown())
        .collect();
    assert_eq!(listed, ["/workspace/data/raw"]);
    let files = ws.files().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        (files[0].path.relative(), files[0].size),
        ("data/raw/a.csv".to_string(), 12)
    );
    ws.rename(&p("data/raw/a.csv"), &p("b.csv")).unwrap();
    assert_eq!(ws.stat(&p("b.csv")).unwrap().kind, Kind::File);
    assert_eq!(
        ws.remove(&p("data"), false),
        Err(FsError::NotEmpty("/workspace/data".into()))
    );
    ws.remove(&p("data"), true).unwrap();
    assert_eq!(
        ws.usage(),
        Usage {
            bytes: 12,
            entries: 1
        }
    );
    assert_eq!(ws.read(&p("data/raw/a.csv")).unwrap_err().code(), "ENOENT");
    // Nothing of Warden's own (temporary names) shows.
    assert_eq!(ws.list(&WorkspacePath::root()).unwrap().len(), 1);
    let dir = root.path().to_path_buf();
    drop(owned);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "only the lock file is left"
    );
}

#[test]
fn quotas_refuse_a_write_whole_and_change_nothing() {
    let (_base, root) = root();
    let mut owned = root.create(QUOTA).unwrap();
    let ws = &mut owned.workspace;
    ws.write(&p("a"), &[1; 500], WriteMode::Replace).unwrap();
    assert_eq!(
        ws.write(&p("b"), &[1; 601], WriteMode::Replace),
        Err(FsError::FileTooLarge { max: 600 })
    );
    assert_eq!(
        ws.write(&p("b"), &[1; 501], WriteMode::Replace),
        Err(FsError::NoSpace { max: 1000 })
    );
    assert_eq!(
        ws.write(&p("a"), &[1; 101], WriteMode::Append),
        Err(FsError::FileTooLarge { max: 600 })
    );
    assert_eq!(
        ws.read(&p("a")).unwrap().len(),
        500,
        "the refused append left the file as it was"
    );
    assert!(
        ws.read(&p("b")).is_err(),
        "the refused write left nothing behind"
    );
    // Replacing a file frees its old size first.
    ws.write(&p("a"), &[2; 600], WriteMode::Replace).unwrap();
    for name in ["c", "d", "e", "f", "g"] {
        ws.write(&p(name), b"", WriteMode::Replace).unwrap();
    }
    assert_eq!(
        ws.write(&p("h"), b"", WriteMode::Replace),
        Err(FsError::TooManyEntries { max: 6 })
    );
    assert_eq!(
        ws.mkdir(&p("dir"), false),
        Err(FsError::TooManyEntries { max: 6 })
    );
    assert_eq!(
        ws.usage(),
        Usage {
            bytes: 600,
            entries: 6
        }
    );
    assert_eq!(FsError::NoSpace { max: 1 }.code(), "ENOSPC");
    assert_eq!(FsError::TooManyEntries { max: 1 }.code(), "EDQUOT");
}

#[test]
fn links_devices_and_fifos_are_never_followed() {
    let (_base, root) = root();
    let mut owned = root.create(QUOTA).unwrap();
    let host_dir = owned.path().to_path_buf();
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "host secret").unwrap();
    // Planted from outside (the guest has no way to make them).
    std::os::unix::fs::symlink(secret.path(), host_dir.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc", host_dir.join("etc")).unwrap();
    std::fs::create_dir(host_dir.join("d")).unwrap();
    std::os::unix::fs::symlink("/tmp", host_dir.join("d/escape")).unwrap();
    let host_file = host_dir.join("../../hard-target");
    std::fs::write(&host_file, "host data").unwrap();
    std::fs::hard_link(&host_file, host_dir.join("hard")).unwrap();
    let fifo = std::ffi::CString::new(host_dir.join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let ws = &mut owned.workspace;
    for path in ["link", "etc/passwd", "d/escape/x", "fifo", "hard"] {
        let read = ws.read(&p(path)).unwrap_err();
        assert!(matches!(read, FsError::Unsupported(_)), "{path}: {read:?}");
    }
    assert!(matches!(
        ws.write(&p("link"), b"x", WriteMode::Replace),
        Err(FsError::Unsupported(_))
    ));
    assert!(matches!(
        ws.write(&p("etc/x"), b"x", WriteMode::Replace),
        Err(FsError::Unsupported(_))
    ));
    assert_eq!(
        std::fs::read_to_string(secret.path()).unwrap(),
        "host secret"
    );
    let listed: Vec<String> = ws
        .list(&WorkspacePath::root())
        .unwrap()
        .iter()
        .map(|e| e.path.relative())
        .collect();
    assert_eq!(listed, ["d"], "only real files and directories are listed");
}

#[test]
fn a_new_process_removes_what_a_dead_one_left() {
    let base = tempfile::tempdir().unwrap();
    let workspaces = base.path().join("w");
    let first = WorkspaceRoot::open(&workspaces).unwrap();
    let kept = first.create(QUOTA).unwrap();
    let first_dir = first.path().to_path_buf();
    // A second root in the same process sees the first one's lock held: it stays.
    let second = WorkspaceRoot::open(&workspaces).unwrap();
    assert!(first_dir.exists());
    // A dead process's directory: its lock file is not held by anyone.
    let dead = workspaces.join("warden-deadbeef");
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join(".lock"), "").unwrap();
    std::fs::write(dead.join("leftover"), "data").unwrap();
    let third = WorkspaceRoot::open(&workspaces).unwrap();
    assert!(!dead.exists(), "the dead process's workspaces are gone");
    assert!(first_dir.exists() && second.path().exists() && third.path().exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(third.path()).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    drop(kept);
}

#[test]
fn a_base_open_to_others_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let open = base.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    assert!(WorkspaceRoot::open(&open).is_err());
}

#[test]
fn moves_and_replacements_follow_the_rules() {
    let (_base, root) = root();
    let mut owned = root.create(QUOTA).unwrap();
    let ws = &mut owned.workspace;
    ws.mkdir(&p("a/b"), true).unwrap();
    assert_eq!(
        ws.rename(&p("a"), &p("a/b/c")).unwrap_err().code(),
        "EINVAL"
    );
    ws.write(&p("f"), b"12345", WriteMode::Replace).unwrap();
    ws.write(&p("g"), b"1", WriteMode::Replace).unwrap();
    ws.rename(&p("g"), &p("f")).unwrap();
    assert_eq!(
        ws.usage(),
        Usage {
            bytes: 1,
            entries: 3
        }
    );
    assert_eq!(ws.rename(&p("f"), &p("a")).unwrap_err().code(), "EISDIR");
    assert_eq!(
        ws.write(&p("f"), b"", WriteMode::CreateNew)
            .unwrap_err()
            .code(),
        "EEXIST"
    );
    assert_eq!(
        ws.write(&p("f/x"), b"", WriteMode::Replace)
            .unwrap_err()
            .code(),
        "ENOTDIR"
    );
    assert_eq!(
        ws.write(&p("nope/x"), b"", WriteMode::Replace)
            .unwrap_err()
            .code(),
        "ENOENT"
    );
    assert_eq!(
        ws.remove(&WorkspacePath::root(), true).unwrap_err().code(),
        "EBUSY"
    );
    assert_eq!(ws.mkdir(&p("a"), false).unwrap_err().code(), "EEXIST");
    ws.mkdir(&p("a"), true).unwrap();
    // Reopening counts what is there.
    let again = Workspace::open(owned.path(), QUOTA).unwrap();
    assert_eq!(again.usage(), owned.workspace.usage());
}
