//! The sandbox: one wasmtime [`Engine`] per process, guest programs compiled once (and cached on
//! disk), one pre-instantiated guest (`InstancePre`) per guest and a fresh `Store` per run.
//! Guests come as core modules (JavaScript) or components (Python); what a run shares is in
//! `run.rs`, the two binding forms in `core_module.rs` and `component.rs`.
//!
//! Deny by default: a run's WASI context has no preopened directories, no environment, no
//! arguments beyond the program name and no sockets; clocks and randomness are allowed. Every
//! run is bounded by fuel, a wall-clock deadline and cancellation (looked at between slices of
//! fuel: guests run as async calls that yield, driven by `drive::drive`), total linear memory,
//! wasm stack and output bytes. Whatever a guest does, a run ends in an [`ExecutionResult`];
//! the next run is unaffected.

mod cache;
pub mod capability;
mod component;
mod core_module;
mod drive;
mod ending;
// Compiled into the library's own tests too, so that `cargo test` runs its unit tests without
// a second build of the library with the feature.
#[cfg(any(test, feature = "fuzzing"))]
mod fuzzing;
mod limiter;
mod run;
mod session;
mod spares;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime::error::Context as _;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Module, OptLevel,
    PoolingAllocationConfig,
};

use crate::contract::ExecutionResult;

pub use capability::{
    FetchCapability, FetchFailure, Fetcher, FileBridge, HttpRequest, HttpResponse, ToolAnswer,
    ToolBridge, ToolsCapability, WorkspaceCapability,
};
pub use drive::{CancelFlag, may_block, wait_on};
#[cfg(feature = "fuzzing")]
pub use fuzzing::{CoreModuleGuest, CoreModuleRun};
pub use run::{OutputWatch, RunRequest};
pub use session::{KeptGuest, SessionRun};
use spares::{Background, Spare, Spares};

/// Pool slots reserved per concurrent run. The JavaScript guest needs one core instance, one
/// memory and one table; the Python component (componentize-py) a handful of each.
const CORE_INSTANCES_PER_RUN: usize = 32;
const MEMORIES_PER_RUN: usize = 8;
const TABLES_PER_RUN: usize = 32;
/// Enough for the QuickJS snapshot plus what a typical run dirties.
const KEEP_RESIDENT_BYTES: usize = 8 * 1024 * 1024;
// The patched wasmtime's reset scan holds 2048 regions (patches/): a budget of at most 2048
// pages never outgrows it. A larger budget needs that constant raised too.
const _: () = assert!(KEEP_RESIDENT_BYTES / 4096 <= 2048);

/// Spares the server keeps of each guest ([`SandboxConfig::spares_per_guest`]). Two, not one:
/// a call that follows another at once then finds one ready while the spares thread, woken by
/// the first take, is still making its replacement; with one, such calls started their own
/// instance about every other time (back to back: JS `1+1` 38 -> 27 us, Python `print(1+1)`
/// 397 -> 292 us; docs/benchmarks.md). A spare waits in copy-on-write pool slots, so the
/// second one costs under a megabyte of resident memory.
pub const SPARES_PER_GUEST: usize = 2;
const TABLE_KEEP_RESIDENT_BYTES: usize = 64 * 1024;
/// CPython's function table is large; QuickJS's is small.
const MAX_TABLE_ELEMENTS: usize = 200_000;

/// A pre-initialized guest program implementing guest-runtimes/wit/warden.wit.
#[derive(Debug)]
pub struct GuestProgram {
    /// Names the guest in the on-disk cache and in errors.
    pub name: &'static str,
    pub form: GuestForm,
    pub wasm: GuestBytes,
}

/// A guest's WebAssembly as the process holds it.
#[derive(Debug, Clone, Copy)]
pub enum GuestBytes {
    /// The wasm itself (an operator's guest read from disk, tests).
    Plain(&'static [u8]),
    /// zstd-compressed wasm: the guests built into the binary, which would otherwise make up
    /// over half of it (issue 16). Decompressed only to compile, which a warm cache skips.
    Zstd(&'static [u8]),
}

impl GuestBytes {
    /// The bytes as held, which identify the guest (the cache key hashes them).
    pub fn stored(&self) -> &'static [u8] {
        match self {
            GuestBytes::Plain(bytes) | GuestBytes::Zstd(bytes) => bytes,
        }
    }

    /// The WebAssembly binary.
    pub fn wasm(&self) -> std::io::Result<std::borrow::Cow<'static, [u8]>> {
        match self {
            GuestBytes::Plain(bytes) => Ok(std::borrow::Cow::Borrowed(bytes)),
            GuestBytes::Zstd(bytes) => {
                zstd::stream::decode_all(*bytes).map(std::borrow::Cow::Owned)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestForm {
    /// A WASI preview 1 command module with the `warden` imports (guest-runtimes/ABI.md).
    CoreModule,
    /// A WASI preview 2 component exporting the `guest` world.
    Component,
}

enum PreparedGuest {
    CoreModule(InstancePre<core_module::CoreState>),
    Component(component::ComponentPre<component::ComponentState>),
}

/// Engine-wide settings, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub wasm_stack_bytes: usize,
    /// The largest linear memory a run may have (the policy's `memory_bytes`); sizes pool slots.
    pub max_memory_bytes: usize,
    /// Runs that may execute at once; sizes the instance pool.
    pub max_concurrent_runs: usize,
    /// Interpreters kept between calls (live sessions); each holds its pool slots while idle.
    pub kept_instances: usize,
    /// Instances of each guest made ahead of time, so that a call does not wait for its
    /// instantiation (`spares.rs`); each holds its pool slots while it waits. 0 turns it off.
    pub spares_per_guest: usize,
    /// Where precompiled guests are kept; `None` compiles in memory at every start.
    pub cache_dir: Option<PathBuf>,
}

impl SandboxConfig {
    /// `$WARDEN_CACHE_DIR`, else the XDG cache directory (`~/.cache/warden`).
    pub fn default_cache_dir() -> Option<PathBuf> {
        std::env::var_os("WARDEN_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("warden")))
    }
}

pub struct Sandbox {
    engine: Engine,
    guests: HashMap<&'static str, PreparedGuest>,
    spares: Spares,
}

impl Sandbox {
    /// Builds the engine and prepares every guest (from the cache when it can).
    pub fn new(config: &SandboxConfig, programs: &[&GuestProgram]) -> wasmtime::Result<Sandbox> {
        let engine = Engine::new(&engine_config(config, programs.len()))
            .context("creating the wasmtime engine")?;
        let module_linker = core_module::linker(&engine)?;
        let component_linker = component::linker(&engine)?;
        // Checked once at start-up: the limits must let every guest instantiate.
        let max_memory_bytes = config.max_memory_bytes;
        let check_limits = run::spare_limits(max_memory_bytes);
        let mut guests = HashMap::new();
        let mut makers: Vec<(&'static str, spares::Maker)> = Vec::new();
        for program in programs {
            let cache_dir = config.cache_dir.as_deref();
            let prepared = match program.form {
                GuestForm::CoreModule => {
                    let module: Module = cache::load_or_compile(&engine, program, cache_dir)
                        .with_context(|| format!("preparing the {} guest", program.name))?;
                    let pre = module_linker
                        .instantiate_pre(&module)
                        .with_context(|| format!("linking the {} guest", program.name))?;
                    retry_while_busy(|| {
                        core_module::check_instantiates(&engine, &pre, &check_limits)
                    })
                    .with_context(|| format!("instantiating the {} guest", program.name))?;
                    let (engine, spare_pre) = (engine.clone(), pre.clone());
                    makers.push((
                        program.name,
                        Box::new(move || {
                            // Made now: a spare's placeholder deadline must lie ahead of it.
                            let limits = run::spare_limits(max_memory_bytes);
                            core_module::make_spare(&engine, &spare_pre, &limits).map(Spare::Core)
                        }),
                    ));
                    PreparedGuest::CoreModule(pre)
                }
                GuestForm::Component => {
                    let component: Component = cache::load_or_compile(&engine, program, cache_dir)
                        .with_context(|| format!("preparing the {} guest", program.name))?;
                    let pre = component_linker
                        .instantiate_pre(&component)
                        .and_then(component::ComponentPre::new)
                        .with_context(|| format!("linking the {} guest", program.name))?;
                    retry_while_busy(|| {
                        component::check_instantiates(&engine, &pre, &check_limits)
                    })
                    .with_context(|| format!("instantiating the {} guest", program.name))?;
                    let (engine, spare_pre) = (engine.clone(), pre.clone());
                    makers.push((
                        program.name,
                        Box::new(move || {
                            let limits = run::spare_limits(max_memory_bytes);
                            component::make_spare(&engine, &spare_pre, &limits)
                                .map(Spare::Component)
                        }),
                    ));
                    PreparedGuest::Component(pre)
                }
            };
            guests.insert(program.name, prepared);
        }
        let spares = Spares::start(makers, config.spares_per_guest, Background::IdleTime)
            .context("starting the spare-instance thread")?;
        Ok(Sandbox {
            engine,
            guests,
            spares,
        })
    }

    /// Runs one program to completion in a fresh store. Call it from a thread that may block
    /// or from a worker of a multi-threaded tokio runtime: a run that goes on past its first
    /// fuel slice, or waits in a host call, first hands the worker's other tasks to another
    /// thread ([`may_block`]).
    pub fn run(&self, guest: &GuestProgram, request: RunRequest) -> ExecutionResult {
        let spare = self.spares.take(guest.name);
        match self.guests.get(guest.name) {
            Some(PreparedGuest::CoreModule(pre)) => {
                let spare = spare.and_then(Spare::into_core);
                let (result, spent) = core_module::execute(&self.engine, pre, spare, request);
                if let Some(spent) = spent {
                    self.spares.retire(Spare::Core(spent));
                }
                result
            }
            Some(PreparedGuest::Component(pre)) => {
                let spare = spare.and_then(Spare::into_component);
                let (result, spent) = component::execute(&self.engine, pre, spare, request);
                if let Some(spent) = spent {
                    self.spares.retire(Spare::Component(spent));
                }
                result
            }
            None => ExecutionResult::internal(format!(
                "the {} guest is not loaded in this sandbox",
                guest.name
            )),
        }
    }
}

/// The first instantiation writes each guest's memory snapshot into a memfd and seals it.
/// Linux refuses the seal with EBUSY while a page of the memfd is briefly pinned elsewhere
/// (seen once in CI on the 60 MB Python snapshot), and wasmtime does not cache that failure,
/// so a short retry is enough: start-up must not fail on a kernel race.
fn retry_while_busy<T>(mut attempt: impl FnMut() -> wasmtime::Result<T>) -> wasmtime::Result<T> {
    let mut pause = Duration::from_millis(20);
    for _ in 1..BUSY_ATTEMPTS {
        match attempt() {
            Err(error) if is_resource_busy(&error) => {
                tracing::warn!("retrying guest instantiation after a transient EBUSY: {error:#}");
                std::thread::sleep(pause);
                pause *= 2;
            }
            other => return other,
        }
    }
    attempt()
}

const BUSY_ATTEMPTS: u32 = 6;

fn is_resource_busy(error: &wasmtime::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ResourceBusy)
    })
}

fn engine_config(config: &SandboxConfig, guests: usize) -> Config {
    let mut c = Config::new();
    // Guests run as async calls that yield every few million units of fuel, where the deadline
    // and the cancel flag are looked at (`drive::drive`); no epoch checks in the compiled code.
    c.consume_fuel(true)
        .max_wasm_stack(config.wasm_stack_bytes)
        // A run's wasm and host frames live on its async stack, which must hold the wasm stack
        // limit and room for the host beyond it.
        .async_stack_size(config.wasm_stack_bytes.max(1 << 20) + (1 << 20))
        .cranelift_opt_level(OptLevel::Speed)
        .profiler(profiler())
        // Tables filled at instantiation (on the spares thread, off the call's path) rather than
        // entry by entry through libcalls during the run; also less CPU per call
        // (docs/benchmarks.md, issue 16).
        .table_lazy_init(false)
        // Guests are single-threaded; no shared memories or threads in the sandbox.
        .wasm_threads(false);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(
        config, guests,
    )));
    c
}

/// `WARDEN_PERFMAP=1` names the guests' compiled functions for `perf` (wasmtime writes
/// `/tmp/perf-<pid>.map`); off by default, since it writes a file and costs a little at load.
fn profiler() -> wasmtime::ProfilingStrategy {
    if std::env::var_os("WARDEN_PERFMAP").is_some_and(|v| v == "1") {
        wasmtime::ProfilingStrategy::PerfMap
    } else {
        wasmtime::ProfilingStrategy::None
    }
}

/// Instances, memories and tables come from a pool of slots that stay mapped between runs.
/// Up to [`KEEP_RESIDENT_BYTES`] of the pages a run wrote (found with PAGEMAP_SCAN; without it,
/// the first that many bytes) are reset in place rather than returned to the kernel, so the
/// next run does not page-fault its way through the guest's snapshot: this alone took an
/// in-process `1+1` from ~215 µs to ~45 µs (docs/benchmarks.md).
fn pooling_config(config: &SandboxConfig, guests: usize) -> PoolingAllocationConfig {
    // Every instance that can exist at once: runs, kept interpreters, spares waiting to be
    // taken and stores waiting to be torn down (spares.rs).
    let runs = config
        .max_concurrent_runs
        .max(1)
        .saturating_add(config.kept_instances)
        .saturating_add(config.spares_per_guest.saturating_mul(guests))
        .saturating_add(spares::MAX_RETIRED);
    let total = |per_run: usize| u32::try_from(runs * per_run).unwrap_or(u32::MAX);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(total(1))
        .total_core_instances(total(CORE_INSTANCES_PER_RUN))
        .total_memories(total(MEMORIES_PER_RUN))
        .total_tables(total(TABLES_PER_RUN))
        .max_core_instances_per_component(u32::try_from(CORE_INSTANCES_PER_RUN).unwrap_or(u32::MAX))
        .max_memories_per_component(u32::try_from(MEMORIES_PER_RUN).unwrap_or(u32::MAX))
        .max_tables_per_component(u32::try_from(TABLES_PER_RUN).unwrap_or(u32::MAX))
        // One async stack per instance that may be instantiating or running at once. Stacks
        // are not zeroed between runs (wasmtime's default): a guest cannot read the host's
        // stack, only its own linear memory, which the reset covers.
        .total_stacks(total(1))
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(config.max_memory_bytes)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES)
        // A reset rewrites only the pages the run wrote (up to the resident budget) instead of
        // all of them: most of the spares thread's CPU went to rewriting 8 MiB per run
        // (docs/benchmarks.md, issue 16). Kernels before 6.7 get the old reset.
        .pagemap_scan(wasmtime::Enabled::Auto);
    pool
}

/// Per-run limits, derived from the policy's `[limits]` and the call.
#[derive(Debug, Clone)]
pub struct RunLimits {
    pub fuel: u64,
    pub memory_bytes: u64,
    pub stdout_bytes: usize,
    pub stderr_bytes: usize,
    pub max_result_bytes: usize,
    /// The run must have ended by then (the call's arrival + its timeout).
    pub deadline: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_flag_is_shared_between_clones() {
        let flag = CancelFlag::new();
        let other = flag.clone();
        assert!(!other.is_cancelled());
        flag.cancel();
        assert!(other.is_cancelled());
    }

    #[test]
    fn pool_scales_with_concurrency_and_memory_cap() {
        let config = SandboxConfig {
            wasm_stack_bytes: 1 << 20,
            max_memory_bytes: 64 << 20,
            max_concurrent_runs: 3,
            kept_instances: 0,
            spares_per_guest: 1,
            cache_dir: None,
        };
        // An engine with this configuration must build (the pool reserves address space).
        let engine = Engine::new(&engine_config(&config, 2)).unwrap();
        let module = wasmtime::Module::new(&engine, b"\0asm\x01\0\0\0").unwrap();
        assert_eq!(module.imports().len(), 0);
    }

    /// Probes memory a previous run of the same guest wrote: in the snapshot's data segment,
    /// in the first page, beyond the 8 MiB the pool keeps resident, and in grown pages. Any
    /// trace of an earlier run traps (`unreachable`); a clean run ends without a result.
    const MEMORY_PROBE: &str = r#"
        (module
          (memory (export "memory") 300)
          (data (i32.const 16) "image")
          (func $probe (local $i i32) (local $at i32)
            (if (i32.ne (i32.load8_u (i32.const 16)) (i32.const 105)) (then unreachable))
            ;; 2100 separate dirty pages: more than the 32 regions stock wasmtime's scan
            ;; holds and more pages than the 8 MiB budget (2048), the patched scan's limit:
            ;; the reset rewrites the first 2048 and decommits the rest.
            (block $done (loop $next
              (br_if $done (i32.ge_u (local.get $i) (i32.const 2100)))
              (local.set $at (i32.add (i32.const 133120) (i32.mul (local.get $i) (i32.const 8192))))
              (if (i32.load8_u (local.get $at)) (then unreachable))
              (i32.store8 (local.get $at) (i32.const 171))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $next)))
            (if (i32.load8_u (i32.const 4096)) (then unreachable))
            (if (i32.load8_u (i32.const 9437184)) (then unreachable))
            (drop (memory.grow (i32.const 16)))
            (if (i32.load8_u (i32.const 19661800)) (then unreachable))
            (i32.store8 (i32.const 16) (i32.const 88))
            (i32.store8 (i32.const 4096) (i32.const 171))
            (i32.store8 (i32.const 9437184) (i32.const 171))
            (i32.store8 (i32.const 19661800) (i32.const 171)))
          (export "_start" (func $probe))
          (export "warden-run" (func $probe)))"#;

    fn probe_request() -> RunRequest {
        RunRequest {
            source: String::new(),
            input_json: "null".into(),
            filename: "probe".into(),
            limits: RunLimits {
                fuel: 1_000_000,
                memory_bytes: 64 << 20,
                stdout_bytes: 1024,
                stderr_bytes: 1024,
                max_result_bytes: 1024,
                deadline: Instant::now() + Duration::from_secs(30),
            },
            cancel: CancelFlag::new(),
            fetch: Default::default(),
            workspace: Default::default(),
            tools: Default::default(),
            output: Default::default(),
        }
    }

    fn found_traces(result: &ExecutionResult) -> bool {
        let message = result.error.as_ref().map_or("", |e| e.message.as_str());
        assert!(
            message.contains("unreachable") || message.contains("without reporting a result"),
            "unexpected ending: {result:?}"
        );
        message.contains("unreachable")
    }

    /// A sandbox for one raw module: one run at a time, one spare, one kept instance.
    fn core_module_sandbox(name: &'static str, wat: &str) -> (&'static GuestProgram, Sandbox) {
        let wasm = wat::parse_str(wat).unwrap();
        let program: &'static GuestProgram = Box::leak(Box::new(GuestProgram {
            name,
            form: GuestForm::CoreModule,
            wasm: GuestBytes::Plain(Box::leak(wasm.into_boxed_slice())),
        }));
        let config = SandboxConfig {
            wasm_stack_bytes: 1 << 20,
            max_memory_bytes: 64 << 20,
            max_concurrent_runs: 1,
            kept_instances: 1,
            spares_per_guest: 1,
            cache_dir: None,
        };
        // The server resets slots through PAGEMAP_SCAN (only the pages a run wrote); the
        // tests must exercise that path, not wasmtime's fallback for older kernels.
        assert!(
            wasmtime::PoolingAllocationConfig::is_pagemap_scan_available(),
            "PAGEMAP_SCAN (Linux 6.7 or later) is needed to test the reset path the server uses"
        );
        (program, Sandbox::new(&config, &[program]).unwrap())
    }

    #[test]
    fn no_run_sees_the_memory_of_an_earlier_run() {
        let (program, sandbox) = core_module_sandbox("memory-probe", MEMORY_PROBE);
        // Spares, inline starts and slots reused after a teardown on the spares' thread, in
        // whatever order the timing gives: every run finds the snapshot and nothing else.
        for run in 0..40 {
            if run % 3 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            let result = sandbox.run(program, probe_request());
            assert!(
                !found_traces(&result),
                "run {run} saw an earlier run's memory"
            );
        }
        // The probe can tell: a kept instance (a session) does see its previous call's marks.
        let mut kept = KeptGuest::default();
        let first = sandbox.run_kept(program, &mut kept, probe_request());
        assert!(!found_traces(&first.result));
        let second = sandbox.run_kept(program, &mut kept, probe_request());
        assert!(found_traces(&second.result));
        assert!(second.discarded);
    }

    /// Writes one byte in each of 300 pages with a page between them: 300 separate dirty
    /// regions, as a fresh Python run leaves (~300), well inside the 8 MiB kept resident.
    const SCATTERED_WRITES: &str = r#"
        (module
          (memory (export "memory") 100)
          (func $write (local $i i32)
            (block $done (loop $next
              (br_if $done (i32.ge_u (local.get $i) (i32.const 300)))
              (i32.store8 (i32.add (i32.const 65536) (i32.mul (local.get $i) (i32.const 8192)))
                          (i32.const 1))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $next))))
          (export "_start" (func $write))
          (export "warden-run" (func $write)))"#;

    /// Minor page faults of the calling thread, which is the one that runs the guest.
    fn thread_page_faults() -> i64 {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage only writes the struct it is given.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
        assert_eq!(rc, 0, "getrusage");
        // SAFETY: zeroed and then filled by a successful getrusage.
        unsafe { usage.assume_init() }.ru_minflt
    }

    /// The reset keeps every page a run wrote resident (rewritten in place), so the next run
    /// in the slot does not fault them back in. Stock wasmtime 48's scan stops at 32 regions
    /// and decommits the rest: ~268 faults per run here. This fails if the patched wasmtime
    /// (patches/, Cargo.toml's [patch.crates-io]) is dropped.
    #[test]
    fn a_reset_keeps_every_page_a_run_wrote_resident() {
        let (program, sandbox) = core_module_sandbox("scattered-writes", SCATTERED_WRITES);
        let run = || {
            let result = sandbox.run(program, probe_request());
            assert!(!found_traces(&result), "{result:?}");
            // Lets the spares' thread reset the slot and instantiate the next spare.
            std::thread::sleep(Duration::from_millis(5));
        };
        for _ in 0..5 {
            run();
        }
        let before = thread_page_faults();
        const RUNS: i64 = 20;
        for _ in 0..RUNS {
            run();
        }
        let per_run = (thread_page_faults() - before) / RUNS;
        assert!(
            per_run < 30,
            "{per_run} page faults per run of 300 written pages"
        );
    }

    #[test]
    fn cache_dir_honours_the_environment_variable_name() {
        // Only checks the fallback shape; the variable itself is process-global.
        if std::env::var_os("WARDEN_CACHE_DIR").is_none() {
            let dir = SandboxConfig::default_cache_dir().unwrap();
            assert!(dir.ends_with("warden"), "{}", dir.display());
        }
    }

    fn busy() -> wasmtime::Error {
        wasmtime::Error::from(std::io::Error::from(std::io::ErrorKind::ResourceBusy))
            .context("cannot add seals to the memfd")
    }

    #[test]
    fn a_transient_busy_instantiation_is_retried() {
        let mut calls = 0;
        let result = retry_while_busy(|| {
            calls += 1;
            if calls < 3 { Err(busy()) } else { Ok(calls) }
        });
        assert_eq!(result.unwrap(), 3);
    }

    #[test]
    fn a_lasting_busy_error_is_reported_after_the_last_attempt() {
        let mut calls = 0;
        let result: wasmtime::Result<()> = retry_while_busy(|| {
            calls += 1;
            Err(busy())
        });
        assert_eq!(calls, BUSY_ATTEMPTS);
        assert!(format!("{:#}", result.unwrap_err()).contains("seals"));
    }

    #[test]
    fn other_instantiation_errors_are_not_retried() {
        let mut calls = 0;
        let result: wasmtime::Result<()> = retry_while_busy(|| {
            calls += 1;
            Err(wasmtime::format_err!("out of pool slots"))
        });
        assert_eq!(calls, 1);
        assert!(result.is_err());
    }
}
