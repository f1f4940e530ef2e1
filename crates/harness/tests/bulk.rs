//! `stream` and `rpc` end to end over the baselines (a thread peer and no peer): real trials,
//! confirmed byte counts, windows that keep requests in flight, and honest refusals.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ipcbench_harness::dispatch::BaselineDispatch;
use ipcbench_harness::env::BuildInfo;
use ipcbench_harness::plan::{Overrides, Plan};
use ipcbench_harness::runner::{self, RunOptions};
use ipcbench_harness::session::PeerCommand;
use ipcbench_record::{RunRecord, Status};

fn run(plan_text: &str) -> RunRecord {
    let n_cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(2);
    let plan = Plan::parse("test", plan_text, &Overrides::default(), n_cores).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        // Baselines never start a process; a command that would fail loudly if they did.
        peer_command: PeerCommand {
            program: "/nonexistent/ipcbench".into(),
            args: vec![],
        },
        work_dir: dir.path().to_owned(),
        build: BuildInfo::default(),
        stop: Arc::new(AtomicBool::new(false)),
        agents: Vec::new(),
    };
    runner::run(&plan, &BaselineDispatch, &options, &mut |_, _| {})
}

#[test]
fn stream_moves_exactly_total_bytes_and_reports_cpu_per_byte() {
    let record = run(r#"
name = "stream-test"
repetitions = 2
warmup = 50
cores = [0, 1]

[[scenario]]
kind = "stream"
transports = ["inproc", "null"]
message_bytes = [64, 65536]
total_bytes = "4MiB"
"#);
    assert_eq!(record.cases.len(), 4);
    for case in &record.cases {
        assert_eq!(case.status, Status::Ok, "{}: {:?}", case.id, case.reason);
        assert_eq!(case.total_bytes, Some(4 << 20));
        assert_eq!(case.reply_bytes, None, "{}", case.id);
        for trial in &case.trials {
            assert_eq!(trial.bytes, 4 << 20, "{}", case.id);
            assert_eq!(trial.messages, (4 << 20) / case.message_bytes, "{}", case.id);
            assert!(trial.bytes_per_s > 0.0 && trial.elapsed_ns > 0);
            assert!(trial.latency_ns.is_none());
            // The thread peer confirmed the bytes and reports its own CPU; no peer reports nothing.
            assert_eq!(trial.server.is_some(), case.transport == "inproc", "{}", case.id);
            assert!(!trial.extra.contains_key("server_stream_digest"), "{:?}", trial.extra);
        }
        let summary = case.summary.as_ref().unwrap();
        assert!(summary.bytes_per_s > 0.0 && summary.messages_per_s > 0.0);
        assert!(summary.cpu_ns_per_byte.is_some(), "{}", case.id);
        assert!(summary.ci95.contains_key("bytes_per_s"));
    }
}

#[test]
fn stream_without_total_bytes_runs_for_the_measured_phase() {
    let record = run(r#"
name = "stream-time"
repetitions = 1
warmup = "10ms"
duration = "50ms"
cores = [0, 1]

[[scenario]]
kind = "stream"
transports = ["inproc"]
message_bytes = 4096
"#);
    let case = &record.cases[0];
    assert_eq!(case.status, Status::Ok, "{:?}", case.reason);
    let trial = &case.trials[0];
    assert!(trial.messages > 0);
    assert_eq!(trial.bytes, trial.messages * 4096);
}

#[test]
fn rpc_keeps_a_window_in_flight_and_times_every_request() {
    let record = run(r#"
name = "rpc-test"
repetitions = 1
warmup = 100
messages = 500
cores = [0, 1]

[[scenario]]
kind = "rpc"
transports = ["inproc"]
message_bytes = [64, 100000]
reply_bytes = 32
window = [1, 8, 64]
"#);
    assert_eq!(record.cases.len(), 6);
    for case in &record.cases {
        assert_eq!(case.status, Status::Ok, "{}: {:?}", case.id, case.reason);
        for trial in &case.trials {
            assert_eq!(trial.messages, 500, "{}", case.id);
            assert_eq!(trial.bytes, 500 * (case.message_bytes + 32));
            let l = trial.latency_ns.unwrap();
            assert!(l.min <= l.p50 && l.p50 <= l.max, "{}: {l:?}", case.id);
            assert!(trial.histogram_v2.is_some());
            assert!(trial.client.unwrap().cpu_ns() > 0, "{}", case.id);
            assert!(trial.server.is_some());
        }
        assert!(case.summary.as_ref().unwrap().messages_per_s > 0.0);
    }
}

#[test]
fn rpc_without_a_peer_runs_stop_and_wait_and_refuses_a_window() {
    let record = run(r#"
name = "rpc-null"
repetitions = 1
warmup = 10
messages = 500

[[scenario]]
kind = "rpc"
transports = ["null"]
message_bytes = 64
window = [1, 4]
"#);
    let by_window = |w: u64| record.cases.iter().find(|c| c.window == Some(w)).unwrap();
    assert_eq!(by_window(1).status, Status::Ok, "{:?}", by_window(1).reason);
    assert_eq!(by_window(1).trials[0].messages, 500);
    let refused = by_window(4);
    assert_eq!(refused.status, Status::Unsupported);
    assert!(
        refused.reason.as_deref().unwrap().contains("cannot split"),
        "{:?}",
        refused.reason
    );
}

#[test]
fn zero_byte_stream_is_unsupported_with_a_reason() {
    let record = run(r#"
name = "stream-zero"
repetitions = 1
warmup = 1

[[scenario]]
kind = "stream"
transports = ["inproc"]
message_bytes = 0
total_bytes = 1024
"#);
    assert_eq!(record.cases[0].status, Status::Unsupported);
    assert!(record.cases[0].reason.as_deref().unwrap().contains("at least 1"));
}
