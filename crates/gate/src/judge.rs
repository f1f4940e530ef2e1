//! One metric judged: the ratio of medians, its bootstrap interval, the rank test, and the rule
//! ([`RULE`](crate::verdict::RULE)) that turns them into a [`Verdict`].

use ipcbench_record::stats::{self, RankTestMethod};

use crate::comparison::{MetricComparison, Verdict};
use crate::metric::Metric;
use crate::settings::GateSettings;

/// Level of the ratio intervals.
pub const INTERVAL_LEVEL: f64 = 0.95;
/// Bootstrap resamples per ratio interval.
pub const RATIO_RESAMPLES: usize = 4000;
/// Seed of every ratio interval, so a comparison is reproducible.
pub const RATIO_SEED: u64 = 0x6A7E_C0DE;

/// The largest relative deviation of a value from the values' median (0 when there are none).
pub fn relative_spread(values: &[f64]) -> f64 {
    match stats::median(values) {
        Some(median) if median > 0.0 => values.iter().map(|v| (v - median).abs() / median).fold(0.0, f64::max),
        _ => 0.0,
    }
}

/// Compares one metric's trial values; `None` when either side has none or the old median is
/// not positive (a ratio needs a positive baseline).
pub fn compare_metric(
    metric: Metric,
    old_values: &[f64],
    new_values: &[f64],
    settings: &GateSettings,
) -> Option<MetricComparison> {
    let old_median = stats::median(old_values)?;
    let new_median = stats::median(new_values)?;
    if old_median <= 0.0 {
        return None;
    }
    let ratio = new_median / old_median;
    let ratio_ci95 = stats::bootstrap_ratio_ci(old_values, new_values, INTERVAL_LEVEL, RATIO_RESAMPLES, RATIO_SEED)?;
    let rank = stats::mann_whitney_u(new_values, old_values)?;
    let detectable = stats::mann_whitney_min_p(old_values.len(), new_values.len()).is_some_and(|p| p < settings.alpha);
    let excludes_one = (ratio > 1.0 && ratio_ci95[0] > 1.0) || (ratio < 1.0 && ratio_ci95[1] < 1.0);
    let significant = rank.p_two_sided < settings.alpha && excludes_one;
    let threshold = settings.threshold(metric);
    let noise = relative_spread(old_values);
    let limit = threshold.max(noise);
    let verdict = judge(metric, ratio_ci95, limit, significant, detectable, 1.0);
    Some(MetricComparison {
        metric,
        old_median,
        new_median,
        ratio,
        ratio_ci95,
        u: rank.u,
        p_value: rank.p_two_sided,
        test: match rank.method {
            RankTestMethod::Exact => "exact".into(),
            RankTestMethod::Normal => "normal".into(),
        },
        threshold,
        noise,
        machine_shift: None,
        significant,
        verdict,
        detectable: detectable_change(metric, ratio, ratio_ci95, limit, detectable),
        unpaired_detectable: None,
    })
}

/// The smallest change `metric` could have been called a regression for, given the interval
/// `ratio_ci95` around `ratio` and the `limit` it must clear: the interval, moved so that its
/// point sits at `1 + change` (at `1 - change` for throughput), clears the limit exactly. This
/// is the sensitivity of the comparison on this machine: the interval's spread, not its
/// position. `None` when `possible` is false (too few trials for any p-value below alpha) or
/// the interval is degenerate.
pub fn detectable_change(metric: Metric, ratio: f64, ratio_ci95: [f64; 2], limit: f64, possible: bool) -> Option<f64> {
    let [low, high] = ratio_ci95;
    if !possible || ratio <= 0.0 || low <= 0.0 || !high.is_finite() {
        return None;
    }
    let change = if metric.bigger_is_better() {
        // The interval's top, moved with the point to 1 - change, must fall below 1 - limit.
        1.0 - (1.0 - limit) * ratio / high
    } else {
        (1.0 + limit) * ratio / low - 1.0
    };
    Some(change.max(limit))
}

/// The verdict on one metric: `ratio_ci95`, divided by the machine-wide `shift`, held against
/// `limit` (the larger of threshold and baseline noise). Beyond the limit means the whole
/// interval is: the trials rule out every change smaller than the threshold and than the
/// baseline's own noise, not merely point past them (see the crate docs).
pub(crate) fn judge(
    metric: Metric,
    ratio_ci95: [f64; 2],
    limit: f64,
    significant: bool,
    detectable: bool,
    shift: f64,
) -> Verdict {
    let [low, high] = ratio_ci95.map(|r| r / shift);
    let (worse, better) = if metric.bigger_is_better() {
        (high < 1.0 - limit, low > 1.0 + limit)
    } else {
        (low > 1.0 + limit, high < 1.0 - limit)
    };
    if !detectable {
        Verdict::Inconclusive
    } else if significant && worse {
        Verdict::Regressed
    } else if significant && better {
        Verdict::Improved
    } else {
        Verdict::Unchanged
    }
}

/// A case's verdict from its metrics' verdicts.
pub(crate) fn case_verdict(metrics: &[MetricComparison]) -> Verdict {
    let has = |v: Verdict| metrics.iter().any(|m| m.verdict == v);
    if has(Verdict::Regressed) {
        Verdict::Regressed
    } else if has(Verdict::Improved) {
        Verdict::Improved
    } else if has(Verdict::Inconclusive) {
        Verdict::Inconclusive
    } else {
        Verdict::Unchanged
    }
}
