//! The one definition of a credential placeholder: what code writes where a value goes.

use super::redact::find;

/// Every placeholder starts with this.
pub(super) const PLACEHOLDER_PREFIX: &str = "__WARDEN_SECRET_";

/// The placeholder code writes to use credential `name`. Only unreserved URL characters, so
/// that it survives URL and form encoding, f-strings and template literals unchanged.
pub fn placeholder(name: &str) -> String {
    format!("{PLACEHOLDER_PREFIX}{name}__")
}

/// The credential names whose placeholders appear in `text`.
pub(super) fn placeholders_in(text: &[u8]) -> Vec<String> {
    let prefix = PLACEHOLDER_PREFIX.as_bytes();
    let mut names = Vec::new();
    let mut at = 0;
    while let Some(found) = find(&text[at..], prefix) {
        let start = at + found + prefix.len();
        let rest = &text[start..];
        let end = find(rest, b"__").unwrap_or(rest.len());
        if end > 0 && end < rest.len() {
            names.push(String::from_utf8_lossy(&rest[..end]).into_owned());
        }
        at = start;
    }
    names
}

/// Whether `text` holds (the start of) any placeholder, known name or not.
pub(super) fn mentions_placeholder(text: &str) -> bool {
    text.contains(PLACEHOLDER_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_unreserved_url_characters() {
        let p = placeholder("github");
        assert_eq!(p, "__WARDEN_SECRET_github__");
        assert!(
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        );
    }

    #[test]
    fn placeholders_are_found_by_name() {
        let text = format!("a{}b{}", placeholder("one"), placeholder("two-2"));
        assert_eq!(placeholders_in(text.as_bytes()), ["one", "two-2"]);
        assert!(mentions_placeholder(&text));
        assert!(!mentions_placeholder("__WARDEN_SECRE"));
    }
}
