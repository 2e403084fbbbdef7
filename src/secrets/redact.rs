//! Redaction: every credential value, in the forms it commonly takes, replaced by its
//! placeholder in whatever flows back to the guest, the caller or the audit log.

use std::borrow::Cow;

use base64::Engine as _;

use super::MIN_SECRET_BYTES;

/// The forms a value commonly takes in text that carries it: as is; percent-encoded (every
/// non-alphanumeric byte, or only what `encodeURIComponent` encodes, or form-encoded), in upper
/// and lower case hex; JSON-escaped (also with `\/`); hex; and base64 (standard and URL-safe)
/// at each of the three alignments it can have inside a longer encoded string (`user:secret`
/// in Basic authentication). Redaction is a safety net, not a proof: an allowed host that
/// transforms a value otherwise is outside what it can see.
fn encodings(value: &str) -> Vec<String> {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    let mut forms = vec![value.to_string()];
    let percent = [
        utf8_percent_encode(value, NON_ALPHANUMERIC).to_string(),
        utf8_percent_encode(value, URI_COMPONENT).to_string(),
        url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>(),
    ];
    for form in percent {
        forms.push(lower_hex_escapes(&form));
        forms.push(form);
    }
    if let Ok(json) = serde_json::to_string(value) {
        let inner = json[1..json.len() - 1].to_string();
        forms.push(inner.replace('/', "\\/"));
        forms.push(inner);
    }
    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    forms.push(hex.to_ascii_uppercase());
    forms.push(hex);
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for offset in 0..3usize {
            let mut shifted = vec![0u8; offset];
            shifted.extend_from_slice(value.as_bytes());
            let encoded = engine.encode(&shifted);
            // Characters that depend only on the value's bytes: skip those mixing in the
            // padding before it, and the last one when it mixes in what follows.
            let first = (offset * 8).div_ceil(6);
            let last = (shifted.len() * 8) / 6;
            if let Some(stable) = encoded.get(first..last) {
                forms.push(stable.to_string());
            }
        }
    }
    forms.retain(|f| f.len() >= MIN_SECRET_BYTES);
    forms.sort();
    forms.dedup();
    forms
}

/// `%2F` → `%2f`: some encoders write lower-case hex.
pub(super) fn lower_hex_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            for _ in 0..2 {
                if let Some(h) = chars.next() {
                    out.push(h.to_ascii_lowercase());
                }
            }
        }
    }
    out
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(super) fn replace_bytes<'a>(haystack: &'a [u8], needle: &[u8], with: &[u8]) -> Cow<'a, [u8]> {
    let Some(first) = find(haystack, needle) else {
        return Cow::Borrowed(haystack);
    };
    let mut out = Vec::with_capacity(haystack.len());
    out.extend_from_slice(&haystack[..first]);
    out.extend_from_slice(with);
    let mut rest = &haystack[first + needle.len()..];
    while let Some(i) = find(rest, needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    Cow::Owned(out)
}

/// Replaces secret values with their placeholders.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (value form, placeholder), longest value first.
    needles: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Redactor {
    /// Replaces each value, in every form [`encodings`] knows, by its placeholder.
    pub(super) fn new<'a>(values: impl Iterator<Item = (&'a str, &'a str)>) -> Redactor {
        let mut needles = Vec::new();
        for (value, placeholder) in values {
            for form in encodings(value) {
                needles.push((form.into_bytes(), placeholder.as_bytes().to_vec()));
            }
        }
        // Longest first, so that a value containing another is replaced whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.0.len()));
        needles.dedup_by(|a, b| a.0 == b.0);
        Redactor { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    pub fn redact_bytes<'a>(&self, data: &'a [u8]) -> Cow<'a, [u8]> {
        let mut out: Cow<'a, [u8]> = Cow::Borrowed(data);
        for (needle, placeholder) in &self.needles {
            if let Cow::Owned(replaced) = replace_bytes(&out, needle, placeholder) {
                out = Cow::Owned(replaced);
            }
        }
        out
    }

    pub fn redact(&self, text: &str) -> String {
        match self.redact_bytes(text.as_bytes()) {
            // Values and placeholders are whole UTF-8 strings, so the result is UTF-8 too.
            Cow::Borrowed(_) => text.to_string(),
            Cow::Owned(bytes) => String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }

    /// As [`redact`](Self::redact), for text that has been ASCII-lower-cased on its way here
    /// (HTTP header names, which hyper folds): a secret is found in either case. The result
    /// is the lower-cased text with placeholders in it.
    pub fn redact_case_folded(&self, text: &str) -> String {
        let mut out = text.to_ascii_lowercase().into_bytes();
        for (needle, placeholder) in &self.needles {
            if let Cow::Owned(replaced) =
                replace_bytes(&out, &needle.to_ascii_lowercase(), placeholder)
            {
                out = replaced;
            }
        }
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Redacts every string inside a JSON value (keys included).
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => *s = self.redact(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let entries: Vec<(String, Value)> = std::mem::take(map)
                    .into_iter()
                    .map(|(k, mut v)| {
                        self.redact_json(&mut v);
                        (self.redact(&k), v)
                    })
                    .collect();
                map.extend(entries);
            }
            _ => {}
        }
    }
}
