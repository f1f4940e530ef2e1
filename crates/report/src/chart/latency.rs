//! Round-trip latency vs message size: log-log, one line per transport and placement, the
//! median (p50) as a line with the p99 as a translucent band above it.

use std::collections::BTreeMap;

use ipcbench_record::CaseRecord;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::Axis;
use super::common::{ChartInfo, DrawFailed};
use super::frame::Frame;
use super::style::{self, Coords, Palette, Series};
use super::style::{LegendEntry, Swatch};
use crate::cases::{Dimension, SeriesKey};
use crate::{Stamp, format};

/// The chart of one scenario.
pub(crate) struct LatencyVsSize {
    pub info: ChartInfo,
    stamp: Stamp,
    /// The cache-line round trip in axis coordinates: no message round trip can beat it.
    floor: Option<f64>,
    /// The two-line round trip in axis coordinates: no channel with a ring per direction can
    /// beat it.
    two_line: Option<f64>,
    x: Axis,
    y: Axis,
    /// (size, p50, p99) in axis coordinates.
    series: Vec<Series<(f64, f64, f64)>>,
    legend: Vec<LegendEntry>,
    notes: Vec<String>,
}

impl LatencyVsSize {
    /// The chart for the request/reply cases of `scenario`, or `None` when it has none.
    /// `floor_ns`, the measured cache-line round trip between the cores, is drawn as the
    /// physical floor when known, and `two_line_ns`, the round trip over one line per
    /// direction, as the floor of a channel with a ring per direction.
    pub(crate) fn build(
        scenario: &str,
        cases: &[&CaseRecord],
        stamp: &Stamp,
        palette: &Palette,
        floor_ns: Option<f64>,
        two_line_ns: Option<f64>,
    ) -> Option<Self> {
        if !matches!(scenario, "pingpong" | "proxy") {
            return None;
        }
        let mut grouped: BTreeMap<SeriesKey, Vec<(f64, f64, f64)>> = BTreeMap::new();
        for case in cases {
            let Some(latency) = case.summary.as_ref().and_then(|s| s.latency_ns) else {
                continue;
            };
            grouped
                .entry(SeriesKey::of(case, &[Dimension::Size]))
                .or_default()
                .push((case.message_bytes as f64, latency.p50, latency.p99.max(latency.p50)));
        }
        if grouped.is_empty() {
            return None;
        }
        let sizes: Vec<f64> = grouped.values().flatten().map(|p| p.0).collect();
        let floor_ns = floor_ns.filter(|f| f.is_finite() && *f > 0.0);
        let two_line_ns = two_line_ns.filter(|f| f.is_finite() && *f > 0.0);
        let low = grouped
            .values()
            .flatten()
            .map(|p| p.1)
            .chain(floor_ns)
            .fold(f64::INFINITY, f64::min);
        let high = grouped.values().flatten().map(|p| p.2).fold(0.0, f64::max);
        let x = Axis::log2(&sizes, format::bytes_approx);
        let y = Axis::log10(low, high, |v| format::time_ns(v, 3));
        let (series, mut legend) = style::series(grouped, palette, |mut points| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            points
                .iter()
                .map(|(s, p50, p99)| (x.t(*s), y.t(*p50), y.t(*p99)))
                .collect()
        });
        if let Some(floor) = floor_ns {
            let label = format!("cache-line round trip ({})", format::time_ns(floor, 3));
            legend.push(LegendEntry::line(label, style::TEXT, true, None));
        }
        if let Some(two_line) = two_line_ns {
            let label = format!("two-line round trip ({})", format::time_ns(two_line, 3));
            legend.push(LegendEntry::line(label, style::MUTED, true, None));
        }
        legend.push(LegendEntry {
            label: "p50 to p99 (band)".to_owned(),
            color: style::MUTED,
            swatch: Swatch::Band,
        });
        let n_trials = cases
            .iter()
            .filter_map(|c| c.summary.as_ref())
            .map(|s| s.n_trials)
            .max()
            .unwrap_or(0);
        Some(LatencyVsSize {
            info: ChartInfo {
                stem: format!("latency-vs-size-{scenario}"),
                title: format!("Round-trip latency vs message size ({scenario})"),
                scenario: scenario.to_owned(),
            },
            stamp: stamp.clone(),
            floor: floor_ns.map(|f| y.t(f)),
            two_line: two_line_ns.map(|f| y.t(f)),
            x,
            y,
            series,
            legend,
            notes: vec![
                "Thick line: median round trip (p50). Shaded band up to the thin line: p99.".to_owned(),
                format!("Each point is the median over the trials of a case (up to {n_trials})."),
            ],
        })
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawFailed> {
        let frame = Frame {
            title: &self.info.title,
            subtitle: Some("lower is better · both axes log scale"),
            stamp: &self.stamp,
            legend_title: Some("transport · placement"),
            legend: &self.legend,
            notes: &self.notes,
        };
        let x = (&self.x, "message size (bytes, log scale)");
        frame.draw_plot(root, x, (&self.y, "round-trip latency (log scale)"), |chart| {
            self.draw_data(chart)
        })
    }

    fn draw_data<DB: DrawingBackend>(&self, chart: &mut ChartContext<'_, DB, Coords>) -> Result<(), DrawFailed> {
        // Bands add up where they overlap: fainter the more series share the chart.
        let band_alpha = (0.2 / (self.series.len() as f64).sqrt()).max(0.05);
        for s in &self.series {
            if s.points.len() >= 2 {
                let mut outline: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
                outline.extend(s.points.iter().rev().map(|p| (p.0, p.2)));
                chart.draw_series(std::iter::once(Polygon::new(
                    outline,
                    s.look.color.mix(band_alpha).filled(),
                )))?;
                // The band's upper edge is the p99 line: thin, so the p50 line stays the headline.
                let p99: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.2)).collect();
                chart.draw_series(std::iter::once(PathElement::new(
                    p99,
                    s.look.color.mix(0.55).stroke_width(1),
                )))?;
            } else {
                // A single size: the band becomes a bar from p50 to p99.
                for p in &s.points {
                    chart.draw_series(std::iter::once(PathElement::new(
                        vec![(p.0, p.1), (p.0, p.2)],
                        s.look.color.mix(0.35).stroke_width(6),
                    )))?;
                }
            }
        }
        if let Some(floor) = self.floor {
            style::line(chart, &[(self.x.lo, floor), (self.x.hi, floor)], style::TEXT, true, 1)?;
        }
        if let Some(two_line) = self.two_line {
            style::line(
                chart,
                &[(self.x.lo, two_line), (self.x.hi, two_line)],
                style::MUTED,
                true,
                1,
            )?;
        }
        for s in &self.series {
            let p50: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
            style::line(chart, &p50, s.look.color, s.look.dashed, 2)?;
            style::markers(chart, &p50, s.look.marker, s.look.color)?;
        }
        Ok(())
    }
}
