//! Writing every output of a run into its folder.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipcbench_record::RunRecord;

use crate::{ReportError, chart, csv, hgrm, html, markdown, write};

/// Which outputs to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    /// `charts/*.png`.
    pub png: bool,
    /// `charts/*.svg`.
    pub svg: bool,
    /// `report.html` (charts embedded as SVG).
    pub html: bool,
    /// `report.md`.
    pub md: bool,
    /// `cases.csv`.
    pub csv: bool,
    /// `hgrm/*.hgrm`.
    pub hgrm: bool,
}

impl Formats {
    /// Every output.
    pub const ALL: Formats = Formats {
        png: true,
        svg: true,
        html: true,
        md: true,
        csv: true,
        hgrm: true,
    };
    /// No output (a start for building a selection).
    pub const NONE: Formats = Formats {
        png: false,
        svg: false,
        html: false,
        md: false,
        csv: false,
        hgrm: false,
    };
}

impl Default for Formats {
    fn default() -> Self {
        Formats::ALL
    }
}

impl FromStr for Formats {
    type Err = ReportError;

    /// A comma-separated list: `png,svg,html,md,csv,hgrm` (`all` for every one).
    fn from_str(list: &str) -> Result<Formats, ReportError> {
        let mut formats = Formats::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.to_ascii_lowercase().as_str() {
                "png" => formats.png = true,
                "svg" => formats.svg = true,
                "html" => formats.html = true,
                "md" | "markdown" => formats.md = true,
                "csv" => formats.csv = true,
                "hgrm" => formats.hgrm = true,
                "all" => formats = Formats::ALL,
                _ => return Err(ReportError::UnknownFormat(name.to_owned())),
            }
        }
        if formats == Formats::NONE {
            return Err(ReportError::UnknownFormat(list.to_owned()));
        }
        Ok(formats)
    }
}

/// Writes the outputs of `record` selected by `formats` into `dir` (created if missing):
/// `charts/<stem>.png|svg`, `report.md`, `report.html`, `cases.csv` and `hgrm/<case>.hgrm`.
/// Everything is derived from the record alone, so the same record gives the same files.
/// Returns the files written.
///
/// # Errors
/// [`ReportError::Histogram`] for an unreadable stored histogram, [`ReportError::Write`] when
/// a file cannot be written, [`ReportError::Draw`] when plotters fails.
pub fn render(record: &RunRecord, dir: &Path, formats: &Formats) -> Result<Vec<PathBuf>, ReportError> {
    write::folder(dir)?;
    let mut written = Vec::new();
    let hgrm_files = hgrm::hgrm_files(record)?;
    let figures = chart::figures(record)?;
    let charts_dir = dir.join("charts");
    if (formats.png || formats.svg) && !figures.is_empty() {
        write::folder(&charts_dir)?;
    }
    let mut charts = Vec::new();
    if formats.png || formats.svg || formats.html {
        for figure in &figures {
            let drawn = chart::draw(figure, &charts_dir, formats.png, formats.svg, formats.html)?;
            written.extend(drawn.files);
            charts.push((drawn.info, drawn.svg.unwrap_or_default()));
        }
    }
    let infos: Vec<chart::ChartInfo> = figures.iter().map(|f| f.info().clone()).collect();
    if formats.md {
        let path = dir.join("report.md");
        write::atomically(&path, markdown::render(record, &infos, &hgrm_files).as_bytes())?;
        written.push(path);
    }
    if formats.html {
        let path = dir.join("report.html");
        write::atomically(&path, html::render(record, &charts, &hgrm_files).as_bytes())?;
        written.push(path);
    }
    if formats.csv {
        let path = dir.join("cases.csv");
        write::atomically(&path, csv::cases_csv(record).as_bytes())?;
        written.push(path);
    }
    if formats.hgrm && !hgrm_files.is_empty() {
        let hgrm_dir = dir.join("hgrm");
        write::folder(&hgrm_dir)?;
        for file in &hgrm_files {
            let path = hgrm_dir.join(&file.file_name);
            write::atomically(&path, file.text.as_bytes())?;
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_lists_parse_and_reject_unknown_names() {
        let f: Formats = "png, svg".parse().unwrap();
        assert!(f.png && f.svg && !f.html && !f.md && !f.csv && !f.hgrm);
        assert_eq!("all".parse::<Formats>().unwrap(), Formats::ALL);
        let err = "png,pdf".parse::<Formats>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown report format `pdf`; allowed: png, svg, html, md, csv, hgrm"
        );
        assert!("".parse::<Formats>().is_err());
    }
}
