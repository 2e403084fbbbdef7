"""The Python guest's workspace shim (guest-runtimes/python/warden_fs.py) on this machine's
CPython, against an in-memory stand-in for the host's workspace call that speaks the bridge's
protocol (src/workspace/bridge.rs) with a byte quota. The libraries agents use on files
(csv, json, pathlib, zipfile, gzip, os.walk) must work through it unchanged; the real host
call is exercised through the MCP tool (test_sessions.py, tests/escapes/workspace.rs). Runs in a subprocess: the shim patches
`open` and `os` for the whole interpreter."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r'''
import errno, json, posixpath, sys
sys.path.insert(0, sys.argv[1])
import warden_fs

files, dirs = {}, {"/workspace"}
QUOTA = 4096

def fail(code, message):
    return json.dumps({"ok": False, "code": code, "message": message}), b""

def call(request, data):
    r = json.loads(request)
    op, path = r["op"], r.get("path")
    if op == "usage":
        return json.dumps({"ok": True, "max_bytes": QUOTA, "max_files": 100, "max_file_bytes": 2 * QUOTA,
                           "bytes": sum(map(len, files.values())), "files": len(files) + len(dirs) - 1}), b""
    parent = posixpath.dirname(path)
    if op == "read":
        if path in dirs: return fail("EISDIR", path)
        if path not in files: return fail("ENOENT", path)
        return json.dumps({"ok": True}), files[path]
    if op == "write":
        if parent not in dirs: return fail("ENOENT", parent)
        if r.get("mode") == "create_new" and path in files: return fail("EEXIST", path)
        old = files.get(path, b"")
        new = old + data if r.get("mode") == "append" else data
        if sum(map(len, files.values())) - len(old) + len(new) > QUOTA:
            return fail("ENOSPC", "no space left in the workspace")
        files[path] = new
        return json.dumps({"ok": True}), b""
    if op == "mkdir":
        if path in dirs or path in files: return fail("EEXIST", path)
        if parent not in dirs: return fail("ENOENT", parent)
        dirs.add(path)
        return json.dumps({"ok": True}), b""
    if op == "stat":
        if path in dirs: return json.dumps({"ok": True, "entry": {"name": posixpath.basename(path), "path": path, "kind": "directory", "size": 0, "modified_ms": 0}}), b""
        if path in files: return json.dumps({"ok": True, "entry": {"name": posixpath.basename(path), "path": path, "kind": "file", "size": len(files[path]), "modified_ms": 1000}}), b""
        return fail("ENOENT", path)
    if op == "list":
        if path not in dirs: return fail("ENOENT", path)
        names = sorted({p[len(path) + 1:].split("/")[0] for p in list(files) + list(dirs) if p.startswith(path + "/")})
        entries = []
        for n in names:
            full = path + "/" + n
            kind = "directory" if full in dirs else "file"
            entries.append({"name": n, "path": full, "kind": kind, "size": len(files.get(full, b"")), "modified_ms": 0})
        return json.dumps({"ok": True, "entries": entries}), b""
    if op == "remove":
        if path in files: del files[path]; return json.dumps({"ok": True}), b""
        if path in dirs:
            inside = [p for p in list(files) + list(dirs) if p.startswith(path + "/")]
            if inside and not r.get("recursive"): return fail("ENOTEMPTY", path)
            for p in inside: files.pop(p, None); dirs.discard(p)
            dirs.discard(path)
            return json.dumps({"ok": True}), b""
        return fail("ENOENT", path)
    if op == "rename":
        if path not in files: return fail("ENOENT", path)
        files[r["to"]] = files.pop(path)
        return json.dumps({"ok": True}), b""
    return fail("EINVAL", op)

warden_fs.install(call)

import csv, gzip, io, os, zipfile
from pathlib import Path

assert os.getcwd() == "/workspace"
os.makedirs("data/raw", exist_ok=True)
with open("data/raw/sales.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["region", "amount"])
    w.writerows([["north", 3], ["south", 4], ["north", 5]])
with open("/workspace/data/raw/sales.csv", newline="") as f:
    rows = list(csv.DictReader(f))
assert sum(int(r["amount"]) for r in rows if r["region"] == "north") == 8, rows

with open("summary.json", "w") as f:
    json.dump({"north": 8}, f)
assert json.load(open("summary.json")) == {"north": 8}

p = Path("notes")
p.mkdir()
(p / "a.txt").write_text("héllo")
assert (p / "a.txt").read_text() == "héllo"
assert (p / "a.txt").exists() and p.is_dir() and not (p / "b.txt").exists()
assert sorted(x.name for x in p.iterdir()) == ["a.txt"]
assert os.path.getsize("notes/a.txt") == len("héllo".encode())

with open("log.txt", "a") as f: f.write("one\n")
with open("log.txt", "a") as f: f.write("two\n")
assert open("log.txt").read().splitlines() == ["one", "two"]

with zipfile.ZipFile("out.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("inner.txt", "zipped " * 10)
with zipfile.ZipFile("out.zip") as z:
    assert z.read("inner.txt").decode().startswith("zipped")

with gzip.open("data.gz", "wt") as g: g.write("compressed")
with gzip.open("data.gz", "rt") as g: assert g.read() == "compressed"

walked = sorted(posixpath.join(d, n) for d, _, names in os.walk("/workspace") for n in names)
assert "/workspace/data/raw/sales.csv" in walked and "/workspace/notes/a.txt" in walked, walked

os.rename("log.txt", "notes/log.txt")
os.remove("notes/log.txt")
try:
    open("missing.txt")
    raise AssertionError("a missing file was opened")
except FileNotFoundError:
    pass
try:
    open("summary.json", "x")
    raise AssertionError("x mode opened an existing file")
except FileExistsError:
    pass
try:
    os.rmdir("notes")
    raise AssertionError("a non-empty directory was removed")
except OSError as e:
    assert e.errno == errno.ENOTEMPTY, e

before = open("summary.json").read()
try:
    with open("summary.json", "w") as f:
        f.write("x" * 5000)
    raise AssertionError("a write past the quota succeeded")
except OSError as e:
    assert e.errno == errno.ENOSPC, e
assert open("summary.json").read() in ("", before)
import shutil
shutil.rmtree("notes")
assert not os.path.exists("notes")
print("ok")
'''


def test_the_libraries_agents_use_work_through_the_workspace_shim():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(ROOT / "guest-runtimes" / "python")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
