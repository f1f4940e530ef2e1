//! The regression gate: two run records in, per-case verdicts out.
#![forbid(unsafe_code)]

pub mod compare;
