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

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use url::{Host, Url};

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

/// A request the allowlist does not let out, with the reason shown to the guest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

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

impl AllowRule {
    /// Parses the string form; `methods` restricts the rule to some methods.
    pub fn parse(text: &str, methods: Option<&[String]>) -> Result<AllowRule, String> {
        let fail = |why: &str| format!("allowlist rule \"{text}\": {why}");
        if text.trim() != text || text.is_empty() {
            return Err(fail("must not be empty or have surrounding spaces"));
        }
        if text.chars().any(|c| c.is_control() || c == '\\') {
            return Err(fail("contains a control character or a backslash"));
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| fail("expected scheme://host (for example https://api.example.com)"))?;
        let schemes = match scheme.to_ascii_lowercase().as_str() {
            "http" => Schemes::Http,
            "https" => Schemes::Https,
            "*" => Schemes::Both,
            other => {
                return Err(fail(&format!(
                    "scheme \"{other}\" is not supported (http, https or *)"
                )));
            }
        };
        if rest.contains(['@', '?', '#']) {
            return Err(fail(
                "user information, queries and fragments cannot appear in a rule",
            ));
        }
        let (host_text, after_host) = split_host(rest).map_err(|e| fail(&e))?;
        let host = parse_host_pattern(host_text).map_err(|e| fail(&e))?;
        let (ports_text, path) = match after_host.strip_prefix(':') {
            Some(p) => match p.find('/') {
                Some(i) => (Some(&p[..i]), &p[i..]),
                None => (Some(p), ""),
            },
            None if after_host.is_empty() || after_host.starts_with('/') => (None, after_host),
            None => return Err(fail("expected :port or /path after the host")),
        };
        let ports = match ports_text {
            None => Ports::SchemeDefault,
            Some(p) => parse_ports(p).map_err(|e| fail(&e))?,
        };
        // A prefix that normalizes to `/` (e.g. `/%2e%2e/`) covers every path: no prefix, so
        // that the rule prints and parses back the same (found by the allowlist fuzz target).
        let path_prefix = match path {
            "" | "/" => None,
            p => Some(normalize_path(p).map_err(|e| fail(&e))?).filter(|p| p != "/"),
        };
        let methods = match methods {
            None => None,
            Some([]) => {
                return Err(fail(
                    "`methods` is empty (leave it out to allow every method)",
                ));
            }
            Some(list) => {
                let mut upper = Vec::with_capacity(list.len());
                for m in list {
                    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                        return Err(fail(&format!("\"{m}\" is not an HTTP method")));
                    }
                    upper.push(m.to_ascii_uppercase());
                }
                Some(upper)
            }
        };
        Ok(AllowRule {
            schemes,
            host,
            ports,
            path_prefix,
            methods,
        })
    }

    /// The methods this rule allows (`None`: all of them).
    pub fn methods(&self) -> Option<&[String]> {
        self.methods.as_deref()
    }

    /// Whether this rule names `ip` as an address or a network. Only the rules that allow a
    /// request may open a blocked address for it (see `net::fetch`), never the list as a whole.
    pub fn names_ip(&self, ip: IpAddr) -> bool {
        match &self.host {
            HostPattern::Ip(named) => *named == ip,
            HostPattern::Network(net) => net.contains(&ip),
            _ => false,
        }
    }

    fn host_matches(&self, host: &TargetHost) -> bool {
        match (&self.host, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Exact(rule), TargetHost::Domain(d)) => rule == d,
            (HostPattern::Subdomains(rule), TargetHost::Domain(d)) => d
                .strip_suffix(rule.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            (HostPattern::Ip(rule), TargetHost::Ip(ip)) => rule == ip,
            (HostPattern::Network(net), TargetHost::Ip(ip)) => net.contains(ip),
            _ => false,
        }
    }

    fn scheme_matches(&self, scheme: &str) -> bool {
        matches!(
            (self.schemes, scheme),
            (Schemes::Both, "http" | "https") | (Schemes::Http, "http") | (Schemes::Https, "https")
        )
    }

    fn port_matches(&self, scheme: &str, port: u16) -> bool {
        match &self.ports {
            Ports::Any => true,
            Ports::SchemeDefault => default_port(scheme) == Some(port),
            Ports::List(ranges) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port)),
        }
    }

    fn path_matches(&self, path: &str) -> bool {
        match &self.path_prefix {
            None => true,
            Some(prefix) if prefix.ends_with('/') => path.starts_with(prefix.as_str()),
            Some(prefix) => path
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }

    fn method_matches(&self, method: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|list| list.iter().any(|m| m == method))
    }
}

impl fmt::Display for AllowRule {
    /// The normalized string form (without the methods).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.schemes {
            Schemes::Http => "http",
            Schemes::Https => "https",
            Schemes::Both => "*",
        };
        write!(f, "{scheme}://")?;
        match &self.host {
            HostPattern::Any => f.write_str("*")?,
            HostPattern::Exact(d) => f.write_str(d)?,
            HostPattern::Subdomains(d) => write!(f, "*.{d}")?,
            HostPattern::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            HostPattern::Network(IpNet::V4(net)) => write!(f, "{net}")?,
            HostPattern::Network(IpNet::V6(net)) => write!(f, "[{net}]")?,
        }
        match &self.ports {
            Ports::SchemeDefault => {}
            Ports::Any => f.write_str(":*")?,
            Ports::List(ranges) => {
                let items: Vec<String> = ranges
                    .iter()
                    .map(|(lo, hi)| {
                        if lo == hi {
                            lo.to_string()
                        } else {
                            format!("{lo}-{hi}")
                        }
                    })
                    .collect();
                write!(f, ":{}", items.join(","))?;
            }
        }
        if let Some(path) = &self.path_prefix {
            f.write_str(path)?;
        }
        Ok(())
    }
}

/// Splits `host[:ports][/path]` at the end of the host (an IPv6 host is bracketed; an IP
/// followed by `/len` is a network).
fn split_host(rest: &str) -> Result<(&str, &str), String> {
    if rest.starts_with('[') {
        let end = rest
            .find(']')
            .ok_or("an IPv6 address must be closed with ]")?;
        return Ok((&rest[..=end], &rest[end + 1..]));
    }
    let end = rest.find([':', '/']).unwrap_or(rest.len());
    let (host, after) = rest.split_at(end);
    // `10.0.0.0/8`: a network, not a path, when the host is an IPv4 address and a prefix
    // length follows.
    if host.parse::<std::net::Ipv4Addr>().is_ok()
        && let Some(len_and_rest) = after.strip_prefix('/')
    {
        let len_end = len_and_rest.find([':', '/']).unwrap_or(len_and_rest.len());
        let len = &len_and_rest[..len_end];
        if !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()) {
            let host_end = end + 1 + len_end;
            return Ok((&rest[..host_end], &rest[host_end..]));
        }
    }
    Ok((host, after))
}

fn parse_host_pattern(host: &str) -> Result<HostPattern, String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("unclosed [")?;
        if inner.contains('/') {
            let net: ipnet::Ipv6Net = inner
                .parse()
                .map_err(|_| format!("\"{inner}\" is not an IPv6 network"))?;
            return Ok(HostPattern::Network(IpNet::V6(net.trunc())));
        }
        let ip: std::net::Ipv6Addr = inner
            .parse()
            .map_err(|_| format!("\"{inner}\" is not an IPv6 address"))?;
        return Ok(HostPattern::Ip(IpAddr::V6(ip)));
    }
    if host.contains('/') {
        let net: ipnet::Ipv4Net = host
            .parse()
            .map_err(|_| format!("\"{host}\" is not an IPv4 network"))?;
        return Ok(HostPattern::Network(IpNet::V4(net.trunc())));
    }
    if host.matches('*').count() > 1 || (host.contains('*') && !host.starts_with("*.")) {
        return Err("`*` may only be the whole host or a leading `*.`".into());
    }
    if let Some(domain) = host.strip_prefix("*.") {
        return match normalize_domain(domain)? {
            TargetHost::Domain(d) => Ok(HostPattern::Subdomains(d)),
            TargetHost::Ip(_) => Err("a wildcard applies to domain names, not IP addresses".into()),
        };
    }
    // Only dotted-decimal IPv4 in rules: the shorthand forms a URL parser accepts (0x7f.1,
    // 2130706433) are almost always a mistake in a policy.
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let ip: std::net::Ipv4Addr = host
            .parse()
            .map_err(|_| format!("\"{host}\" is not a dotted-decimal IPv4 address"))?;
        return Ok(HostPattern::Ip(IpAddr::V4(ip)));
    }
    match normalize_domain(host)? {
        TargetHost::Domain(d) => Ok(HostPattern::Exact(d)),
        TargetHost::Ip(_) => Err(format!(
            "\"{host}\" is a shorthand IPv4 form; write the address dotted-decimal"
        )),
    }
}

/// A domain as the URL parser sees it: IDNA to ASCII, lower case, percent-decoded; then the
/// trailing dot dropped (`example.com.` is example.com).
/// Names in rules are held to letters, digits, `-` and `_` per label (after IDNA), which
/// every real DNS name fits.
fn normalize_domain(text: &str) -> Result<TargetHost, String> {
    let host = Host::parse(text).map_err(|e| format!("\"{text}\" is not a valid host ({e})"))?;
    let host = target_host(&host).ok_or_else(|| format!("\"{text}\" is not a valid host"))?;
    if let TargetHost::Domain(d) = &host
        && !d
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "\"{text}\" is not a valid host (letters, digits, - and _ only)"
        ));
    }
    Ok(host)
}

fn target_host<S: AsRef<str>>(host: &Host<S>) -> Option<TargetHost> {
    match host {
        Host::Domain(d) => {
            let d = d.as_ref();
            let d = d.strip_suffix('.').unwrap_or(d);
            if d.is_empty() || d.split('.').any(str::is_empty) {
                return None;
            }
            Some(TargetHost::Domain(d.to_ascii_lowercase()))
        }
        Host::Ipv4(ip) => Some(TargetHost::Ip(IpAddr::V4(*ip))),
        Host::Ipv6(ip) => Some(TargetHost::Ip(IpAddr::V6(*ip))),
    }
}

fn parse_ports(text: &str) -> Result<Ports, String> {
    if text == "*" {
        return Ok(Ports::Any);
    }
    let mut ranges = Vec::new();
    for item in text.split(',') {
        let port = |s: &str| -> Result<u16, String> {
            match s.parse::<u16>() {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(format!("\"{s}\" is not a port (1-65535)")),
            }
        };
        let range = match item.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (port(lo)?, port(hi)?);
                if lo > hi {
                    return Err(format!("port range {item} is backwards"));
                }
                (lo, hi)
            }
            None => {
                let p = port(item)?;
                (p, p)
            }
        };
        ranges.push(range);
    }
    Ok(Ports::List(ranges))
}

/// A path prefix in the form request paths take after URL parsing (percent-encoded, dot
/// segments resolved), so that the two compare byte for byte.
fn normalize_path(path: &str) -> Result<String, String> {
    let url = Url::parse(&format!("http://h{path}"))
        .map_err(|e| format!("path \"{path}\" is not valid ({e})"))?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a path prefix cannot have a query or fragment".into());
    }
    Ok(url.path().to_string())
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
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
        let parsed = Url::parse(url).map_err(|e| Refusal(format!("invalid URL \"{url}\": {e}")))?;
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
            return Err(Refusal(format!("host {host} is not on the allowlist")));
        }
        let narrow = |candidates: &mut Vec<&AllowRule>, keep: &dyn Fn(&AllowRule) -> bool| {
            candidates.retain(|r| keep(r));
            candidates.is_empty()
        };
        if narrow(&mut candidates, &|r| r.scheme_matches(target.scheme)) {
            return Err(Refusal(format!(
                "scheme {} is not allowed for {host}",
                target.scheme
            )));
        }
        if narrow(&mut candidates, &|r| {
            r.port_matches(target.scheme, target.port)
        }) {
            return Err(Refusal(format!(
                "port {} is not allowed for {host}",
                target.port
            )));
        }
        if narrow(&mut candidates, &|r| r.path_matches(target.path)) {
            return Err(Refusal(format!(
                "path {} is not allowed for {host}",
                target.path
            )));
        }
        if candidates.iter().any(|r| r.path_prefix.is_some())
            && let Some(why) = ambiguous_path(target.path)
        {
            return Err(Refusal(format!(
                "path {} {why}, which a server could read as outside the allowed path prefix",
                target.path
            )));
        }
        // TRACE reflects the request (headers with credentials) back; CONNECT opens a tunnel.
        // Only a rule that lists them by name allows them.
        let explicit_only = matches!(method.as_str(), "TRACE" | "CONNECT");
        if narrow(&mut candidates, &|r| {
            r.method_matches(&method) && (!explicit_only || r.methods.is_some())
        }) {
            return Err(Refusal(format!(
                "method {method} is not allowed for {host}{}",
                target.path
            )));
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
        return Err(Refusal(format!(
            "scheme {scheme} is not supported (http and https only)"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal(
            "URLs with user information (user@host) are not allowed; send credentials in headers"
                .into(),
        ));
    }
    let host = url
        .host()
        .and_then(|h| target_host(&h))
        .ok_or_else(|| Refusal(format!("URL {url} has no valid host")))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Refusal(format!("URL {url} has no port")))?;
    Ok(Target {
        scheme,
        host,
        port,
        path: url.path(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rules: &[&str]) -> AllowList {
        AllowList::new(
            rules
                .iter()
                .map(|r| AllowRule::parse(r, None).unwrap())
                .collect(),
        )
    }

    /// Whether some rule of `list` names `ip`.
    fn named(list: &AllowList, ip: &str) -> bool {
        let ip = ip.parse().unwrap();
        list.rules().iter().any(|r| r.names_ip(ip))
    }

    fn allows(list: &AllowList, url: &str) -> bool {
        list.check_str("GET", url).is_ok()
    }

    fn refusal(list: &AllowList, method: &str, url: &str) -> String {
        list.check_str(method, url).unwrap_err().0
    }

    #[test]
    fn rules_round_trip_through_their_normalized_form() {
        for (text, normal) in [
            ("https://api.github.com", "https://api.github.com"),
            ("HTTPS://API.GitHub.COM.", "https://api.github.com"),
            ("https://Bücher.example", "https://xn--bcher-kva.example"),
            (
                "https://*.example.com:8443/v1/",
                "https://*.example.com:8443/v1/",
            ),
            (
                "http://127.0.0.1:8000-8100,9000",
                "http://127.0.0.1:8000-8100,9000",
            ),
            ("*://10.1.2.3/8:*", "*://10.0.0.0/8:*"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("http://[fd00::1/8]", "http://[fd00::/8]"),
            ("https://*", "https://*"),
            (
                "https://api.example.com/a b/../c",
                "https://api.example.com/a%20b/../c",
            ),
        ] {
            let rule = AllowRule::parse(text, None).unwrap_or_else(|e| panic!("{e}"));
            // Dot segments are resolved by the URL parser only when they are real segments.
            if !text.contains("..") {
                assert_eq!(rule.to_string(), normal, "{text}");
                assert_eq!(AllowRule::parse(&rule.to_string(), None).unwrap(), rule);
            }
        }
    }

    #[test]
    fn dot_segments_in_a_rule_path_are_resolved() {
        let rule = AllowRule::parse("https://a.example/x/../v1/", None).unwrap();
        assert_eq!(rule.to_string(), "https://a.example/v1/");
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        for (text, expect) in [
            ("api.github.com", "expected scheme://host"),
            ("ftp://x.example", "scheme \"ftp\" is not supported"),
            ("https://", "the host is empty"),
            ("https://a.*.example", "`*` may only be"),
            ("https://*.10.0.0.1", "not IP addresses"),
            ("https://x.example:0", "is not a port"),
            ("https://x.example:70000", "is not a port"),
            ("https://x.example:90-80", "backwards"),
            ("https://x.example:http", "is not a port"),
            ("https://user@x.example", "user information"),
            ("https://x.example/?q=1", "queries"),
            ("https://x.example\\@evil", "backslash"),
            ("https://[::1", "closed with ]"),
            ("https://[zz::1]", "not an IPv6 address"),
            ("https://10.0.0.0/33", "not an IPv4 network"),
            ("https://0x7f.1", "dotted-decimal"),
            ("https://2130706433", "dotted-decimal"),
            ("https://127.1", "dotted-decimal"),
            (" https://x.example", "surrounding spaces"),
            ("https://x.example!", "not a valid host"),
            ("https://x..example", "not a valid host"),
            ("https://x.examplefoo", ""),
        ] {
            match AllowRule::parse(text, None) {
                Ok(rule) => assert!(expect.is_empty(), "{text} parsed as {rule}"),
                Err(e) => {
                    assert!(e.contains(expect), "{text}: {e}");
                    assert!(e.starts_with(&format!("allowlist rule \"{text}\"")), "{e}");
                }
            }
        }
        assert!(
            AllowRule::parse("https://x.example", Some(&[]))
                .unwrap_err()
                .contains("`methods` is empty")
        );
        assert!(
            AllowRule::parse("https://x.example", Some(&["G T".into()]))
                .unwrap_err()
                .contains("not an HTTP method")
        );
    }

    #[test]
    fn exact_hosts_match_after_normalization() {
        let l = list(&["https://api.example.com"]);
        for url in [
            "https://api.example.com/",
            "https://API.Example.COM/x",
            "https://api.example.com./x",
            "https://api.example.com:443/x",
            "https://api%2Eexample.com/x",
        ] {
            assert!(allows(&l, url), "{url}");
        }
        for url in [
            "https://example.com/",
            "https://api.example.com.evil.net/",
            "https://evilapi.example.com/",
            "https://api.example.co/",
            "http://api.example.com/",
        ] {
            assert!(!allows(&l, url), "{url}");
        }
    }

    #[test]
    fn unicode_hosts_are_compared_in_punycode() {
        let l = list(&["https://bücher.example"]);
        assert!(allows(&l, "https://xn--bcher-kva.example/"));
        assert!(allows(&l, "https://BÜCHER.example/"));
        // A look-alike (Cyrillic "е") is another host.
        assert!(!allows(&l, "https://bücһer.example/"));
        let ascii = list(&["https://example.com"]);
        assert!(!allows(&ascii, "https://еxample.com/"), "Cyrillic е");
        // Fullwidth letters normalize to ASCII under IDNA: it is the same host.
        assert!(allows(&ascii, "https://ｅｘａｍｐｌｅ.com/"));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let l = list(&["https://*.example.com"]);
        assert!(allows(&l, "https://a.example.com/"));
        assert!(allows(&l, "https://a.b.example.com/"));
        assert!(!allows(&l, "https://example.com/"));
        assert!(!allows(&l, "https://aexample.com/"));
        assert!(!allows(&l, "https://a.example.com.evil.net/"));
        assert!(!allows(&l, "https://.example.com/"));
    }

    #[test]
    fn user_information_and_backslashes_do_not_move_the_host() {
        let l = list(&["https://allowed.example"]);
        assert!(
            refusal(&l, "GET", "https://allowed.example@evil.example/")
                .contains("user information")
        );
        assert!(refusal(&l, "GET", "https://allowed.example:pw@evil.example/").contains("user"));
        // WHATWG parses a backslash as a slash: the host is `evil.example`, refused.
        assert!(!allows(&l, "https://evil.example\\@allowed.example/"));
        // ...and here the host is `allowed.example` with a path: what is checked is what is sent.
        let url = l
            .check_str("GET", "https://allowed.example\\@evil.example/")
            .unwrap();
        assert_eq!(url.host_str(), Some("allowed.example"));
    }

    #[test]
    fn ports_default_by_scheme_or_are_listed() {
        let l = list(&[
            "https://a.example",
            "http://b.example:8000-8002,9000",
            "*://c.example",
        ]);
        assert!(allows(&l, "https://a.example:443/"));
        assert!(refusal(&l, "GET", "https://a.example:8443/").contains("port 8443"));
        assert!(allows(&l, "http://b.example:8001/"));
        assert!(allows(&l, "http://b.example:9000/"));
        assert!(!allows(&l, "http://b.example:8003/"));
        assert!(!allows(&l, "http://b.example/"));
        assert!(allows(&l, "http://c.example/"));
        assert!(allows(&l, "https://c.example/"));
        assert!(!allows(&l, "http://c.example:443/"));
        assert!(!allows(&l, "https://c.example:80/"));
        let any = list(&["http://d.example:*"]);
        assert!(allows(&any, "http://d.example:1/"));
    }

    #[test]
    fn schemes_other_than_http_are_refused() {
        let l = list(&["*://*:*"]);
        for url in [
            "ftp://a.example/",
            "file:///etc/passwd",
            "data:text/plain,hi",
            "ws://a.example/",
            "javascript:alert(1)",
        ] {
            assert!(
                refusal(&l, "GET", url).contains("not supported")
                    || refusal(&l, "GET", url).contains("no valid host"),
                "{url}"
            );
        }
        let https_only = list(&["https://a.example"]);
        assert!(refusal(&https_only, "GET", "http://a.example/").contains("scheme http"));
    }

    #[test]
    fn a_prefix_that_normalizes_to_the_root_is_no_prefix() {
        let rule = AllowRule::parse("https://[::1]/%2e%2e/", None).unwrap();
        assert_eq!(rule, AllowRule::parse("https://[::1]", None).unwrap());
        let again = AllowRule::parse(&rule.to_string(), None).unwrap();
        assert_eq!(again, rule);
    }

    #[test]
    fn path_prefixes_match_whole_segments() {
        let l = list(&["https://api.example/v1", "https://files.example/pub/"]);
        assert!(allows(&l, "https://api.example/v1"));
        assert!(allows(&l, "https://api.example/v1/users?x=1"));
        assert!(!allows(&l, "https://api.example/v10"));
        assert!(!allows(&l, "https://api.example/"));
        assert!(refusal(&l, "GET", "https://api.example/admin").contains("path /admin"));
        // Dot segments are resolved before matching.
        assert!(!allows(&l, "https://api.example/v1/../admin"));
        assert!(!allows(&l, "https://api.example/v1/%2e%2e/admin"));
        assert!(allows(&l, "https://files.example/pub/a.txt"));
        assert!(!allows(&l, "https://files.example/pub"));
        assert!(refusal(&l, "GET", "https://api.example/v1/..%2Fadmin").contains("encoded slash"));
        assert!(refusal(&l, "GET", "https://api.example/v1/..%5cadmin").contains("encoded slash"));
        assert!(
            refusal(&l, "GET", "https://api.example/v1/%252e%252e/admin").contains("percent sign")
        );
        for sneaky in [
            "/v1/..;/admin",
            "/v1/..;x=1/admin",
            "/v1/.;/x",
            "/v1/%2e%2e;/admin",
        ] {
            let url = format!("https://api.example{sneaky}");
            assert!(refusal(&l, "GET", &url).contains("dot segment"), "{url}");
        }
        // Parameters on ordinary segments are fine.
        assert!(allows(&l, "https://api.example/v1/items;page=2"));
        // Without a path prefix there is nothing to step out of.
        let open = list(&["https://open.example"]);
        assert!(allows(&open, "https://open.example/a/..;/b"));
    }

    #[test]
    fn methods_restrict_a_rule() {
        let l = AllowList::new(vec![
            AllowRule::parse("https://api.example", Some(&["get".into(), "HEAD".into()])).unwrap(),
            AllowRule::parse("https://api.example/write", Some(&["POST".into()])).unwrap(),
        ]);
        assert!(l.check_str("GET", "https://api.example/x").is_ok());
        assert!(l.check_str("head", "https://api.example/x").is_ok());
        assert!(
            refusal(&l, "DELETE", "https://api.example/x").contains("method DELETE is not allowed")
        );
        assert!(l.check_str("POST", "https://api.example/write/1").is_ok());
        assert!(l.check_str("POST", "https://api.example/other").is_err());
    }

    #[test]
    fn trace_and_connect_need_a_rule_that_names_them() {
        let open = list(&["https://a.example"]);
        for method in ["TRACE", "CONNECT", "trace"] {
            assert!(refusal(&open, method, "https://a.example/").contains("is not allowed"));
        }
        let named = AllowList::new(vec![
            AllowRule::parse("https://a.example", Some(&["TRACE".into()])).unwrap(),
        ]);
        assert!(named.check_str("TRACE", "https://a.example/").is_ok());
    }

    #[test]
    fn matching_returns_every_rule_that_allows_the_request() {
        let l = list(&[
            "http://*:*",
            "http://127.0.0.1:8080/api",
            "http://127.0.0.1:9000",
        ]);
        let url = Url::parse("http://127.0.0.1:8080/api/x").unwrap();
        let rules = l.matching("GET", &url).unwrap();
        assert_eq!(rules.len(), 2);
        let ip = "127.0.0.1".parse().unwrap();
        assert!(rules.iter().any(|r| r.names_ip(ip)));
        // Another path on the same address matches only the wildcard, which names no IP.
        let other = Url::parse("http://127.0.0.1:8080/admin").unwrap();
        assert!(
            !l.matching("GET", &other)
                .unwrap()
                .iter()
                .any(|r| r.names_ip(ip))
        );
    }

    #[test]
    fn ip_rules_match_addresses_in_every_spelling() {
        let l = list(&["http://127.0.0.1:8080"]);
        for url in [
            "http://127.0.0.1:8080/",
            "http://2130706433:8080/",
            "http://0x7f000001:8080/",
            "http://0177.0.0.1:8080/",
            "http://127.1:8080/",
        ] {
            assert!(allows(&l, url), "{url} is 127.0.0.1");
        }
        assert!(!allows(&l, "http://127.0.0.2:8080/"));
        assert!(
            !allows(&l, "http://[::ffff:127.0.0.1]:8080/"),
            "another family"
        );
        assert!(
            !allows(&l, "http://localhost:8080/"),
            "a name is not an IP rule"
        );
        assert!(named(&l, "127.0.0.1"));
        assert!(!named(&l, "127.0.0.2"));
    }

    #[test]
    fn networks_match_contained_addresses() {
        let l = list(&["http://10.0.0.0/8:*", "http://[fd00::/16]:80"]);
        assert!(allows(&l, "http://10.20.30.40:1234/"));
        assert!(!allows(&l, "http://11.0.0.1:1234/"));
        assert!(allows(&l, "http://[fd00::5]/"));
        assert!(!allows(&l, "http://[fd01::5]/"));
        assert!(named(&l, "10.9.9.9"));
        assert!(!named(&l, "192.168.0.1"));
        // A name rule never names an IP.
        assert!(!named(&list(&["https://*"]), "10.0.0.1"));
    }

    #[test]
    fn the_empty_list_refuses_everything() {
        let l = AllowList::default();
        assert!(refusal(&l, "GET", "https://example.com/").contains("not on the allowlist"));
        assert!(refusal(&l, "GET", "not a url").contains("invalid URL"));
    }
}
