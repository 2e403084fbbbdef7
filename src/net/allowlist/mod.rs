//! The allowlist: which URLs a guest's `fetch` may reach. A pure module: rules are parsed once
//! (from the policy), and requests are matched as URLs parsed by the `url` crate (the same
//! parse the request is then sent from), never by slicing strings.
//!
//! A rule, in its string form:
//!
//! ```text
//! rule   = scheme "://" host [ ":" ports ] [ path ]
//! scheme = "http" | "https" | "*"                 ("*" = http or https)
//! host   = name | "*." name | "*"                 (a name is IDNA-normalized, case-folded)
//!        | ipv4 [ "/" len ] | "[" ipv6 [ "/" len ] "]"     (an IP, or a network)
//! ports  = "*" | port-item *( "," port-item )     port-item = port | port "-" port
//!          (default: 80 for http, 443 for https)
//! path   = "/" ...                                (a prefix, matched segment by segment)
//! ```
//!
//! In a policy a rule is that string, or a table `{ url = "...", methods = ["GET", ...] }`
//! to allow only some methods. `*.example.com` matches every subdomain of example.com but not
//! example.com itself. A path prefix `/v1` matches `/v1` and `/v1/...` but not `/v10`; a
//! prefix ending in `/` matches what starts with it.

mod rule;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use rule::target_host;

/// One parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    schemes: Schemes,
    host: HostPattern,
    ports: Ports,
    path_prefix: Option<String>,
    /// Upper-case method names; `None` = every method.
    methods: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Schemes {
    Http,
    Https,
    Both,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// A domain name, normalized (ASCII, lower case, no trailing dot).
    Exact(String),
    /// Subdomains of this normalized domain.
    Subdomains(String),
    Ip(IpAddr),
    Network(IpNet),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ports {
    /// The default port of the request's scheme.
    SchemeDefault,
    Any,
    /// Inclusive ranges (a single port is a range of one).
    List(Vec<(u16, u16)>),
}

/// Why the allowlist does not let a request out; the message is what the guest is shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("invalid URL \"{url}\": {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("scheme {0} is not supported (http and https only)")]
    UnsupportedScheme(String),
    #[error("URLs with user information (user@host) are not allowed; send credentials in headers")]
    UserInformation,
    #[error("URL {0} has no valid host")]
    NoHost(String),
    #[error("URL {0} has no port")]
    NoPort(String),
    #[error("host {0} is not on the allowlist")]
    Host(String),
    #[error("scheme {scheme} is not allowed for {host}")]
    Scheme { scheme: String, host: String },
    #[error("port {port} is not allowed for {host}")]
    Port { port: u16, host: String },
    #[error("path {path} is not allowed for {host}")]
    Path { path: String, host: String },
    /// A path a server could read otherwise than the prefix match did.
    #[error("path {path} {why}, which a server could read as outside the allowed path prefix")]
    AmbiguousPath { path: String, why: &'static str },
    #[error("method {method} is not allowed for {host}{path}")]
    Method {
        method: String,
        host: String,
        path: String,
    },
}

/// The parsed parts of a request URL that matching looks at.
struct Target<'a> {
    scheme: &'a str,
    host: TargetHost,
    port: u16,
    path: &'a str,
}

enum TargetHost {
    Domain(String),
    Ip(IpAddr),
}

impl fmt::Display for TargetHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetHost::Domain(d) => f.write_str(d),
            TargetHost::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            TargetHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// The allowlist: no rule, no request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<AllowRule>,
}

impl AllowList {
    pub fn new(rules: Vec<AllowRule>) -> AllowList {
        AllowList { rules }
    }

    pub fn rules(&self) -> &[AllowRule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Parses a request URL the way it will be sent, and checks it against the rules.
    pub fn check_str(&self, method: &str, url: &str) -> Result<Url, Refusal> {
        let parsed = Url::parse(url).map_err(|e| Refusal::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        self.check(method, &parsed)?;
        Ok(parsed)
    }

    /// Checks a request; the refusal says which part no rule allows. Returns the first rule
    /// that allows it.
    pub fn check(&self, method: &str, url: &Url) -> Result<&AllowRule, Refusal> {
        self.matching(method, url).map(|rules| rules[0])
    }

    /// Every rule that allows the request (at least one), or the refusal.
    pub fn matching(&self, method: &str, url: &Url) -> Result<Vec<&AllowRule>, Refusal> {
        let target = target_of(url)?;
        let method = method.to_ascii_uppercase();
        let host = target.host.to_string();
        let mut candidates: Vec<&AllowRule> = self
            .rules
            .iter()
            .filter(|r| r.host_matches(&target.host))
            .collect();
        if candidates.is_empty() {
            return Err(Refusal::Host(host));
        }
        let narrow = |candidates: &mut Vec<&AllowRule>, keep: &dyn Fn(&AllowRule) -> bool| {
            candidates.retain(|r| keep(r));
            candidates.is_empty()
        };
        if narrow(&mut candidates, &|r| r.scheme_matches(target.scheme)) {
            return Err(Refusal::Scheme {
                scheme: target.scheme.to_string(),
                host,
            });
        }
        if narrow(&mut candidates, &|r| {
            r.port_matches(target.scheme, target.port)
        }) {
            return Err(Refusal::Port {
                port: target.port,
                host,
            });
        }
        if narrow(&mut candidates, &|r| r.path_matches(target.path)) {
            return Err(Refusal::Path {
                path: target.path.to_string(),
                host,
            });
        }
        if candidates.iter().any(|r| r.path_prefix.is_some())
            && let Some(why) = ambiguous_path(target.path)
        {
            return Err(Refusal::AmbiguousPath {
                path: target.path.to_string(),
                why,
            });
        }
        // TRACE reflects the request (headers with credentials) back; CONNECT opens a tunnel.
        // Only a rule that lists them by name allows them.
        let explicit_only = matches!(method.as_str(), "TRACE" | "CONNECT");
        if narrow(&mut candidates, &|r| {
            r.method_matches(&method) && (!explicit_only || r.methods.is_some())
        }) {
            return Err(Refusal::Method {
                method,
                host,
                path: target.path.to_string(),
            });
        }
        Ok(candidates)
    }
}

/// Why a path could mean something else to a server than to a byte-wise prefix match: encoded
/// slashes or percent signs (decoded again by some servers), and dot segments hidden behind
/// matrix parameters (`..;`, read as `..` by Tomcat and Spring).
fn ambiguous_path(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return Some("has an encoded slash");
    }
    if lower.contains("%25") {
        return Some("has an encoded percent sign");
    }
    let dot_segment = path.split('/').any(|segment| {
        let bare = segment.split(';').next().unwrap_or("");
        let decoded = bare.to_ascii_lowercase().replace("%2e", ".");
        segment.contains(';') && (decoded == "." || decoded == "..")
    });
    if dot_segment {
        return Some("has a dot segment with parameters");
    }
    None
}

fn target_of(url: &Url) -> Result<Target<'_>, Refusal> {
    let scheme = url.scheme();
    if !matches!(scheme, "http" | "https") {
        return Err(Refusal::UnsupportedScheme(scheme.to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::UserInformation);
    }
    let host = url
        .host()
        .and_then(|h| target_host(&h))
        .ok_or_else(|| Refusal::NoHost(url.to_string()))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Refusal::NoPort(url.to_string()))?;
    Ok(Target {
        scheme,
        host,
        port,
        path: url.path(),
    })
}

/// In a policy: the rule string, or `{ url = "...", methods = [...] }`. Parsed while the
/// document is read, so that a bad rule is reported at its line and column.
impl<'de> Deserialize<'de> for AllowRule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RuleVisitor;

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            url: String,
            methods: Option<Vec<String>>,
        }

        impl<'de> Visitor<'de> for RuleVisitor {
            type Value = AllowRule;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rule such as \"https://api.example.com\" or { url = \"...\", methods = [\"GET\"] }")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<AllowRule, E> {
                AllowRule::parse(text, None).map_err(E::custom)
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<AllowRule, M::Error> {
                let table = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                AllowRule::parse(&table.url, table.methods.as_deref()).map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_any(RuleVisitor)
    }
}

impl Serialize for AllowRule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.methods() {
            None => serializer.collect_str(self),
            Some(methods) => {
                #[derive(Serialize)]
                struct Table<'a> {
                    url: String,
                    methods: &'a [String],
                }
                Table {
                    url: self.to_string(),
                    methods,
                }
                .serialize(serializer)
            }
        }
    }
}
