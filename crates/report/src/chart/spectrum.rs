//! Percentile spectrum in the HdrHistogram style: latency against percentile, the x axis a
//! log scale of 1/(1-p) (0%, 90%, 99%, 99.9%, ...), one line per transport and placement, one
//! chart per message size. Each line merges all trials of its case and ends where the
//! samples run out (1/(1-p) = sample count), so no tail is extrapolated.

use std::collections::BTreeMap;

use ipcbench_record::CaseRecord;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::Axis;
use super::common::{ChartInfo, DrawFailed};
use super::frame::Frame;
use super::style::LegendEntry;
use super::style::{self, Palette, Series};
use crate::cases::{self, Dimension, SeriesKey, Which};
use crate::{ReportError, Stamp, format};

/// Charts for at most this many sizes per scenario (evenly picked, smallest and largest kept).
const MAX_SIZES: usize = 6;
/// Points per decade of 1/(1-p).
const STEPS_PER_DECADE: u32 = 20;
/// The spectrum goes to 99.999% at most.
const MAX_DECADES: f64 = 5.0;

/// (message bytes, reply bytes when they differ).
type SizeKey = (u64, Option<u64>);
/// A line's key and its (x, ns) points.
type Line = (SeriesKey, Vec<(f64, f64)>);

/// The spectrum of one message size.
pub(crate) struct Spectrum {
    pub info: ChartInfo,
    stamp: Stamp,
    x: Axis,
    y: Axis,
    /// (log10(1/(1-p)), latency in axis coordinates).
    series: Vec<Series<(f64, f64)>>,
    legend: Vec<LegendEntry>,
    notes: Vec<String>,
}

/// (x, value in ns) points of one histogram.
fn spectrum_points(histogram: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    let count = histogram.len().max(1) as f64;
    let end = count.log10().min(MAX_DECADES);
    let steps = (end * f64::from(STEPS_PER_DECADE)).floor() as u32;
    let mut points: Vec<(f64, f64)> = (0..=steps)
        .map(|i| {
            let x = f64::from(i) / f64::from(STEPS_PER_DECADE);
            let q = 1.0 - 10f64.powf(-x);
            (x, histogram.value_at_quantile(q) as f64)
        })
        .collect();
    if points.last().is_none_or(|p| end - p.0 > 1e-9) {
        points.push((end, histogram.value_at_quantile(1.0 - 10f64.powf(-end)) as f64));
    }
    points
}

/// `sizes` thinned to at most [`MAX_SIZES`], keeping the first and last.
fn pick(sizes: &[(u64, Option<u64>)]) -> Vec<(u64, Option<u64>)> {
    if sizes.len() <= MAX_SIZES {
        return sizes.to_vec();
    }
    let last = sizes.len() - 1;
    let mut picked: Vec<_> = (0..MAX_SIZES)
        .map(|i| sizes[(i * last + (MAX_SIZES - 1) / 2) / (MAX_SIZES - 1)])
        .collect();
    picked.dedup();
    picked
}

impl Spectrum {
    /// One chart per message size (a selection when there are many) of the cases of
    /// `scenario` that stored histograms (request/reply and load scenarios).
    ///
    /// # Errors
    /// [`ReportError::Histogram`] when a stored histogram cannot be decoded.
    pub(crate) fn build(
        scenario: &str,
        cases: &[&CaseRecord],
        stamp: &Stamp,
        palette: &Palette,
    ) -> Result<Vec<Self>, ReportError> {
        // rpc latency depends on window and delay, which the window chart shows instead.
        if !matches!(scenario, "pingpong" | "proxy" | "load") {
            return Ok(Vec::new());
        }
        let mut by_size: BTreeMap<SizeKey, Vec<Line>> = BTreeMap::new();
        for case in cases {
            let Some(histogram) = cases::merged_histogram(case, Which::Measured)? else {
                continue;
            };
            let reply = case.reply_bytes.filter(|r| *r != case.message_bytes);
            let mut key = SeriesKey::of(case, &[Dimension::Size]);
            key.extra.retain(|e| !e.starts_with("reply "));
            by_size
                .entry((case.message_bytes, reply))
                .or_default()
                .push((key, spectrum_points(&histogram)));
        }
        let sizes: Vec<_> = by_size.keys().copied().collect();
        let mut out = Vec::new();
        for size in pick(&sizes) {
            let mut lines = by_size.remove(&size).unwrap_or_default();
            lines.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(Spectrum::one(scenario, size, lines, stamp, palette));
        }
        Ok(out)
    }

    fn one(scenario: &str, (size, reply): SizeKey, lines: Vec<Line>, stamp: &Stamp, palette: &Palette) -> Spectrum {
        let all = || lines.iter().flat_map(|(_, p)| p.iter());
        let low = all().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let high = all().map(|p| p.1).fold(0.0, f64::max);
        let end = all().map(|p| p.0).fold(0.0, f64::max);
        let x = Axis::percentile((end - 1e-9).ceil().max(2.0) as u32);
        let y = Axis::auto(low, high, |v| format::time_ns(v, 3));
        let (series, legend) = style::series(lines, palette, |points| {
            points.iter().map(|(px, v)| (*px, y.t(*v))).collect()
        });
        let size_text = match reply {
            Some(reply) => format!("{} requests, {} replies", format::bytes(size), format::bytes(reply)),
            None => format!("{} messages", format::bytes(size)),
        };
        let stem = match reply {
            Some(reply) => format!("spectrum-{scenario}-{size}B-{reply}B"),
            None => format!("spectrum-{scenario}-{size}B"),
        };
        Spectrum {
            info: ChartInfo {
                stem,
                title: format!("Latency by percentile, {size_text} ({scenario})"),
                scenario: scenario.to_owned(),
            },
            stamp: stamp.clone(),
            x,
            y,
            series,
            legend,
            notes: vec![
                "All trials of a case merged. Markers at the labelled percentiles.".to_owned(),
                "A line ends where its samples run out: beyond 1/(1-p) = sample count, a percentile is just the maximum."
                    .to_owned(),
            ],
        }
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawFailed> {
        let subtitle = if self.y.is_log() {
            "lower is better · x: percentile on a log scale of 1/(1-p) · y: log scale"
        } else {
            "lower is better · x: percentile on a log scale of 1/(1-p)"
        };
        let frame = Frame {
            title: &self.info.title,
            subtitle: Some(subtitle),
            stamp: &self.stamp,
            legend_title: Some("transport · placement"),
            legend: &self.legend,
            notes: &self.notes,
        };
        let y_desc = if self.y.is_log() {
            "round-trip latency (log scale)"
        } else {
            "round-trip latency"
        };
        let x = (&self.x, "percentile (log scale of 1/(1-p))");
        frame.draw_plot(root, x, (&self.y, y_desc), |chart| {
            for s in &self.series {
                style::line(chart, &s.points, s.look.color, s.look.dashed, 2)?;
                let at_ticks: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(px, _)| (px - px.round()).abs() < 1e-9)
                    .collect();
                style::markers(chart, &at_ticks, s.look.marker, s.look.color)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spectrum_ends_where_the_samples_run_out() {
        let mut h = ipcbench_record::stats::new_histogram();
        for v in 1..=1000u64 {
            ipcbench_record::stats::record(&mut h, v).unwrap();
        }
        let points = spectrum_points(&h);
        assert_eq!(points.first().unwrap().0, 0.0);
        assert!((points.last().unwrap().0 - 3.0).abs() < 1e-9);
        assert!(points.windows(2).all(|w| w[0].1 <= w[1].1), "monotonic");
    }

    #[test]
    fn many_sizes_are_thinned_keeping_the_ends() {
        let sizes: Vec<(u64, Option<u64>)> = (0..23).map(|e| (1u64 << e, None)).collect();
        let picked = pick(&sizes);
        assert_eq!(picked.len(), MAX_SIZES);
        assert_eq!(picked[0], sizes[0]);
        assert_eq!(*picked.last().unwrap(), sizes[22]);
    }
}
