//! CPU cost: horizontal bars grouped by transport and placement, one bar per message size;
//! CPU time (client + server, user + system) per message on the left, per payload byte on
//! the right. Horizontal bars keep long group labels readable.

use std::collections::BTreeMap;

use ipcbench_record::CaseRecord;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{Axis, Scale};
use super::common::{ChartInfo, DrawFailed, SIZE};
use super::frame::Frame;
use super::style::{self, DESC_SIZE, LABEL_SIZE, TEXT};
use super::style::{LegendEntry, Swatch};
use crate::cases::{Dimension, SeriesKey};
use crate::{Stamp, format};

/// Bars thinner than this get no value label.
const MIN_LABELLED_BAR: f64 = 13.0;

/// The CPU chart of one scenario.
pub(crate) struct CpuBars {
    pub info: ChartInfo,
    stamp: Stamp,
    groups: Vec<String>,
    sizes: Vec<u64>,
    /// Per group, per size: (ns per message, ns per byte).
    values: Vec<Vec<Option<(f64, f64)>>>,
    legend: Vec<LegendEntry>,
    notes: Vec<String>,
}

impl CpuBars {
    /// The chart of `scenario`'s cases that recorded CPU time, or `None` when none did.
    pub(crate) fn build(scenario: &str, cases: &[&CaseRecord], stamp: &Stamp) -> Option<Self> {
        let mut table: BTreeMap<SeriesKey, BTreeMap<u64, (f64, f64)>> = BTreeMap::new();
        for case in cases {
            let Some(summary) = &case.summary else { continue };
            let (Some(per_message), Some(per_byte)) = (summary.cpu_ns_per_message, summary.cpu_ns_per_byte) else {
                continue;
            };
            if !(per_message > 0.0 && per_byte > 0.0) {
                continue;
            }
            table
                .entry(SeriesKey::of(case, &[Dimension::Size]))
                .or_default()
                .insert(case.message_bytes, (per_message, per_byte));
        }
        if table.is_empty() {
            return None;
        }
        let mut sizes: Vec<u64> = table.values().flat_map(|m| m.keys().copied()).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let groups: Vec<String> = table.keys().map(SeriesKey::label).collect();
        let values = table
            .values()
            .map(|m| sizes.iter().map(|s| m.get(s).copied()).collect())
            .collect();
        let legend = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| LegendEntry {
                label: format::bytes(*s),
                color: style::ramp(i, sizes.len()),
                swatch: Swatch::Bar,
            })
            .collect();
        Some(CpuBars {
            info: ChartInfo {
                stem: format!("cpu-{scenario}"),
                title: format!("CPU cost per message and per byte ({scenario})"),
                scenario: scenario.to_owned(),
            },
            stamp: stamp.clone(),
            groups,
            sizes,
            values,
            legend,
            notes: vec![
                "CPU time of both processes (user + system, from getrusage) over the measured phase, divided by messages or payload bytes; median over trials.".to_owned(),
                "Request/reply scenarios count a round trip as one message.".to_owned(),
            ],
        })
    }

    fn bar_height(&self) -> f64 {
        if self.sizes.len() <= 3 { 16.0 } else { 11.0 }
    }

    /// Tall enough that every bar gets its height.
    pub(crate) fn size(&self) -> (u32, u32) {
        let slots = self.groups.len() * (self.sizes.len() + 1);
        let plot = slots as f64 * self.bar_height();
        let height = (plot + 230.0).clamp(f64::from(SIZE.1), 2400.0);
        (SIZE.0, height as u32)
    }

    /// (center, half height) in slot units of the bar of `group_idx`, `size_idx`.
    fn slot(&self, group_idx: usize, size_idx: usize) -> f64 {
        let n = self.sizes.len() + 1;
        let total = (self.groups.len() * n) as f64 - 1.0;
        total - (group_idx * n + size_idx) as f64 - 0.5
    }

    fn y_axis(&self) -> Axis {
        let n = self.sizes.len() + 1;
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

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawFailed> {
        let frame = Frame {
            title: &self.info.title,
            subtitle: Some(
                "lower is better · client + server, user + system CPU time · values printed beside the bars",
            ),
            stamp: &self.stamp,
            legend_title: Some("message size"),
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
        let (left, right) = area.split_horizontally(label_width + (width - label_width) / 2);
        let per_message = |v: &(f64, f64)| v.0;
        let per_byte = |v: &(f64, f64)| v.1;
        self.panel(&left, &y, label_width, "CPU time per message", per_message)?;
        self.panel(&right, &y, 6, "CPU time per payload byte", per_byte)?;
        Ok(())
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        y: &Axis,
        label_width: u32,
        caption: &str,
        pick: impl Fn(&(f64, f64)) -> f64,
    ) -> Result<(), DrawFailed> {
        let all: Vec<f64> = self.values.iter().flatten().flatten().map(&pick).collect();
        let low = all.iter().copied().fold(f64::INFINITY, f64::min);
        let high = all.iter().copied().fold(0.0, f64::max);
        let mut x = Axis::auto(low, high, |v| format::time_ns(v, 3)).thin(5);
        // Room for the value labels right of the longest bar.
        x.hi += (x.hi - x.lo) * 0.16;
        let mut chart = ChartBuilder::on(area)
            .margin_top(6)
            .margin_right(16)
            .margin_bottom(4)
            .caption(caption, style::font(DESC_SIZE, TEXT))
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
            .x_desc(if x.is_log() { "CPU time (log scale)" } else { "CPU time" })
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
        for (g, row) in self.values.iter().enumerate() {
            for (s, value) in row.iter().enumerate() {
                let Some(value) = value else { continue };
                let v = pick(value);
                let center = self.slot(g, s);
                let color = style::ramp(s, self.sizes.len());
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x.lo, center - 0.4), (x.t_clamped(v), center + 0.4)],
                    color.filled(),
                )))?;
                if labelled {
                    let text_style = style::font(13.0, TEXT).pos(Pos::new(HPos::Left, VPos::Center));
                    chart.draw_series(std::iter::once(
                        EmptyElement::at((x.t_clamped(v), center))
                            + Text::new(format::time_ns(v, 3), (5, 0), text_style),
                    ))?;
                }
            }
        }
        Ok(())
    }
}
