//! Allowlist rules (`AllowRule::parse`) and request matching (`AllowList::matching`), checked
//! against a model written from the grammar in src/net/allowlist/ and DESIGN.md, and the
//! blocked-network check (`net::blocked`) as the fetch path combines them.
//!
//! Input, one of:
//! - text (the readable seeds): `#rules\n`, then one rule per line (a tab, then
//!   comma-separated methods, restricts it), a line `--`, and the request `METHOD URL`;
//! - anything else, read as structured input (`arbitrary`): up to 4 rules and one request, each
//!   either free text or assembled from parts (names, wildcards, IPs and networks, including
//!   the blocked ranges).
//!
//! Asserts:
//! - parsing never panics;
//! - normalization is idempotent: an accepted rule's normalized form parses back to the same
//!   rule, and prints the same;
//! - every rule that allows a request agrees with the model: the scheme is allowed, the port
//!   is the scheme's default or listed, the path is under the prefix (segment-wise), the method
//!   is listed (TRACE and CONNECT only by name), and the host *equals* the rule's host, or is a
//!   proper subdomain of a `*.` rule's domain, or is an IP equal to the rule's IP or inside its
//!   network, or the rule's host is `*`;
//! - conversely, a plain request (no `%` or `;` in the path) that the model lets through is
//!   allowed;
//! - a blocked address (loopback, private, metadata, ...) written as an IP literal never passes
//!   unless a rule that allows the request names that very IP or a network containing it; no
//!   domain or `*` rule ever names an IP.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use url::{Host, Url};
use warden::net::{AllowList, AllowRule, blocked_range, check_address};

#[derive(Debug, Arbitrary)]
struct Input {
    rules: Vec<RuleInput>,
    method: Method,
    url: UrlInput,
}

#[derive(Debug, Arbitrary)]
struct RuleInput {
    text: RuleText,
    methods: Option<Vec<Method>>,
}

#[derive(Debug, Arbitrary)]
enum RuleText {
    Raw(String),
    Built {
        scheme: Scheme,
        host: HostPart,
        ports: Option<Ports>,
        path: Option<PathPart>,
    },
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Scheme {
    Http,
    Https,
    Star,
    Upper,
    Other,
}

#[derive(Debug, Arbitrary)]
enum HostPart {
    Name(Name),
    Wildcard(Name),
    Any,
    Ip(Ip),
    Network(Ip, u8),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Name {
    Known(u8),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Ip {
    Known(u8),
    V4(u32),
    V6(u128),
    /// An IPv4 address in IPv6 clothing (mapped, compatible, NAT64, 6to4).
    Embedded(u8, u32),
}

#[derive(Debug, Arbitrary)]
enum Ports {
    Any,
    List(Vec<(u16, Option<u16>)>),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum PathPart {
    Known(u8),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Method {
    Known(u8),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum UrlInput {
    Raw(String),
    Built {
        scheme: Scheme,
        userinfo: bool,
        host: HostPart,
        /// IP hosts spelled the way URL parsers also accept (hex, decimal, short forms).
        odd_ip_spelling: bool,
        port: Option<u16>,
        path: Option<PathPart>,
        query: bool,
    },
}

const NAMES: &[&str] = &[
    "example.com",
    "api.example.com",
    "a.b.example.com",
    "EXAMPLE.com.",
    "Api.Example.Com",
    "xn--bcher-kva.example",
    "bücher.example",
    "localhost",
    "127.0.0.1.nip.io",
    "example.com.evil.net",
    "evilexample.com",
    "a_b.example",
    "api%2Eexample.com",
    "metadata.google.internal",
];

const IPS: &[&str] = &[
    "127.0.0.1",
    "127.0.0.2",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "8.8.8.8",
    "93.184.216.34",
    "::1",
    "::",
    "fd00:ec2::254",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::127.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::",
    "2606:4700::1111",
];

const PATHS: &[&str] = &[
    "/",
    "/v1",
    "/v1/",
    "/v1/x",
    "/v10",
    "/a/../v1",
    "/v1/..",
    "/%2e%2e/",
    "/v1%2f",
    "/v1;x",
    "/v1/..;/admin",
    "/%25",
    "/a b",
    "//",
    "/./v1",
    "/V1",
];

const METHODS: &[&str] = &[
    "GET", "get", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT", "trace",
];

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[usize::from(i) % list.len()]
}

fn scheme_text(s: Scheme) -> &'static str {
    match s {
        Scheme::Http => "http",
        Scheme::Https => "https",
        Scheme::Star => "*",
        Scheme::Upper => "HTTPS",
        Scheme::Other => "ftp",
    }
}

fn ip_of(ip: &Ip) -> IpAddr {
    match ip {
        Ip::Known(i) => pick(IPS, *i).parse().unwrap(),
        Ip::V4(v) => IpAddr::V4(Ipv4Addr::from(*v)),
        Ip::V6(v) => IpAddr::V6(Ipv6Addr::from(*v)),
        Ip::Embedded(kind, v4) => {
            let [a, b, c, d] = v4.to_be_bytes();
            let low = [u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])];
            IpAddr::V6(match kind % 4 {
                0 => Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, low[0], low[1]),
                1 => Ipv6Addr::new(0, 0, 0, 0, 0, 0, low[0], low[1]),
                2 => Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, low[0], low[1]),
                _ => Ipv6Addr::new(0x2002, low[0], low[1], 0, 0, 0, 0, 1),
            })
        }
    }
}

fn host_text(host: &HostPart, odd_ip_spelling: bool) -> String {
    match host {
        HostPart::Name(Name::Known(i)) => pick(NAMES, *i).to_string(),
        HostPart::Name(Name::Raw(s)) => s.clone(),
        HostPart::Wildcard(Name::Known(i)) => format!("*.{}", pick(NAMES, *i)),
        HostPart::Wildcard(Name::Raw(s)) => format!("*.{s}"),
        HostPart::Any => "*".to_string(),
        HostPart::Ip(ip) => match (ip_of(ip), odd_ip_spelling) {
            (IpAddr::V4(v4), true) => format!("0x{:x}", u32::from(v4)),
            (IpAddr::V4(v4), false) => v4.to_string(),
            (IpAddr::V6(v6), _) => format!("[{v6}]"),
        },
        HostPart::Network(ip, len) => match ip_of(ip) {
            IpAddr::V4(v4) => format!("{v4}/{}", len % 40),
            IpAddr::V6(v6) => format!("[{v6}/{}]", len % 140),
        },
        HostPart::Raw(s) => s.clone(),
    }
}

fn path_text(path: &Option<PathPart>) -> String {
    match path {
        None => String::new(),
        Some(PathPart::Known(i)) => pick(PATHS, *i).to_string(),
        Some(PathPart::Raw(s)) => format!("/{s}"),
    }
}

fn method_text(m: &Method) -> String {
    match m {
        Method::Known(i) => pick(METHODS, *i).to_string(),
        Method::Raw(s) => s.clone(),
    }
}

fn rule_text(rule: &RuleText) -> String {
    match rule {
        RuleText::Raw(s) => s.clone(),
        RuleText::Built {
            scheme,
            host,
            ports,
            path,
        } => {
            let ports = match ports {
                None => String::new(),
                Some(Ports::Any) => ":*".to_string(),
                Some(Ports::List(items)) => {
                    let items: Vec<String> = items
                        .iter()
                        .take(4)
                        .map(|(lo, hi)| match hi {
                            Some(hi) => format!("{lo}-{hi}"),
                            None => lo.to_string(),
                        })
                        .collect();
                    format!(":{}", items.join(","))
                }
                Some(Ports::Raw(s)) => format!(":{s}"),
            };
            format!(
                "{}://{}{ports}{}",
                scheme_text(*scheme),
                host_text(host, false),
                path_text(path)
            )
        }
    }
}

fn url_text(url: &UrlInput) -> String {
    match url {
        UrlInput::Raw(s) => s.clone(),
        UrlInput::Built {
            scheme,
            userinfo,
            host,
            odd_ip_spelling,
            port,
            path,
            query,
        } => {
            let scheme = match scheme {
                Scheme::Star => "http",
                other => scheme_text(*other),
            };
            let host = match host {
                HostPart::Wildcard(Name::Known(i)) => format!("x.{}", pick(NAMES, *i)),
                HostPart::Network(ip, _) => host_text(&HostPart::Ip(clone_ip(ip)), false),
                other => host_text(other, *odd_ip_spelling),
            };
            format!(
                "{scheme}://{}{host}{}{}{}",
                if *userinfo { "user:pw@" } else { "" },
                port.map(|p| format!(":{p}")).unwrap_or_default(),
                path_text(path),
                if *query { "?q=1#f" } else { "" }
            )
        }
    }
}

fn clone_ip(ip: &Ip) -> Ip {
    match ip {
        Ip::Known(i) => Ip::Known(*i),
        Ip::V4(v) => Ip::V4(*v),
        Ip::V6(v) => Ip::V6(*v),
        Ip::Embedded(k, v) => Ip::Embedded(*k, *v),
    }
}

/// A rule as the model sees it, read back from its normalized text.
struct Model {
    schemes: &'static [&'static str],
    host: ModelHost,
    /// `None`: the scheme's default port.
    ports: Option<Vec<(u16, u16)>>,
    path: Option<String>,
    methods: Option<Vec<String>>,
}

enum ModelHost {
    Any,
    Exact(String),
    Subdomains(String),
    Ip(IpAddr),
    Network(IpNet),
}

fn model_of(rule: &AllowRule) -> Model {
    let text = rule.to_string();
    let (scheme, rest) = text.split_once("://").expect("normalized rules have ://");
    let schemes: &'static [&'static str] = match scheme {
        "http" => &["http"],
        "https" => &["https"],
        "*" => &["http", "https"],
        other => panic!("normalized scheme {other:?} in {text}"),
    };
    // The host ends at `:` (ports) or `/` (path), except inside brackets and a CIDR length.
    let (host, after) = if let Some(inner) = rest.strip_prefix('[') {
        let end = inner.find(']').expect("closed bracket");
        (&rest[..end + 2], &inner[end + 1..])
    } else {
        let mut end = rest.find([':', '/']).unwrap_or(rest.len());
        if rest[..end].parse::<Ipv4Addr>().is_ok() && rest[end..].starts_with('/') {
            let tail = &rest[end + 1..];
            let len_end = tail.find([':', '/']).unwrap_or(tail.len());
            if !tail[..len_end].is_empty() && tail[..len_end].bytes().all(|b| b.is_ascii_digit()) {
                end += 1 + len_end;
            }
        }
        rest.split_at(end)
    };
    let host = if host == "*" {
        ModelHost::Any
    } else if let Some(domain) = host.strip_prefix("*.") {
        ModelHost::Subdomains(domain.to_string())
    } else if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        match inner.parse::<IpNet>() {
            Ok(net) => ModelHost::Network(net),
            Err(_) => ModelHost::Ip(inner.parse().expect("a normalized IPv6 host")),
        }
    } else if let Ok(net) = host.parse::<IpNet>() {
        ModelHost::Network(net)
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        ModelHost::Ip(ip)
    } else {
        assert!(
            !host.is_empty()
                && host == host.to_ascii_lowercase()
                && !host.ends_with('.')
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "normalized host {host:?} in {text}"
        );
        ModelHost::Exact(host.to_string())
    };
    let (ports, path) = match after.strip_prefix(':') {
        Some(p) => {
            let end = p.find('/').unwrap_or(p.len());
            let ports = if &p[..end] == "*" {
                Some(vec![(0, u16::MAX)])
            } else {
                Some(
                    p[..end]
                        .split(',')
                        .map(|item| match item.split_once('-') {
                            Some((lo, hi)) => (lo.parse().unwrap(), hi.parse().unwrap()),
                            None => (item.parse().unwrap(), item.parse().unwrap()),
                        })
                        .collect(),
                )
            };
            (ports, &p[end..])
        }
        None => (None, after),
    };
    Model {
        schemes,
        host,
        ports,
        path: (!path.is_empty()).then(|| path.to_string()),
        methods: rule.methods().map(<[String]>::to_vec),
    }
}

/// The request as the model sees it (`None`: not a request any rule could allow).
struct Request {
    scheme: String,
    host: RequestHost,
    port: u16,
    path: String,
}

enum RequestHost {
    Domain(String),
    Ip(IpAddr),
}

fn request_of(url: &Url) -> Option<Request> {
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let host = match url.host()? {
        Host::Domain(d) => {
            let d = d.strip_suffix('.').unwrap_or(d);
            if d.is_empty() || d.split('.').any(str::is_empty) {
                return None;
            }
            RequestHost::Domain(d.to_ascii_lowercase())
        }
        Host::Ipv4(ip) => RequestHost::Ip(IpAddr::V4(ip)),
        Host::Ipv6(ip) => RequestHost::Ip(IpAddr::V6(ip)),
    };
    Some(Request {
        scheme: url.scheme().to_string(),
        host,
        port: url.port_or_known_default()?,
        path: url.path().to_string(),
    })
}

fn model_allows(model: &Model, request: &Request, method: &str) -> bool {
    let host = match (&model.host, &request.host) {
        (ModelHost::Any, _) => true,
        (ModelHost::Exact(rule), RequestHost::Domain(d)) => rule == d,
        (ModelHost::Subdomains(rule), RequestHost::Domain(d)) => {
            d.len() > rule.len() + 1 && d.ends_with(&format!(".{rule}"))
        }
        (ModelHost::Ip(rule), RequestHost::Ip(ip)) => rule == ip,
        (ModelHost::Network(net), RequestHost::Ip(ip)) => net.contains(ip),
        _ => false,
    };
    let scheme = model.schemes.contains(&request.scheme.as_str());
    let port = match &model.ports {
        None => request.port == if request.scheme == "http" { 80 } else { 443 },
        Some(ranges) => ranges
            .iter()
            .any(|(lo, hi)| *lo <= request.port && request.port <= *hi),
    };
    let path = match &model.path {
        None => true,
        Some(prefix) if prefix.ends_with('/') => request.path.starts_with(prefix.as_str()),
        Some(prefix) => request
            .path
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
    };
    let method = method.to_ascii_uppercase();
    let method_ok = match &model.methods {
        None => !matches!(method.as_str(), "TRACE" | "CONNECT"),
        Some(list) => list.contains(&method),
    };
    host && scheme && port && path && method_ok
}

fn names(model: &Model, ip: IpAddr) -> bool {
    match &model.host {
        ModelHost::Ip(rule) => *rule == ip,
        ModelHost::Network(net) => net.contains(&ip),
        _ => false,
    }
}

/// `#rules\n` text: rules (with their methods), then the request's method and URL.
fn from_text(text: &str) -> (Vec<(String, Option<Vec<String>>)>, String, String) {
    let (rules, request) = text.split_once("\n--\n").unwrap_or((text, ""));
    let rules = rules
        .lines()
        .map(|line| match line.split_once('\t') {
            Some((rule, methods)) => (
                rule.to_string(),
                Some(methods.split(',').map(str::to_string).collect()),
            ),
            None => (line.to_string(), None),
        })
        .collect();
    let (method, url) = request
        .trim_end_matches('\n')
        .split_once(' ')
        .unwrap_or(("GET", request));
    (rules, method.to_string(), url.to_string())
}

fuzz_target!(|data: &[u8]| {
    let (rule_texts, method, text) = if let Some(text) = data.strip_prefix(b"#rules\n") {
        let Ok(text) = std::str::from_utf8(text) else {
            return;
        };
        from_text(text)
    } else {
        let Ok(input) = Input::arbitrary_take_rest(arbitrary::Unstructured::new(data)) else {
            return;
        };
        let rules = input
            .rules
            .iter()
            .map(|rule| {
                (
                    rule_text(&rule.text),
                    rule.methods
                        .as_ref()
                        .map(|m| m.iter().take(4).map(method_text).collect()),
                )
            })
            .collect();
        (rules, method_text(&input.method), url_text(&input.url))
    };
    let mut rules = Vec::new();
    for (text, methods) in rule_texts.iter().take(4) {
        let Ok(parsed) = AllowRule::parse(text, methods.as_deref()) else {
            continue;
        };
        let normal = parsed.to_string();
        let again = AllowRule::parse(&normal, parsed.methods()).unwrap_or_else(|e| {
            panic!("the normalized form of {text:?} does not parse back: {normal:?}: {e}")
        });
        assert_eq!(
            again, parsed,
            "{text:?} normalizes to {normal:?}, which parses to another rule"
        );
        assert_eq!(again.to_string(), normal, "normalization is not idempotent");
        rules.push(parsed);
    }
    let models: Vec<Model> = rules.iter().map(model_of).collect();
    let list = AllowList::new(rules.clone());

    let checked = list.check_str(&method, &text);
    let Ok(url) = Url::parse(&text) else {
        assert!(checked.is_err(), "{text:?} is no URL but was allowed");
        return;
    };
    let matching = list.matching(&method, &url);
    assert_eq!(
        matching.is_ok(),
        checked.is_ok(),
        "check_str and matching disagree on {text:?}"
    );
    let request = request_of(&url);

    if let Ok(allowed_by) = &matching {
        assert!(!allowed_by.is_empty(), "allowed by no rule");
        let request = request
            .as_ref()
            .unwrap_or_else(|| panic!("{url} was allowed but no rule could allow it"));
        for rule in allowed_by {
            let i = rules
                .iter()
                .position(|r| r == *rule)
                .expect("a matching rule is one of the list's");
            assert!(
                model_allows(&models[i], request, &method),
                "rule {rule} ({:?}) allowed {method} {url}, which the model refuses",
                rule.methods()
            );
        }
    } else if let Some(request) = &request {
        let plain = !request.path.contains(['%', ';']);
        if plain {
            for (rule, model) in rules.iter().zip(&models) {
                assert!(
                    !model_allows(model, request, &method),
                    "rule {rule} ({:?}) should allow {method} {url}: {:?}",
                    rule.methods(),
                    matching.as_ref().err()
                );
            }
        }
    }

    // The fetch path's decision for an IP literal: only a rule that allows this request and
    // names the address opens a blocked network.
    for (rule, model) in rules.iter().zip(&models) {
        for ip in [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
            "10.0.0.1",
            "::1",
        ]
        .iter()
        .map(|s| s.parse::<IpAddr>().unwrap())
        .chain(request.as_ref().and_then(|r| match r.host {
            RequestHost::Ip(ip) => Some(ip),
            RequestHost::Domain(_) => None,
        })) {
            assert_eq!(
                rule.names_ip(ip),
                names(model, ip),
                "rule {rule}: names_ip({ip}) disagrees with the model"
            );
        }
    }
    if let (
        Ok(allowed_by),
        Some(Request {
            host: RequestHost::Ip(ip),
            ..
        }),
    ) = (&matching, &request)
    {
        let ip = *ip;
        let passes = check_address(ip, |ip| allowed_by.iter().any(|r| r.names_ip(ip))).is_ok();
        if blocked_range(ip).is_some() {
            let named_by_a_match = allowed_by.iter().any(|r| {
                let i = rules.iter().position(|x| x == *r).unwrap();
                names(&models[i], ip)
            });
            assert_eq!(
                passes, named_by_a_match,
                "blocked address {ip} ({url}): passes = {passes}, but a rule that allows the \
                 request and names it: {named_by_a_match}"
            );
        } else {
            assert!(passes, "{ip} is not blocked but was refused");
        }
    }
});
