//! One file per language. A [`Runtime`] turns the caller's source into what a guest program
//! evaluates; the sandbox then runs it. JavaScript and TypeScript share the QuickJS guest.

mod javascript;
mod python;
mod python_guest;
mod typescript;
mod wasm_sections;

pub use javascript::{JAVASCRIPT_GUEST, JavaScript};
pub use python::{PYTHON_GUEST, PYTHON_MODULES, Python};
pub use python_guest::{PythonGuest, PythonGuestError, PythonPackage};
pub use typescript::TypeScript;

use crate::contract::{ErrorInfo, Language};
use crate::sandbox::GuestProgram;

/// Source code made ready for a guest.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub source: String,
    /// Maps positions in `source` back to the caller's code, when they differ.
    pub positions: Option<typescript::PositionMap>,
}

pub trait Runtime: Send + Sync {
    fn language(&self) -> Language;
    /// The guest program that evaluates this language.
    fn guest(&self) -> &'static GuestProgram;
    /// The file name tracebacks show for the caller's code.
    fn filename(&self) -> &'static str;
    /// Turns the caller's source into what the guest evaluates. An `Err` is the caller's
    /// mistake (e.g. a TypeScript syntax error) and is reported as `status: error`.
    fn prepare(&self, code: &str) -> Result<Prepared, ErrorInfo>;
    /// The packages built into the guest beyond the language's own library.
    fn packages(&self) -> &[PythonPackage] {
        &[]
    }
}

/// The runtimes this server offers.
pub struct Runtimes {
    runtimes: Vec<Box<dyn Runtime>>,
}

impl Runtimes {
    pub fn builtin() -> Runtimes {
        Runtimes::with_python_guest(PythonGuest::builtin())
    }

    /// The built-in runtimes, Python on `guest`.
    pub fn with_python_guest(guest: &'static PythonGuest) -> Runtimes {
        Runtimes {
            runtimes: vec![
                Box::new(JavaScript),
                Box::new(TypeScript),
                Box::new(Python { guest }),
            ],
        }
    }

    /// The packages the Python guest offers (none when Python is not among the runtimes).
    pub fn python_packages(&self) -> &[PythonPackage] {
        self.runtimes
            .iter()
            .find_map(|r| (r.language() == Language::Python).then(|| r.packages()))
            .unwrap_or_default()
    }

    pub fn get(&self, language: Language) -> Option<&dyn Runtime> {
        self.runtimes
            .iter()
            .find(|r| r.language() == language)
            .map(|r| r.as_ref())
    }

    pub fn languages(&self) -> Vec<Language> {
        self.runtimes.iter().map(|r| r.language()).collect()
    }

    /// Every guest program the runtimes need, once each.
    pub fn guests(&self) -> Vec<&'static GuestProgram> {
        let mut guests: Vec<&'static GuestProgram> = Vec::new();
        for r in &self.runtimes {
            if !guests.iter().any(|g| g.name == r.guest().name) {
                guests.push(r.guest());
            }
        }
        guests
    }
}

/// Rewrites `file:line:column` positions in a traceback through `positions`.
pub fn remap_traceback(
    traceback: &str,
    filename: &str,
    positions: &typescript::PositionMap,
) -> String {
    let marker = format!("{filename}:");
    let mut out = String::with_capacity(traceback.len());
    let mut rest = traceback;
    while let Some(at) = rest.find(&marker) {
        let (before, after) = rest.split_at(at + marker.len());
        out.push_str(before);
        let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let line_len = digits_end(after);
        let line = after[..line_len].parse::<u32>().ok();
        let tail = &after[line_len..];
        let column = tail
            .strip_prefix(':')
            .map(|t| (t, digits_end(t)))
            .and_then(|(t, n)| t[..n].parse::<u32>().ok().map(|c| (c, n + 1)));
        match (line, column) {
            (Some(l), Some((c, consumed))) => match positions.original(l, c) {
                Some((ol, oc)) => {
                    out.push_str(&format!("{ol}:{oc}"));
                    rest = &tail[consumed..];
                }
                None => {
                    out.push_str(&after[..line_len + consumed]);
                    rest = &tail[consumed..];
                }
            },
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn javascript_and_typescript_share_one_guest() {
        let r = Runtimes::builtin();
        assert_eq!(
            r.languages(),
            vec![Language::Javascript, Language::Typescript, Language::Python]
        );
        let guests: Vec<_> = r.guests().iter().map(|g| g.name).collect();
        assert_eq!(guests, ["javascript", "python"]);
    }
}
