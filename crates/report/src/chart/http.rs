//! The `http` scenario's charts: horizontal bars, one group per case (path · response size ·
//! cache hit ratio), one chart each for
//! - the latency the relay adds per path (`hop_added_p50_ns` and `hop_added_p99_ns`, relayed
//!   minus direct in the same trials), with the 95% interval of the median over trials;
//! - the relay's CPU per request (`relay_cpu_ns_per_request`);
//! - the bytes on the wire per request on each side (`front_wire_bytes_per_request`,
//!   `back_wire_bytes_per_request`, and the direct path's for reference);
//! - the throughput in (answers the client got) versus out (requests the origin answered).
//!
//! Values are the case-level medians `finish_http` stores in the case's `extra`.

use ipcbench_record::CaseRecord;
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

/// What a chart's values are, for its axis and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Time,
    Bytes,
    Rate,
}

impl Unit {
    fn text(self, v: f64) -> String {
        match self {
            Unit::Time if v < 0.0 => format!("-{}", format::time_ns(-v, 3)),
            Unit::Time => format::time_ns(v, 3),
            Unit::Bytes => format::bytes_approx(v),
            Unit::Rate => format::rate(v, "req/s", 3),
        }
    }
}

/// One bar per case of each series: the `extra` key, and its interval's keys when it has one.
struct Series {
    label: &'static str,
    key: &'static str,
    interval: bool,
}

struct Spec {
    stem: &'static str,
    title: &'static str,
    subtitle: &'static str,
    unit: Unit,
    series: &'static [Series],
    notes: &'static [&'static str],
}

const SPECS: [Spec; 4] = [
    Spec {
        stem: "http-hop-added",
        title: "Latency added by the relay, per path",
        subtitle: "relayed minus direct in the same trials · lower is better · whiskers: 95% interval of the median",
        unit: Unit::Time,
        series: &[
            Series {
                label: "p50",
                key: "hop_added_p50_ns",
                interval: true,
            },
            Series {
                label: "p99",
                key: "hop_added_p99_ns",
                interval: true,
            },
        ],
        notes: &[
            "Corrected latency (from the intended send time); in closed loop it equals the raw latency.",
            "A cache that answers hot paths can make the relayed path faster than the direct one (negative).",
        ],
    },
    Spec {
        stem: "http-relay-cpu",
        title: "Relay CPU per request",
        subtitle: "user + system CPU of the relay process(es) over the measured phase / relayed requests · lower is better",
        unit: Unit::Time,
        series: &[Series {
            label: "relay CPU",
            key: "relay_cpu_ns_per_request",
            interval: true,
        }],
        notes: &["nginx: master and workers from /proc; built-in relay: getrusage of its process."],
    },
    Spec {
        stem: "http-wire-bytes",
        title: "Bytes on the wire per request, per side",
        subtitle: "both directions, headers and framing included, below TLS · lower is better",
        unit: Unit::Bytes,
        series: &[
            Series {
                label: "front (client - relay)",
                key: "front_wire_bytes_per_request",
                interval: false,
            },
            Series {
                label: "back (relay - origin), per forwarded request",
                key: "back_wire_bytes_per_request",
                interval: false,
            },
            Series {
                label: "direct (client - origin)",
                key: "direct_wire_bytes_per_request",
                interval: false,
            },
        ],
        notes: &["HTTP/1.1 sends every header as text on every request; HPACK (HTTP/2) indexes repeated ones."],
    },
    Spec {
        stem: "http-throughput",
        title: "Throughput in vs out",
        subtitle: "in: answers the client got per second · out: requests the origin answered per second",
        unit: Unit::Rate,
        series: &[
            Series {
                label: "in (client side)",
                key: "requests_per_s_in",
                interval: false,
            },
            Series {
                label: "out (origin side)",
                key: "requests_per_s_out",
                interval: false,
            },
        ],
        notes: &["Out is lower than in by the requests the relay answered from its cache."],
    },
];

/// A bar's value and the 95% interval drawn as its whisker.
type Bar = (f64, Option<[f64; 2]>);

/// One `http` chart.
pub(crate) struct HttpBars {
    pub info: ChartInfo,
    stamp: Stamp,
    subtitle: &'static str,
    unit: Unit,
    groups: Vec<String>,
    n_series: usize,
    /// Per group, per series: the value and its interval.
    values: Vec<Vec<Option<Bar>>>,
    legend: Vec<LegendEntry>,
    notes: Vec<String>,
}

fn number(case: &CaseRecord, key: &str) -> Option<f64> {
    case.extra.get(key).and_then(|v| v.as_f64()).filter(|v| v.is_finite())
}

/// `h2->h1 · 1 KiB · hit 0.9` (plus the relay when it is not the built-in one).
fn group_label(case: &CaseRecord) -> String {
    let text = |key: &str| case.extra.get(key).and_then(|v| v.as_str()).unwrap_or("?").to_owned();
    let mut label = format!(
        "{} · {} · hit {}",
        text("path"),
        format::bytes(case.message_bytes),
        number(case, "cache_hit_ratio").unwrap_or(0.0)
    );
    match text("relay").as_str() {
        "builtin" | "?" => {}
        relay => label.push_str(&format!(" · {relay}")),
    }
    if case.transport.ends_with("->uds") {
        label.push_str(" · back uds");
    }
    label
}

impl HttpBars {
    /// The charts of `scenario` when it is `http`, each when some case has its figures.
    pub(crate) fn build(scenario: &str, cases: &[&CaseRecord], stamp: &Stamp) -> Vec<Self> {
        if scenario != "http" {
            return Vec::new();
        }
        SPECS
            .iter()
            .filter_map(|spec| HttpBars::one(spec, cases, stamp))
            .collect()
    }

    fn one(spec: &Spec, cases: &[&CaseRecord], stamp: &Stamp) -> Option<HttpBars> {
        let mut groups = Vec::new();
        let mut values = Vec::new();
        for case in cases {
            let row: Vec<_> = spec
                .series
                .iter()
                .map(|s| {
                    number(case, s.key).map(|v| {
                        let interval = s.interval.then(|| {
                            let lo = number(case, &format!("{}_lo", s.key))?;
                            let hi = number(case, &format!("{}_hi", s.key))?;
                            Some([lo, hi])
                        });
                        (v, interval.flatten())
                    })
                })
                .collect();
            if row.iter().all(Option::is_none) {
                continue;
            }
            let mut label = group_label(case);
            if groups.contains(&label) {
                label = format!("{label} · {}", case.id);
            }
            groups.push(label);
            values.push(row);
        }
        if groups.is_empty() {
            return None;
        }
        let n_series = spec.series.len();
        let legend = spec
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| LegendEntry {
                label: s.label.to_owned(),
                color: style::ramp(i, n_series),
                swatch: Swatch::Bar,
            })
            .collect();
        Some(HttpBars {
            info: ChartInfo {
                stem: spec.stem.to_owned(),
                title: format!("{} (http)", spec.title),
                scenario: "http".to_owned(),
            },
            stamp: stamp.clone(),
            subtitle: spec.subtitle,
            unit: spec.unit,
            groups,
            n_series,
            values,
            legend,
            notes: spec.notes.iter().map(|n| (*n).to_owned()).collect(),
        })
    }

    fn bar_height(&self) -> f64 {
        if self.n_series <= 2 { 16.0 } else { 12.0 }
    }

    /// Tall enough that every bar gets its height.
    pub(crate) fn size(&self) -> (u32, u32) {
        let slots = self.groups.len() * (self.n_series + 1);
        let plot = slots as f64 * self.bar_height();
        let height = (plot + 230.0).clamp(f64::from(SIZE.1), 2400.0);
        (SIZE.0, height as u32)
    }

    fn total_slots(&self) -> f64 {
        (self.groups.len() * (self.n_series + 1)) as f64 - 1.0
    }

    /// The center, in slot units, of the bar of `group_idx`, `series_idx`.
    fn slot(&self, group_idx: usize, series_idx: usize) -> f64 {
        self.total_slots() - (group_idx * (self.n_series + 1) + series_idx) as f64 - 0.5
    }

    fn y_axis(&self) -> Axis {
        let n = self.n_series + 1;
        let total = self.total_slots();
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

    fn x_axis(&self) -> Axis {
        let all: Vec<f64> = self
            .values
            .iter()
            .flatten()
            .flatten()
            .flat_map(|(v, interval)| std::iter::once(*v).chain(interval.iter().flatten().copied()))
            .collect();
        let low = all.iter().copied().fold(0.0, f64::min);
        let high = all.iter().copied().fold(0.0, f64::max);
        let unit = self.unit;
        let mut x = match unit {
            Unit::Bytes => Axis::linear_bytes(low, high),
            _ => Axis::linear_from_zero(low, high, move |v| unit.text(v)),
        };
        // Room for the value labels right of the longest bar.
        x.hi += (x.hi - x.lo) * 0.16;
        x
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawFailed> {
        let frame = Frame {
            title: &self.info.title,
            subtitle: Some(self.subtitle),
            stamp: &self.stamp,
            legend_title: None,
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
        let x = self.x_axis();
        let mut chart = ChartBuilder::on(&area)
            .margin_top(6)
            .margin_right(16)
            .margin_bottom(4)
            .x_label_area_size(LABEL_SIZE as u32 + DESC_SIZE as u32 + 26)
            .y_label_area_size(label_width)
            .build_cartesian_2d(x.coord(), y.coord())?;
        let x_label = |t: &f64| x.label(*t);
        let y_label = |t: &f64| y.label(*t);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .label_style(style::font(LABEL_SIZE, TEXT))
            .axis_desc_style(style::font(DESC_SIZE, TEXT))
            .bold_line_style(style::GRID.stroke_width(1))
            .light_line_style(style::GRID_LIGHT.stroke_width(1))
            .axis_style(style::MUTED.stroke_width(1))
            .set_all_tick_mark_size(5)
            .draw()?;
        let (_, plot_height) = chart.plotting_area().dim_in_pixel();
        let pixels_per_slot = f64::from(plot_height) / (y.hi - y.lo).max(1.0);
        let labelled = pixels_per_slot * 0.8 >= MIN_LABELLED_BAR;
        let zero = x.t_clamped(0.0);
        for (g, row) in self.values.iter().enumerate() {
            for (s, value) in row.iter().enumerate() {
                let Some((v, interval)) = value else { continue };
                let center = self.slot(g, s);
                let color = style::ramp(s, self.n_series);
                let end = x.t_clamped(*v);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(zero.min(end), center - 0.4), (zero.max(end), center + 0.4)],
                    color.filled(),
                )))?;
                if let Some([lo, hi]) = interval {
                    let (lo, hi) = (x.t_clamped(*lo), x.t_clamped(*hi));
                    chart.draw_series(std::iter::once(PathElement::new(
                        vec![(lo, center), (hi, center)],
                        style::TEXT.stroke_width(2),
                    )))?;
                    for at in [lo, hi] {
                        chart.draw_series(std::iter::once(PathElement::new(
                            vec![(at, center - 0.25), (at, center + 0.25)],
                            style::TEXT.stroke_width(2),
                        )))?;
                    }
                }
                if labelled {
                    let text_style = style::font(13.0, TEXT).pos(Pos::new(HPos::Left, VPos::Center));
                    let right = interval.map_or(end, |[_, hi]| x.t_clamped(hi)).max(end).max(zero);
                    chart.draw_series(std::iter::once(
                        EmptyElement::at((right, center)) + Text::new(self.unit.text(*v), (5, 0), text_style),
                    ))?;
                }
            }
        }
        Ok(())
    }
}
