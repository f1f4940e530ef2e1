//! Rendering a run's record into charts and reports: after every `ipcbench run` (into the
//! staging folder that becomes the results folder), and on demand with `ipcbench report`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use ipcbench_gate::{Comparison, Verdict};
use ipcbench_record::RunRecord;
use ipcbench_report::{Formats, ReportError};

use crate::UsageError;

/// Arguments of `ipcbench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run record to render: a `run.json` written by `ipcbench run` (or its folder).
    record: PathBuf,
    /// Write the report here instead of beside the record.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Which outputs, comma-separated: png, svg, html, md, csv, hgrm.
    #[arg(long, default_value = "png,svg,html,md,csv,hgrm")]
    format: String,
}

/// A report error as the CLI reports it: bad input exits 2, anything else 1.
fn classify(err: ReportError) -> anyhow::Error {
    if err.is_bad_input() {
        UsageError(format!("{:#}", anyhow::Error::from(err))).into()
    } else {
        anyhow::Error::from(err)
    }
}

/// Writes every report file for `record` into `dir`: `charts/*.png|svg`, `report.md`,
/// `report.html`, `cases.csv` and `hgrm/*.hgrm`.
pub fn render_into(record: &RunRecord, dir: &Path) -> Result<()> {
    ipcbench_report::render(record, dir, &Formats::ALL)
        .map(|_| ())
        .with_context(|| format!("cannot render the report into {}", dir.display()))
}

/// `ipcbench report`: renders a stored run again, from the record alone.
pub fn report(args: ReportArgs) -> Result<ExitCode> {
    let formats: Formats = args
        .format
        .parse()
        .map_err(|e: ReportError| UsageError(format!("--format: {e}")))?;
    let path = if args.record.is_dir() {
        args.record.join("run.json")
    } else {
        args.record.clone()
    };
    let record = ipcbench_report::load_record(&path).map_err(classify)?;
    let dir = match args.out {
        Some(dir) => dir,
        None => path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let files = ipcbench_report::render(&record, &dir, &formats)
        .map_err(classify)
        .with_context(|| format!("cannot render the report into {}", dir.display()))?;
    println!(
        "rendered {} file(s) of run `{}` ({} cases) into {}",
        files.len(),
        record.name,
        record.cases.len(),
        dir.display()
    );
    if formats.html {
        println!("open {}", dir.join("report.html").display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Draws `comparison.png` / `comparison.svg` into `dir`: the report crate's chart of the rows
/// `ipcbench_gate::verdict::chart_rows` picks. Returns the files written; a chart that cannot be
/// drawn is a warning, not a failure of the gate.
pub fn comparison_chart(comparison: &Comparison, old: &RunRecord, new: &RunRecord, dir: &Path) -> Vec<PathBuf> {
    let rows: Vec<ipcbench_report::ComparisonRow> = ipcbench_gate::verdict::chart_rows(comparison)
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
    ipcbench_report::render_comparison(&rows, &stamp, &dir.join("comparison")).unwrap_or_else(|e| {
        eprintln!(
            "warning: could not draw the comparison chart: {:#}",
            anyhow::Error::from(e)
        );
        Vec::new()
    })
}
