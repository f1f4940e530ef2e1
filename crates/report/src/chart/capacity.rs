//! The hockey stick (load, `rate_per_connection_hz = "search"`): corrected p99 (solid) and p50
//! (dashed) against the offered load of every step of every trial's capacity search, the SLO
//! as a horizontal line, and each case's capacity (the highest offered load held: achieved at
//! least 99% of it, corrected p99 within the SLO) as a vertical one. Closed-loop cases, which
//! have no offered load, are listed in the notes with their throughput (what wrk would report).

use ipcbench_record::CaseRecord;
use ipcbench_record::stats;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::Axis;
use super::common::{ChartInfo, DrawFailed};
use super::frame::Frame;
use super::style::LegendEntry;
use super::style::{self, Look, Marker, Palette};
use crate::cases::{Dimension, SeriesKey};
use crate::{Stamp, format};

/// One step of a search: offered load, corrected p50 and p99, held or not.
#[derive(Debug, Clone, Copy)]
struct Step {
    offered: f64,
    p50: f64,
    p99: f64,
    pass: bool,
}

struct Series {
    look: Look,
    /// Each trial's steps, sorted by offered load.
    trials: Vec<Vec<Step>>,
    capacity: Option<f64>,
}

/// The capacity chart of the load cases that searched.
pub(crate) struct Capacity {
    pub info: ChartInfo,
    stamp: Stamp,
    x: Axis,
    y: Axis,
    slo_ns: Option<f64>,
    series: Vec<Series>,
    legend: Vec<LegendEntry>,
    notes: Vec<String>,
}

/// The steps a trial's search stored (`search<k>_*`).
fn steps(extra: &std::collections::BTreeMap<String, f64>) -> Vec<Step> {
    let mut out = Vec::new();
    for k in 0.. {
        let get = |name: &str| extra.get(&format!("search{k}_{name}")).copied();
        let (Some(offered), Some(p50), Some(p99)) =
            (get("offered_per_s"), get("p50_corrected_ns"), get("p99_corrected_ns"))
        else {
            break;
        };
        out.push(Step {
            offered,
            p50: p50.max(1.0),
            p99: p99.max(p50).max(1.0),
            pass: get("pass").unwrap_or(0.0) > 0.5,
        });
    }
    out.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    out
}

/// The label of a case: its transport, placement, connections and server model.
fn label_of(case: &CaseRecord) -> String {
    let mut key = SeriesKey::of(case, &[Dimension::Size]);
    key.extra.retain(|e| !e.ends_with(" B") && !e.ends_with("iB"));
    let model = if case.id.contains("model=thread-per-connection") {
        "thread per connection"
    } else {
        "event loop"
    };
    format!("{} · {model}", key.label())
}

impl Capacity {
    /// The chart of `scenario` when it is `load` and some case searched for its capacity.
    pub(crate) fn build(scenario: &str, cases: &[&CaseRecord], stamp: &Stamp, palette: &Palette) -> Option<Self> {
        if scenario != "load" {
            return None;
        }
        let mut series = Vec::new();
        let mut legend = Vec::new();
        let mut notes = Vec::new();
        let mut slo = None;
        let capacity_of = |case: &CaseRecord| case.extra.get("capacity_msgs_per_s").and_then(|v| v.as_f64());
        for case in cases {
            let trials: Vec<Vec<Step>> = case
                .trials
                .iter()
                .map(|t| steps(&t.extra))
                .filter(|s| !s.is_empty())
                .collect();
            let label = label_of(case);
            if trials.is_empty() {
                // A closed loop: its throughput is its capacity.
                if let Some(capacity) = capacity_of(case) {
                    notes.push(format!(
                        "{}: closed loop, {} (no offered load: each request waits for the last reply)",
                        label,
                        format::rate(capacity, "msg/s", 3)
                    ));
                }
                continue;
            }
            slo = slo.or_else(|| {
                let values: Vec<f64> = case
                    .trials
                    .iter()
                    .filter_map(|t| t.extra.get("slo_p99_ns").copied())
                    .collect();
                stats::median(&values)
            });
            let capacity = capacity_of(case);
            // One color per case: the cases differ by server model, not transport.
            let look = Look {
                color: Palette::nth(series.len()),
                ..Look::of(&SeriesKey::of(case, &[Dimension::Size]), palette)
            };
            legend.push(look.legend_entry(label.clone()));
            notes.push(format!(
                "{}: capacity {}{}",
                label,
                capacity.map_or_else(|| "–".to_owned(), |c| format::rate(c, "msg/s", 3)),
                match (
                    case.extra.get("capacity_msgs_per_s_min").and_then(|v| v.as_f64()),
                    case.extra.get("capacity_msgs_per_s_max").and_then(|v| v.as_f64()),
                ) {
                    (Some(lo), Some(hi)) if case.trials.len() > 1 => format!(
                        " (trials {} .. {})",
                        format::rate(lo, "msg/s", 3),
                        format::rate(hi, "msg/s", 3)
                    ),
                    _ => String::new(),
                }
            ));
            series.push(Series { look, trials, capacity });
        }
        if series.is_empty() {
            return None;
        }
        let all = || series.iter().flat_map(|s| s.trials.iter().flatten());
        let offered: Vec<f64> = all().map(|s| s.offered).collect();
        let low = all().map(|s| s.p50).chain(slo).fold(f64::INFINITY, f64::min);
        let high = all().map(|s| s.p99).chain(slo).fold(0.0, f64::max);
        let x = Axis::log2(&offered, |v| format::rate(v, "msg/s", 3));
        let y = Axis::log10(low, high, |v| format::time_ns(v, 3));
        legend.push(LegendEntry::line(
            "p99 corrected (filled: held, hollow: not)".to_owned(),
            style::MUTED,
            false,
            Some(Marker::Circle),
        ));
        legend.push(LegendEntry::line(
            "p50 corrected (cross)".to_owned(),
            style::MUTED,
            false,
            Some(Marker::Cross),
        ));
        if let Some(slo) = slo {
            notes.push(format!(
                "Grey line: the SLO (corrected p99 {}). Vertical lines: capacity, the highest offered load held \
                 (achieved at least 99% of it and p99 within the SLO); hollow markers: steps that did not hold.",
                format::time_ns(slo, 3)
            ));
        }
        Some(Capacity {
            info: ChartInfo {
                stem: format!("capacity-{scenario}"),
                title: format!("Latency vs offered load: capacity search ({scenario})"),
                scenario: scenario.to_owned(),
            },
            stamp: stamp.clone(),
            x,
            y,
            slo_ns: slo,
            series,
            legend,
            notes,
        })
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawFailed> {
        let frame = Frame {
            title: &self.info.title,
            subtitle: Some("lower is better · both axes log scale"),
            stamp: &self.stamp,
            legend_title: Some("transport · placement · server"),
            legend: &self.legend,
            notes: &self.notes,
        };
        let x_desc = "offered load: connections × rate per connection, every step of the search (log scale)";
        let y = (&self.y, "corrected round-trip latency (log scale)");
        frame.draw_plot(root, (&self.x, x_desc), y, |chart| {
            if let Some(slo) = self.slo_ns {
                let at = self.y.t(slo);
                style::line(chart, &[(self.x.lo, at), (self.x.hi, at)], style::MUTED, false, 1)?;
            }
            for s in &self.series {
                if let Some(capacity) = s.capacity.filter(|c| *c > 0.0) {
                    let at = self.x.t(capacity);
                    style::line(chart, &[(at, self.y.lo), (at, self.y.hi)], s.look.color, true, 1)?;
                }
                // Markers only: a search revisits loads (a failed step runs twice) and trials
                // scatter, so lines through the steps would zig-zag.
                for trial in &s.trials {
                    let at = |p: &Step, v: f64| (self.x.t(p.offered), self.y.t(v));
                    let held: Vec<(f64, f64)> = trial.iter().filter(|p| p.pass).map(|p| at(p, p.p99)).collect();
                    style::markers(chart, &held, s.look.marker, s.look.color)?;
                    chart.draw_series(
                        trial
                            .iter()
                            .filter(|p| !p.pass)
                            .map(|p| Circle::new(at(p, p.p99), 5, s.look.color.stroke_width(2))),
                    )?;
                    let p50: Vec<(f64, f64)> = trial.iter().map(|p| at(p, p.p50)).collect();
                    style::markers(chart, &p50, Marker::Cross, s.look.color)?;
                }
            }
            Ok(())
        })
    }
}
