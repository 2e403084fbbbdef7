//! Running arbitrary core modules, for the `sandbox_wasm` fuzz target (fuzz/) only: it runs
//! generated modules under Warden's engine configuration, so that the limits are checked
//! against any module and not only against the built-in guests. Behind the `fuzzing` feature:
//! the server never contains it.

use wasmtime::{Engine, InstancePre, Module};

use super::{RunRequest, Sandbox, core_module};
use crate::contract::ExecutionResult;

/// A core module compiled and linked by [`Sandbox::prepare_core_module`].
pub struct CoreModuleGuest(InstancePre<core_module::CoreState>);

/// What [`Sandbox::run_core_module`] saw.
#[derive(Debug)]
pub struct CoreModuleRun {
    pub result: ExecutionResult,
    /// The sizes of the memories the module exports, summed, when `_start` returned or
    /// trapped (0 if it never instantiated). Memories only grow, so this is their peak.
    pub exported_memory_bytes: u64,
}

impl Sandbox {
    /// Compiles `wasm`, a core module that may use the JavaScript guest's imports
    /// (guest-runtimes/ABI.md), with this sandbox's engine and links it like that guest.
    /// Nothing is cached. An `Err` means the module does not compile or link.
    pub fn prepare_core_module(&self, wasm: &[u8]) -> wasmtime::Result<CoreModuleGuest> {
        let module = Module::new(&self.engine, wasm)?;
        let pre = core_module::linker(&self.engine)?.instantiate_pre(&module)?;
        Ok(CoreModuleGuest(pre))
    }

    /// Runs the module's `_start` once under `request`, the way [`Sandbox::run`] runs a
    /// prepared guest: the same store limits (fuel, deadline, memory limiter) and
    /// outcome mapping.
    pub fn run_core_module(&self, guest: &CoreModuleGuest, request: RunRequest) -> CoreModuleRun {
        if !Engine::same(guest.0.module().engine(), &self.engine) {
            return CoreModuleRun {
                result: ExecutionResult::internal("the module was prepared by another sandbox"),
                exported_memory_bytes: 0,
            };
        }
        let mut exported_memory_bytes = 0;
        let result =
            core_module::execute_and_inspect(&self.engine, &guest.0, request, |store, i| {
                let memories: Vec<wasmtime::Memory> = i
                    .exports(&mut *store)
                    .filter_map(wasmtime::Export::into_memory)
                    .collect();
                exported_memory_bytes = memories.iter().map(|m| m.data_size(&*store) as u64).sum();
            });
        CoreModuleRun {
            result,
            exported_memory_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::sandbox::{CancelFlag, FetchCapability, RunLimits, SandboxConfig};

    fn module_request(fuel: u64) -> RunRequest {
        RunRequest {
            source: String::new(),
            input_json: "null".into(),
            filename: "main.wat".into(),
            limits: RunLimits {
                fuel,
                memory_bytes: 4 << 20,
                stdout_bytes: 64,
                stderr_bytes: 64,
                max_result_bytes: 64,
                deadline: Instant::now() + Duration::from_secs(10),
            },
            cancel: CancelFlag::new(),
            fetch: FetchCapability::default(),
            workspace: Default::default(),
            tools: Default::default(),
            output: Default::default(),
        }
    }

    fn module_sandbox() -> Sandbox {
        let config = SandboxConfig {
            wasm_stack_bytes: 256 * 1024,
            max_memory_bytes: 4 << 20,
            max_concurrent_runs: 1,
            kept_instances: 0,
            spares_per_guest: 0,
            cache_dir: None,
        };
        Sandbox::new(&config, &[]).unwrap()
    }

    #[test]
    fn an_arbitrary_module_runs_under_the_run_limits() {
        let sandbox = module_sandbox();
        let wasm = wat::parse_str(
            r#"(module
              (import "warden" "set_result" (func $set_result (param i32 i32)))
              (memory (export "memory") 1)
              (data (i32.const 16) "{\22ok\22:true,\22result\22:7}")
              (func (export "_start")
                (drop (memory.grow (i32.const 2)))
                (drop (memory.grow (i32.const 1000)))
                (call $set_result (i32.const 16) (i32.const 22))))"#,
        )
        .unwrap();
        let guest = sandbox.prepare_core_module(&wasm).unwrap();
        let run = sandbox.run_core_module(&guest, module_request(1_000_000));
        assert_eq!(run.result.result, serde_json::json!(7), "{run:?}");
        // 3 pages; the growth past the 4 MiB cap was refused.
        assert_eq!(run.exported_memory_bytes, 3 * 65536);
        assert_eq!(run.result.usage.memory_peak_bytes, 3 * 65536);

        let spin = wat::parse_str(r#"(module (func (export "_start") (loop (br 0))))"#).unwrap();
        let spin = sandbox.prepare_core_module(&spin).unwrap();
        let run = sandbox.run_core_module(&spin, module_request(1_000_000));
        assert_eq!(run.result.status.as_str(), "out_of_fuel", "{run:?}");
        assert_eq!(run.exported_memory_bytes, 0);
        // The first module runs again as it did: nothing survived its first run.
        let again = sandbox.run_core_module(&guest, module_request(1_000_000));
        assert_eq!(again.result.result, serde_json::json!(7), "{again:?}");
    }

    /// A loop of bulk copies over the whole memory, with fuel for hours: wasmtime charges
    /// `memory.copy` fuel by its length, so the run still yields and meets its deadline.
    #[test]
    fn bulk_copies_pay_fuel_by_length_and_meet_the_deadline() {
        let sandbox = module_sandbox();
        let wasm = wat::parse_str(
            r#"(module
              (memory (export "memory") 63)
              (func (export "_start") (local $i i32)
                (loop
                  (memory.copy (i32.const 0) (i32.const 1) (i32.const 4128767))
                  (local.set $i (i32.add (local.get $i) (i32.const 1)))
                  (br_if 0 (i32.lt_u (local.get $i) (i32.const 100000))))))"#,
        )
        .unwrap();
        let guest = sandbox.prepare_core_module(&wasm).unwrap();
        let mut request = module_request(u64::MAX / 2);
        request.limits.deadline = Instant::now() + Duration::from_millis(100);
        let started = Instant::now();
        let run = sandbox.run_core_module(&guest, request);
        assert_eq!(run.result.status.as_str(), "timeout", "{run:?}");
        // Far more than the ~500,000 operators the loop runs.
        assert!(run.result.usage.fuel > 100_000_000, "{run:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_module_that_does_not_link_or_belongs_elsewhere_is_refused() {
        let sandbox = module_sandbox();
        let wasm = wat::parse_str(r#"(module (import "env" "nope" (func)))"#).unwrap();
        assert!(sandbox.prepare_core_module(&wasm).is_err());
        assert!(sandbox.prepare_core_module(b"not wasm").is_err());
        let other = module_sandbox();
        let empty = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        let guest = other.prepare_core_module(&empty).unwrap();
        let run = sandbox.run_core_module(&guest, module_request(1));
        assert_eq!(run.result.status.as_str(), "error", "{run:?}");
        assert!(
            run.result
                .error
                .unwrap()
                .message
                .contains("another sandbox"),
            "the module must run only in the sandbox that prepared it"
        );
    }
}
