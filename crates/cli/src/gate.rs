//! `ipcbench compare` and `ipcbench ci`: the regression gate's arguments, files and exit codes.
//!
//! The method, the confirmation policy, the verdict texts and the exports live in
//! `ipcbench_gate`; this file reads the records, resolves the settings (defaults, then the
//! plan's `[gate]` table, then `--threshold` flags), runs the re-runs the gate asks for (and,
//! with `--against`, the paired run of `crate::paired`), and
//! writes what the user asked for. Exit codes: 0 no regression, 1 a regression (or a case that
//! newly fails), 2 bad input, 130 interrupted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use ipcbench_gate::export::{Bmf, Exporter, GithubBenchmark};
use ipcbench_gate::{CompareOptions, Comparison, ConfirmError, ConfirmOutcome, GateSettings, GateTable};
use ipcbench_harness::env::{self, BuildInfo};
use ipcbench_harness::plan::Overrides;
use ipcbench_record::RunRecord;

use crate::UsageError;
use crate::output::write_atomically;
use crate::paired::{PairedPlan, PairedRerun};
use crate::render::comparison_chart;
use crate::rerun::{PlanRerun, execute_on_own_thread};
use crate::run;

/// The plan `ipcbench ci` runs when none is named.
pub const DEFAULT_CI_PLAN: &str = "bench-configs/ci.toml";

/// Settings and outputs shared by `compare` and `ci`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Override a threshold (a fraction: 0.2 = 20%) or the significance level:
    /// p50=0.2, p99=0.3, throughput=0.15, cpu_per_message=0.2, alpha=0.01 (repeatable or
    /// comma-separated).
    #[arg(long = "threshold", value_name = "KEY=VALUE", value_delimiter = ',')]
    thresholds: Vec<String>,
    /// Compare runs from different machines (CPU model, cores, kernel) instead of refusing.
    #[arg(long)]
    allow_different_machine: bool,
    /// Write a Markdown summary (for a pull-request comment) to this file.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Write the whole comparison as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the new run's latencies and CPU per message in github-action-benchmark's
    /// `customSmallerIsBetter` format.
    #[arg(long, value_name = "FILE")]
    github_benchmark: Option<PathBuf>,
    /// Write the new run's throughput in github-action-benchmark's `customBiggerIsBetter` format.
    #[arg(long, value_name = "FILE")]
    github_benchmark_bigger: Option<PathBuf>,
    /// Write the new run's figures in Bencher Metric Format (BMF) JSON.
    #[arg(long, value_name = "FILE")]
    bmf: Option<PathBuf>,
}

/// Arguments of `ipcbench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a run.json (or the folder holding it).
    old: PathBuf,
    /// The run to check: a run.json (or the folder holding it).
    new: PathBuf,
    #[command(flatten)]
    gate: GateArgs,
}

/// Arguments of `ipcbench ci`.
#[derive(Debug, Args)]
pub struct CiArgs {
    /// The baseline run.json to compare against.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "against",
        conflicts_with = "against"
    )]
    baseline: Option<PathBuf>,
    /// Paired mode: run every case round by round with this (older) ipcbench binary and with
    /// this one, back to back on the same cores, and judge the per-round ratios.
    #[arg(long, value_name = "OLD_BINARY")]
    against: Option<PathBuf>,
    /// Rounds per case in paired mode (one old and one new trial each; at least 6 for the
    /// signed-rank test to reach p < 0.05).
    #[arg(long, default_value_t = 10, value_name = "N", requires = "against")]
    rounds: usize,
    /// Override a plan key by its dotted path (repeatable): transport.null.delay_ns=400. With
    /// --against, only the new side runs with it.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// The plan to run [default: bench-configs/ci.toml].
    config: Option<PathBuf>,
    /// Write results here instead of results/NAME-UTCTIME/.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Re-runs of the flagged cases before a regression counts (0: no confirmation). The
    /// re-runs' trials are pooled per case and compared with the baseline on their own.
    #[arg(long, default_value_t = 2, value_name = "N")]
    confirm: u32,
    /// The shared secret of the plan's agents (`peer`, `generators`), as given to `ipcbench
    /// serve --token-file`; proved, never sent. Baseline mode only.
    #[arg(long, value_name = "FILE", conflicts_with = "against")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    gate: GateArgs,
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Reads a run record (a run.json or the folder holding it); any failure is bad input.
fn load(path: &Path, role: &str) -> Result<RunRecord> {
    let file = if path.is_dir() {
        path.join("run.json")
    } else {
        path.to_owned()
    };
    ipcbench_report::load_record(&file).map_err(|e| usage(format!("the {role} run: {:#}", anyhow::Error::from(e))))
}

fn options(table: Option<&GateTable>, args: &GateArgs) -> Result<CompareOptions> {
    let settings = GateSettings::resolve(table, &args.thresholds).map_err(|e| usage(e.to_string()))?;
    let allow_different_machine = args.allow_different_machine;
    Ok(CompareOptions {
        settings,
        allow_different_machine,
    })
}

/// `ipcbench compare OLD NEW`.
pub fn compare_command(args: CompareArgs) -> Result<ExitCode> {
    let (old, new) = (load(&args.old, "old")?, load(&args.new, "new")?);
    let table = GateTable::of_record(&new).map_err(|e| usage(format!("{}: config.gate: {e}", args.new.display())))?;
    let options = options(table.as_ref(), &args.gate)?;
    let comparison = ipcbench_gate::compare_common(&old, &new, &options).map_err(|e| usage(e.to_string()))?;
    finish(&comparison, &old, &new, &args.gate, args.gate.markdown.clone())
}

/// The most rounds per case `--rounds` takes (each round is two fresh processes per case).
const MAX_ROUNDS: usize = 1000;

/// `ipcbench ci --against OLD_BINARY [CONFIG]`: the paired run, its comparison and its
/// confirmation.
fn ci_against(args: &CiArgs, old_binary: &Path, config: &Path) -> Result<ExitCode> {
    if !old_binary.is_file() {
        return Err(usage(format!("--against {}: no such file", old_binary.display())));
    }
    if args.rounds == 0 || args.rounds > MAX_ROUNDS {
        return Err(usage(format!(
            "--rounds {}: expected 1 to {MAX_ROUNDS} rounds per case",
            args.rounds
        )));
    }
    crate::paired::check_old_binary(old_binary)?;
    let old_plan = run::load_plan(Some(&config.to_owned()), &Overrides::default())?;
    let sets = Overrides {
        sets: run::plan_sets(&args.sets)?,
        ..Overrides::default()
    };
    let new_plan = run::load_plan(Some(&config.to_owned()), &sets)?;
    let options = options(new_plan.gate.as_ref(), &args.gate)?;
    let paired = PairedPlan {
        old: &old_plan,
        new: &new_plan,
        old_binary: old_binary.to_owned(),
        n_rounds: args.rounds,
        new_side_sets: args.sets.iter().map(|s| format!("--set {s}")).collect(),
    };
    paired.check()?;
    let (record, dir) = paired.run(None, args.out.as_deref())?;
    if record.interrupted {
        eprintln!("interrupted: nothing was compared");
        return Ok(ExitCode::from(130));
    }
    let first = ipcbench_gate::compare_paired(&record, &options).map_err(|e| usage(e.to_string()))?;
    let mut rerun = PairedRerun {
        plan: &paired,
        dir: &dir,
    };
    let outcome = ipcbench_gate::confirm_paired(first, &options, args.confirm as usize, &mut rerun);
    let Some(comparison) = decided(outcome)? else {
        return Ok(ExitCode::from(130));
    };
    let markdown = Some(args.gate.markdown.clone().unwrap_or_else(|| dir.join("summary.md")));
    let code = finish(&comparison, &record, &record, &args.gate, markdown)?;
    println!("results: {}", dir.join("run.json").display());
    Ok(code)
}

/// The comparison a confirmation decided; `None` when it was interrupted (after saying so).
fn decided(outcome: Result<ConfirmOutcome, ConfirmError<anyhow::Error>>) -> Result<Option<Comparison>> {
    match outcome {
        Ok(ConfirmOutcome::Decided(comparison)) => Ok(Some(*comparison)),
        Ok(ConfirmOutcome::Interrupted) => {
            eprintln!("interrupted during confirmation: nothing was decided");
            Ok(None)
        }
        Err(ConfirmError::Rerun(e)) => Err(e),
        Err(e) => Err(usage(e.to_string())),
    }
}

/// `ipcbench ci --baseline FILE [CONFIG]` or `ipcbench ci --against OLD_BINARY [CONFIG]`.
pub fn ci_command(args: CiArgs) -> Result<ExitCode> {
    let config = args.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CI_PLAN));
    let baseline_path = match (&args.baseline, &args.against) {
        (_, Some(old_binary)) => return ci_against(&args, old_binary, &config),
        (Some(path), None) => path,
        (None, None) => return Err(usage("give --baseline FILE or --against OLD_BINARY")),
    };
    let baseline = load(baseline_path, "baseline")?;
    let sets = Overrides {
        sets: run::plan_sets(&args.sets)?,
        ..Overrides::default()
    };
    let plan = run::load_plan(Some(&config), &sets)?;
    let options = options(plan.gate.as_ref(), &args.gate)?;
    // Refuse before measuring anything when this machine is not the baseline's.
    let here = env::collect(&BuildInfo::default());
    let differences = ipcbench_gate::machine_differences(&baseline.environment, &here);
    if !differences.is_empty() && !options.allow_different_machine {
        let (baseline, differences, config) = (baseline_path.display(), differences.join("; "), config.display());
        return Err(usage(format!(
            "{baseline} was recorded on another machine ({differences}); record a baseline on this machine with \
             `ipcbench run {config} --out DIR`, or pass --allow-different-machine"
        )));
    }
    let token = args.token_file.as_deref().map(crate::serve::read_token).transpose()?;
    let executed = execute_on_own_thread(&plan, args.out.as_deref(), token.as_ref())?;
    if executed.record.interrupted {
        eprintln!("interrupted: nothing was compared");
        return Ok(ExitCode::from(130));
    }
    let (new, dir) = (&executed.record, executed.dir.as_path());
    let first = ipcbench_gate::compare_common(&baseline, new, &options).map_err(|e| usage(e.to_string()))?;
    let mut rerun = PlanRerun {
        plan: &plan,
        dir,
        token: token.as_ref(),
    };
    let outcome = ipcbench_gate::confirm(&baseline, first, &options, args.confirm as usize, &mut rerun);
    let Some(comparison) = decided(outcome)? else {
        return Ok(ExitCode::from(130));
    };
    let markdown = Some(args.gate.markdown.clone().unwrap_or_else(|| dir.join("summary.md")));
    let code = finish(&comparison, &baseline, new, &args.gate, markdown)?;
    println!("results: {}", dir.join("run.json").display());
    Ok(code)
}

/// Prints the verdict, writes every requested file and picks the exit code.
fn finish(
    comparison: &Comparison,
    old: &RunRecord,
    new: &RunRecord,
    args: &GateArgs,
    markdown: Option<PathBuf>,
) -> Result<ExitCode> {
    print!("{}", ipcbench_gate::verdict::terminal(comparison));
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(comparison).context("cannot serialize the comparison")?;
        write_file(path, &json)?;
    }
    if let Some(path) = &markdown {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let charts = comparison_chart(comparison, old, new, dir.unwrap_or(Path::new(".")));
        write_file(path, ipcbench_gate::verdict::markdown(comparison, &charts).as_bytes())?;
        eprintln!("summary: {}", path.display());
    }
    let exports: [(&Option<PathBuf>, &dyn Exporter); 3] = [
        (&args.github_benchmark, &GithubBenchmark::SmallerIsBetter),
        (&args.github_benchmark_bigger, &GithubBenchmark::BiggerIsBetter),
        (&args.bmf, &Bmf),
    ];
    for (path, exporter) in exports.iter().filter_map(|(path, e)| Some((path.as_ref()?, e))) {
        write_file(path, &exporter.serialize(new).context("cannot serialize the export")?)?;
    }
    Ok(ExitCode::from(u8::from(!comparison.passed())))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    write_atomically(path, bytes)
}
