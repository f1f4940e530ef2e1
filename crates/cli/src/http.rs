//! The hidden `ipcbench http-origin` and `ipcbench http-load`: ipcbench's HTTP origin and load
//! client on their own, for cross-checks against other tools (`scripts/compare-h2load.sh` runs
//! h2load and `http-load` against one `http-origin`). The `http` scenario does not use them.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use ipcbench_http::{
    Address, Client, ClientConfig, Origin, OriginConfig, Protocol, Rate, RequestHeaders, ServerProtocol, Stop,
};

use crate::UsageError;

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

fn duration(flag: &str, text: &str) -> Result<Duration> {
    humantime::parse_duration(text).map_err(|e| usage(format!("{flag}: bad duration `{text}`: {e}")))
}

fn pin(core: Option<usize>) -> Result<()> {
    if let Some(core) = core {
        ipcbench_harness::affinity::pin_current_thread(core).map_err(usage)?;
    }
    Ok(())
}

/// Arguments of `ipcbench http-origin`.
#[derive(Debug, Args)]
pub struct OriginArgs {
    /// Where to listen (`127.0.0.1:PORT`, port 0 for a free one, or `unix:PATH`).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Body size for paths that do not name one (`/obj/<bytes>/...` always does).
    #[arg(long, default_value_t = 1024)]
    response_bytes: u64,
    /// Pin the origin to this core.
    #[arg(long)]
    core: Option<usize>,
    /// Stop after this long (e.g. 60s); without it, serve until killed.
    #[arg(long)]
    duration: Option<String>,
}

/// `ipcbench http-origin`: prints `listening on ADDRESS`, then serves h1 and h2 (prior
/// knowledge) until killed or `--duration` passed; prints the requests it answered.
pub fn origin(args: OriginArgs) -> Result<ExitCode> {
    let listen: Address = args.listen.parse().map_err(|e| usage(format!("--listen: {e}")))?;
    let stop = match &args.duration {
        Some(text) => Stop::with_deadline(Instant::now() + duration("--duration", text)?),
        None => Stop::new(),
    };
    pin(args.core)?;
    let origin = Origin::bind(OriginConfig {
        listen,
        protocol: ServerProtocol::Auto,
        response_bytes: args.response_bytes,
        ..OriginConfig::default()
    })
    .context("cannot start the origin")?;
    println!("listening on {}", origin.address());
    std::io::stdout().flush().context("stdout")?;
    let report = origin.run(&stop).context("the origin failed")?;
    println!(
        "answered {} requests on {} connections",
        report.n_requests, report.n_connections
    );
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `ipcbench http-load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The server to load (`127.0.0.1:PORT` or `unix:PATH`).
    #[arg(long)]
    target: String,
    /// `h1` or `h2` (cleartext; h2 by prior knowledge).
    #[arg(long, default_value = "h2")]
    protocol: String,
    /// Connections.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Body size asked for and checked.
    #[arg(long, default_value_t = 1024)]
    response_bytes: u64,
    /// Extra request headers (0: only the protocol's own).
    #[arg(long, default_value_t = 0)]
    headers: usize,
    /// Discarded warm-up.
    #[arg(long, default_value = "500ms")]
    warmup: String,
    /// Measured phase (closed loop).
    #[arg(long, default_value = "2s")]
    duration: String,
    /// Pin the client to this core.
    #[arg(long)]
    core: Option<usize>,
}

/// `ipcbench http-load`: a closed-loop block against `--target`; prints one JSON line with
/// requests, requests per second, errors and latency percentiles.
pub fn load(args: LoadArgs) -> Result<ExitCode> {
    let target: Address = args.target.parse().map_err(|e| usage(format!("--target: {e}")))?;
    let protocol: Protocol = args.protocol.parse().map_err(|e| usage(format!("--protocol: {e}")))?;
    let config = ClientConfig {
        target,
        protocol,
        connections: args.connections,
        streams: args.streams,
        response_bytes: args.response_bytes,
        request_headers: RequestHeaders {
            count: args.headers,
            value_bytes: RequestHeaders::default().value_bytes,
        },
        rate: Rate::Max,
        ..ClientConfig::default()
    };
    config.validate().map_err(|e| usage(e.to_string()))?;
    let (warmup, measure) = (
        duration("--warmup", &args.warmup)?,
        duration("--duration", &args.duration)?,
    );
    pin(args.core)?;
    let mut client = Client::connect(config).context("cannot connect")?;
    let block = client.run(warmup, measure).context("the load failed")?;
    let record = serde_json::json!({
        "requests": block.n_requests,
        "requests_per_s": block.requests_per_s(),
        "errors": block.n_errors,
        "first_error": block.first_error,
        "p50_ns": block.latency_ns.value_at_quantile(0.5),
        "p99_ns": block.latency_ns.value_at_quantile(0.99),
    });
    println!("{record}");
    Ok(ExitCode::SUCCESS)
}
