//! The pieces both verdict texts share: value and change formats, the headline, table cells,
//! and which rows the comparison chart draws.

use ipcbench_record::units;

use crate::comparison::{CaseComparison, ChartRow, Comparison, MetricComparison, Verdict};
use crate::metric::Metric;

/// A metric's value with its unit: `12.3 µs`, `1.25 M msg/s`, `3.4 GB/s`.
pub(crate) fn format_value(metric: Metric, value: f64) -> String {
    match metric {
        Metric::LatencyP50 | Metric::LatencyP99 | Metric::CpuPerMessage => units::time_ns(value, 3),
        Metric::MessagesPerS => units::rate(value, "msg/s", 3),
        Metric::BytesPerS => units::rate(value, "B/s", 3),
    }
}

/// A relative change in percent with its sign: `+30.1%`.
pub(crate) fn percent(change: f64) -> String {
    format!("{:+.1}%", change * 100.0)
}

/// The 95% interval of a metric's ratio as changes: `+28.0% .. +33.5%`.
pub(crate) fn interval(m: &MetricComparison) -> String {
    format!(
        "{} .. {}",
        percent(m.ratio_ci95[0] - 1.0),
        percent(m.ratio_ci95[1] - 1.0)
    )
}

/// A p-value, in scientific notation below 0.001.
pub(crate) fn p_value(p: f64) -> String {
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

/// The verdict in one line: `PASS: ...` or `FAIL: ...`.
pub(crate) fn headline(comparison: &Comparison) -> String {
    let regressed = comparison.regressions().count();
    let failed = comparison.newly_failed().count();
    let compared = comparison.cases.len();
    let inconclusive = comparison
        .cases
        .iter()
        .filter(|c| c.verdict == Verdict::Inconclusive)
        .count();
    let unjudged = comparison.only_in_new.len();
    if regressed + failed + unjudged > 0 {
        let mut parts = Vec::new();
        if regressed > 0 {
            parts.push(format!("{regressed} regressed case(s)"));
        }
        if failed > 0 {
            parts.push(format!("{failed} newly failing case(s)"));
        }
        if unjudged > 0 {
            parts.push(format!("{unjudged} case(s) the baseline lacks (cannot judge)"));
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

/// A case's change of one metric with its mark (`!` regressed, `+` improved, `?` not
/// confirmed, `~` significant within the limit), `-` when not compared.
pub(crate) fn cell(case: &CaseComparison, metric: Metric) -> String {
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

/// The metrics any compared case has, in report order: the columns of both tables.
pub(crate) fn table_metrics(comparison: &Comparison) -> Vec<Metric> {
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

/// Every note of `comparison` as a line after `bullet`: the comparison's own notes, then each
/// case's as `<key>: <note>` (the key as `key` writes it), the "too few trials" note collapsed.
pub(crate) fn note_lines(comparison: &Comparison, bullet: &str, key: fn(&str) -> String) -> Vec<String> {
    let case_notes = comparison
        .cases
        .iter()
        .flat_map(|c| c.notes.iter().map(move |n| format!("{bullet}{}: {n}", key(&c.key))))
        .collect();
    let own = comparison.notes.iter().map(|n| format!("{bullet}{n}"));
    own.chain(dedup_too_few(case_notes)).collect()
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

/// The rows worth a bar on the chart: p50 of every case, and every metric that regressed,
/// improved or was not confirmed.
pub fn chart_rows(comparison: &Comparison) -> Vec<ChartRow> {
    comparison
        .chart_rows()
        .into_iter()
        .filter(|r| r.metric == Metric::LatencyP50 || !matches!(r.verdict, Verdict::Unchanged | Verdict::Inconclusive))
        .collect()
}

/// For a paired comparison, one sentence saying so: rounds, the old binary, the new side's
/// `--set`s.
pub(crate) fn paired_line(comparison: &Comparison) -> Option<String> {
    let paired = comparison.paired.as_ref()?;
    let sets = if paired.new_side_sets.is_empty() {
        String::new()
    } else {
        format!("; the new side ran with {}", paired.new_side_sets.join(" "))
    };
    Some(format!(
        "paired comparison, {} rounds per case: each round ran the old binary ({}) and the new one back to back on \
         the same cores, in shuffled order, and each metric is judged on the per-round ratios new/old{sets}",
        paired.n_rounds, paired.old_binary
    ))
}

/// The smallest change each metric could have detected, over the compared cases: `p50: 3.1%
/// in the median case (worst 12.0%)`, with the unpaired figure on the same trials beside it for
/// a paired comparison.
pub(crate) fn detectable_lines(comparison: &Comparison) -> Vec<String> {
    let median = |mut v: Vec<f64>| -> Option<(f64, f64)> {
        v.sort_by(f64::total_cmp);
        Some((ipcbench_record::stats::median(&v)?, *v.last()?))
    };
    table_metrics(comparison)
        .into_iter()
        .filter_map(|metric| {
            let of = |pick: fn(&MetricComparison) -> Option<f64>| {
                comparison
                    .cases
                    .iter()
                    .flat_map(|c| c.metrics.iter().filter(|m| m.metric == metric).filter_map(pick))
                    .collect::<Vec<f64>>()
            };
            let (mid, worst) = median(of(|m| m.detectable))?;
            let unpaired = median(of(|m| m.unpaired_detectable))
                .map(|(u, _)| format!("; unpaired on the same trials {:.1}%", u * 100.0))
                .unwrap_or_default();
            Some(format!(
                "{}: {:.1}% in the median case (worst {:.1}%){unpaired}",
                metric.label(),
                mid * 100.0,
                worst * 100.0
            ))
        })
        .collect()
}
