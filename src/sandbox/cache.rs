//! Precompiled guests on disk, so that a warm start loads in milliseconds instead of compiling
//! for seconds.
//!
//! An entry's name carries the guest's name and a key over (Warden's version, the engine's
//! compatibility hash, which covers wasmtime's version and the engine configuration, and the
//! guest's content hash). Its body is the serialized module followed by a BLAKE3 digest of it,
//! so that a torn or corrupted file is caught before wasmtime deserializes it (which is
//! `unsafe`: it maps native code). The digest cannot stop someone who can write the directory,
//! so the directory must belong to this user and be writable by no one else; otherwise the
//! cache is not used. Any problem with an entry is a miss: recompile, rewrite, never crash.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::error::Context as _;
use wasmtime::{Engine, Module};

use super::GuestProgram;

const DIGEST_LEN: usize = 32;

/// What can be compiled, serialized and deserialized: core modules and components.
pub trait Artifact: Sized {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self>;
    /// # Safety
    /// `bytes` must come from `serialize` on an engine with the same configuration.
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self>;
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
}

impl Artifact for Module {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        Module::new(engine, wasm)
    }
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: forwarded to the caller.
        unsafe { Module::deserialize(engine, bytes) }
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Module::serialize(self)
    }
}

impl Artifact for Component {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, wasm)
    }
    unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: forwarded to the caller.
        unsafe { Component::deserialize(engine, bytes) }
    }
    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }
}

pub fn load_or_compile<T: Artifact>(
    engine: &Engine,
    program: &GuestProgram,
    cache_dir: Option<&Path>,
) -> wasmtime::Result<T> {
    let Some(dir) = cache_dir else {
        return compile(engine, program);
    };
    if let Err(e) = ensure_private_dir(dir) {
        tracing::warn!(dir = %dir.display(), "not using the guest cache: {e:#}");
        return compile(engine, program);
    }
    let path = entry_path(engine, program, dir);
    match load(engine, &path) {
        Ok(Some(module)) => return Ok(module),
        Ok(None) => tracing::debug!(path = %path.display(), "guest cache miss"),
        Err(e) => tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e:#}"),
    }
    let module = compile(engine, program)?;
    if let Err(e) = store(&module, &path) {
        tracing::warn!(path = %path.display(), "could not write the guest cache: {e:#}");
    }
    Ok(module)
}

fn compile<T: Artifact>(engine: &Engine, program: &GuestProgram) -> wasmtime::Result<T> {
    let started = std::time::Instant::now();
    let wasm = program
        .wasm
        .wasm()
        .with_context(|| format!("decompressing the {} guest", program.name))?;
    let module = T::compile(engine, &wasm)
        .with_context(|| format!("compiling the {} guest", program.name))?;
    tracing::info!(
        guest = program.name,
        ms = started.elapsed().as_millis() as u64,
        "compiled guest"
    );
    Ok(module)
}

fn entry_path(engine: &Engine, program: &GuestProgram, dir: &Path) -> PathBuf {
    let mut engine_hash = KeyHasher(blake3::Hasher::new());
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let mut key = blake3::Hasher::new();
    key.update(env!("CARGO_PKG_VERSION").as_bytes());
    key.update(engine_hash.0.finalize().as_bytes());
    key.update(blake3::hash(program.wasm.stored()).as_bytes());
    let key = key.finalize().to_hex();
    dir.join(format!("{}-{}.cwasm", program.name, &key[..32]))
}

/// `Ok(None)` when there is no entry; `Err` when there is one that cannot be used.
fn load<T: Artifact>(engine: &Engine, path: &Path) -> wasmtime::Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("reading the entry"),
    };
    let artifact = verified_artifact(&bytes)?;
    // SAFETY: the bytes are exactly what `Module::serialize` produced for this engine
    // configuration (checked by the digest above; wasmtime checks version and configuration).
    let module = unsafe { T::deserialize(engine, artifact) }.context("deserializing")?;
    Ok(Some(module))
}

fn verified_artifact(bytes: &[u8]) -> wasmtime::Result<&[u8]> {
    if bytes.len() < DIGEST_LEN {
        wasmtime::bail!("entry is truncated");
    }
    let (artifact, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
    if blake3::hash(artifact).as_bytes() != digest {
        wasmtime::bail!("entry digest does not match (torn write or modified file)");
    }
    Ok(artifact)
}

/// Creates `dir` (mode 0700) if needed and checks that it is ours and not writable by others.
fn ensure_private_dir(dir: &Path) -> wasmtime::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let meta = std::fs::metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    if !meta.is_dir() {
        wasmtime::bail!("it is not a directory");
    }
    if meta.uid() != uid {
        wasmtime::bail!("it belongs to uid {}, not to this user ({uid})", meta.uid());
    }
    if meta.mode() & 0o022 != 0 {
        wasmtime::bail!(
            "it is writable by group or others (mode {:o})",
            meta.mode() & 0o777
        );
    }
    Ok(())
}

fn store<T: Artifact>(module: &T, path: &Path) -> wasmtime::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = module.serialize().context("serializing the module")?;
    let digest = blake3::hash(&bytes);
    bytes.extend_from_slice(digest.as_bytes());
    // A fresh file (never an existing one or a symlink), then a rename, so that a concurrent
    // reader never sees half a file.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = path.with_extension(format!("tmp-{}-{nonce}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let written = file.write_all(&bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", tmp.display()));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// Feeds `Hash` output into BLAKE3 (std's hashers are not meant to be stable across builds).
struct KeyHasher(blake3::Hasher);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0.finalize().as_bytes()[..8]);
        u64::from_le_bytes(first)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A tiny valid module: compiling it is fast, which keeps these tests quick.
    const WAT_MODULE: &[u8] = b"\0asm\x01\0\0\0";

    fn program() -> GuestProgram {
        GuestProgram {
            name: "empty",
            form: crate::sandbox::GuestForm::CoreModule,
            wasm: crate::sandbox::GuestBytes::Plain(WAT_MODULE),
        }
    }

    fn engine() -> Engine {
        Engine::new(wasmtime::Config::new().consume_fuel(true)).unwrap()
    }

    #[test]
    fn miss_then_hit() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let p = program();
        let path = entry_path(&engine, &p, dir.path());
        assert!(!path.exists());
        load_or_compile::<Module>(&engine, &p, Some(dir.path())).unwrap();
        assert!(path.exists(), "the first load writes the entry");
        assert!(
            load::<Module>(&engine, &path).unwrap().is_some(),
            "the entry is usable"
        );
    }

    #[test]
    fn corrupt_entry_is_a_miss_and_gets_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let p = program();
        load_or_compile::<Module>(&engine, &p, Some(dir.path())).unwrap();
        let path = entry_path(&engine, &p, dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            load::<Module>(&engine, &path).is_err(),
            "a flipped byte is detected"
        );
        load_or_compile::<Module>(&engine, &p, Some(dir.path())).unwrap();
        assert!(
            load::<Module>(&engine, &path).unwrap().is_some(),
            "the entry was rewritten"
        );
    }

    #[test]
    fn truncated_and_foreign_entries_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let path = dir.path().join("x.cwasm");
        std::fs::write(&path, b"short").unwrap();
        assert!(load::<Module>(&engine, &path).is_err());
        // Right digest, wrong content: wasmtime itself must refuse it.
        let mut bytes = b"not a wasmtime artifact".to_vec();
        bytes.extend_from_slice(blake3::hash(b"not a wasmtime artifact").as_bytes());
        std::fs::write(&path, &bytes).unwrap();
        assert!(load::<Module>(&engine, &path).is_err());
    }

    #[test]
    fn key_depends_on_engine_configuration() {
        let dir = Path::new("/cache");
        let p = program();
        let a = entry_path(&engine(), &p, dir);
        let other = Engine::new(wasmtime::Config::new().consume_fuel(false)).unwrap();
        let b = entry_path(&other, &p, dir);
        assert_ne!(a, b);
    }

    #[test]
    fn a_directory_others_can_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let engine = engine();
        let p = program();
        load_or_compile::<Module>(&engine, &p, Some(dir.path())).unwrap();
        assert!(
            !entry_path(&engine, &p, dir.path()).exists(),
            "nothing is written there"
        );
    }

    #[test]
    fn a_new_cache_directory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("a/b");
        load_or_compile::<Module>(&engine(), &program(), Some(&cache)).unwrap();
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn unwritable_cache_dir_still_compiles() {
        let engine = engine();
        let module =
            load_or_compile::<Module>(&engine, &program(), Some(Path::new("/proc/warden-no")));
        assert!(module.is_ok());
    }
}
