"""Pure-Python packages built into the guest (scripts/python_guest.py), served from memory.

A run has no filesystem, so at build time every file of the packages is read into the snapshot:
modules as compiled code, data files as bytes, under the made-up root ROOT. One meta-path
finder imports them (their `__file__` is under ROOT) and answers importlib.metadata (versions,
entry points); their loader answers importlib.resources (tzdata's zone files) and
pkgutil.get_data; warden_fs serves read-only opens of paths under ROOT (a package reading a
file beside its `__file__`). Nothing under ROOT can be written.

Packages are imported at build time (`preimport`), so that they are in the snapshot: a run
finds them ready, and they see the standard library before app.py blocks the modules the
sandbox cannot offer (a package module imported later meets that block like any code).
"""

import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.resources.abc
import io
import json
import marshal
import os
import posixpath
import sys
import types
import warnings
import zlib

ROOT = "/site-packages"
# The directory scripts/python_guest.py puts on componentize-py's path; absent in a build
# without packages.
SITE_NAME = "warden_site"

# Path relative to ROOT -> compressed bytes (a module's compiled code is marshalled); None for
# a module imported at build time, whose code lives on in the snapshot (see `release_imported`).
_files = {}
# Directory relative to ROOT ("" is ROOT) -> names of its entries.
_dirs = {"": set()}
manifest = {"packages": []}


STORE_NAME = "warden_store.bin"


def load(search_path):
    """Reads the packages from the first `warden_site` on `search_path` (build time). Returns
    False when this build only compiled them (see `_compile_store`)."""
    site = next(
        (os.path.join(p, SITE_NAME) for p in search_path if os.path.isdir(os.path.join(p, SITE_NAME))),
        None,
    )
    if site is None:
        return True
    with open(os.path.join(site, "warden_site.json"), "rb") as f:
        manifest.update(json.loads(f.read()))
    store = os.path.join(os.path.dirname(site), STORE_NAME)
    if not os.path.exists(store):
        _compile_store(site, store)
        return False
    # One buffer, zeroed once read: garbage left in the snapshot would be carried by every
    # run, and zero pages are not.
    buffer = bytearray(os.path.getsize(store))
    view = memoryview(buffer)
    with open(store, "rb", buffering=0) as f:
        done = 0
        while done < len(buffer):  # a raw read may return less than asked
            got = f.readinto(view[done:])
            if not got:
                raise OSError(f"{store} ended early")
            done += got
    _files.update(marshal.loads(buffer))
    zeros = bytes(1 << 20)
    for at in range(0, len(buffer), len(zeros)):
        chunk = view[at : at + len(zeros)]
        chunk[:] = zeros[: len(chunk)]
    view.release()
    del buffer, view
    for relative in _files:
        _register(relative)
    return True


def _compile_store(site, store):
    """The first of scripts/python_guest.py's two builds: compiles every module with this very
    interpreter (the guest's CPython, whose bytecode the host's Python cannot write) and writes
    them, with the data files, compressed, to `store`. Compiling leaves megabytes of garbage in
    memory; the second build, whose snapshot is kept, only reads the result."""
    files = {}
    for directory, subdirectories, names in os.walk(site):
        subdirectories[:] = sorted(d for d in subdirectories if d != "__pycache__")
        relative_dir = os.path.relpath(directory, site).replace(os.sep, "/")
        relative_dir = "" if relative_dir == "." else relative_dir
        for name in sorted(names):
            relative = posixpath.join(relative_dir, name)
            if relative == "warden_site.json":
                continue
            with open(os.path.join(directory, name), "rb") as f:
                data = f.read()
            if name.endswith(".py"):
                with warnings.catch_warnings():  # e.g. SyntaxWarnings in old code: not ours to fix
                    warnings.simplefilter("ignore")
                    code = compile(data, ROOT + "/" + relative, "exec", dont_inherit=True)
                data = marshal.dumps(code)
            files[relative] = zlib.compress(data, 9)
    with open(store, "wb") as f:
        f.write(marshal.dumps(files))


def _register(relative):
    parts = relative.split("/")
    for depth in range(len(parts)):
        _dirs.setdefault("/".join(parts[:depth]), set()).add(parts[depth])


def relative_path(path):
    """`path` relative to ROOT, or None when it is elsewhere."""
    path = posixpath.normpath(os.fsdecode(path))
    if path == ROOT:
        return ""
    if path.startswith(ROOT + "/"):
        return path[len(ROOT) + 1 :]
    return None


def read(relative):
    """A data file's bytes; OSError as for a missing file or a directory."""
    if relative in _dirs:
        raise IsADirectoryError(21, "Is a directory", ROOT + "/" + relative)
    try:
        data = _files[relative]
    except KeyError:
        raise FileNotFoundError(2, "No such file or directory", ROOT + "/" + relative) from None
    if data is None:
        raise PermissionError(13, "Permission denied: the module was compiled into the guest", ROOT + "/" + relative)
    return zlib.decompress(data)


def is_dir(relative):
    return relative in _dirs


def is_file(relative):
    return relative in _files


def entries(relative):
    if relative not in _dirs:
        raise FileNotFoundError(2, "No such file or directory", ROOT + "/" + relative)
    return sorted(_dirs[relative])


class _Loader(importlib.abc.InspectLoader):
    def __init__(self, fullname, relative, package):
        self.name = fullname
        self.relative = relative
        self.package = package

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.get_code(module.__name__), module.__dict__)

    def get_code(self, fullname):
        if _files[self.relative] is None:
            raise ImportError(
                f"{fullname} was imported when the guest was built and cannot be loaded again",
                name=fullname,
            )
        return marshal.loads(zlib.decompress(_files[self.relative]))

    def get_source(self, fullname):
        return None

    def is_package(self, fullname):
        return self.package

    def get_filename(self, fullname):
        return ROOT + "/" + self.relative

    def get_data(self, path):
        relative = relative_path(path)
        if relative is None:
            raise FileNotFoundError(2, "No such file or directory", path)
        return read(relative)

    def get_resource_reader(self, fullname):
        return _Resources(posixpath.dirname(self.relative)) if self.package else None


class _Resources(importlib.resources.abc.TraversableResources):
    def __init__(self, relative_dir):
        self.relative_dir = relative_dir

    def files(self):
        return _Traversable(self.relative_dir)


class _Traversable(importlib.resources.abc.Traversable):
    """A file or directory of the packages, for importlib.resources.files()."""

    def __init__(self, relative):
        self.relative = relative

    @property
    def name(self):
        return posixpath.basename(self.relative)

    def iterdir(self):
        return (_Traversable(posixpath.join(self.relative, n)) for n in entries(self.relative))

    def is_dir(self):
        return is_dir(self.relative)

    def is_file(self):
        return is_file(self.relative)

    def joinpath(self, *descendants):
        return _Traversable(posixpath.normpath(posixpath.join(self.relative, *descendants)))

    def __truediv__(self, child):
        return self.joinpath(child)

    def open(self, mode="r", *args, **kwargs):
        if mode not in ("r", "rb"):
            raise PermissionError(30, "Read-only file system", str(self))
        data = io.BytesIO(read(self.relative))
        return data if mode == "rb" else io.TextIOWrapper(data, *args, **kwargs)

    def read_bytes(self):
        return read(self.relative)

    def read_text(self, encoding=None):
        return read(self.relative).decode(encoding or "utf-8")

    def __fspath__(self):
        return str(self)

    def __str__(self):
        return posixpath.join(ROOT, self.relative) if self.relative else ROOT


class _Distribution(importlib.metadata.Distribution):
    def __init__(self, dist_info):
        self.dist_info = dist_info

    def read_text(self, filename):
        try:
            return read(posixpath.join(self.dist_info, filename)).decode("utf-8")
        except OSError:
            return None

    def locate_file(self, path):
        return _Traversable(posixpath.normpath(posixpath.join(posixpath.dirname(self.dist_info), os.fspath(path))))


def _normalized(name):
    return name.replace("-", "_").replace(".", "_").lower()


class Finder(importlib.abc.MetaPathFinder):
    """Finds the packages' modules (and distributions) in memory."""

    def find_spec(self, fullname, path=None, target=None):
        base = fullname.replace(".", "/")
        if base + "/__init__.py" in _files:
            relative, package = base + "/__init__.py", True
        elif base + ".py" in _files:
            relative, package = base + ".py", False
        elif base in _dirs and base:
            # A namespace package: a directory without __init__.py.
            spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [ROOT + "/" + base]
            return spec
        else:
            return None
        spec = importlib.machinery.ModuleSpec(
            fullname, _Loader(fullname, relative, package), origin=ROOT + "/" + relative, is_package=package
        )
        spec.has_location = True
        if package:
            spec.submodule_search_locations = [ROOT + "/" + base]
        return spec

    def find_distributions(self, context=importlib.metadata.DistributionFinder.Context()):
        wanted = _normalized(context.name) if context.name else None
        for name in sorted(_dirs[""]):
            if name.endswith(".dist-info") and (
                wanted is None or _normalized(name[: -len(".dist-info")].rsplit("-", 1)[0]) == wanted
            ):
                yield _Distribution(name)

    def invalidate_caches(self):
        pass


def install():
    """Puts the finder in front of the path finders (the packages shadow nothing of the
    standard library: their names are checked when the guest is built)."""
    sys.meta_path.insert(0, Finder())


def importable():
    """The top-level names the packages offer, sorted."""
    return sorted({n for p in manifest["packages"] for n in p.get("imports", [])})


def preimport():
    """Puts into the snapshot what runs will need of the packages; returns {name: error} for a
    preloaded package that could not be imported.

    - Every standard module the packages' code names in an import statement (at the top or
      inside a function: scripts/python_guest.py lists them), blocked ones included: a run can
      only import what the snapshot holds, and app.py hands the blocked ones to package code
      alone (warden's import gate, see app.py).
    - Packages marked `preload`: imported with all their modules, ready in every run.

    Some packages import, at their top level, standard modules whose native part WASI's CPython
    lacks, for one detail: sympy takes `sizeof(c_long)` from ctypes, networkx names
    `bz2.BZ2File` in a table of openers. Stand-ins serve those imports and are kept for package
    code only (as blocked modules are); what they offer loads and calls nothing native: sizes of
    wasm32's C types, and bz2 functions that raise OSError.
    """
    for name in manifest.get("imports_named", []):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names and top not in _NOT_FOR_RUNS:
            try:
                __import__(name)
            except Exception:  # e.g. tkinter: not in WASI's CPython; a run cannot have it either
                pass
    for name, make in (("ctypes", _ctypes_stand_in), ("bz2", _bz2_stand_in)):
        if name not in sys.modules:
            stand_ins[name] = sys.modules[name] = make()
    # importlib.metadata and .resources import parts of the standard library (email's parser,
    # for one) when first used: use them once, on the first package.
    for package in manifest["packages"][:1]:
        try:
            importlib.metadata.metadata(package["name"]).get_all("Requires-Dist")
            importlib.metadata.entry_points()
            importlib.metadata.files(package["name"])
        except Exception:
            pass
    failed = {}
    for package in manifest["packages"]:
        if not package.get("preload"):
            continue
        for name in package.get("imports", []):
            try:
                __import__(name)
            except Exception as e:  # reported by the build: the guest is refused
                failed[name] = f"{type(e).__name__}: {e}"
        # A module that cannot be imported here (an optional dependency missing) cannot be at
        # run time either; it is left out.
        for name in submodules(package.get("imports", [])):
            try:
                __import__(name)
            except Exception:
                pass
    for name in stand_ins:
        sys.modules.pop(name, None)
    return failed


# Standard modules the packages name that a run has no use for: development tools (their
# packages' test and debugging helpers import them) and the blocked modules no package needs
# for more than a lock. Left out of the snapshot, they cost nothing; a package function that
# needs one fails on its import, saying the module is not available.
_NOT_FOR_RUNS = frozenset(
    """asyncio cProfile doctest ensurepip idlelib lib2to3 multiprocessing pdb profile pstats
    pydoc readline rlcompleter select selectors signal socket ssl tkinter turtle unittest venv
    winreg _socket""".split()
)

# Stand-ins for standard modules WASI's CPython cannot import (see `preimport`), by name.
stand_ins = {}


def submodules(tops):
    """The modules of the packages named by their top-level modules `tops`, tests left out."""
    names = []
    for relative in sorted(_files):
        parts = relative.split("/")
        if parts[0] not in tops and parts[0][: -len(".py")] not in tops:
            continue
        if not relative.endswith(".py") or any(p in ("tests", "testing", "benchmarks") for p in parts):
            continue
        if parts[0].endswith((".dist-info", ".data")):
            continue
        parts[-1] = parts[-1][: -len(".py")]
        if parts[-1] == "__init__":
            parts.pop()
        if parts and all(p.isidentifier() for p in parts):
            names.append(".".join(parts))
    return names


def release_imported():
    """Drops the compiled code of modules imported at build time: their code objects are in the
    snapshot already, and a second copy would only make it larger."""
    for module in list(sys.modules.values()):
        loader = getattr(getattr(module, "__spec__", None), "loader", None)
        if isinstance(loader, _Loader):
            _files[loader.relative] = None


def _ctypes_stand_in():
    module = types.ModuleType("ctypes", "Build-time stand-in: the sizes of wasm32's C types.")
    sizes = {"c_bool": 1, "c_char": 1, "c_byte": 1, "c_ubyte": 1, "c_short": 2, "c_ushort": 2,
             "c_int": 4, "c_uint": 4, "c_long": 4, "c_ulong": 4, "c_longlong": 8,
             "c_ulonglong": 8, "c_size_t": 4, "c_ssize_t": 4, "c_void_p": 4, "c_float": 4,
             "c_double": 8}
    for name, size in sizes.items():
        setattr(module, name, type(name, (), {"size": size}))

    def sizeof(ctype):
        return ctype.size

    module.sizeof = sizeof
    return module


def _bz2_stand_in():
    module = types.ModuleType("bz2", "Build-time stand-in: bz2 is not available in the sandbox.")

    def unavailable(*args, **kwargs):
        raise OSError("bz2 compression is not available in the sandbox")

    module.BZ2File = module.open = module.compress = module.decompress = unavailable
    return module
