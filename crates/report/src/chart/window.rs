//! Throughput vs window (rpc), one line per added delay, with the bandwidth-delay bound.
//!
//! With `W` requests in flight, each moving `S` bytes (request plus reply, as the rpc
//! scenario counts `bytes_per_s`), and a round trip of at least `RTT`, no protocol moves more
//! than `W * S / RTT` bytes per second: the dashed line of each delay. `RTT` must be a floor
//! for the bound to hold, so it is a round trip the scenario stored (`extra["rtt_ns"]` of the
//! case or the median of its trials'), else the floor of the delayed link: the scenario's
//! `extra["round_trip_floor_ms"]`, or twice the added one-way delay. Without an added delay
//! there is no floor (the round trip is mostly wake-ups, which a window overlaps), so a delay
//! of 0 gets no bound unless the run stored a round trip. The legend says which RTT a line uses.

use std::collections::BTreeMap;

use ipcbench_record::CaseRecord;
use ipcbench_record::stats;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::Axis;
use super::common::{ChartInfo, DrawFailed};
use super::frame::Frame;
use super::style::LegendEntry;
use super::style::{self, Palette};
use crate::cases::{Dimension, SeriesKey};
use crate::{Stamp, format};

/// A round trip the scenario stored for `case`, ns.
fn stored_round_trip_ns(case: &CaseRecord) -> Option<f64> {
    if let Some(rtt) = case.extra.get("rtt_ns").and_then(|v| v.as_f64()).filter(|v| *v > 0.0) {
        return Some(rtt);
    }
    let trials: Vec<f64> = case
        .trials
        .iter()
        .filter_map(|t| t.extra.get("rtt_ns").copied())
        .filter(|v| *v > 0.0)
        .collect();
    stats::median(&trials)
}

/// The round-trip floor of a delayed link, ns.
fn floor_ns(case: &CaseRecord) -> Option<f64> {
    case.extra
        .get("round_trip_floor_ms")
        .and_then(|v| v.as_f64())
        .or(case.delay_ms.map(|d| 2.0 * d))
        .filter(|ms| *ms > 0.0)
        .map(|ms| ms * 1e6)
}

/// One case on the chart.
#[derive(Debug, Clone, Copy)]
struct Point {
    window: f64,
    bytes_per_s: f64,
    stored_rtt_ns: Option<f64>,
    floor_ns: Option<f64>,
}

/// The cases at one delay.
type Points = Vec<Point>;

struct DelayLine {
    color: RGBColor,
    /// (window, bytes/s) in axis coordinates.
    points: Vec<(f64, f64)>,
    /// The bound's two ends in axis coordinates, clipped to the plot.
    bound: Option<[(f64, f64); 2]>,
}

/// The chart of one transport, placement and message size.
pub(crate) struct WindowChart {
    pub info: ChartInfo,
    stamp: Stamp,
    x: Axis,
    y: Axis,
    lines: Vec<DelayLine>,
    legend: Vec<LegendEntry>,
    notes: Vec<String>,
}

/// Delay in ms as a map key that sorts numerically.
fn delay_key(delay_ms: Option<f64>) -> u64 {
    (delay_ms.unwrap_or(0.0).max(0.0) * 1000.0).round() as u64
}

impl WindowChart {
    /// The charts of `scenario` when it is `rpc`: one per transport, placement and size.
    pub(crate) fn build(scenario: &str, cases: &[&CaseRecord], stamp: &Stamp) -> Vec<Self> {
        if scenario != "rpc" {
            return Vec::new();
        }
        let mut groups: BTreeMap<(SeriesKey, u64, u64), BTreeMap<u64, Points>> = BTreeMap::new();
        for case in cases {
            let Some(summary) = &case.summary else { continue };
            if summary.bytes_per_s.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            let key = SeriesKey::of(case, &[Dimension::Size, Dimension::Window, Dimension::Delay]);
            let per_request = case.message_bytes + case.reply_bytes.unwrap_or(case.message_bytes);
            groups
                .entry((key, case.message_bytes, per_request))
                .or_default()
                .entry(delay_key(case.delay_ms))
                .or_default()
                .push(Point {
                    window: case.window.unwrap_or(1) as f64,
                    bytes_per_s: summary.bytes_per_s,
                    stored_rtt_ns: stored_round_trip_ns(case),
                    floor_ns: floor_ns(case),
                });
        }
        groups
            .into_iter()
            .map(|((key, size, per_request), delays)| {
                WindowChart::one(scenario, &key, size, per_request, delays, stamp)
            })
            .collect()
    }

    fn one(
        scenario: &str,
        key: &SeriesKey,
        size: u64,
        per_request: u64,
        delays: BTreeMap<u64, Points>,
        stamp: &Stamp,
    ) -> WindowChart {
        let windows: Vec<f64> = delays.values().flatten().map(|p| p.window).collect();
        let low = delays
            .values()
            .flatten()
            .map(|p| p.bytes_per_s)
            .fold(f64::INFINITY, f64::min);
        let high = delays.values().flatten().map(|p| p.bytes_per_s).fold(0.0, f64::max);
        let x = Axis::log2(&windows, |v| format::significant(v, 3));
        // Leave room above the data for the bounds, which usually lie above the measurements.
        let y = Axis::log10(low, high * 4.0, |v| format::rate(v, "B/s", 3));
        let mut lines = Vec::new();
        let mut legend = Vec::new();
        for (i, (delay, mut points)) in delays.into_iter().enumerate() {
            points.sort_by(|a, b| a.window.total_cmp(&b.window));
            let color = Palette::nth(i);
            let delay_text = format!("{} ms", format::significant(delay as f64 / 1000.0, 3));
            let stored: Vec<f64> = points.iter().filter_map(|p| p.stored_rtt_ns).collect();
            let floors: Vec<f64> = points.iter().filter_map(|p| p.floor_ns).collect();
            let rtt = stats::median(&stored)
                .map(|r| (r, "measured"))
                .or(stats::median(&floors).map(|r| (r, "2 × delay")));
            let bound = rtt.and_then(|(rtt, _)| {
                // bytes/s = window * bytes per request / rtt: a straight line on log-log axes;
                // clip its ends to the plot.
                let per_window = per_request as f64 / (rtt * 1e-9);
                let (w_lo, w_hi) = (2f64.powf(x.lo), 2f64.powf(x.hi));
                let (y_lo, y_hi) = (10f64.powf(y.lo), 10f64.powf(y.hi));
                let start = w_lo.max(y_lo / per_window);
                let end = w_hi.min(y_hi / per_window);
                (start < end).then(|| [(x.t(start), y.t(start * per_window)), (x.t(end), y.t(end * per_window))])
            });
            let measured = format!("delay {delay_text}: measured");
            legend.push(LegendEntry::line(measured, color, false, Some(style::Marker::Circle)));
            if let Some((rtt, source)) = rtt.filter(|_| bound.is_some()) {
                let label = format!("delay {delay_text}: bound, RTT {} ({source})", format::time_ns(rtt, 3));
                legend.push(LegendEntry::line(label, color, true, None));
            }
            lines.push(DelayLine {
                color,
                points: points.iter().map(|p| (x.t(p.window), y.t(p.bytes_per_s))).collect(),
                bound,
            });
        }
        let notes = vec![
            format!(
                "Dashed: the bandwidth-delay bound W × {} / RTT, at most W requests (request + reply) per round trip.",
                format::bytes_approx(per_request as f64)
            ),
            "RTT: a round trip the run stored, else the link's floor, 2 × the added one-way delay; no bound without either."
                .to_owned(),
        ];
        let label = key.label();
        WindowChart {
            info: ChartInfo {
                stem: format!(
                    "window-{scenario}-{}-{size}B",
                    crate::cases::file_stem(&label.replace(" · ", "-").replace(' ', ""))
                ),
                title: format!(
                    "Throughput vs window, {label}, {} requests ({scenario})",
                    format::bytes(size)
                ),
                scenario: scenario.to_owned(),
            },
            stamp: stamp.clone(),
            x,
            y,
            lines,
            legend,
            notes,
        }
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawFailed> {
        let frame = Frame {
            title: &self.info.title,
            subtitle: Some("higher is better · both axes log scale"),
            stamp: &self.stamp,
            legend_title: Some("added one-way delay"),
            legend: &self.legend,
            notes: &self.notes,
        };
        let x = (&self.x, "window W (requests in flight, log scale)");
        frame.draw_plot(root, x, (&self.y, "throughput (bytes/s, log scale)"), |chart| {
            for line in &self.lines {
                if let Some(bound) = line.bound {
                    style::line(chart, &bound, line.color, true, 2)?;
                }
                style::line(chart, &line.points, line.color, false, 2)?;
                style::markers(chart, &line.points, style::Marker::Circle, line.color)?;
            }
            Ok(())
        })
    }
}
