//! Drawing: every chart kind as one [`Figure`], the charts of a run in report order, and the
//! PNG and SVG files of each (the comparison pages of the gate included).

use std::path::{Path, PathBuf};

use ipcbench_record::RunRecord;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::common::{ChartInfo, DrawFailed, SIZE};
use super::comparison::{self, ComparisonRow};
use super::{balance, capacity, conn_cost, cpu, http, latency, load, spectrum, style, text, throughput, window};
use crate::{ReportError, Stamp, cases, font};

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
    Capacity(capacity::Capacity),
    Balance(balance::BalanceBars),
    Http(http::HttpBars),
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
            Figure::Capacity(f) => &f.info,
            Figure::Balance(f) => &f.info,
            Figure::Http(f) => &f.info,
        }
    }

    fn size(&self) -> (u32, u32) {
        match self {
            Figure::Cpu(f) => f.size(),
            Figure::Comparison(f) => f.size(),
            Figure::Balance(f) => f.size(),
            Figure::Http(f) => f.size(),
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
            Figure::Capacity(f) => f.draw(root),
            Figure::Balance(f) => f.draw(root),
            Figure::Http(f) => f.draw(root),
        }
    }
}

/// The charts of `record`, in the order the reports show them: per scenario (in plan order)
/// latency vs size, latency vs load, percentile spectra, throughput vs size, throughput vs
/// window, memory per connection (conn-cost), the http charts (added latency per path, relay
/// CPU per request, wire bytes per request, throughput in vs out), CPU cost.
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
        if let Some(f) = capacity::Capacity::build(&scenario, &of, &stamp, &palette) {
            out.push(Figure::Capacity(f));
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
        for f in balance::BalanceBars::build(&scenario, &of, &stamp) {
            out.push(Figure::Balance(f));
        }
        for f in http::HttpBars::build(&scenario, &of, &stamp) {
            out.push(Figure::Http(f));
        }
        // conn-cost's "messages" are connection set-ups; CPU per message would mislead, and
        // balance draws its CPU per role in its state-cost chart.
        if scenario != "conn-cost"
            && scenario != "balance"
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

/// Draws the comparison chart of two runs to `<out_base>.png` and `<out_base>.svg` (more
/// than [`ROWS_PER_CHART`](crate::ROWS_PER_CHART) rows continue in `<out_base>-2.png`, ...), creating the folder.
///
/// Rows are drawn in the order given, top to bottom: a point at `ratio`, a whisker from
/// `ci_low` to `ci_high`, red when `regressed`, green when `improved`, grey otherwise, and the
/// change as a percentage at the right. `stamp` (see [`Stamp::comparison`]) is printed at the
/// bottom. Returns the files written (PNG then SVG per page); nothing for no rows.
///
/// # Errors
/// [`ReportError::Write`] when a file cannot be written, [`ReportError::Draw`] when plotters
/// fails.
pub fn render_comparison(rows: &[ComparisonRow], stamp: &Stamp, out_base: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let dir = out_base
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = out_base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "comparison".to_owned());
    crate::write::folder(dir)?;
    let mut files = Vec::new();
    for page in comparison::Comparison::pages(rows, stamp, &stem) {
        let drawn = draw(&Figure::Comparison(page), dir, true, true, false)?;
        files.extend(drawn.files);
    }
    Ok(files)
}

/// The comparison chart as SVG documents (one per page), for embedding in a report.
///
/// # Errors
/// [`ReportError::Draw`] when plotters fails.
pub fn comparison_svgs(rows: &[ComparisonRow], stamp: &Stamp) -> Result<Vec<String>, ReportError> {
    comparison::Comparison::pages(rows, stamp, "comparison")
        .into_iter()
        .map(|page| {
            draw(&Figure::Comparison(page), Path::new("."), false, false, true).map(|d| d.svg.unwrap_or_default())
        })
        .collect()
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
