//! Bearer tokens of the policy's grants: read once (environment variable or file) or given as a
//! SHA-256, kept only as digests, and compared in constant time.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::policy::GrantSpec;

/// Tokens shorter than this are refused at load: a bearer token must not be guessable.
pub const MIN_TOKEN_BYTES: usize = 16;

#[derive(Default)]
pub struct GrantTokens {
    /// (grant, SHA-256 of its token).
    digests: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for GrantTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.digests.iter().map(|(g, _)| g))
            .finish()
    }
}

impl GrantTokens {
    /// Loads every grant's token. A token that cannot be read leaves its grant unable to
    /// authenticate (a warning says why); it never stops the server.
    pub fn load(grants: &BTreeMap<String, GrantSpec>) -> (GrantTokens, Vec<String>) {
        GrantTokens::load_with(grants, |name| std::env::var(name).ok())
    }

    pub fn load_with(
        grants: &BTreeMap<String, GrantSpec>,
        env: impl Fn(&str) -> Option<String>,
    ) -> (GrantTokens, Vec<String>) {
        let mut digests = Vec::new();
        let mut warnings = Vec::new();
        for (name, grant) in grants {
            let digest = if let Some(hex) = &grant.token_sha256 {
                parse_hex(hex)
                    .ok_or_else(|| "token_sha256 is not 64 hexadecimal digits".to_string())
            } else if let Some(var) = &grant.token_env {
                env(var)
                    .ok_or_else(|| format!("environment variable {var} is not set"))
                    .and_then(check_token)
            } else if let Some(path) = &grant.token_file {
                std::fs::read_to_string(path)
                    .map(|t| t.trim_end_matches(['\n', '\r']).to_string())
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
                    .and_then(check_token)
            } else {
                continue; // `local`: no token
            };
            match digest {
                Ok(digest) => digests.push((name.clone(), digest)),
                Err(why) => warnings.push(format!("grant `{name}` cannot authenticate: {why}")),
            }
        }
        (GrantTokens { digests }, warnings)
    }

    /// Whether any grant authenticates by token (then every HTTP caller must present one).
    pub fn any(&self) -> bool {
        !self.digests.is_empty()
    }

    /// The grant a presented token belongs to. Every digest is compared, each in constant
    /// time, so the time taken does not say which grant (or how much of a token) matched.
    pub fn authenticate(&self, presented: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (grant, expected) in &self.digests {
            if bool::from(expected.ct_eq(&digest)) && found.is_none() {
                found = Some(grant.as_str());
            }
        }
        found
    }
}

fn check_token(token: String) -> Result<[u8; 32], String> {
    if token.len() < MIN_TOKEN_BYTES {
        return Err(format!("the token is shorter than {MIN_TOKEN_BYTES} bytes"));
    }
    Ok(Sha256::digest(token.as_bytes()).into())
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    #[test]
    fn tokens_from_env_file_and_hash_authenticate_their_grant() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, "file-token-0123456789\n").unwrap();
        let hash = hex_of(&Sha256::digest(b"hashed-token-0123456789"));
        let policy = Policy::parse(
            &format!(
                "[grants.ci]\ntoken_env = \"CI_TOKEN\"\n[grants.bot]\ntoken_file = \"{}\"\n\
                 [grants.ops]\ntoken_sha256 = \"{hash}\"\n[grants.short]\ntoken_env = \"SHORT\"\n\
                 [grants.missing]\ntoken_env = \"UNSET\"\n[grants.local]\n",
                file.display()
            ),
            "p",
        )
        .unwrap();
        let (tokens, warnings) = GrantTokens::load_with(&policy.grants, |v| match v {
            "CI_TOKEN" => Some("ci-token-0123456789".into()),
            "SHORT" => Some("abc".into()),
            _ => None,
        });
        assert_eq!(tokens.authenticate("ci-token-0123456789"), Some("ci"));
        assert_eq!(tokens.authenticate("file-token-0123456789"), Some("bot"));
        assert_eq!(tokens.authenticate("hashed-token-0123456789"), Some("ops"));
        assert_eq!(tokens.authenticate("ci-token-012345678"), None);
        assert_eq!(tokens.authenticate(""), None);
        assert_eq!(
            tokens.authenticate("abc"),
            None,
            "a short token never loads"
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("`short`") && w.contains("shorter"))
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("`missing`") && w.contains("UNSET"))
        );
        assert!(tokens.any());
        assert!(!format!("{tokens:?}").contains("token-"));
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
