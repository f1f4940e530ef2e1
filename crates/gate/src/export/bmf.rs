//! Bencher Metric Format (BMF) JSON:
//! `{"<case id>": {"<measure>": {"value", "lower_value", "upper_value"}}}`.

use ipcbench_record::RunRecord;

use crate::export::exporter::Exporter;
use crate::export::figures::{exported_cases, headline_figure};
use crate::metric::Metric;

/// Bencher Metric Format: every metric of every `ok` case as a measure, with the median over
/// trials and its 95% interval as the bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bmf;

impl Exporter for Bmf {
    fn document(&self, record: &RunRecord) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for case in exported_cases(record) {
            let mut measures = serde_json::Map::new();
            for metric in Metric::ALL.into_iter().filter(|m| m.applies(case)) {
                if let Some((value, [low, high], _)) = headline_figure(case, metric) {
                    measures.insert(
                        slug(metric).to_owned(),
                        serde_json::json!({"value": value, "lower_value": low, "upper_value": high}),
                    );
                }
            }
            out.insert(case.id.clone(), serde_json::Value::Object(measures));
        }
        serde_json::Value::Object(out)
    }
}

/// The Bencher measure slug of a metric (`latency` and `throughput` are Bencher's built-ins).
fn slug(metric: Metric) -> &'static str {
    match metric {
        Metric::LatencyP50 => "latency",
        Metric::LatencyP99 => "latency-p99",
        Metric::MessagesPerS => "throughput",
        Metric::BytesPerS => "throughput-bytes",
        Metric::CpuPerMessage => "cpu-per-message",
    }
}
