//! The bottom of ipcbench's measuring side: what a run record is, the statistics over it, and
//! how a case record is finished from its trials.
//!
//! - [`schema`]: the `run.json` types ([`RunRecord`], [`CaseRecord`], [`Trial`], [`Summary`]),
//!   schema `ipcbench.run/1`. Every field's unit is in its name.
//! - [`stats`]: HdrHistogram percentiles, medians, bootstrap intervals, Mann-Whitney U, the
//!   Wilcoxon signed-rank test of paired differences, least
//!   squares. Pure functions over numbers; they know nothing of trials or plans.
//! - [`finish`]: one function, [`finish::finish_case`], that turns a case's trials into its
//!   summary, flags, fraction of the physical limit and scenario figures. The runner calls it
//!   after every trial and the gate calls it on pooled re-runs, so both get the same figures.
//! - [`units`]: figures as people read them (`12.3 µs`, `64 KiB`, `1.25 GB/s`), one set of
//!   formatters for the terminal, Markdown, HTML and CSV renderings and the gate's verdicts.
//! - [`case_id`]: the case identity as a typed value ([`CaseId`]), written and parsed in one
//!   place.
//!
//! This crate depends on no other workspace crate: the harness, the gate and the report all
//! build on it, and it on none of them.
#![forbid(unsafe_code)]

pub mod case_id;
pub mod finish;
pub mod schema;
pub mod stats;
pub mod units;

pub use case_id::{CaseId, CaseIdError};
pub use schema::*;
