//! Builds the guest runtimes from source, pre-initializes them with Wizer and leaves them in
//! OUT_DIR for `include_bytes!` (see `src/runtimes/`). Nothing built is committed.
//!
//! The JavaScript guest is a separate cargo workspace compiled for wasm32-wasip1 with clang for
//! QuickJS's C (Debian: clang-19, lld-19, libclang-rt-19-dev-wasm32, wasi-libc; `make setup`
//! installs them). Its target directory sits beside this build's so that it stays warm.
//!
//! The Python guest is a componentize-py app (guest-runtimes/python) for the world in
//! guest-runtimes/wit; componentize-py (pinned, installed into `.venv` by `make setup`) runs it
//! at build time and snapshots the initialized interpreter.
//!
//! `WARDEN_PREBUILT_GUESTS=DIR` takes both guests from DIR (another build's OUT_DIR) instead.
//! The fuzz build does that (fuzz/run.sh): it builds Warden without the default `build-guests`
//! feature, so that neither the guests nor an uninstrumented second wasmtime for this script
//! are compiled again.

use std::path::{Path, PathBuf};

const GUESTS: [&str; 2] = ["javascript.wasm", "python.wasm"];
#[path = "src/runtimes/wasm_sections.rs"]
mod wasm_sections;

fn main() {
    if let Err(e) = build() {
        // A build script's panic hides the cause in noise; print the chain and fail plainly.
        eprintln!("error: building the guest runtimes failed: {e:#}");
        std::process::exit(1);
    }
}

fn build() -> anyhow_like::Result<()> {
    let out_dir = PathBuf::from(env("OUT_DIR")?);
    println!("cargo:rerun-if-env-changed=WARDEN_PREBUILT_GUESTS");
    match std::env::var_os("WARDEN_PREBUILT_GUESTS") {
        Some(dir) if !dir.is_empty() => copy_prebuilt_guests(Path::new(&dir), &out_dir)?,
        _ => build_guests(&out_dir)?,
    }
    pack_guests(&out_dir)
}

/// What the binary embeds: each guest zstd-compressed (the Python guest is ~50 MB of wasm, ~25
/// MB compressed; the binary would be over half guest otherwise), and the Python guest's
/// manifest uncompressed, so that listing its packages at start decompresses nothing. The
/// plain guests stay in OUT_DIR for WARDEN_PREBUILT_GUESTS.
fn pack_guests(out_dir: &Path) -> anyhow_like::Result<()> {
    // zstd's level 19: ~20 s for the Python guest, once per guest build; decompressing takes a
    // fraction of a second and happens only when the guest is compiled.
    const LEVEL: i32 = 19;
    for guest in GUESTS {
        let path = out_dir.join(guest);
        let wasm = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let packed = zstd::bulk::compress(&wasm, LEVEL)
            .map_err(|e| format!("compressing {}: {e}", path.display()))?;
        let dest = out_dir.join(format!("{guest}.zst"));
        std::fs::write(&dest, packed).map_err(|e| format!("writing {}: {e}", dest.display()))?;
        if guest == "python.wasm" {
            let manifest =
                wasm_sections::custom_section(&wasm, wasm_sections::PYTHON_MANIFEST_SECTION)
                    .unwrap_or_default();
            let dest = out_dir.join("python-manifest.json");
            std::fs::write(&dest, manifest)
                .map_err(|e| format!("writing {}: {e}", dest.display()))?;
        }
    }
    Ok(())
}

fn copy_prebuilt_guests(from: &Path, out_dir: &Path) -> anyhow_like::Result<()> {
    for guest in GUESTS {
        let source = from.join(guest);
        println!("cargo:rerun-if-changed={}", source.display());
        std::fs::copy(&source, out_dir.join(guest)).map_err(|e| {
            format!(
                "copying the prebuilt guest {} (WARDEN_PREBUILT_GUESTS): {e}",
                source.display()
            )
        })?;
    }
    Ok(())
}

#[cfg(not(feature = "build-guests"))]
fn build_guests(_out_dir: &Path) -> anyhow_like::Result<()> {
    Err(
        "built without the `build-guests` feature: set WARDEN_PREBUILT_GUESTS to a directory \
         holding javascript.wasm and python.wasm (the OUT_DIR of a default build; fuzz/run.sh \
         finds it)"
            .into(),
    )
}

#[cfg(feature = "build-guests")]
use from_source::build_guests;

/// Building the guests from source: needs `make setup`'s toolchains and wasmtime for Wizer.
#[cfg(feature = "build-guests")]
mod from_source {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use wasmtime::{Config, Engine, Linker, Module, Store};

    use super::{anyhow_like, env};

    const GUEST_TARGET: &str = "wasm32-wasip1";

    pub fn build_guests(out_dir: &Path) -> anyhow_like::Result<()> {
        let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR")?);
        let guest_dir = manifest_dir.join("guest-runtimes/javascript");
        for watched in ["src", "native", "build.rs", "Cargo.toml", "Cargo.lock"] {
            println!(
                "cargo:rerun-if-changed={}",
                guest_dir.join(watched).display()
            );
        }
        // Files, not the directory: componentize-py writes a __pycache__ beside the app.
        for watched in [
            "guest-runtimes/python/app.py",
            "guest-runtimes/python/warden_net.py",
            "guest-runtimes/python/warden_fs.py",
            "guest-runtimes/python/warden_tools.py",
            "guest-runtimes/python/warden_packages.py",
            "guest-runtimes/python/warden_tmp.py",
            "guest-runtimes/python/batteries.txt",
            "guest-runtimes/python/native/warden_alloc.c",
            "guest-runtimes/wit/warden.wit",
            "scripts/python_guest.py",
        ] {
            println!(
                "cargo:rerun-if-changed={}",
                manifest_dir.join(watched).display()
            );
        }
        for var in [
            "WARDEN_WASI_CC",
            "WARDEN_WASI_AR",
            "WARDEN_WASI_SYSROOT_INCLUDE",
            "WARDEN_COMPONENTIZE_PY",
            "WARDEN_PYTHON",
        ] {
            println!("cargo:rerun-if-env-changed={var}");
        }

        let quickjs_dir = manifest_dir.join(".tools/quickjs");
        println!(
            "cargo:rerun-if-changed={}",
            quickjs_dir.join(".warden-patched").display()
        );
        let raw = build_javascript_guest(
            &guest_dir,
            &quickjs_dir,
            &guest_target_dir(out_dir, &manifest_dir),
        )?;
        let wizened = wizen(&raw)?;
        let dest = out_dir.join("javascript.wasm");
        std::fs::write(&dest, &wizened).map_err(|e| format!("writing {}: {e}", dest.display()))?;

        build_python_guest(&manifest_dir, &out_dir.join("python.wasm"))?;
        Ok(())
    }

    /// scripts/python_guest.py (the operators' command too) builds the guest with the packages
    /// of guest-runtimes/python/batteries.txt, fetched into .tools/wheels by `make setup`.
    fn build_python_guest(manifest_dir: &Path, dest: &Path) -> anyhow_like::Result<()> {
        let python = std::env::var_os("WARDEN_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest_dir.join(".venv/bin/python"));
        let status = Command::new(&python)
            .current_dir(manifest_dir)
            .env_remove("VIRTUAL_ENV")
            .arg("scripts/python_guest.py")
            .args([
                "build",
                "--requirements",
                "guest-runtimes/python/batteries.txt",
            ])
            .arg("--out")
            .arg(dest)
            .status()
            .map_err(|e| {
                format!(
                    "running {}: {e}; run `make setup` to create .venv with componentize-py 0.25.1",
                    python.display()
                )
            })?;
        if !status.success() {
            return Err(format!(
                "scripts/python_guest.py could not build the Python guest ({status})"
            )
            .into());
        }
        Ok(())
    }

    /// `<target>/wasm-guests/<checkout>`, shared by all profiles and builds of one checkout, so
    /// that the C part of QuickJS is not rebuilt for each. Per checkout: two checkouts sharing
    /// a target directory would otherwise share the guest's fingerprint and artifact, and one
    /// would embed the other's guest (seen when benchmarking against an older tree).
    fn guest_target_dir(out_dir: &Path, manifest_dir: &Path) -> PathBuf {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        manifest_dir.hash(&mut hasher);
        let checkout = format!("{:016x}", hasher.finish());
        // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
        out_dir
            .ancestors()
            .nth(4)
            .map(|target| target.join("wasm-guests"))
            .unwrap_or_else(|| out_dir.join("wasm-guests"))
            .join(checkout)
    }

    fn build_javascript_guest(
        guest_dir: &Path,
        quickjs_dir: &Path,
        target_dir: &Path,
    ) -> anyhow_like::Result<Vec<u8>> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let cc = std::env::var("WARDEN_WASI_CC").unwrap_or_else(|_| "clang-19".to_string());
        let ar = std::env::var("WARDEN_WASI_AR").unwrap_or_else(|_| "llvm-ar-19".to_string());
        let include = std::env::var("WARDEN_WASI_SYSROOT_INCLUDE")
            .unwrap_or_else(|_| "/usr/include/wasm32-wasi".to_string());

        let mut cmd = Command::new(cargo);
        cmd.current_dir(guest_dir)
            .args(["build", "--release", "--locked", "--target", GUEST_TARGET])
            .arg("--target-dir")
            .arg(target_dir)
            // Flags meant for the host build must not leak into the guest build.
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            // QuickJS's sources, unpacked and patched by `make setup` (guest build.rs).
            .env("WARDEN_QUICKJS_DIR", quickjs_dir)
            .env("CC_wasm32_wasip1", cc)
            .env("AR_wasm32_wasip1", ar)
            .env(
                "CFLAGS_wasm32_wasip1",
                // NDEBUG: QuickJS's assert()s are for its developers; they cost ~5% of compute.
                format!("-nostdlibinc -isystem {include} -DNDEBUG"),
            );
        let status = cmd
            .status()
            .map_err(|e| format!("running cargo for the JavaScript guest: {e}"))?;
        if !status.success() {
            return Err(format!(
            "the JavaScript guest did not build ({status}); run `make setup` to install clang-19, \
             lld-19, libclang-rt-19-dev-wasm32, wasi-libc and the {GUEST_TARGET} target"
        )
        .into());
        }
        let wasm = target_dir.join(format!(
            "{GUEST_TARGET}/release/warden-guest-javascript.wasm"
        ));
        std::fs::read(&wasm).map_err(|e| format!("reading {}: {e}", wasm.display()).into())
    }

    /// Runs the guest's `wizer-initialize` export and snapshots the result, so that every run starts
    /// with QuickJS and the prelude ready.
    fn wizen(wasm: &[u8]) -> anyhow_like::Result<Vec<u8>> {
        let engine = Engine::new(&Config::new()).map_err(|e| format!("wizer engine: {e}"))?;
        let wasi = wasmtime_wasi::WasiCtxBuilder::new().build_p1();
        let mut store = Store::new(&engine, wasi);
        let wizer = wasmtime_wizer::Wizer::new();
        let snapshot = wizer.run(&mut store, wasm, async |store, module: &Module| {
            let mut linker: Linker<wasmtime_wasi::p1::WasiP1Ctx> = Linker::new(module.engine());
            wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |cx| cx)?;
            // The host's `warden` imports are per run; initialization must not call them.
            linker.define_unknown_imports_as_traps(module)?;
            linker.instantiate_async(store, module).await
        });
        block_on(snapshot).map_err(|e| format!("Wizer pre-initialization: {e:?}").into())
    }

    /// Wizer's API is async but nothing here awaits real I/O: poll it to completion in place.
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = future.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}

fn env(name: &str) -> anyhow_like::Result<String> {
    std::env::var(name).map_err(|_| format!("{name} is not set").into())
}

/// The build script keeps its own tiny error type instead of pulling anyhow into
/// [build-dependencies] (which would change the shared feature set of the main build).
mod anyhow_like {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
}
