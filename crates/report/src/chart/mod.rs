//! The charts: which ones a record gets, and drawing each into PNG and SVG.
//!
//! Each chart is a value built from the record alone (no clock, no machine), drawn by the same
//! generic code onto plotters' bitmap and SVG backends, so the two files always agree and a
//! record rendered twice gives the same bytes.

pub(crate) mod axis;
pub(crate) mod comparison;
mod conn_cost;
mod cpu;
pub(crate) mod frame;
mod latency;
mod load;
mod spectrum;
pub(crate) mod style;
mod text;
mod throughput;
mod window;

use std::path::{Path, PathBuf};

use ipcbench_record::RunRecord;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{ReportError, Stamp, cases, font};

/// Default chart size: readable on a laptop and in print, quick to encode.
pub(crate) const SIZE: (u32, u32) = (1200, 700);

/// A drawing error from plotters, as text (its error types are generic over the backend).
#[derive(Debug)]
pub(crate) struct DrawFailed(pub String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawFailed {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        DrawFailed(e.to_string())
    }
}

/// A chart of a run, listed before it is drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartInfo {
    /// File name without extension (`latency-vs-size-pingpong`); the files are
    /// `charts/<stem>.png` and `charts/<stem>.svg`.
    pub stem: String,
    /// The chart's title.
    pub title: String,
    /// The scenario whose cases it shows.
    pub scenario: String,
}

/// A chart drawn in memory.
#[derive(Debug, Clone)]
pub(crate) struct Drawn {
    pub info: ChartInfo,
    /// The SVG document, when asked for.
    pub svg: Option<String>,
    /// The files written.
    pub files: Vec<PathBuf>,
}

/// Every chart kind.
pub(crate) enum Figure {
    Latency(latency::LatencyVsSize),
    Load(load::LatencyVsLoad),
    Spectrum(spectrum::Spectrum),
    Throughput(throughput::ThroughputVsSize),
    Cpu(cpu::CpuBars),
    Window(window::WindowChart),
    Comparison(comparison::Comparison),
    ConnCost(conn_cost::ConnCost),
}

impl Figure {
    pub(crate) fn info(&self) -> &ChartInfo {
        match self {
            Figure::Latency(f) => &f.info,
            Figure::Load(f) => &f.info,
            Figure::Spectrum(f) => &f.info,
            Figure::Throughput(f) => &f.info,
            Figure::Cpu(f) => &f.info,
            Figure::Window(f) => &f.info,
            Figure::Comparison(f) => &f.info,
            Figure::ConnCost(f) => &f.info,
        }
    }

    fn size(&self) -> (u32, u32) {
        match self {
            Figure::Cpu(f) => f.size(),
            Figure::Comparison(f) => f.size(),
            _ => SIZE,
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawFailed> {
        match self {
            Figure::Latency(f) => f.draw(root),
            Figure::Load(f) => f.draw(root),
            Figure::Spectrum(f) => f.draw(root),
            Figure::Throughput(f) => f.draw(root),
            Figure::Cpu(f) => f.draw(root),
            Figure::Window(f) => f.draw(root),
            Figure::Comparison(f) => f.draw(root),
            Figure::ConnCost(f) => f.draw(root),
        }
    }
}

/// The charts of `record`, in the order the reports show them: per scenario (in plan order)
/// latency vs size, latency vs load, percentile spectra, throughput vs size, throughput vs
/// window, memory per connection (conn-cost), CPU cost.
///
/// # Errors
/// [`ReportError::Histogram`] when a stored histogram cannot be decoded.
pub(crate) fn figures(record: &RunRecord) -> Result<Vec<Figure>, ReportError> {
    let stamp = Stamp::from_record(record);
    let measured: Vec<_> = record.cases.iter().filter(|c| cases::is_measured(c)).collect();
    let palette = style::Palette::new(
        measured
            .iter()
            .map(|c| cases::transport_label(c))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    let mut out = Vec::new();
    for scenario in cases::scenarios(&record.cases) {
        let of: Vec<_> = measured.iter().copied().filter(|c| c.scenario == scenario).collect();
        if of.is_empty() {
            continue;
        }
        let calibration = record.calibration.as_ref();
        let cache_line = calibration.and_then(|c| c.cache_line_round_trip_ns);
        let two_line = calibration.and_then(|c| c.two_line_round_trip_ns);
        let memcpy = calibration.and_then(|c| c.memcpy_bytes_per_s);
        if let Some(f) = latency::LatencyVsSize::build(&scenario, &of, &stamp, &palette, cache_line, two_line) {
            out.push(Figure::Latency(f));
        }
        if let Some(f) = load::LatencyVsLoad::build(&scenario, &of, &stamp, &palette) {
            out.push(Figure::Load(f));
        }
        for f in spectrum::Spectrum::build(&scenario, &of, &stamp, &palette)? {
            out.push(Figure::Spectrum(f));
        }
        if let Some(f) = throughput::ThroughputVsSize::build(&scenario, &of, &stamp, &palette, memcpy) {
            out.push(Figure::Throughput(f));
        }
        for f in window::WindowChart::build(&scenario, &of, &stamp) {
            out.push(Figure::Window(f));
        }
        if let Some(f) = conn_cost::ConnCost::build(&scenario, &of, &stamp, &palette) {
            out.push(Figure::ConnCost(f));
        }
        // conn-cost's "messages" are connection set-ups; CPU per message would mislead.
        if scenario != "conn-cost"
            && let Some(f) = cpu::CpuBars::build(&scenario, &of, &stamp)
        {
            out.push(Figure::Cpu(f));
        }
    }
    Ok(out)
}

/// The charts `ipcbench report` would draw for `record`, without drawing them.
///
/// # Errors
/// [`ReportError::Histogram`] when a stored histogram cannot be decoded.
pub fn chart_list(record: &RunRecord) -> Result<Vec<ChartInfo>, ReportError> {
    Ok(figures(record)?.iter().map(|f| f.info().clone()).collect())
}

/// DejaVu Sans' ascent-to-descent height in em: ab_glyph scales that height to the nominal
/// size, so the PNG's em is `size / 1.164`.
const DEJAVU_HEIGHT_EM: f64 = 1.164;
/// plotters' SVG backend writes `font-size = size / 1.24`.
const PLOTTERS_SVG_EM: f64 = 1.24;

/// Makes SVG text match the PNG: `font-size` scaled to the em the layout was measured with,
/// and DejaVu Sans named first (any sans-serif face after it).
fn tune_svg_text(svg: &str) -> String {
    let scale = PLOTTERS_SVG_EM / DEJAVU_HEIGHT_EM;
    let mut out = String::with_capacity(svg.len() + svg.len() / 16);
    let mut rest = svg;
    while let Some(at) = rest.find("font-size=\"") {
        let (head, tail) = rest.split_at(at + "font-size=\"".len());
        out.push_str(head);
        let end = tail.find('"').unwrap_or(0);
        match tail[..end].parse::<f64>() {
            Ok(size) => out.push_str(&crate::format::significant(size * scale, 4)),
            Err(_) => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out.replace(
        "font-family=\"sans-serif\"",
        "font-family=\"DejaVu Sans, Bitstream Vera Sans, Verdana, sans-serif\"",
    )
}

/// Draws `figure`: PNG and SVG files into `dir` as asked, and the SVG text when `keep_svg`.
pub(crate) fn draw(figure: &Figure, dir: &Path, png: bool, svg: bool, keep_svg: bool) -> Result<Drawn, ReportError> {
    font::register()?;
    let info = figure.info().clone();
    let failed = |message: String| ReportError::Draw {
        chart: info.stem.clone(),
        message,
    };
    let size = figure.size();
    let mut files = Vec::new();
    let mut svg_text = None;
    if svg || keep_svg {
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
            figure.draw(&root).map_err(|e| failed(e.0))?;
            root.present().map_err(|e| failed(e.to_string()))?;
        }
        let text = tune_svg_text(&text);
        if svg {
            let path = dir.join(format!("{}.svg", info.stem));
            crate::write::atomically(&path, text.as_bytes())?;
            files.push(path);
        }
        if keep_svg {
            svg_text = Some(text);
        }
    }
    if png {
        let path = dir.join(format!("{}.png", info.stem));
        // The bitmap backend picks the encoder from the extension, so the temporary file
        // keeps `.png` at the end.
        let tmp = dir.join(format!(".{}.tmp.png", info.stem));
        {
            let root = text::CrispText(BitMapBackend::new(&tmp, size)).into_drawing_area();
            figure.draw(&root).map_err(|e| failed(e.0))?;
            root.present().map_err(|e| failed(e.to_string()))?;
        }
        std::fs::rename(&tmp, &path).map_err(|source| ReportError::Write {
            path: path.clone(),
            source,
        })?;
        files.push(path);
    }
    Ok(Drawn {
        info,
        svg: svg_text,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_text_is_scaled_to_the_measured_em() {
        let svg = r#"<text font-family="sans-serif" font-size="12.096774193548388">a</text>"#;
        assert_eq!(
            tune_svg_text(svg),
            r#"<text font-family="DejaVu Sans, Bitstream Vera Sans, Verdana, sans-serif" font-size="12.89">a</text>"#
        );
    }
}
