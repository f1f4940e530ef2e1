//! Charts and reports rendered from ipcbench run records.
//!
//! Everything here is a function of a [`RunRecord`](ipcbench_record::RunRecord)
//! alone: the crate never measures and never reads the clock, so an old `run.json` renders
//! to the same files again ([`load_record`], then [`render`]). The stamp on every chart is
//! the run's own name, machine, kernel and start time ([`Stamp`]).
//!
//! Outputs ([`Formats`]): PNG and SVG charts (plotters, with the bundled DejaVu Sans drawn
//! through ab_glyph, so no system font library is needed), `report.md`, a self-contained
//! `report.html` with the charts as inline SVG, `cases.csv` and one HdrHistogram `.hgrm`
//! percentile file per latency case ([`hgrm`]). The summary a run prints on the terminal,
//! [`terminal_tables`], is built from the same per-scenario tables as `report.md`.
//!
//! Charts per scenario: latency vs message size (p50 line, p99 band), latency vs connection
//! count or offered load (load), percentile spectra, throughput vs message size (stream),
//! throughput vs window with the bandwidth-delay bound (rpc), CPU per message and per byte. The comparison of two runs, for the regression gate,
//! is [`render_comparison`] over [`ComparisonRow`]s.
#![forbid(unsafe_code)]

mod cases;
mod chart;
mod csv;
mod doc;
mod error;
mod font;
mod hgrm;
mod html;
mod load;
mod markdown;
mod relative;
mod render;
mod stamp;
mod terminal;
mod write;

/// The unit formatters every rendering shares (times, sizes, rates), from the record crate.
pub use ipcbench_record::units as format;

pub use chart::comparison::{ComparisonRow, ROWS_PER_CHART};
pub use chart::{ChartInfo, chart_list, comparison_svgs, render_comparison};
pub use csv::cases_csv;
pub use error::ReportError;
pub use hgrm::{HgrmFile, TICKS_PER_HALF_DISTANCE, VALUE_SCALING_RATIO, hgrm, hgrm_files};
pub use html::html;
pub use load::{load_record, parse_record};
pub use markdown::markdown;
pub use render::{Formats, render};
pub use stamp::Stamp;
pub use terminal::terminal_tables;
