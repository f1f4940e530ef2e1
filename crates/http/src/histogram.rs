//! HdrHistogram settings shared by every latency the crate records.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::HttpError;

/// The highest latency a histogram holds, ns (100 s, as the harness); above it is an error.
pub const HISTOGRAM_MAX_NS: u64 = 100_000_000_000;
/// Significant decimal digits of every histogram.
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// An empty latency histogram (ns, 1 ns to [`HISTOGRAM_MAX_NS`], 3 digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, HISTOGRAM_SIGFIG).expect("static histogram bounds are valid")
}

/// Records one latency; 0 ns is recorded as 1 ns (below the clock's resolution).
pub(crate) fn record(histogram: &mut Histogram<u64>, latency: Duration) -> Result<(), HttpError> {
    let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    histogram.record(ns.max(1)).map_err(|_| HttpError::OutOfRange(latency))
}

/// Adds `from` into `into` (same bounds, so this cannot fail).
pub(crate) fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    into.add(from).expect("histograms with equal bounds merge");
}
