//! github-action-benchmark's custom formats: `[{name, unit, value, range, extra}]`.

use ipcbench_record::RunRecord;

use crate::export::exporter::Exporter;
use crate::export::figures::{exported_cases, headline_figure};
use crate::metric::Metric;

/// github-action-benchmark's `customSmallerIsBetter` (latencies and CPU per message) or
/// `customBiggerIsBetter` (throughput) JSON: one entry per case and metric, named
/// `<case id> <metric label>`, with the median over trials and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GithubBenchmark {
    /// `customSmallerIsBetter`: p50 and p99 latency, CPU per message.
    SmallerIsBetter,
    /// `customBiggerIsBetter`: messages/s, and bytes/s for stream cases.
    BiggerIsBetter,
}

impl Exporter for GithubBenchmark {
    fn document(&self, record: &RunRecord) -> serde_json::Value {
        let bigger = *self == GithubBenchmark::BiggerIsBetter;
        let mut entries = Vec::new();
        for case in exported_cases(record) {
            for metric in Metric::ALL
                .into_iter()
                .filter(|m| m.bigger_is_better() == bigger && m.applies(case))
            {
                let Some((value, [low, high], n)) = headline_figure(case, metric) else {
                    continue;
                };
                let half_width = (value - low).max(high - value);
                entries.push(serde_json::json!({
                    "name": format!("{} {}", case.id, metric.label()),
                    "unit": metric.unit(),
                    "value": value,
                    "range": format!("± {}", significant(half_width)),
                    "extra": format!(
                        "median of {n} trials; 95% interval {} .. {} {}",
                        significant(low),
                        significant(high),
                        metric.unit()
                    ),
                }));
            }
        }
        serde_json::Value::Array(entries)
    }
}

/// Three significant digits, trailing zeros kept (`12.30`-style figures stay as the export
/// always wrote them, unlike [`ipcbench_record::units::significant`]).
fn significant(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let digits = (3 - 1 - value.abs().log10().floor() as i32).max(0) as usize;
    format!("{value:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_keeps_three_digits() {
        assert_eq!(significant(1234.5), "1234");
        assert_eq!(significant(12.345), "12.3");
        assert_eq!(significant(0.012345), "0.0123");
        assert_eq!(significant(1.2), "1.20");
    }
}
