//! `wasm-smith` modules under Warden's engine configuration and run limits
//! (`Sandbox::prepare_core_module` / `Sandbox::run_core_module`: the JavaScript guest's linker,
//! WASI and `warden` imports included, the same store limits and outcome mapping), on the kind
//! of thread the server runs guests on (tokio's blocking pool, built like `main.rs`'s).
//!
//! Two engine configurations, both built the way `Service::new` builds its sandbox from a
//! policy's `[limits]`: the defaults, and the largest `wasm_stack_bytes` that a policy may set
//! (it passes `Policy::parse`) and with which the sandbox still starts. Per input: the
//! configuration, the run's fuel, memory cap and deadline, and the module: `wasm-smith`, with
//! swarm testing over the wasm proposals (SIMD, GC, exceptions, tail calls, memory64, ...), a
//! `_start` and a `memory` export of a chosen size, and imports drawn from the guest's.
//!
//! Asserts:
//! - the host never panics nor crashes (a stack overflow on the host thread aborts the fuzzer
//!   like it would abort the server);
//! - the run returns within its deadline plus a fixed slack (the fuel-sliced deadline check works
//!   whatever the module does, host calls included), and a timeout is not reported before the deadline;
//! - memory: the limiter's peak and the module's exported memories stay within the run's cap,
//!   and the limiter saw every byte the memories hold;
//! - fuel: never more than the budget; `out_of_fuel` means the budget is spent;
//! - nothing survives a run: the same module run again (when neither run met its deadline)
//!   ends the same way, with the same output, result, fuel and memory;
//! - after a failed run, a well-behaved module still runs.

#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use warden::contract::Status;
use warden::policy::{Limits, Policy};
use warden::sandbox::{
    CancelFlag, CoreModuleGuest, CoreModuleRun, FetchCapability, RunLimits, RunRequest, Sandbox,
    SandboxConfig,
};

const SLACK: Duration = Duration::from_millis(1500);

/// The imports a generated module may use: the JavaScript guest's `warden` imports and some
/// of WASI's (not the clocks nor randomness, so that a run can be replayed exactly).
const IMPORTS: &str = r#"(module
  (import "warden" "request_len" (func (param i32) (result i32)))
  (import "warden" "request_read" (func (param i32 i32)))
  (import "warden" "output" (func (param i32 i32 i32) (result i32)))
  (import "warden" "set_result" (func (param i32 i32)))
  (import "warden" "fetch" (func (param i32 i32) (result i32)))
  (import "warden" "fetch_read" (func (param i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
)"#;

/// Writes "ok\n", reports `{"ok":true,"result":7}`.
const CANARY: &str = r#"(module
  (import "warden" "output" (func $output (param i32 i32 i32) (result i32)))
  (import "warden" "set_result" (func $set_result (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{\22ok\22:true,\22result\22:7}")
  (data (i32.const 64) "ok\0a")
  (func (export "_start")
    (drop (call $output (i32.const 1) (i32.const 64) (i32.const 3)))
    (call $set_result (i32.const 16) (i32.const 22))))"#;

struct Engine {
    name: &'static str,
    limits: Limits,
    sandbox: Arc<Sandbox>,
    canary: Arc<CoreModuleGuest>,
}

/// A sandbox for `policy`, configured the way `Service::new` configures its own.
fn engine(name: &'static str, policy: &Policy) -> Result<Engine, String> {
    let limits = policy.limits.clone();
    let config = SandboxConfig {
        wasm_stack_bytes: usize::try_from(limits.wasm_stack_bytes).unwrap(),
        max_memory_bytes: usize::try_from(limits.memory_bytes).unwrap(),
        max_concurrent_runs: limits.concurrency(),
        kept_instances: 0,
        spares_per_guest: 0,
        cache_dir: None,
    };
    let sandbox = Sandbox::new(&config, &[]).map_err(|e| format!("{e:#}"))?;
    let canary = sandbox
        .prepare_core_module(&wat::parse_str(CANARY).unwrap())
        .expect("the canary module links");
    Ok(Engine {
        name,
        limits,
        sandbox: Arc::new(sandbox),
        canary: Arc::new(canary),
    })
}

/// `WARDEN_FUZZ_VERBOSE=1`: print how each run ended (to see what the fuzzer reaches).
static VERBOSE: LazyLock<bool> =
    LazyLock::new(|| std::env::var_os("WARDEN_FUZZ_VERBOSE").is_some_and(|v| v != "0"));

/// The runtime `main.rs` builds (guests run on its blocking pool, threads sized alike).
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(warden::policy::GUEST_THREAD_STACK_BYTES)
        .enable_all()
        .build()
        .unwrap()
});

static DEFAULT: LazyLock<Engine> = LazyLock::new(|| {
    let policy = Policy::parse("[limits]\nmax_concurrent_runs = 1\n", "defaults").unwrap();
    engine("default limits", &policy).expect("the default sandbox starts")
});

/// The largest `wasm_stack_bytes` (a power of two) that a policy may set and with which the
/// sandbox starts.
static LARGEST_STACK: LazyLock<Engine> = LazyLock::new(|| {
    let mut stack: u64 = 1 << 40;
    loop {
        let text = format!("[limits]\nmax_concurrent_runs = 1\nwasm_stack_bytes = {stack}\n");
        if let Ok(policy) = Policy::parse(&text, "largest stack")
            && let Ok(engine) = engine("the largest wasm stack a policy may set", &policy)
        {
            return engine;
        }
        assert!(stack > 4096, "no wasm_stack_bytes starts a sandbox");
        stack /= 2;
    }
});

#[derive(Debug)]
struct Input {
    largest_stack: bool,
    fuel: u64,
    memory_cap: u64,
    timeout: Duration,
    wasm: Vec<u8>,
    source: Vec<u8>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let largest_stack = u.ratio(1, 4)?;
        let fuel = *u.choose(&[
            1_000,
            100_000,
            10_000_000,
            1_000_000_000,
            // Effectively unlimited: only the deadline stops a spinning module.
            u64::MAX / 2,
        ])?;
        let memory_cap = *u.choose(&[0, 65_536, 1 << 20, 8 << 20, 128 << 20])?;
        let timeout = Duration::from_millis(*u.choose(&[1, 10, 100, 500])?);
        // A few bytes only: what is left goes to the module.
        let source_len = u.int_in_range(0..=16usize)?;
        let source = u.bytes(source_len.min(u.len()))?.to_vec();
        let min_pages: u64 = *u.choose(&[0, 1, 2, 16, 128, 2048, 4096])?;
        let max_pages: Option<u64> = if u.arbitrary()? {
            Some(min_pages + u64::from(u.int_in_range(0..=64u8)?))
        } else {
            None
        };
        let exports = format!(
            "(module (memory (export \"memory\") {min_pages} {}) (func (export \"_start\")))",
            max_pages.map(|m| m.to_string()).unwrap_or_default()
        );
        // Swarm testing over the proposals (a couple of bytes), fixed sizes otherwise: the
        // rest of the input goes to the code.
        let features: u16 = u.arbitrary()?;
        let on = |bit: u32| features & (1 << bit) != 0;
        let config = wasm_smith::Config {
            available_imports: Some(wat::parse_str(IMPORTS).unwrap()),
            exports: Some(wat::parse_str(&exports).unwrap()),
            // What Warden's engine turns off (threads), or never turns on.
            threads_enabled: false,
            shared_everything_threads_enabled: false,
            custom_page_sizes_enabled: false,
            custom_descriptors_enabled: false,
            wide_arithmetic_enabled: false,
            simd_enabled: on(0),
            relaxed_simd_enabled: on(0) && on(1),
            gc_enabled: on(2),
            exceptions_enabled: on(3),
            tail_call_enabled: on(4),
            memory64_enabled: on(5),
            bulk_memory_enabled: !on(6),
            reference_types_enabled: !on(7),
            multi_value_enabled: !on(8),
            disallow_traps: on(9),
            allow_floats: !on(10),
            // Small enough to compile in milliseconds.
            max_funcs: 8,
            max_instructions: 200,
            max_types: 16,
            max_globals: 8,
            max_data_segments: 4,
            max_element_segments: 4,
            max_elements: 64,
            max_memories: if on(11) { 2 } else { 1 },
            max_tables: 2,
            max_tags: 4,
            max_exports: 8,
            max_nesting_depth: 6,
            max_table_elements: 1 << 16,
            ..wasm_smith::Config::default()
        };
        let module = wasm_smith::Module::new(config, u)?;
        Ok(Input {
            largest_stack,
            fuel,
            memory_cap,
            timeout,
            wasm: module.to_bytes(),
            source,
        })
    }
}

fn request(limits: &RunLimits, source: &[u8]) -> RunRequest {
    RunRequest {
        source: String::from_utf8_lossy(source).into_owned(),
        input_json: "{\"n\":1}".into(),
        filename: "main.wasm".into(),
        limits: limits.clone(),
        cancel: CancelFlag::new(),
        fetch: FetchCapability::default(),
        workspace: Default::default(),
        tools: Default::default(),
        output: Default::default(),
    }
}

/// Runs on the runtime's blocking pool, as the `Service` runs guests. Returns the run and the
/// time it took.
fn run_on_pool(
    engine: &Engine,
    guest: &Arc<CoreModuleGuest>,
    fuel: u64,
    memory_cap: u64,
    timeout: Duration,
    source: &[u8],
) -> (CoreModuleRun, RunLimits, Duration) {
    let sandbox = engine.sandbox.clone();
    let guest = guest.clone();
    let source = source.to_vec();
    let started = Instant::now();
    let limits = RunLimits {
        fuel,
        memory_bytes: memory_cap,
        stdout_bytes: 256,
        stderr_bytes: 256,
        max_result_bytes: 1024,
        deadline: started + timeout,
    };
    let run_limits = limits.clone();
    let handle = RUNTIME
        .spawn_blocking(move || sandbox.run_core_module(&guest, request(&run_limits, &source)));
    let run = RUNTIME.block_on(handle).expect("the run's thread failed");
    (run, limits, started.elapsed())
}

fn check(
    engine: &Engine,
    run: &CoreModuleRun,
    limits: &RunLimits,
    timeout: Duration,
    took: Duration,
) {
    let r = &run.result;
    let context = || {
        format!(
            "[{}] fuel {} cap {} timeout {timeout:?}: {r:#?}",
            engine.name, limits.fuel, limits.memory_bytes
        )
    };
    assert!(
        took <= timeout + SLACK,
        "the run took {took:?}, past its deadline {timeout:?} + {SLACK:?}\n{}",
        context()
    );
    if r.status == Status::Timeout {
        assert!(
            took + Duration::from_millis(1) >= timeout,
            "a timeout after {took:?}, before the deadline\n{}",
            context()
        );
    }
    assert!(
        r.usage.memory_peak_bytes <= limits.memory_bytes,
        "the memory limiter let the run reach {} bytes\n{}",
        r.usage.memory_peak_bytes,
        context()
    );
    assert!(
        run.exported_memory_bytes <= limits.memory_bytes,
        "the module's memories hold {} bytes, over the cap\n{}",
        run.exported_memory_bytes,
        context()
    );
    assert!(
        run.exported_memory_bytes <= r.usage.memory_peak_bytes,
        "the module's memories hold {} bytes, but the limiter saw only {}\n{}",
        run.exported_memory_bytes,
        r.usage.memory_peak_bytes,
        context()
    );
    assert!(
        r.usage.fuel <= limits.fuel,
        "fuel over the budget\n{}",
        context()
    );
    if r.status == Status::OutOfFuel {
        assert_eq!(
            r.usage.fuel,
            limits.fuel,
            "out of fuel with fuel left\n{}",
            context()
        );
    }
    assert!(
        matches!(
            r.status,
            Status::Ok | Status::Error | Status::Timeout | Status::OutOfFuel | Status::OutOfMemory
        ),
        "{}",
        context()
    );
    assert_eq!(r.error.is_some(), r.status != Status::Ok, "{}", context());
    assert!(r.stdout.len() <= limits.stdout_bytes && r.stderr.len() <= limits.stderr_bytes);
    assert!(
        !r.error
            .as_ref()
            .is_some_and(|e| e.message.starts_with("setting up the run failed")),
        "{}",
        context()
    );
}

fuzz_target!(
    init: {
        LazyLock::force(&DEFAULT);
        LazyLock::force(&LARGEST_STACK);
    },
    |input: Input| {
    let engine: &Engine = if input.largest_stack {
        &LARGEST_STACK
    } else {
        &DEFAULT
    };
    let memory_cap = input.memory_cap.min(engine.limits.memory_bytes);
    let Ok(guest) = engine.sandbox.prepare_core_module(&input.wasm) else {
        // Not every generated module is valid for this engine (features, pool limits).
        return;
    };
    let guest = Arc::new(guest);
    let run = || {
        run_on_pool(
            engine,
            &guest,
            input.fuel,
            memory_cap,
            input.timeout,
            &input.source,
        )
    };
    let (first, limits, took) = run();
    check(engine, &first, &limits, input.timeout, took);
    if *VERBOSE {
        eprintln!(
            "[{}] fuel {} cap {} timeout {:?}: {} {:?} in {took:?}, fuel used {}, memory {}",
            engine.name,
            input.fuel,
            memory_cap,
            input.timeout,
            first.result.status.as_str(),
            first.result.error.as_ref().map(|e| (&e.kind, e.message.chars().take(100).collect::<String>())),
            first.result.usage.fuel,
            first.result.usage.memory_peak_bytes
        );
    }

    // Nothing survives a run: the same module, run again, does the same (unless the deadline
    // stopped either run, which depends on timing).
    if first.result.status != Status::Timeout {
        let (second, limits, took) = run();
        check(engine, &second, &limits, input.timeout, took);
        if second.result.status != Status::Timeout {
            let (a, b) = (&first.result, &second.result);
            assert!(
                a.status == b.status
                    && a.stdout == b.stdout
                    && a.stderr == b.stderr
                    && a.result == b.result
                    && a.error == b.error
                    && a.usage.fuel == b.usage.fuel
                    && a.usage.memory_peak_bytes == b.usage.memory_peak_bytes
                    && first.exported_memory_bytes == second.exported_memory_bytes,
                "the same module ran differently the second time\nfirst: {first:#?}\nsecond: {second:#?}"
            );
        }
    }

    if first.result.status != Status::Ok {
        let (canary, _, _) = run_on_pool(
            engine,
            &engine.canary,
            10_000_000,
            engine.limits.memory_bytes,
            Duration::from_secs(10),
            b"",
        );
        assert!(
            canary.result.status == Status::Ok
                && canary.result.result == serde_json::json!(7)
                && canary.result.stdout == "ok\n",
            "[{}] a run after a failed run does not work: {canary:#?}",
            engine.name
        );
    }
});
