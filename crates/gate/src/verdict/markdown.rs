//! The Markdown verdict for a pull-request comment: the verdict first, then the regressions
//! with their size and interval, then everything else folded in `<details>`.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::comparison::{CaseComparison, Comparison, Verdict};
use crate::verdict::parts::{
    cell, detectable_lines, format_value, headline, interval, note_lines, p_value, paired_line, percent, table_metrics,
};
use crate::verdict::rule::rule_of;

/// The Markdown summary for a pull-request comment: verdict first, then the regressions with
/// their size and interval, then everything else folded in `<details>`.
pub fn markdown(comparison: &Comparison, charts: &[PathBuf]) -> String {
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
    if let Some(line) = paired_line(comparison) {
        let rest = line.strip_prefix("paired comparison, ").unwrap_or(&line);
        let _ = writeln!(out, "**Paired comparison**, {rest}.\n");
    }
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
    let detectable = detectable_lines(comparison);
    if !detectable.is_empty() {
        out.push_str("<details><summary>Smallest detectable change per metric</summary>\n\n");
        for line in detectable {
            let _ = writeln!(out, "- {line}");
        }
        out.push_str("\nA regression of this size or more would have been caught on this machine.\n\n</details>\n\n");
    }
    let notes = note_lines(comparison, "- ", |key| format!("`{key}`"));
    if !notes.is_empty() {
        out.push_str("<details><summary>Notes</summary>\n\n");
        for note in notes {
            let _ = writeln!(out, "{note}");
        }
        out.push_str("\n</details>\n\n");
    }
    let _ = writeln!(out, "Rule: {}.", rule_of(comparison));
    out
}
