//! The `execute_code` tool as a caller sees it: the contract's schemas, and a description
//! generated from what the caller may do, so that a model knows it.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::Value;

use crate::contract::{Language, Status, TOOL_NAME, input_schema, output_schema};
use crate::service::CallerView;

pub fn execute_code_tool(view: &CallerView) -> Tool {
    Tool::new(
        TOOL_NAME,
        description(view),
        Arc::new(as_object(input_schema(&view.arguments, &view.languages))),
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

/// With more tools than this, the description declares these and points to `tools.search`.
const MAX_DECLARED_TOOLS: usize = 20;

pub fn description(view: &CallerView) -> String {
    let (limits, languages, network) = (&view.limits, view.languages.as_slice(), &view.network);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut text = format!(
        "Run a program in a fresh, isolated WebAssembly sandbox and return its output.\n\n\
         Languages: {langs}. The value of the program's last expression is returned as \
         `result` (JSON). Output to stdout and stderr is captured. The optional `input` \
         argument is available to the code as the global `input`. There is no filesystem \
         {files}, no environment, {net}no subprocess and no package installation.\n",
        langs = names(languages).join(", "),
        files = if view.workspace.is_some() {
            "but /workspace"
        } else {
            "at all"
        },
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
             `print` goes to stdout. Importable standard library: {}.",
            crate::runtimes::PYTHON_MODULES.join(", ")
        ));
        if !view.python_packages.is_empty() {
            let packages: Vec<String> = view
                .python_packages
                .iter()
                .map(|p| match p.imports.as_slice() {
                    [only] if only.eq_ignore_ascii_case(&p.name) => {
                        format!("{} {}", p.name, p.version)
                    }
                    imports => format!("{} {} (import {})", p.name, p.version, imports.join(", ")),
                })
                .collect();
            text.push_str(&format!(
                " Packages, ready to import: {}.",
                packages.join(", ")
            ));
        }
        text.push_str(
            " Nothing else can be imported (nothing can be installed); `time.sleep` returns at \
             once.\n",
        );
    }
    if let Some(quota) = &view.workspace {
        text.push_str(&format!(
            "\nFiles: the code reads and writes files under /workspace (relative paths resolve \
             there). Python: open, os, pathlib, shutil, csv, json, zipfile, gzip. \
             JavaScript/TypeScript: a Node-style `fs` (also `require('fs')`): readFileSync/readFile \
             (with an encoding such as 'utf8', 'base64' or 'hex' for text), writeFileSync, appendFileSync, readdirSync, statSync, \
             mkdirSync, rmSync, unlinkSync, existsSync, renameSync, fs.promises. Up to \
             {total:.0} MiB and {count} files, {largest:.0} MiB per file (beyond that a write \
             fails with ENOSPC/EDQUOT/EFBIG). Give the code files with the `files` argument. \
             Files the code writes are listed in the result's `files` (path, size, media_type, \
             sha256) and returned as content: PNG/JPEG/GIF/WebP as images, others as \
             resources. Without a session the workspace is removed when the call ends.\n",
            total = mib(quota.max_bytes),
            count = quota.max_files,
            largest = mib(quota.max_file_bytes),
        ));
    }
    if let Some(sessions) = &view.sessions {
        text.push_str(&format!(
            "\nSessions: `session: \"new\"` opens one; pass the result's `session.id` as \
             `session` to continue in the same interpreter, as in a notebook: Python globals and \
             imports, JavaScript/TypeScript top-level const/let/function/class and globals \
             carry over, and /workspace persists. `session_action: \"reset\"` starts a fresh \
             interpreter first (the workspace stays); `\"close\"` ends the session after the \
             code. A call that times out or runs out of fuel or memory restarts the interpreter \
             (its state is lost, the workspace stays; the result says `session.restarted`). A \
             session ends after {idle} s unused, {life} s in all or {calls} calls; up to {per} \
             per caller. Calls on one session run one at a time. In JavaScript, a later call \
             cannot declare a top-level const/let name again (use var, or assign). Without \
             `session` every call starts fresh.\n",
            idle = sessions.idle_timeout_s,
            life = sessions.max_lifetime_s,
            calls = sessions.max_calls,
            per = sessions.max_per_grant,
        ));
    }
    if let Some(tools) = &view.tools {
        text.push_str(&format!(
            "\nTools from code: the code can call the tools of other MCP servers ({servers}) \
             as functions; every call passes this server's policy. JavaScript/TypeScript: \
             `await tools.<server>.<tool>({{...}})`; Python: `tools.<server>.<tool>(name=value)`. \
             The value is the tool's structured result (or its text). A tool's error raises \
             ToolError (`kind`, `message`); a refusal by the policy raises ToolDenied (`rule`). \
             Up to {max} tool calls per run. `tools.search('words')` finds tools by name and \
             description, `tools.describe('server.tool')` gives schemas and a Python signature.\n",
            servers = tools.servers.join(", "),
            max = tools.max_calls,
        ));
        let shown = tools.declarations.len().min(MAX_DECLARED_TOOLS);
        for declaration in &tools.declarations[..shown] {
            text.push_str(declaration);
            text.push('\n');
        }
        if tools.declarations.len() > shown {
            text.push_str(&format!(
                "(and {} more: use tools.search)\n",
                tools.declarations.len() - shown
            ));
        }
    }
    if let Some(tasks) = &view.tasks {
        text.push_str(&format!(
            "\nLong runs: a client that declares the MCP tasks extension gets each run as a \
             task (answered at once with a task id; poll tasks/get, which shows the last line \
             the program printed; tasks/cancel stops it), with up to {max_timeout} ms wall clock \
             (default {timeout} ms) and {fuel} units of fuel; up to {per} tasks per caller at \
             once; a result stays readable for {keep} s. Python programs print with \
             flush=True to report progress.\n",
            max_timeout = tasks.max_timeout_ms,
            timeout = tasks.default_timeout_ms,
            fuel = tasks.fuel,
            per = tasks.max_per_grant,
            keep = tasks.keep_results_s,
        ));
    }
    text.push_str(&format!(
        "\nLimits per call: {timeout} ms wall clock by default (up to {max_timeout} ms via \
         `timeout_ms`), {fuel} units of CPU fuel, {memory:.0} MiB of memory, {stdout:.1} MiB of \
         stdout and of stderr (the rest is cut and `truncated` says so), {code} KiB of code.\n\
         \n\
         The structured result has `status` ({statuses}), `stdout`, `stderr`, `truncated`, \
         `result`, `error` ({{type, message, traceback}}), `usage`, and `files` and `session` \
         when they apply.",
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
    use crate::policy::Limits;
    use crate::runtimes::PythonPackage;
    use crate::service::CredentialHint;
    use crate::service::NetworkSummary;

    const LANGS: [Language; 2] = [Language::Javascript, Language::Typescript];

    fn view(languages: &[Language], network: NetworkSummary) -> CallerView {
        CallerView {
            limits: Limits::default(),
            arguments: Limits::default().argument_limits(),
            languages: languages.to_vec(),
            network,
            workspace: None,
            sessions: None,
            tools: None,
            python_packages: Vec::new(),
            tasks: None,
        }
    }

    #[test]
    fn description_lists_languages_and_limits() {
        let d = description(&view(&LANGS, NetworkSummary::default()));
        assert!(d.contains("javascript, typescript"), "{d}");
        assert!(d.contains("5000 ms"), "{d}");
        assert!(d.contains("128 MiB"), "{d}");
        assert!(!d.contains("Python"), "{d}");
        assert!(d.contains("no network,"), "{d}");
        assert!(
            d.contains("no filesystem at all") && !d.contains("Sessions:"),
            "{d}"
        );
        let mut full = view(&LANGS, NetworkSummary::default());
        full.workspace = Some(crate::service::WorkspaceSummary {
            max_bytes: 64 << 20,
            max_files: 1000,
            max_file_bytes: 16 << 20,
        });
        full.sessions = Some(crate::policy::SessionSettings::default());
        let d = description(&full);
        assert!(
            d.contains("but /workspace") && d.contains("64 MiB and 1000 files"),
            "{d}"
        );
        assert!(
            d.contains("`session: \"new\"`") && d.contains("600 s unused"),
            "{d}"
        );
        let with_python = description(&view(
            &[Language::Javascript, Language::Typescript, Language::Python],
            NetworkSummary::default(),
        ));
        assert!(with_python.contains("javascript, typescript, python"));
        assert!(with_python.contains("dataclasses") && with_python.contains("urllib.parse"));
    }

    #[test]
    fn description_names_the_python_packages_and_how_to_import_them() {
        let package = |name: &str, version: &str, imports: &[&str]| PythonPackage {
            name: name.into(),
            version: version.into(),
            license: "MIT".into(),
            imports: imports.iter().map(|i| i.to_string()).collect(),
        };
        let mut v = view(&[Language::Python], NetworkSummary::default());
        let bare = description(&v);
        assert!(!bare.contains("Packages"), "{bare}");
        v.python_packages = vec![
            package("PyYAML", "6.0.4", &["yaml"]),
            package("tabulate", "0.10.0", &["tabulate"]),
        ];
        let d = description(&v);
        assert!(
            d.contains("Packages, ready to import: PyYAML 6.0.4 (import yaml), tabulate 0.10.0."),
            "{d}"
        );
        let js = description(&CallerView {
            python_packages: v.python_packages.clone(),
            ..view(&LANGS, NetworkSummary::default())
        });
        assert!(!js.contains("PyYAML"), "{js}");
    }

    #[test]
    fn description_offers_tasks_with_their_limits_only_when_enabled() {
        let without = description(&view(&LANGS, NetworkSummary::default()));
        assert!(!without.contains("tasks extension"), "{without}");
        let with = description(&CallerView {
            tasks: Some(crate::policy::TaskSettings::default()),
            ..view(&LANGS, NetworkSummary::default())
        });
        assert!(with.contains("up to 900000 ms wall clock"), "{with}");
        assert!(with.contains("up to 4 tasks per caller"), "{with}");
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
        let d = description(&view(&LANGS, network));
        assert!(d.contains("may go only to: https://api.github.com"), "{d}");
        assert!(d.contains("github (__WARDEN_SECRET_github__)"), "{d}");
        assert!(d.contains("Up to 7 requests"), "{d}");
    }

    #[test]
    fn tool_declares_an_output_schema() {
        let t = execute_code_tool(&view(&LANGS, NetworkSummary::default()));
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
