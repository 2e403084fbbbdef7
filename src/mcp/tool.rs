//! The `execute_code` tool as a caller sees it: the contract's schemas, and a description
//! generated from what the caller may do, so that a model knows it.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::Value;

use crate::contract::{Language, Status, TOOL_NAME, input_schema, output_schema};
use crate::policy::Limits;
use crate::service::{CallerView, NetworkSummary};

pub fn execute_code_tool(view: &CallerView) -> Tool {
    let (limits, languages) = (&view.limits, view.languages.as_slice());
    Tool::new(
        TOOL_NAME,
        description(limits, languages, &view.network),
        Arc::new(as_object(input_schema(
            &limits.argument_limits(),
            languages,
        ))),
    )
    .with_title("Run code in a sandbox")
    .with_raw_output_schema(Arc::new(as_object(output_schema())))
    .with_annotations(
        ToolAnnotations::new()
            .read_only(false)
            .destructive(false)
            .idempotent(false)
            .open_world(false),
    )
}

fn as_object(v: Value) -> JsonObject {
    match v {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

fn names(languages: &[Language]) -> Vec<&'static str> {
    languages.iter().map(|l| l.as_str()).collect()
}

pub fn description(limits: &Limits, languages: &[Language], network: &NetworkSummary) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut text = format!(
        "Run a program in a fresh, isolated WebAssembly sandbox and return its output.\n\n\
         Languages: {langs}. The value of the program's last expression is returned as \
         `result` (JSON). Output to stdout and stderr is captured. The optional `input` \
         argument is available to the code as the global `input`. There is no filesystem, \
         no environment, {net}no subprocess and no package installation.\n",
        langs = names(languages).join(", "),
        net = if network.hosts.is_empty() {
            "no network, "
        } else {
            "no network beyond the hosts below, "
        },
    );
    if !network.hosts.is_empty() {
        text.push_str(&format!(
            "\nNetwork: HTTP(S) requests may go only to: {hosts}. Up to {max} requests per run \
             (redirects count). JavaScript/TypeScript: `fetch(url, init)` (WHATWG-style \
             Response with text(), json(), arrayBuffer()). Python: `requests` (get, post, put, \
             patch, delete, head, request), `urllib.request.urlopen` and `warden.fetch`.\n",
            hosts = network.hosts.join(", "),
            max = network.max_fetches,
        ));
        if !network.credentials.is_empty() {
            let placeholders: Vec<String> = network
                .credentials
                .iter()
                .map(|c| format!("{} ({})", c.name, c.placeholder))
                .collect();
            text.push_str(&format!(
                "Credentials held by the server: {}. The code never sees their values: write \
                 the placeholder where the value goes (a header, the query or the body) and the \
                 server substitutes it for the credential's own hosts; some are added to \
                 requests automatically.\n",
                placeholders.join(", ")
            ));
        }
    }
    if languages.contains(&Language::Javascript) || languages.contains(&Language::Typescript) {
        text.push_str(
            "\nJavaScript/TypeScript: ES2023 (QuickJS); TypeScript types are stripped before \
             running. Promises are awaited and top-level await works. `console.log` goes to \
             stdout, `console.warn`/`console.error` to stderr. Available: TextEncoder/TextDecoder, \
             URL, URLSearchParams, atob/btoa, structuredClone, setTimeout (timers fire in order \
             without real waiting), crypto.getRandomValues/randomUUID. No modules or imports.\n",
        );
    }
    if languages.contains(&Language::Python) {
        text.push_str(&format!(
            "\nPython: CPython 3.14; runs like a REPL cell (a final expression is the result). \
             `print` goes to stdout. Importable standard library: {}. Nothing else can be \
             imported; `time.sleep` returns at once.\n",
            crate::runtimes::PYTHON_MODULES.join(", ")
        ));
    }
    text.push_str(&format!(
        "\nLimits per call: {timeout} ms wall clock by default (up to {max_timeout} ms via \
         `timeout_ms`), {fuel} units of CPU fuel, {memory:.0} MiB of memory, {stdout:.1} MiB of \
         stdout and of stderr (the rest is cut and `truncated` says so), {code} KiB of code.\n\
         \n\
         The structured result has `status` ({statuses}), `stdout`, `stderr`, `truncated`, \
         `result`, `error` ({{type, message, traceback}}) and `usage`.",
        timeout = limits.default_timeout_ms,
        max_timeout = limits.max_timeout_ms,
        fuel = limits.fuel,
        memory = mib(limits.memory_bytes),
        stdout = mib(limits.stdout_bytes),
        code = limits.max_code_bytes / 1024,
        statuses = Status::ALL.map(Status::as_str).join(", "),
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::CredentialHint;

    const LANGS: [Language; 2] = [Language::Javascript, Language::Typescript];

    #[test]
    fn description_lists_languages_and_limits() {
        let d = description(&Limits::default(), &LANGS, &NetworkSummary::default());
        assert!(d.contains("javascript, typescript"), "{d}");
        assert!(d.contains("5000 ms"), "{d}");
        assert!(d.contains("128 MiB"), "{d}");
        assert!(!d.contains("Python"), "{d}");
        assert!(d.contains("no network,"), "{d}");
        let with_python = description(
            &Limits::default(),
            &[Language::Javascript, Language::Typescript, Language::Python],
            &NetworkSummary::default(),
        );
        assert!(with_python.contains("javascript, typescript, python"));
        assert!(with_python.contains("dataclasses") && with_python.contains("urllib.parse"));
    }

    #[test]
    fn description_lists_hosts_and_credential_names() {
        let network = NetworkSummary {
            hosts: vec!["https://api.github.com".into()],
            credentials: vec![CredentialHint {
                name: "github".into(),
                placeholder: "__WARDEN_SECRET_github__".into(),
            }],
            max_fetches: 7,
        };
        let d = description(&Limits::default(), &LANGS, &network);
        assert!(d.contains("may go only to: https://api.github.com"), "{d}");
        assert!(d.contains("github (__WARDEN_SECRET_github__)"), "{d}");
        assert!(d.contains("Up to 7 requests"), "{d}");
    }

    #[test]
    fn tool_declares_an_output_schema() {
        let t = execute_code_tool(&CallerView {
            limits: Limits::default(),
            languages: LANGS.to_vec(),
            network: NetworkSummary::default(),
        });
        assert_eq!(t.name, TOOL_NAME);
        assert!(t.output_schema.is_some());
        assert_eq!(
            t.input_schema["required"],
            serde_json::json!(["language", "code"])
        );
        assert_eq!(
            t.input_schema["properties"]["language"]["enum"],
            serde_json::json!(["javascript", "typescript"])
        );
    }
}
