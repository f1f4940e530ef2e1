//! Run plans: the TOML format, validation with `file:line:column` errors, and expansion of a
//! plan into its case matrix.
//!
//! A plan file names scenarios, each with a list of transports and sizes; transport options
//! live in `[transport.<name>]` tables, where any option may be a list (a case dimension, e.g.
//! `send_buffer_bytes = ["default", 1024]`). Unknown keys are errors. [`Plan::parse`] returns
//! the expanded [`Plan`]; every error it returns is a [`ConfigError`] naming the file, line and
//! column, what is wrong, and what is allowed.
//!
//! Bottom to top: `units` (how values are written), `kinds` (what they name), `case` (one
//! expanded case), `set` (`--set KEY=VALUE` on the document), `parse` (the file, its errors
//! and the expansion), `one_case` (one expanded case written back as a plan), `estimate`
//! (run time).

mod case;
mod estimate;
mod kinds;
pub mod limits;
mod one_case;
mod parse;
mod set;
mod units;

pub use case::{
    BALANCE_MIN_MESSAGE_BYTES, BalanceOptions, Case, CorePair, DEFAULT_BALANCE_CONNECTIONS, DEFAULT_SLO_P99,
    DEFAULT_SOURCE_BASE, DEFAULT_STATE_BYTES, FleetOptions, SearchOptions, shares,
};
pub use estimate::estimate_trial;
pub use kinds::*;
pub use one_case::one_case_plan;
pub use parse::{ConfigError, DEFAULT_PLAN, Overrides, Plan, default_placements};
pub use set::PlanSet;
pub use units::*;
