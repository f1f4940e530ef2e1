//! Latency vs load (load scenario): the p99 and p50 round trip, timed from the *intended* send
//! time (coordinated-omission corrected), against the connection count when every case sends
//! at one per-connection rate, else against the offered load (connections x rate).

use std::collections::BTreeMap;

use ipcbench_record::CaseRecord;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::Axis;
use super::common::{ChartInfo, DrawFailed};
use super::frame::Frame;
use super::style::LegendEntry;
use super::style::{self, Look, Palette, Series};
use crate::cases::{Dimension, SeriesKey};
use crate::{Stamp, format};

/// The chart of the load cases.
pub(crate) struct LatencyVsLoad {
    pub info: ChartInfo,
    stamp: Stamp,
    x: Axis,
    y: Axis,
    x_desc: String,
    /// (load, p50, p99) in axis coordinates; each drawn solid (p99) and dashed (p50).
    series: Vec<Series<(f64, f64, f64)>>,
    legend: Vec<LegendEntry>,
    notes: Vec<String>,
}

impl LatencyVsLoad {
    /// The chart of `scenario` when it is `load` and has measured cases with connections.
    pub(crate) fn build(scenario: &str, cases: &[&CaseRecord], stamp: &Stamp, palette: &Palette) -> Option<Self> {
        if scenario != "load" {
            return None;
        }
        let rates: Vec<f64> = cases.iter().filter_map(|c| c.rate_per_connection_hz).collect();
        let one_rate = rates.windows(2).all(|w| w[0] == w[1]);
        let mut grouped: BTreeMap<SeriesKey, Vec<(f64, f64, f64)>> = BTreeMap::new();
        let mut corrected = true;
        for case in cases {
            let Some(summary) = &case.summary else { continue };
            let Some(connections) = case.connections else { continue };
            // A capacity search or a closed loop has no one offered load: the capacity chart
            // draws those.
            if case.rate_per_connection_hz.is_none() && case.extra.contains_key("capacity_msgs_per_s") {
                continue;
            }
            let Some(latency) = summary.latency_corrected_ns.or_else(|| {
                corrected = false;
                summary.latency_ns
            }) else {
                continue;
            };
            let rate = case.rate_per_connection_hz.unwrap_or(0.0);
            let load = if one_rate {
                connections as f64
            } else {
                connections as f64 * rate
            };
            let mut key = SeriesKey::of(case, &[Dimension::Size]);
            key.extra
                .retain(|e| !(e.ends_with(" conn") || (one_rate && e.ends_with(" Hz/conn"))));
            grouped
                .entry(key)
                .or_default()
                .push((load, latency.p50, latency.p99.max(latency.p50)));
        }
        if grouped.is_empty() {
            return None;
        }
        let loads: Vec<f64> = grouped.values().flatten().map(|p| p.0).collect();
        let low = grouped.values().flatten().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let high = grouped.values().flatten().map(|p| p.2).fold(0.0, f64::max);
        let (x, x_desc, title) = if one_rate {
            let rate = rates.first().copied().unwrap_or(0.0);
            (
                Axis::log2(&loads, |v| format::significant(v, 3)),
                format!(
                    "connections, each sending {} msg/s (log scale)",
                    format::significant(rate, 3)
                ),
                format!("Latency vs connection count ({scenario})"),
            )
        } else {
            (
                Axis::log2(&loads, |v| format::rate(v, "msg/s", 3)),
                "offered load: connections × rate per connection (log scale)".to_owned(),
                format!("Latency vs offered load ({scenario})"),
            )
        };
        let y = Axis::log10(low, high, |v| format::time_ns(v, 3));
        let mut series = Vec::new();
        let mut legend = Vec::new();
        for (key, mut points) in grouped {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            // The dash tells p50 from p99 here, so the placement shows by its marker alone.
            let look = Look {
                dashed: false,
                ..Look::of(&key, palette)
            };
            legend.push(look.legend_entry(key.label()));
            let points = points.iter().map(|(l, p50, p99)| (x.t(*l), y.t(*p50), y.t(*p99)));
            series.push(Series {
                look,
                points: points.collect(),
            });
        }
        legend.push(LegendEntry::line("p99 (solid)".to_owned(), style::MUTED, false, None));
        legend.push(LegendEntry::line("p50 (dashed)".to_owned(), style::MUTED, true, None));
        let timed_from = if corrected {
            "Latency timed from the intended send time of the open-loop schedule (coordinated omission corrected)."
        } else {
            "Latency timed from the actual send time (no corrected histogram in this record)."
        };
        Some(LatencyVsLoad {
            info: ChartInfo {
                stem: format!("latency-vs-load-{scenario}"),
                title,
                scenario: scenario.to_owned(),
            },
            stamp: stamp.clone(),
            x,
            y,
            x_desc,
            series,
            legend,
            notes: vec![
                timed_from.to_owned(),
                "A case that missed its target rate is flagged in the table.".to_owned(),
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
        let y = (&self.y, "round-trip latency (log scale)");
        frame.draw_plot(root, (&self.x, &self.x_desc), y, |chart| {
            for s in &self.series {
                let p99: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.2)).collect();
                let p50: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
                style::line(chart, &p50, s.look.color, true, 2)?;
                style::line(chart, &p99, s.look.color, false, 2)?;
                style::markers(chart, &p99, s.look.marker, s.look.color)?;
                style::markers(chart, &p50, s.look.marker, s.look.color)?;
            }
            Ok(())
        })
    }
}
