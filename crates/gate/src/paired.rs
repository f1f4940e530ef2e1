//! The paired comparison (`ipcbench ci --against`): one record in which every round of every
//! case ran the old and the new binary back to back on the same cores, judged on the per-round
//! ratios new/old.
//!
//! Drift that hits both trials of a round alike (a noisy neighbour, a frequency change, the
//! host's mood that minute) cancels in their ratio, so the gate can hold a change against the
//! spread of the ratios instead of the spread of two runs recorded minutes apart. Per metric:
//!
//! - the change: the median of the per-round ratios `new / old`;
//! - its 95% interval: a percentile bootstrap of that median over the rounds (fixed seed);
//! - a two-sided Wilcoxon signed-rank test of the log ratios across rounds
//!   ([`ipcbench_record::stats::wilcoxon_signed_rank`]): exact up to 25 rounds;
//! - the same rule as the unpaired gate ([`judge`](crate::judge)): significant, interval clear of
//!   1, and the whole interval beyond the threshold. There is no baseline-noise floor and no
//!   machine-wide p99 discount: both exist to absorb what differs between two runs, and a pair
//!   shares its minute.
//!
//! Each metric also reports the smallest change it could have detected
//! ([`detectable_change`](crate::detectable_change)), paired and, from the same trials taken as
//! two unpaired samples, unpaired.

use std::collections::BTreeMap;

use ipcbench_record::stats::{self, RankTestMethod};
use ipcbench_record::{CaseRecord, Pair, RunRecord, SCHEMA, Status, Trial};

use crate::compare::CompareError;
use crate::comparison::{
    COMPARE_SCHEMA, CaseComparison, Comparison, MetricComparison, NotCompared, PairedInfo, RunInfo,
};
use crate::judge::{
    INTERVAL_LEVEL, RATIO_RESAMPLES, RATIO_SEED, case_verdict, compare_metric, detectable_change, judge,
};
use crate::matching::{keys, machine_differences};
use crate::metric::Metric;
use crate::settings::{CompareOptions, GateSettings};

/// `new / old` per metric key for one round, for the metrics of `case` both trials have with a
/// positive old value: what [`Pair::ratios`] holds.
pub fn pair_ratios(case: &CaseRecord, old: &Trial, new: &Trial) -> BTreeMap<String, f64> {
    Metric::ALL
        .into_iter()
        .filter(|m| m.applies(case))
        .filter_map(|m| {
            let (o, n) = (m.trial_value(old)?, m.trial_value(new)?);
            (o > 0.0).then(|| (m.key().to_owned(), n / o))
        })
        .collect()
}

/// Judges one metric on paired values (`pairs` of (old, new)); `None` when no pair has the
/// metric with a positive old value.
pub fn compare_paired_metric(
    metric: Metric,
    pairs: &[(f64, f64)],
    settings: &GateSettings,
) -> Option<MetricComparison> {
    let pairs: Vec<(f64, f64)> = pairs.iter().copied().filter(|(o, _)| *o > 0.0).collect();
    let ratios: Vec<f64> = pairs.iter().map(|(o, n)| n / o).collect();
    let ratio = stats::median(&ratios)?;
    let old_values: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let new_values: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let ratio_ci95 = stats::bootstrap_ci(&ratios, INTERVAL_LEVEL, RATIO_RESAMPLES, RATIO_SEED)?;
    let logs: Vec<f64> = ratios.iter().map(|r| r.ln()).collect();
    let rank = stats::wilcoxon_signed_rank(&logs)?;
    let possible = stats::wilcoxon_min_p(ratios.len()) < settings.alpha;
    let excludes_one = (ratio > 1.0 && ratio_ci95[0] > 1.0) || (ratio < 1.0 && ratio_ci95[1] < 1.0);
    let significant = rank.p_two_sided < settings.alpha && excludes_one;
    let threshold = settings.threshold(metric);
    let verdict = judge(metric, ratio_ci95, threshold, significant, possible, 1.0);
    let unpaired = compare_metric(metric, &old_values, &new_values, settings);
    Some(MetricComparison {
        metric,
        old_median: stats::median(&old_values)?,
        new_median: stats::median(&new_values)?,
        ratio,
        ratio_ci95,
        u: rank.w_plus,
        p_value: rank.p_two_sided,
        test: match rank.method {
            RankTestMethod::Exact => "wilcoxon-exact".into(),
            RankTestMethod::Normal => "wilcoxon-normal".into(),
        },
        threshold,
        noise: 0.0,
        machine_shift: None,
        significant,
        verdict,
        detectable: detectable_change(metric, ratio, ratio_ci95, threshold, possible),
        unpaired_detectable: unpaired.and_then(|u| u.detectable),
    })
}

fn compare_paired_case(key: &str, case: &CaseRecord, settings: &GateSettings) -> CaseComparison {
    let n = case.pairs.len();
    let min_p_value = (n > 0).then(|| stats::wilcoxon_min_p(n));
    let mut notes = Vec::new();
    if let Some(p) = min_p_value
        && p >= settings.alpha
    {
        notes.push(format!(
            "too few trials to detect anything: with {n} rounds the smallest possible p-value of the signed-rank \
             test is {p:.3}, not below alpha = {}; use at least 6 rounds (--rounds)",
            settings.alpha
        ));
    }
    let mut metrics = Vec::new();
    for metric in Metric::ALL.into_iter().filter(|m| m.applies(case)) {
        let values: Vec<(f64, f64)> = case
            .pairs
            .iter()
            .filter_map(|p: &Pair| Some((metric.trial_value(&p.old)?, metric.trial_value(&p.new)?)))
            .collect();
        if values.is_empty() {
            continue;
        }
        match compare_paired_metric(metric, &values, settings) {
            Some(m) => metrics.push(m),
            None => notes.push(format!(
                "{} not compared: no round with a positive old value",
                metric.label()
            )),
        }
    }
    CaseComparison {
        key: key.to_owned(),
        old_id: case.id.clone(),
        new_id: case.id.clone(),
        scenario: case.scenario.clone(),
        transport: case.transport.clone(),
        message_bytes: case.message_bytes,
        n_old: n,
        n_new: n,
        min_p_value,
        verdict: case_verdict(&metrics),
        metrics,
        notes,
        confirmation: None,
    }
}

/// Judges a paired record (one made by `ipcbench ci --against`): every `ok` case on its
/// `pairs`. A case whose new side failed while the old side ran counts as newly failing; one
/// the old side could not run is listed as not compared.
///
/// # Errors
/// [`CompareError::Schema`] for a record of another schema or one that is not paired,
/// [`CompareError::CannotJudge`] for an `ok` case without pairs, and
/// [`CompareError::DifferentMachine`] when the two sides' environments name different machines
/// (they cannot, unless the record was edited) and that is not allowed.
pub fn compare_paired(run: &RunRecord, options: &CompareOptions) -> Result<Comparison, CompareError> {
    let Some(paired) = run.paired.as_ref().filter(|_| run.schema == SCHEMA) else {
        return Err(CompareError::Schema {
            which: "paired",
            found: format!("{} without pairs", run.schema),
        });
    };
    let problems: Vec<String> = run
        .cases
        .iter()
        .filter(|c| c.status == Status::Ok && c.pairs.is_empty())
        .filter(|c| !paired.old_side_failures.iter().any(|f| f.case_id == c.id))
        .map(|c| format!("case {} is ok but has no pairs", c.id))
        .collect();
    if !problems.is_empty() {
        return Err(CompareError::CannotJudge {
            which: "paired",
            problems,
        });
    }
    let differences = machine_differences(&paired.old_environment, &run.environment);
    if !differences.is_empty() && !options.allow_different_machine {
        return Err(CompareError::DifferentMachine(differences));
    }
    let settings = options.settings;
    let mut notes = Vec::new();
    if !paired.new_side_sets.is_empty() {
        notes.push(format!(
            "the new side ran with {} (the old side without)",
            paired.new_side_sets.join(" ")
        ));
    }
    let per_core = run.environment.load_average_1m / run.environment.cores.max(1) as f64;
    if per_core > 0.5 {
        notes.push(format!(
            "the run started at load average {:.2} on {} cores: load that changes within a round still adds noise",
            run.environment.load_average_1m, run.environment.cores
        ));
    }
    if run.interrupted {
        notes.push("the run was interrupted: only its completed rounds are compared".into());
    }
    let mut cases = Vec::new();
    let mut not_compared = Vec::new();
    for (key, case) in keys(run).iter().zip(&run.cases) {
        let old_failure = paired.old_side_failures.iter().find(|f| f.case_id == case.id);
        if case.status != Status::Ok || old_failure.is_some() {
            let mut reasons = Vec::new();
            if let Some(f) = old_failure {
                reasons.push(format!("old: {}", f.reason));
            }
            if case.status != Status::Ok {
                reasons.push(format!(
                    "new: {}",
                    case.reason.as_deref().unwrap_or("no reason recorded")
                ));
            }
            let old_status = old_failure.map_or(Status::Ok, |f| f.status.clone());
            not_compared.push(NotCompared {
                key: key.clone(),
                newly_failed: old_status == Status::Ok && case.status == Status::Failed,
                old_status,
                new_status: case.status.clone(),
                reason: reasons.join("; "),
            });
            continue;
        }
        cases.push(compare_paired_case(key, case, &settings));
    }
    let old_info = RunInfo {
        git_commit: paired.old_environment.git_commit.clone(),
        name: format!("{} ({})", run.name, paired.old_binary),
        ..RunInfo::of(run)
    };
    Ok(Comparison {
        schema: COMPARE_SCHEMA.into(),
        old: old_info,
        new: RunInfo::of(run),
        settings,
        machine_differences: differences,
        cases,
        only_in_old: Vec::new(),
        only_in_new: Vec::new(),
        not_compared,
        notes,
        confirmation_runs: None,
        paired: Some(PairedInfo {
            n_rounds: paired.n_rounds,
            old_binary: paired.old_binary.clone(),
            new_side_sets: paired.new_side_sets.clone(),
        }),
    })
}
