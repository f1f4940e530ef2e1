//! What a connection costs the server (conn-cost): memory growth against the number of open
//! idle connections, the server's resident set on the left and the kernel's slab memory (both
//! ends of every loopback connection) on the right. Points are every sample of every trial
//! (relative to the trial's sample at 0 connections); lines are the least-squares slopes the
//! scenario stored, in bytes per connection.

use std::collections::BTreeMap;

use ipcbench_record::CaseRecord;
use ipcbench_record::stats;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::Axis;
use super::common::{ChartInfo, DrawFailed};
use super::frame::Frame;
use super::style::LegendEntry;
use super::style::{self, Look, Palette};
use crate::cases::{Dimension, SeriesKey};
use crate::{Stamp, format};

/// The two measured quantities: (trial field prefix, panel caption).
const PANELS: [(&str, &str); 2] = [
    ("server_rss", "server resident set growth"),
    ("kernel_slab", "kernel slab growth (both ends)"),
];

struct Series {
    look: Look,
    /// Per panel: (connections, growth in bytes) samples.
    points: [Vec<(f64, f64)>; 2],
    /// Per panel: bytes per connection.
    slope: [Option<f64>; 2],
    /// Per panel: the fit's value at 0 connections relative to the sample there.
    offset: [f64; 2],
}

/// The chart of the conn-cost cases.
pub(crate) struct ConnCost {
    pub info: ChartInfo,
    stamp: Stamp,
    series: Vec<Series>,
    legend: Vec<LegendEntry>,
    notes: Vec<String>,
}

/// (connections, value) samples of one trial for `field`, relative to its first sample.
fn samples(extra: &BTreeMap<String, f64>, field: &str) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for k in 0.. {
        let (Some(connections), Some(value)) = (
            extra.get(&format!("point{k}_connections")),
            extra.get(&format!("point{k}_{field}_bytes")),
        ) else {
            break;
        };
        out.push((*connections, *value));
    }
    let base = out.first().map(|p| p.1).unwrap_or(0.0);
    out.into_iter().map(|(c, v)| (c, v - base)).collect()
}

/// A byte count that may be negative.
fn signed_bytes(v: f64) -> String {
    if v < 0.0 {
        format!("-{}", format::bytes_approx(-v))
    } else {
        format::bytes_approx(v)
    }
}

impl ConnCost {
    /// The chart of `scenario` when it is `conn-cost` and its trials stored samples.
    pub(crate) fn build(scenario: &str, cases: &[&CaseRecord], stamp: &Stamp, palette: &Palette) -> Option<Self> {
        if scenario != "conn-cost" {
            return None;
        }
        let mut series = Vec::new();
        let mut legend = Vec::new();
        let mut notes = Vec::new();
        let mut keyed: Vec<(SeriesKey, &CaseRecord)> = cases
            .iter()
            .map(|c| {
                let mut key = SeriesKey::of(c, &[Dimension::Size]);
                key.extra
                    .retain(|e| !e.ends_with(" conn") && !e.ends_with(" B") && !e.ends_with("iB"));
                (key, *c)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, case) in keyed {
            let points = PANELS.map(|(field, _)| {
                case.trials
                    .iter()
                    .flat_map(|t| samples(&t.extra, field))
                    .collect::<Vec<_>>()
            });
            if points.iter().all(Vec::is_empty) {
                continue;
            }
            let slope = PANELS.map(|(field, _)| {
                let name = format!("{field}_bytes_per_connection");
                case.extra.get(&name).and_then(|v| v.as_f64()).or_else(|| {
                    let per_trial: Vec<f64> = case.trials.iter().filter_map(|t| t.extra.get(&name).copied()).collect();
                    stats::median(&per_trial)
                })
            });
            let offset = PANELS.map(|(field, _)| {
                let offsets: Vec<f64> = case
                    .trials
                    .iter()
                    .filter_map(|t| {
                        let intercept = t.extra.get(&format!("{field}_intercept_bytes"))?;
                        let first = t.extra.get(&format!("point0_{field}_bytes"))?;
                        Some(intercept - first)
                    })
                    .collect();
                stats::median(&offsets).unwrap_or(0.0)
            });
            // The server model tells cases apart that share a transport: a color each.
            let threads = case.id.contains("model=thread-per-connection");
            let label = if threads {
                format!("{} · thread per connection", key.label())
            } else {
                key.label()
            };
            let mut look = Look::of(&key, palette);
            if threads {
                look.color = Palette::nth(series.len() + 1);
            }
            legend.push(look.legend_entry(label.clone()));
            let per = |s: Option<f64>| {
                s.map(|v| format!("{}/conn", signed_bytes(v)))
                    .unwrap_or_else(|| "–".into())
            };
            notes.push(format!("{}: RSS {}, slab {}", label, per(slope[0]), per(slope[1])));
            series.push(Series {
                look,
                points,
                slope,
                offset,
            });
        }
        if series.is_empty() {
            return None;
        }
        notes.push(
            "Lines: least-squares slopes. Slab is machine-wide: it counts both ends of a loopback connection and anything else the kernel allocated meanwhile."
                .to_owned(),
        );
        Some(ConnCost {
            info: ChartInfo {
                stem: format!("memory-vs-connections-{scenario}"),
                title: format!("Memory per idle connection ({scenario})"),
                scenario: scenario.to_owned(),
            },
            stamp: stamp.clone(),
            series,
            legend,
            notes,
        })
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawFailed> {
        let frame = Frame {
            title: &self.info.title,
            subtitle: Some("growth since the sample at 0 connections · lower is better"),
            stamp: &self.stamp,
            legend_title: Some("transport · placement"),
            legend: &self.legend,
            notes: &self.notes,
        };
        let area = frame.draw(root)?;
        let panels = area.split_evenly((1, 2));
        for (i, panel) in panels.iter().enumerate() {
            let all = || self.series.iter().flat_map(|s| s.points[i].iter());
            let max_connections = all().map(|p| p.0).fold(0.0, f64::max);
            let fits = self
                .series
                .iter()
                .filter_map(|s| {
                    let own_max = s.points[i].iter().map(|p| p.0).fold(0.0, f64::max);
                    s.slope[i].map(|k| [s.offset[i], s.offset[i] + k * own_max])
                })
                .flatten();
            let low = all().map(|p| p.1).chain(fits.clone()).fold(0.0, f64::min);
            let high = all().map(|p| p.1).chain(fits).fold(0.0, f64::max);
            let x = Axis::linear_from_zero(0.0, max_connections, |v| format::significant(v, 3));
            let y = Axis::linear_bytes(low, high);
            let mut chart = style::build(panel, &x, &y, Some(PANELS[i].1), None)?;
            style::mesh(&mut chart, &x, &y, "open idle connections", "memory growth (bytes)")?;
            for s in &self.series {
                if let Some(slope) = s.slope[i] {
                    // Over the range the series was fitted on, never beyond.
                    let own_max = s.points[i].iter().map(|p| p.0).fold(0.0, f64::max);
                    let at = |n: f64| (n, s.offset[i] + slope * n);
                    style::line(&mut chart, &[at(0.0), at(own_max)], s.look.color, s.look.dashed, 2)?;
                }
                style::markers(&mut chart, &s.points[i], s.look.marker, s.look.color)?;
            }
        }
        Ok(())
    }
}
