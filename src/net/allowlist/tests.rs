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
    list.check_str(method, url).unwrap_err().to_string()
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

/// An IPv4 host and a path whose first segment is a number print as a network
/// (`127.0.0.1/8:80`), which is another rule: such a rule is refused with a clear error rather
/// than read back differently (found by the allowlist fuzz target).
#[test]
fn an_ip_host_path_that_would_print_as_a_network_is_refused() {
    for text in [
        "http://127.0.0.1/./8:080-8100,9000",
        "http://127.0.0.1/./8",
        "https://10.0.0.1/x/../16/api",
    ] {
        let error = AllowRule::parse(text, None).unwrap_err();
        assert!(error.contains("would read as a network"), "{text}: {error}");
    }
    // With a port, or a path that is not a number, the printed form is unambiguous.
    for text in [
        "http://127.0.0.1:80/./8",
        "http://127.0.0.1/./8x",
        "http://127.0.0.1/8/api",
    ] {
        let rule = AllowRule::parse(text, None).unwrap();
        let again = AllowRule::parse(&rule.to_string(), None).unwrap();
        assert_eq!(again, rule, "{text} prints as {rule}");
    }
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
        refusal(&l, "GET", "https://allowed.example@evil.example/").contains("user information")
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
    assert!(refusal(&l, "GET", "https://api.example/v1/%252e%252e/admin").contains("percent sign"));
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
