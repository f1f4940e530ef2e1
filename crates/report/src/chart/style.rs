//! Colours, markers, fonts and the drawing helpers every chart shares.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{Axis, Ticks};
use super::common::DrawFailed;
use crate::cases::SeriesKey;

/// The coordinate system of every chart: linear f64 ranges over transformed values.
pub(crate) type Coords = Cartesian2d<Ticks, Ticks>;

use crate::font::FAMILY;
/// Body text.
pub(crate) const TEXT: RGBColor = RGBColor(33, 33, 33);
/// Secondary text (subtitles, the stamp, notes).
pub(crate) const MUTED: RGBColor = RGBColor(100, 100, 100);
/// Major grid lines.
pub(crate) const GRID: RGBColor = RGBColor(205, 205, 205);
/// Minor grid lines.
pub(crate) const GRID_LIGHT: RGBColor = RGBColor(236, 236, 236);
/// Regressions in comparisons.
pub(crate) const RED: RGBColor = RGBColor(200, 30, 30);
/// Improvements in comparisons.
pub(crate) const GREEN: RGBColor = RGBColor(30, 130, 60);
/// Unchanged in comparisons.
pub(crate) const NEUTRAL: RGBColor = RGBColor(110, 110, 110);

/// Tick label size.
pub(crate) const LABEL_SIZE: f64 = 15.0;
/// Axis title size.
pub(crate) const DESC_SIZE: f64 = 17.0;
/// Legend text size.
pub(crate) const LEGEND_SIZE: f64 = 15.0;

/// Tableau 10, reordered so that the first colours are the most distinct and yellow comes late.
const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),  // blue
    RGBColor(242, 142, 43),  // orange
    RGBColor(89, 161, 79),   // green
    RGBColor(225, 87, 89),   // red
    RGBColor(176, 122, 161), // purple
    RGBColor(118, 183, 178), // teal
    RGBColor(156, 117, 95),  // brown
    RGBColor(255, 157, 167), // pink
    RGBColor(186, 176, 172), // grey
    RGBColor(237, 201, 72),  // yellow
];

/// The colour of a transport: the well-known ones keep their colour in every chart and run,
/// option variants and others take the next free colour.
#[derive(Debug, Clone, Default)]
pub(crate) struct Palette {
    assigned: Vec<(String, RGBColor)>,
}

impl Palette {
    /// Assigns colours to `labels` (transport labels such as `tcp` or `shm [wait=spin]`).
    pub(crate) fn new<'a>(labels: impl IntoIterator<Item = &'a str>) -> Palette {
        let preferred = |label: &str| -> Option<usize> {
            match label {
                "tcp" => Some(0),
                "uds" => Some(1),
                "pipe" => Some(2),
                "shm" => Some(3),
                "inproc" => Some(4),
                "null" => Some(8),
                _ => None,
            }
        };
        let mut labels: Vec<&str> = labels.into_iter().collect();
        labels.dedup();
        let mut used = [false; PALETTE.len()];
        let mut assigned: Vec<(String, Option<usize>)> = Vec::new();
        for label in &labels {
            if assigned.iter().any(|(l, _)| l == label) {
                continue;
            }
            // `tcp->uds` and `shm [wait=spin]` take the colour of their first transport if free.
            let base = label.split(['-', ' ', '[']).next().unwrap_or(label);
            let index = preferred(base).filter(|i| !used[*i]);
            if let Some(i) = index {
                used[i] = true;
            }
            assigned.push(((*label).to_owned(), index));
        }
        let mut next = 0;
        let assigned = assigned
            .into_iter()
            .map(|(label, index)| {
                let index = index.unwrap_or_else(|| {
                    while next < PALETTE.len() && used[next] {
                        next += 1;
                    }
                    let i = if next < PALETTE.len() { next } else { 0 };
                    if next < PALETTE.len() {
                        used[next] = true;
                    }
                    i
                });
                (label, PALETTE[index])
            })
            .collect();
        Palette { assigned }
    }

    /// The colour of `label` (the first colour for an unknown label).
    pub(crate) fn color(&self, label: &str) -> RGBColor {
        self.assigned
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, c)| *c)
            .unwrap_or(PALETTE[0])
    }

    /// The `i`-th colour of the palette (for series that are not transports).
    pub(crate) fn nth(i: usize) -> RGBColor {
        PALETTE[i % PALETTE.len()]
    }
}

/// A blue ramp from light to dark for ordered categories (message sizes in bar charts).
pub(crate) fn ramp(i: usize, n: usize) -> RGBColor {
    let light = (173.0, 204.0, 229.0);
    let dark = (8.0, 48.0, 107.0);
    let f = if n <= 1 { 1.0 } else { i as f64 / (n - 1) as f64 };
    let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    RGBColor(mix(light.0, dark.0), mix(light.1, dark.1), mix(light.2, dark.2))
}

/// Point markers, one per placement, so lines stay apart in black-and-white print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    Circle,
    Triangle,
    Square,
    Cross,
}

/// How a placement is drawn: cross-core solid with circles, same-core dashed with triangles,
/// no-peer solid with squares.
pub(crate) fn placement_style(placement: &str) -> (bool, Marker) {
    match placement {
        "cross-core" => (false, Marker::Circle),
        "same-core" => (true, Marker::Triangle),
        "no-peer" => (false, Marker::Square),
        _ => (true, Marker::Cross),
    }
}

/// How the line of one transport and placement looks: the transport's colour, the placement's
/// dash and marker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Look {
    /// The transport's colour.
    pub color: RGBColor,
    /// Dashed rather than solid.
    pub dashed: bool,
    /// The marker at each point.
    pub marker: Marker,
}

impl Look {
    /// The look of the series `key`: colour from `palette`, dash and marker from
    /// [`placement_style`].
    pub(crate) fn of(key: &SeriesKey, palette: &Palette) -> Look {
        let (dashed, marker) = placement_style(&key.placement);
        Look {
            color: palette.color(&key.transport),
            dashed,
            marker,
        }
    }

    /// Its legend entry: the line, dashed as drawn, with the marker in its middle.
    pub(crate) fn legend_entry(&self, label: String) -> LegendEntry {
        LegendEntry::line(label, self.color, self.dashed, Some(self.marker))
    }
}

/// One line of a chart: how it looks and its points (axis coordinates).
pub(crate) struct Series<P> {
    /// Colour, dash and marker.
    pub look: Look,
    /// The points, in the order the line joins them.
    pub points: Vec<P>,
}

/// One series per group of `groups`, in their order, each with the [`Look`] of its key, and
/// the legend entries that label them. `to_axes` turns a group's values into its points.
pub(crate) fn series<V, P>(
    groups: impl IntoIterator<Item = (SeriesKey, Vec<V>)>,
    palette: &Palette,
    mut to_axes: impl FnMut(Vec<V>) -> Vec<P>,
) -> (Vec<Series<P>>, Vec<LegendEntry>) {
    let mut series = Vec::new();
    let mut legend = Vec::new();
    for (key, values) in groups {
        let look = Look::of(&key, palette);
        legend.push(look.legend_entry(key.label()));
        series.push(Series {
            look,
            points: to_axes(values),
        });
    }
    (series, legend)
}

/// A text style in the bundled font.
pub(crate) fn font(size: f64, color: RGBColor) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&color)
}

/// A text style anchored at `h`/`v`.
pub(crate) fn anchored(size: f64, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    font(size, color).pos(Pos::new(h, v))
}

/// The width of `text` in pixels at `size`.
pub(crate) fn text_width<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str, size: f64) -> u32 {
    area.estimate_text_size(text, &font(size, TEXT))
        .map(|(w, _)| w)
        .unwrap_or((text.chars().count() as f64 * size * 0.6) as u32)
}

/// `text` cut with an ellipsis so that it fits `max_width` pixels.
pub(crate) fn fit<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str, size: f64, max_width: u32) -> String {
    if text_width(area, text, size) <= max_width {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut n = chars.len();
    while n > 1 {
        n -= 1;
        let candidate: String = chars[..n].iter().collect::<String>() + "…";
        if text_width(area, &candidate, size) <= max_width {
            return candidate;
        }
    }
    "…".to_owned()
}

/// Words of `text` wrapped into lines no wider than `max_width` pixels.
pub(crate) fn wrap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    size: f64,
    max_width: u32,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let candidate = if line.is_empty() {
            word.to_owned()
        } else {
            format!("{line} {word}")
        };
        if !line.is_empty() && text_width(area, &candidate, size) > max_width {
            lines.push(std::mem::take(&mut line));
            line = word.to_owned();
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The widest tick label of `axis`, in pixels.
pub(crate) fn widest_label<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, axis: &Axis) -> u32 {
    axis.major
        .iter()
        .map(|(_, label)| text_width(area, label, LABEL_SIZE))
        .max()
        .unwrap_or(0)
}

/// Builds the chart in `area` with room for both axes' labels and titles.
pub(crate) fn build<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    x: &Axis,
    y: &Axis,
    caption: Option<&str>,
    y_label_width: Option<u32>,
) -> Result<ChartContext<'a, DB, Coords>, DrawFailed> {
    let y_area = y_label_width.unwrap_or_else(|| widest_label(area, y) + 12 + (DESC_SIZE as u32) + 14);
    let mut builder = ChartBuilder::on(area);
    builder
        .margin_top(10)
        .margin_right(24)
        .margin_left(4)
        .margin_bottom(4)
        .x_label_area_size(LABEL_SIZE as u32 + DESC_SIZE as u32 + 26)
        .y_label_area_size(y_area);
    if let Some(caption) = caption {
        builder.caption(caption, font(DESC_SIZE, TEXT));
    }
    Ok(builder.build_cartesian_2d(x.coord(), y.coord())?)
}

/// Draws grid, ticks, tick labels and axis titles.
pub(crate) fn mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Coords>,
    x: &Axis,
    y: &Axis,
    x_desc: &str,
    y_desc: &str,
) -> Result<(), DrawFailed> {
    let x_label = |t: &f64| x.label(*t);
    let y_label = |t: &f64| y.label(*t);
    chart
        .configure_mesh()
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(font(LABEL_SIZE, TEXT))
        .axis_desc_style(font(DESC_SIZE, TEXT))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(GRID_LIGHT.stroke_width(1))
        .axis_style(MUTED.stroke_width(1))
        .set_all_tick_mark_size(5)
        .draw()?;
    Ok(())
}

/// A polyline through `points` (axis coordinates), dashed or solid.
pub(crate) fn line<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Coords>,
    points: &[(f64, f64)],
    color: RGBColor,
    dashed: bool,
    width: u32,
) -> Result<(), DrawFailed> {
    if points.len() < 2 {
        return Ok(());
    }
    let style = color.stroke_width(width);
    if dashed {
        chart.draw_series(DashedLineSeries::new(points.iter().copied(), 9, 6, style))?;
    } else {
        chart.draw_series(LineSeries::new(points.iter().copied(), style))?;
    }
    Ok(())
}

/// Markers at `points` (axis coordinates).
pub(crate) fn markers<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Coords>,
    points: &[(f64, f64)],
    marker: Marker,
    color: RGBColor,
) -> Result<(), DrawFailed> {
    let p = points.iter().copied();
    match marker {
        Marker::Circle => {
            chart.draw_series(p.map(|c| Circle::new(c, 4, color.filled())))?;
        }
        Marker::Triangle => {
            chart.draw_series(p.map(|c| TriangleMarker::new(c, 6, color.filled())))?;
        }
        Marker::Square => {
            chart.draw_series(p.map(|c| EmptyElement::at(c) + Rectangle::new([(-4, -4), (4, 4)], color.filled())))?;
        }
        Marker::Cross => {
            chart.draw_series(p.map(|c| Cross::new(c, 5, color.stroke_width(2))))?;
        }
    }
    Ok(())
}

/// A marker at a pixel position of `area` (for legends).
pub(crate) fn marker_at<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    marker: Marker,
    color: RGBColor,
) -> Result<(), DrawFailed> {
    match marker {
        Marker::Circle => area.draw(&Circle::new(at, 4, color.filled()))?,
        Marker::Triangle => area.draw(&TriangleMarker::new(at, 6, color.filled()))?,
        Marker::Square => area.draw(&Rectangle::new(
            [(at.0 - 4, at.1 - 4), (at.0 + 4, at.1 + 4)],
            color.filled(),
        ))?,
        Marker::Cross => area.draw(&Cross::new(at, 5, color.stroke_width(2)))?,
    }
    Ok(())
}

/// An interval whisker with end caps, vertical at `x` from `low` to `high` (axis
/// coordinates), or horizontal at `y` when `horizontal`.
pub(crate) fn whisker<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Coords>,
    at: f64,
    low: f64,
    high: f64,
    horizontal: bool,
    color: RGBColor,
    width: u32,
) -> Result<(), DrawFailed> {
    let point = |v: f64| if horizontal { (v, at) } else { (at, v) };
    let cap = |v: f64| {
        let offsets = if horizontal {
            [(0, -5), (0, 5)]
        } else {
            [(-5, 0), (5, 0)]
        };
        EmptyElement::at(point(v)) + PathElement::new(offsets.to_vec(), color.stroke_width(width))
    };
    chart.draw_series(std::iter::once(PathElement::new(
        vec![point(low), point(high)],
        color.stroke_width(width),
    )))?;
    chart.draw_series([cap(low), cap(high)])?;
    Ok(())
}
/// How a legend entry shows its series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Swatch {
    /// A line, optionally dashed, with an optional marker in its middle.
    Line { dashed: bool, marker: Option<Marker> },
    /// A translucent band (p50..p99).
    Band,
    /// A filled bar.
    Bar,
}

/// One line of a legend.
#[derive(Debug, Clone)]
pub(crate) struct LegendEntry {
    pub label: String,
    pub color: RGBColor,
    pub swatch: Swatch,
}

impl LegendEntry {
    /// A line entry, solid or dashed, with `marker` in its middle when given.
    pub(crate) fn line(label: String, color: RGBColor, dashed: bool, marker: Option<Marker>) -> LegendEntry {
        LegendEntry {
            label,
            color,
            swatch: Swatch::Line { dashed, marker },
        }
    }
}
