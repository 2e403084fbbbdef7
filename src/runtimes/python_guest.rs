//! Which Python guest a server runs: the one built into the binary (with the packages of
//! guest-runtimes/python/batteries.txt), or one an operator built with their own list
//! (`scripts/python_guest.py build`, served with `--python-guest FILE`).
//!
//! scripts/python_guest.py appends a custom section, [`MANIFEST_SECTION`], to the component:
//! JSON naming the packages (for the tool description) and a digest of the guest's own sources
//! (guest-runtimes/python and its WIT), so that a guest built from another version of Warden
//! is refused at start rather than failing call by call.

use std::path::Path;
use std::sync::LazyLock;

use serde::Deserialize;

use super::python::{PYTHON_GUEST, PYTHON_MANIFEST};
use super::wasm_sections::{COMPONENT_PREAMBLE, custom_section};
use crate::sandbox::{GuestBytes, GuestForm, GuestProgram};

pub use super::wasm_sections::PYTHON_MANIFEST_SECTION as MANIFEST_SECTION;

/// A package built into the guest, as the tool description names it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PythonPackage {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub license: String,
    /// The top-level modules it offers (`dateutil` for python-dateutil).
    #[serde(default)]
    pub imports: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    guest_sources: String,
    #[serde(default)]
    packages: Vec<PythonPackage>,
}

/// A Python guest and the packages in its snapshot.
#[derive(Debug)]
pub struct PythonGuest {
    program: &'static GuestProgram,
    packages: Vec<PythonPackage>,
    sources: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PythonGuestError {
    #[error("reading the Python guest {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a WebAssembly component (build it with scripts/python_guest.py)")]
    NotAComponent { path: String },
    #[error(
        "{path} carries no `{MANIFEST_SECTION}` section: it was not built by scripts/python_guest.py"
    )]
    NoManifest { path: String },
    #[error("{path}: its `{MANIFEST_SECTION}` section is not valid: {reason}")]
    BadManifest { path: String, reason: String },
    #[error(
        "{path} was built from another version of Warden's guest sources; build it again with \
         this version's scripts/python_guest.py"
    )]
    OtherSources { path: String },
}

static BUILTIN: LazyLock<PythonGuest> = LazyLock::new(|| {
    // build.rs made it with scripts/python_guest.py and kept its manifest beside the compressed
    // guest (so that reading it costs no decompression); a guest without one (a test build's
    // stand-in) simply lists no packages.
    let manifest = serde_json::from_slice::<Manifest>(PYTHON_MANIFEST).ok();
    let (sources, packages) =
        manifest.map_or_else(Default::default, |m| (m.guest_sources, m.packages));
    PythonGuest {
        program: &PYTHON_GUEST,
        packages,
        sources,
    }
});

impl PythonGuest {
    /// The guest built into this binary.
    pub fn builtin() -> &'static PythonGuest {
        &BUILTIN
    }

    /// An operator's guest. Its bytes live as long as the process (a guest program is
    /// `'static`, as the built-in one is).
    pub fn load(path: &Path) -> Result<&'static PythonGuest, PythonGuestError> {
        let shown = path.display().to_string();
        let wasm = std::fs::read(path).map_err(|source| PythonGuestError::Read {
            path: shown.clone(),
            source,
        })?;
        let guest = PythonGuest::from_bytes(wasm.leak(), &shown)?;
        Ok(Box::leak(Box::new(guest)))
    }

    fn from_bytes(wasm: &'static [u8], shown: &str) -> Result<PythonGuest, PythonGuestError> {
        if !wasm.starts_with(COMPONENT_PREAMBLE) {
            return Err(PythonGuestError::NotAComponent {
                path: shown.to_string(),
            });
        }
        let section =
            custom_section(wasm, MANIFEST_SECTION).ok_or_else(|| PythonGuestError::NoManifest {
                path: shown.to_string(),
            })?;
        let manifest: Manifest =
            serde_json::from_slice(section).map_err(|e| PythonGuestError::BadManifest {
                path: shown.to_string(),
                reason: e.to_string(),
            })?;
        if manifest.guest_sources != PythonGuest::builtin().sources {
            return Err(PythonGuestError::OtherSources {
                path: shown.to_string(),
            });
        }
        let program = Box::leak(Box::new(GuestProgram {
            name: "python",
            form: GuestForm::Component,
            wasm: GuestBytes::Plain(wasm),
        }));
        Ok(PythonGuest {
            program,
            packages: manifest.packages,
            sources: manifest.guest_sources,
        })
    }

    pub fn program(&self) -> &'static GuestProgram {
        self.program
    }

    pub fn packages(&self) -> &[PythonPackage] {
        &self.packages
    }
}

#[cfg(test)]
mod tests {
    use super::super::wasm_sections::section;
    use super::*;

    #[test]
    fn the_builtin_guest_lists_its_packages() {
        let guest = PythonGuest::builtin();
        assert!(
            !guest.sources.is_empty(),
            "the built-in guest has a manifest"
        );
        let names: Vec<&str> = guest.packages().iter().map(|p| p.name.as_str()).collect();
        for expected in ["PyYAML", "sympy", "networkx"] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
    }

    /// build.rs keeps the manifest beside the compressed guest: it must be the guest's own.
    #[test]
    fn the_kept_manifest_is_the_one_inside_the_compressed_guest() {
        let wasm = PYTHON_GUEST.wasm.wasm().expect("the guest decompresses");
        assert!(!PYTHON_MANIFEST.is_empty());
        assert_eq!(
            custom_section(&wasm, MANIFEST_SECTION),
            Some(PYTHON_MANIFEST)
        );
        assert!(
            PYTHON_GUEST.wasm.stored().len() < wasm.len() * 2 / 3,
            "compressed"
        );
    }

    #[test]
    fn foreign_files_are_refused_with_the_reason() {
        let not_wasm = PythonGuest::from_bytes(b"hello", "x.wasm").unwrap_err();
        assert!(not_wasm.to_string().contains("not a WebAssembly component"));
        let bare: &'static [u8] = COMPONENT_PREAMBLE;
        let err = PythonGuest::from_bytes(bare, "x.wasm").unwrap_err();
        assert!(
            err.to_string()
                .contains("was not built by scripts/python_guest.py")
        );
        let mut other = COMPONENT_PREAMBLE.to_vec();
        other.extend(section(
            MANIFEST_SECTION,
            br#"{"guest_sources":"0000","packages":[]}"#,
        ));
        let err = PythonGuest::from_bytes(other.leak(), "x.wasm").unwrap_err();
        assert!(err.to_string().contains("another version"), "{err}");
        let mut broken = COMPONENT_PREAMBLE.to_vec();
        broken.extend(section(MANIFEST_SECTION, b"{not json"));
        let err = PythonGuest::from_bytes(broken.leak(), "x.wasm").unwrap_err();
        assert!(err.to_string().contains("not valid"), "{err}");
    }
}
