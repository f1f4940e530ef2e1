//! Comparing two runs case by case: the statistics and verdicts of the regression gate.
//!
//! Cases are matched by id (see [`match_key`]: an injected `delay_ns` does not change the
//! match, so a run with a slowdown injected on purpose compares against a clean one). For each
//! case present and `ok` in both runs, and for each metric ([`Metric`]: p50 and p99 latency,
//! throughput, CPU per message), the gate looks at the per-trial values of both runs:
//!
//! - the change: `ratio = median(new trials) / median(old trials)`;
//! - its 95% interval: a percentile bootstrap of that ratio, resampling the old and the new
//!   trials independently ([`ipcbench_record::stats::bootstrap_ratio_ci`], fixed seed);
//! - a two-sided Mann-Whitney U rank test of the new trials against the old
//!   ([`ipcbench_record::stats::mann_whitney_u`]: exact distribution up to 20 trials per side).
//!
//! **The rule.** A metric *regresses* when all three hold:
//! 1. the rank test is significant: `p < alpha` (default 0.05);
//! 2. the 95% interval of the ratio lies entirely on the worse side of 1.0;
//! 3. the change is worse than the metric's *limit* across the whole interval, not only at its
//!    point estimate: for a latency the interval's lower end is above `1 + limit`, for
//!    throughput its upper end is below `1 - limit`. The limit is the metric's threshold
//!    (defaults: p50 +10%, p99 +25%, throughput -10%, CPU per message +15%), or the baseline's
//!    own noise when that is larger: the largest relative deviation of a baseline trial from
//!    the baseline's median ([`relative_spread`]).
//!
//! It *improves* under the mirror-image conditions. A case regresses when any of its metrics
//! does. The two statistical conditions guard each other: the rank test has an exact
//! false-alarm rate whatever the trials' distribution, and one wild trial moves it by one rank
//! only, but it says nothing about size; the interval says how large the change is and in which
//! direction, but a percentile bootstrap over five values has no exact guarantee. Requiring both
//! costs little (on simulated A/A pairs of 5 trials the rank test alone fires 3.2% of the time,
//! both together 2.5%). With 5 trials per side the exact test reaches `p < 0.05` only when at
//! most two of the 25 (old, new) pairs are out of order, so scattered noise cannot pass it; the
//! threshold then keeps real but negligible shifts (a busy neighbour, a warmer cache) from
//! failing a build.
//!
//! Why the interval and not the point must clear the threshold: a run-to-run shift can be
//! "significant" (every new trial above every old one) without being a regression. On the
//! 2-vCPU build machine the p99 of same-core ping-pong is bimodal between runs: the reference
//! run of `ci.toml` had pipe 64 B p99 trials of 2.8-6.7 us (median 4.8), five later unchanged
//! runs 6.3-8.0 us. With the point rule every one of five A/A comparisons failed (p99 +44% to
//! +59%, intervals from 1.04 or 1.14 up); with the interval rule none did, while an injected 30%
//! slowdown still clears it (interval 1.30-1.36 against the 1.10 needed). The price is
//! sensitivity on noisy metrics, and that is the honest answer: trials that scatter over 2x
//! cannot tell a 25% change from none.
//!
//! Why the baseline's noise as well: some metrics are bimodal from trial to trial. Cross-core
//! `inproc` at 4 KiB, for one, has trials at ~3 µs or ~60 µs p50 as its threads happen to spin
//! or sleep, and its baseline's throughput trials ranged 30-60 k/s. A later unchanged run that
//! drew the slow mode four times out of five had a throughput interval of 0.34-0.82, clear of
//! the 10% threshold: a "regression" made of the mode lottery. A change no larger than the
//! baseline's own scatter between trials cannot be told from that scatter, so such a metric
//! only fails for a change beyond it, and the comparison shows its noise so the reader knows.
//!
//! **p99 against the machine.** The tails of a VM move with its host: in one of five unchanged
//! runs of `ci.toml` on the build machine the p99 of every same-core case rose 1.5-2.2x (median
//! 1.95x) with p50 unchanged, all five trials of each case alike, so neither the rank test nor
//! the baseline's scatter could call it noise. So p99 is judged against its placement's
//! machine-wide change ([`MACHINE_SHIFT_MIN_CASES`] or more cases): when the median p99 ratio
//! of, say, the same-core cases is above 1, each of their p99 intervals is divided by it first,
//! and a comparison note reports the shift when it exceeds the p99 threshold. One case whose
//! tail grew beyond what the whole machine's did still regresses. The price: a change that
//! worsens *every* case's p99 alike shows as that note, not as a regression.
//!
//! With too few trials no change can be significant: the smallest exact two-sided p-value for
//! `m` vs `n` trials is `2 / C(m + n, m)` (0.1 for 3 vs 3), and such cases are reported as
//! [`Verdict::Inconclusive`] instead of silently passing.
//!
//! Runs from different machines (CPU model, core count, kernel) are refused unless the caller
//! allows it, and then the comparison says so.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use ipcbench_record::finish::{FinishContext, finish_case};
use ipcbench_record::stats::{self, RankTestMethod};
use ipcbench_record::{CaseId, CaseRecord, Environment, RunRecord, SCHEMA, Status, Trial};

/// The schema tag of a comparison written as JSON.
pub const COMPARE_SCHEMA: &str = "ipcbench.compare/1";
/// Default significance level of the rank test.
pub const DEFAULT_ALPHA: f64 = 0.05;
/// Level of the ratio intervals.
pub const INTERVAL_LEVEL: f64 = 0.95;
/// Bootstrap resamples per ratio interval.
pub const RATIO_RESAMPLES: usize = 4000;
/// Seed of every ratio interval, so a comparison is reproducible.
pub const RATIO_SEED: u64 = 0x6A7E_C0DE;

/// A figure the gate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Median latency of a trial, ns.
    #[serde(rename = "latency_p50_ns")]
    LatencyP50,
    /// 99th-percentile latency of a trial, ns.
    #[serde(rename = "latency_p99_ns")]
    LatencyP99,
    /// Messages (round trips for request/reply) per second.
    #[serde(rename = "messages_per_s")]
    MessagesPerS,
    /// Payload bytes per second (stream cases only).
    #[serde(rename = "bytes_per_s")]
    BytesPerS,
    /// Both sides' CPU time per message, ns.
    #[serde(rename = "cpu_ns_per_message")]
    CpuPerMessage,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 5] = [
        Metric::LatencyP50,
        Metric::LatencyP99,
        Metric::MessagesPerS,
        Metric::BytesPerS,
        Metric::CpuPerMessage,
    ];

    /// The name used in JSON and in `Summary::ci95` (`latency_p50_ns`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Metric::LatencyP50 => "latency_p50_ns",
            Metric::LatencyP99 => "latency_p99_ns",
            Metric::MessagesPerS => "messages_per_s",
            Metric::BytesPerS => "bytes_per_s",
            Metric::CpuPerMessage => "cpu_ns_per_message",
        }
    }

    /// A short label for tables (`p50`, `msg/s`, ...).
    pub fn label(self) -> &'static str {
        match self {
            Metric::LatencyP50 => "p50",
            Metric::LatencyP99 => "p99",
            Metric::MessagesPerS => "msg/s",
            Metric::BytesPerS => "bytes/s",
            Metric::CpuPerMessage => "CPU/msg",
        }
    }

    /// The unit of the metric's values.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::LatencyP50 | Metric::LatencyP99 => "ns",
            Metric::MessagesPerS => "messages/s",
            Metric::BytesPerS => "bytes/s",
            Metric::CpuPerMessage => "ns/message",
        }
    }

    /// True for throughput: a larger value is better.
    pub fn bigger_is_better(self) -> bool {
        matches!(self, Metric::MessagesPerS | Metric::BytesPerS)
    }

    /// Which threshold applies.
    pub fn threshold_key(self) -> ThresholdKey {
        match self {
            Metric::LatencyP50 => ThresholdKey::P50,
            Metric::LatencyP99 => ThresholdKey::P99,
            Metric::MessagesPerS | Metric::BytesPerS => ThresholdKey::Throughput,
            Metric::CpuPerMessage => ThresholdKey::CpuPerMessage,
        }
    }

    /// True when the metric is compared for `case` (bytes/s only for `stream`, where it is the
    /// headline; elsewhere it is messages/s times a constant size).
    pub fn applies(self, case: &CaseRecord) -> bool {
        self != Metric::BytesPerS || case.scenario == "stream"
    }

    /// The metric's value in one trial, when the trial has it.
    pub fn trial_value(self, trial: &Trial) -> Option<f64> {
        let value = match self {
            Metric::LatencyP50 => trial.latency_ns.map(|l| l.p50),
            Metric::LatencyP99 => trial.latency_ns.map(|l| l.p99),
            Metric::MessagesPerS => Some(trial.messages_per_s),
            Metric::BytesPerS => Some(trial.bytes_per_s),
            Metric::CpuPerMessage => {
                let client = trial.client?;
                let cpu = client.cpu_ns() + trial.server.map(|s| s.cpu_ns()).unwrap_or(0);
                (trial.messages > 0).then(|| cpu as f64 / trial.messages as f64)
            }
        };
        value.filter(|v| v.is_finite())
    }

    /// The metric's per-trial values of `case` (trials without it are skipped).
    pub fn values(self, case: &CaseRecord) -> Vec<f64> {
        case.trials.iter().filter_map(|t| self.trial_value(t)).collect()
    }
}

/// The threshold names of `[gate]` and `--threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdKey {
    /// p50 latency.
    P50,
    /// p99 latency.
    P99,
    /// Messages/s and bytes/s.
    Throughput,
    /// CPU per message.
    CpuPerMessage,
}

/// The optional `[gate]` table of a plan: overrides of the gate's defaults.
///
/// Thresholds are fractions (`p50 = 0.10` is 10%); `alpha` is the rank test's significance
/// level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateTable {
    /// Significance level of the rank test (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Threshold of the p50 latency increase (default 0.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    /// Threshold of the p99 latency increase (default 0.25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    /// Threshold of the throughput drop (default 0.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<f64>,
    /// Threshold of the CPU-per-message increase (default 0.15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_per_message: Option<f64>,
}

impl GateTable {
    /// Checks every value given.
    ///
    /// # Errors
    /// A message naming the key, the value and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        GateSettings::default().with_table(self).map(|_| ())
    }
}

/// The settings a comparison runs with: significance level and thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateSettings {
    /// Significance level of the rank test.
    pub alpha: f64,
    /// p50 latency: a larger relative increase regresses.
    pub p50: f64,
    /// p99 latency: a larger relative increase regresses.
    pub p99: f64,
    /// Throughput: a larger relative drop regresses.
    pub throughput: f64,
    /// CPU per message: a larger relative increase regresses.
    pub cpu_per_message: f64,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            alpha: DEFAULT_ALPHA,
            p50: 0.10,
            p99: 0.25,
            throughput: 0.10,
            cpu_per_message: 0.15,
        }
    }
}

/// The keys [`GateSettings::set`] accepts.
pub const GATE_KEYS: &str = "alpha, p50, p99, throughput, cpu_per_message";

impl GateSettings {
    /// These settings with every value of `table` applied.
    ///
    /// # Errors
    /// As [`GateSettings::set`].
    pub fn with_table(mut self, table: &GateTable) -> Result<GateSettings, String> {
        let entries = [
            ("alpha", table.alpha),
            ("p50", table.p50),
            ("p99", table.p99),
            ("throughput", table.throughput),
            ("cpu_per_message", table.cpu_per_message),
        ];
        for (key, value) in entries {
            if let Some(value) = value {
                self.set(key, value)?;
            }
        }
        Ok(self)
    }

    /// Sets one value by name (`alpha`, `p50`, `p99`, `throughput`, `cpu_per_message`).
    ///
    /// # Errors
    /// An unknown key, or a value out of range: `alpha` in (0, 1), thresholds in (0, 10]
    /// (the throughput threshold below 1, since throughput cannot drop by 100% or more).
    pub fn set(&mut self, key: &str, value: f64) -> Result<(), String> {
        if key == "alpha" {
            if !(value > 0.0 && value < 1.0) {
                return Err(format!(
                    "alpha = {value}: expected a significance level between 0 and 1, e.g. 0.05"
                ));
            }
            self.alpha = value;
            return Ok(());
        }
        let slot = match key {
            "p50" => &mut self.p50,
            "p99" => &mut self.p99,
            "throughput" => &mut self.throughput,
            "cpu_per_message" | "cpu" => &mut self.cpu_per_message,
            _ => return Err(format!("unknown gate key `{key}`; expected one of {GATE_KEYS}")),
        };
        let (in_range, allowed) = if key == "throughput" {
            (value > 0.0 && value < 1.0, "above 0 and below 1")
        } else {
            (value > 0.0 && value <= 10.0, "above 0 and at most 10")
        };
        if !in_range {
            return Err(format!(
                "{key} = {value}: expected a fraction {allowed} (0.1 means 10%)"
            ));
        }
        *slot = value;
        Ok(())
    }

    /// The threshold of `metric`, a fraction.
    pub fn threshold(&self, metric: Metric) -> f64 {
        match metric.threshold_key() {
            ThresholdKey::P50 => self.p50,
            ThresholdKey::P99 => self.p99,
            ThresholdKey::Throughput => self.throughput,
            ThresholdKey::CpuPerMessage => self.cpu_per_message,
        }
    }
}

/// How a comparison is made.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompareOptions {
    /// Significance level and thresholds.
    pub settings: GateSettings,
    /// Compare runs from different machines instead of refusing.
    pub allow_different_machine: bool,
}

/// Why two runs cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// A record is not an `ipcbench.run/1` record.
    #[error("the {which} run has schema `{found}`; expected `{SCHEMA}`")]
    Schema {
        /// `old` or `new`.
        which: &'static str,
        /// The schema found.
        found: String,
    },
    /// The runs come from different machines.
    #[error(
        "the runs come from different machines ({}); figures from different machines are not comparable \
         (allow it with --allow-different-machine)",
        .0.join("; ")
    )]
    DifferentMachine(Vec<String>),
}

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
    /// of the cases of its placement, when above 1; see [`MACHINE_SHIFT_MIN_CASES`]). The
    /// interval is divided by it before it is held against the limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_shift: Option<f64>,
    /// `p < alpha` and the interval excludes 1.0.
    pub significant: bool,
    /// What this metric says.
    pub verdict: Verdict,
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

/// The largest relative deviation of a value from the values' median (0 when there are none).
pub fn relative_spread(values: &[f64]) -> f64 {
    match stats::median(values) {
        Some(median) if median > 0.0 => values.iter().map(|v| (v - median).abs() / median).fold(0.0, f64::max),
        _ => 0.0,
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
    /// The key the runs were matched by ([`match_key`], or the id when that is ambiguous).
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
    fn of(run: &RunRecord) -> RunInfo {
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
        self.regressions().next().is_none() && self.newly_failed().next().is_none()
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

/// The key runs are matched by: the case id without an injected `delay=<n>ns` option, so
/// `pingpong/null[delay=300ns]/64B/c0` matches `pingpong/null/64B/c0`.
pub fn match_key(id: &str) -> String {
    match id.parse::<CaseId>() {
        Ok(parsed) => parsed.without_injected_delay().to_string(),
        Err(_) => id.to_owned(),
    }
}

/// How two machine manifests differ in what makes figures comparable: CPU model, core count,
/// kernel. Empty when they match.
pub fn machine_differences(old: &Environment, new: &Environment) -> Vec<String> {
    let mut out = Vec::new();
    if old.cpu_model != new.cpu_model {
        out.push(format!("CPU `{}` vs `{}`", old.cpu_model, new.cpu_model));
    }
    if old.cores != new.cores {
        out.push(format!("{} vs {} cores", old.cores, new.cores));
    }
    if old.kernel != new.kernel {
        out.push(format!("kernel {} vs {}", old.kernel, new.kernel));
    }
    out
}

/// The match key of every case of `run`: [`match_key`], or the full id where two cases of the
/// run share a match key (a plan that sweeps `delay_ns` itself).
fn keys(run: &RunRecord) -> Vec<String> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for case in &run.cases {
        *counts.entry(match_key(&case.id)).or_default() += 1;
    }
    run.cases
        .iter()
        .map(|case| {
            let key = match_key(&case.id);
            if counts[&key] > 1 { case.id.clone() } else { key }
        })
        .collect()
}

fn status_name(status: &Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Unsupported => "unsupported",
        Status::Failed => "failed",
    }
}

fn delay_ns(case: &CaseRecord) -> u64 {
    case.transport_options
        .get("delay_ns")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// Compares `new` against `old` (the baseline).
///
/// # Errors
/// [`CompareError::Schema`] for a record of another schema; [`CompareError::DifferentMachine`]
/// when the machines differ and `options.allow_different_machine` is false.
pub fn compare(old: &RunRecord, new: &RunRecord, options: &CompareOptions) -> Result<Comparison, CompareError> {
    for (which, run) in [("old", old), ("new", new)] {
        if run.schema != SCHEMA {
            return Err(CompareError::Schema {
                which,
                found: run.schema.clone(),
            });
        }
    }
    let differences = machine_differences(&old.environment, &new.environment);
    if !differences.is_empty() && !options.allow_different_machine {
        return Err(CompareError::DifferentMachine(differences));
    }
    let settings = options.settings;
    let mut notes = Vec::new();
    if !differences.is_empty() {
        notes.push(format!(
            "the runs come from different machines ({}): a change may be the machine's, not the code's",
            differences.join("; ")
        ));
    }
    if old.config_sha256 != new.config_sha256 {
        notes.push("the runs used different plan files; only cases with the same id are compared".into());
    }
    for (which, run) in [("old", old), ("new", new)] {
        let env = &run.environment;
        let per_core = env.load_average_1m / env.cores.max(1) as f64;
        if per_core > 0.5 {
            notes.push(format!(
                "the {which} run started at load average {:.2} on {} cores: other work competed for the CPUs, \
                 and wall-clock figures (throughput, p99) may show it",
                env.load_average_1m, env.cores
            ));
        }
        if run.interrupted {
            notes.push(format!(
                "the {which} run was interrupted: only its completed cases are compared"
            ));
        }
    }
    let old_keys = keys(old);
    let new_keys = keys(new);
    let new_by_key: BTreeMap<&str, &CaseRecord> = new_keys.iter().map(String::as_str).zip(&new.cases).collect();
    let mut cases = Vec::new();
    let mut placements = Vec::new();
    let mut not_compared = Vec::new();
    let mut only_in_old = Vec::new();
    for (key, old_case) in old_keys.iter().zip(&old.cases) {
        let Some(new_case) = new_by_key.get(key.as_str()) else {
            only_in_old.push(key.clone());
            continue;
        };
        if old_case.status != Status::Ok || new_case.status != Status::Ok {
            let reason = [(old_case, "old"), (new_case, "new")]
                .iter()
                .filter(|(c, _)| c.status != Status::Ok)
                .map(|(c, which)| {
                    format!(
                        "{which}: {} ({})",
                        status_name(&c.status),
                        c.reason.as_deref().unwrap_or("no reason recorded")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            not_compared.push(NotCompared {
                key: key.clone(),
                old_status: old_case.status.clone(),
                new_status: new_case.status.clone(),
                reason,
                newly_failed: old_case.status == Status::Ok && new_case.status == Status::Failed,
            });
            continue;
        }
        cases.push(compare_case(key, old_case, new_case, &settings));
        placements.push(new_case.cores.label.clone());
    }
    notes.extend(discount_machine_shift(&mut cases, &placements, &settings));
    let old_set: BTreeSet<&str> = old_keys.iter().map(String::as_str).collect();
    let only_in_new = new_keys
        .iter()
        .filter(|k| !old_set.contains(k.as_str()))
        .cloned()
        .collect();
    Ok(Comparison {
        schema: COMPARE_SCHEMA.into(),
        old: RunInfo::of(old),
        new: RunInfo::of(new),
        settings,
        machine_differences: differences,
        cases,
        only_in_old,
        only_in_new,
        not_compared,
        notes,
        confirmation_runs: None,
    })
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
    let verdict = judge(metric, ratio_ci95, threshold.max(noise), significant, detectable, 1.0);
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
    })
}

/// The verdict on one metric: `ratio_ci95`, divided by the machine-wide `shift`, held against
/// `limit` (the larger of threshold and baseline noise). Beyond the limit means the whole
/// interval is: the trials rule out every change smaller than the threshold and than the
/// baseline's own noise, not merely point past them (see the module docs).
fn judge(metric: Metric, ratio_ci95: [f64; 2], limit: f64, significant: bool, detectable: bool, shift: f64) -> Verdict {
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

/// The fewest cases of one placement whose p99 ratios make a machine-wide shift.
pub const MACHINE_SHIFT_MIN_CASES: usize = 4;

/// Judges p99 against the machine: for each placement (`cross-core`, `same-core`, ...) with at
/// least [`MACHINE_SHIFT_MIN_CASES`] cases, the median p99 ratio over those cases is taken as
/// the machine's own change, and when it is above 1 every case's p99 of that placement is
/// re-judged with its interval divided by it. Returns a note per placement whose shift is
/// beyond the p99 threshold. Only worsening is discounted, never amplified: a calmer machine
/// must not turn an unchanged case into a regression.
fn discount_machine_shift(cases: &mut [CaseComparison], placements: &[String], settings: &GateSettings) -> Vec<String> {
    let mut notes = Vec::new();
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (idx, placement) in placements.iter().enumerate() {
        groups.entry(placement.as_str()).or_default().push(idx);
    }
    for (placement, members) in groups {
        let p99 = |case: &CaseComparison| case.metrics.iter().position(|m| m.metric == Metric::LatencyP99);
        let ratios: Vec<f64> = members
            .iter()
            .filter_map(|&i| p99(&cases[i]).map(|m| cases[i].metrics[m].ratio))
            .collect();
        if ratios.len() < MACHINE_SHIFT_MIN_CASES {
            continue;
        }
        let Some(shift) = stats::median(&ratios).filter(|s| *s > 1.0) else {
            continue;
        };
        let threshold = settings.threshold(Metric::LatencyP99);
        if shift - 1.0 > threshold {
            notes.push(format!(
                "p99 of the {} {placement} cases rose {shift:.2}x in the median case: a change of the whole \
                 machine, not of one case, so each of their p99s is judged after dividing by it (a change that \
                 made every case's p99 worse shows here, not as a regression)",
                ratios.len()
            ));
        }
        for &i in &members {
            let Some(m) = p99(&cases[i]) else { continue };
            let detectable = cases[i].min_p_value.is_some_and(|p| p < settings.alpha);
            let metric = &mut cases[i].metrics[m];
            metric.machine_shift = Some(shift);
            metric.verdict = judge(
                metric.metric,
                metric.ratio_ci95,
                metric.limit(),
                metric.significant,
                detectable,
                shift,
            );
            cases[i].verdict = case_verdict(&cases[i].metrics);
        }
    }
    notes
}

/// A case's verdict from its metrics' verdicts.
fn case_verdict(metrics: &[MetricComparison]) -> Verdict {
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

fn compare_case(key: &str, old: &CaseRecord, new: &CaseRecord, settings: &GateSettings) -> CaseComparison {
    let (n_old, n_new) = (old.trials.len(), new.trials.len());
    let min_p_value = stats::mann_whitney_min_p(n_old, n_new);
    let mut notes = Vec::new();
    let (old_delay, new_delay) = (delay_ns(old), delay_ns(new));
    if old_delay != new_delay {
        notes.push(format!(
            "injected delay_ns differs: {old_delay} ns (old) vs {new_delay} ns (new) per sent message"
        ));
    }
    if let Some(p) = min_p_value
        && p >= settings.alpha
    {
        notes.push(format!(
            "too few trials to detect anything: with {n_old} vs {n_new} trials the smallest possible p-value is \
             {p:.3}, not below alpha = {}; use at least 5 repetitions",
            settings.alpha
        ));
    }
    let mut metrics = Vec::new();
    for metric in Metric::ALL.into_iter().filter(|m| m.applies(old) && m.applies(new)) {
        let (old_values, new_values) = (metric.values(old), metric.values(new));
        if old_values.is_empty() && new_values.is_empty() {
            continue;
        }
        match compare_metric(metric, &old_values, &new_values, settings) {
            Some(m) => metrics.push(m),
            None => notes.push(format!(
                "{} not compared: {} old and {} new values{}",
                metric.label(),
                old_values.len(),
                new_values.len(),
                if stats::median(&old_values).is_some_and(|m| m <= 0.0) {
                    ", the old median is 0"
                } else {
                    ""
                }
            )),
        }
    }
    let verdict = case_verdict(&metrics);
    CaseComparison {
        key: key.to_owned(),
        old_id: old.id.clone(),
        new_id: new.id.clone(),
        scenario: new.scenario.clone(),
        transport: new.transport.clone(),
        message_bytes: new.message_bytes,
        n_old,
        n_new,
        min_p_value,
        metrics,
        verdict,
        notes,
        confirmation: None,
    }
}

/// Pools the trials of several runs of the same cases (the confirmation re-runs) into one
/// record: the first run's record with every later run's trials appended per case id, and the
/// summaries recomputed. A case failed in any run keeps that status.
pub fn pool_runs(runs: &[RunRecord]) -> Option<RunRecord> {
    let (first, rest) = runs.split_first()?;
    let mut pooled = first.clone();
    for run in rest {
        for case in &run.cases {
            match pooled.cases.iter_mut().find(|c| c.id == case.id) {
                Some(target) => {
                    target.trials.extend(case.trials.iter().cloned());
                    if case.status != Status::Ok && target.status == Status::Ok {
                        target.status = case.status.clone();
                        target.reason = case.reason.clone();
                    }
                }
                None => pooled.cases.push(case.clone()),
            }
        }
        pooled.interrupted |= run.interrupted;
        pooled.finished_at = run.finished_at.clone();
    }
    let context = FinishContext {
        clock_overhead_ns: pooled.clock.overhead_ns,
        calibration: pooled.calibration.as_ref(),
        link_rate_mbit: None,
    };
    let mut cases = std::mem::take(&mut pooled.cases);
    for case in &mut cases {
        finish_case(case, &context);
    }
    pooled.cases = cases;
    Some(pooled)
}
