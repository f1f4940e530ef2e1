//! p99 against the machine: a tail shift every case of a placement shares is the machine's.

use std::collections::BTreeMap;

use ipcbench_record::stats;

use crate::comparison::CaseComparison;
use crate::judge::{case_verdict, judge};
use crate::metric::Metric;
use crate::settings::GateSettings;

/// The fewest cases of one placement whose p99 ratios make a machine-wide shift.
pub const MACHINE_SHIFT_MIN_CASES: usize = 4;

/// Judges p99 against the machine: for each placement (`cross-core`, `same-core`, ...) with at
/// least [`MACHINE_SHIFT_MIN_CASES`] cases, the median p99 ratio over those cases is taken as
/// the machine's own change, and when it is above 1 every case's p99 of that placement is
/// re-judged with its interval divided by it. Returns a note per placement whose shift is
/// beyond the p99 threshold. Only worsening is discounted, never amplified: a calmer machine
/// must not turn an unchanged case into a regression.
pub(crate) fn discount_machine_shift(
    cases: &mut [CaseComparison],
    placements: &[String],
    settings: &GateSettings,
) -> Vec<String> {
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
