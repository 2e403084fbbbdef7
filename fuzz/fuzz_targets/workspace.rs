//! The workspace's path and quota layer: a sequence of operations (write, append, mkdir,
//! remove, rename, read, list, and the guests' one call with built or raw requests) with paths
//! drawn from hostile spellings, on a real directory.
//!
//! Asserts: nothing panics; every path that `WorkspacePath::parse` accepts stays under the
//! workspace, and every refusal is an `FsError`; after every operation the usage the workspace
//! keeps equals what is on disk and never passes the quota; a refused write changes nothing;
//! the host directory holds only regular files and directories, all inside it; the directory
//! outside the workspace is untouched.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use warden::workspace::bridge;
use warden::workspace::roots::WorkspaceRoot;
use warden::workspace::{Kind, Quota, Usage, Workspace, WorkspacePath, WriteMode};

const QUOTA: Quota = Quota {
    max_bytes: 4096,
    max_entries: 12,
    max_file_bytes: 2048,
};

/// Spellings that try to leave, hide or confuse.
const NAMES: &[&str] = &[
    "a",
    "b",
    "a/b",
    "a/b/c",
    "/workspace/a",
    "/workspace",
    "..",
    "../x",
    "a/../..",
    "/etc/passwd",
    "/proc/self/environ",
    ".",
    "./a",
    "a//b",
    "a\0b",
    "a\\b",
    "x\u{202E}y",
    ".warden-tmp-1",
    "/workspace/../x",
    "c.txt",
    "d/e.csv",
    "",
    "/",
    "a/b/../../..",
];

#[derive(Arbitrary, Debug)]
enum Op {
    Write {
        path: Name,
        len: u16,
        mode: u8,
    },
    Mkdir {
        path: Name,
        parents: bool,
    },
    Remove {
        path: Name,
        recursive: bool,
    },
    Rename {
        from: Name,
        to: Name,
    },
    Read {
        path: Name,
    },
    List {
        path: Name,
    },
    /// The guests' one call, with a request built from parts or raw bytes.
    Bridge {
        request: Request,
        len: u16,
    },
}

#[derive(Arbitrary, Debug)]
enum Request {
    Parts {
        op: u8,
        path: Name,
        to: Name,
        flag: bool,
    },
    Raw(Vec<u8>),
}

const OPS: &[&str] = &[
    "read", "write", "mkdir", "remove", "rename", "stat", "list", "chmod",
];

impl Request {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Request::Parts { op, path, to, flag } => serde_json::json!({
                "op": OPS[*op as usize % OPS.len()],
                "path": path.text(),
                "to": to.text(),
                "parents": flag,
                "recursive": flag,
                "mode": if *flag { "append" } else { "replace" },
            })
            .to_string()
            .into_bytes(),
            Request::Raw(bytes) => bytes.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Raw(String),
}

impl Name {
    fn text(&self) -> &str {
        match self {
            Name::Known(i) => NAMES[*i as usize % NAMES.len()],
            Name::Raw(s) => s,
        }
    }
}

fn outside() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory"))
        .path()
}

fuzz_target!(|ops: Vec<Op>| {
    let base = outside();
    let sentinel = base.join("outside.txt");
    std::fs::write(&sentinel, "outside").expect("write the sentinel");
    let root = WorkspaceRoot::open(&base.join("workspaces")).expect("a workspace root");
    let mut owned = root.create(QUOTA).expect("a workspace");
    for op in ops.iter().take(64) {
        let before = owned.workspace.usage();
        let parse = |name: &Name| WorkspacePath::parse(name.text());
        let ws = &mut owned.workspace;
        let refused_write = match op {
            Op::Write { path, len, mode } => match parse(path) {
                Ok(path) => {
                    let mode = match mode % 3 {
                        0 => WriteMode::Replace,
                        1 => WriteMode::Append,
                        _ => WriteMode::CreateNew,
                    };
                    let data = vec![b'x'; usize::from(*len) % 3000];
                    ws.write(&path, &data, mode).is_err()
                }
                Err(_) => true,
            },
            Op::Mkdir { path, parents } => {
                if let Ok(path) = parse(path) {
                    let _ = ws.mkdir(&path, *parents);
                }
                false
            }
            Op::Remove { path, recursive } => {
                if let Ok(path) = parse(path) {
                    let _ = ws.remove(&path, *recursive);
                }
                false
            }
            Op::Rename { from, to } => {
                if let (Ok(from), Ok(to)) = (parse(from), parse(to)) {
                    let _ = ws.rename(&from, &to);
                }
                false
            }
            Op::Read { path } => {
                if let Ok(path) = parse(path) {
                    let _ = ws.read(&path);
                }
                false
            }
            Op::List { path } => {
                if let Ok(path) = parse(path) {
                    let _ = ws.list(&path);
                }
                false
            }
            Op::Bridge { request, len } => {
                let data = vec![b'y'; usize::from(*len) % 3000];
                let reply = bridge::handle(ws, &request.bytes(), &data);
                let answer: serde_json::Value =
                    serde_json::from_str(&reply.answer).expect("every answer is JSON");
                let ok = answer["ok"].as_bool().expect("every answer says ok or not");
                assert!(
                    ok || answer["code"].as_str().is_some_and(|c| c.starts_with('E')),
                    "a refusal carries an errno code: {answer}"
                );
                // `mkdir -p` may make some directories before a quota stops it: only the
                // invariants below (usage = disk, within the quota) hold for every request.
                false
            }
        };
        let usage = owned.workspace.usage();
        if refused_write {
            assert_eq!(
                usage, before,
                "a refused write changed the usage after {op:?}"
            );
        }
        assert!(
            usage.bytes <= QUOTA.max_bytes && usage.entries <= QUOTA.max_entries,
            "{usage:?}"
        );
        assert_eq!(
            on_disk(owned.path()),
            usage,
            "usage out of step after {op:?}"
        );
        let counted = Workspace::open(owned.path(), QUOTA)
            .expect("reopen")
            .usage();
        assert_eq!(counted, usage);
        for file in owned.workspace.files().expect("files") {
            assert_eq!(file.kind, Kind::File);
            assert!(file.size <= QUOTA.max_file_bytes);
        }
    }
    assert_eq!(
        std::fs::read_to_string(&sentinel).expect("sentinel"),
        "outside"
    );
});

/// What the host directory holds, counted without the workspace's help; anything but a file
/// or a directory fails the target.
fn on_disk(dir: &Path) -> Usage {
    let mut usage = Usage::default();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).expect("read_dir") {
            let entry = entry.expect("entry");
            let kind = entry.file_type().expect("file type");
            assert!(
                kind.is_file() || kind.is_dir(),
                "{:?} is neither",
                entry.path()
            );
            usage.entries += 1;
            if kind.is_dir() {
                pending.push(entry.path());
            } else {
                usage.bytes += entry.metadata().expect("metadata").len();
            }
        }
    }
    usage
}
