//! The terminal verdict: a table of changes per case and metric, then the regressions, the
//! cases not compared, the notes, the rule and the verdict line.

use std::fmt::Write as _;

use crate::comparison::{Comparison, MetricComparison, Verdict};
use crate::verdict::parts::{
    cell, detectable_lines, format_value, headline, interval, note_lines, p_value, paired_line, percent, table_metrics,
};
use crate::verdict::rule::rule_of;

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
    if let Some(line) = paired_line(comparison) {
        let _ = writeln!(out, "{line}");
    }
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
    let notes = note_lines(comparison, "  ", |key| key.to_owned());
    if !notes.is_empty() {
        out.push_str("\nNotes:\n");
        for note in notes {
            let _ = writeln!(out, "{note}");
        }
    }
    let detectable = detectable_lines(comparison);
    if !detectable.is_empty() {
        out.push_str("\nSmallest detectable change (a regression this size would have been caught):\n");
        for line in detectable {
            let _ = writeln!(out, "  {line}");
        }
    }
    let _ = writeln!(out, "\nrule: {}", rule_of(comparison));
    let _ = writeln!(out, "verdict: {}", headline(comparison));
    out
}

/// One metric's change in full: values, change, interval, p-value, trials and limit.
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
