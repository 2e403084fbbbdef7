//! `warden run` and `warden prepare`: output, `--json`, stdin, exit codes, policy errors, the cache.

mod common;

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};

/// `warden <args> --cache-dir <the tests' cache>` with piped stdio, the tests' state directory,
/// no inherited `WARDEN_PERFMAP`, and `envs`.
fn spawn_warden(args: &[&str], envs: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .env("WARDEN_STATE_DIR", common::state_dir())
        .env_remove("WARDEN_PERFMAP")
        .envs(envs.iter().copied())
        .args(args)
        .arg("--cache-dir")
        .arg(common::cache_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Writes `stdin` to the child and waits for its output.
fn finish(mut child: Child, stdin: &str) -> Output {
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn warden(args: &[&str], stdin: &str) -> Output {
    finish(spawn_warden(args, &[]), stdin)
}

fn warden_policy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .env("WARDEN_STATE_DIR", common::state_dir())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn runs_a_program_from_stdin_and_prints_output_then_result() {
    let out = warden(
        &["run", "--language", "js", "-"],
        "console.log('hi'); console.error('warn'); ({n: 1})",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n{\"n\":1}\n");
    assert!(text(&out.stderr).contains("warn"));
}

#[test]
fn json_flag_prints_the_structured_result() {
    let out = warden(
        &["run", "-l", "ts", "--json", "--input", "{\"x\": 2}", "-"],
        "const y: number = input.x * 21; y",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["result"], 42);
    assert!(v["usage"]["fuel"].as_u64().unwrap() > 0);
}

#[test]
fn non_ok_status_gives_a_non_zero_exit() {
    let out = warden(&["run", "-l", "javascript", "-"], "throw new Error('nope')");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("status: error") && err.contains("Error: nope"),
        "{err}"
    );
    let out = warden(
        &["run", "-l", "js", "--timeout-ms", "100", "-"],
        "while(true){}",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("status: timeout")
            || text(&out.stderr).contains("status: out_of_fuel")
    );
}

#[test]
fn reads_a_program_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.js");
    std::fs::write(&path, "[1, 2, 3].length").unwrap();
    let out = warden(&["run", "-l", "js", path.to_str().unwrap()], "");
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "3\n");
}

#[test]
fn policy_limits_apply_and_broken_policies_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[limits]\nmax_code_bytes = 5\n").unwrap();
    let out = warden(
        &[
            "run",
            "-l",
            "js",
            "--json",
            "--policy",
            good.to_str().unwrap(),
            "-",
        ],
        "1 + 1 + 1",
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "invalid_arguments");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[limits]\nfuel = 'lots'\n").unwrap();
    let out = warden(
        &["run", "-l", "js", "--policy", bad.to_str().unwrap(), "-"],
        "1",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("line 2"), "{err}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = warden(&["run", "-l", "js", "/nonexistent/prog.js"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("/nonexistent/prog.js"));
}

#[test]
fn runs_python_from_stdin() {
    let out = warden(
        &["run", "--language", "python", "-"],
        "print('hi')\n{'n': 6 * 7}",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n{\"n\":42}\n");
    let out = warden(&["run", "-l", "py", "-"], "import os\nos._exit(4)");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("code 4"));
}

#[test]
fn policy_check_prints_the_effective_policy_and_rejects_bad_ones() {
    let out = warden_policy(&["policy", "check", "policies/locked-down.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("default = \"deny\"") && printed.contains("wasm_stack_bytes = 1048576"),
        "{printed}"
    );
    let out = warden_policy(&["policy", "check", "policies/policylayer.json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[tools.execute_code]\nacton = \"allow\"\n").unwrap();
    let out = warden_policy(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("line 2") && err.contains("acton"),
        "{err}"
    );
}

#[test]
fn policy_check_shows_where_secrets_live_never_more() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.toml");
    let hash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";
    std::fs::write(
        &file,
        format!(
            "[credentials.github]\nenv = \"GITHUB_TOKEN\"\nhosts = [\"https://api.github.com\"]\n\
             inject = {{ header = \"Authorization\", value = \"Bearer {{secret}}\" }}\n\
             [grants.ci]\ntoken_sha256 = \"{hash}\"\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .env("WARDEN_STATE_DIR", common::state_dir())
        .args(["policy", "check", file.to_str().unwrap()])
        .env("GITHUB_TOKEN", "ghp_value_that_must_not_print")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("GITHUB_TOKEN") && printed.contains("<redacted>"),
        "{printed}"
    );
    assert!(
        !printed.contains(hash) && !printed.contains("ghp_value"),
        "{printed}"
    );

    std::fs::write(
        &file,
        "[network]\nallow = [\n  \"https://ok.example\",\n  \"gopher://x\",\n]\n",
    )
    .unwrap();
    let out = warden_policy(&["policy", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("p.toml") && err.contains("line 4, column 3") && err.contains("gopher"),
        "{err}"
    );
}

#[test]
fn policy_explain_prints_the_decision_trace() {
    let out = warden_policy(&[
        "policy",
        "explain",
        "policies/locked-down.toml",
        "--args",
        r#"{"language": "javascript", "code": "1"}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let trace = text(&out.stdout);
    assert!(
        trace.contains("tools.execute_code.languages") && trace.contains("decision: deny"),
        "{trace}"
    );
    let out = warden_policy(&[
        "policy",
        "explain",
        "policies/locked-down.toml",
        "--args",
        r#"{"code": 1}"#,
    ]);
    assert!(text(&out.stdout).contains("invalid_arguments"));
}

#[test]
fn gateway_policies_check_and_explain_as_at_the_gateway() {
    // PolicyLayer's recommended policy: the listed tool is allowed, and counted.
    let out = warden_policy(&[
        "policy",
        "explain",
        "policies/policylayer-seed.json",
        "--args",
        r#"{"language": "javascript", "code": "1"}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let trace = text(&out.stdout);
    assert!(
        trace.contains("verdict: allow")
            && trace.contains("counter `execute_code_rate/grant/local` allows 10 per Minute")
            && trace.ends_with("decision: allow (if the counters have room)\n"),
        "{trace}"
    );
    let out = warden_policy(&[
        "policy",
        "explain",
        "policies/intercept.yaml",
        "--args",
        r#"{"language": "python", "code": "eval('1')", "timeout_ms": 1000}"#,
    ]);
    let trace = text(&out.stdout);
    assert!(
        trace.contains("verdict: denied (rule `no eval`: eval is not allowed)"),
        "{trace}"
    );
    // A published Intercept policy for another server loads; its tools are noted, not dropped.
    let out = warden_policy(&[
        "policy",
        "check",
        "tests/fixtures/intercept/published/github.yaml",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("[tools.actions_get]"));
    assert!(
        text(&out.stderr).contains("note: tools this server does not have"),
        "{}",
        text(&out.stderr)
    );
    // Errors are listed, each at its line and column.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: \"1\"\ntools:\n  t:\n    rules:\n      - action: nope\n",
    )
    .unwrap();
    let out = warden_policy(&["policy", "check", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(
        e.contains("line 5, column 9: tools.t.rules[0]: rule must have a name")
            && e.contains("line 5, column 9: tools.t.rules[0]: action must be \"evaluate\" or \"deny\", got \"nope\""),
        "{e}"
    );
}

/// The largest wasm stack a policy may set: deep recursion in either language still ends in a
/// clean result (the server's threads are sized for it), and one more byte is refused.
#[test]
fn the_largest_wasm_stack_a_policy_allows_never_overflows_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("deep.toml");
    std::fs::write(&policy, "[limits]\nwasm_stack_bytes = 8388608\n").unwrap();
    for (language, code) in [
        ("js", "function f(n) { return f(n + 1) + 1 }\nf(0)"),
        // CPython 3.14's calls between Python functions use no C stack (unbounded recursion
        // ends in memory, and where depends on the allocator), so the Python program recurses
        // in C where CPython does not count: dropping a chain of a million `map` iterators.
        (
            "py",
            "it = iter([])\nfor _ in range(10**6):\n    it = map(abs, it)\ndel it",
        ),
    ] {
        let out = warden(
            &[
                "run",
                "-l",
                language,
                "--json",
                "--policy",
                policy.to_str().unwrap(),
                "-",
            ],
            code,
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{language}: {err}");
        assert!(!err.contains("overflowed its stack"), "{language}: {err}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], "error", "{language}: {v}");
    }
    std::fs::write(&policy, "[limits]\nwasm_stack_bytes = 8388609\n").unwrap();
    let out = warden(
        &["run", "-l", "js", "--policy", policy.to_str().unwrap(), "-"],
        "1",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("may not exceed 8 MiB"));
}

#[test]
fn prepare_fills_the_cache_that_the_next_start_loads() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let prepare = Command::new(env!("CARGO_BIN_EXE_warden"))
        .env("WARDEN_STATE_DIR", common::state_dir())
        .args(["prepare", "--cache-dir"])
        .arg(&cache)
        .output()
        .unwrap();
    assert!(prepare.status.success(), "{}", text(&prepare.stderr));
    let entries = || {
        let mut found: Vec<(String, std::time::SystemTime)> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().unwrap().modified().unwrap(),
                )
            })
            .collect();
        found.sort();
        found
    };
    let prepared = entries();
    let names: Vec<&str> = prepared.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names[0].starts_with("javascript-") && names[1].starts_with("python-"),
        "{names:?}"
    );
    // A start with the same engine settings loads them: nothing is compiled or rewritten.
    let run = Command::new(env!("CARGO_BIN_EXE_warden"))
        .env("WARDEN_STATE_DIR", common::state_dir())
        .args(["run", "-l", "py", "--cache-dir"])
        .arg(&cache)
        .arg("-")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(entries(), prepared);

    let no_cache = Command::new(env!("CARGO_BIN_EXE_warden"))
        .env("WARDEN_STATE_DIR", common::state_dir())
        .args(["prepare", "--no-cache"])
        .output()
        .unwrap();
    assert_eq!(no_cache.status.code(), Some(2));
    assert!(text(&no_cache.stderr).contains("nothing to prepare without a cache"));
}

/// stdin as a regular file (not a pipe): the server reads it with tokio's blocking stream
/// instead of the reactor (mcp/std_streams.rs), answers every message, and ends at its end.
#[test]
fn serves_stdio_from_a_file_as_well_as_from_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let messages = dir.path().join("messages.jsonl");
    std::fs::write(
        &messages,
        concat!(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"file","version":"0"}}}"#,
            "\n",
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            "\n",
            r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
            "\n",
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .env("WARDEN_STATE_DIR", common::state_dir())
        .args(["serve", "--cache-dir"])
        .arg(common::cache_dir())
        .stdin(std::fs::File::open(&messages).unwrap())
        .output()
        .unwrap();
    let replies: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(replies.len(), 2, "{replies:?} {}", text(&out.stderr));
    assert_eq!(replies[0]["id"], 1);
    assert!(
        replies[0]["result"]["serverInfo"].is_object(),
        "{replies:?}"
    );
    assert_eq!(
        replies[1],
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "result": {}})
    );
}

/// MCP clients keep a server's stderr in log files: the log is plain text there, without the
/// terminal's colour codes.
#[test]
fn the_log_has_no_terminal_escapes_when_stderr_is_not_a_terminal() {
    let out = finish(spawn_warden(&["serve"], &[]), "");
    let log = text(&out.stderr);
    assert!(log.contains("serving MCP on stdio"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in the log: {log:?}");
}

/// `WARDEN_PERFMAP=1` names the guests' compiled functions for perf; without it no map is written.
#[test]
fn perf_map_names_guest_functions_only_when_asked() {
    let run = |perfmap: Option<&str>| {
        let envs: Vec<(&str, &str)> = perfmap.map(|v| ("WARDEN_PERFMAP", v)).into_iter().collect();
        // File times come from a coarse clock: a second's margin.
        let started = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let child = spawn_warden(&["run", "--language", "python", "-"], &envs);
        let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        let out = finish(child, "print(6 * 7)");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "42\n");
        // A map older than the process is another process's that had the same pid.
        let fresh = std::fs::metadata(&map)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified >= started);
        let names = fresh.then(|| std::fs::read_to_string(&map).ok()).flatten();
        if fresh {
            let _ = std::fs::remove_file(&map);
        }
        names
    };
    let names = run(Some("1")).expect("a perf map with WARDEN_PERFMAP=1");
    assert!(
        names
            .lines()
            .any(|line| line.contains("_PyEval_EvalFrameDefault")),
        "the map names CPython's functions"
    );
    assert_eq!(run(None), None, "no perf map by default");
    assert_eq!(run(Some("0")), None, "only 1 turns it on");
}
