//! One rule: its grammar (parsing and the normalized form) and what each part matches.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use url::{Host, Url};

use super::{AllowRule, HostPattern, Ports, Schemes, TargetHost};

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
        // `10.0.0.1` and the path `/8:80` would print as `10.0.0.1/8:80`, a network: a rule must
        // parse back from the form it prints (found by the allowlist fuzz target).
        if matches!(host, HostPattern::Ip(IpAddr::V4(_)))
            && matches!(ports, Ports::SchemeDefault)
            && path_prefix.as_deref().is_some_and(starts_with_a_number)
        {
            return Err(fail(
                "after an IPv4 address, a path whose first segment is a number would read as a \
                 network's prefix length; name the port (e.g. :80) or change the path",
            ));
        }
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

    pub(super) fn host_matches(&self, host: &TargetHost) -> bool {
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

    pub(super) fn scheme_matches(&self, scheme: &str) -> bool {
        matches!(
            (self.schemes, scheme),
            (Schemes::Both, "http" | "https") | (Schemes::Http, "http") | (Schemes::Https, "https")
        )
    }

    pub(super) fn port_matches(&self, scheme: &str, port: u16) -> bool {
        match &self.ports {
            Ports::Any => true,
            Ports::SchemeDefault => default_port(scheme) == Some(port),
            Ports::List(ranges) => ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&port)),
        }
    }

    pub(super) fn path_matches(&self, path: &str) -> bool {
        match &self.path_prefix {
            None => true,
            Some(prefix) if prefix.ends_with('/') => path.starts_with(prefix.as_str()),
            Some(prefix) => path
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }

    pub(super) fn method_matches(&self, method: &str) -> bool {
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
/// Whether `path` begins with what `split_host` reads as an IPv4 network's prefix length.
fn starts_with_a_number(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let segment = &rest[..rest.find([':', '/']).unwrap_or(rest.len())];
    !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit())
}

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

pub(super) fn target_host<S: AsRef<str>>(host: &Host<S>) -> Option<TargetHost> {
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

pub(super) fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}
