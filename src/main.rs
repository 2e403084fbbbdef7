//! `warden`: serve the execute_code tool over MCP, or run one program from the command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

#[path = "main/run_command.rs"]
mod run_command;
#[path = "main/state.rs"]
mod state;
use run_command::{print_result, read_program, run};
use state::StateArgs;

use warden::audit::AuditLog;
use warden::contract::Language;
use warden::policy::{Caller, LOCAL_GRANT, Policy};
use warden::runtimes::{PythonGuest, Runtimes};
use warden::sandbox::SandboxConfig;
use warden::service::Service;

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "An MCP execute_code server with its sandbox and policy inside"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Common {
    /// Policy file (TOML). Without it the built-in policy (policies/default.toml) applies.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Where precompiled guests are cached [default: $WARDEN_CACHE_DIR or ~/.cache/warden].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Compile the guests in memory at start instead of using the on-disk cache.
    #[arg(long)]
    no_cache: bool,
    /// Serve this Python guest instead of the built-in one: a guest built with your own
    /// packages by `scripts/python_guest.py build` (docs/python-packages.md).
    #[arg(long, value_name = "FILE", env = "WARDEN_PYTHON_GUEST")]
    python_guest: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the execute_code tool over MCP: on stdin/stdout (one client; logs go to stderr),
    /// or with --http over Streamable HTTP for many callers.
    Serve {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        state: StateArgs,
        /// Serve Streamable HTTP on this address (e.g. 127.0.0.1:8080) instead of stdio.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
        /// Serve /metrics on this address instead of the --http one.
        #[arg(long, value_name = "ADDR", requires = "http")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// A Host header value to accept (repeatable); loopback names are accepted on loopback.
        #[arg(long = "allowed-host", value_name = "HOST", requires = "http")]
        allowed_hosts: Vec<String>,
        /// A browser Origin to accept, e.g. https://app.example.com:443 (repeatable).
        #[arg(long = "allowed-origin", value_name = "ORIGIN", requires = "http")]
        allowed_origins: Vec<String>,
        /// On SIGTERM/SIGINT, how long running calls may finish before they are cancelled.
        #[arg(long, value_name = "MS", default_value_t = 10_000, requires = "http")]
        grace_ms: u64,
    },
    /// Compile the guests for this machine into the cache, as the first start would, so that
    /// every start after it takes milliseconds (`make build` runs it).
    Prepare {
        #[command(flatten)]
        common: Common,
    },
    /// Check a policy, or explain what it decides for given arguments.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Run one program and print its output; the exit code is 0 only for status "ok".
    Run {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        state: StateArgs,
        #[arg(long, short, value_enum)]
        language: CliLanguage,
        /// Wall-clock limit in milliseconds (clamped to the policy's maximum).
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
        /// JSON value visible to the program as `input`.
        #[arg(long, value_name = "JSON")]
        input: Option<String>,
        /// Print the structured result (the MCP `structuredContent`) as JSON.
        #[arg(long)]
        json: bool,
        /// The program's file, or - for standard input.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy (TOML; PolicyLayer JSON by `.json`; Intercept YAML by `.yaml`/`.yml`),
    /// print the effective policy, and note (on stderr) the parts that apply to no call here.
    Check { file: PathBuf },
    /// Print the decision trace for a call's arguments (nothing runs, nothing is counted).
    Explain {
        file: PathBuf,
        /// The call's arguments as JSON, e.g. '{"language": "python", "code": "1"}'.
        #[arg(long, value_name = "JSON")]
        args: String,
        /// The caller's grant.
        #[arg(long, default_value = "local")]
        grant: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CliLanguage {
    #[value(alias = "js")]
    Javascript,
    #[value(alias = "ts")]
    Typescript,
    #[value(alias = "py")]
    Python,
}

impl From<CliLanguage> for Language {
    fn from(l: CliLanguage) -> Language {
        match l {
            CliLanguage::Javascript => Language::Javascript,
            CliLanguage::Typescript => Language::Typescript,
            CliLanguage::Python => Language::Python,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve { .. } => "info",
        Command::Policy { .. } | Command::Prepare { .. } | Command::Run { .. } => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: MCP clients keep a server's stderr in log files.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // Guests run on these threads (the blocking pool): their stacks must hold the largest
        // wasm stack a policy may set, or deep recursion would overflow the thread.
        .thread_stack_size(warden::policy::GUEST_THREAD_STACK_BYTES)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warden: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Policy { command } => policy_command(command),
        Command::Prepare { common } => {
            let dir = cache_dir(&common).context("there is nothing to prepare without a cache")?;
            let started = std::time::Instant::now();
            Service::with_runtimes(
                load_policy(&common)?,
                Some(dir.clone()),
                Arc::new(warden::policy::MemoryCounterStore::default()),
                runtimes(&common)?,
            )?;
            eprintln!(
                "warden: the guests are ready in {} ({:.1} s)",
                dir.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            common,
            state,
            http,
            metrics_addr,
            allowed_hosts,
            allowed_origins,
            grace_ms,
        } => {
            let service = service(&common, &state, Audit::AlwaysOn)?;
            if let Some(path) = &common.policy {
                tokio::spawn(warden::service::watch::watch(path.clone(), service.clone()));
            }
            let Some(addr) = http else {
                tracing::info!(languages = ?service.languages(), "serving MCP on stdio");
                warden::mcp::serve_stdio(service, state.keys()).await?;
                return Ok(ExitCode::SUCCESS);
            };
            let shutdown = CancellationToken::new();
            let on_signal = shutdown.clone();
            tokio::spawn(async move {
                wait_for_termination().await;
                on_signal.cancel();
            });
            let options = warden::mcp::HttpOptions {
                addr,
                metrics_addr,
                allowed_hosts,
                allowed_origins,
                grace: std::time::Duration::from_millis(grace_ms),
                state_keys: state.keys(),
            };
            warden::mcp::serve_http(service, options, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            common,
            state,
            language,
            timeout_ms,
            input,
            json,
            file,
        } => {
            let code = read_program(&file)?;
            let input = input
                .map(|text| serde_json::from_str(&text).context("--input is not valid JSON"))
                .transpose()?;
            let service = service(&common, &state, Audit::OnlyToAFile)?;
            let mut raw = serde_json::Map::new();
            raw.insert("language".into(), Language::from(language).as_str().into());
            raw.insert("code".into(), code.into());
            if let Some(ms) = timeout_ms {
                raw.insert("timeout_ms".into(), ms.into());
            }
            if let Some(v) = input {
                raw.insert("input".into(), v);
            }
            let result = run(&service, service.parse_args(LOCAL_GRANT, Some(&raw))).await;
            print_result(&result, json)?;
            Ok(if result.is_error() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_termination() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM ({e}); only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn policy_command(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Check { file } => {
            let (policy, notes) = Policy::load_with_notes(&file)?;
            print!("{}", policy.to_redacted_toml().map_err(anyhow::Error::msg)?);
            for note in notes {
                eprintln!("note: {note}");
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Explain { file, args, grant } => {
            let (policy, notes) = Policy::load_with_notes(&file)?;
            for note in notes {
                eprintln!("note: {note}");
            }
            let raw: serde_json::Value =
                serde_json::from_str(&args).context("--args is not valid JSON")?;
            let parsed = warden::contract::parse_args(
                raw.as_object(),
                &policy.argument_limits(&policy.limits),
                &Language::ALL,
            );
            let engine = warden::policy::PolicyEngine::new(
                policy,
                Arc::new(warden::policy::MemoryCounterStore::default()),
            )?;
            match parsed {
                Err(message) => {
                    println!("schema: invalid_arguments: {message}");
                    println!("decision: invalid_arguments (nothing is counted)");
                }
                Ok(args) => {
                    println!("schema: ok");
                    let caller = Caller {
                        grant: &grant,
                        session: "explain",
                    };
                    for line in engine.explain(&args, &caller) {
                        println!("{line}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The server audits every call (to stderr unless the policy names a file); `warden run`
/// audits only to a file, so that its own stderr stays the program's.
enum Audit {
    AlwaysOn,
    OnlyToAFile,
}

fn load_policy(common: &Common) -> anyhow::Result<Policy> {
    Ok(match &common.policy {
        Some(path) => {
            let (policy, notes) = Policy::load_with_notes(path)?;
            for note in notes {
                tracing::warn!("policy {}: {note}", path.display());
            }
            policy
        }
        None => Policy::builtin(),
    })
}

fn runtimes(common: &Common) -> anyhow::Result<Runtimes> {
    Ok(match &common.python_guest {
        Some(path) => Runtimes::with_python_guest(PythonGuest::load(path)?),
        None => Runtimes::builtin(),
    })
}

fn cache_dir(common: &Common) -> Option<PathBuf> {
    let chosen = || {
        common
            .cache_dir
            .clone()
            .or_else(SandboxConfig::default_cache_dir)
    };
    (!common.no_cache).then(chosen).flatten()
}

fn service(common: &Common, state: &StateArgs, audit: Audit) -> anyhow::Result<Arc<Service>> {
    // Before the guests compile: a locked or corrupt counter store is an error at once.
    let counters = state.config()?.open()?;
    let policy = load_policy(common)?;
    let audit_log = match audit {
        Audit::OnlyToAFile if policy.audit.path.is_none() => None,
        _ => Some(Arc::new(AuditLog::open(&policy.audit).with_context(
            || format!("opening the audit log {:?}", policy.audit.path),
        )?)),
    };
    let mut service =
        Service::with_runtimes(policy, cache_dir(common), counters, runtimes(common)?)?;
    if let Some(log) = audit_log {
        service = service.with_audit(log);
    }
    Ok(Arc::new(service))
}
