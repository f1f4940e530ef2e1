//! The charts: which ones a record gets, and drawing each into PNG and SVG.
//!
//! Each chart is a value built from the record alone (no clock, no machine), drawn by the same
//! generic code onto plotters' bitmap and SVG backends, so the two files always agree and a
//! record rendered twice gives the same bytes.

pub(crate) mod axis;
mod balance;
mod capacity;
pub(crate) mod comparison;
mod conn_cost;
mod cpu;
pub(crate) mod frame;
mod http;
mod latency;
mod load;
mod spectrum;
pub(crate) mod style;
mod text;
mod throughput;
mod window;

mod common;
mod figure;

pub use common::ChartInfo;
pub use figure::{chart_list, comparison_svgs, render_comparison};
pub(crate) use figure::{draw, figures};
