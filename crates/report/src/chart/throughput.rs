//! Throughput vs message size (stream): payload bytes per second against the message size,
//! log-log, one line per transport and placement, with the 95% interval of the median as
//! whiskers.

use std::collections::BTreeMap;

use ipcbench_record::CaseRecord;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::Axis;
use super::common::{ChartInfo, DrawFailed};
use super::frame::Frame;
use super::style::LegendEntry;
use super::style::{self, Coords, Palette, Series};
use crate::cases::{Dimension, SeriesKey};
use crate::{Stamp, format};

/// The chart of the stream cases.
pub(crate) struct ThroughputVsSize {
    pub info: ChartInfo,
    stamp: Stamp,
    /// Single-core memcpy bandwidth in axis coordinates.
    limit: Option<f64>,
    x: Axis,
    y: Axis,
    /// (size, bytes/s, interval low, interval high) in axis coordinates.
    series: Vec<Series<(f64, f64, f64, f64)>>,
    legend: Vec<LegendEntry>,
    notes: Vec<String>,
}

impl ThroughputVsSize {
    /// The chart for `scenario` when it is `stream` and has measured cases.
    /// `limit`, the single-core memcpy bandwidth measured at start-up, is drawn as a reference
    /// when known.
    pub(crate) fn build(
        scenario: &str,
        cases: &[&CaseRecord],
        stamp: &Stamp,
        palette: &Palette,
        limit: Option<f64>,
    ) -> Option<Self> {
        if scenario != "stream" {
            return None;
        }
        let mut grouped: BTreeMap<SeriesKey, Vec<(f64, f64, f64, f64)>> = BTreeMap::new();
        for case in cases {
            let Some(summary) = &case.summary else { continue };
            if summary.bytes_per_s.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            let [low, high] = summary
                .ci95
                .get("bytes_per_s")
                .copied()
                .unwrap_or([summary.bytes_per_s, summary.bytes_per_s]);
            grouped
                .entry(SeriesKey::of(case, &[Dimension::Size]))
                .or_default()
                .push((
                    case.message_bytes as f64,
                    summary.bytes_per_s,
                    low.min(summary.bytes_per_s),
                    high.max(summary.bytes_per_s),
                ));
        }
        if grouped.is_empty() {
            return None;
        }
        let sizes: Vec<f64> = grouped.values().flatten().map(|p| p.0).collect();
        let low = grouped
            .values()
            .flatten()
            .map(|p| p.2)
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let limit = limit.filter(|l| l.is_finite() && *l > 0.0);
        let high = grouped.values().flatten().map(|p| p.3).chain(limit).fold(0.0, f64::max);
        let x = Axis::log2(&sizes, format::bytes_approx);
        let y = Axis::log10(low, high, |v| format::rate(v, "B/s", 3));
        let (series, mut legend) = style::series(grouped, palette, |mut points| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            points
                .iter()
                .map(|(s, v, lo, hi)| (x.t(*s), y.t(*v), y.t(*lo), y.t(*hi)))
                .collect()
        });
        if let Some(limit) = limit {
            let label = format!("memcpy, one core ({})", format::rate(limit, "B/s", 3));
            legend.push(LegendEntry::line(label, style::TEXT, true, None));
        }
        Some(ThroughputVsSize {
            info: ChartInfo {
                stem: format!("throughput-vs-size-{scenario}"),
                title: format!("Throughput vs message size ({scenario})"),
                scenario: scenario.to_owned(),
            },
            stamp: stamp.clone(),
            limit: limit.map(|l| y.t(l)),
            x,
            y,
            series,
            legend,
            notes: vec![
                "One-way payload bytes per second, median over trials; whiskers: its 95% interval.".to_owned(),
                "1 MB/s = 10^6 bytes/s.".to_owned(),
            ],
        })
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawFailed> {
        let frame = Frame {
            title: &self.info.title,
            subtitle: Some("higher is better · both axes log scale"),
            stamp: &self.stamp,
            legend_title: Some("transport · placement"),
            legend: &self.legend,
            notes: &self.notes,
        };
        let x = (&self.x, "message size (bytes, log scale)");
        frame.draw_plot(root, x, (&self.y, "throughput (bytes/s, log scale)"), |chart| {
            self.draw_data(chart)
        })
    }

    fn draw_data<DB: DrawingBackend>(&self, chart: &mut ChartContext<'_, DB, Coords>) -> Result<(), DrawFailed> {
        if let Some(limit) = self.limit {
            style::line(chart, &[(self.x.lo, limit), (self.x.hi, limit)], style::TEXT, true, 1)?;
        }
        // Whiskers of different series at one size would overlap: nudge each series sideways
        // by a little (1.2% of the axis per series), points and lines with it.
        let n = self.series.len() as f64;
        for (i, s) in self.series.iter().enumerate() {
            let dodge = (i as f64 - (n - 1.0) / 2.0) * (self.x.hi - self.x.lo) * 0.012;
            let points: Vec<(f64, f64, f64, f64)> = s.points.iter().map(|p| (p.0 + dodge, p.1, p.2, p.3)).collect();
            let s = Series { look: s.look, points };
            for p in s.points.iter().filter(|p| p.3 > p.2) {
                style::whisker(chart, p.0, p.2, p.3, false, s.look.color, 1)?;
            }
            let line: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
            style::line(chart, &line, s.look.color, s.look.dashed, 2)?;
            style::markers(chart, &line, s.look.marker, s.look.color)?;
        }
        Ok(())
    }
}
