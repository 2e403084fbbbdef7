//! Sockets and raw network: the one door out is the host's `fetch`, and a policy without
//! `[network]` rules opens it to nothing. A real HTTP server listens on 127.0.0.1 during every
//! case; each attempt must leave its hit counter where it was.

use serde_json::json;

use crate::harness::*;

fn env() -> Env {
    Env::new(EnvSpec {
        limits: &[],
        api: true,
        sink: false,
        network: no_network,
    })
}

/// Python that gets the interpreter's built-in `_socket` module past the import finders.
const BUILTIN_SOCKET: &str = "import _imp, importlib.machinery\n\
     _socket = _imp.create_builtin(importlib.machinery.ModuleSpec('_socket', None))\n";

pub fn cases(p: &Ports) -> Vec<Case> {
    let api = |path: &str| format!("http://127.0.0.1:{}{path}", p.api);
    let port = p.api;
    vec![
        // ----------------------------------------------------------------- Python sockets
        Case::py("Python import socket", "import socket")
            .must("the module is refused")
            .status(&["error"])
            .error_type(&["ModuleNotFoundError"])
            .no_api_hits(),
        Case::py(
            "Python imports every network module (_socket, ssl, select, selectors, asyncio, http.client, ftplib, smtplib, socketserver, urllib3)",
            "out = []\nfor m in ('_socket', 'ssl', 'select', 'selectors', 'asyncio', 'http.client', 'ftplib', 'smtplib', 'socketserver', 'urllib3'):\n    try:\n        __import__(m)\n        out.append(m + ' imported')\n    except ImportError as e:\n        out.append('refused')\nout",
        )
        .must("each is refused")
        .ok_with(json!(vec!["refused"; 10])),
        Case::py(
            "Python removes the sandbox's import finders from sys.meta_path, then imports socket",
            "import sys\nsys.meta_path[:] = [m for m in sys.meta_path if type(m).__name__ != '_SandboxImports']\nimport socket",
        )
        .must("the module still cannot be found: it is not in the guest at all")
        .status(&["error"])
        .error_type(&["ModuleNotFoundError"]),
        Case::py(
            "Python instantiates the built-in _socket module with _imp.create_builtin and connects to a listening server",
            format!(
                "{BUILTIN_SOCKET}try:\n    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\n    s.connect(('127.0.0.1', {port}))\n    out = 'connected'\nexcept Exception as e:\n    out = 'refused: ' + type(e).__name__\nout"
            ),
        )
        .must("the built-in module cannot make a socket; nothing reaches the server")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::py(
            "Python resolves names with the built-in _socket (getaddrinfo, gethostbyname)",
            format!(
                "{BUILTIN_SOCKET}out = []\nfor f, a in ((_socket.getaddrinfo, (b'localhost', 80)), (_socket.gethostbyname, ('localhost',)), (_socket.getaddrinfo, (b'example.com', 443))):\n    try:\n        out.append(repr(f(*a)))\n    except Exception as e:\n        out.append('refused')\nout"
            ),
        )
        .must("no name resolves")
        .ok_with(json!(vec!["refused"; 3])),
        Case::py(
            "Python asks the built-in _socket for the host's name",
            format!("{BUILTIN_SOCKET}try:\n    out = _socket.gethostname()\nexcept Exception as e:\n    out = 'refused'\nout"),
        )
        .must("the host's real name is not revealed")
        .check(|o| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let host = host.trim();
            let got = o.result.result.as_str().unwrap_or_default();
            if o.result.status.as_str() != "ok" {
                Err("the program failed".into())
            } else if !host.is_empty() && host != "localhost" && got.contains(host) {
                Err(format!("the host name {host:?} leaked"))
            } else {
                Ok(())
            }
        }),
        Case::py(
            "Python select.select with a 60 s timeout (a blocking wait on the host thread)",
            "import sys\nsys.meta_path[:] = [m for m in sys.meta_path if type(m).__name__ != '_SandboxImports']\nimport select\nselect.select([], [], [], 60)",
        )
        .must("the wait cannot hold the run past its deadline")
        .timeout_ms(1000)
        .within_ms(4000),
        Case::py("Python requests.get to a listening server, with no [network] rule", py_fetch(&api("/json")))
            .must("the request is refused before anything is sent")
            .result_starts("refused: ")
            .no_api_hits(),
        Case::py(
            "Python urllib.request.urlopen to a listening server, with no [network] rule",
            format!(
                "import urllib.request\ntry:\n    urllib.request.urlopen({})\n    out = 'sent'\nexcept Exception as e:\n    out = 'refused: ' + str(e)\nout",
                lit(&api("/json"))
            ),
        )
        .must("the request is refused before anything is sent")
        .result_starts("refused: ")
        .no_api_hits(),
        Case::py(
            "Python calls the raw host import wit_world.fetch, bypassing the shims",
            format!(
                "import wit_world\ntry:\n    wit_world.fetch(wit_world.HttpRequest(method='GET', url={}, headers=[], body=b''))\n    out = 'sent'\nexcept Exception as e:\n    out = 'refused: ' + str(getattr(e, 'value', e))\nout",
                lit(&api("/json"))
            ),
        )
        .must("the host applies the same policy to the raw import")
        .result_starts("refused: ")
        .no_api_hits(),
        // ------------------------------------------------------------------- JavaScript
        Case::js("JavaScript fetch to a listening server, with no [network] rule", js_fetch(&api("/json"), "{}"))
            .must("the request is refused before anything is sent")
            .result_starts("refused: ")
            .no_api_hits(),
        Case::js(
            "JavaScript fetch with socket-like schemes (ws, wss, ftp, gopher, telnet)",
            format!(
                "const out = [];\nfor (const u of ['ws://127.0.0.1:{port}/', 'wss://127.0.0.1:{port}/', 'ftp://127.0.0.1:{port}/', 'gopher://127.0.0.1:{port}/_GET%20/', 'telnet://127.0.0.1:{port}/']) {{\n  try {{ await fetch(u); out.push('sent') }} catch (e) {{ out.push('refused') }}\n}}\nout"
            ),
        )
        .must("every scheme but http(s) is refused; nothing reaches the server")
        .ok_with(json!(vec!["refused"; 5]))
        .no_api_hits(),
        Case::js(
            "JavaScript looks for socket APIs (WebSocket, EventSource, navigator.sendBeacon, Deno.connect, net, dgram)",
            "[typeof WebSocket, typeof EventSource, typeof navigator, typeof Deno, typeof net, typeof dgram, typeof RTCPeerConnection]",
        )
        .must("none exists")
        .ok_with(json!(vec!["undefined"; 7])),
        Case::ts(
            "TypeScript fetch through a typed wrapper, with no [network] rule",
            format!(
                "async function get(u: string): Promise<number> {{ const r: Response = await fetch(u); return r.status; }}\ntry {{ 'sent: ' + await get({}) }} catch (e) {{ 'refused: ' + (e as Error).message }}",
                lit(&api("/json"))
            ),
        )
        .must("the request is refused before anything is sent")
        .result_starts("refused: ")
        .no_api_hits(),
        // ------------------------------------------------------------------- raw WASI
        Case::wat(
            "raw WASI sock_send, sock_recv and sock_shutdown on fds 0..4",
            WatGuest::new({
                let mut body = String::from(
                    "(i32.store (i32.const 200) (i32.const 2048)) (i32.store (i32.const 204) (i32.const 6))\n",
                );
                for fd in 0..5 {
                    body.push_str(&format!(
                        "(if (i32.eqz (call $sock_send (i32.const {fd}) (i32.const 200) (i32.const 1) (i32.const 0) (i32.const 208))) (then unreachable))
                         (if (i32.eqz (call $sock_recv (i32.const {fd}) (i32.const 200) (i32.const 1) (i32.const 0) (i32.const 208) (i32.const 212))) (then unreachable))
                         (if (i32.eqz (call $sock_shutdown (i32.const {fd}) (i32.const 3))) (then unreachable))\n"
                    ));
                }
                body + REPORT_7
            }),
        )
        .must("no descriptor is a socket (the guest traps if a call succeeds)")
        .ok_with(json!(7)),
        Case::wat(
            "raw warden.fetch from a hand-written guest that was given no network",
            WatGuest::new(format!(
                "(drop (call $fetch (i32.const 4096) (i32.const {len}))) {REPORT_FETCH_HEAD}",
                len = fetch_frame(r#"{"method":"GET","url":"http://127.0.0.1/","headers":[]}"#).len()
            ))
            .data(4096, fetch_frame(r#"{"method":"GET","url":"http://127.0.0.1/","headers":[]}"#)),
        )
        .must("the answer is a refusal frame (ok: false), not a request")
        .check(|o| {
            let head = &o.result.result;
            if o.result.status.as_str() == "ok"
                && head["ok"] == json!(false)
                && head["error"].as_str().is_some_and(|e| e.contains("not enabled"))
            {
                Ok(())
            } else {
                Err("the guest did not get a refusal".into())
            }
        }),
    ]
}

/// A fetch request frame: little-endian u32 head length, the head, no body.
pub fn fetch_frame(head: &str) -> Vec<u8> {
    let mut frame = (head.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(head.as_bytes());
    frame
}

#[tokio::test]
async fn network() {
    let env = env();
    let cases = cases(&env.ports);
    run_table("network", &env, cases, Mode::Regular).await;
}
