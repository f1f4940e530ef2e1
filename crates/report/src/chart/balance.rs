//! The charts of `balance`: horizontal bars grouped by policy (and membership change), one
//! bar per state, in up to two panels side by side:
//!
//! - latency by state and policy: corrected p50 and p99 of a request (from its intended send
//!   time, through the balancer, the backend and the store);
//! - state cost per request: the time inside the store (`state_p50_ns`) and the CPU of
//!   balancer, backends and store server per request;
//! - share per backend: each backend's fraction of the requests, one bar per backend, per
//!   case.
//!
//! Everything comes from the case figures `finish_balance` stored (medians over trials).

use std::collections::BTreeMap;

use ipcbench_record::{CaseId, CaseRecord};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{Axis, Scale};
use super::common::{ChartInfo, DrawFailed, SIZE};
use super::frame::Frame;
use super::style::{self, DESC_SIZE, LABEL_SIZE, TEXT};
use super::style::{LegendEntry, Swatch};
use crate::{Stamp, format};

/// Bars thinner than this get no value label.
const MIN_LABELLED_BAR: f64 = 13.0;

/// One panel: a caption, how its values read, and a value per group and series.
struct Panel {
    caption: String,
    unit: Unit,
    values: Vec<Vec<Option<f64>>>,
}

#[derive(Clone, Copy)]
enum Unit {
    Time,
    Fraction,
}

impl Unit {
    fn format(self, v: f64) -> String {
        match self {
            Unit::Time => format::time_ns(v, 3),
            Unit::Fraction => format!("{:.0}%", v * 100.0),
        }
    }
}

/// A `balance` chart.
pub(crate) struct BalanceBars {
    pub info: ChartInfo,
    stamp: Stamp,
    subtitle: &'static str,
    groups: Vec<String>,
    series: Vec<String>,
    panels: Vec<Panel>,
    legend_title: &'static str,
    legend: Vec<LegendEntry>,
    notes: Vec<String>,
}

/// A case's policy group (policy plus the dimensions that are neither state nor its
/// options) and its state label (state plus its options).
fn labels(case: &CaseRecord) -> (String, String) {
    let dimensions = case.id.parse::<CaseId>().map(|id| id.dimensions).unwrap_or_default();
    let mut group = Vec::new();
    let mut state = Vec::new();
    for d in &dimensions {
        let d = d.as_str();
        if let Some(s) = d.strip_prefix("state=") {
            state.insert(0, s.to_owned());
        } else if d.starts_with("persistence=") || d.starts_with("synchronous") {
            state.push(d.replace("synchronous_commit=off", "async commit"));
        } else if let Some(p) = d.strip_prefix("policy=") {
            group.insert(0, p.to_owned());
        } else if d.starts_with("add@") || d.starts_with("remove@") || d.starts_with("on_change=") {
            group.push(d.to_owned());
        }
    }
    if state.len() == 1 && !case.id.contains("synchronous_commit=off") && case.id.contains("state=postgres") {
        state.push("sync commit".into());
    }
    (group.join(" "), state.join(", "))
}

fn figure(case: &CaseRecord, key: &str) -> Option<f64> {
    case.extra.get(key).and_then(|v| v.as_f64()).filter(|v| v.is_finite())
}

impl BalanceBars {
    /// The three charts of the `balance` cases in `cases` (none when there are none).
    pub(crate) fn build(scenario: &str, cases: &[&CaseRecord], stamp: &Stamp) -> Vec<BalanceBars> {
        if scenario != "balance" || cases.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let latency = |case: &CaseRecord, p99: bool| {
            let summary = case.summary.as_ref()?;
            let p = summary.latency_corrected_ns.or(summary.latency_ns)?;
            Some(if p99 { p.p99 } else { p.p50 })
        };
        if let Some(chart) = Self::by_state(
            cases,
            stamp,
            ChartInfo {
                stem: "balance-latency".into(),
                title: "Request latency by state and policy (balance)".into(),
                scenario: scenario.into(),
            },
            "lower is better · corrected for coordinated omission · median over trials",
            vec![
                (
                    "corrected p50",
                    Unit::Time,
                    Box::new(move |c: &CaseRecord| latency(c, false)),
                ),
                (
                    "corrected p99",
                    Unit::Time,
                    Box::new(move |c: &CaseRecord| latency(c, true)),
                ),
            ],
            vec![
                "From the intended send time to the reply: generator -> balancer -> backend (one read-modify-write \
                 of the client's record in the state) -> back."
                    .into(),
            ],
        ) {
            out.push(chart);
        }
        let cpu = |c: &CaseRecord| {
            let parts = [
                figure(c, "balancer_cpu_ns_per_request"),
                figure(c, "backends_cpu_ns_per_request"),
                figure(c, "store_cpu_ns_per_request"),
            ];
            parts[0].map(|b| b + parts[1].unwrap_or(0.0) + parts[2].unwrap_or(0.0))
        };
        if let Some(chart) = Self::by_state(
            cases,
            stamp,
            ChartInfo {
                stem: "balance-state-cost".into(),
                title: "State cost per request (balance)".into(),
                scenario: scenario.into(),
            },
            "lower is better · median over trials",
            vec![
                (
                    "time in the state per request (p50)",
                    Unit::Time,
                    Box::new(|c: &CaseRecord| figure(c, "state_p50_ns")),
                ),
                (
                    "CPU per request (balancer + backends + store)",
                    Unit::Time,
                    Box::new(cpu),
                ),
            ],
            vec![
                "Time in the state: the backend's read-modify-write as it sees it, round trip to the store included."
                    .into(),
                "CPU: user + system of the balancer and backend processes and of the store's server (redis-server, \
                 PostgreSQL), per request forwarded in the measured phase; SQLite and shm run inside the backends."
                    .into(),
            ],
        ) {
            out.push(chart);
        }
        if let Some(chart) = Self::shares(cases, stamp, scenario) {
            out.push(chart);
        }
        out
    }

    #[allow(clippy::type_complexity)]
    fn by_state(
        cases: &[&CaseRecord],
        stamp: &Stamp,
        info: ChartInfo,
        subtitle: &'static str,
        panels: Vec<(&str, Unit, Box<dyn Fn(&CaseRecord) -> Option<f64>>)>,
        notes: Vec<String>,
    ) -> Option<BalanceBars> {
        let mut groups: Vec<String> = Vec::new();
        let mut series: Vec<String> = Vec::new();
        let mut table: BTreeMap<(usize, usize), &CaseRecord> = BTreeMap::new();
        for case in cases {
            let (group, state) = labels(case);
            let g = groups.iter().position(|x| *x == group).unwrap_or_else(|| {
                groups.push(group.clone());
                groups.len() - 1
            });
            let s = series.iter().position(|x| *x == state).unwrap_or_else(|| {
                series.push(state.clone());
                series.len() - 1
            });
            table.insert((g, s), case);
        }
        let panels: Vec<Panel> = panels
            .into_iter()
            .map(|(caption, unit, pick)| Panel {
                caption: caption.to_owned(),
                unit,
                values: (0..groups.len())
                    .map(|g| {
                        (0..series.len())
                            .map(|s| table.get(&(g, s)).and_then(|c| pick(c)).filter(|v| *v > 0.0))
                            .collect()
                    })
                    .collect(),
            })
            .collect();
        if panels.iter().all(|p| p.values.iter().flatten().all(Option::is_none)) {
            return None;
        }
        let legend = series
            .iter()
            .enumerate()
            .map(|(i, s)| LegendEntry {
                label: s.clone(),
                color: style::Palette::nth(i),
                swatch: Swatch::Bar,
            })
            .collect();
        Some(BalanceBars {
            info,
            stamp: stamp.clone(),
            subtitle,
            groups,
            series,
            panels,
            legend_title: "state",
            legend,
            notes,
        })
    }

    fn shares(cases: &[&CaseRecord], stamp: &Stamp, scenario: &str) -> Option<BalanceBars> {
        let n_backends = cases
            .iter()
            .flat_map(|c| c.extra.keys())
            .filter_map(|k| {
                k.strip_prefix("backend_")?
                    .strip_suffix("_share")?
                    .parse::<usize>()
                    .ok()
            })
            .max()?
            + 1;
        let mut groups = Vec::new();
        let mut values = Vec::new();
        for case in cases {
            let row: Vec<Option<f64>> = (0..n_backends)
                .map(|b| figure(case, &format!("backend_{b}_share")))
                .collect();
            if row.iter().all(Option::is_none) {
                continue;
            }
            let (group, state) = labels(case);
            groups.push(format!("{group} · {state}"));
            values.push(row);
        }
        if groups.is_empty() {
            return None;
        }
        let series: Vec<String> = (0..n_backends).map(|b| format!("backend {b}")).collect();
        let legend = series
            .iter()
            .enumerate()
            .map(|(i, s)| LegendEntry {
                label: s.clone(),
                color: style::ramp(i, n_backends),
                swatch: Swatch::Bar,
            })
            .collect();
        Some(BalanceBars {
            info: ChartInfo {
                stem: "balance-share".into(),
                title: "Share of the requests per backend (balance)".into(),
                scenario: scenario.into(),
            },
            stamp: stamp.clone(),
            subtitle: "even is 1/backends · measured phase · median over trials",
            groups,
            series,
            panels: vec![Panel {
                caption: "fraction of the requests forwarded".into(),
                unit: Unit::Fraction,
                values,
            }],
            legend_title: "backend",
            legend,
            notes: vec![
                "A backend that joins mid-run (add_backend_at) is the last one; under `keep` it gets only the \
                 connections that open after it joined."
                    .into(),
            ],
        })
    }

    fn bar_height(&self) -> f64 {
        if self.series.len() <= 3 { 16.0 } else { 11.0 }
    }

    /// Tall enough that every bar gets its height.
    pub(crate) fn size(&self) -> (u32, u32) {
        let slots = self.groups.len() * (self.series.len() + 1);
        let plot = slots as f64 * self.bar_height();
        let height = (plot + 230.0).clamp(f64::from(SIZE.1), 3000.0);
        (SIZE.0, height as u32)
    }

    fn slot(&self, group_idx: usize, series_idx: usize) -> f64 {
        let n = self.series.len() + 1;
        let total = (self.groups.len() * n) as f64 - 1.0;
        total - (group_idx * n + series_idx) as f64 - 0.5
    }

    fn y_axis(&self) -> Axis {
        let n = self.series.len() + 1;
        let total = (self.groups.len() * n) as f64 - 1.0;
        Axis {
            scale: Scale::Linear,
            lo: 0.0,
            hi: total,
            major: self
                .groups
                .iter()
                .enumerate()
                .map(|(g, label)| (total - (g * n) as f64 - (n - 1) as f64 / 2.0, label.clone()))
                .collect(),
            minor: Vec::new(),
        }
    }

    fn color(&self, series_idx: usize) -> RGBColor {
        self.legend
            .get(series_idx)
            .map_or(style::Palette::nth(series_idx), |l| l.color)
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawFailed> {
        let frame = Frame {
            title: &self.info.title,
            subtitle: Some(self.subtitle),
            stamp: &self.stamp,
            legend_title: Some(self.legend_title),
            legend: &self.legend,
            notes: &self.notes,
        };
        let area = frame.draw(root)?;
        let (width, _) = area.dim_in_pixel();
        let mut y = self.y_axis();
        let label_width = (style::widest_label(&area, &y) + 30).min(width * 2 / 5);
        for (_, label) in &mut y.major {
            *label = style::fit(&area, label, LABEL_SIZE, label_width - 28);
        }
        match self.panels.as_slice() {
            [one] => self.panel(&area, &y, label_width, one),
            [first, second, ..] => {
                let (left, right) = area.split_horizontally(label_width + (width - label_width) / 2);
                self.panel(&left, &y, label_width, first)?;
                self.panel(&right, &y, 6, second)
            }
            [] => Ok(()),
        }
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        y: &Axis,
        label_width: u32,
        panel: &Panel,
    ) -> Result<(), DrawFailed> {
        let all: Vec<f64> = panel.values.iter().flatten().flatten().copied().collect();
        let low = all.iter().copied().fold(f64::INFINITY, f64::min);
        let high = all.iter().copied().fold(0.0, f64::max);
        let unit = panel.unit;
        let mut x = match unit {
            Unit::Time if low.is_finite() => Axis::auto(low, high, |v| format::time_ns(v, 3)).thin(5),
            _ => Axis::linear_from_zero(0.0, high.max(1e-9), move |v| unit.format(v)).thin(6),
        };
        x.hi += (x.hi - x.lo) * 0.16;
        let mut chart = ChartBuilder::on(area)
            .margin_top(6)
            .margin_right(16)
            .margin_bottom(4)
            .caption(&panel.caption, style::font(DESC_SIZE, TEXT))
            .x_label_area_size(LABEL_SIZE as u32 + DESC_SIZE as u32 + 26)
            .y_label_area_size(label_width)
            .build_cartesian_2d(x.coord(), y.coord())?;
        let x_label = |t: &f64| x.label(*t);
        let y_label = |t: &f64| if label_width > 10 { y.label(*t) } else { String::new() };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_desc(if x.is_log() { "log scale" } else { "" })
            .label_style(style::font(LABEL_SIZE, TEXT))
            .axis_desc_style(style::font(DESC_SIZE, TEXT))
            .bold_line_style(style::GRID.stroke_width(1))
            .light_line_style(style::GRID_LIGHT.stroke_width(1))
            .axis_style(style::MUTED.stroke_width(1))
            .set_all_tick_mark_size(if label_width > 10 { 5 } else { 0 })
            .draw()?;
        let (_, plot_height) = chart.plotting_area().dim_in_pixel();
        let pixels_per_slot = f64::from(plot_height) / (y.hi - y.lo).max(1.0);
        let labelled = pixels_per_slot * 0.8 >= MIN_LABELLED_BAR;
        for (g, row) in panel.values.iter().enumerate() {
            for (s, value) in row.iter().enumerate() {
                let Some(v) = *value else { continue };
                let center = self.slot(g, s);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x.lo, center - 0.4), (x.t_clamped(v), center + 0.4)],
                    self.color(s).filled(),
                )))?;
                if labelled {
                    let text_style = style::font(13.0, TEXT).pos(Pos::new(HPos::Left, VPos::Center));
                    chart.draw_series(std::iter::once(
                        EmptyElement::at((x.t_clamped(v), center)) + Text::new(unit.format(v), (5, 0), text_style),
                    ))?;
                }
            }
        }
        Ok(())
    }
}
