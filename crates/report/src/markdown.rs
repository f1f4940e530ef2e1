//! `report.md`: the run's provenance, one table per scenario, links to the charts and files.

use ipcbench_record::RunRecord;

use crate::chart::ChartInfo;
use crate::doc::{self, Output, Table};
use crate::hgrm::HgrmFile;
use crate::{ReportError, cases, relative};

/// Escapes text for a Markdown table cell or list item.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\").replace('|', "\\|").replace('\n', " ")
}

fn table(t: &Table) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "| {} |\n",
        t.header.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | ")
    ));
    out.push_str(&format!(
        "|{}|\n",
        t.numeric
            .iter()
            .map(|n| if *n { "---:" } else { ":---" })
            .collect::<Vec<_>>()
            .join("|")
    ));
    for row in &t.rows {
        out.push_str(&format!(
            "| {} |\n",
            row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
        ));
    }
    out
}

/// The Markdown report of `record`, linking `charts` (as PNG under `charts/`) and `hgrm`
/// files (under `hgrm/`).
pub(crate) fn render(record: &RunRecord, charts: &[ChartInfo], hgrm: &[HgrmFile]) -> String {
    let mut out = format!("# ipcbench run `{}`\n\n", record.name.replace('`', "'"));
    out.push_str("| | |\n|:---|:---|\n");
    for (key, value) in doc::run_facts(record) {
        out.push_str(&format!("| {} | {} |\n", cell(&key), cell(&value)));
    }
    if !record.warnings.is_empty() {
        out.push_str("\n**Warnings** (conditions that make these numbers less reliable):\n\n");
        for warning in &record.warnings {
            out.push_str(&format!("- {}\n", cell(warning)));
        }
    }
    for scenario in cases::scenarios(&record.cases) {
        out.push_str(&format!("\n## {scenario}\n\n"));
        let relative = relative::relative_summary(&record.cases, &scenario);
        if let Some((heading, lines)) = relative.split_first() {
            out.push_str(&format!("{}\n\n", cell(heading)));
            for line in lines {
                out.push_str(&format!("- {}\n", cell(line)));
            }
            out.push('\n');
        }
        out.push_str(&table(&doc::scenario_table(record, &scenario, Output::Document)));
        if let Some(explanation) = doc::bare_explanation(record, &scenario) {
            out.push_str(&format!("\n{explanation}\n"));
        }
        let findings = doc::capacity_findings(record, &scenario);
        if !findings.is_empty() {
            out.push('\n');
            for finding in findings {
                out.push_str(&format!("- {}\n", cell(&finding)));
            }
        }
        let notes = doc::scenario_notes(record, &scenario);
        if !notes.is_empty() {
            out.push('\n');
            for (id, note) in notes {
                out.push_str(&format!("- `{id}`: {}\n", cell(&note)));
            }
        }
        for chart in charts.iter().filter(|c| c.scenario == scenario) {
            out.push_str(&format!(
                "\n![{}](charts/{}.png)\n\n[SVG](charts/{}.svg)\n",
                cell(&chart.title),
                chart.stem,
                chart.stem
            ));
        }
    }
    out.push_str("\n## Files\n\n");
    out.push_str("- [`run.json`](run.json): the full record, every trial; `ipcbench report run.json` renders this report again\n");
    out.push_str("- [`cases.csv`](cases.csv): one row per case, the summary figures\n");
    out.push_str("- [`report.html`](report.html): this report with the charts embedded, for viewing offline\n");
    if !hgrm.is_empty() {
        out.push_str("- Percentile distributions (HdrHistogram `.hgrm`, values in µs, all trials of a case merged):\n");
        for file in hgrm {
            out.push_str(&format!("  - [`{}`](hgrm/{})\n", file.file_name, file.file_name));
        }
    }
    out
}

/// `report.md` of `record` (the same text `render` writes).
///
/// # Errors
/// [`ReportError::Histogram`] when a stored histogram cannot be decoded.
pub fn markdown(record: &RunRecord) -> Result<String, ReportError> {
    let charts = crate::chart::chart_list(record)?;
    let hgrm = crate::hgrm::hgrm_files(record)?;
    Ok(render(record, &charts, &hgrm))
}
