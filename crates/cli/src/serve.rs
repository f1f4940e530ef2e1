//! `ipcbench serve`: the agent that runs the peer side of trials for a runner on another
//! machine (the harness's `agent` module does the work; this file reads the flags and prints).

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use ipcbench_harness::agent::{self, ServeConfig};
use ipcbench_harness::agent_wire::{AgentLimits, MAX_TOKEN_BYTES, PROTOCOL_VERSION, Secret};
use ipcbench_harness::session::PeerCommand;

use crate::UsageError;

/// Arguments of `ipcbench serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to accept control connections, IP:PORT (required: there is no default, so an
    /// agent never listens on every interface by accident; port 0 picks a free port).
    #[arg(long, value_name = "IP:PORT")]
    listen: String,
    /// A file holding the shared secret that clients must prove (challenge-response; the
    /// secret never crosses the network). Without it, anyone who reaches the port may run trials.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Refuse a case that opens more connections than this.
    #[arg(long, value_name = "N")]
    max_connections: Option<u64>,
    /// Refuse a trial whose warm-up plus measured phase is longer than this (e.g. 30s); its
    /// peer is killed soon after it either way.
    #[arg(long, value_name = "DURATION")]
    max_duration: Option<String>,
    /// Refuse a case that offers more messages per second (over all its connections) than this.
    #[arg(long, value_name = "MESSAGES_PER_S")]
    max_rate: Option<f64>,
    /// Claim another control protocol version (for testing the version check).
    #[arg(long, hide = true)]
    claim_protocol_version: Option<u32>,
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Reads a shared secret (`--token-file`): a regular file of at most `MAX_TOKEN_BYTES`, not
/// empty.
///
/// # Errors
/// A [`UsageError`] naming the file.
pub fn read_token(path: &Path) -> Result<Secret> {
    let bytes = crate::run::read_small_file(
        path,
        MAX_TOKEN_BYTES,
        "token file",
        "give a file holding the shared secret",
    )?;
    Secret::new(&bytes).map_err(|e| usage(format!("token file {}: {e}", path.display())))
}

fn limits(args: &ServeArgs) -> Result<AgentLimits> {
    let max_duration_ns = args
        .max_duration
        .as_ref()
        .map(|text| {
            humantime::parse_duration(text)
                .ok()
                .filter(|d| !d.is_zero())
                .and_then(|d| u64::try_from(d.as_nanos()).ok())
                .ok_or_else(|| usage(format!("--max-duration: bad duration `{text}`; expected e.g. 30s, 5m")))
        })
        .transpose()?;
    if args.max_connections == Some(0) {
        return Err(usage("--max-connections must be at least 1"));
    }
    if let Some(rate) = args.max_rate
        && !(rate > 0.0 && rate.is_finite())
    {
        return Err(usage("--max-rate must be a positive number of messages per second"));
    }
    Ok(AgentLimits {
        max_connections: args.max_connections,
        max_duration_ns,
        max_rate_hz: args.max_rate,
    })
}

/// `ipcbench serve`: serves until killed (or until accepting fails).
pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    let listen: SocketAddr = args.listen.parse().map_err(|_| {
        usage(format!(
            "--listen `{}`: expected IP:PORT, such as 192.0.2.10:7100",
            args.listen
        ))
    })?;
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    let limits = limits(&args)?;
    let listener = TcpListener::bind(listen).map_err(|e| usage(format!("--listen {listen}: cannot listen: {e}")))?;
    let bound = listener.local_addr().context("cannot read the listening address")?;
    if token.is_none() {
        eprintln!(
            "warning: no --token-file: anyone who can reach {bound} can run ipcbench peers on this machine; give a \
             shared secret with --token-file FILE (the client passes the same file to `ipcbench run --token-file`)"
        );
    }
    let config = ServeConfig {
        peer_command: PeerCommand {
            program: std::env::current_exe().context("cannot find the running binary to start peers")?,
            args: vec!["peer".into()],
        },
        build: crate::run::build_info(),
        token,
        limits,
        protocol_version: args.claim_protocol_version.unwrap_or(PROTOCOL_VERSION),
    };
    // The first line on stdout is the address, for scripts that asked for port 0.
    println!("ipcbench serve: listening on {bound}");
    let _ = std::io::stdout().flush();
    let log: agent::Log = Arc::new(|line: &str| eprintln!("serve: {line}"));
    let error = agent::serve(listener, config, log);
    Err(anyhow::Error::new(error).context(format!("cannot accept on {bound}")))
}
