//! Percentile-distribution files (`.hgrm`) in the format of HdrHistogram's
//! `outputPercentileDistribution`, which HdrHistogram's plotting tools read.
//!
//! Values are written in microseconds (the histograms hold nanoseconds; the scaling ratio is
//! 1000, as with the Java tool's usual `-outputValueUnitRatio 1000`), with as many decimals as
//! the histogram has significant digits, so no nanosecond is lost. Percentile rows step with
//! 5 ticks per half distance to 100%, like the Java default.

use hdrhistogram::Histogram;
use ipcbench_record::RunRecord;

use crate::ReportError;
use crate::cases::{self, Which};

/// Divides the stored nanoseconds to give microseconds.
pub const VALUE_SCALING_RATIO: f64 = 1000.0;
/// Percentile ticks per half distance to 100%.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// One `.hgrm` file of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct HgrmFile {
    /// The case it describes.
    pub case_id: String,
    /// File name (no folder), derived from the case id; `.corrected.hgrm` for the
    /// coordinated-omission corrected histogram of a load case.
    pub file_name: String,
    /// The file's text.
    pub text: String,
}

/// The percentile distribution of `histogram` (values in ns) as `.hgrm` text, values in µs.
pub fn hgrm(histogram: &Histogram<u64>) -> String {
    let digits = usize::from(histogram.sigfig());
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for step in histogram.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        total += step.count_since_last_iteration();
        let value = step.value_iterated_to() as f64 / VALUE_SCALING_RATIO;
        let quantile = step.quantile_iterated_to();
        if quantile < 1.0 {
            out.push_str(&format!(
                "{value:12.digits$} {quantile:2.12} {total:10} {:14.2}\n",
                1.0 / (1.0 - quantile)
            ));
        } else {
            out.push_str(&format!("{value:12.digits$} {quantile:2.12} {total:10}\n"));
        }
    }
    out.push_str(&format!(
        "#[Mean    = {:12.digits$}, StdDeviation   = {:12.digits$}]\n",
        histogram.mean() / VALUE_SCALING_RATIO,
        histogram.stdev() / VALUE_SCALING_RATIO
    ));
    out.push_str(&format!(
        "#[Max     = {:12.digits$}, Total count    = {:12}]\n",
        histogram.max() as f64 / VALUE_SCALING_RATIO,
        histogram.len()
    ));
    out.push_str(&format!(
        "#[Buckets = {:12}, SubBuckets     = {:12}]\n",
        histogram.buckets(),
        sub_bucket_count(histogram.sigfig())
    ));
    out
}

/// HdrHistogram's sub-bucket count for a precision: the smallest power of two that holds
/// `2 * 10^sigfig` values with unit resolution.
fn sub_bucket_count(sigfig: u8) -> u64 {
    let largest_single_unit = 2 * 10u64.pow(u32::from(sigfig));
    largest_single_unit.next_power_of_two()
}

/// One `.hgrm` file per completed case with a stored latency histogram (all trials merged),
/// plus a `.corrected.hgrm` for cases that also store a corrected one; in case order.
///
/// # Errors
/// [`ReportError::Histogram`] when a stored histogram cannot be decoded.
pub fn hgrm_files(record: &RunRecord) -> Result<Vec<HgrmFile>, ReportError> {
    let mut files = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for case in record.cases.iter().filter(|c| cases::is_measured(c)) {
        let stem = unique(cases::file_stem(&case.id), &mut used);
        for (which, suffix) in [(Which::Measured, ""), (Which::Corrected, ".corrected")] {
            if let Some(histogram) = cases::merged_histogram(case, which)? {
                files.push(HgrmFile {
                    case_id: case.id.clone(),
                    file_name: format!("{stem}{suffix}.hgrm"),
                    text: hgrm(&histogram),
                });
            }
        }
    }
    Ok(files)
}

/// `stem`, or `stem-2`, `stem-3`, ... when an earlier case already took it.
pub(crate) fn unique(stem: String, used: &mut std::collections::BTreeSet<String>) -> String {
    let mut candidate = stem.clone();
    let mut n = 2;
    while !used.insert(candidate.clone()) {
        candidate = format!("{stem}-{n}");
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcbench_record::stats;

    #[test]
    fn sub_buckets_match_hdrhistogram() {
        assert_eq!(sub_bucket_count(3), 2048);
        assert_eq!(sub_bucket_count(2), 256);
    }

    #[test]
    fn rows_end_at_the_maximum_with_total_count() {
        let mut h = stats::new_histogram();
        for v in 1..=1000u64 {
            stats::record(&mut h, v * 1000).unwrap();
        }
        let text = hgrm(&h);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect();
        let last = rows.last().unwrap();
        let fields: Vec<&str> = last.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "the 100% row has no 1/(1-p) column: {last}");
        assert_eq!(fields[1], "1.000000000000");
        assert_eq!(fields[2], "1000");
        // 1,000,000 ns is 1000 µs; the histogram's bucket holding it ends slightly above.
        let max: f64 = fields[0].parse().unwrap();
        assert!((1000.0..1001.0).contains(&max), "{max}");
        assert!(text.contains("Total count    =         1000]"));
    }
}
