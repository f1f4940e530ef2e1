//! `ipcbench compare` and `ipcbench ci`: the regression gate's commands, its terminal table,
//! Markdown summary, and exports for github-action-benchmark and Bencher.
//!
//! The statistics live in `ipcbench_gate::compare`; this file reads the records, resolves
//! the settings (defaults, then the plan's `[gate]` table, then `--threshold` flags), re-runs
//! flagged cases for `ci`, and writes what the user asked for. Exit codes: 0 no regression,
//! 1 a regression (or a case that newly fails), 2 bad input.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use ipcbench_gate::compare::{
    self, CaseComparison, CompareOptions, Comparison, GateSettings, GateTable, Metric, MetricComparison, Verdict,
};
use ipcbench_harness::config::{Overrides, Plan};
use ipcbench_harness::env::{self, BuildInfo};
use ipcbench_record::stats;
use ipcbench_record::{RunRecord, SCHEMA, Status};

use crate::UsageError;
use crate::output::write_atomically;
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
    #[arg(long, value_name = "FILE")]
    baseline: PathBuf,
    /// The plan to run [default: bench-configs/ci.toml].
    config: Option<PathBuf>,
    /// Write results here instead of results/NAME-UTCTIME/.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Re-runs of the flagged cases before a regression counts (0: no confirmation). The
    /// re-runs' trials are pooled per case and compared with the baseline on their own.
    #[arg(long, default_value_t = 2, value_name = "N")]
    confirm: u32,
    #[command(flatten)]
    gate: GateArgs,
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Reads a run record, with one clear error (exit 2) for a missing, malformed or foreign file.
pub fn load_record(path: &Path, role: &str) -> Result<RunRecord> {
    let file = if path.is_dir() {
        path.join("run.json")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| usage(format!("cannot read the {role} run {}: {e}", file.display())))?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        usage(format!(
            "{} is not JSON ({e}); expected a run.json written by `ipcbench run`",
            file.display()
        ))
    })?;
    match value.get("schema").and_then(serde_json::Value::as_str) {
        Some(SCHEMA) => {}
        Some(other) => {
            return Err(usage(format!(
                "{} has schema `{other}`; this ipcbench reads `{SCHEMA}`",
                file.display()
            )));
        }
        None => {
            return Err(usage(format!(
                "{} has no `schema` field: not an ipcbench run.json (expected schema `{SCHEMA}`)",
                file.display()
            )));
        }
    }
    serde_json::from_value(value).map_err(|e| {
        usage(format!(
            "{} is a malformed run record: {e}; expected a run.json written by `ipcbench run`",
            file.display()
        ))
    })
}

/// Defaults, then the plan's `[gate]` table, then the flags.
fn settings(table: Option<&GateTable>, args: &GateArgs) -> Result<GateSettings> {
    let mut settings = GateSettings::default();
    if let Some(table) = table {
        settings = settings.with_table(table).map_err(|e| usage(format!("[gate]: {e}")))?;
    }
    for item in &args.thresholds {
        let (key, value) = item.split_once('=').ok_or_else(|| {
            usage(format!(
                "--threshold `{item}`: expected KEY=VALUE with KEY one of {}",
                compare::GATE_KEYS
            ))
        })?;
        let value = value.trim();
        let number = match value.strip_suffix('%') {
            Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
            None => value.parse::<f64>(),
        }
        .map_err(|_| {
            usage(format!(
                "--threshold `{item}`: `{value}` is not a number (e.g. 0.2 or 20%)"
            ))
        })?;
        settings
            .set(key.trim(), number)
            .map_err(|e| usage(format!("--threshold: {e}")))?;
    }
    Ok(settings)
}

/// The `[gate]` table a record's plan carried, if any.
fn record_gate_table(record: &RunRecord, path: &Path) -> Result<Option<GateTable>> {
    match record.config.get("gate") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| usage(format!("{}: config.gate: {e}", path.display()))),
    }
}

fn compare_records(old: &RunRecord, new: &RunRecord, options: &CompareOptions) -> Result<Comparison> {
    let comparison = compare::compare(old, new, options).map_err(|e| usage(e.to_string()))?;
    if comparison.cases.is_empty() && comparison.not_compared.is_empty() {
        return Err(usage(format!(
            "the runs have no case in common (old: {} cases, new: {} cases); compare runs of the same plan",
            old.cases.len(),
            new.cases.len()
        )));
    }
    Ok(comparison)
}

/// `ipcbench compare OLD NEW`.
pub fn compare_command(args: CompareArgs) -> Result<ExitCode> {
    let old = load_record(&args.old, "old")?;
    let new = load_record(&args.new, "new")?;
    let table = record_gate_table(&new, &args.new)?;
    let options = CompareOptions {
        settings: settings(table.as_ref(), &args.gate)?,
        allow_different_machine: args.gate.allow_different_machine,
    };
    let comparison = compare_records(&old, &new, &options)?;
    finish(&comparison, &old, &new, &args.gate, args.gate.markdown.clone())
}

/// `ipcbench ci --baseline FILE [CONFIG]`.
pub fn ci_command(args: CiArgs) -> Result<ExitCode> {
    let baseline = load_record(&args.baseline, "baseline")?;
    let config = args.config.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_CI_PLAN));
    let plan = run::load_plan(Some(&config), &Overrides::default())?;
    let options = CompareOptions {
        settings: settings(plan.gate.as_ref(), &args.gate)?,
        allow_different_machine: args.gate.allow_different_machine,
    };
    // Refuse before measuring anything when this machine is not the baseline's.
    let here = env::collect(&BuildInfo::default());
    let differences = compare::machine_differences(&baseline.environment, &here);
    if !differences.is_empty() && !options.allow_different_machine {
        return Err(usage(format!(
            "{} was recorded on another machine ({}); record a baseline on this machine with `ipcbench run {} \
             --out DIR`, or pass --allow-different-machine",
            args.baseline.display(),
            differences.join("; "),
            config.display()
        )));
    }
    let executed = execute_on_own_thread(&plan, args.out.as_deref())?;
    if executed.record.interrupted {
        eprintln!("interrupted: nothing was compared");
        return Ok(ExitCode::from(130));
    }
    let mut comparison = compare_records(&baseline, &executed.record, &options)?;
    let flagged: Vec<String> = comparison.flagged().iter().map(|(_, id)| (*id).to_owned()).collect();
    if !flagged.is_empty() && args.confirm > 0 {
        let sub_plan = Plan {
            cases: plan.cases.iter().filter(|c| flagged.contains(&c.id)).cloned().collect(),
            ..plan.clone()
        };
        let mut reruns = Vec::new();
        for round in 1..=args.confirm {
            eprintln!(
                "ipcbench ci: {} case(s) flagged; confirmation re-run {round} of {}",
                flagged.len(),
                args.confirm
            );
            let dir = executed.dir.join(format!("confirm-{round}"));
            let rerun = execute_on_own_thread(&sub_plan, Some(&dir))?;
            if rerun.record.interrupted {
                eprintln!("interrupted during confirmation: nothing was decided");
                return Ok(ExitCode::from(130));
            }
            reruns.push(rerun.record);
        }
        if let Some(pooled) = compare::pool_runs(&reruns) {
            let confirmation = compare::compare(&baseline, &pooled, &options).map_err(|e| usage(e.to_string()))?;
            comparison.apply_confirmation(&confirmation, args.confirm as usize);
        }
    }
    let markdown = args
        .gate
        .markdown
        .clone()
        .unwrap_or_else(|| executed.dir.join("summary.md"));
    let code = finish(&comparison, &baseline, &executed.record, &args.gate, Some(markdown))?;
    println!("results: {}", executed.dir.join("run.json").display());
    Ok(code)
}

/// Runs [`run::execute`] on a thread of its own: a trial pins the thread that runs it, and a
/// pinned main thread would make the next run see (and record) a single core.
fn execute_on_own_thread(plan: &Plan, out: Option<&Path>) -> Result<run::Executed> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| run::execute(plan, out))
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the measuring thread panicked")))
    })
}

/// Prints the table, writes every requested file and picks the exit code.
fn finish(
    comparison: &Comparison,
    old: &RunRecord,
    new: &RunRecord,
    args: &GateArgs,
    markdown: Option<PathBuf>,
) -> Result<ExitCode> {
    print!("{}", terminal(comparison));
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(comparison).context("cannot serialize the comparison")?;
        write_file(path, &json)?;
    }
    if let Some(path) = &markdown {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let charts = match render_chart(comparison, old, new, dir) {
            Ok(files) => files,
            Err(e) => {
                eprintln!("warning: could not draw the comparison chart: {e:#}");
                Vec::new()
            }
        };
        write_file(path, markdown_summary(comparison, &charts).as_bytes())?;
        eprintln!("summary: {}", path.display());
    }
    if let Some(path) = &args.github_benchmark {
        write_json(path, &github_benchmark(new, false))?;
    }
    if let Some(path) = &args.github_benchmark_bigger {
        write_json(path, &github_benchmark(new, true))?;
    }
    if let Some(path) = &args.bmf {
        write_json(path, &bmf(new))?;
    }
    Ok(if comparison.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    write_atomically(path, bytes)
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).context("cannot serialize the export")?;
    write_file(path, &json)
}

/// Draws `comparison.png` / `comparison.svg` into `dir` (the report crate's chart: the ratio per
/// case with its interval, regressions red) and returns the files written. The rows: every
/// case's p50 plus each metric the gate did not call unchanged, from [`chart_rows`].
fn render_chart(comparison: &Comparison, old: &RunRecord, new: &RunRecord, dir: &Path) -> Result<Vec<PathBuf>> {
    let rows: Vec<ipcbench_report::ComparisonRow> = chart_rows(comparison)
        .into_iter()
        .map(|row| ipcbench_report::ComparisonRow {
            case_id: row.case,
            metric: row.metric.key().to_owned(),
            ratio: row.ratio,
            ci_low: row.low,
            ci_high: row.high,
            regressed: row.verdict == Verdict::Regressed,
            improved: row.verdict == Verdict::Improved,
        })
        .collect();
    let stamp = ipcbench_report::Stamp::comparison(old, new);
    Ok(ipcbench_report::render_comparison(
        &rows,
        &stamp,
        &dir.join("comparison"),
    )?)
}

/// The rows worth a bar on the chart: p50 of every case, and every metric that regressed,
/// improved or was not confirmed.
fn chart_rows(comparison: &Comparison) -> Vec<compare::ChartRow> {
    comparison
        .chart_rows()
        .into_iter()
        .filter(|r| r.metric == Metric::LatencyP50 || !matches!(r.verdict, Verdict::Unchanged | Verdict::Inconclusive))
        .collect()
}

fn format_value(metric: Metric, value: f64) -> String {
    match metric {
        Metric::LatencyP50 | Metric::LatencyP99 | Metric::CpuPerMessage => ipcbench_report::format::time_ns(value, 3),
        Metric::MessagesPerS => ipcbench_report::format::rate(value, "msg/s", 3),
        Metric::BytesPerS => ipcbench_report::format::rate(value, "B/s", 3),
    }
}

fn percent(change: f64) -> String {
    format!("{:+.1}%", change * 100.0)
}

fn interval(m: &MetricComparison) -> String {
    format!(
        "{} .. {}",
        percent(m.ratio_ci95[0] - 1.0),
        percent(m.ratio_ci95[1] - 1.0)
    )
}

fn p_value(p: f64) -> String {
    if p < 0.001 {
        format!("{p:.1e}")
    } else {
        format!("{p:.3}")
    }
}

/// The metrics behind a case's verdict: the re-runs' when the case was confirmed.
fn decisive_metrics(case: &CaseComparison) -> &[MetricComparison] {
    match &case.confirmation {
        Some(c) if c.confirmed => &c.metrics,
        _ => &case.metrics,
    }
}

fn metric_line(m: &MetricComparison, n_old: usize, n_new: usize) -> String {
    format!(
        "{} {} -> {} ({}, 95% interval {}, p = {} {} {n_old} vs {n_new}, threshold {:.0}%{})",
        m.metric.label(),
        format_value(m.metric, m.old_median),
        format_value(m.metric, m.new_median),
        percent(m.change()),
        interval(m),
        p_value(m.p_value),
        m.test,
        m.threshold * 100.0,
        if m.noise > m.threshold {
            format!(", baseline noise {:.0}%", m.noise * 100.0)
        } else {
            String::new()
        }
    )
}

fn headline(comparison: &Comparison) -> String {
    let regressed = comparison.regressions().count();
    let failed = comparison.newly_failed().count();
    let compared = comparison.cases.len();
    let inconclusive = comparison
        .cases
        .iter()
        .filter(|c| c.verdict == Verdict::Inconclusive)
        .count();
    if regressed + failed > 0 {
        let mut parts = Vec::new();
        if regressed > 0 {
            parts.push(format!("{regressed} regressed case(s)"));
        }
        if failed > 0 {
            parts.push(format!("{failed} newly failing case(s)"));
        }
        format!("FAIL: {} of {compared} compared", parts.join(", "))
    } else if compared > 0 && inconclusive == compared {
        format!("PASS, but nothing could be detected: every one of the {compared} cases has too few trials")
    } else {
        let improved = comparison.improvements().count();
        let unconfirmed = comparison
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Unconfirmed)
            .count();
        let mut text = format!("PASS: no regression in {compared} compared case(s)");
        if improved > 0 {
            text.push_str(&format!(", {improved} improved"));
        }
        if unconfirmed > 0 {
            text.push_str(&format!(", {unconfirmed} flagged but not confirmed by the re-runs"));
        }
        text
    }
}

fn rule_text(comparison: &Comparison) -> String {
    let s = &comparison.settings;
    let mut text = format!(
        "a metric regresses when the Mann-Whitney U test across trials gives p < {}, the 95% bootstrap interval \
         of new/old excludes 1, and the whole interval is beyond its threshold (p50 +{:.0}%, p99 +{:.0}%, \
         throughput -{:.0}%, CPU/msg +{:.0}%) and beyond the baseline's own noise (the largest deviation of a \
         baseline trial from its median)",
        s.alpha,
        s.p50 * 100.0,
        s.p99 * 100.0,
        s.throughput * 100.0,
        s.cpu_per_message * 100.0
    );
    if let Some(n) = comparison.confirmation_runs {
        text.push_str(&format!(
            "; flagged cases were re-run {n} more time(s) and count only if a flagged metric regresses again in the \
             pooled re-runs"
        ));
    }
    text
}

fn cell(case: &CaseComparison, metric: Metric) -> String {
    let metrics = decisive_metrics(case);
    match metrics.iter().find(|m| m.metric == metric) {
        None => "-".into(),
        Some(m) => {
            let mark = match m.verdict {
                Verdict::Regressed if case.verdict == Verdict::Regressed => " !",
                Verdict::Regressed => " ?",
                Verdict::Improved => " +",
                _ if m.significant => " ~",
                _ => "",
            };
            format!("{}{mark}", percent(m.change()))
        }
    }
}

fn table_metrics(comparison: &Comparison) -> Vec<Metric> {
    Metric::ALL
        .into_iter()
        .filter(|metric| {
            comparison
                .cases
                .iter()
                .any(|c| c.metrics.iter().any(|m| m.metric == *metric))
        })
        .collect()
}

/// The terminal report: a table of changes per case and metric, then details.
pub fn terminal(comparison: &Comparison) -> String {
    let metrics = table_metrics(comparison);
    let mut header = vec!["case".to_owned(), "trials".to_owned()];
    header.extend(metrics.iter().map(|m| m.label().to_owned()));
    header.push("verdict".to_owned());
    let rows: Vec<Vec<String>> = comparison
        .cases
        .iter()
        .map(|case| {
            let mut row = vec![case.key.clone(), format!("{}/{}", case.n_old, case.n_new)];
            row.extend(metrics.iter().map(|m| cell(case, *m)));
            row.push(case.verdict.as_str().to_owned());
            row
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 || i + 1 == cells.len() {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "compare: old `{}` ({}) vs new `{}` ({})",
        comparison.old.name, comparison.old.started_at, comparison.new.name, comparison.new.started_at
    );
    if !rows.is_empty() {
        out.push_str(&line(&header));
        out.push('\n');
        out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
        out.push('\n');
        for row in &rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out.push_str(
            "change of the median over trials, new vs old; ! regressed, + improved, ? flagged but not confirmed, \
             ~ significant but within the threshold or the baseline's noise\n",
        );
    }
    for case in comparison.regressions() {
        let _ = writeln!(out, "\nREGRESSED {}", case.key);
        for m in case.regressed_metrics() {
            let n_new = case
                .confirmation
                .as_ref()
                .filter(|c| c.confirmed)
                .map_or(case.n_new, |c| c.n_trials);
            let _ = writeln!(out, "  {}", metric_line(m, case.n_old, n_new));
        }
        if let Some(c) = &case.confirmation {
            let _ = writeln!(out, "  confirmed by {} pooled re-run trials", c.n_trials);
        }
    }
    for case in comparison.cases.iter().filter(|c| c.verdict == Verdict::Unconfirmed) {
        let _ = writeln!(out, "\nnot confirmed: {} (flagged by the first run only)", case.key);
        for m in case.metrics.iter().filter(|m| m.verdict == Verdict::Regressed) {
            let _ = writeln!(out, "  first run: {}", metric_line(m, case.n_old, case.n_new));
        }
    }
    for case in comparison.improvements() {
        let _ = writeln!(out, "\nimproved {}", case.key);
        for m in case.metrics.iter().filter(|m| m.verdict == Verdict::Improved) {
            let _ = writeln!(out, "  {}", metric_line(m, case.n_old, case.n_new));
        }
    }
    for failed in &comparison.not_compared {
        let what = if failed.newly_failed {
            "NEWLY FAILING"
        } else {
            "not compared"
        };
        let _ = writeln!(out, "\n{what}: {}: {}", failed.key, failed.reason);
    }
    if !comparison.only_in_old.is_empty() {
        let _ = writeln!(
            out,
            "\nonly in the old run (not compared): {}",
            comparison.only_in_old.join(", ")
        );
    }
    if !comparison.only_in_new.is_empty() {
        let _ = writeln!(
            out,
            "\nonly in the new run (not compared): {}",
            comparison.only_in_new.join(", ")
        );
    }
    let case_notes: Vec<String> = comparison
        .cases
        .iter()
        .flat_map(|c| c.notes.iter().map(move |n| format!("  {}: {n}", c.key)))
        .collect();
    if !comparison.notes.is_empty() || !case_notes.is_empty() {
        out.push_str("\nNotes:\n");
        for note in &comparison.notes {
            let _ = writeln!(out, "  {note}");
        }
        for note in dedup_too_few(case_notes) {
            let _ = writeln!(out, "{note}");
        }
    }
    let _ = writeln!(out, "\nrule: {}", rule_text(comparison));
    let _ = writeln!(out, "verdict: {}", headline(comparison));
    out
}

/// Collapses the "too few trials" note, which is the same for every case of a run.
fn dedup_too_few(notes: Vec<String>) -> Vec<String> {
    let (few, other): (Vec<String>, Vec<String>) = notes.into_iter().partition(|n| n.contains("too few trials"));
    let mut out = other;
    if let Some(first) = few.first() {
        if few.len() > 1 {
            out.push(format!("{first} (and {} more cases)", few.len() - 1));
        } else {
            out.push(first.clone());
        }
    }
    out
}

/// The Markdown summary for a pull-request comment: verdict first, then the regressions with
/// their size and interval, then everything else folded in `<details>`.
pub fn markdown_summary(comparison: &Comparison, charts: &[PathBuf]) -> String {
    let mut out = String::new();
    let head = headline(comparison);
    let icon = if !comparison.passed() {
        "❌"
    } else if head.contains("nothing could be detected") {
        "⚠️"
    } else {
        "✅"
    };
    let _ = writeln!(out, "## {icon} ipcbench regression gate: {head}\n");
    let commit = |c: &Option<String>| c.as_deref().map(|c| format!(", commit `{c}`")).unwrap_or_default();
    let _ = writeln!(
        out,
        "New run `{}` ({}{}) against baseline `{}` ({}{}) on {}, {} cores, kernel {}.\n",
        comparison.new.name,
        comparison.new.started_at,
        commit(&comparison.new.git_commit),
        comparison.old.name,
        comparison.old.started_at,
        commit(&comparison.old.git_commit),
        comparison.new.cpu_model,
        comparison.new.cores,
        comparison.new.kernel
    );
    if !comparison.machine_differences.is_empty() {
        let _ = writeln!(
            out,
            "**Different machines** ({}): the verdicts compare machines as much as code.\n",
            comparison.machine_differences.join("; ")
        );
    }
    let regressions: Vec<&CaseComparison> = comparison.regressions().collect();
    if !regressions.is_empty() {
        out.push_str("### Regressions\n\n");
        out.push_str("| case | metric | baseline | new | change | 95% interval | p | trials |\n");
        out.push_str("|---|---|--:|--:|--:|--:|--:|--:|\n");
        for case in &regressions {
            let n_new = case
                .confirmation
                .as_ref()
                .filter(|c| c.confirmed)
                .map_or(case.n_new, |c| c.n_trials);
            for m in case.regressed_metrics() {
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} | {} | **{}** | {} | {} | {} vs {} |",
                    case.key,
                    m.metric.label(),
                    format_value(m.metric, m.old_median),
                    format_value(m.metric, m.new_median),
                    percent(m.change()),
                    interval(m),
                    p_value(m.p_value),
                    case.n_old,
                    n_new
                );
            }
        }
        out.push('\n');
        if comparison.confirmation_runs.is_some() {
            out.push_str("Figures of confirmed regressions come from the pooled re-runs.\n\n");
        }
    }
    let failed: Vec<_> = comparison.newly_failed().collect();
    if !failed.is_empty() {
        out.push_str("### Newly failing cases\n\n");
        for f in failed {
            let _ = writeln!(out, "- `{}`: {}", f.key, f.reason);
        }
        out.push('\n');
    }
    for chart in charts.iter().filter(|c| c.extension().is_some_and(|e| e == "svg")) {
        if let Some(name) = chart.file_name() {
            let _ = writeln!(out, "![comparison]({})\n", name.to_string_lossy());
        }
    }
    let metrics = table_metrics(comparison);
    let _ = writeln!(
        out,
        "<details><summary>All {} compared cases ({} improved, {} flagged but not confirmed)</summary>\n",
        comparison.cases.len(),
        comparison.improvements().count(),
        comparison
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Unconfirmed)
            .count()
    );
    let mut header = "| case | trials |".to_owned();
    let mut rule = "|---|--:|".to_owned();
    for m in &metrics {
        let _ = write!(header, " {} |", m.label());
        rule.push_str("--:|");
    }
    header.push_str(" verdict |");
    rule.push_str("---|");
    let _ = writeln!(out, "{header}\n{rule}");
    for case in &comparison.cases {
        let _ = write!(out, "| `{}` | {}/{} |", case.key, case.n_old, case.n_new);
        for m in &metrics {
            let _ = write!(out, " {} |", cell(case, *m));
        }
        let _ = writeln!(out, " {} |", case.verdict.as_str());
    }
    out.push_str(
        "\nChange of the median over trials, new vs old. `!` regressed, `+` improved, `?` flagged but not \
         confirmed, `~` significant but within the threshold or the baseline's noise.\n\n</details>\n\n",
    );
    let not_compared =
        !comparison.not_compared.is_empty() || !comparison.only_in_old.is_empty() || !comparison.only_in_new.is_empty();
    if not_compared {
        out.push_str("<details><summary>Not compared</summary>\n\n");
        for n in comparison.not_compared.iter().filter(|n| !n.newly_failed) {
            let _ = writeln!(out, "- `{}`: {}", n.key, n.reason);
        }
        for key in &comparison.only_in_old {
            let _ = writeln!(out, "- `{key}`: only in the baseline");
        }
        for key in &comparison.only_in_new {
            let _ = writeln!(out, "- `{key}`: only in the new run");
        }
        out.push_str("\n</details>\n\n");
    }
    let case_notes: Vec<String> = comparison
        .cases
        .iter()
        .flat_map(|c| c.notes.iter().map(move |n| format!("- `{}`: {n}", c.key)))
        .collect();
    if !comparison.notes.is_empty() || !case_notes.is_empty() {
        out.push_str("<details><summary>Notes</summary>\n\n");
        for note in &comparison.notes {
            let _ = writeln!(out, "- {note}");
        }
        for note in dedup_too_few(case_notes) {
            let _ = writeln!(out, "{note}");
        }
        out.push_str("\n</details>\n\n");
    }
    let _ = writeln!(out, "Rule: {}.", rule_text(comparison));
    out
}

/// The median of a metric in a case and its 95% bootstrap interval.
fn headline_figure(case: &ipcbench_record::CaseRecord, metric: Metric) -> Option<(f64, [f64; 2], usize)> {
    let values = metric.values(case);
    let median = stats::median(&values)?;
    let interval = stats::bootstrap_median_ci(&values)?;
    Some((median, interval, values.len()))
}

fn exported_cases(record: &RunRecord) -> impl Iterator<Item = &ipcbench_record::CaseRecord> {
    record
        .cases
        .iter()
        .filter(|c| c.status == Status::Ok && !c.trials.is_empty())
}

/// github-action-benchmark's custom format: `[{name, unit, value, range, extra}]`;
/// `bigger` selects throughput (`customBiggerIsBetter`), otherwise latencies and CPU per
/// message (`customSmallerIsBetter`).
pub fn github_benchmark(record: &RunRecord, bigger: bool) -> serde_json::Value {
    let mut entries = Vec::new();
    for case in exported_cases(record) {
        for metric in Metric::ALL
            .into_iter()
            .filter(|m| m.bigger_is_better() == bigger && m.applies(case))
        {
            let Some((value, [low, high], n)) = headline_figure(case, metric) else {
                continue;
            };
            let half_width = (value - low).max(high - value);
            entries.push(serde_json::json!({
                "name": format!("{} {}", case.id, metric.label()),
                "unit": metric.unit(),
                "value": value,
                "range": format!("± {}", significant(half_width)),
                "extra": format!(
                    "median of {n} trials; 95% interval {} .. {} {}",
                    significant(low),
                    significant(high),
                    metric.unit()
                ),
            }));
        }
    }
    serde_json::Value::Array(entries)
}

fn significant(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let digits = (3 - 1 - value.abs().log10().floor() as i32).max(0) as usize;
    format!("{value:.digits$}")
}

/// The Bencher measure slug of a metric (`latency` and `throughput` are Bencher's built-ins).
fn bmf_slug(metric: Metric) -> &'static str {
    match metric {
        Metric::LatencyP50 => "latency",
        Metric::LatencyP99 => "latency-p99",
        Metric::MessagesPerS => "throughput",
        Metric::BytesPerS => "throughput-bytes",
        Metric::CpuPerMessage => "cpu-per-message",
    }
}

/// Bencher Metric Format: `{"<case id>": {"<measure>": {"value", "lower_value", "upper_value"}}}`.
pub fn bmf(record: &RunRecord) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for case in exported_cases(record) {
        let mut measures = serde_json::Map::new();
        for metric in Metric::ALL.into_iter().filter(|m| m.applies(case)) {
            if let Some((value, [low, high], _)) = headline_figure(case, metric) {
                measures.insert(
                    bmf_slug(metric).to_owned(),
                    serde_json::json!({"value": value, "lower_value": low, "upper_value": high}),
                );
            }
        }
        out.insert(case.id.clone(), serde_json::Value::Object(measures));
    }
    serde_json::Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate_args(thresholds: &[&str]) -> GateArgs {
        GateArgs {
            thresholds: thresholds.iter().map(|s| (*s).to_owned()).collect(),
            allow_different_machine: false,
            markdown: None,
            json: None,
            github_benchmark: None,
            github_benchmark_bigger: None,
            bmf: None,
        }
    }

    #[test]
    fn flags_override_the_plan_table_which_overrides_the_defaults() {
        let table = GateTable {
            p50: Some(0.3),
            p99: Some(0.5),
            ..GateTable::default()
        };
        let s = settings(Some(&table), &gate_args(&["p99=40%", "alpha=0.01"])).unwrap();
        assert_eq!((s.p50, s.p99, s.alpha, s.throughput), (0.3, 0.4, 0.01, 0.10));
    }

    #[test]
    fn bad_threshold_flags_are_usage_errors() {
        for (flag, expect) in [
            ("p50", "expected KEY=VALUE"),
            ("p50=fast", "not a number"),
            ("throughput=1.5", "below 1"),
            ("p95=0.1", "unknown gate key"),
        ] {
            let err = settings(None, &gate_args(&[flag])).unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some(), "{flag}");
            assert!(err.to_string().contains(expect), "{flag}: {err}");
        }
    }

    #[test]
    fn significant_keeps_three_digits() {
        assert_eq!(significant(1234.5), "1234");
        assert_eq!(significant(12.345), "12.3");
        assert_eq!(significant(0.012345), "0.0123");
    }
}
