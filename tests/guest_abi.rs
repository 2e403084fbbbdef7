//! The sandbox core against hand-written guests (WAT) that abuse the `warden` host imports and
//! WASI, or exhaust each limit. Whatever a guest does, the host returns a status, and the next
//! run of another guest in the same sandbox works.

use std::time::{Duration, Instant};

use warden::contract::ExecutionResult;
use warden::runtimes::JAVASCRIPT_GUEST;
use warden::sandbox::{
    CancelFlag, GuestBytes, GuestForm, GuestProgram, RunLimits, RunRequest, Sandbox, SandboxConfig,
};

const IMPORTS: &str = r#"
  (import "warden" "request_len" (func $request_len (param i32) (result i32)))
  (import "warden" "request_read" (func $request_read (param i32 i32)))
  (import "warden" "output" (func $output (param i32 i32 i32) (result i32)))
  (import "warden" "set_result" (func $set_result (param i32 i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $sock_accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
"#;

/// A guest whose `_start` body is `body`, with `ok7` = `{"ok":true,"result":7}` at offset 1024.
fn guest(name: &'static str, body: &str) -> &'static GuestProgram {
    let wat = format!(
        r#"(module {IMPORTS}
          (memory (export "memory") 2)
          (data (i32.const 1024) "{{\22ok\22:true,\22result\22:7}}")
          (data (i32.const 2048) "hello\0a")
          (data (i32.const 3072) "not json")
          (func $recurse (param i32) (result i32) (call $recurse (i32.add (local.get 0) (i32.const 1))))
          (func (export "_start") {body}))"#
    );
    let wasm = wat::parse_str(&wat).unwrap_or_else(|e| panic!("{name}: {e}"));
    Box::leak(Box::new(GuestProgram {
        name,
        form: GuestForm::CoreModule,
        wasm: GuestBytes::Plain(Box::leak(wasm.into_boxed_slice())),
    }))
}

const REPORT_7: &str = "(call $set_result (i32.const 1024) (i32.const 22))";

fn request(fuel: u64, timeout: Duration) -> RunRequest {
    RunRequest {
        source: "source".into(),
        input_json: "null".into(),
        filename: "main.wat".into(),
        limits: RunLimits {
            fuel,
            memory_bytes: 4 << 20,
            stdout_bytes: 10,
            stderr_bytes: 10,
            max_result_bytes: 64,
            deadline: Instant::now() + timeout,
        },
        cancel: CancelFlag::new(),
        fetch: Default::default(),
        workspace: Default::default(),
        tools: Default::default(),
        output: Default::default(),
    }
}

fn run_all(cases: &[(&'static GuestProgram, RunRequest)]) -> Vec<ExecutionResult> {
    let programs: Vec<&GuestProgram> = cases.iter().map(|(g, _)| *g).collect();
    let config = SandboxConfig {
        wasm_stack_bytes: 256 * 1024,
        max_memory_bytes: 4 << 20,
        max_concurrent_runs: 1,
        kept_instances: 0,
        spares_per_guest: 1,
        cache_dir: None,
    };
    let sandbox = Sandbox::new(&config, &programs).unwrap();
    let healthy = guest("healthy", REPORT_7);
    let healthy_sandbox = Sandbox::new(&config, &[healthy]).unwrap();
    cases
        .iter()
        .map(|(g, r)| {
            let result = sandbox.run(g, r.clone());
            // The host is unaffected: a well-behaved guest still runs.
            let after = healthy_sandbox.run(healthy, request(1_000_000, Duration::from_secs(5)));
            assert_eq!(after.result, serde_json::json!(7), "after {}", g.name);
            result
        })
        .collect()
}

fn one(name: &'static str, body: &str) -> ExecutionResult {
    run_all(&[(
        guest(name, body),
        request(100_000_000, Duration::from_secs(5)),
    )])
    .remove(0)
}

fn assert_status(r: &ExecutionResult, status: &str, error_type: &str) {
    assert_eq!(r.status.as_str(), status, "{r:#?}");
    assert_eq!(
        r.error.as_ref().map(|e| e.kind.as_str()),
        Some(error_type),
        "{r:#?}"
    );
}

#[test]
fn a_well_behaved_guest_reports_its_result_and_output() {
    let r = one(
        "ok",
        &format!("(drop (call $output (i32.const 1) (i32.const 2048) (i32.const 6))) {REPORT_7}"),
    );
    assert_eq!(r.status.as_str(), "ok");
    assert_eq!(r.result, serde_json::json!(7));
    assert_eq!(r.stdout, "hello\n");
    assert!(r.usage.fuel > 0 && r.usage.memory_peak_bytes >= 2 * 65536);
}

#[test]
fn output_beyond_the_cap_is_truncated_and_the_guest_is_told() {
    // Cap is 10 bytes: the second 6-byte write fills it, and output returns 0.
    let r = one(
        "flood",
        &format!(
            "(if (i32.eqz (call $output (i32.const 1) (i32.const 2048) (i32.const 6))) (then unreachable))
             (if (call $output (i32.const 1) (i32.const 2048) (i32.const 6)) (then unreachable))
             {REPORT_7}"
        ),
    );
    assert_eq!(r.status.as_str(), "ok", "{r:#?}");
    assert_eq!(r.stdout, "hello\nhell");
    assert!(r.truncated.stdout && !r.truncated.stderr);
}

#[test]
fn garbage_pointers_and_lengths_are_contained() {
    for (name, body) in [
        (
            "output-oob",
            "(drop (call $output (i32.const 1) (i32.const -16) (i32.const 100)))",
        ),
        (
            "output-huge-len",
            "(drop (call $output (i32.const 2) (i32.const 0) (i32.const -1)))",
        ),
        (
            "output-bad-stream",
            "(drop (call $output (i32.const 7) (i32.const 0) (i32.const 1)))",
        ),
        (
            "request-read-oob",
            "(call $request_read (i32.const 0) (i32.const 131070))",
        ),
        (
            "request-unknown-field",
            "(drop (call $request_len (i32.const 99)))",
        ),
        (
            "result-oob",
            "(call $set_result (i32.const 131000) (i32.const 1000))",
        ),
    ] {
        let r = one(name, body);
        assert_status(&r, "error", "InternalError");
        assert!(
            r.error.unwrap().message.contains("the run failed"),
            "{name}"
        );
    }
}

#[test]
fn results_the_host_cannot_accept() {
    assert_status(&one("no-result", ""), "error", "InternalError");
    assert_status(
        &one(
            "malformed",
            "(call $set_result (i32.const 3072) (i32.const 8))",
        ),
        "error",
        "InternalError",
    );
    assert_status(
        &one(
            "too-large",
            "(call $set_result (i32.const 0) (i32.const 65))",
        ),
        "error",
        "ResultTooLarge",
    );
}

#[test]
fn traps_and_exits_become_statuses() {
    assert_status(&one("unreachable", "unreachable"), "error", "GuestCrash");
    let r = one("exit-3", "(call $proc_exit (i32.const 3))");
    assert_status(&r, "error", "Exit");
    assert!(r.error.unwrap().message.contains("code 3"));
    let r = one(
        "exit-0",
        &format!("{REPORT_7} (call $proc_exit (i32.const 0))"),
    );
    assert_eq!(
        r.result,
        serde_json::json!(7),
        "exit(0) after a result is a normal end"
    );
    assert_status(
        &one("recursion", "(drop (call $recurse (i32.const 0)))"),
        "error",
        "RangeError",
    );
}

#[test]
fn limits_end_runs_with_their_status() {
    let spin = guest("spin", "(loop $l (br $l))");
    let grow = guest(
        "grow",
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable",
    );
    let results = run_all(&[
        (spin, request(1_000_000, Duration::from_secs(30))),
        (spin, request(u64::MAX / 2, Duration::from_millis(200))),
        (grow, request(100_000_000, Duration::from_secs(5))),
    ]);
    assert_status(&results[0], "out_of_fuel", "OutOfFuel");
    assert_status(&results[1], "timeout", "Timeout");
    assert!(results[1].usage.wall_ms < 2000, "{:?}", results[1].usage);
    assert_status(&results[2], "out_of_memory", "OutOfMemory");
    assert!(results[2].usage.memory_peak_bytes <= 4 << 20);
}

#[test]
fn cancellation_stops_a_spinning_guest() {
    let spin = guest("spin-cancel", "(loop $l (br $l))");
    let req = request(u64::MAX / 2, Duration::from_secs(30));
    let flag = req.cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        flag.cancel();
    });
    let started = Instant::now();
    let r = run_all(&[(spin, req)]).remove(0);
    assert_status(&r, "error", "Cancelled");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn wasi_offers_no_preopens_environment_arguments_or_sockets() {
    // Each check that finds something leaks a distinct trap; all clear reports the result.
    let body = format!(
        "(if (i32.eqz (call $fd_prestat_get (i32.const 3) (i32.const 0))) (then unreachable))
         (drop (call $environ_sizes_get (i32.const 0) (i32.const 4)))
         (if (i32.load (i32.const 0)) (then unreachable))
         (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
         (if (i32.ne (i32.load (i32.const 0)) (i32.const 1)) (then unreachable))
         (if (i32.eqz (call $sock_accept (i32.const 3) (i32.const 0) (i32.const 0))) (then unreachable))
         {REPORT_7}"
    );
    let r = one("wasi-probe", &body);
    assert_eq!(r.status.as_str(), "ok", "{r:#?}");
}

#[test]
fn a_guest_cannot_sleep_past_its_deadline() {
    // One clock subscription (relative, 30 s) at offset 0; poll_oneoff must not block.
    let body = format!(
        "(i32.store8 (i32.const 8) (i32.const 0))
         (i32.store (i32.const 16) (i32.const 1))
         (i64.store (i32.const 24) (i64.const 30000000000))
         (if (i32.ne (call $poll_oneoff (i32.const 0) (i32.const 256) (i32.const 1) (i32.const 512))
                     (i32.const 58))
           (then unreachable))
         {REPORT_7}"
    );
    let started = Instant::now();
    let r = run_all(&[(
        guest("sleeper", &body),
        request(1_000_000, Duration::from_millis(500)),
    )])
    .remove(0);
    assert_eq!(r.status.as_str(), "ok", "{r:#?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_memory_limit_below_the_guests_own_size_fails_at_start_up() {
    let config = SandboxConfig {
        wasm_stack_bytes: 256 * 1024,
        max_memory_bytes: 64 * 1024,
        max_concurrent_runs: 1,
        kept_instances: 0,
        spares_per_guest: 1,
        cache_dir: None,
    };
    let e = Sandbox::new(&config, &[guest("two-pages", REPORT_7)])
        .err()
        .unwrap();
    // Either the pool (which sizes slots by the limit) or the limiter refuses it, clearly.
    let message = format!("{e:#}");
    assert!(
        message.contains("too small") || message.contains("exceeds the limit"),
        "{message}"
    );
}

#[test]
fn a_guest_the_sandbox_did_not_load_is_an_error_not_a_panic() {
    let config = SandboxConfig {
        wasm_stack_bytes: 256 * 1024,
        max_memory_bytes: 4 << 20,
        max_concurrent_runs: 1,
        kept_instances: 0,
        spares_per_guest: 1,
        cache_dir: None,
    };
    let sandbox = Sandbox::new(&config, &[guest("only", REPORT_7)]).unwrap();
    let r = sandbox.run(
        &JAVASCRIPT_GUEST,
        request(1_000_000, Duration::from_secs(1)),
    );
    assert_status(&r, "error", "InternalError");
}
