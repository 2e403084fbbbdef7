//! Callers: the bearer tokens of the policy's grants, and reading one from a request's
//! `Authorization` header. Transport-free; the HTTP layer asks, this module answers.

mod tokens;

pub use tokens::{GrantTokens, MIN_TOKEN_BYTES};

/// The token of an `Authorization: Bearer <token>` header value, if it is one.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    authorization
        .strip_prefix("Bearer ")
        .or_else(|| authorization.strip_prefix("bearer "))
        .map(str::trim)
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
    }
}
