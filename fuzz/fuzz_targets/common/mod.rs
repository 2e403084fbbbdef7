//! What the targets that run code share: one service per process (built like the server's,
//! on a tokio runtime built like `main.rs`'s, so runs happen on the same kind of blocking
//! thread, with the same stack size), a guest cache that outlives the process, and the
//! invariants every run must keep.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use warden::contract::{ExecuteArgs, ExecutionResult, Language, Status};
use warden::policy::{Caller, LOCAL_GRANT, Limits, Policy};
use warden::service::Service;

/// Slack on top of a run's deadline before a run counts as hung: queueing, instantiation and
/// a loaded two-core CI machine, but nowhere near a second deadline.
pub const SLACK: Duration = Duration::from_millis(1500);

/// Compiled guests are kept across fuzz processes: `$WARDEN_FUZZ_CACHE_DIR`, else beside the
/// fuzz binaries (`<target-dir>/warden-fuzz-guest-cache`), so that only the first process
/// compiles the 60 MB Python guest.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WARDEN_FUZZ_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the fuzz binary knows its path");
    // <target-dir>/<triple>/release/<target>
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("warden-fuzz-guest-cache"))
        .unwrap_or_else(|| std::env::temp_dir().join("warden-fuzz-guest-cache"))
}

/// The runtime `main.rs` builds: guests run on its blocking pool, whose threads are sized for
/// the largest wasm stack a policy may set.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(warden::policy::GUEST_THREAD_STACK_BYTES)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The session the targets' calls run in (no target has session-scoped limits to meet).
pub const SESSION: &str = "fuzz";

/// Why a call that needs a person's approval is denied when it goes through
/// [`Service::call`] (the targets that run code ask nobody).
pub const NO_APPROVER: &str = "the fuzz target asks nobody";

/// A service for `policy` (TOML), with the guests from the shared cache.
pub fn service(policy: &str) -> (Service, Policy) {
    let policy = Policy::parse(policy, "fuzz policy").expect("the fuzz policy is valid");
    let dir = cache_dir();
    let _ = std::fs::create_dir_all(&dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    let service = Service::new(policy.clone(), Some(dir)).expect("the sandbox starts");
    (service, policy)
}

/// A count in the sandbox targets' program grammars: mostly small, sometimes large, sometimes
/// one of the target's own limit-sized values.
#[derive(Debug, Clone, Copy, arbitrary::Arbitrary)]
pub enum Count {
    Small(u8),
    Medium(u16),
    Large(u32),
    Limit(u8),
}

impl Count {
    pub fn within(self, limit_counts: &[u64]) -> u64 {
        match self {
            Count::Small(n) => u64::from(n % 16),
            Count::Medium(n) => u64::from(n),
            Count::Large(n) => u64::from(n),
            Count::Limit(i) => limit_counts[usize::from(i) % limit_counts.len()],
        }
    }
}

/// The sandbox targets' per-process state: the runtime, a service and its policy.
pub struct Sandbox {
    pub rt: tokio::runtime::Runtime,
    pub service: Service,
    pub policy: Policy,
}

impl Sandbox {
    pub fn new(policy: &str) -> Self {
        let (service, policy) = service(policy);
        Sandbox {
            rt: runtime(),
            service,
            policy,
        }
    }

    /// The sandbox targets' policy: their default timeout and memory cap, 2 s at most, 2·10⁹
    /// fuel, 64 KiB per output stream and result, one run at a time.
    pub fn with_small_limits(default_timeout_ms: u64, memory_bytes: u64) -> Self {
        Sandbox::new(&format!(
            "[limits]\n\
             default_timeout_ms = {default_timeout_ms}\n\
             max_timeout_ms = 2000\n\
             fuel = 2000000000\n\
             memory_bytes = {memory_bytes}\n\
             stdout_bytes = 65536\n\
             stderr_bytes = 65536\n\
             max_result_bytes = 65536\n\
             max_concurrent_runs = 1\n"
        ))
    }

    /// Runs `args`, checks the run's invariants and, after a failed run, that the next works.
    pub fn run_and_check(&self, args: ExecuteArgs) {
        let (language, code, timeout_ms) = (args.language, args.code.clone(), args.timeout_ms);
        let (result, elapsed) = run(&self.rt, &self.service, args);
        check_run(&result, elapsed, &self.policy.limits, timeout_ms, &code);
        if result.status != Status::Ok {
            check_next_run_works(&self.rt, &self.service, language, &code);
        }
    }
}

/// Runs `args` to its end as the local caller, through the service's whole pipeline
/// (`Service::call`: the policy's decision, rate limits, admission, the run); returns the
/// result and the wall time the host took. The sandbox targets' policies admit every call,
/// so anything but a run's own status fails `check_run`.
pub fn run(
    rt: &tokio::runtime::Runtime,
    service: &Service,
    args: ExecuteArgs,
) -> (ExecutionResult, Duration) {
    let caller = Caller {
        grant: LOCAL_GRANT,
        session: SESSION,
    };
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let result = rt.block_on(service.call(Ok(args), &caller, NO_APPROVER, &cancel));
    (result, started.elapsed())
}

/// The invariants of any run under `limits` that asked for `timeout_ms`.
pub fn check_run(
    result: &ExecutionResult,
    elapsed: Duration,
    limits: &Limits,
    timeout_ms: Option<u64>,
    code: &str,
) {
    let budget = Duration::from_millis(limits.timeout_ms(timeout_ms));
    assert!(
        elapsed <= budget + SLACK,
        "the run took {elapsed:?}, its deadline was {budget:?} (+{SLACK:?} slack)\n\
         code: {code:?}\nresult: {result:#?}"
    );
    assert!(
        result.usage.memory_peak_bytes <= limits.memory_bytes,
        "memory peak {} over the cap {}\ncode: {code:?}",
        result.usage.memory_peak_bytes,
        limits.memory_bytes
    );
    assert!(
        result.usage.fuel <= limits.fuel,
        "fuel {} over the budget {}",
        result.usage.fuel,
        limits.fuel
    );
    assert!(
        result.stdout.len() as u64 <= limits.stdout_bytes
            && result.stderr.len() as u64 <= limits.stderr_bytes,
        "output over its cap: stdout {} stderr {}\ncode: {code:?}",
        result.stdout.len(),
        result.stderr.len()
    );
    assert_eq!(
        result.error.is_some(),
        result.status != Status::Ok,
        "status and error disagree\ncode: {code:?}\nresult: {result:#?}"
    );
    assert_eq!(result.is_error(), result.status != Status::Ok);
    assert!(
        matches!(
            result.status,
            Status::Ok | Status::Error | Status::Timeout | Status::OutOfFuel | Status::OutOfMemory
        ),
        "a run ended {:?}\ncode: {code:?}",
        result.status
    );
    if let Some(error) = &result.error {
        // The host's own failures are bugs whatever the program did. (A guest may report an
        // `InternalError` of its own, e.g. QuickJS's "stack overflow": those are fine.)
        const HOST_FAILURES: [&str; 6] = [
            "the run's thread failed",
            "the run failed: ",
            "setting up the run failed",
            "the guest reported a malformed outcome",
            "the guest ended without reporting a result",
            "the language's runtime is not loaded",
        ];
        assert!(
            error.kind != "InternalError"
                || !HOST_FAILURES.iter().any(|m| error.message.starts_with(m)),
            "the host failed\ncode: {code:?}\nresult: {result:#?}"
        );
    }
    let text = result.to_text();
    assert!(!text.is_empty() || result.status == Status::Ok);
    serde_json::to_value(result).expect("a result serializes");
}

/// After a failed run the next one must work: a trivial program gives its answer.
pub fn check_next_run_works(
    rt: &tokio::runtime::Runtime,
    service: &Service,
    language: Language,
    after: &str,
) {
    let code = match language {
        Language::Python => "print('ok')\n6 * 7",
        Language::Javascript | Language::Typescript => "console.log('ok'); 6 * 7",
    };
    let (result, _) = run(
        rt,
        service,
        ExecuteArgs {
            language,
            code: code.to_string(),
            timeout_ms: None,
            input: None,
            files: None,
            session: None,
            session_action: None,
        },
    );
    assert!(
        result.status == Status::Ok
            && result.result == serde_json::json!(42)
            && result.stdout == "ok\n",
        "a run after a failed run does not work\nfailed run's code: {after:?}\nnext result: {result:#?}"
    );
}
