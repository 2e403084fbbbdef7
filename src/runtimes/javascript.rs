//! JavaScript: the caller's source goes to the QuickJS guest as it is.

use super::{Language, Prepared, Runtime};
use crate::contract::{ErrorInfo, ErrorKind};
use crate::sandbox::{GuestBytes, GuestForm, GuestProgram};

/// Bellard's QuickJS for wasm32-wasip1, pre-initialized with Wizer and compressed by build.rs.
pub static JAVASCRIPT_GUEST: GuestProgram = GuestProgram {
    name: "javascript",
    form: GuestForm::CoreModule,
    wasm: GuestBytes::Zstd(include_bytes!(concat!(
        env!("OUT_DIR"),
        "/javascript.wasm.zst"
    ))),
};

pub struct JavaScript;

impl Runtime for JavaScript {
    fn language(&self) -> Language {
        Language::Javascript
    }

    fn guest(&self) -> &'static GuestProgram {
        &JAVASCRIPT_GUEST
    }

    fn filename(&self) -> &'static str {
        "main.js"
    }

    fn prepare(&self, code: &str) -> Result<Prepared, ErrorInfo> {
        reject_nul(code)?;
        Ok(Prepared {
            source: code.to_string(),
            positions: None,
        })
    }
}

/// QuickJS takes source as a C string: a NUL byte would silently cut the program short.
pub(super) fn reject_nul(code: &str) -> Result<(), ErrorInfo> {
    match code.find('\0') {
        Some(at) => Err(ErrorInfo::new(
            ErrorKind::SyntaxError,
            format!("the code contains a NUL character (byte offset {at}); remove it"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_passes_through() {
        let p = JavaScript.prepare("1 + 1").unwrap();
        assert_eq!(p.source, "1 + 1");
        assert!(p.positions.is_none());
    }

    #[test]
    fn nul_is_rejected_with_its_offset() {
        let e = JavaScript.prepare("1;\0 2").unwrap_err();
        assert_eq!(e.kind, "SyntaxError");
        assert!(e.message.contains("offset 2"), "{}", e.message);
    }

    #[test]
    fn guest_is_embedded_and_preinitialized() {
        let wasm = JAVASCRIPT_GUEST
            .wasm
            .wasm()
            .expect("the guest decompresses");
        assert!(wasm.starts_with(b"\0asm"));
        // Wizer renames nothing we rely on, but it removes the init export once it has run.
        let text = String::from_utf8_lossy(&wasm);
        assert!(
            !text.contains("wizer-initialize"),
            "the guest was not pre-initialized"
        );
    }
}
