//! Where rate-limit counters live (`--state-*`, named as PolicyLayer's gateway names them).

use std::path::PathBuf;

use clap::ValueEnum;
use warden::counters::{DEFAULT_PREFIX, StateConfig};
use warden::mcp::StateKeys;
use warden::policy::FailMode;

#[derive(clap::Args)]
pub struct StateArgs {
    /// Directory of the embedded counter database (counters.sqlite); unused with --state-dsn
    /// [default: $XDG_STATE_HOME/warden, i.e. ~/.local/state/warden].
    #[arg(long, value_name = "DIR", env = "WARDEN_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Shared counters for replicas: redis://[user:password@]host:port[/db] (rediss:// for
    /// TLS); `memory:` keeps them in this process only (lost at exit).
    #[arg(long, value_name = "DSN", env = "WARDEN_STATE_DSN")]
    state_dsn: Option<String>,
    /// Prepended to every counter key on Redis, so that deployments can share one.
    #[arg(long, value_name = "PREFIX", env = "WARDEN_STATE_PREFIX", default_value = DEFAULT_PREFIX)]
    state_prefix: String,
    /// When the counter store cannot be reached: `closed` refuses calls that a rate limit or
    /// counter condition applies to, `open` lets them through uncounted. Both are audited.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        env = "WARDEN_STATE_FAIL_MODE",
        default_value = "closed"
    )]
    state_fail_mode: CliFailMode,
    /// The keyring sealing approval questions, shared by replicas so that a question asked by
    /// one is answered on another: lines of `<key-id> <secret>` (32+ bytes), the first sealing;
    /// re-read when it changes. Without it (or $WARDEN_STATE_KEYS) the key is this process's.
    #[arg(long, value_name = "FILE", env = "WARDEN_STATE_KEY_FILE")]
    state_key_file: Option<PathBuf>,
    /// PEM certificates to trust for a rediss:// store instead of the web PKI roots.
    #[arg(long, value_name = "FILE", env = "WARDEN_STATE_CA_FILE")]
    state_ca_file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum CliFailMode {
    Closed,
    Open,
}

impl StateArgs {
    /// The approval keyring: the file, else `$WARDEN_STATE_KEYS` (the keyring itself, entries
    /// separated by `;` or newlines), else a random key.
    pub fn keys(&self) -> StateKeys {
        match (&self.state_key_file, std::env::var("WARDEN_STATE_KEYS")) {
            (Some(file), _) => StateKeys::File(file.clone()),
            (None, Ok(text)) if !text.trim().is_empty() => StateKeys::Text(text),
            _ => StateKeys::Random,
        }
    }

    pub fn config(&self) -> anyhow::Result<StateConfig> {
        let dir = match &self.state_dir {
            Some(dir) => dir.clone(),
            None => StateConfig::default_dir().ok_or_else(|| {
                anyhow::anyhow!("no state directory: set --state-dir or $WARDEN_STATE_DIR")
            })?,
        };
        Ok(StateConfig {
            dir,
            dsn: self.state_dsn.clone().filter(|d| !d.is_empty()),
            prefix: self.state_prefix.clone(),
            fail_mode: match self.state_fail_mode {
                CliFailMode::Closed => FailMode::Closed,
                CliFailMode::Open => FailMode::Open,
            },
            ca_file: self.state_ca_file.clone(),
        })
    }
}
