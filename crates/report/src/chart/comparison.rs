//! The comparison of two runs: per case and metric, the ratio new / old with its interval,
//! as points with whiskers on a log axis; regressions red, improvements green.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::axis::Axis;
use super::common::{ChartInfo, DrawFailed, SIZE};
use super::frame::Frame;
use super::style::{self, GREEN, LABEL_SIZE, NEUTRAL, RED, TEXT};
use super::style::{LegendEntry, Swatch};
use crate::{Stamp, format};

/// Rows per chart; more rows continue on further pages (`<base>-2.png`, ...).
pub const ROWS_PER_CHART: usize = 30;
const ROW_HEIGHT: u32 = 26;

/// One compared figure: a case's metric in the new run relative to the old one.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonRow {
    /// The case id both runs share.
    pub case_id: String,
    /// The metric compared, e.g. `latency_p50_ns`, `latency_p99_ns`, `bytes_per_s`.
    pub metric: String,
    /// New median / old median (1.0 = unchanged). Non-finite or non-positive ratios are
    /// listed as `n/a` and not plotted.
    pub ratio: f64,
    /// Lower end of the ratio's interval (e.g. 95% bootstrap), same scale as `ratio`.
    pub ci_low: f64,
    /// Upper end of the ratio's interval.
    pub ci_high: f64,
    /// The gate judged this a regression: drawn red.
    pub regressed: bool,
    /// The gate judged this an improvement: drawn green (`regressed` wins if both are set).
    pub improved: bool,
}

impl ComparisonRow {
    fn color(&self) -> RGBColor {
        if self.regressed {
            RED
        } else if self.improved {
            GREEN
        } else {
            NEUTRAL
        }
    }

    fn plottable(&self) -> bool {
        self.ratio.is_finite() && self.ratio > 0.0
    }
}

/// One page of the comparison chart.
pub(crate) struct Comparison {
    pub info: ChartInfo,
    stamp: Stamp,
    rows: Vec<ComparisonRow>,
    x: Axis,
    legend: Vec<LegendEntry>,
    notes: Vec<String>,
}

impl Comparison {
    pub(crate) fn pages(rows: &[ComparisonRow], stamp: &Stamp, stem: &str) -> Vec<Comparison> {
        let values: Vec<f64> = rows
            .iter()
            .filter(|r| r.plottable())
            .flat_map(|r| [r.ratio, r.ci_low, r.ci_high])
            .filter(|v| v.is_finite() && *v > 0.0)
            .chain([0.9, 1.1])
            .collect();
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(0.0, f64::max);
        // One axis for every page, so pages compare by eye.
        let x = Axis::ratio(low, high, |v| format!("{}×", format::significant(v, 3)));
        let n_pages = rows.len().div_ceil(ROWS_PER_CHART);
        let n_regressed = rows.iter().filter(|r| r.regressed).count();
        let n_improved = rows.iter().filter(|r| r.improved && !r.regressed).count();
        rows.chunks(ROWS_PER_CHART)
            .enumerate()
            .map(|(i, chunk)| {
                let page = if n_pages > 1 {
                    format!(" (page {} of {n_pages})", i + 1)
                } else {
                    String::new()
                };
                Comparison {
                    info: ChartInfo {
                        stem: if i == 0 {
                            stem.to_owned()
                        } else {
                            format!("{stem}-{}", i + 1)
                        },
                        title: format!(
                            "Comparison, new / old: {n_regressed} regressed, {n_improved} improved of {}{page}",
                            rows.len()
                        ),
                        scenario: String::new(),
                    },
                    stamp: stamp.clone(),
                    rows: chunk.to_vec(),
                    x: x.clone(),
                    legend: vec![
                        LegendEntry {
                            label: "regression".to_owned(),
                            color: RED,
                            swatch: Swatch::Line {
                                dashed: false,
                                marker: Some(style::Marker::Circle),
                            },
                        },
                        LegendEntry {
                            label: "improvement".to_owned(),
                            color: GREEN,
                            swatch: Swatch::Line {
                                dashed: false,
                                marker: Some(style::Marker::Circle),
                            },
                        },
                        LegendEntry {
                            label: "no significant change".to_owned(),
                            color: NEUTRAL,
                            swatch: Swatch::Line {
                                dashed: false,
                                marker: Some(style::Marker::Circle),
                            },
                        },
                    ],
                    notes: vec![
                        "Point: ratio of the medians, new / old. Whisker: its interval.".to_owned(),
                        "For latency and CPU a ratio above 1× is slower; for throughput, faster.".to_owned(),
                    ],
                }
            })
            .collect()
    }

    pub(crate) fn size(&self) -> (u32, u32) {
        let height = self.rows.len() as u32 * ROW_HEIGHT + 230;
        (SIZE.0, height.max(420))
    }

    fn y_axis(&self) -> Axis {
        let n = self.rows.len();
        Axis {
            scale: super::axis::Scale::Linear,
            lo: 0.0,
            hi: n as f64,
            major: self
                .rows
                .iter()
                .enumerate()
                .map(|(i, r)| ((n - i) as f64 - 0.5, format!("{} · {}", r.case_id, r.metric)))
                .collect(),
            minor: Vec::new(),
        }
    }

    pub(crate) fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawFailed> {
        let frame = Frame {
            title: &self.info.title,
            subtitle: Some("ratio of new to old median per case and metric · log scale"),
            stamp: &self.stamp,
            legend_title: Some("verdict"),
            legend: &self.legend,
            notes: &self.notes,
        };
        let area = frame.draw(root)?;
        let (width, _) = area.dim_in_pixel();
        let mut y = self.y_axis();
        let label_width = (style::widest_label(&area, &y) + 30).min(width / 2);
        for (_, label) in &mut y.major {
            *label = style::fit(&area, label, LABEL_SIZE, label_width - 28);
        }
        let change_column = 80;
        let mut chart = ChartBuilder::on(&area)
            .margin_top(10)
            .margin_right(change_column)
            .margin_bottom(4)
            .x_label_area_size(LABEL_SIZE as u32 + style::DESC_SIZE as u32 + 26)
            .y_label_area_size(label_width)
            .build_cartesian_2d(self.x.coord(), y.coord())?;
        let x_label = |t: &f64| self.x.label(*t);
        let y_label = |t: &f64| y.label(*t);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_desc("ratio new / old (log scale; 1× = unchanged)")
            .label_style(style::font(LABEL_SIZE, TEXT))
            .axis_desc_style(style::font(style::DESC_SIZE, TEXT))
            .bold_line_style(style::GRID.stroke_width(1))
            .light_line_style(style::GRID_LIGHT.stroke_width(1))
            .axis_style(style::MUTED.stroke_width(1))
            .draw()?;
        let n = self.rows.len();
        // Zebra stripes keep a row's label, point and change on one line for the eye.
        for i in (0..n).step_by(2) {
            let top = (n - i) as f64;
            chart.draw_series(std::iter::once(Rectangle::new(
                [(self.x.lo, top - 1.0), (self.x.hi, top)],
                BLACK.mix(0.035).filled(),
            )))?;
        }
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), (0.0, n as f64)],
            TEXT.stroke_width(1),
        )))?;
        for (i, row) in self.rows.iter().enumerate() {
            let center = (n - i) as f64 - 0.5;
            let color = row.color();
            if row.plottable() {
                let t = self.x.t_clamped(row.ratio);
                let lo = self.x.t_clamped(row.ci_low.min(row.ratio).max(f64::MIN_POSITIVE));
                let hi = self.x.t_clamped(row.ci_high.max(row.ratio));
                if hi > lo {
                    style::whisker(&mut chart, center, lo, hi, true, color, 2)?;
                }
                chart.draw_series(std::iter::once(Circle::new((t, center), 5, color.filled())))?;
            }
            let (px, py) = chart.backend_coord(&(self.x.hi, center));
            root.draw_text(
                &format::change(row.ratio),
                &style::anchored(LABEL_SIZE, color, HPos::Left, VPos::Center),
                (px + 12, py),
            )?;
        }
        Ok(())
    }
}
