//! Compiles Bellard's QuickJS (the release `scripts/setup.sh` unpacks and patches into
//! `.tools/quickjs`; the host's build script passes its path) and `native/shim.c` into the guest.

use std::path::PathBuf;

const SOURCES: [&str; 5] = [
    "quickjs.c",
    "cutils.c",
    "dtoa.c",
    "libregexp.c",
    "libunicode.c",
];

fn main() {
    println!("cargo:rerun-if-env-changed=WARDEN_QUICKJS_DIR");
    println!("cargo:rerun-if-changed=native/shim.c");
    let Some(dir) = std::env::var_os("WARDEN_QUICKJS_DIR").map(PathBuf::from) else {
        panic!("WARDEN_QUICKJS_DIR is not set: the host's build script sets it (run `make setup`)");
    };
    let version = std::fs::read_to_string(dir.join("VERSION"))
        .unwrap_or_else(|e| panic!("reading {}/VERSION: {e}; run `make setup`", dir.display()));
    println!(
        "cargo:rerun-if-changed={}",
        dir.join(".warden-patched").display()
    );
    cc::Build::new()
        .files(SOURCES.iter().map(|file| dir.join(file)))
        .file("native/shim.c")
        .include(&dir)
        .define("_GNU_SOURCE", None)
        .define("CONFIG_VERSION", format!("\"{}\"", version.trim()).as_str())
        // QuickJS's own build uses these; its code assumes an unsigned `char`.
        .flag("-funsigned-char")
        .flag("-fwrapv")
        .warnings(false)
        .compile("quickjs");
}
