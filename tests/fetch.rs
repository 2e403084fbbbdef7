//! The one door out, end to end: guests fetching from real HTTP servers on 127.0.0.1 (started
//! here, allowed by explicit IP rules), through the executor's whole pipeline. Successes,
//! refusals that send nothing, exfiltration attempts that reveal nothing, and limits.

mod common;

use std::time::Instant;

use common::FakeApi;

use serde_json::{Value, json};
use warden::contract::ExecutionResult;
use warden::service::Service as Executor;

use common::FAKE_API_TOKEN as TOKEN;
/// The placeholder-only credential's value.
const KEY: &str = "key_5d3e8a1b9c0f2741-0123456789abcdef0123456789";

/// A policy allowing `api` (with a bearer credential injected for it) and `other`, and a
/// placeholder-only credential for `api`.
fn policy(api: &FakeApi, other: &FakeApi, extra: &str) -> String {
    // One pair of files per policy: tests run in parallel, and a file rewritten while another
    // test's server reads it would load an empty (unusable) credential.
    static POLICIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = POLICIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let token_file =
        std::env::temp_dir().join(format!("warden-test-token-{}-{n}", std::process::id()));
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let key_file = token_file.with_extension("key");
    std::fs::write(&key_file, KEY).unwrap();
    format!(
        r#"
[network]
allow = [
  "http://127.0.0.1:{api}",
  {{ url = "http://127.0.0.1:{other}", methods = ["GET", "POST"] }},
  "http://*:*",
]
max_fetches = 8
max_response_bytes = 1048576
{extra}

[credentials.api]
file = "{file}"
hosts = ["http://127.0.0.1:{api}/user", "http://127.0.0.1:{api}/echo", "http://127.0.0.1:{api}/gzip-echo"]
inject = {{ header = "Authorization", value = "Bearer {{secret}}" }}

[credentials.key]
file = "{key_file}"
hosts = ["http://127.0.0.1:{api}/echo", "http://127.0.0.1:{api}/bounce"]
"#,
        api = api.port,
        other = other.port,
        file = token_file.display(),
        key_file = key_file.display(),
    )
}

async fn run(executor: &Executor, language: &str, code: &str) -> ExecutionResult {
    // A generous deadline: on a cold guest cache, parallel tests compete for the cores.
    common::call_as(
        executor,
        "local",
        "s",
        json!({"language": language, "code": code, "timeout_ms": 20000}),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
}

fn result(r: &ExecutionResult) -> &Value {
    assert_eq!(r.status.as_str(), "ok", "{r:#?}");
    &r.result
}

/// Asserts no secret appears anywhere in the result.
fn clean(r: &ExecutionResult) {
    let text = serde_json::to_string(r).unwrap();
    assert!(
        !text.contains(TOKEN) && !text.contains(KEY),
        "a secret leaked: {text}"
    );
}

struct Setup {
    api: FakeApi,
    other: FakeApi,
    executor: Executor,
}

fn setup(extra: &str) -> Setup {
    let api = FakeApi::start();
    let other = FakeApi::start();
    let executor = common::executor_with(&policy(&api, &other, extra));
    Setup {
        api,
        other,
        executor,
    }
}

#[tokio::test]
async fn javascript_gets_and_posts_json_with_headers() {
    let s = setup("");
    let code = format!(
        r#"
const r = await fetch("{json}");
const data = await r.json();
const posted = await fetch("{echo}?q=1", {{
  method: "POST",
  headers: {{ "Content-Type": "application/json", "X-Custom": "yes" }},
  body: JSON.stringify({{ a: 1 }}),
}});
const echo = await posted.json();
({{ status: r.status, ok: r.ok, api: r.headers.get("x-api"), data,
   method: echo.method, query: echo.query, custom: echo.headers["x-custom"], body: echo.body,
   type: echo.headers["content-type"] }})
"#,
        json = s.api.url("/json"),
        echo = s.other.url("/echo"),
    );
    let r = run(&s.executor, "javascript", &code).await;
    assert_eq!(
        result(&r),
        &json!({"status": 200, "ok": true, "api": "fake", "data": {"hello": "world", "items": [1, 2, 3]},
                "method": "POST", "query": "q=1", "custom": "yes", "body": "{\"a\":1}",
                "type": "application/json"})
    );
    assert_eq!(r.usage.fetches, 2);
}

#[tokio::test]
async fn bodies_as_bytes_and_array_buffers_round_trip() {
    let s = setup("");
    let code = format!(
        r#"
const sent = new Uint8Array([104, 105, 0, 255]);
const a = await (await fetch("{echo}", {{ method: "POST", body: sent }})).json();
const b = await (await fetch("{put}", {{ method: "PUT", body: sent.buffer }})).json();
const raw = await (await fetch("{json}")).arrayBuffer();
[a.body.length, b.method, raw.byteLength]
"#,
        echo = s.other.url("/echo"),
        put = s.api.url("/echo"),
        json = s.api.url("/json"),
    );
    let r = run(&s.executor, "javascript", &code).await;
    assert_eq!(result(&r), &json!([4, "PUT", 38]));
}

#[tokio::test]
async fn redirects_inside_the_allowlist_are_followed() {
    let s = setup("");
    let code = format!(
        r#"
const r = await fetch("{start}");
[r.status, r.redirected, r.url, (await r.json()).hello]
"#,
        start = s.api.url(&format!(
            "/redirect?to={}",
            urlencode(&s.other.url("/json"))
        )),
    );
    let r = run(&s.executor, "javascript", &code).await;
    assert_eq!(
        result(&r),
        &json!([200, true, s.other.url("/json"), "world"])
    );
}

#[tokio::test]
async fn typescript_calls_a_rest_api_with_an_injected_bearer_token() {
    // The README's headline example: the code calls the API as anywhere else; the server adds
    // the token, and the code never sees it.
    let s = setup("");
    let code = format!(
        r#"
interface User {{ login: string; id: number }}
async function me(): Promise<User> {{
  const r = await fetch("{user}");
  if (!r.ok) throw new Error(`HTTP ${{r.status}}`);
  return (await r.json()) as User;
}}
const user: User = await me();
user.login
"#,
        user = s.api.url("/user"),
    );
    let r = run(&s.executor, "typescript", &code).await;
    assert_eq!(result(&r), &json!("octocat"));
    clean(&r);
}

#[tokio::test]
async fn python_requests_urllib_and_warden_fetch() {
    let s = setup("");
    let code = format!(
        r#"
import json, requests, urllib.request, warden
r = requests.get("{user}")
posted = requests.post("{echo}", json={{"k": [1, 2]}}, params={{"a": "b c"}}, headers={{"X-One": "1"}})
e = posted.json()
req = urllib.request.Request("{json}", headers={{"Accept": "application/json"}})
with urllib.request.urlopen(req) as resp:
    via_urllib = json.loads(resp.read())
w = warden.fetch("{json}")
try:
    requests.get("{missing}").raise_for_status()
    raised = None
except requests.HTTPError as err:
    raised = err.response.status_code
{{
  "user": r.json()["login"], "ok": r.ok, "ctype": r.headers["CONTENT-TYPE"],
  "method": e["method"], "query": e["query"], "body": json.loads(e["body"]), "one": e["headers"]["x-one"],
  "urllib": via_urllib["hello"], "warden": [w.status, w.json()["items"]], "raised": raised,
}}
"#,
        user = s.api.url("/user"),
        echo = s.api.url("/echo"),
        json = s.other.url("/json"),
        missing = s.other.url("/status/404"),
    );
    let r = run(&s.executor, "python", &code).await;
    assert_eq!(
        result(&r),
        &json!({"user": "octocat", "ok": true, "ctype": "application/json", "method": "POST",
                "query": "a=b+c", "body": {"k": [1, 2]}, "one": "1", "urllib": "world",
                "warden": [200, [1, 2, 3]], "raised": 404})
    );
    clean(&r);
}

#[tokio::test]
async fn python_refusals_are_exceptions_with_the_reason() {
    let s = setup("");
    let code = r#"
import requests, urllib.request, urllib.error, warden
out = []
try:
    requests.get("http://10.0.0.1/")
except requests.ConnectionError as e:
    out.append(str(e))
try:
    urllib.request.urlopen("http://169.254.169.254/latest/meta-data/")
except urllib.error.URLError as e:
    out.append(str(e.reason))
try:
    warden.fetch("ftp://example.com/")
except warden.FetchError as e:
    out.append(str(e))
out
"#;
    let r = run(&s.executor, "python", code).await;
    let out = result(&r).as_array().unwrap();
    assert!(out[0].as_str().unwrap().contains("private"), "{out:?}");
    assert!(
        out[1].as_str().unwrap().contains("cloud metadata"),
        "{out:?}"
    );
    assert!(out[2].as_str().unwrap().contains("scheme ftp"), "{out:?}");
}

/// Runs `fetch(url, init)` and returns the TypeError's message (or "sent").
async fn refusal(executor: &Executor, url: &str, init: &str) -> String {
    let code = format!(
        "try {{ await fetch({url:?}, {init}); 'sent' }} catch (e) {{ e.name + ': ' + e.message }}"
    );
    let r = run(executor, "javascript", &code).await;
    result(&r).as_str().unwrap().to_string()
}

#[tokio::test]
async fn unlisted_hosts_ports_schemes_methods_and_paths_are_refused_before_sending() {
    let api = FakeApi::start();
    let other = FakeApi::start();
    let port = api.port;
    // Only GET /json on `api`.
    let strict = common::executor_with(&format!(
        "[network]\nallow = [{{ url = \"http://127.0.0.1:{port}/json\", methods = [\"GET\"] }}]\n"
    ));
    let before = (api.hits(), other.hits());
    for (url, init, expected) in [
        (
            "http://example.com/".to_string(),
            "{}",
            "host example.com is not on the allowlist",
        ),
        (
            format!("http://127.0.0.2:{port}/json"),
            "{}",
            "host 127.0.0.2 is not on the allowlist",
        ),
        (
            format!("http://127.0.0.1:{}/json", other.port),
            "{}",
            "port",
        ),
        (
            format!("https://127.0.0.1:{port}/json"),
            "{}",
            "scheme https",
        ),
        (
            format!("http://127.0.0.1:{port}/json"),
            "{method: 'POST', body: 'x'}",
            "method POST",
        ),
        (format!("http://127.0.0.1:{port}/echo"), "{}", "path /echo"),
        (
            format!("http://127.0.0.1:{port}/json/../echo"),
            "{}",
            "path /echo",
        ),
    ] {
        let got = refusal(&strict, &url, init).await;
        assert!(got.starts_with("TypeError: fetch failed: "), "{url}: {got}");
        assert!(got.contains(expected), "{url}: {got}");
    }
    assert_eq!(
        (api.hits(), other.hits()),
        before,
        "a refused request reached a server"
    );
    assert_eq!(refusal(&strict, &api.url("/json"), "{}").await, "sent");
}

#[tokio::test]
async fn blocked_addresses_are_refused_in_every_spelling() {
    // `http://*:*` lets every host past the allowlist; only the blocked-network check stands
    // between the guest and these addresses. 127.0.0.1 is named by a rule, so it is allowed.
    let s = setup("");
    let port = s.api.port;
    let before = s.api.hits();
    for (url, kind) in [
        (format!("http://127.0.0.2:{port}/json"), "loopback"),
        ("http://10.0.0.1/".to_string(), "private"),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "cloud metadata",
        ),
        (format!("http://[::1]:{port}/json"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}/json"), "loopback"),
        (format!("http://0.0.0.0:{port}/json"), "unspecified"),
        ("http://2852039166/".to_string(), "cloud metadata"),
        ("http://0xA9FEA9FE/".to_string(), "cloud metadata"),
        ("http://0251.0376.0251.0376/".to_string(), "cloud metadata"),
        (format!("http://0x7f000002:{port}/"), "loopback"),
        (format!("http://017700000002:{port}/"), "loopback"),
        ("http://167772161/".to_string(), "private"),
        ("http://[fd00:ec2::254]/".to_string(), "cloud metadata"),
        (format!("http://１２７.０.０.２:{port}/"), "loopback"),
    ] {
        let got = refusal(&s.executor, &url, "{}").await;
        assert!(
            got.contains("blocked network") && got.contains(kind),
            "{url}: {got}"
        );
    }
    assert_eq!(s.api.hits(), before, "a blocked request reached the server");
    // The named address itself works.
    assert_eq!(
        refusal(&s.executor, &s.api.url("/json"), "{}").await,
        "sent"
    );
}

#[tokio::test]
async fn userinfo_backslash_and_unicode_tricks_do_not_move_the_host() {
    let api = FakeApi::start();
    let port = api.port;
    let strict = common::executor_with(&format!(
        "[network]\nallow = [\"http://127.0.0.1:{port}\", \"https://allowed.example\"]\n"
    ));
    let before = api.hits();
    for (url, expected) in [
        (
            format!("http://127.0.0.1:{port}@evil.example/"),
            "user information",
        ),
        (
            format!("http://user:pw@127.0.0.1:{port}/json"),
            "user information",
        ),
        (
            "https://allowed.example@evil.example/".to_string(),
            "user information",
        ),
        // WHATWG reads the backslash as a slash: the host is evil.example.
        (
            format!("http://evil.example\\@127.0.0.1:{port}/json"),
            "host evil.example is not",
        ),
        (
            "https://ⓔⓥⓘⓛ.example/".to_string(),
            "host evil.example is not",
        ),
        (
            "https://allowed.example.evil.example/".to_string(),
            "not on the allowlist",
        ),
        (
            "https://аllowed.example/".to_string(),
            "host xn--llowed-2nf.example is not",
        ),
        (
            format!("http://１２７.０.０.２:{port}/"),
            "host 127.0.0.2 is not",
        ),
    ] {
        let got = refusal(&strict, &url, "{}").await;
        assert!(got.contains(expected), "{url}: {got}");
    }
    assert_eq!(api.hits(), before);
    // The same tricks pointing at the allowed host reach it, as the URL standard says.
    assert_eq!(
        refusal(
            &strict,
            &format!("http://１２７.０.０.１:{port}/json"),
            "{}"
        )
        .await,
        "sent"
    );
}

#[tokio::test]
async fn a_redirect_to_an_unlisted_or_blocked_host_is_refused() {
    let s = setup("");
    for target in [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        format!("http://127.0.0.2:{}/json", s.api.port),
        "ftp://example.com/".to_string(),
    ] {
        let url = s.api.url(&format!("/redirect?to={}", urlencode(&target)));
        let got = refusal(&s.executor, &url, "{}").await;
        assert!(
            got.contains("blocked network") || got.contains("scheme ftp"),
            "{target}: {got}"
        );
    }
}

#[tokio::test]
async fn secrets_never_reach_the_guest() {
    let s = setup("");
    let echo = s.api.url("/echo");
    let code = format!(
        r#"
const out = {{}};
// 1. The placeholder printed is just text.
console.log("__WARDEN_SECRET_api__");
// 2. The echo endpoint reflects the injected Authorization header, in its body and a header.
const r = await fetch("{echo}");
const e = await r.json();
out.reflected = e.headers.authorization;
out.header = r.headers.get("x-echo-authorization");
// 3. A placeholder in the query string, to its own host, comes back redacted.
const q = await (await fetch("{echo}?k=__WARDEN_SECRET_key__")).json();
out.query = q.query;
// 4. A placeholder in the body, to its own host.
const b = await (await fetch("{echo}", {{ method: "POST", body: "key=__WARDEN_SECRET_key__" }})).json();
out.body = b.body;
// 5. Sending a placeholder to another allowed host refuses the whole request.
try {{ await fetch("{other}?k=__WARDEN_SECRET_key__"); out.other = "sent"; }}
catch (err) {{ out.other = err.message; }}
// 6. ...also in a header.
try {{ await fetch("{other}", {{ headers: {{ "X-K": "__WARDEN_SECRET_api__" }} }}); out.header2 = "sent"; }}
catch (err) {{ out.header2 = err.message; }}
// 7. The code cannot set the injected header itself.
try {{ await fetch("{echo}", {{ headers: {{ Authorization: "Bearer mine" }} }}); out.own = "sent"; }}
catch (err) {{ out.own = err.message; }}
// 8. Error messages built from responses carry placeholders only.
throw new Error(JSON.stringify(out));
"#,
        other = s.other.url("/echo"),
    );
    let before = s.other.hits();
    let r = run(&s.executor, "javascript", &code).await;
    clean(&r);
    assert_eq!(r.status.as_str(), "error");
    assert_eq!(r.stdout, "__WARDEN_SECRET_api__\n");
    let message = &r.error.as_ref().unwrap().message;
    let out: Value = serde_json::from_str(message).unwrap_or_else(|e| {
        panic!("the error is not the summary the program throws ({e}): {r:#?}")
    });
    assert_eq!(out["reflected"], "Bearer __WARDEN_SECRET_api__");
    assert_eq!(out["header"], "Bearer __WARDEN_SECRET_api__");
    assert_eq!(out["query"], "k=__WARDEN_SECRET_key__");
    assert_eq!(out["body"], "key=__WARDEN_SECRET_key__");
    for key in ["other", "header2"] {
        assert!(
            out[key]
                .as_str()
                .unwrap()
                .contains("may not be sent to 127.0.0.1"),
            "{out}"
        );
    }
    assert!(
        out["own"]
            .as_str()
            .unwrap()
            .contains("the server sets the Authorization header")
    );
    assert_eq!(
        s.other.hits(),
        before,
        "a refused request reached the other host"
    );
}

#[tokio::test]
async fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let s = setup("");
    // /user on `api` would accept the token; a redirect from `other` to it must arrive bare.
    let via_other = s
        .other
        .url(&format!("/redirect?to={}", urlencode(&s.api.url("/user"))));
    let code = format!(
        r#"
const direct = await fetch("{user}");
const bounced = await fetch("{via_other}");
[direct.status, bounced.status, bounced.redirected]
"#,
        user = s.api.url("/user"),
    );
    let r = run(&s.executor, "javascript", &code).await;
    // Injected credentials are per target host: the bounce lands on /user, in scope, and is
    // a new origin: it gets no credential.
    assert_eq!(result(&r), &json!([200, 401, true]));
}

#[tokio::test]
async fn huge_responses_slow_servers_and_too_many_fetches_are_limited() {
    let s = setup("");
    let big = 4 * 1024 * 1024;
    for path in [format!("/huge?bytes={big}"), format!("/stream?bytes={big}")] {
        let got = refusal(&s.executor, &s.api.url(&path), "{}").await;
        assert!(got.contains("exceeds max_response_bytes"), "{path}: {got}");
    }
    // Eight fetches are allowed; the ninth is refused.
    let code = format!(
        r#"
let n = 0, last = "";
for (let i = 0; i < 12; i++) {{
  try {{ await fetch("{json}"); n++; }} catch (e) {{ last = e.message; }}
}}
[n, last]
"#,
        json = s.api.url("/json"),
    );
    let r = run(&s.executor, "javascript", &code).await;
    let v = result(&r);
    assert_eq!(v[0], 8);
    assert!(v[1].as_str().unwrap().contains("made its 8 fetches"), "{v}");

    // A server slower than the run: the run ends at its deadline, not the server's.
    let args = json!({"language": "javascript", "timeout_ms": 800,
           "code": format!("await fetch({:?}); 'late'", s.api.url("/slow?ms=5000"))});
    let started = Instant::now();
    let r = common::call_as(
        &s.executor,
        "local",
        "s",
        args,
        &tokio_util::sync::CancellationToken::new(),
    )
    .await;
    let took = started.elapsed();
    assert!(took.as_millis() < 2000, "took {took:?}");
    assert!(
        matches!(r.status.as_str(), "timeout" | "error"),
        "{:?}",
        r.status
    );
}

#[tokio::test]
async fn the_audit_log_records_fetches_without_secrets_or_queries() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let api = FakeApi::start();
    let other = FakeApi::start();
    let text = format!(
        "{}\n[audit]\npath = \"{}\"\n",
        policy(&api, &other, ""),
        log.display()
    );
    let executor = common::executor_with(&text).with_audit(std::sync::Arc::new(
        warden::audit::AuditLog::open(&warden::policy::Policy::parse(&text, "p").unwrap().audit)
            .unwrap(),
    ));
    let code = format!(
        r#"
await fetch("{user}");
await fetch("{echo}?k=__WARDEN_SECRET_key__&q=private-query", {{ method: "POST", body: "b0dy" }});
try {{ await fetch("http://10.0.0.1/x"); }} catch (e) {{}}
1
"#,
        user = api.url("/user"),
        echo = api.url("/echo"),
    );
    let r = run(&executor, "javascript", &code).await;
    assert_eq!(result(&r), &json!(1));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(TOKEN) && !text.contains(KEY), "{text}");
    assert!(
        !text.contains("private-query") && !text.contains("b0dy"),
        "{text}"
    );
    let fetches: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "fetch")
        .collect();
    assert_eq!(fetches.len(), 3, "{text}");
    assert_eq!(
        fetches[0]["target"],
        format!("http://127.0.0.1:{}/user", api.port)
    );
    assert_eq!(fetches[0]["status"], 200);
    assert_eq!(fetches[0]["credentials"], json!(["api"]));
    assert_eq!(fetches[0]["decision"], "allow");
    assert_eq!(fetches[1]["credentials"], json!(["key", "api"]));
    assert_eq!(fetches[1]["request_bytes"], 4);
    assert_eq!(fetches[2]["decision"], "refused");
    assert!(fetches[2]["reason"].as_str().unwrap().contains("private"));
}

#[tokio::test]
async fn a_secret_echoed_into_a_redirect_is_neither_followed_elsewhere_nor_shown() {
    // Found in review: the server puts the substituted value into the Location. Same origin:
    // the hop goes on (the value is the credential's, in scope) and the guest sees only the
    // placeholder in `url`. Another origin: the hop is refused.
    let s = setup("");
    let same = s.api.url(&format!(
        "/bounce?to={}&k=__WARDEN_SECRET_key__",
        urlencode(&s.api.url("/echo"))
    ));
    let elsewhere = s.api.url(&format!(
        "/bounce?to={}&k=__WARDEN_SECRET_key__",
        urlencode(&s.other.url("/echo"))
    ));
    let code = format!(
        r#"
const r = await fetch("{same}");
const e = await r.json();
let other;
try {{ await fetch("{elsewhere}"); other = "sent"; }} catch (err) {{ other = err.message; }}
[r.url, e.query, other]
"#
    );
    let before = s.other.hits();
    let r = run(&s.executor, "javascript", &code).await;
    clean(&r);
    let v = result(&r);
    assert!(
        v[0].as_str().unwrap().contains("k=__WARDEN_SECRET_key__"),
        "{v}"
    );
    assert_eq!(v[1], "k=__WARDEN_SECRET_key__");
    assert!(
        v[2].as_str().unwrap().contains("cannot follow a redirect"),
        "{v}"
    );
    assert_eq!(
        s.other.hits(),
        before,
        "the secret was carried to another origin"
    );
}

#[tokio::test]
async fn compressed_and_partial_echoes_cannot_dodge_redaction() {
    let s = setup("");
    let code = format!(
        r#"
const out = [];
for (const headers of [{{ "Accept-Encoding": "gzip" }}, {{ Range: "bytes=0-9" }}, {{ "X-Forwarded-For": "10.0.0.1" }}]) {{
  try {{ await fetch("{echo}", {{ headers }}); out.push("sent"); }} catch (e) {{ out.push(e.message); }}
}}
// A server that compresses anyway: the client decodes, then redacts.
out.push((await (await fetch("{gzip}")).json()).authorization);
try {{ await fetch("{br}"); out.push("sent"); }} catch (e) {{ out.push(e.message); }}
out
"#,
        echo = s.api.url("/echo"),
        gzip = s.api.url("/gzip-echo"),
        br = s.api.url("/br"),
    );
    let r = run(&s.executor, "javascript", &code).await;
    clean(&r);
    let v = result(&r).as_array().unwrap().clone();
    for (i, header) in ["accept-encoding", "range", "x-forwarded-for"]
        .iter()
        .enumerate()
    {
        assert!(
            v[i].as_str()
                .unwrap()
                .contains(&format!("the {header} header is set by the host")),
            "{v:?}"
        );
    }
    assert_eq!(v[3], "Bearer __WARDEN_SECRET_api__");
    assert!(v[4].as_str().unwrap().contains("br-encoded"), "{v:?}");
}

#[tokio::test]
async fn a_named_ip_opens_only_the_requests_its_own_rule_allows() {
    // Found in review: with `http://*:*` beside a narrow rule for 127.0.0.1, the wildcard must
    // not inherit the narrow rule's exemption for other ports or paths.
    let api = FakeApi::start();
    let other = FakeApi::start();
    let executor = common::executor_with(&format!(
        "[network]\nallow = [\"http://*:*\", \"http://127.0.0.1:{}/json\"]\n",
        api.port
    ));
    let before = (api.hits(), other.hits());
    for url in [api.url("/echo"), other.url("/json")] {
        let got = refusal(&executor, &url, "{}").await;
        assert!(got.contains("blocked network (loopback"), "{url}: {got}");
    }
    assert_eq!((api.hits(), other.hits()), before);
    assert_eq!(refusal(&executor, &api.url("/json"), "{}").await, "sent");
}

#[tokio::test]
async fn substitution_cannot_grow_a_body_past_the_cap() {
    let s = setup("max_request_bytes = 4096");
    // 190 placeholders (3990 bytes) fit the cap; with each replaced by the 46-byte value the
    // body would be 8740 bytes.
    let code = format!(
        r#"
const body = "__WARDEN_SECRET_key__".repeat(190);
try {{ await fetch("{echo}", {{ method: "POST", body }}); "sent" }} catch (e) {{ e.message }}
"#,
        echo = s.api.url("/echo"),
    );
    let r = run(&s.executor, "javascript", &code).await;
    let message = result(&r).as_str().unwrap().to_string();
    assert!(
        message.contains("with credentials substituted"),
        "{message}"
    );
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
