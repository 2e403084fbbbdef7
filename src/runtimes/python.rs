//! Python: CPython 3.14 built for WASI by componentize-py, with a curated standard library and
//! pure-Python packages pre-imported into its snapshot (guest-runtimes/python/app.py,
//! scripts/python_guest.py). The source goes to the guest as it is; parsing, REPL-style results
//! and tracebacks happen inside it.

use super::{Language, Prepared, PythonGuest, PythonPackage, Runtime};
use crate::contract::ErrorInfo;
use crate::sandbox::{GuestBytes, GuestForm, GuestProgram};

/// The componentize-py component, built and compressed by build.rs.
pub static PYTHON_GUEST: GuestProgram = GuestProgram {
    name: "python",
    form: GuestForm::Component,
    wasm: GuestBytes::Zstd(include_bytes!(concat!(env!("OUT_DIR"), "/python.wasm.zst"))),
};

/// The guest's `warden:python-packages` section, kept uncompressed by build.rs (empty when the
/// guest has none).
pub static PYTHON_MANIFEST: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/python-manifest.json"));

/// The standard-library modules a Python program may import: those pre-imported by
/// guest-runtimes/python/app.py (its `AVAILABLE` list; a test checks they agree).
pub const PYTHON_MODULES: &[&str] = &[
    "abc",
    "array",
    "ast",
    "base64",
    "binascii",
    "bisect",
    "builtins",
    "calendar",
    "cmath",
    "codecs",
    "collections",
    "collections.abc",
    "colorsys",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "enum",
    "fnmatch",
    "fractions",
    "functools",
    "glob",
    "graphlib",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "html.parser",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "keyword",
    "math",
    "numbers",
    "operator",
    "os",
    "pathlib",
    "pprint",
    "random",
    "re",
    "reprlib",
    "secrets",
    "shlex",
    "shutil",
    "statistics",
    "string",
    "struct",
    "sys",
    "textwrap",
    "time",
    "tomllib",
    "traceback",
    "types",
    "typing",
    "unicodedata",
    "urllib.parse",
    "urllib.request",
    "urllib.error",
    "requests",
    "warden",
    "uuid",
    "warnings",
    "weakref",
    "xml.etree.ElementTree",
    "zipfile",
    "zlib",
    "zoneinfo",
];

/// Python on `guest`: the built-in one, or an operator's (`--python-guest`).
pub struct Python {
    pub guest: &'static PythonGuest,
}

impl Runtime for Python {
    fn language(&self) -> Language {
        Language::Python
    }

    fn guest(&self) -> &'static GuestProgram {
        self.guest.program()
    }

    fn filename(&self) -> &'static str {
        "main.py"
    }

    fn prepare(&self, code: &str) -> Result<Prepared, ErrorInfo> {
        Ok(Prepared {
            source: code.to_string(),
            positions: None,
        })
    }

    fn packages(&self) -> &[PythonPackage] {
        self.guest.packages()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_list_matches_the_guest() {
        let app = include_str!("../../guest-runtimes/python/app.py");
        let start = app.find("AVAILABLE = sorted(").unwrap();
        let block = &app[start..start + app[start..].find(")\n").unwrap()];
        let mut names: Vec<&str> = block
            .split(|c: char| c.is_whitespace() || c == '"')
            .filter(|w| !w.is_empty() && !w.contains('(') && !w.contains('=') && *w != "AVAILABLE")
            .collect();
        names.sort_unstable();
        let mut ours = PYTHON_MODULES.to_vec();
        ours.sort_unstable();
        assert_eq!(names, ours);
    }

    #[test]
    fn the_readme_lists_exactly_the_importable_modules() {
        let readme = include_str!("../../README.md");
        let start = readme.find("> abc, ").unwrap();
        let block: String = readme[start..]
            .lines()
            .take_while(|l| l.starts_with('>'))
            .map(|l| l.trim_start_matches('>').trim())
            .collect::<Vec<_>>()
            .join(" ");
        let mut listed: Vec<&str> = block.split(", ").map(str::trim).collect();
        listed.sort_unstable();
        let mut ours = PYTHON_MODULES.to_vec();
        ours.sort_unstable();
        assert_eq!(listed, ours);
        let unavailable = &readme[readme.find("Anything\nelse (").unwrap()..];
        let unavailable = &unavailable["Anything\nelse (".len()..unavailable.find(')').unwrap()];
        for named in unavailable.split(", ").map(str::trim) {
            assert!(
                !PYTHON_MODULES.contains(&named),
                "{named} is listed as unavailable"
            );
        }
    }

    #[test]
    fn guest_is_an_embedded_component() {
        // A component's preamble: magic, then version 0x0d with layer 1.
        let wasm = PYTHON_GUEST.wasm.wasm().expect("the guest decompresses");
        assert!(wasm.starts_with(b"\0asm\x0d\0\x01\0"));
    }
}
