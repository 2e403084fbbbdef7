#!/usr/bin/env python3
"""Builds Warden's Python guest with a list of pure-Python packages from PyPI.

    scripts/python_guest.py build --requirements FILE --out python.wasm
    scripts/python_guest.py fetch --requirements FILE

The requirements file is pip's hash-checking format, with every package pinned and every
dependency listed (nothing is resolved, nothing is built, no package's code runs outside the
sandbox):

    Jinja2==3.1.6 --hash=sha256:85ece4451f492d0c13c5dd7c13a64681a86afae63a5f347908daf103ce6d2f67
    PyYAML==6.0.3 --hash=sha256:<a platform wheel's hash>  # warden: pure-mode

Each line's hash names one file of that release on PyPI. A `py3-none-any` wheel is taken as it
is. Anything with native code (a platform wheel, a wheel carrying `.so` files) is refused, unless
the line says `# warden: pure-mode`: the package must then work without its compiled
accelerators (PyYAML and MarkupSafe fall back to pure Python), which are dropped. Source
distributions are refused (they would need their build scripts run).

A package is loaded when a run imports it, from compiled code kept in the guest's memory; with
`# warden: preload` it is imported when the guest is built instead, so that runs find it ready
(no import time) at the price of a larger snapshot in every run's memory. Markers combine:
`# warden: pure-mode preload`.

The guest is componentize-py's CPython with Warden's app (guest-runtimes/python) and the
packages in its snapshot; `warden serve --python-guest FILE` serves it. The list of packages
(names, versions, licences) goes into the component as the custom section
`warden:python-packages`, which the server reads for its tool description.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_DIR = os.path.join(ROOT, "guest-runtimes", "python")
# C extensions of the guest itself (warden_alloc.c), compiled for the interpreter's wasm32 ABI.
NATIVE_DIR = os.path.join(APP_DIR, "native")
NATIVE_SUFFIX = ".cpython-314-wasm32-wasi.so"
# Debian's clang-19 and lld-19 (installed by `make setup`, as for the JavaScript guest).
WASM_CC = os.environ.get("WARDEN_WASM_CC", "clang-19")
WASM_LD = os.environ.get("WARDEN_WASM_LD", "wasm-ld-19")
WIT_DIR = os.path.join(ROOT, "guest-runtimes", "wit")
DEFAULT_WHEELS = os.path.join(ROOT, ".tools", "wheels")
INDEX = os.environ.get("WARDEN_PYPI_JSON", "https://pypi.org/pypi")
# The directory name app.py looks for on its build-time path (see warden_packages.py).
SITE_NAME = "warden_site"
MANIFEST_SECTION = "warden:python-packages"
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll", ".a", ".lib")
UNUSED_SUFFIXES = (".pyi", ".c", ".h", ".pxd", ".pyx")
# Modules of the guest itself: a package may not shadow them.
RESERVED = {"app", "requests", "warden", "warden_alloc", "warden_fs", "warden_net", "warden_packages", "warden_tmp",
            "warden_tools", "wit_world", "componentize_py_runtime", "componentize_py_types"}
# The interpreter the guest runs (componentize-py 0.25.1 bundles CPython 3.14 for WASI): the
# environment markers of the packages' dependencies are evaluated for it.
GUEST_MARKERS = {
    "implementation_name": "cpython",
    "implementation_version": "3.14.0",
    "os_name": "posix",
    "platform_machine": "wasm32",
    "platform_python_implementation": "CPython",
    "platform_release": "",
    "platform_system": "WASI",
    "platform_version": "",
    "python_full_version": "3.14.0",
    "python_version": "3.14",
    "sys_platform": "wasi",
}


class BuildError(Exception):
    """A problem with the requirements or a package, said in words an operator can act on."""


@dataclasses.dataclass
class Requirement:
    name: str
    version: str
    hashes: list
    pure_mode: bool
    preload: bool
    line_no: int

    @property
    def key(self):
        return normalize(self.name)


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirements(text, origin="requirements"):
    """Pinned, hashed requirements; anything else is an error naming the line."""
    requirements = []
    logical, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not logical:
            start = number
        if raw.rstrip().endswith("\\"):
            logical += raw.rstrip()[:-1] + " "
            continue
        logical += raw
        line, logical = logical, ""
        comment = ""
        if "#" in line:
            at = line.index("#")
            line, comment = line[:at], line[at + 1 :]
        line = line.strip()
        if not line:
            continue
        where = f"{origin}:{start}"
        pure_mode = bool(re.search(r"\bpure-mode\b", comment)) and "warden:" in comment
        preload = bool(re.search(r"\bpreload\b", comment)) and "warden:" in comment
        parts = line.split()
        spec, options = parts[0], parts[1:]
        if spec.startswith("-"):
            raise BuildError(f"{where}: options such as {spec} are not supported; list pinned packages only")
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", spec)
        if not match:
            raise BuildError(
                f"{where}: `{spec}` is not pinned: write name==version (every package, "
                "dependencies included, pinned to one version)"
            )
        hashes = []
        for option in options:
            hashed = re.fullmatch(r"--hash=sha256:([0-9a-fA-F]{64})", option)
            if not hashed:
                raise BuildError(f"{where}: `{option}` is not a --hash=sha256:<64 hex digits> option")
            hashes.append(hashed.group(1).lower())
        if not hashes:
            raise BuildError(
                f"{where}: {match.group(1)}=={match.group(2)} has no --hash=sha256:...; every "
                "file is checked against a pinned hash"
            )
        requirement = Requirement(match.group(1), match.group(2), hashes, pure_mode, preload, start)
        if any(r.key == requirement.key for r in requirements):
            raise BuildError(f"{where}: {requirement.name} is listed twice")
        requirements.append(requirement)
    return requirements


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def release_files(requirement):
    # The project's page (not /<version>/json: not every mirror serves that one).
    url = f"{INDEX}/{requirement.name}/json"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            releases = json.load(response)["releases"]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise BuildError(f"{requirement.name} is not on PyPI") from None
        raise BuildError(f"asking PyPI about {requirement.name}: {e}") from None
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        raise BuildError(f"asking PyPI about {requirement.name}: {e}") from None
    if requirement.version not in releases:
        raise BuildError(f"{requirement.name}=={requirement.version} is not on PyPI")
    # Mirrors may answer with addresses relative to the page.
    return [dict(f, url=urllib.parse.urljoin(url, f["url"])) for f in releases[requirement.version]]


def fetch(requirement, wheels_dir):
    """The release file one of the line's hashes names, downloaded once and always checked."""
    os.makedirs(wheels_dir, exist_ok=True)
    for name in os.listdir(wheels_dir):
        path = os.path.join(wheels_dir, name)
        if name.endswith((".whl", ".tar.gz", ".zip")) and wheel_matches(name, requirement):
            if sha256_of(path) in requirement.hashes:
                return path
    chosen = [f for f in release_files(requirement) if f["digests"]["sha256"] in requirement.hashes]
    if not chosen:
        raise BuildError(
            f"{requirement.name}=={requirement.version}: no file of this release on PyPI has the "
            "pinned hash"
        )
    # A pure wheel wins over anything else the line's hashes allow.
    chosen.sort(key=lambda f: not f["filename"].endswith("-none-any.whl"))
    entry = chosen[0]
    if entry["packagetype"] != "bdist_wheel":
        raise BuildError(
            f"{requirement.name}=={requirement.version}: the pinned file {entry['filename']} is a "
            "source distribution; only wheels are installed (no build scripts run). Pin the "
            "hash of a wheel"
        )
    path = os.path.join(wheels_dir, entry["filename"])
    partial = path + ".part"
    try:
        with urllib.request.urlopen(entry["url"], timeout=300) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise BuildError(f"downloading {entry['filename']}: {e}") from None
    if sha256_of(partial) not in requirement.hashes:
        os.unlink(partial)
        raise BuildError(f"{entry['filename']}: the downloaded file does not have the pinned hash")
    os.replace(partial, path)
    return path


def wheel_matches(filename, requirement):
    parts = filename.split("-")
    return len(parts) >= 2 and normalize(parts[0]) == requirement.key and parts[1] == requirement.version


def inspect_wheel(path, requirement):
    """(members to install, metadata text); refuses native code unless the line allows dropping it."""
    name = os.path.basename(path)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise BuildError(f"{name} is not a wheel (not a zip archive)") from None
    native = [m for m in archive.namelist() if m.lower().endswith(NATIVE_SUFFIXES)]
    tags = name[: -len(".whl")].split("-")[-3:]
    platform_specific = tags[1] != "none" or tags[2] != "any"
    if (native or platform_specific) and not requirement.pure_mode:
        what = ", ".join(native[:3]) if native else f"its wheel is built for {'-'.join(tags)}"
        raise BuildError(
            f"{requirement.name}=={requirement.version} has native code ({what}); the Python guest "
            "runs pure-Python packages only. Pin a py3-none-any wheel, or, if the package works "
            "without its compiled parts, add `# warden: pure-mode` to its line"
        )
    metadata = None
    members = []
    for member in archive.namelist():
        top = member.split("/", 1)[0]
        if member.endswith("/") or member.lower().endswith(NATIVE_SUFFIXES):
            continue
        if top.endswith(".data"):
            # Scripts, headers and data files go elsewhere than the import path: not needed.
            continue
        if "/tests/" in member or member.endswith(UNUSED_SUFFIXES):
            # The packages' own test suites, type stubs and C sources: never imported.
            continue
        if top.endswith(".dist-info") and member.endswith("/METADATA"):
            metadata = archive.read(member).decode("utf-8", "replace")
        members.append(member)
    if metadata is None:
        raise BuildError(f"{name} has no METADATA: not a wheel")
    return archive, members, metadata


def metadata_field(metadata, field):
    head = metadata.split("\n\n", 1)[0]
    values = []
    for line in head.splitlines():
        if line.lower().startswith(field.lower() + ":"):
            values.append(line.split(":", 1)[1].strip())
    return values


def check_dependencies(installed):
    """Every dependency the guest's interpreter needs is in the list, at an allowed version."""
    from packaging.requirements import InvalidRequirement, Requirement as Spec

    versions = {r.key: r.version for r, _ in installed}
    problems = []
    for requirement, metadata in installed:
        for text in metadata_field(metadata, "Requires-Dist"):
            try:
                spec = Spec(text)
            except InvalidRequirement:
                continue
            if spec.marker is not None and not spec.marker.evaluate(dict(GUEST_MARKERS, extra="")):
                continue
            have = versions.get(normalize(spec.name))
            if have is None:
                problems.append(f"{requirement.name} needs {text}, which the list does not name")
            elif spec.specifier and not spec.specifier.contains(have, prereleases=True):
                problems.append(f"{requirement.name} needs {text}, but the list pins {have}")
    if problems:
        raise BuildError("missing or mismatched dependencies:\n  " + "\n  ".join(problems))


def licence_of(metadata):
    for field in ("License-Expression", "License"):
        values = metadata_field(metadata, field)
        if values and values[0] and len(values[0]) < 80:
            return values[0]
    classifiers = [c.split("::")[-1].strip() for c in metadata_field(metadata, "Classifier") if c.startswith("License ::")]
    return ", ".join(classifiers) or "unknown"


def assemble(requirements, wheels_dir, site_dir):
    """Unpacks every wheel into `site_dir`; returns the manifest (one entry per package)."""
    installed = []
    packages = []
    for requirement in requirements:
        path = fetch(requirement, wheels_dir)
        if not path.endswith(".whl"):
            raise BuildError(f"{os.path.basename(path)} is not a wheel; only wheels are installed")
        archive, members, metadata = inspect_wheel(path, requirement)
        with archive:
            for member in members:
                target = os.path.normpath(os.path.join(site_dir, member))
                if not target.startswith(site_dir + os.sep):
                    raise BuildError(f"{os.path.basename(path)}: the member {member} leaves the wheel")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with archive.open(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
        installed.append((requirement, metadata))
        packages.append(
            {
                "name": metadata_field(metadata, "Name")[0] if metadata_field(metadata, "Name") else requirement.name,
                "version": requirement.version,
                "license": licence_of(metadata),
                "summary": (metadata_field(metadata, "Summary") or [""])[0],
                "imports": top_level_names(members),
                "pure_mode": requirement.pure_mode,
                "preload": requirement.preload,
                "wheel": os.path.basename(path),
                "sha256": sha256_of(path),
            }
        )
    check_dependencies(installed)
    own = {name for p in packages for name in p["imports"]}
    reserved = sorted(own & (RESERVED | set(sys.stdlib_module_names)))
    if reserved:
        raise BuildError(
            f"these modules would shadow the guest's own or the standard library's: {', '.join(reserved)}"
        )
    return packages


def names_imported(site_dir, own):
    """Every absolute module name the packages' code imports from elsewhere (at the top or inside
    a function): the guest puts the standard modules among them into its snapshot, since a run
    can import only what is there."""
    import ast

    named = set()
    for directory, subdirectories, files in os.walk(site_dir):
        subdirectories[:] = [d for d in subdirectories if d not in ("tests", "testing", "__pycache__")]
        for file in files:
            if not file.endswith(".py"):
                continue
            try:
                with open(os.path.join(directory, file), "rb") as f:
                    tree = ast.parse(f.read())
            except (SyntaxError, ValueError):
                continue  # syntax newer than this Python: the guest's own compile decides
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    named.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    named.add(node.module)
                    named.update(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
    return sorted(n for n in named if n.split(".")[0] not in own)


def top_level_names(members):
    names = set()
    for member in members:
        top = member.split("/", 1)[0]
        if top.endswith((".dist-info", ".data")):
            continue
        if "/" in member:
            if member.split("/", 1)[1] == "__init__.py" or member.endswith(".py"):
                names.add(top)
        elif member.endswith(".py"):
            names.add(top[: -len(".py")])
    return sorted(n for n in names if n.isidentifier() and not n.startswith("_"))


def guest_sources_digest():
    """Names the guest's own sources, so that the server refuses a guest built from others."""
    digest = hashlib.sha256()
    files = [os.path.join(WIT_DIR, n) for n in sorted(os.listdir(WIT_DIR)) if n.endswith(".wit")]
    files += [os.path.join(APP_DIR, n) for n in sorted(os.listdir(APP_DIR)) if n.endswith(".py")]
    files += [os.path.join(NATIVE_DIR, n) for n in sorted(os.listdir(NATIVE_DIR)) if n.endswith(".c")]
    for path in files:
        digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def custom_section(name, payload):
    """A component-level custom section (id 0): LEB128 size, LEB128 name length, name, payload."""
    def leb128(n):
        out = bytearray()
        while True:
            byte = n & 0x7F
            n >>= 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    body = leb128(len(name.encode())) + name.encode() + payload
    return b"\x00" + leb128(len(body)) + body


def compile_native(work):
    """Each native/*.c as a wasm shared library that componentize-py links into the guest (as
    it would a package's extension module); the interpreter imports it by name."""
    for name in sorted(os.listdir(NATIVE_DIR)):
        if not name.endswith(".c"):
            continue
        stem = name[: -len(".c")]
        obj = os.path.join(work, stem + ".o")
        steps = [
            [WASM_CC, "--target=wasm32-wasi", "-O2", "-fPIC", "-fvisibility=hidden", "-Wall", "-Werror",
             "-c", os.path.join(NATIVE_DIR, name), "-o", obj],
            # Undefined symbols (CPython's and libc's) are resolved when componentize-py links.
            [WASM_LD, "--shared", "--experimental-pic", "--unresolved-symbols=import-dynamic",
             "-o", os.path.join(work, stem + NATIVE_SUFFIX), obj],
        ]
        for command in steps:
            try:
                result = subprocess.run(command, cwd=ROOT)
            except OSError as e:
                raise BuildError(f"running {command[0]}: {e}; run `make setup` to install clang-19 and lld-19") from None
            if result.returncode != 0:
                raise BuildError(f"{command[0]} could not build {name} (exit {result.returncode})")
        os.remove(obj)


def componentize(componentize_py, work, component):
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    command = [
        componentize_py, "--quiet", "-d", WIT_DIR, "-w", "guest", "componentize", "app",
        "-p", APP_DIR, "-p", work, "-o", component,
    ]
    try:
        result = subprocess.run(command, cwd=ROOT, env=env)
    except OSError as e:
        raise BuildError(
            f"running {componentize_py}: {e}; run `make setup` to install componentize-py "
            "0.25.1 into .venv"
        ) from None
    if result.returncode != 0:
        raise BuildError(
            f"componentize-py could not build the guest (exit {result.returncode}); a package "
            "that fails to import in the sandbox is named in the traceback above"
        )


def build(requirements, out, wheels_dir, componentize_py):
    with tempfile.TemporaryDirectory(prefix="warden-python-guest-") as work:
        site_dir = os.path.join(work, SITE_NAME)
        os.makedirs(site_dir)
        compile_native(work)
        packages = assemble(requirements, wheels_dir, site_dir)
        own = {name for p in packages for name in p["imports"]}
        manifest = {
            "guest_sources": guest_sources_digest(),
            "packages": packages,
            "imports_named": names_imported(site_dir, own),
        }
        with open(os.path.join(site_dir, "warden_site.json"), "w") as f:
            json.dump(manifest, f, indent=1)
        component = os.path.join(work, "python.wasm")
        # Twice: the first build compiles the packages with the guest's own CPython into
        # warden_store.bin (warden_packages.py) and is thrown away; the second reads them.
        for _ in range(2 if packages else 1):
            componentize(componentize_py, work, component)
        if packages and not os.path.exists(os.path.join(work, "warden_store.bin")):
            raise BuildError("the first build did not compile the packages (no warden_store.bin)")
        with open(component, "ab") as f:
            f.write(custom_section(MANIFEST_SECTION, json.dumps(manifest).encode()))
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        shutil.move(component, out)
    return packages


def write_licences(requirements, wheels_dir, out):
    """One text file with every package's licence as its wheel carries it (dist-info licence
    files), for the repository: the guest embeds these packages, so the binary ships them."""
    sections = []
    for requirement in requirements:
        path = fetch(requirement, wheels_dir)
        archive, members, metadata = inspect_wheel(path, requirement)
        with archive:
            texts = [
                (m, archive.read(m).decode("utf-8", "replace"))
                for m in members
                if m.split("/", 1)[0].endswith(".dist-info")
                and re.search(r"(licen[cs]e|copying|notice)", m.rsplit("/", 1)[-1], re.I)
            ]
        if not texts:
            raise BuildError(f"{os.path.basename(path)} carries no licence file; record its licence by hand")
        header = f"{requirement.name} {requirement.version} ({licence_of(metadata)}), from {os.path.basename(path)}"
        body = "\n".join(f"--- {name.split('/', 1)[1]}\n{text.rstrip()}\n" for name, text in texts)
        sections.append(f"{'=' * 78}\n{header}\n{'=' * 78}\n{body}")
    with open(out, "w", encoding="utf-8") as f:
        f.write(
            "The pure-Python packages built into Warden's default Python guest\n"
            "(guest-runtimes/python/batteries.txt), with the licence files of their wheels.\n"
            "Written by `scripts/python_guest.py licences`; a test checks it names every package.\n\n"
        )
        f.write("\n".join(sections))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("build", "fetch", "licences"):
        p = sub.add_parser(name)
        p.add_argument("--requirements", required=True, help="pinned, hashed pure-Python packages")
        p.add_argument("--wheels", default=DEFAULT_WHEELS, help="download cache (default .tools/wheels)")
        if name == "build":
            p.add_argument("--out", required=True, help="where to write the guest (.wasm)")
            p.add_argument(
                "--componentize-py",
                default=os.environ.get("WARDEN_COMPONENTIZE_PY", os.path.join(ROOT, ".venv", "bin", "componentize-py")),
            )
        if name == "licences":
            p.add_argument("--out", required=True, help="where to write the licence texts")
    args = parser.parse_args(argv)
    try:
        with open(args.requirements, encoding="utf-8") as f:
            requirements = parse_requirements(f.read(), args.requirements)
        if args.command == "licences":
            write_licences(requirements, args.wheels, args.out)
            print(f"python_guest: the licences of {len(requirements)} packages are in {args.out}")
        elif args.command == "fetch":
            for requirement in requirements:
                fetch(requirement, args.wheels)
            print(f"python_guest: {len(requirements)} packages fetched into {args.wheels}")
        else:
            packages = build(requirements, args.out, args.wheels, args.componentize_py)
            size = os.path.getsize(args.out) / 1e6
            print(f"python_guest: {args.out} ({size:.1f} MB) with {len(packages)} packages")
    except BuildError as e:
        print(f"python_guest: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"python_guest: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
