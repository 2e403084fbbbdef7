"""The workspace for Python code: `open`, `io.open`, `os` and `os.path` on `/workspace` (and on
relative paths: the working directory is `/workspace`), through the host's one workspace call
(src/workspace/bridge.rs): a JSON request plus bytes in, a JSON answer plus bytes out.

Files are read whole when opened and written back whole when flushed or closed, so the host
checks every write against the workspace's quotas and a refused write raises `OSError` (ENOSPC,
EDQUOT, EFBIG) with the file left as it was. `pathlib`, `csv`, `json`, `zipfile` and `gzip`
work through these functions. `/tmp` is a scratch directory in the run's memory (warden_tmp),
served by the same functions; tempfile's NamedTemporaryFile, TemporaryFile, SpooledTemporaryFile,
mkstemp (its descriptor accepted by os.close, os.fdopen and os.write), mkdtemp and
TemporaryDirectory use it. Paths under warden_packages.ROOT are the built-in packages'
files, read-only (a package may read a file beside its `__file__`). Paths elsewhere go to the
original functions (which find no files: the sandbox has none).

Issue 14: installed by app.py once the host offers the call (`install(call)`).
"""

import builtins
import errno
import functools
import io
import itertools
import json
import os
import posixpath
import stat as _modes

import warden_tmp

MOUNT = "/workspace"

_ERRORS = {
    "ENOENT": FileNotFoundError,
    "EEXIST": FileExistsError,
    "ENOTDIR": NotADirectoryError,
    "EISDIR": IsADirectoryError,
    "EACCES": PermissionError,
    "EPERM": PermissionError,
}

_call = None
_original = {}
# warden_packages, once installed: serves reads of the packages' own files.
_library = None


def _ask(request, data=b"", place=None):
    """One request to the host's workspace, or to /tmp in memory, by the path it is about."""
    place = place or request.get("path") or ""
    call = warden_tmp.call if place == warden_tmp.MOUNT or place.startswith(warden_tmp.MOUNT + "/") else _call
    if call is None:  # while the guest is built: there is no host to ask
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", request.get("path"))
    answer, payload = call(json.dumps(request), bytes(data))
    answer = json.loads(answer)
    if not answer.get("ok"):
        code = answer.get("code", "EIO")
        number = getattr(errno, code, errno.EIO)
        raise _ERRORS.get(code, OSError)(number, answer.get("message", code), request.get("path"))
    return answer, payload


def _ours(path):
    """The workspace (or /tmp) path for `path`, or None when it is in neither (or is an fd)."""
    if isinstance(path, int):
        return None
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = path.decode("utf-8", "surrogateescape")
    if not path.startswith("/"):
        path = MOUNT + "/" + path
    path = posixpath.normpath(path)
    for mount in (MOUNT, warden_tmp.MOUNT):
        if path == mount or path.startswith(mount + "/"):
            return path
    return None


class _WorkspaceFile(io.BytesIO):
    """A file's bytes in memory, written back whole on flush and close."""

    def __init__(self, path, mode):
        self._path = path
        self.name = path
        self.mode = mode
        self._readable = "r" in mode or "+" in mode
        self._writable = any(c in mode for c in "wax+")
        content = b""
        if "r" in mode:
            content = _ask({"op": "read", "path": path})[1]
        elif "a" in mode:
            try:
                content = _ask({"op": "read", "path": path})[1]
            except FileNotFoundError:
                content = b""
        super().__init__(content)
        self._dirty = False
        if "w" in mode:
            _ask({"op": "write", "path": path, "mode": "replace"}, b"")
        elif "x" in mode:
            _ask({"op": "write", "path": path, "mode": "create_new"}, b"")
        elif "a" in mode:
            self.seek(0, io.SEEK_END)
            if not content:
                _ask({"op": "write", "path": path, "mode": "replace"}, b"")
        self._limits = None
        if self._writable:
            # Writes are kept until flush or close; the quota is checked as they come, so that
            # a write past it fails where it is made (a file that is never closed explicitly
            # would otherwise lose the error in its finalizer).
            usage = _ask({"op": "usage"}, place=path)[0]
            room = usage["max_bytes"] - usage["bytes"] + (len(content) if "w" not in mode else 0)
            self._limits = (usage["max_file_bytes"], room)

    def readable(self):
        return self._readable

    def writable(self):
        return self._writable

    def read(self, size=-1):
        if not self._readable:
            raise io.UnsupportedOperation("not readable")
        return super().read(size)

    def readline(self, size=-1):
        if not self._readable:
            raise io.UnsupportedOperation("not readable")
        return super().readline(size)

    def write(self, data):
        if not self._writable:
            raise io.UnsupportedOperation("not writable")
        if "a" in self.mode:
            self.seek(0, io.SEEK_END)
        with self.getbuffer() as held:
            size = max(self.tell() + memoryview(data).nbytes, held.nbytes)
        largest, room = self._limits
        if size > largest:
            raise OSError(errno.EFBIG, f"File too large: the workspace allows {largest} bytes per file", self._path)
        if size > room:
            raise OSError(errno.ENOSPC, "No space left: the workspace's quota is used up", self._path)
        self._dirty = True
        return super().write(data)

    def truncate(self, size=None):
        if not self._writable:
            raise io.UnsupportedOperation("not writable")
        self._dirty = True
        return super().truncate(size)

    def flush(self):
        if self._dirty and not self.closed:
            _ask({"op": "write", "path": self._path, "mode": "replace"}, self.getvalue())
            self._dirty = False

    def close(self):
        if not self.closed:
            try:
                self.flush()
            finally:
                super().close()


def _in_library(path):
    """`path` relative to the packages' root, or None when it is elsewhere (or an fd)."""
    if _library is None or isinstance(path, int):
        return None
    try:
        return _library.relative_path(os.fspath(path))
    except TypeError:
        return None


def _open_in_library(file, relative, mode, encoding, errors, newline):
    if any(c in mode for c in "wax+"):
        raise OSError(errno.EROFS, "Read-only file system", os.fspath(file))
    raw = io.BytesIO(_library.read(relative))
    raw.name = os.fspath(file)
    if "b" in mode:
        return raw
    return io.TextIOWrapper(raw, encoding or "utf-8", errors, newline)


def _open(file, mode="r", buffering=-1, encoding=None, errors=None, newline=None,
          closefd=True, opener=None):
    relative = _in_library(file)
    if relative is not None and opener is None:
        return _open_in_library(file, relative, mode, encoding, errors, newline)
    path = _ours(file)
    if path is None or opener is not None:
        return _original["open"](file, mode, buffering, encoding, errors, newline, closefd, opener)
    kinds = [c for c in mode if c in "rwax"]
    if len(kinds) != 1 or any(c not in "rwaxbt+" for c in mode) or ("b" in mode and "t" in mode):
        raise ValueError(f"invalid mode: {mode!r}")
    raw = _WorkspaceFile(path, mode)
    if "b" in mode:
        if encoding is not None or errors is not None or newline is not None:
            raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
        return raw
    text = io.TextIOWrapper(raw, encoding or "utf-8", errors, newline, write_through=True)
    text.mode = mode
    return text


def _stat_result(entry):
    mode = (_modes.S_IFDIR | 0o755) if entry["kind"] == "directory" else (_modes.S_IFREG | 0o644)
    seconds = entry["modified_ms"] / 1000
    return os.stat_result((mode, 0, 0, 1, 0, 0, entry["size"], seconds, seconds, seconds))


def _stat(path, *, dir_fd=None, follow_symlinks=True):
    relative = _in_library(path)
    if relative is not None and dir_fd is None:
        if _library.is_dir(relative):
            return _stat_result({"kind": "directory", "size": 0, "modified_ms": 0})
        size = len(_library.read(relative))  # FileNotFoundError when there is no such file
        return _stat_result({"kind": "file", "size": size, "modified_ms": 0})
    ours = _ours(path)
    if ours is None or dir_fd is not None:
        return _original["stat"](path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
    return _stat_result(_ask({"op": "stat", "path": ours})[0]["entry"])


def _lstat(path, *, dir_fd=None):
    return _stat(path, dir_fd=dir_fd)


def _listdir(path="."):
    relative = _in_library(path)
    if relative is not None:
        return _library.entries(relative)
    ours = _ours(path)
    if ours is None:
        return _original["listdir"](path)
    return [e["name"] for e in _ask({"op": "list", "path": ours})[0]["entries"]]


class _DirEntry:
    def __init__(self, parent, entry):
        self.name = entry["name"]
        self.path = posixpath.join(parent, self.name)
        self._entry = entry

    def is_dir(self, *, follow_symlinks=True):
        return self._entry["kind"] == "directory"

    def is_file(self, *, follow_symlinks=True):
        return self._entry["kind"] == "file"

    def is_symlink(self):
        return False

    def is_junction(self):
        return False

    def stat(self, *, follow_symlinks=True):
        return _stat_result(self._entry)

    def inode(self):
        return 0

    def __fspath__(self):
        return self.path

    def __repr__(self):
        return f"<DirEntry {self.name!r}>"


class _ScandirIterator:
    def __init__(self, entries):
        self._entries = iter(entries)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._entries)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._entries = iter(())


def _scandir(path="."):
    ours = _ours(path)
    if ours is None:
        return _original["scandir"](path)
    shown = os.fspath(path) if not isinstance(path, int) else ours
    listed = _ask({"op": "list", "path": ours})[0]["entries"]
    return _ScandirIterator([_DirEntry(shown, e) for e in listed])


def _mkdir(path, mode=0o777, *, dir_fd=None):
    ours = _ours(path)
    if ours is None or dir_fd is not None:
        return _original["mkdir"](path, mode, dir_fd=dir_fd)
    _ask({"op": "mkdir", "path": ours, "parents": False})


def _remove(path, *, dir_fd=None):
    ours = _ours(path)
    if ours is None or dir_fd is not None:
        return _original["remove"](path, dir_fd=dir_fd)
    if _ask({"op": "stat", "path": ours})[0]["entry"]["kind"] == "directory":
        raise IsADirectoryError(errno.EISDIR, "Is a directory", os.fspath(path))
    _ask({"op": "remove", "path": ours, "recursive": False})


def _rmdir(path, *, dir_fd=None):
    ours = _ours(path)
    if ours is None or dir_fd is not None:
        return _original["rmdir"](path, dir_fd=dir_fd)
    if _ask({"op": "stat", "path": ours})[0]["entry"]["kind"] != "directory":
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", os.fspath(path))
    _ask({"op": "remove", "path": ours, "recursive": False})


def _rename(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
    a, b = _ours(src), _ours(dst)
    if a is None or b is None or src_dir_fd is not None or dst_dir_fd is not None:
        return _original["rename"](src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
    _ask({"op": "rename", "path": a, "to": b})


def _utime(path, times=None, *, ns=None, dir_fd=None, follow_symlinks=True):
    """Files here keep the time of their last write (the workspace's protocol has no call to
    set it); setting it succeeds for a file that exists, as packages expect (XlsxWriter)."""
    ours = _ours(path)
    if ours is None or dir_fd is not None:
        return _original["utime"](path, times, ns=ns, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
    _ask({"op": "stat", "path": ours})


def _getcwd():
    return MOUNT


def _rmtree(path, ignore_errors=False, onerror=None, *, onexc=None, dir_fd=None):
    ours = _ours(path)
    if ours is None or dir_fd is not None:
        return _original["rmtree"](path, ignore_errors, onerror, onexc=onexc, dir_fd=dir_fd)
    try:
        _ask({"op": "remove", "path": ours, "recursive": True})
    except OSError:
        if not ignore_errors:
            raise


def _create_temporary(suffix, prefix, dir):
    """A new, empty file under /tmp (or the workspace) named as tempfile names them, created
    exclusively: `(name as given, our path, the type names come in)`."""
    import tempfile

    prefix, suffix, dir, output_type = tempfile._sanitize_params(prefix, suffix, dir)
    names = tempfile._get_candidate_names()
    for _ in range(tempfile.TMP_MAX):
        name = posixpath.join(dir, prefix + next(names) + suffix)
        path = _ours(name)
        if path is None:
            raise OSError(errno.EACCES, "temporary files go under /tmp or /workspace", name)
        try:
            _ask({"op": "write", "path": path, "mode": "create_new"})
        except FileExistsError:
            continue
        return name, path, output_type
    raise FileExistsError(errno.EEXIST, "No usable temporary file name found")


def _named_temporary_file(mode="w+b", buffering=-1, encoding=None, newline=None, suffix=None,
                          prefix=None, dir=None, delete=True, *, errors=None, delete_on_close=True):
    """tempfile.NamedTemporaryFile on /tmp (or the workspace): created exclusively, removed on
    close unless `delete` is false (the original needs file descriptors, which runs lack)."""
    import tempfile

    name, _, _ = _create_temporary(suffix, prefix, dir)
    file = _open(name, mode.replace("x", "w"), buffering, encoding, errors, newline)
    wrapper = tempfile._TemporaryFileWrapper(file, name, delete, delete_on_close)
    # Its closer took os.unlink as a default argument when tempfile was imported: give it ours.
    closer = wrapper._closer
    closer.cleanup = functools.partial(type(closer).cleanup, closer, unlink=_remove)
    return wrapper


def _temporary_file(mode="w+b", buffering=-1, encoding=None, newline=None, suffix=None,
                    prefix=None, dir=None, *, errors=None):
    """tempfile.TemporaryFile: a file without a name is only memory."""
    raw = io.BytesIO()
    if "b" in mode:
        return raw
    return io.TextIOWrapper(raw, encoding or "utf-8", errors, newline, write_through=True)


# tempfile.mkstemp's descriptors: numbers no real descriptor has, each naming its path (runs
# have no descriptors of their own; os.close, os.fdopen and os.write accept these).
_fd_numbers = itertools.count(1 << 20)
_fake_fds = {}


def _mkstemp(suffix=None, prefix=None, dir=None, text=False):
    """tempfile.mkstemp on /tmp (or the workspace): `(descriptor, path)`, the file created
    exclusively. Code typically closes the descriptor at once and opens the path."""
    name, path, output_type = _create_temporary(suffix, prefix, dir)
    fd = next(_fd_numbers)
    _fake_fds[fd] = path
    return fd, (os.fsencode(name) if output_type is bytes else name)


def _close(fd):
    if _fake_fds.pop(fd, None) is None:
        _original["close"](fd)


def _fdopen(fd, mode="r", *args, **kwargs):
    path = _fake_fds.pop(fd, None) if isinstance(fd, int) else None
    if path is None:
        return _original["fdopen"](fd, mode, *args, **kwargs)
    return _open(path, mode.replace("w", "r+") if "w" in mode else mode, *args, **kwargs)


def _write(fd, data):
    path = _fake_fds.get(fd)
    if path is None:
        return _original["write"](fd, data)
    _ask({"op": "write", "path": path, "mode": "append"}, data)
    return len(data)


def connect(call):
    """Routes the workspace's paths through `call` from now on (the last step of the build:
    until then, code imported into the snapshot finds no workspace)."""
    global _call
    _call = call


def install(call, library=None):
    """Routes the workspace's paths through `call(request_json, data) -> (answer_json, data)`,
    and reads of the built-in packages' files to `library` (warden_packages)."""
    global _call, _library
    import shutil

    _call = call
    _library = library
    for name in ("stat", "lstat", "listdir", "scandir", "mkdir", "remove", "unlink", "rmdir",
                 "rename", "replace", "getcwd", "close", "fdopen", "write", "utime"):
        _original.setdefault(name, getattr(os, name))
    _original.setdefault("open", builtins.open)
    _original.setdefault("rmtree", shutil.rmtree)
    builtins.open = io.open = _open
    os.stat, os.lstat = _stat, _lstat
    os.listdir, os.scandir = _listdir, _scandir
    os.mkdir = _mkdir
    os.remove = os.unlink = _remove
    os.rmdir = _rmdir
    os.rename = os.replace = _rename
    os.getcwd = _getcwd
    os.utime = _utime
    shutil.rmtree = _rmtree
    import tempfile

    # /tmp is the run's memory (warden_tmp); naming it skips tempfile's probe, which writes
    # through file descriptors.
    tempfile.tempdir = warden_tmp.MOUNT
    tempfile.NamedTemporaryFile = _named_temporary_file
    tempfile.TemporaryFile = _temporary_file
    tempfile.mkstemp = _mkstemp
    os.close, os.fdopen, os.write = _close, _fdopen, _write
