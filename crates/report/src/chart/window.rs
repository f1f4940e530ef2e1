//! Throughput vs window (rpc), one line per added delay, with the bandwidth-delay bound.
//!
//! With `W` requests of `S` bytes in flight and a round trip of `RTT`, no protocol can move
//! more than `W * S / RTT` bytes per second: the dashed line of each delay. The RTT of a delay
//! is read from the record when the scenario stored it (`extra["rtt_ns"]` of the case, else
//! the median of the trials' `extra["rtt_ns"]`), else taken as twice the added one-way delay
//! (`2 * delay_ms`), which ignores the transport's own round trip; a delay of 0 without a
//! stored RTT gets no line. The bound counts request payload bytes (`message_bytes`), so it
//! compares with `bytes_per_s` as the rpc scenario reports it.

use std::collections::BTreeMap;

use ipcbench_harness::record::CaseRecord;
use ipcbench_harness::stats;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::Axis;
use super::frame::{Frame, LegendEntry, Swatch};
use super::style::{self, Palette};
use super::{ChartInfo, DrawFailed};
use crate::cases::{Dimension, SeriesKey};
use crate::{Stamp, format};

/// The round trip of a case, ns, and whether it was measured (else derived from the delay).
pub(crate) fn round_trip_ns(case: &CaseRecord) -> Option<(f64, bool)> {
    if let Some(rtt) = case.extra.get("rtt_ns").and_then(|v| v.as_f64()).filter(|v| *v > 0.0) {
        return Some((rtt, true));
    }
    let trials: Vec<f64> = case
        .trials
        .iter()
        .filter_map(|t| t.extra.get("rtt_ns").copied())
        .filter(|v| *v > 0.0)
        .collect();
    if let Some(rtt) = stats::median(&trials) {
        return Some((rtt, true));
    }
    case.delay_ms.filter(|d| *d > 0.0).map(|d| (2.0 * d * 1e6, false))
}

/// (window, bytes/s, round trip) of the cases at one delay.
type Points = Vec<(f64, f64, Option<(f64, bool)>)>;

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
        let mut groups: BTreeMap<(SeriesKey, u64), BTreeMap<u64, Points>> = BTreeMap::new();
        for case in cases {
            let Some(summary) = &case.summary else { continue };
            if summary.bytes_per_s.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                continue;
            }
            let key = SeriesKey::of(case, &[Dimension::Size, Dimension::Window, Dimension::Delay]);
            groups
                .entry((key, case.message_bytes))
                .or_default()
                .entry(delay_key(case.delay_ms))
                .or_default()
                .push((
                    case.window.unwrap_or(1) as f64,
                    summary.bytes_per_s,
                    round_trip_ns(case),
                ));
        }
        groups
            .into_iter()
            .map(|((key, size), delays)| WindowChart::one(scenario, &key, size, delays, stamp))
            .collect()
    }

    fn one(scenario: &str, key: &SeriesKey, size: u64, delays: BTreeMap<u64, Points>, stamp: &Stamp) -> WindowChart {
        let windows: Vec<f64> = delays.values().flatten().map(|p| p.0).collect();
        let low = delays.values().flatten().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let high = delays.values().flatten().map(|p| p.1).fold(0.0, f64::max);
        let x = Axis::log2(&windows, |v| format::significant(v, 3));
        // Leave room above the data for the bounds, which usually lie above the measurements.
        let y = Axis::log10(low, high * 4.0, |v| format::rate(v, "B/s", 3));
        let mut lines = Vec::new();
        let mut legend = Vec::new();
        let mut derived = false;
        for (i, (delay, mut points)) in delays.into_iter().enumerate() {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let color = Palette::nth(i);
            let delay_text = format!("{} ms", format::significant(delay as f64 / 1000.0, 3));
            let rtts: Vec<f64> = points.iter().filter_map(|p| p.2.map(|r| r.0)).collect();
            let rtt = stats::median(&rtts);
            let measured = points.iter().all(|p| p.2.is_none_or(|r| r.1));
            derived |= !measured;
            let bound = rtt.and_then(|rtt| {
                // bytes/s = window * size / rtt: a straight line on log-log axes; clip its ends.
                let per_window = size as f64 / (rtt * 1e-9);
                let (w_lo, w_hi) = (2f64.powf(x.lo), 2f64.powf(x.hi));
                let (y_lo, y_hi) = (10f64.powf(y.lo), 10f64.powf(y.hi));
                let start = w_lo.max(y_lo / per_window);
                let end = w_hi.min(y_hi / per_window);
                (start < end).then(|| [(x.t(start), y.t(start * per_window)), (x.t(end), y.t(end * per_window))])
            });
            legend.push(LegendEntry {
                label: format!("delay {delay_text}: measured"),
                color,
                swatch: Swatch::Line {
                    dashed: false,
                    marker: Some(style::Marker::Circle),
                },
            });
            if let Some(rtt) = rtt.filter(|_| bound.is_some()) {
                legend.push(LegendEntry {
                    label: if measured {
                        format!(
                            "delay {delay_text}: W × size / {} (measured RTT)",
                            format::time_ns(rtt, 3)
                        )
                    } else {
                        format!("delay {delay_text}: W × size / {} (2 × delay)", format::time_ns(rtt, 3))
                    },
                    color,
                    swatch: Swatch::Line {
                        dashed: true,
                        marker: None,
                    },
                });
            }
            lines.push(DelayLine {
                color,
                points: points.iter().map(|p| (x.t(p.0), y.t(p.1))).collect(),
                bound,
            });
        }
        let mut notes =
            vec!["Dashed: the bandwidth-delay bound, at most W requests of this size per round trip.".to_owned()];
        if derived {
            notes.push(
                "Where the run stored no RTT, the bound takes it as 2 × the added delay, ignoring the transport's own round trip."
                    .to_owned(),
            );
        }
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
        let area = frame.draw(root)?;
        let mut chart = style::build(&area, &self.x, &self.y, None, None)?;
        style::mesh(
            &mut chart,
            &self.x,
            &self.y,
            "window W (requests in flight, log scale)",
            "throughput (bytes/s, log scale)",
        )?;
        for line in &self.lines {
            if let Some(bound) = line.bound {
                style::line(&mut chart, &bound, line.color, true, 2)?;
            }
            style::line(&mut chart, &line.points, line.color, false, 2)?;
            style::markers(&mut chart, &line.points, style::Marker::Circle, line.color)?;
        }
        Ok(())
    }
}
