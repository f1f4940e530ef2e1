//! The new run's figures for outside tools, one file per format behind [`Exporter`]:
//! github-action-benchmark's custom JSON ([`GithubBenchmark`]) and Bencher's BMF ([`Bmf`]).

mod bmf;
mod exporter;
mod figures;
mod github;

pub use bmf::Bmf;
pub use exporter::Exporter;
pub use github::GithubBenchmark;
