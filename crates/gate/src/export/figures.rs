//! What every export reports of a case: each metric's median over trials and its interval.

use ipcbench_record::stats;
use ipcbench_record::{CaseRecord, RunRecord, Status};

use crate::metric::Metric;

/// The median of a metric in a case, its 95% bootstrap interval, and the number of trials.
pub(crate) fn headline_figure(case: &CaseRecord, metric: Metric) -> Option<(f64, [f64; 2], usize)> {
    let values = metric.values(case);
    let median = stats::median(&values)?;
    let interval = stats::bootstrap_median_ci(&values)?;
    Some((median, interval, values.len()))
}

/// The cases an export reports: `ok` and with trials.
pub(crate) fn exported_cases(record: &RunRecord) -> impl Iterator<Item = &CaseRecord> {
    record
        .cases
        .iter()
        .filter(|c| c.status == Status::Ok && !c.trials.is_empty())
}
