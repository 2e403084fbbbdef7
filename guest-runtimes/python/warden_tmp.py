"""`/tmp` for Python code: a scratch directory in the run's own memory, speaking the workspace's
protocol (src/workspace/bridge.rs) so that warden_fs serves both with one set of functions.

Packages write temporary files as a matter of course (openpyxl writes each sheet to one before
zipping the workbook), and programs expect a /tmp. Its files count against the run's memory
limit, leave with the run (a session keeps them until its interpreter restarts) and never reach
the host: nothing here calls out.
"""

import json
import posixpath
import time

MOUNT = "/tmp"

# Path -> bytearray for files, None for directories.
_entries = {MOUNT: None}
_modified = {MOUNT: 0}


def _fail(code, message):
    return json.dumps({"ok": False, "code": code, "message": message}), b""


def _ok(data=b"", **fields):
    return json.dumps(dict(ok=True, **fields)), bytes(data)


def _entry(path):
    content = _entries[path]
    return {
        "name": posixpath.basename(path),
        "path": path,
        "kind": "directory" if content is None else "file",
        "size": 0 if content is None else len(content),
        "modified_ms": _modified.get(path, 0),
    }


def _children(path):
    prefix = path + "/"
    return sorted(p for p in _entries if p.startswith(prefix) and "/" not in p[len(prefix):])


def _touch(path):
    _modified[path] = int(time.time() * 1000)


def call(request_json, data):
    """One request, as the host's workspace call takes it: `(answer_json, bytes)`."""
    request = json.loads(request_json)
    op, path = request.get("op"), request.get("path")
    if op == "usage":
        used = sum(len(c) for c in _entries.values() if c is not None)
        # Bounded by the run's memory limit, not by a quota of its own.
        return _ok(max_bytes=1 << 40, max_files=1 << 30, max_file_bytes=1 << 40, bytes=used,
                   files=len(_entries))
    if not isinstance(path, str) or not (path == MOUNT or path.startswith(MOUNT + "/")):
        return _fail("EINVAL", "not a path under /tmp")
    parent = posixpath.dirname(path)
    exists = path in _entries
    if op == "read":
        if not exists:
            return _fail("ENOENT", "No such file or directory")
        if _entries[path] is None:
            return _fail("EISDIR", "Is a directory")
        return _ok(_entries[path])
    if op == "write":
        mode = request.get("mode", "replace")
        if parent not in _entries or _entries[parent] is not None:
            return _fail("ENOENT", "No such file or directory")
        if exists and _entries[path] is None:
            return _fail("EISDIR", "Is a directory")
        if exists and mode == "create_new":
            return _fail("EEXIST", "File exists")
        if mode == "append" and exists:
            _entries[path] += data
        else:
            _entries[path] = bytearray(data)
        _touch(path)
        return _ok()
    if op == "mkdir":
        if exists:
            return _fail("EEXIST", "File exists")
        missing = []
        while parent not in _entries:
            missing.append(parent)
            parent = posixpath.dirname(parent)
        if _entries[parent] is not None or (missing and not request.get("parents")):
            return _fail("ENOENT", "No such file or directory")
        for directory in reversed(missing + [path]):
            _entries[directory] = None
            _touch(directory)
        return _ok()
    if op == "stat":
        return _ok(entry=_entry(path)) if exists else _fail("ENOENT", "No such file or directory")
    if op == "list":
        if not exists:
            return _fail("ENOENT", "No such file or directory")
        if _entries[path] is not None:
            return _fail("ENOTDIR", "Not a directory")
        return _ok(entries=[_entry(p) for p in _children(path)])
    if op == "remove":
        if not exists:
            return _fail("ENOENT", "No such file or directory")
        if path == MOUNT:
            return _fail("EACCES", "/tmp itself cannot be removed")
        inside = [p for p in _entries if p.startswith(path + "/")]
        if inside and not request.get("recursive"):
            return _fail("ENOTEMPTY", "Directory not empty")
        for p in inside + [path]:
            _entries.pop(p, None)
            _modified.pop(p, None)
        return _ok()
    if op == "rename":
        to = request.get("to")
        if not isinstance(to, str) or not to.startswith(MOUNT + "/"):
            return _fail("EXDEV", "Invalid cross-device link")
        if not exists:
            return _fail("ENOENT", "No such file or directory")
        if posixpath.dirname(to) not in _entries or to.startswith(path + "/"):
            return _fail("ENOENT", "No such file or directory")
        moved = [p for p in _entries if p == path or p.startswith(path + "/")]
        for p in moved:
            _entries[to + p[len(path):]] = _entries.pop(p)
            _modified[to + p[len(path):]] = _modified.pop(p, 0)
        return _ok()
    return _fail("EINVAL", f"unknown operation {op!r}")

