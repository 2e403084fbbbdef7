//! Credentials: their values (read once, at start-up, from the environment or a file), their
//! use on outgoing requests (placeholder substitution and header injection, only towards the
//! hosts each credential is scoped to), and redaction (every value replaced by its placeholder
//! in whatever flows back to the guest, the caller or the audit log).
//!
//! Values never enter the sandbox: the guest writes placeholders, the host substitutes them on
//! the way out, and redacts the values on the way back in.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use url::Url;

use crate::net::AllowList;
use crate::policy::network::{CredentialSpec, Injection, SECRET_MARK, allow_list, placeholder};

pub mod tokens;
pub use tokens::GrantTokens;

/// The shortest value that can be redacted without mangling ordinary text.
pub const MIN_SECRET_BYTES: usize = 8;

const PLACEHOLDER_PREFIX: &str = "__WARDEN_SECRET_";

struct Credential {
    name: String,
    placeholder: String,
    /// The value, or why it could not be read.
    value: Result<String, String>,
    hosts: AllowList,
    inject: Option<Injection>,
}

/// Every credential of the policy, loaded.
#[derive(Default)]
pub struct Credentials {
    credentials: Vec<Credential>,
}

impl std::fmt::Debug for Credentials {
    /// Names and availability only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.credentials
                    .iter()
                    .map(|c| (&c.name, c.value.as_ref().map(|_| "loaded"))),
            )
            .finish()
    }
}

/// A request on its way out, as the guest wrote it (placeholders and all).
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    pub method: String,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The request to send, credentials in place, and the names of the credentials it carries.
#[derive(Debug)]
pub struct Prepared {
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub used: Vec<String>,
}

impl Credentials {
    /// Reads every credential's value. A value that cannot be read leaves that credential
    /// unusable (requests needing it are refused with the reason) and is returned as a
    /// warning; it never stops the server.
    pub fn load(specs: &BTreeMap<String, CredentialSpec>) -> (Credentials, Vec<String>) {
        Credentials::load_with(specs, |name| std::env::var(name).ok())
    }

    /// [`Self::load`] with the environment given (tests).
    pub fn load_with(
        specs: &BTreeMap<String, CredentialSpec>,
        env: impl Fn(&str) -> Option<String>,
    ) -> (Credentials, Vec<String>) {
        let mut warnings = Vec::new();
        let credentials = specs
            .iter()
            .map(|(name, spec)| {
                let value = read_value(spec, &env).and_then(|v| {
                    if v.len() < MIN_SECRET_BYTES {
                        Err(format!(
                            "its value is shorter than {MIN_SECRET_BYTES} bytes, too short to redact reliably"
                        ))
                    } else if v.contains(PLACEHOLDER_PREFIX) {
                        Err("its value contains a placeholder".to_string())
                    } else {
                        Ok(v)
                    }
                });
                if let Err(why) = &value {
                    warnings.push(format!("credential `{name}` is unavailable: {why}"));
                }
                Credential {
                    name: name.clone(),
                    placeholder: placeholder(name),
                    value,
                    hosts: allow_list(&spec.hosts),
                    inject: spec.inject.clone(),
                }
            })
            .collect();
        (Credentials { credentials }, warnings)
    }

    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }

    /// The names, for the tool description.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.credentials.iter().map(|c| c.name.as_str())
    }

    /// Replaces every secret value (and its common encodings) by its placeholder.
    pub fn redactor(&self) -> Redactor {
        let mut needles = Vec::new();
        for c in &self.credentials {
            let Ok(value) = &c.value else { continue };
            for form in encodings(value) {
                needles.push((form.into_bytes(), c.placeholder.clone().into_bytes()));
            }
        }
        // Longest first, so that a value containing another is replaced whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.0.len()));
        needles.dedup_by(|a, b| a.0 == b.0);
        Redactor { needles }
    }

    /// Puts credentials into a request bound for `request.url`: placeholders are substituted
    /// (percent-encoded in the URL) and injected headers set. `allowed` limits the credentials
    /// to a grant's (`None`: all). `carry` is false after a redirect changed the origin: then
    /// no credential goes out, and a placeholder anywhere refuses the request.
    pub fn prepare(
        &self,
        request: &OutgoingRequest,
        allowed: Option<&[String]>,
        carry: bool,
    ) -> Result<Prepared, String> {
        let url_text = request.url.as_str();
        // Hosts are case-folded by the URL parser: look for the placeholder in any case.
        let prefix = PLACEHOLDER_PREFIX.to_ascii_lowercase();
        let host_part = request
            .url
            .host_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if host_part.contains(&prefix)
            || request
                .url
                .username()
                .to_ascii_lowercase()
                .contains(&prefix)
        {
            return Err("a credential placeholder cannot be part of the host".into());
        }
        let mut used: Vec<String> = Vec::new();
        let mentioned = |text: &[u8]| -> Vec<String> { placeholders_in(text) };
        let mut names: Vec<String> = mentioned(url_text.as_bytes());
        for (name, value) in &request.headers {
            names.extend(mentioned(name.as_bytes()));
            names.extend(mentioned(value.as_bytes()));
        }
        names.extend(mentioned(&request.body));
        names.sort();
        names.dedup();
        let target = request.url.host_str().unwrap_or_default().to_string();
        let mut substitutions: Vec<(&str, &str)> = Vec::new();
        for name in &names {
            let credential = self
                .credentials
                .iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| format!("there is no credential named `{name}`"))?;
            if !carry {
                return Err(format!(
                    "credential `{name}` cannot follow a redirect to another origin ({target})"
                ));
            }
            if allowed.is_some_and(|a| !a.contains(name)) {
                return Err(format!(
                    "credential `{name}` is not available to this caller"
                ));
            }
            if credential
                .hosts
                .check(&request.method, &request.url)
                .is_err()
            {
                return Err(format!(
                    "credential `{name}` may not be sent to {target}: the whole request is refused"
                ));
            }
            let value = credential
                .value
                .as_ref()
                .map_err(|why| format!("credential `{name}` is unavailable: {why}"))?;
            substitutions.push((credential.placeholder.as_str(), value.as_str()));
            used.push(name.clone());
        }

        let url = if substitutions.is_empty() {
            request.url.clone()
        } else {
            let mut text = url_text.to_string();
            for (placeholder, value) in &substitutions {
                let encoded: String = percent_encoding::utf8_percent_encode(
                    value,
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string();
                text = text.replace(placeholder, &encoded);
            }
            let url = Url::parse(&text)
                .map_err(|e| format!("the URL is invalid after substitution: {e}"))?;
            if url.host_str() != request.url.host_str() || url.port() != request.url.port() {
                return Err("substitution changed the request's host".into());
            }
            url
        };
        let mut headers: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), substitute(v, &substitutions)))
            .collect();
        let body = if substitutions.is_empty() {
            request.body.clone()
        } else {
            let mut body = request.body.clone();
            for (placeholder, value) in &substitutions {
                body = replace_bytes(&body, placeholder.as_bytes(), value.as_bytes()).into_owned();
            }
            body
        };

        if carry {
            for credential in &self.credentials {
                let Some(inject) = &credential.inject else {
                    continue;
                };
                if allowed.is_some_and(|a| !a.contains(&credential.name))
                    || credential
                        .hosts
                        .check(&request.method, &request.url)
                        .is_err()
                {
                    continue;
                }
                if headers
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case(&inject.header))
                {
                    return Err(format!(
                        "the server sets the {} header for {target} (credential `{}`); the code may not",
                        inject.header, credential.name
                    ));
                }
                let value = credential.value.as_ref().map_err(|why| {
                    format!("credential `{}` is unavailable: {why}", credential.name)
                })?;
                headers.push((
                    inject.header.clone(),
                    inject.value.replace(SECRET_MARK, value),
                ));
                if !used.contains(&credential.name) {
                    used.push(credential.name.clone());
                }
            }
        }
        Ok(Prepared {
            url,
            headers,
            body,
            used,
        })
    }
}

fn read_value(
    spec: &CredentialSpec,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    match (&spec.env, &spec.file) {
        (Some(var), _) => env(var)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("environment variable {var} is not set")),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|v| {
                if v.is_empty() {
                    Err(format!("{} is empty", path.display()))
                } else {
                    Ok(v)
                }
            }),
        (None, None) => Err("it has no source".into()),
    }
}

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
fn lower_hex_escapes(text: &str) -> String {
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

/// The credential names whose placeholders appear in `text`.
fn placeholders_in(text: &[u8]) -> Vec<String> {
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

fn substitute(text: &str, substitutions: &[(&str, &str)]) -> String {
    let mut text = text.to_string();
    for (placeholder, value) in substitutions {
        text = text.replace(placeholder, value);
    }
    text
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace_bytes<'a>(haystack: &'a [u8], needle: &[u8], with: &[u8]) -> Cow<'a, [u8]> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    const SECRET: &str = "ghp_S3cr3tV4lue/with+odd&chars";

    fn credentials() -> Credentials {
        let policy = Policy::parse(
            r#"
[credentials.github]
env = "GH"
hosts = ["https://api.github.com"]
inject = { header = "Authorization", value = "Bearer {secret}" }

[credentials.weather]
env = "WEATHER"
hosts = ["https://api.weather.example/data/"]

[credentials.missing]
env = "NOT_SET"
hosts = ["https://missing.example"]
"#,
            "p",
        )
        .unwrap();
        let (c, warnings) = Credentials::load_with(&policy.credentials, |name| match name {
            "GH" => Some(SECRET.into()),
            "WEATHER" => Some("w-key-12345678".into()),
            _ => None,
        });
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("`missing`") && warnings[0].contains("NOT_SET is not set"));
        c
    }

    fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> OutgoingRequest {
        OutgoingRequest {
            method: method.into(),
            url: Url::parse(url).unwrap(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn injection_adds_the_header_for_the_scoped_host_only() {
        let c = credentials();
        let p = c
            .prepare(
                &request("GET", "https://api.github.com/user", &[], ""),
                None,
                true,
            )
            .unwrap();
        assert_eq!(
            p.headers,
            vec![("Authorization".to_string(), format!("Bearer {SECRET}"))]
        );
        assert_eq!(p.used, vec!["github"]);
        let elsewhere = c
            .prepare(&request("GET", "https://example.com/", &[], ""), None, true)
            .unwrap();
        assert!(elsewhere.headers.is_empty() && elsewhere.used.is_empty());
    }

    #[test]
    fn the_guest_cannot_set_an_injected_header() {
        let c = credentials();
        let e = c
            .prepare(
                &request(
                    "GET",
                    "https://api.github.com/",
                    &[("authorization", "Bearer mine")],
                    "",
                ),
                None,
                true,
            )
            .unwrap_err();
        assert!(
            e.contains("the server sets the Authorization header"),
            "{e}"
        );
        let injected = c
            .prepare(
                &request("GET", "https://api.github.com/x", &[], ""),
                None,
                true,
            )
            .unwrap();
        let names: Vec<&str> = injected.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["Authorization"]);
    }

    #[test]
    fn placeholders_are_substituted_in_headers_query_and_body() {
        let c = credentials();
        let p = c
            .prepare(
                &request(
                    "POST",
                    "https://api.weather.example/data/q?appid=__WARDEN_SECRET_weather__&x=1",
                    &[("X-Key", "k=__WARDEN_SECRET_weather__")],
                    r#"{"key":"__WARDEN_SECRET_weather__"}"#,
                ),
                None,
                true,
            )
            .unwrap();
        assert_eq!(p.url.query(), Some("appid=w%2Dkey%2D12345678&x=1"));
        assert_eq!(p.headers[0].1, "k=w-key-12345678");
        assert_eq!(p.body, br#"{"key":"w-key-12345678"}"#);
        assert_eq!(p.used, vec!["weather"]);
    }

    #[test]
    fn url_substitution_is_percent_encoded_and_keeps_the_host() {
        let c = credentials();
        let p = c
            .prepare(
                &request(
                    "GET",
                    "https://api.github.com/x?t=__WARDEN_SECRET_github__",
                    &[],
                    "",
                ),
                None,
                true,
            )
            .unwrap();
        assert_eq!(p.url.host_str(), Some("api.github.com"));
        assert!(
            !p.url.as_str().contains('&') || p.url.query_pairs().count() == 1,
            "{}",
            p.url
        );
        assert_eq!(
            p.url.query_pairs().next().unwrap().1,
            SECRET,
            "decodes back to the value"
        );
    }

    #[test]
    fn a_placeholder_bound_elsewhere_refuses_the_whole_request() {
        let c = credentials();
        for (method, url, headers, body) in [
            (
                "GET",
                "https://evil.example/?k=__WARDEN_SECRET_github__",
                vec![],
                "",
            ),
            (
                "POST",
                "https://evil.example/",
                vec![],
                "__WARDEN_SECRET_github__",
            ),
            (
                "GET",
                "https://evil.example/",
                vec![("X", "__WARDEN_SECRET_weather__")],
                "",
            ),
            // In scope by host, but outside the credential's path prefix.
            (
                "GET",
                "https://api.weather.example/other?k=__WARDEN_SECRET_weather__",
                vec![],
                "",
            ),
        ] {
            let e = c
                .prepare(&request(method, url, &headers, body), None, true)
                .unwrap_err();
            assert!(e.contains("may not be sent to"), "{url}: {e}");
        }
    }

    #[test]
    fn unknown_unavailable_and_ungranted_credentials_are_refused() {
        let c = credentials();
        let e = c
            .prepare(
                &request(
                    "GET",
                    "https://x.example/?k=__WARDEN_SECRET_nope__",
                    &[],
                    "",
                ),
                None,
                true,
            )
            .unwrap_err();
        assert!(e.contains("no credential named `nope`"), "{e}");
        let e = c
            .prepare(
                &request(
                    "GET",
                    "https://missing.example/?k=__WARDEN_SECRET_missing__",
                    &[],
                    "",
                ),
                None,
                true,
            )
            .unwrap_err();
        assert!(e.contains("NOT_SET is not set"), "{e}");
        let only_weather = vec!["weather".to_string()];
        let e = c
            .prepare(
                &request(
                    "GET",
                    "https://api.github.com/?k=__WARDEN_SECRET_github__",
                    &[],
                    "",
                ),
                Some(&only_weather),
                true,
            )
            .unwrap_err();
        assert!(e.contains("not available to this caller"), "{e}");
        // An ungranted credential is not injected either.
        let p = c
            .prepare(
                &request("GET", "https://api.github.com/", &[], ""),
                Some(&only_weather),
                true,
            )
            .unwrap();
        assert!(p.headers.is_empty());
    }

    #[test]
    fn nothing_is_carried_across_origins() {
        let c = credentials();
        let p = c
            .prepare(
                &request("GET", "https://api.github.com/", &[], ""),
                None,
                false,
            )
            .unwrap();
        assert!(p.headers.is_empty() && p.used.is_empty());
        let e = c
            .prepare(
                &request(
                    "GET",
                    "https://api.github.com/?k=__WARDEN_SECRET_github__",
                    &[],
                    "",
                ),
                None,
                false,
            )
            .unwrap_err();
        assert!(e.contains("cannot follow a redirect"), "{e}");
    }

    #[test]
    fn a_placeholder_in_the_host_is_refused() {
        let c = credentials();
        let e = c
            .prepare(
                &request(
                    "GET",
                    "https://__WARDEN_SECRET_github__.evil.example/",
                    &[],
                    "",
                ),
                None,
                true,
            )
            .unwrap_err();
        assert!(e.contains("part of the host"), "{e}");
    }

    #[test]
    fn redaction_replaces_values_and_their_encodings() {
        let r = credentials().redactor();
        let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
        let text = format!(
            "raw {SECRET} url {} json {} b64 {b64} end",
            percent_encoding::utf8_percent_encode(SECRET, percent_encoding::NON_ALPHANUMERIC),
            serde_json::to_string(SECRET).unwrap(),
        );
        let out = r.redact(&text);
        assert!(!out.contains(SECRET), "{out}");
        assert!(!out.contains(&b64[..b64.len() - 4]), "{out}");
        assert_eq!(out.matches("__WARDEN_SECRET_github__").count(), 4, "{out}");
        let mut json = serde_json::json!({"k": [SECRET, {SECRET: 1}]});
        r.redact_json(&mut json);
        assert!(!json.to_string().contains("S3cr3t"), "{json}");
    }

    #[test]
    fn case_folded_text_is_redacted_in_either_case() {
        let r = credentials().redactor();
        let b64 = base64::engine::general_purpose::STANDARD.encode(SECRET);
        for name in [
            SECRET.to_string(),
            SECRET.to_ascii_lowercase(),
            format!("x-{}", SECRET.to_ascii_uppercase()),
            format!("x-{}", b64.to_ascii_lowercase()),
        ] {
            let out = r.redact_case_folded(&name);
            assert!(
                !out.contains(&SECRET.to_ascii_lowercase()) && !out.contains("s3cr3t"),
                "{name} -> {out}"
            );
            assert!(out.contains("__WARDEN_SECRET_github__"), "{name} -> {out}");
        }
        assert_eq!(r.redact_case_folded("Content-Type"), "content-type");
    }

    #[test]
    fn redaction_covers_the_encodings_servers_and_clients_use() {
        let r = credentials().redactor();
        let minimal =
            percent_encoding::utf8_percent_encode(SECRET, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let b64 = |prefix: &str| {
            base64::engine::general_purpose::STANDARD.encode(format!("{prefix}{SECRET}"))
        };
        for text in [
            // encodeURIComponent leaves - _ . ! ~ * ' ( ) alone.
            "ghp_S3cr3tV4lue%2Fwith%2Bodd%26chars".to_string(),
            lower_hex_escapes(&minimal),
            url::form_urlencoded::byte_serialize(SECRET.as_bytes()).collect::<String>(),
            serde_json::to_string(SECRET).unwrap().replace('/', "\\/"),
            SECRET
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            // Basic authentication: the value inside a longer base64 string, at each alignment.
            b64("user:"),
            b64("ab:"),
            b64("a:"),
            b64(""),
        ] {
            let out = r.redact(&format!("<{text}>"));
            assert!(out.contains("__WARDEN_SECRET_github__"), "{text} -> {out}");
        }
    }

    #[test]
    fn short_values_are_refused_at_load() {
        let policy = Policy::parse(
            "[credentials.k]\nenv = \"K\"\nhosts = [\"https://a.example\"]\n",
            "p",
        )
        .unwrap();
        let (c, warnings) = Credentials::load_with(&policy.credentials, |_| Some("abc".into()));
        assert!(warnings[0].contains("too short"), "{warnings:?}");
        assert!(c.redactor().is_empty());
        assert!(format!("{c:?}").contains("too short") && !format!("{c:?}").contains("abc\""));
    }
}
