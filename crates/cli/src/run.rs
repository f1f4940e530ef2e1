//! `ipcbench run`, `ipcbench list` and the hidden `ipcbench peer`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use ipcbench_core::Transport;
use ipcbench_harness::agent_wire::Secret;
use ipcbench_harness::dispatch::{Dispatch, TransportVisitor};
use ipcbench_harness::env::BuildInfo;
use ipcbench_harness::plan::{DEFAULT_PLAN, Overrides, Plan, ScenarioKind, TransportKind};
use ipcbench_harness::protocol::PeerSpec;
use ipcbench_harness::remote::Agent;
use ipcbench_harness::runner::{self, RunOptions};
use ipcbench_harness::session::PeerCommand;
use ipcbench_record::{RunRecord, Status};

use crate::UsageError;
use crate::cleanup;
use crate::dispatch::CliDispatch;
use crate::output::RunOutput;

/// Arguments of `ipcbench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan (TOML); without it, the built-in default plan.
    config: Option<PathBuf>,
    /// Print the expanded case matrix and the estimated run time; measure nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replace every scenario's transports (comma-separated: tcp,uds,pipe,shm,inproc,null).
    #[arg(long, value_delimiter = ',')]
    transports: Option<Vec<String>>,
    /// Replace every scenario's message sizes (comma-separated: 64,4KiB,1MiB).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<String>>,
    /// Replace the number of repetitions (fresh launches per case).
    #[arg(long)]
    repetitions: Option<u32>,
    /// Replace the measured phase's length (e.g. 500ms).
    #[arg(long)]
    duration: Option<String>,
    /// Replace the warm-up's length (e.g. 100ms).
    #[arg(long)]
    warmup: Option<String>,
    /// Override any plan key by its dotted path before the plan is checked (repeatable):
    /// transport.null.delay_ns=400, scenario.0.message_bytes=64, duration=200ms.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Write results here instead of results/NAME-UTCTIME/.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write into an existing non-empty --out folder (files of the same name are replaced).
    #[arg(long)]
    force: bool,
    /// The shared secret of the plan's agents (`peer = "IP:PORT"`), as given to their
    /// `ipcbench serve --token-file`.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

fn overrides(args: &RunArgs) -> Result<Overrides> {
    let transports = args
        .transports
        .as_ref()
        .map(|names| {
            names
                .iter()
                .map(|n| {
                    n.trim()
                        .parse::<TransportKind>()
                        .map_err(|e| usage(format!("--transports: {e}")))
                })
                .collect()
        })
        .transpose()?;
    let sizes = args
        .sizes
        .as_ref()
        .map(|sizes| {
            sizes
                .iter()
                .map(|s| {
                    s.parse::<ipcbench_harness::plan::ByteSize>()
                        .map(|b| b.0)
                        .map_err(|e| usage(format!("--sizes: {e}")))
                })
                .collect()
        })
        .transpose()?;
    let duration = |flag: &str, text: &Option<String>| -> Result<Option<Duration>> {
        text.as_ref()
            .map(|t| {
                humantime::parse_duration(t)
                    .map_err(|e| usage(format!("{flag}: bad duration `{t}`: {e}; expected e.g. 500ms, 2s")))
            })
            .transpose()
    };
    if args.repetitions == Some(0) {
        return Err(usage("--repetitions must be at least 1"));
    }
    Ok(Overrides {
        transports,
        sizes,
        repetitions: args.repetitions,
        duration: duration("--duration", &args.duration)?,
        warmup: duration("--warmup", &args.warmup)?,
        sets: plan_sets(&args.sets)?,
    })
}

/// Reads `--set KEY=VALUE` flags; a malformed one is bad input.
pub fn plan_sets(sets: &[String]) -> Result<Vec<ipcbench_harness::plan::PlanSet>> {
    sets.iter().map(|s| s.parse().map_err(usage)).collect()
}

/// Reads and expands the plan named on the command line (or the built-in one).
pub fn load_plan(config: Option<&PathBuf>, overrides: &Overrides) -> Result<Plan> {
    let (name, text) = match config {
        Some(path) => (path.display().to_string(), read_plan_file(path)?),
        None => ("built-in default".to_owned(), DEFAULT_PLAN.to_owned()),
    };
    let n_cores = ipcbench_harness::affinity::online_cores();
    let plan = Plan::parse(&name, &text, overrides, n_cores).map_err(|e| usage(e.to_string()))?;
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    Ok(plan)
}

/// Reads a plan file: a regular file of at most `MAX_PLAN_BYTES`.
fn read_plan_file(path: &Path) -> Result<String> {
    let bytes = read_small_file(
        path,
        ipcbench_harness::plan::limits::MAX_PLAN_BYTES,
        "plan",
        "give a TOML file",
    )?;
    String::from_utf8(bytes).map_err(|_| usage(format!("cannot read plan {}: it is not UTF-8 text", path.display())))
}

/// Reads a small regular file named on the command line (a plan, a token) of at most `max`
/// bytes, checked before it is opened (opening a FIFO would block until a writer appears).
/// Every error is bad input naming `what` and the path.
pub(crate) fn read_small_file(path: &Path, max: u64, what: &str, give: &str) -> Result<Vec<u8>> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path).map_err(|e| usage(format!("cannot read {what} {}: {e}", path.display())))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        return Err(usage(format!("{what} {} is {kind}; {give}", path.display())));
    }
    if meta.len() > max {
        return Err(usage(format!(
            "{what} {} has {} bytes; a {what} may have at most {max} bytes",
            path.display(),
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| usage(format!("cannot read {what} {}: {e}", path.display())))?;
    Ok(bytes)
}

pub(crate) fn build_info() -> BuildInfo {
    BuildInfo {
        rustc_version: env!("IPCBENCH_RUSTC_VERSION").to_owned(),
        ipcbench_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: Some(env!("IPCBENCH_GIT_COMMIT").to_owned()).filter(|c| !c.is_empty()),
    }
}

fn dry_run(plan: &Plan) -> String {
    let mut out = format!(
        "plan `{}` from {}: {} cases\n",
        plan.name,
        plan.source_name,
        plan.cases.len()
    );
    for case in &plan.cases {
        let estimate = ipcbench_harness::plan::estimate_trial(case) * case.repetitions;
        out.push_str(&format!(
            "  {:<60} x{}  ~{:.1}s\n",
            case.id,
            case.repetitions,
            estimate.as_secs_f64()
        ));
    }
    let total = plan.estimated_duration();
    out.push_str(&format!(
        "estimated run time: {} (plus start-up calibration, about 1 s)\n",
        humantime::format_duration(Duration::from_secs(total.as_secs()))
    ));
    out
}

/// `ipcbench run`.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    let overrides = overrides(&args)?;
    let plan = load_plan(args.config.as_ref(), &overrides)?;
    if args.dry_run {
        print!("{}", dry_run(&plan));
        return Ok(ExitCode::SUCCESS);
    }
    let token = args.token_file.as_deref().map(crate::serve::read_token).transpose()?;
    let executed = execute_with(&plan, args.out.as_deref(), args.force, token.as_ref())?;
    let record = &executed.record;
    print!("{}", ipcbench_report::terminal_tables(record));
    if record.interrupted {
        eprintln!(
            "interrupted: the completed cases are in {}",
            executed.dir.join("run.json").display()
        );
        return Ok(ExitCode::from(130));
    }
    println!("\nresults: {}", executed.dir.join("run.json").display());
    if !record.cases.is_empty() && record.cases.iter().all(|c| c.status == Status::Unsupported) {
        eprintln!(
            "no case could run: all {} are unsupported here ({})",
            record.cases.len(),
            record
                .cases
                .first()
                .and_then(|c| c.reason.as_deref())
                .unwrap_or("no reason given")
        );
        return Ok(ExitCode::from(1));
    }
    let failed = record.cases.iter().filter(|c| c.status == Status::Failed).count();
    if failed > 0 {
        eprintln!("{failed} case(s) failed; see the notes above and run.json");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// A finished (or interrupted) run and where its files are.
pub struct Executed {
    /// The record, as written to `run.json`.
    pub record: RunRecord,
    /// The folder holding `run.json` and the report (`<dir>/partial` when interrupted).
    pub dir: PathBuf,
}

/// Contacts every agent the plan names before anything is measured: an agent that cannot be
/// reached, speaks another version, rejects the token or would refuse a case is bad input.
fn contact_agents(plan: &Plan, token: Option<&Secret>) -> Result<Vec<Agent>> {
    let mut agents = Vec::new();
    for address in plan.agents() {
        let agent = ipcbench_harness::remote::contact(address, token).map_err(|e| usage(e.to_string()))?;
        let refuse = |reason: String| usage(format!("the agent at {address} would refuse the plan: {reason}"));
        let cores = agent.welcome.environment.cores;
        let beyond_cores = |case: &ipcbench_harness::plan::Case, side: &str, core: usize| {
            usage(format!(
                "case {} pins the {side} to core {core}, but the agent at {address} has {cores} cores; set `cores` \
                 to [client, server] pairs that exist on both machines",
                case.id
            ))
        };
        for case in plan.cases.iter().filter(|c| c.peer == Some(address)) {
            if let Some(reason) = agent.welcome.limits.refusal(case) {
                return Err(refuse(reason));
            }
            if case.placement.server >= cores {
                return Err(beyond_cores(case, "server", case.placement.server));
            }
        }
        // A generator agent holds its share of the fleet: that share is what its limits bound.
        for case in plan.cases.iter() {
            let Some(k) = case.generators.iter().position(|&a| a == address) else {
                continue;
            };
            let connections = case
                .connections
                .unwrap_or(ipcbench_harness::scenario::load::DEFAULT_CONNECTIONS);
            let share = case.generator_shares(connections)[k];
            if let Some(reason) = agent.welcome.limits.refusal_of_share(case, share, " as a generator") {
                return Err(refuse(reason));
            }
            if case.placement.client >= cores {
                return Err(beyond_cores(case, "generator", case.placement.client));
            }
        }
        eprintln!(
            "agent {address}: ipcbench {} on {} ({}, {} cores, kernel {})",
            agent.welcome.ipcbench_version,
            agent.welcome.environment.hostname,
            agent.welcome.environment.cpu_model,
            agent.welcome.environment.cores,
            agent.welcome.environment.kernel
        );
        agents.push(agent);
    }
    Ok(agents)
}

/// Measures `plan`, writes `run.json` and the report into `out` (or `results/<name>-<time>/`;
/// an existing non-empty `out` only when `force`), with a progress bar on stderr; prints
/// warnings; proves `token` to the plan's agents. Used by `run` and by `ci`.
pub fn execute_with(plan: &Plan, out: Option<&Path>, force: bool, token: Option<&Secret>) -> Result<Executed> {
    let agents = contact_agents(plan, token)?;
    let stop = stop_flag()?;
    let mut output = RunOutput::create(&plan.name, out, force)?;
    let out_parent = output
        .final_dir()
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    for note in cleanup::sweep(&out_parent) {
        eprintln!("note: {note}");
    }
    let work_dir = tempfile::Builder::new()
        .prefix("ipcbench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    std::fs::write(
        work_dir.path().join(cleanup::OWNER_FILE),
        std::process::id().to_string(),
    )
    .context("cannot write the work directory's owner file")?;
    // Cleans up after this process if it dies before the end (kill -9 included).
    let mut watcher = cleanup::Watcher::start(&cleanup::Leftovers {
        work_dir: Some(work_dir.path().to_owned()),
        staging: Some(output.staging_dir().to_owned()),
        partial: Some(output.partial_dir()),
        lock: Some(output.lock_file().to_owned()),
    })?;
    let options = RunOptions {
        peer_command: PeerCommand {
            program: std::env::current_exe().context("cannot find the running binary to start peers")?,
            args: vec!["peer".into()],
        },
        work_dir: work_dir.path().to_owned(),
        build: build_info(),
        stop,
        agents,
    };
    eprintln!(
        "ipcbench: plan `{}` ({} cases, about {}) -> {}",
        plan.name,
        plan.cases.len(),
        humantime::format_duration(Duration::from_secs(plan.estimated_duration().as_secs())),
        output.final_dir().display()
    );
    let total: u64 = plan.cases.iter().map(|c| u64::from(c.repetitions)).sum();
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} trials  {elapsed_precise}  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut save_error = None;
    let record = runner::run(plan, &CliDispatch, &options, &mut |progress, record| {
        bar.set_position(progress.done as u64);
        bar.set_message(progress.case.id.clone());
        if let Err(e) = output.save_partial(record) {
            save_error.get_or_insert(e);
        }
    });
    bar.finish_and_clear();
    if let Some(e) = save_error {
        eprintln!("warning: could not save partial results: {e:#}");
    }
    for warning in &record.warnings {
        eprintln!("warning: {warning}");
    }
    if let Err(e) = crate::render::render_into(&record, output.staging_dir()) {
        eprintln!("warning: could not render the report: {e:#}");
    }
    let dir = output.finish(&record)?;
    drop(work_dir);
    watcher.dismiss();
    Ok(Executed { record, dir })
}

/// The process-wide stop flag, set by Ctrl-C (installed once, shared by every run).
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    if let Some(stop) = STOP.get() {
        return Ok(Arc::clone(stop));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let handler_stop = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        // Relaxed: the runner polls the flag; it publishes nothing else.
        if handler_stop.swap(true, Ordering::Relaxed) {
            // The second interrupt: leave now; the clean-up watcher removes what is left.
            eprintln!("\ninterrupted again: exiting now");
            ipcbench_harness::process::kill_all();
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping the trial in flight (interrupt again to exit at once)");
        ipcbench_harness::session::request_stop();
        // A trial waiting on its peer ends when the peer is gone.
        ipcbench_harness::process::kill_all();
    })
    .context("cannot install the Ctrl-C handler")?;
    Ok(Arc::clone(STOP.get_or_init(|| stop)))
}

/// `ipcbench list`.
pub fn list() -> String {
    let mut out = String::from("Transports (config name, options under [transport.<name>]):\n");
    for kind in TransportKind::ALL {
        out.push_str(&format!("  {}\n", kind.as_str()));
        for (key, help) in kind.options_help() {
            out.push_str(&format!("      {key:<20} {help}\n"));
        }
    }
    out.push_str("\nScenarios (kind = ...):\n");
    for kind in ScenarioKind::ALL {
        let state = if ipcbench_harness::scenario::supported(kind) {
            ""
        } else {
            "  [not implemented yet]"
        };
        out.push_str(&format!("  {:<10} {}{state}\n", kind.as_str(), kind.describe()));
    }
    out.push_str(
        "\nEvery scenario takes: transports, message_bytes (a list sweeps sizes), repetitions, warmup, duration or \
         messages, cores ([client, server] or a list of pairs).\n",
    );
    out.push_str(
        "pingpong, stream, rpc and load also take peer = \"IP:PORT\" (at the top or per scenario): their server side \
         runs on that `ipcbench serve` agent, over tcp only (`run --token-file` proves its secret).\n",
    );
    out.push_str(
        "load also takes generators = [\"IP:PORT\", ...] (at the top or per scenario): its client connections are \
         shared out over those agents, one generator process each, over tcp only.\n",
    );
    out.push_str(
        "http takes instead of transports and message_bytes: front, back (\"h1\"/\"h2\" lists), response_bytes \
         (list), connections (list), streams, cache_hit_ratio (list, 0..1), pool_connections, keep_alive, tls, \
         request_headers = { count, value_bytes }, rate (\"max\" or requests/s per connection), back_transport \
         (\"tcp\"/\"uds\"), relay (\"nginx\" or \"127.0.0.1:PORT\" with origin_listen and relay_pid).\n",
    );
    out
}

struct PeerVisitor<'a>(&'a PeerSpec);

impl TransportVisitor for PeerVisitor<'_> {
    type Output = Result<(), ipcbench_harness::session::TrialError>;
    fn visit<T: Transport + 'static>(self, transport: T) -> Self::Output {
        ipcbench_harness::peer::serve(&transport, self.0)
    }
}

/// The hidden `ipcbench peer`: serves one trial, reports failure on stderr for the parent.
pub fn peer(spec: &str) -> Result<ExitCode> {
    ipcbench_harness::peer::die_with_parent();
    let spec: PeerSpec = serde_json::from_str(spec).map_err(|e| usage(format!("bad peer spec: {e}")))?;
    // The proxy's relay needs two transports.
    if ipcbench_harness::peer::needs_pair(&spec) {
        ipcbench_harness::peer::serve_pair(&CliDispatch, &spec)?;
        return Ok(ExitCode::SUCCESS);
    }
    CliDispatch
        .dispatch(&spec.case.transport, PeerVisitor(&spec))
        .map_err(anyhow::Error::msg)??;
    Ok(ExitCode::SUCCESS)
}
