//! The summary printed after a run: the same per-scenario tables as `report.md`, with the
//! columns the terminal keeps, laid out as plain text in aligned columns.

use ipcbench_record::RunRecord;

use crate::doc::{self, Output, Table};
use crate::{cases, relative};

/// Lays out one table: columns separated by two spaces, numeric ones right-aligned, a rule of
/// dashes under the header, no trailing spaces.
fn layout(table: &Table) -> String {
    let width = |text: &str| text.chars().count();
    let widths: Vec<usize> = (0..table.header.len())
        .map(|i| {
            table
                .rows
                .iter()
                .map(|row| width(&row[i]))
                .chain([width(&table.header[i])])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .zip(&table.numeric)
            .map(|((cell, &w), &numeric)| {
                if numeric {
                    format!("{cell:>w$}")
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let mut out = line(&table.header);
    out.push('\n');
    out.push_str(&rule.join("  "));
    out.push('\n');
    for row in &table.rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// The terminal summary of `record`: per scenario, in the order the run met them, its name, its
/// table, and the notes on flagged, failed and unsupported cases.
pub fn terminal_tables(record: &RunRecord) -> String {
    let mut out = String::new();
    for scenario in cases::scenarios(&record.cases) {
        if !out.is_empty() {
            out.push('\n');
        }
        let table = doc::scenario_table(record, &scenario, Output::Terminal);
        out.push_str(&format!("{scenario}\n"));
        for line in relative::relative_summary(&record.cases, &scenario) {
            out.push_str(&format!("{line}\n"));
        }
        out.push_str(&layout(&table));
        if let Some(footnote) = table.footnote {
            out.push_str(&format!("{footnote}\n"));
        }
        for (id, note) in doc::scenario_notes(record, &scenario) {
            out.push_str(&format!("  {id}: {note}\n"));
        }
    }
    out
}
