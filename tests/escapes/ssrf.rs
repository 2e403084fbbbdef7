//! SSRF and allowlist bypasses. The policy lets every name through (`http://*:*`), so only the
//! blocked-network check stands between the guest and the fake API on 127.0.0.1 — except for
//! one narrow rule naming `http://127.0.0.1:<api>/redirect`, which both serves redirects and
//! is itself a target for path and spelling tricks. Every attempt must end refused, and the
//! API's hit counter says whether anything arrived.

use serde_json::json;

use crate::harness::*;

fn network(p: Ports) -> String {
    format!(
        r#"
[network]
allow = [
  "http://*:*",
  "https://*:*",
  {{ url = "http://127.0.0.1:{api}/redirect", methods = ["GET", "POST"] }},
]
max_fetches = 20
max_redirects = 3
fetch_timeout_ms = 2000
"#,
        api = p.api
    )
}

fn env() -> Env {
    Env::new(EnvSpec {
        limits: &[],
        api: true,
        sink: false,
        network,
    })
}

/// A case fetching `url` from JavaScript: refused, and nothing reaches the API.
fn blocked(what: &str, url: String) -> Case {
    Case::js(format!("fetch {what}: {url}"), js_fetch(&url, "{}"))
        .must("refused before sending: nothing reaches the server")
        .result_starts("refused: ")
        .no_api_hits()
}

/// A case fetching the allowed /redirect endpoint, which redirects to `target`: the hop is
/// refused, and only the first request arrives.
fn redirect(what: &str, target: &str, port: u16, init: &str) -> Case {
    let url = format!(
        "http://127.0.0.1:{port}/redirect?to={}{}",
        urlencode(target),
        if init.contains("POST") {
            "&status=307"
        } else {
            ""
        }
    );
    Case::js(format!("a redirect {what}: {target}"), js_fetch(&url, init))
        .must("the server follows the first request only: the hop is re-checked and refused")
        .result_starts("refused: ")
        .api_hits(1)
}

pub fn cases(p: &Ports) -> Vec<Case> {
    let port = p.api;
    let at = |host: &str, path: &str| format!("http://{host}:{port}{path}");
    let mut cases = vec![
        Case::js(
            "positive control: the named /redirect prefix itself is reachable",
            js_fetch(&at("127.0.0.1", "/redirect/x"), "{}"),
        )
        .must("the request is sent (the server answers 404): the hit counter sees requests")
        .ok_with(json!("sent: 404"))
        .api_hits(1),
        blocked("the loopback API on a path no rule names", at("127.0.0.1", "/json")),
        // Names that resolve to loopback.
        blocked("a name resolving to loopback", at("localhost", "/json")),
        blocked("a name resolving to loopback, upper case", at("LOCALHOST", "/json")),
        blocked("a name resolving to loopback, trailing dot", at("localhost.", "/json")),
        // Other spellings of 127.0.0.1.
        blocked("decimal IPv4", at("2130706433", "/json")),
        blocked("hexadecimal IPv4", at("0x7f000001", "/json")),
        blocked("octal IPv4", at("0177.0.0.1", "/json")),
        blocked("mixed short-form IPv4", at("0x7f.1", "/json")),
        blocked("two-part short IPv4", at("127.1", "/json")),
        blocked("IPv4 with a trailing dot", at("127.0.0.1.", "/json")),
        blocked("IPv4-mapped IPv6", at("[::ffff:127.0.0.1]", "/json")),
        blocked("IPv4-mapped IPv6 in hex", at("[::ffff:7f00:1]", "/json")),
        blocked("IPv4-compatible IPv6", at("[::127.0.0.1]", "/json")),
        blocked("NAT64 IPv6", at("[64:ff9b::7f00:1]", "/json")),
        blocked("6to4 IPv6", at("[2002:7f00:1::]", "/json")),
        blocked("the unspecified address (Linux connects it to loopback)", at("0.0.0.0", "/json")),
        blocked("the unspecified address as `0`", at("0", "/json")),
        blocked("the IPv6 unspecified address", at("[::]", "/json")),
        blocked("IPv6 loopback", at("[::1]", "/json")),
        blocked("full-width digits", at("１２７.０.０.１", "/json")),
        blocked("ideographic full stops", at("127。0。0。1", "/json")),
        blocked("a percent-encoded host", at("%31%32%37.0.0.1", "/json")),
        blocked("a newline inside the host (stripped by the URL parser)", at("127.0.\n0.1", "/json")),
        // Metadata, private and other special networks.
        blocked("the cloud metadata address", "http://169.254.169.254/latest/meta-data/".into()),
        blocked("the IPv6 cloud metadata address", "http://[fd00:ec2::254]/latest/meta-data/".into()),
        blocked("Azure's wire server", "http://168.63.129.16/metadata/instance".into()),
        blocked("a CGNAT metadata address", "http://100.100.100.200/latest/meta-data/".into()),
        blocked("a private 10/8 address", "http://10.0.0.1/".into()),
        blocked("a private 192.168/16 address", "http://192.168.0.1/".into()),
        blocked("a private 172.16/12 address", "http://172.16.0.1/".into()),
        blocked("an IPv6 link-local address", at("[fe80::1]", "/json")),
        blocked("a multicast address", "http://224.0.0.1/".into()),
        // User information and parser confusion.
        blocked("user information before the named host", at("evil@127.0.0.1", "/redirect?to=x")),
        blocked("the named host as user information", format!("http://127.0.0.1:{port}@evil.invalid/")),
        blocked("a backslash before @", at("evil.invalid\\@127.0.0.1", "/json")),
        // Path tricks against the one rule that names 127.0.0.1.
        blocked("a dot segment out of the named prefix", at("127.0.0.1", "/redirect/../json")),
        blocked("encoded slashes out of the named prefix", at("127.0.0.1", "/redirect%2F..%2Fjson")),
        blocked("an encoded slash after a dot segment", at("127.0.0.1", "/redirect/..%2Fjson")),
        blocked("a dot segment with parameters", at("127.0.0.1", "/redirect/..;/json")),
        blocked("the named prefix in another case", at("127.0.0.1", "/REDIRECT/x")),
        blocked("a longer segment sharing the prefix", at("127.0.0.1", "/redirectx")),
        blocked("the named host on another port", format!("http://127.0.0.1:{}/redirect/x", port.wrapping_add(1))),
        blocked("the named host with https", format!("https://127.0.0.1:{port}/redirect/x")),
        Case::js(
            "a method the named rule does not list (TRACE)",
            js_fetch(&at("127.0.0.1", "/redirect/x"), "{method: 'TRACE'}"),
        )
        .must("refused before sending")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::js(
            "a CONNECT tunnel to the named host",
            js_fetch(&at("127.0.0.1", "/redirect/x"), "{method: 'CONNECT'}"),
        )
        .must("refused before sending")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::js(
            "schemes other than http(s): file, data, javascript, blob, gopher",
            format!(
                "const out = [];\nfor (const u of ['file:///etc/passwd', 'data:text/plain,hi', 'javascript:1', 'blob:http://127.0.0.1:{port}/x', 'gopher://127.0.0.1:{port}/_GET']) {{\n  try {{ await fetch(u); out.push('sent') }} catch (e) {{ out.push('refused') }}\n}}\nout"
            ),
        )
        .must("every one is refused")
        .ok_with(json!(vec!["refused"; 5]))
        .no_api_hits(),
    ];
    // Redirects from the allowed endpoint.
    let json_at = |host: &str| at(host, "/json");
    cases.extend([
        redirect(
            "to the API's own unnamed path",
            &json_at("127.0.0.1"),
            port,
            "{}",
        ),
        redirect(
            "to a name resolving to loopback",
            &json_at("localhost"),
            port,
            "{}",
        ),
        redirect("to IPv6 loopback", &json_at("[::1]"), port, "{}"),
        redirect(
            "to the unspecified address",
            &json_at("0.0.0.0"),
            port,
            "{}",
        ),
        redirect(
            "to a decimal IPv4 spelling",
            &json_at("2130706433"),
            port,
            "{}",
        ),
        redirect(
            "to IPv4-mapped IPv6",
            &json_at("[::ffff:127.0.0.1]"),
            port,
            "{}",
        ),
        redirect(
            "to the cloud metadata address",
            "http://169.254.169.254/latest/meta-data/",
            port,
            "{}",
        ),
        redirect("to a file URL", "file:///etc/passwd", port, "{}"),
        redirect(
            "protocol-relative, to the unnamed path",
            &format!("//127.0.0.1:{port}/json"),
            port,
            "{}",
        ),
        redirect("relative, to the unnamed path", "/json", port, "{}"),
        redirect(
            "307 of a POST with a body, to IPv6 loopback",
            &json_at("[::1]"),
            port,
            "{method: 'POST', body: 'payload'}",
        ),
    ]);
    let mut chain = "/json".to_string();
    for _ in 0..6 {
        chain = format!("/redirect?to={}", urlencode(&chain));
    }
    cases.push(
        Case::js(
            "a chain of six redirects inside the named prefix (max_redirects = 3)",
            js_fetch(&at("127.0.0.1", &chain), "{}"),
        )
        .must("refused as too many redirects after max_redirects + 1 requests")
        .result_starts("refused: fetch failed: too many redirects")
        .api_hits(4),
    );
    // Python goes through the same door.
    let spellings = [
        at("127.0.0.1", "/json"),
        at("localhost", "/json"),
        at("2130706433", "/json"),
        at("[::ffff:127.0.0.1]", "/json"),
        at("0.0.0.0", "/json"),
        at("127.0.0.1", "/redirect/../json"),
    ];
    cases.extend([
        Case::py(
            "Python requests.get over six spellings of the unnamed loopback API",
            format!(
                "import requests\nout = []\nfor u in {}:\n    try:\n        out.append('sent %d' % requests.get(u).status_code)\n    except requests.RequestException as e:\n        out.append('refused')\nout",
                serde_json::to_string(&spellings).unwrap()
            ),
        )
        .must("every one is refused; nothing reaches the server")
        .ok_with(json!(vec!["refused"; 6]))
        .no_api_hits(),
        Case::py(
            "Python urllib.request.urlopen of IPv4-mapped IPv6 loopback",
            format!(
                "import urllib.request, urllib.error\ntry:\n    urllib.request.urlopen({})\n    out = 'sent'\nexcept urllib.error.URLError as e:\n    out = 'refused: ' + str(e.reason)\nout",
                lit(&at("[::ffff:127.0.0.1]", "/json"))
            ),
        )
        .must("refused before sending")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::py(
            "Python raw wit_world.fetch to the unspecified address",
            format!(
                "import wit_world\ntry:\n    wit_world.fetch(wit_world.HttpRequest(method='GET', url={}, headers=[], body=b''))\n    out = 'sent'\nexcept Exception as e:\n    out = 'refused: ' + str(getattr(e, 'value', e))\nout",
                lit(&at("0.0.0.0", "/json"))
            ),
        )
        .must("refused before sending")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::py(
            "Python requests following a redirect to a name resolving to loopback",
            py_fetch(&format!(
                "http://127.0.0.1:{port}/redirect?to={}",
                urlencode(&json_at("localhost"))
            )),
        )
        .must("the hop is refused; only the first request arrives")
        .result_starts("refused: ")
        .api_hits(1),
    ]);
    cases
}

#[tokio::test]
async fn ssrf() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("ssrf", &env, cases, Mode::Regular).await;
}
