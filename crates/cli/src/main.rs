//! `ipcbench`: benchmarks inter-process transports from TOML run plans.
//!
//! Subcommands: `run` (measure a plan, write `run.json` and print a table), `serve` (an agent
//! that runs the peer side for a `run` on another machine), `list` (transports,
//! scenarios and their options), `compare` and `ci` (the regression gate), the hidden `peer`
//! (the other process of every trial, started by `run` itself), and the hidden `http-origin`
//! and `http-load` (ipcbench's HTTP origin and client on their own, for cross-checks). Exit codes: 0 success, 1 a case
//! failed (or, for `compare`/`ci`, a regression), 2 bad input.
#![forbid(unsafe_code)]

mod cleanup;
mod dispatch;
mod gate;
mod http;
mod output;
mod paired;
mod render;
mod rerun;
mod run;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// An error in what the user gave us (a config, a flag, a file): exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Benchmarks inter-process transports: latency, throughput, CPU cost.
#[derive(Debug, Parser)]
#[command(name = "ipcbench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs a plan (the built-in default plan when no file is given).
    Run(run::RunArgs),
    /// Lists transports, scenarios and their options.
    List,
    /// Renders a run's charts and reports again from its run.json.
    Report(render::ReportArgs),
    /// Compares two runs case by case; exits 1 on a regression (the regression gate).
    Compare(gate::CompareArgs),
    /// Runs a plan, compares it with a baseline (or, with --against, runs it paired with an older
    /// binary), re-runs flagged cases to confirm; exits 1 only for confirmed regressions.
    Ci(gate::CiArgs),
    /// Runs the peer side of trials for `ipcbench run` on another machine (an agent; plans name
    /// it with `peer = "IP:PORT"`).
    Serve(serve::ServeArgs),
    /// Serves ipcbench's HTTP origin on its own (for cross-checks such as h2load).
    #[command(hide = true, name = "http-origin")]
    HttpOrigin(http::OriginArgs),
    /// Loads an HTTP server with ipcbench's client, closed loop (for cross-checks).
    #[command(hide = true, name = "http-load")]
    HttpLoad(http::LoadArgs),
    /// Cleans up after a run that dies (started by `run`; not for direct use).
    #[command(hide = true)]
    Cleanup {
        /// What the run may leave behind, JSON.
        #[arg(long)]
        spec: String,
    },
    /// Serves one trial as the peer process (started by `run`; not for direct use).
    #[command(hide = true)]
    Peer {
        /// The trial's specification, JSON.
        #[arg(long)]
        spec: String,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::List => {
            print!("{}", run::list());
            Ok(ExitCode::SUCCESS)
        }
        Command::Peer { spec } => run::peer(&spec),
        Command::Serve(args) => serve::serve(args),
        Command::HttpOrigin(args) => http::origin(args),
        Command::HttpLoad(args) => http::load(args),
        Command::Cleanup { spec } => cleanup::watch(&spec).map(|()| ExitCode::SUCCESS),
        Command::Report(args) => render::report(args),
        Command::Compare(args) => gate::compare_command(args),
        Command::Ci(args) => gate::ci_command(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
