//! The runner end to end over the baseline transports (thread peer and no peer): real trials,
//! real histograms, summaries with intervals, and the case-level failure path.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ipcbench_harness::dispatch::BaselineDispatch;
use ipcbench_harness::env::BuildInfo;
use ipcbench_harness::plan::{Overrides, Plan};
use ipcbench_harness::runner::{self, RunOptions};
use ipcbench_harness::session::PeerCommand;
use ipcbench_record::Status;

const PLAN: &str = r#"
name = "baseline-test"
repetitions = 3
warmup = 200
messages = 1000
cores = [[0, 1], [0, 0]]

[[scenario]]
kind = "pingpong"
transports = ["inproc", "null"]
message_bytes = [0, 64, 70000]

[[scenario]]
kind = "pingpong"
transports = ["inproc"]
message_bytes = 26
reply_bytes = 12
"#;

fn options(dir: &std::path::Path) -> RunOptions {
    RunOptions {
        // Baselines never start a process; a command that would fail loudly if they did.
        peer_command: PeerCommand {
            program: "/nonexistent/ipcbench".into(),
            args: vec![],
        },
        work_dir: dir.to_owned(),
        build: BuildInfo::default(),
        stop: Arc::new(AtomicBool::new(false)),
        agents: Vec::new(),
    }
}

#[test]
fn baseline_plan_runs_every_case_with_consistent_figures() {
    let n_cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .max(2);
    let plan = Plan::parse("test", PLAN, &Overrides::default(), n_cores).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut progress_calls = 0;
    let record = runner::run(&plan, &BaselineDispatch, &options(dir.path()), &mut |_, _| {
        progress_calls += 1
    });
    assert_eq!(progress_calls, plan.cases.len() * 3);
    assert_eq!(record.schema, "ipcbench.run/1");
    assert!(record.clock.overhead_ns > 0.0 && record.clock.null_floor_ns > 0.0);
    for case in &record.cases {
        assert_eq!(case.status, Status::Ok, "{}: {:?}", case.id, case.reason);
        assert_eq!(case.trials.len(), 3, "{}", case.id);
        for trial in &case.trials {
            assert_eq!(trial.messages, 1000, "{}", case.id);
            let l = trial.latency_ns.unwrap();
            assert!(l.min <= l.p50 && l.p50 <= l.p99 && l.p99 <= l.max, "{}: {l:?}", case.id);
            assert!(trial.histogram_v2.is_some());
            assert!(trial.client.is_some());
            // A thread peer reports its side; no peer reports nothing.
            assert_eq!(trial.server.is_some(), case.transport == "inproc", "{}", case.id);
        }
        let summary = case.summary.as_ref().unwrap();
        let l = summary.latency_ns.unwrap();
        assert!(l.min <= l.p50 && l.p50 <= l.p99 && l.p99 <= l.max);
        let [lo, hi] = summary.ci95["latency_p50_ns"];
        assert!(lo <= l.p50 && l.p50 <= hi, "{}: {lo} <= {} <= {hi}", case.id, l.p50);
        assert!(summary.cpu_ns_per_message.unwrap() > 0.0);
    }
    let tiny = record.cases.iter().find(|c| c.reply_bytes == Some(12)).unwrap();
    assert_eq!(tiny.message_bytes, 26);
    assert_eq!(tiny.cores.label, "cross-core");
    let null: Vec<_> = record.cases.iter().filter(|c| c.transport == "null").collect();
    assert_eq!(null.len(), 3, "null runs once per size: it has no server core");
    assert!(null.iter().all(|c| c.cores.server.is_none() && c.peer_mode == "none"));
}

#[test]
fn transport_the_build_lacks_is_unsupported_and_the_run_goes_on() {
    let text = PLAN
        .replace("[\"inproc\", \"null\"]", "[\"tcp\", \"null\"]")
        .replace("repetitions = 3", "repetitions = 1");
    let plan = Plan::parse("test", &text, &Overrides::default(), 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let record = runner::run(&plan, &BaselineDispatch, &options(dir.path()), &mut |_, _| {});
    let tcp: Vec<_> = record.cases.iter().filter(|c| c.transport == "tcp").collect();
    assert!(!tcp.is_empty());
    assert!(
        tcp.iter()
            .all(|c| c.status == Status::Unsupported && c.reason.as_deref().unwrap().contains("tcp"))
    );
    assert!(
        record
            .cases
            .iter()
            .filter(|c| c.transport != "tcp")
            .all(|c| c.status == Status::Ok)
    );
}
