//! The result of a comparison: verdicts per metric and case, what was not compared, and the
//! confirmation of flagged cases. What `ipcbench compare --json` writes.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use ipcbench_record::{RunRecord, Status};

use crate::metric::Metric;
use crate::settings::GateSettings;

/// The schema tag of a comparison written as JSON.
pub const COMPARE_SCHEMA: &str = "ipcbench.compare/1";

/// What a comparison says about a metric or a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Significantly worse, beyond the threshold (and confirmed, when confirmation ran).
    Regressed,
    /// Flagged as regressed by the first run, not confirmed by the re-runs.
    Unconfirmed,
    /// Significantly better, beyond the threshold.
    Improved,
    /// No significant change beyond the threshold.
    Unchanged,
    /// Too few trials for any change to be significant.
    Inconclusive,
}

impl Verdict {
    /// A one-word label.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regressed => "regressed",
            Verdict::Unconfirmed => "not confirmed",
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One metric of one case, old against new.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// Which figure.
    pub metric: Metric,
    /// Median over the old run's trials.
    pub old_median: f64,
    /// Median over the new run's trials.
    pub new_median: f64,
    /// `new_median / old_median`.
    pub ratio: f64,
    /// 95% bootstrap interval of the ratio.
    pub ratio_ci95: [f64; 2],
    /// Mann-Whitney U of the new trials against the old (`n_new * n_old` when every new value is
    /// larger, 0 when every one is smaller).
    pub u: f64,
    /// Two-sided p-value of the rank test.
    pub p_value: f64,
    /// `exact` or `normal`.
    pub test: String,
    /// The configured threshold, a fraction.
    pub threshold: f64,
    /// The baseline's own noise: the largest relative deviation of an old trial from the old
    /// median (0.2 = some baseline trial was 20% off). The change must clear this too.
    #[serde(default)]
    pub noise: f64,
    /// For p99: the machine-wide change this metric was judged against (the median p99 ratio
    /// of the cases of its placement, when above 1; see [`MACHINE_SHIFT_MIN_CASES`](crate::MACHINE_SHIFT_MIN_CASES)). The
    /// interval is divided by it before it is held against the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_shift: Option<f64>,
    /// `p < alpha` and the interval excludes 1.0.
    pub significant: bool,
    /// What this metric says.
    pub verdict: Verdict,
    /// The smallest change (a fraction, 0.12 = 12%) the gate could have called a regression
    /// with this spread of values: a change that moved every value by that much would put the
    /// whole interval beyond the limit (see [`detectable_change`](crate::detectable_change)).
    /// `None` when no change could be significant with these counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detectable: Option<f64>,
    /// Paired comparisons only: what [`detectable`](Self::detectable) would be if the same
    /// trials were compared unpaired (old trials against new trials, as `compare` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpaired_detectable: Option<f64>,
}

impl MetricComparison {
    /// The relative change, `ratio - 1` (+0.3 is 30% higher).
    pub fn change(&self) -> f64 {
        self.ratio - 1.0
    }

    /// The change the interval must clear: the threshold, or the baseline's noise if larger.
    pub fn limit(&self) -> f64 {
        self.threshold.max(self.noise)
    }
}

/// The re-runs of a flagged case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    /// Trials of the re-runs, pooled, that were compared with the old run.
    pub n_trials: usize,
    /// The re-runs' metrics against the old run.
    pub metrics: Vec<MetricComparison>,
    /// True when a metric that regressed in the first run regressed again in the re-runs.
    pub confirmed: bool,
}

/// One case present and `ok` in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseComparison {
    /// The key the runs were matched by ([`match_key`](crate::match_key), or the id when that is ambiguous).
    pub key: String,
    /// The case's id in the old run.
    pub old_id: String,
    /// The case's id in the new run.
    pub new_id: String,
    /// Scenario name.
    pub scenario: String,
    /// Transport name.
    pub transport: String,
    /// Request size.
    pub message_bytes: u64,
    /// Trials compared from the old run.
    pub n_old: usize,
    /// Trials compared from the new run.
    pub n_new: usize,
    /// The smallest p-value the rank test can reach with these trial counts.
    pub min_p_value: Option<f64>,
    /// Per metric.
    pub metrics: Vec<MetricComparison>,
    /// The case's verdict: the worst of its metrics' (after confirmation, when it ran).
    pub verdict: Verdict,
    /// Caveats (injected delays, metrics that could not be compared, too few trials).
    pub notes: Vec<String>,
    /// The re-runs, when the case was flagged and confirmation ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
}

impl CaseComparison {
    /// The metrics that regressed (in the re-runs, when the case was confirmed).
    pub fn regressed_metrics(&self) -> Vec<&MetricComparison> {
        let metrics = match &self.confirmation {
            Some(c) if c.confirmed => &c.metrics,
            _ => &self.metrics,
        };
        metrics.iter().filter(|m| m.verdict == Verdict::Regressed).collect()
    }
}

/// A case that is in both runs but was not compared (failed or unsupported in one of them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotCompared {
    /// The match key.
    pub key: String,
    /// Status in the old run.
    pub old_status: Status,
    /// Status in the new run.
    pub new_status: Status,
    /// Why (the failing run's reason).
    pub reason: String,
    /// True when the case was `ok` in the old run and failed in the new one: a breakage that
    /// fails the gate like a regression.
    pub newly_failed: bool,
}

/// Facts about one of the two runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The plan's name.
    pub name: String,
    /// Start time.
    pub started_at: String,
    /// The commit ipcbench was built from.
    pub git_commit: Option<String>,
    /// SHA-256 of the plan text.
    pub config_sha256: String,
    /// Host name.
    pub hostname: String,
    /// CPU model.
    pub cpu_model: String,
    /// Online cores.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    /// True when the run was interrupted.
    pub interrupted: bool,
}

impl RunInfo {
    /// The facts of `run`.
    pub(crate) fn of(run: &RunRecord) -> RunInfo {
        RunInfo {
            name: run.name.clone(),
            started_at: run.started_at.clone(),
            git_commit: run.environment.git_commit.clone(),
            config_sha256: run.config_sha256.clone(),
            hostname: run.environment.hostname.clone(),
            cpu_model: run.environment.cpu_model.clone(),
            cores: run.environment.cores,
            kernel: run.environment.kernel.clone(),
            interrupted: run.interrupted,
        }
    }
}

/// Two runs compared: what `ipcbench compare --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Always [`COMPARE_SCHEMA`].
    pub schema: String,
    /// The old (baseline) run.
    pub old: RunInfo,
    /// The new run.
    pub new: RunInfo,
    /// The settings used.
    pub settings: GateSettings,
    /// How the machines differ (non-empty only when that was allowed).
    pub machine_differences: Vec<String>,
    /// Every case compared, in the old run's order.
    pub cases: Vec<CaseComparison>,
    /// Cases only the old run has (not compared).
    pub only_in_old: Vec<String>,
    /// Cases only the new run has (not compared).
    pub only_in_new: Vec<String>,
    /// Cases failed or unsupported in either run.
    pub not_compared: Vec<NotCompared>,
    /// Caveats about the whole comparison.
    pub notes: Vec<String>,
    /// Re-runs of each flagged case, when confirmation ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation_runs: Option<usize>,
    /// Present when the comparison is paired (`ipcbench ci --against`): each metric was judged
    /// on the per-round ratios new/old of one record, not on two runs' trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<PairedInfo>,
}

/// How a paired comparison was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedInfo {
    /// Rounds per case in the first run (one old and one new trial each).
    pub n_rounds: usize,
    /// The old side's binary.
    pub old_binary: String,
    /// `--set` overrides the new side ran with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_side_sets: Vec<String>,
}

impl Comparison {
    /// The cases that regressed (confirmed, when confirmation ran).
    pub fn regressions(&self) -> impl Iterator<Item = &CaseComparison> {
        self.cases.iter().filter(|c| c.verdict == Verdict::Regressed)
    }

    /// The cases that improved.
    pub fn improvements(&self) -> impl Iterator<Item = &CaseComparison> {
        self.cases.iter().filter(|c| c.verdict == Verdict::Improved)
    }

    /// Cases `ok` in the old run that failed in the new one.
    pub fn newly_failed(&self) -> impl Iterator<Item = &NotCompared> {
        self.not_compared.iter().filter(|n| n.newly_failed)
    }

    /// True when nothing regressed and nothing newly failed: the gate passes.
    pub fn passed(&self) -> bool {
        // A case the baseline lacks cannot be judged: a pass would say nothing about it.
        self.regressions().next().is_none() && self.newly_failed().next().is_none() && self.only_in_new.is_empty()
    }

    /// The keys of the cases currently flagged as regressed (what confirmation re-runs), with
    /// their ids in the new run.
    pub fn flagged(&self) -> Vec<(&str, &str)> {
        self.regressions()
            .map(|c| (c.key.as_str(), c.new_id.as_str()))
            .collect()
    }

    /// Applies the comparison of pooled re-runs (`confirmation`, same old run) to the flagged
    /// cases: a flagged case stays [`Verdict::Regressed`] only when a metric that regressed
    /// here regresses in `confirmation` too; otherwise it becomes [`Verdict::Unconfirmed`].
    /// Cases that newly failed in the re-runs are added to [`Comparison::not_compared`].
    pub fn apply_confirmation(&mut self, confirmation: &Comparison, n_runs: usize) {
        self.confirmation_runs = Some(n_runs);
        for case in self.cases.iter_mut().filter(|c| c.verdict == Verdict::Regressed) {
            let flagged: BTreeSet<Metric> = case
                .metrics
                .iter()
                .filter(|m| m.verdict == Verdict::Regressed)
                .map(|m| m.metric)
                .collect();
            match confirmation.cases.iter().find(|c| c.key == case.key) {
                Some(again) => {
                    let confirmed = again
                        .metrics
                        .iter()
                        .any(|m| m.verdict == Verdict::Regressed && flagged.contains(&m.metric));
                    case.confirmation = Some(Confirmation {
                        n_trials: again.n_new,
                        metrics: again.metrics.clone(),
                        confirmed,
                    });
                    if !confirmed {
                        case.verdict = Verdict::Unconfirmed;
                    }
                }
                None => {
                    case.verdict = Verdict::Unconfirmed;
                    case.notes
                        .push("the re-runs produced no comparable result for this case".into());
                }
            }
        }
        for failed in confirmation.newly_failed() {
            if !self.not_compared.iter().any(|n| n.key == failed.key) {
                let mut failed = failed.clone();
                failed.reason = format!("in a confirmation re-run: {}", failed.reason);
                self.not_compared.push(failed);
            }
        }
    }

    /// One row per compared case and metric, for a ratio chart.
    pub fn chart_rows(&self) -> Vec<ChartRow> {
        self.cases
            .iter()
            .flat_map(|case| {
                let metrics = match &case.confirmation {
                    Some(c) if c.confirmed => &c.metrics,
                    _ => &case.metrics,
                };
                metrics.iter().map(move |m| ChartRow {
                    case: case.key.clone(),
                    metric: m.metric,
                    ratio: m.ratio,
                    low: m.ratio_ci95[0],
                    high: m.ratio_ci95[1],
                    verdict: if case.verdict == Verdict::Regressed && m.verdict == Verdict::Regressed {
                        Verdict::Regressed
                    } else if m.verdict == Verdict::Regressed {
                        Verdict::Unconfirmed
                    } else {
                        m.verdict
                    },
                })
            })
            .collect()
    }
}

/// One bar of a comparison chart: a case's ratio (new / old) for one metric, with its interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartRow {
    /// The case's match key.
    pub case: String,
    /// Which figure.
    pub metric: Metric,
    /// `new / old` of the medians.
    pub ratio: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
    /// What the gate said (regressions in red).
    pub verdict: Verdict,
}
