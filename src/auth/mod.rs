//! Callers: the bearer tokens of the policy's grants, and reading one from a request's
//! `Authorization` header. Transport-free; the HTTP layer asks, this module answers.

mod tokens;

pub use tokens::{GrantTokens, MIN_TOKEN_BYTES};

/// The token of an `Authorization: Bearer <token>` header value, if it is one.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    // RFC 9110 §11.1: the scheme is case-insensitive, and one or more spaces follow it.
    let (scheme, token) = authorization.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_header_gives_its_token() {
        assert_eq!(bearer_token("Bearer abc "), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        assert_eq!(bearer_token("bEaReR  abc"), Some("abc"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
