//! The frame around every chart: title and subtitle on top, the provenance stamp at the
//! bottom, and the legend in a column of its own on the right, so it never covers data.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::axis::Axis;
use super::common::DrawFailed;
use super::style::{self, Coords, LEGEND_SIZE, LegendEntry, MUTED, Swatch, TEXT, anchored, text_width};
use crate::Stamp;

const MARGIN: i32 = 18;
const TITLE_SIZE: f64 = 24.0;
const SUBTITLE_SIZE: f64 = 15.0;
const STAMP_SIZE: f64 = 13.0;
const NOTE_SIZE: f64 = 13.0;
const SWATCH: i32 = 34;

/// What the frame shows besides the chart itself.
pub(crate) struct Frame<'a> {
    pub title: &'a str,
    pub subtitle: Option<&'a str>,
    pub stamp: &'a Stamp,
    /// Shown above the entries.
    pub legend_title: Option<&'a str>,
    pub legend: &'a [LegendEntry],
    /// Small print under the legend (how to read the chart, assumptions).
    pub notes: &'a [String],
}

impl Frame<'_> {
    /// Draws the frame on `root` and returns the area left for the chart.
    pub(crate) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<DrawingArea<DB, Shift>, DrawFailed> {
        root.fill(&WHITE)?;
        let (width, height) = root.dim_in_pixel();
        let (width, height) = (width as i32, height as i32);

        // Title and subtitle.
        let title = style::fit(root, self.title, TITLE_SIZE, (width - 2 * MARGIN) as u32);
        root.draw_text(&title, &anchored(TITLE_SIZE, TEXT, HPos::Left, VPos::Top), (MARGIN, 12))?;
        let mut top = 12 + TITLE_SIZE as i32 + 8;
        if let Some(subtitle) = self.subtitle {
            let subtitle = style::fit(root, subtitle, SUBTITLE_SIZE, (width - 2 * MARGIN) as u32);
            root.draw_text(
                &subtitle,
                &anchored(SUBTITLE_SIZE, MUTED, HPos::Left, VPos::Top),
                (MARGIN, top),
            )?;
            top += SUBTITLE_SIZE as i32 + 8;
        }

        // The stamp, on one line when it fits, else on two.
        let full = self.stamp.line();
        let stamp_lines = if text_width(root, &full, STAMP_SIZE) as i32 <= width - 2 * MARGIN {
            vec![full]
        } else {
            vec![
                format!("run {} · {} · {}", self.stamp.run, self.stamp.date, self.stamp.software),
                format!("{} · {}", self.stamp.machine, self.stamp.kernel),
            ]
        };
        let line_height = STAMP_SIZE as i32 + 5;
        let mut y = height - 8 - line_height * stamp_lines.len() as i32;
        let bottom = y - 6;
        root.draw(&PathElement::new(
            vec![(MARGIN, bottom + 2), (width - MARGIN, bottom + 2)],
            style::GRID.stroke_width(1),
        ))?;
        for text in &stamp_lines {
            let text = style::fit(root, text, STAMP_SIZE, (width - 2 * MARGIN) as u32);
            root.draw_text(
                &text,
                &anchored(STAMP_SIZE, MUTED, HPos::Left, VPos::Top),
                (MARGIN, y + 2),
            )?;
            y += line_height;
        }

        let body = root
            .clone()
            .shrink((0, top), (width as u32, (bottom - top).max(1) as u32));
        if self.legend.is_empty() && self.notes.is_empty() {
            return Ok(body);
        }
        let legend_width = self.legend_width(root, width);
        let (chart, legend) = body.split_horizontally((width - legend_width) as u32);
        self.draw_legend(&legend, legend_width)?;
        Ok(chart)
    }

    /// Draws the frame on `root` and one plot in the area left: grid, ticks and the axis
    /// titles `x_desc` and `y_desc` of the axes `x` and `y`, then what `data` draws into it.
    pub(crate) fn draw_plot<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (x, x_desc): (&Axis, &str),
        (y, y_desc): (&Axis, &str),
        data: impl FnOnce(&mut ChartContext<'_, DB, Coords>) -> Result<(), DrawFailed>,
    ) -> Result<(), DrawFailed> {
        let area = self.draw(root)?;
        let mut chart = style::build(&area, x, y, None, None)?;
        style::mesh(&mut chart, x, y, x_desc, y_desc)?;
        data(&mut chart)
    }

    fn legend_width<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, width: i32) -> i32 {
        let widest = self
            .legend
            .iter()
            .map(|e| text_width(root, &e.label, LEGEND_SIZE) as i32)
            .chain(
                self.legend_title
                    .map(|t| text_width(root, t, LEGEND_SIZE) as i32 - SWATCH - 8),
            )
            .max()
            .unwrap_or(0);
        (widest + SWATCH + 8 + 2 * MARGIN).clamp(210, width * 2 / 5)
    }

    fn draw_legend<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>, width: i32) -> Result<(), DrawFailed> {
        let (_, height) = area.dim_in_pixel();
        let height = height as i32;
        let x0 = 8;
        let text_x = x0 + SWATCH + 8;
        let text_room = (width - text_x - MARGIN).max(40) as u32;
        let mut y = 14;
        if let Some(title) = self.legend_title {
            let title = style::fit(area, title, LEGEND_SIZE, (width - x0 - MARGIN) as u32);
            area.draw_text(&title, &anchored(LEGEND_SIZE, MUTED, HPos::Left, VPos::Center), (x0, y))?;
            y += 24;
        }
        // Shrink the rows when there are many entries, so they all fit.
        let room = height - y - 12 - self.notes.len() as i32 * 40;
        let n = self.legend.len().max(1) as i32;
        let (size, row) = if n * 24 <= room {
            (LEGEND_SIZE, 24)
        } else if n * 19 <= room {
            (13.0, 19)
        } else {
            (11.0, ((room / n).max(12)))
        };
        for entry in self.legend {
            if y > height - row {
                break;
            }
            let mid = (x0 + SWATCH / 2, y);
            match entry.swatch {
                Swatch::Line { dashed, marker } => {
                    if dashed {
                        area.draw(&PathElement::new(
                            vec![(x0, y), (x0 + 10, y)],
                            entry.color.stroke_width(2),
                        ))?;
                        area.draw(&PathElement::new(
                            vec![(x0 + SWATCH - 10, y), (x0 + SWATCH, y)],
                            entry.color.stroke_width(2),
                        ))?;
                    } else {
                        area.draw(&PathElement::new(
                            vec![(x0, y), (x0 + SWATCH, y)],
                            entry.color.stroke_width(2),
                        ))?;
                    }
                    if let Some(marker) = marker {
                        style::marker_at(area, mid, marker, entry.color)?;
                    }
                }
                Swatch::Band => {
                    area.draw(&Rectangle::new(
                        [(x0, y - 7), (x0 + SWATCH, y + 7)],
                        entry.color.mix(0.18).filled(),
                    ))?;
                }
                Swatch::Bar => {
                    area.draw(&Rectangle::new(
                        [(x0 + 4, y - 7), (x0 + SWATCH - 4, y + 7)],
                        entry.color.filled(),
                    ))?;
                }
            }
            let label = style::fit(area, &entry.label, size, text_room);
            area.draw_text(&label, &anchored(size, TEXT, HPos::Left, VPos::Center), (text_x, y))?;
            y += row;
        }
        y += 8;
        for note in self.notes {
            for line in style::wrap(area, note, NOTE_SIZE, (width - x0 - MARGIN) as u32) {
                if y > height - 8 {
                    break;
                }
                area.draw_text(&line, &anchored(NOTE_SIZE, MUTED, HPos::Left, VPos::Center), (x0, y))?;
                y += NOTE_SIZE as i32 + 5;
            }
            y += 6;
        }
        Ok(())
    }
}
