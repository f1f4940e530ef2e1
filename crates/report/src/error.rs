//! The one error type of the report crate.

use std::path::PathBuf;

/// Why a report could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The record file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The record file is not JSON.
    #[error("{} is not valid JSON", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The file is JSON but carries no (or another) run record schema tag.
    #[error("{} is not an ipcbench run record: {detail}", path.display())]
    NotARecord {
        /// The file.
        path: PathBuf,
        /// What was found instead of `"schema": "ipcbench.run/1"`.
        detail: String,
    },
    /// The file says it is a run record but a field is missing or has the wrong type.
    #[error("{} does not match the run record schema {}", path.display(), ipcbench_record::SCHEMA)]
    Schema {
        /// The file.
        path: PathBuf,
        /// The field, line and column at fault.
        #[source]
        source: serde_json::Error,
    },
    /// A case's stored histogram could not be decoded or merged.
    #[error("case `{case_id}` holds an unreadable latency histogram: {message}")]
    Histogram {
        /// The case.
        case_id: String,
        /// What is wrong with it.
        message: String,
    },
    /// A `--format` list named something unknown.
    #[error("unknown report format `{0}`; allowed: png, svg, html, md, csv, hgrm")]
    UnknownFormat(String),
    /// An output file could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// plotters failed to draw or encode a chart.
    #[error("cannot draw chart `{chart}`: {message}")]
    Draw {
        /// The chart's file stem.
        chart: String,
        /// plotters' message.
        message: String,
    },
    /// The bundled font could not be parsed (a broken build, not bad input).
    #[error("the bundled chart font cannot be loaded")]
    Font,
}

impl ReportError {
    /// True when the error is about the input (a missing, malformed or foreign file, or an
    /// unknown format name) rather than about writing the output: the CLI exits with 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ReportError::Read { .. }
                | ReportError::Json { .. }
                | ReportError::NotARecord { .. }
                | ReportError::Schema { .. }
                | ReportError::Histogram { .. }
                | ReportError::UnknownFormat(_)
        )
    }
}
