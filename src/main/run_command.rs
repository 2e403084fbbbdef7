//! `warden run`: read the program, run it as the local caller (Ctrl-C cancels), print the
//! result for a terminal or as JSON.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use warden::contract::{ExecuteArgs, ExecutionResult};
use warden::policy::{Caller, LOCAL_GRANT};
use warden::service::Service;

pub fn read_program(file: &PathBuf) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut code = String::new();
        std::io::stdin()
            .read_to_string(&mut code)
            .context("reading the program from standard input")?;
        Ok(code)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
    }
}

pub async fn run(service: &Service, args: Result<ExecuteArgs, String>) -> ExecutionResult {
    let caller = Caller {
        grant: LOCAL_GRANT,
        session: "cli",
    };
    // Ctrl-C cancels the run like an MCP client's cancellation would.
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal.cancel();
        }
    });
    let result = service
        .call(args, &caller, "the command line cannot ask anyone", &cancel)
        .await;
    watcher.abort();
    result
}

pub fn print_result(result: &ExecutionResult, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, result)?;
        writeln!(out)?;
        return Ok(());
    }
    out.write_all(result.stdout.as_bytes())?;
    if result.truncated.stdout {
        writeln!(out, "\n[stdout truncated]")?;
    }
    let mut err = std::io::stderr().lock();
    err.write_all(result.stderr.as_bytes())?;
    if result.truncated.stderr {
        writeln!(err, "\n[stderr truncated]")?;
    }
    match &result.error {
        None if !result.result.is_null() => writeln!(out, "{}", result.result)?,
        None => {}
        Some(e) => {
            writeln!(err, "status: {}", result.status.as_str())?;
            writeln!(err, "{}: {}", e.kind, e.message)?;
            if let Some(tb) = &e.traceback {
                writeln!(err, "{tb}")?;
            }
        }
    }
    Ok(())
}
