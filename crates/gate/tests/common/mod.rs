//! Hand-built records shared by the gate's tests: a case with given trials, a run of cases.
// Each test binary uses only some of these.
#![allow(dead_code)]

use ipcbench_record::{CaseId, CaseRecord, ClockInfo, Environment, RunRecord, SCHEMA, Trial};

/// The machine every test run comes from.
fn environment() -> Environment {
    Environment {
        hostname: "box".into(),
        cpu_model: "Test CPU @ 3.0GHz".into(),
        cores: 4,
        kernel: "6.1.0".into(),
        os: "linux x86_64".into(),
        ..Environment::default()
    }
}

/// An `ok` cross-core 64 B pingpong case with these trials and no summary yet. The transport
/// and an injected `delay_ns` are read off the id (`pingpong/null[delay=300ns]/64B/c0`).
pub fn unfinished_case(id: &str, trials: Vec<Trial>) -> CaseRecord {
    let parsed: CaseId = id.parse().expect("a case id");
    let mut transport_options = serde_json::Map::new();
    if let Some(delay) = parsed.injected_delay_ns() {
        transport_options.insert("delay_ns".into(), delay.into());
    }
    CaseRecord {
        transport_options,
        trials,
        ..CaseRecord::skeleton(id, "pingpong", &parsed.transport, 64)
    }
}

/// A run of `cases` on [`environment`].
pub fn run(cases: Vec<CaseRecord>) -> RunRecord {
    RunRecord {
        schema: SCHEMA.into(),
        name: "ci".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: "2026-01-01T00:01:00Z".into(),
        config: serde_json::json!({"name": "ci"}),
        config_source: "bench-configs/ci.toml".into(),
        config_sha256: "abc".into(),
        environment: environment(),
        clock: ClockInfo::default(),
        calibration: None,
        warnings: Vec::new(),
        interrupted: false,
        cases,
        paired: None,
        agents: Vec::new(),
    }
}
