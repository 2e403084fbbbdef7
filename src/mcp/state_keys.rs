//! The keys that seal approval `requestState` values. A single server makes a random key at
//! start (a restart invalidates open questions: the client is asked again). Replicas behind a
//! load balancer must share a keyring, so that a question asked by one is answered on another:
//! `--state-key-file` (re-read when it changes) or `$WARDEN_STATE_KEYS`.
//!
//! Keyring format: one key per line (or `;`-separated in the variable), `<key-id> <secret>`,
//! the secret at least 32 bytes (e.g. `openssl rand -hex 32`); blank lines and `#` comments are
//! skipped. The first key seals; every key opens. To rotate: put the new key first, keep the
//! old one until the open questions it sealed have expired (APPROVAL_TIMEOUT), then drop it.

use std::path::PathBuf;
use std::sync::{PoisonError, RwLock};
use std::time::SystemTime;

use anyhow::Context as _;
use rmcp::model::RequestStateCodec;

/// Where the keys come from.
#[derive(Debug, Clone, Default)]
pub enum StateKeys {
    /// A key made at start, known to this process only.
    #[default]
    Random,
    /// A keyring file, re-read when its modification time changes.
    File(PathBuf),
    /// A keyring given whole (from an environment variable).
    Text(String),
}

pub(super) struct Keyring {
    source: StateKeys,
    /// The codec, and the file's modification time it was read at.
    current: RwLock<(Option<SystemTime>, RequestStateCodec)>,
}

impl Keyring {
    /// Reads the keys: a missing or malformed keyring is an error at start.
    pub fn new(source: StateKeys) -> anyhow::Result<Keyring> {
        let (modified, codec) = match &source {
            StateKeys::Random => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key)
                    .map_err(|e| anyhow::anyhow!("no randomness for the approval key: {e}"))?;
                (None, RequestStateCodec::try_new(key.to_vec())?)
            }
            StateKeys::Text(text) => (None, parse(text).context("$WARDEN_STATE_KEYS")?),
            StateKeys::File(path) => read(path)?,
        };
        Ok(Keyring {
            source,
            current: RwLock::new((modified, codec)),
        })
    }

    /// The codec of the keyring as it stands now (a changed file is read again; a file that
    /// became unreadable or malformed keeps the last good keys, with a warning).
    pub fn codec(&self) -> RequestStateCodec {
        if let StateKeys::File(path) = &self.source {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            let stale = self
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .0
                != modified;
            if stale {
                match read(path) {
                    Ok(fresh) => {
                        tracing::info!("re-read the approval keyring {}", path.display());
                        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                    }
                    Err(e) => tracing::warn!("{e:#}; the last keys read stay in use"),
                }
            }
        }
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }
}

fn read(path: &PathBuf) -> anyhow::Result<(Option<SystemTime>, RequestStateCodec)> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the approval keyring {}", path.display()))?;
    let codec = parse(&text).with_context(|| format!("the approval keyring {}", path.display()))?;
    Ok((modified, codec))
}

fn parse(text: &str) -> anyhow::Result<RequestStateCodec> {
    let mut keys = Vec::new();
    for (n, entry) in text.split(['\n', ';']).enumerate() {
        let entry = entry.trim();
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let mut parts = entry.split_whitespace();
        let (Some(id), Some(secret), None) = (parts.next(), parts.next(), parts.next()) else {
            anyhow::bail!("entry {}: expected `<key-id> <secret>`", n + 1);
        };
        if secret.len() < RequestStateCodec::MIN_KEY_LENGTH {
            anyhow::bail!(
                "key `{id}`: the secret has {} bytes, at least {} are needed",
                secret.len(),
                RequestStateCodec::MIN_KEY_LENGTH
            );
        }
        keys.push((id.to_string(), secret.as_bytes().to_vec()));
    }
    let Some((active, _)) = keys.first().cloned() else {
        anyhow::bail!("no keys");
    };
    RequestStateCodec::new_with_keyring(active, keys).map_err(|e| anyhow::anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "old 0123456789abcdef0123456789abcdef";
    const NEW: &str = "new fedcba9876543210fedcba9876543210";

    #[test]
    fn a_rotated_keyring_opens_what_the_old_key_sealed_and_seals_with_the_new() {
        let before = parse(OLD).unwrap();
        let sealed = before.seal(b"question");
        let during = parse(&format!("{NEW}\n# rotated 2026-12-01\n{OLD}\n")).unwrap();
        assert_eq!(during.open(&sealed).unwrap(), b"question");
        let resealed = during.seal(b"next");
        let after = parse(NEW).unwrap();
        assert_eq!(after.open(&resealed).unwrap(), b"next");
        assert!(
            after.open(&sealed).is_err(),
            "the dropped key opens nothing"
        );
        assert!(
            parse("other 0123456789abcdef0123456789abcdeX")
                .unwrap()
                .open(&sealed)
                .is_err()
        );
    }

    #[test]
    fn malformed_keyrings_say_what_is_wrong() {
        for (text, expected) in [
            ("", "no keys"),
            ("# only a comment\n", "no keys"),
            ("k short", "at least 32"),
            ("lonely", "expected `<key-id> <secret>`"),
            ("a b c", "expected `<key-id> <secret>`"),
            (&format!("{OLD};{OLD}"), "duplicate"),
        ] {
            let e = format!("{:#}", parse(text).err().unwrap());
            assert!(e.contains(expected), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_broken_one_keeps_the_last_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, OLD).unwrap();
        let ring = Keyring::new(StateKeys::File(path.clone())).unwrap();
        let sealed = ring.codec().seal(b"q");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, format!("{NEW}\n{OLD}\n")).unwrap();
        let rotated = ring.codec();
        assert_eq!(rotated.open(&sealed).unwrap(), b"q");
        let by_new = rotated.seal(b"r");
        assert_eq!(parse(NEW).unwrap().open(&by_new).unwrap(), b"r");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(ring.codec().open(&by_new).unwrap(), b"r", "last good keys");
    }
}
