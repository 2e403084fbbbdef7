"""Warden's Python guest: CPython (componentize-py) implementing guest-runtimes/wit/warden.wit.

componentize-py runs this module at build time and snapshots the interpreter, so everything
imported here is ready (and importable) in every run; nothing else from the standard library
is. A run gets fresh globals (a session's next run: the previous run's), runs the code like a
REPL cell (the value of a final expression statement is the result), and reports the outcome as
JSON. Limits are enforced by the host.
"""

import ast
import builtins
import gc
import json
import linecache
import sys
import traceback

# The curated standard library (pure Python, or built into the interpreter). Keep the README's
# list in step with this one.
import abc, array, base64, binascii, bisect, calendar, cmath, codecs, collections  # noqa: E401,F401
import collections.abc, colorsys, contextlib, copy, csv, dataclasses, datetime  # noqa: E401,F401
import decimal, difflib, enum, fnmatch, fractions, functools, glob, graphlib, gzip, hashlib  # noqa: E401,F401
import heapq, hmac, html, html.parser, io, ipaddress, itertools, keyword, math  # noqa: E401,F401
import numbers, operator, os, pathlib, pprint, random, re, reprlib, secrets, shlex, statistics  # noqa: E401,F401
import shutil, string, struct, textwrap, time, tomllib, types, typing, unicodedata, uuid  # noqa: E401,F401
import urllib.parse, warnings, weakref, xml.etree.ElementTree, zipfile, zlib, zoneinfo  # noqa: E401,F401

# Codecs are found by import at first use; the ones files and archives need must be in the
# snapshot (zipfile's names are cp437, CSV exports are often cp1252 or latin-1).
import encodings.ascii, encodings.cp437, encodings.cp1252, encodings.latin_1  # noqa: E401,F401
import encodings.utf_16, encodings.utf_8_sig  # noqa: E401,F401
# importlib.resources and .metadata serve the packages' files (tzdata's zones for zoneinfo,
# versions); they import these parts only when first used.
import importlib.metadata, importlib.metadata._adapters, importlib.metadata._meta  # noqa: E401,F401
import importlib.metadata._text, importlib.resources, importlib.resources._adapters  # noqa: E401,F401
import importlib.resources.readers  # noqa: E401,F401
import pkgutil  # noqa: E402

# And every other codec: data comes in all of them (XlsxWriter writes UTF-16-LE).
for _codec in pkgutil.iter_modules(encodings.__path__):
    try:
        __import__("encodings." + _codec.name)
    except Exception:  # e.g. mbcs: Windows only
        pass

import wit_world
import warden_fs
import warden_net
import warden_packages
import warden_tools

# open/os/shutil on /workspace go to the host's workspace (quotas, names, no links: host side),
# /tmp to the run's memory. Before the packages: a preloaded one that binds `tempfile` or `os`
# functions at its top (openpyxl: `from tempfile import NamedTemporaryFile`) must bind these.
warden_fs.install(None, warden_packages)

# The packages built into this guest (none unless scripts/python_guest.py put them on the
# build's path): their code, the standard modules they import and the preloaded ones go into
# the snapshot. A preloaded package that cannot be imported in the sandbox fails the build,
# naming it.
if warden_packages.load(sys.path):
    warden_packages.install()
    _failed = warden_packages.preimport()
    if _failed:
        raise ImportError(
            "these packages cannot be imported in the sandbox: "
            + "; ".join(f"{name} ({why})" for name, why in sorted(_failed.items()))
        )
    warden_packages.release_imported()

AVAILABLE = sorted(
    """abc array ast base64 binascii bisect builtins calendar cmath codecs collections
    collections.abc colorsys contextlib copy csv dataclasses datetime decimal difflib enum
    fnmatch fractions functools glob graphlib gzip hashlib heapq hmac html html.parser io ipaddress
    itertools json keyword math numbers operator os pathlib pprint random re reprlib secrets
    shlex shutil statistics string struct sys textwrap time tomllib traceback types typing unicodedata uuid
    urllib.parse warnings weakref xml.etree.ElementTree zipfile zlib zoneinfo
    requests urllib.request urllib.error warden""".split()
)

# Reachable from somewhere in the snapshot, but never usable in the sandbox: importing them says
# so, even where a module above pulled them into sys.modules.
BLOCKED = frozenset(
    """socket _socket ssl select selectors subprocess multiprocessing threading _thread asyncio ctypes
    _ctypes sqlite3 _sqlite3 mmap signal pty fcntl resource http.client
    http.server ftplib smtplib poplib imaplib telnetlib socketserver webbrowser""".split()
)


def _blocked(name):
    return ModuleNotFoundError(
        f"No module named '{name}': it is not available in the sandbox "
        "(no processes, threads, sockets or native libraries)",
        name=name,
    )


def _is_package_code(filename):
    return isinstance(filename, str) and filename.startswith(warden_packages.ROOT + "/")


class _SandboxImports:
    """Meta-path finders: one in front refusing BLOCKED modules, one at the end for anything
    the standard finders did not find, both saying why."""

    def __init__(self, blocked_only):
        self.blocked_only = blocked_only

    def find_spec(self, name, path=None, target=None):
        if self.blocked_only:
            if name in BLOCKED or name.partition(".")[0] in BLOCKED:
                raise _blocked(name)
            return None
        raise ModuleNotFoundError(
            f"No module named '{name}': it is not available in the sandbox; only part of the "
            f"standard library is ({', '.join(AVAILABLE)}), and the packages built into this "
            f"guest ({', '.join(warden_packages.importable()) or 'none'}); nothing can be "
            "installed at run time",
            name=name,
        )


# Blocked modules that something in the snapshot imported (the standard library, or the
# packages: pypdf imports subprocess, dateutil _thread), and the packages' stand-ins, held
# aside. An import statement in a package's own code gets them straight from here (they are
# inert: WASI's CPython starts no thread or process and opens no socket; the adversarial suite
# uses every one it can reach), without entering sys.modules, so that a run's own code meets
# the finder above however it imports them.
_HELD = dict(warden_packages.stand_ins)
for _name in list(sys.modules):
    if _name in BLOCKED or _name.partition(".")[0] in BLOCKED:
        _HELD[_name] = sys.modules.pop(_name)
_import = builtins.__import__


def _gated_import(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0 and name in _HELD and _is_package_code((globals or {}).get("__file__")):
        if "." in name and not fromlist:  # `import http.client` binds `http`
            return _import(name.partition(".")[0], globals, locals, (), 0)
        return _HELD[name]
    return _import(name, globals, locals, fromlist, level)


builtins.__import__ = _gated_import
sys.meta_path.insert(0, _SandboxImports(blocked_only=True))
sys.meta_path.append(_SandboxImports(blocked_only=False))
# The network shims stand in for urllib.request and friends (which would need sockets).
warden_net.install()
# tools.<server>.<tool>(...) goes to the host, which applies the policy to every call.
warden_tools.install(wit_world.tools)

_json_dumps = json.dumps
_json_loads = json.loads
_os_exit = os._exit


def _exit(code):
    """os._exit, telling the host the code first (WASI only carries success or failure)."""
    code = int(code)
    if code:
        wit_world.exiting(code)
    _os_exit(code)


os._exit = _exit


def _describe(exc, filename):
    """`{type, message, traceback}` with only the frames of the caller's code."""
    try:
        tb = traceback.TracebackException.from_exception(exc)
        for te in _chain(tb):
            te.stack = traceback.StackSummary.from_list(
                [f for f in te.stack if f.filename == filename]
            )
        text = "".join(tb.format()).rstrip("\n")
    except BaseException:  # e.g. MemoryError while formatting: keep what is certain
        text = None
    out = {"type": type(exc).__name__, "message": _message(exc)}
    if text:
        out["traceback"] = text
    return out


def _message(exc):
    try:
        if isinstance(exc, SyntaxError):
            return f"{exc.msg} ({exc.filename}, line {exc.lineno})"
        return str(exc)
    except BaseException:
        return "(the exception's message could not be formatted)"


def _chain(te, seen=None):
    seen = seen if seen is not None else set()
    if te is None or id(te) in seen:
        return []
    seen.add(id(te))
    return [te] + _chain(te.__cause__, seen) + _chain(te.__context__, seen)


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def _failure(error):
    return _json_dumps({"ok": False, "error": error})


# The program's globals. A fresh instance starts with none; a session calls `run` again on the
# same instance, and its next cell finds the globals (and imports) the previous ones left.
_namespace = None


def _globals(input_value):
    global _namespace
    if _namespace is None:
        _namespace = {"__name__": "__main__", "__builtins__": builtins}
    _namespace["input"] = input_value
    return _namespace


def _run(source, input_json, filename):
    # Tracebacks quote the caller's source lines, as they would for a file.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = _globals(_json_loads(input_json) if input_json else None)
    try:
        tree = ast.parse(source, filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), namespace)
        value = eval(compile(last, filename, "eval"), namespace) if last is not None else None
    except SystemExit as e:
        _flush()
        code = e.code
        if code is None or code == 0:
            return _json_dumps({"ok": True, "result": None})
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        return _failure({"type": "SystemExit", "message": f"the program exited with code {code}"})
    except BaseException as e:
        _flush()
        return _failure(_describe(e, filename))
    _flush()
    try:
        encoded = _json_dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        print(
            f"[warden] the result is not JSON-serializable ({type(e).__name__}: {e}); "
            "returning its repr() instead",
            file=sys.stderr,
        )
        _flush()
        encoded = _json_dumps(repr(value), ensure_ascii=False)
    return '{"ok":true,"result":' + encoded + "}"


def _well_formed(text):
    # A WIT string must be valid Unicode; a str may hold lone surrogates (e.g. '\ud800').
    # Pairs are joined and lone ones become U+FFFD, as they would in any UTF-8 text.
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class WitWorld(wit_world.WitWorld):
    def run(self, source: str, input_json: str, filename: str) -> str:
        try:
            return _well_formed(_run(source, input_json, filename))
        except BaseException as e:  # a failure of the guest itself, e.g. MemoryError here
            return _well_formed(
                _failure({"type": type(e).__name__, "message": "the Python guest failed: " + _message(e)})
            )


# The workspace is the host's; code run while building (the packages) must not call it.
warden_fs.connect(wit_world.workspace)

# CPython 3.14.0 (what componentize-py 0.25 builds on) counts every container it allocates
# toward the young generation's threshold, tracked or not, so a program that builds a million
# tuples of plain values collects 500 times and walks the growing old space each time for
# nothing: 11x the fuel of the same program with the collector off (python/cpython#139951,
# fixed in 3.14.1). Until the guest's CPython has the fix, pace the collector: after two
# collections in a row that found (almost) nothing, double the threshold, up to 4x the
# default; the first collection that finds garbage puts it back. Two in a row, because the
# incremental collector alternates increments that find nothing with ones that find the
# garbage. The ceiling bounds the cyclic garbage a run can pile up after a garbage-free phase:
# up to two intervals at the ceiling, where the default holds two of 2,000 (docs/DESIGN.md).
# A program that sets its own threshold or removes this callback from gc.callbacks gets
# exactly what it asked for.
_GC_THRESHOLD = gc.get_threshold()[0]
_GC_THRESHOLD_MAX = 4 * _GC_THRESHOLD
_gc_paced = {"threshold": _GC_THRESHOLD, "quiet": 0}


def _pace_gc(phase, info):
    threshold = gc.get_threshold()[0]
    if phase != "stop" or threshold != _gc_paced["threshold"]:
        return  # the program chose its own threshold
    if info["collected"] * 8 < threshold:
        _gc_paced["quiet"] += 1
        if _gc_paced["quiet"] < 2 or threshold >= _GC_THRESHOLD_MAX:
            return
        threshold = min(2 * threshold, _GC_THRESHOLD_MAX)
    elif threshold == _GC_THRESHOLD:
        _gc_paced["quiet"] = 0
        return
    else:
        threshold = _GC_THRESHOLD
    _gc_paced["quiet"] = 0
    _gc_paced["threshold"] = threshold
    gc.set_threshold(threshold, *gc.get_threshold()[1:])


gc.callbacks.append(_pace_gc)

# Everything above is the snapshot: move it out of the collector's sight, so that no run's
# collection walks (and writes to, dirtying the pages of) the interpreter's own objects.
gc.collect()
# Small objects from here on come from size-class free lists (native/warden_alloc.c); the
# snapshot's own stay where libc's malloc put them, so the snapshot does not grow.
import warden_alloc  # noqa: E402,F401
gc.freeze()
