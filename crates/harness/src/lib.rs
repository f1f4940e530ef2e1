//! Plans, process orchestration, scenarios, clock, statistics and result records.
//!
//! The flow: [`plan::Plan::parse`] turns a TOML plan into cases; [`runner::run`] runs their
//! trials in interleaved rounds, each trial ([`trial::run_trial`]) a fresh peer — a separate
//! process of the same binary, which calls [`peer::serve`] — and returns a
//! [`ipcbench_record::RunRecord`], the content of `run.json`.
//!
//! The harness never names a concrete transport: the CLI implements [`dispatch::Dispatch`],
//! mapping [`plan::TransportSettings`] to a transport type, and the harness's generic
//! [`dispatch::TransportVisitor`] runs the timed loops monomorphically for that type.
#![forbid(unsafe_code)]

pub mod affinity;
pub mod agent;
pub mod agent_wire;
pub mod calibration;
pub mod clock;
pub mod delay_line;
pub mod dispatch;
pub mod env;
pub mod fdlimit;
pub mod netns;
pub mod peer;
pub mod plan;
pub mod process;
pub mod procstat;
pub mod protocol;
pub mod remote;
pub mod runner;
pub mod rusage;
pub mod scenario;
pub mod session;
pub mod trial;
