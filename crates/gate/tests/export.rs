//! The exports on a hand-built record whose figures are round numbers, so every expected value
//! can be read off the trials: three trials per case, the median the middle one, and the 95%
//! bootstrap interval of three values their smallest to their largest.

mod common;

use common::{run, unfinished_case};
use ipcbench_gate::export::{Bmf, Exporter, GithubBenchmark};
use ipcbench_record::{Percentiles, RunRecord, Rusage, Status, Trial};

/// A trial of 1000 messages with this p50 (p99 twice it), rate and CPU time of the client.
fn trial(p50_ns: f64, messages_per_s: f64, cpu_ns: u64) -> Trial {
    Trial {
        latency_ns: Some(Percentiles {
            p50: p50_ns,
            p99: 2.0 * p50_ns,
            ..Percentiles::default()
        }),
        messages: 1000,
        messages_per_s,
        bytes_per_s: 64.0 * messages_per_s,
        client: Some(Rusage {
            user_ns: cpu_ns,
            ..Rusage::default()
        }),
        ..Trial::default()
    }
}

/// One `ok` case with three trials, and one failed case that no export lists.
fn record() -> RunRecord {
    let trials = vec![
        trial(1000.0, 400_000.0, 2_000_000),
        trial(1200.0, 500_000.0, 3_000_000),
        trial(1100.0, 450_000.0, 2_500_000),
    ];
    let mut failed = unfinished_case("pingpong/tcp/4096B/c0s1", Vec::new());
    failed.status = Status::Failed;
    run(vec![unfinished_case("pingpong/tcp/64B/c0s1", trials), failed])
}

#[test]
fn github_smaller_is_better_lists_latencies_and_cpu_per_message() {
    let expected = serde_json::json!([
        {"name": "pingpong/tcp/64B/c0s1 p50", "unit": "ns", "value": 1100.0, "range": "± 100",
         "extra": "median of 3 trials; 95% interval 1000 .. 1200 ns"},
        {"name": "pingpong/tcp/64B/c0s1 p99", "unit": "ns", "value": 2200.0, "range": "± 200",
         "extra": "median of 3 trials; 95% interval 2000 .. 2400 ns"},
        {"name": "pingpong/tcp/64B/c0s1 CPU/msg", "unit": "ns/message", "value": 2500.0, "range": "± 500",
         "extra": "median of 3 trials; 95% interval 2000 .. 3000 ns/message"},
    ]);
    assert_eq!(GithubBenchmark::SmallerIsBetter.document(&record()), expected);
}

#[test]
fn github_bigger_is_better_lists_throughput_only() {
    let expected = serde_json::json!([
        {"name": "pingpong/tcp/64B/c0s1 msg/s", "unit": "messages/s", "value": 450000.0, "range": "± 50000",
         "extra": "median of 3 trials; 95% interval 400000 .. 500000 messages/s"},
    ]);
    assert_eq!(GithubBenchmark::BiggerIsBetter.document(&record()), expected);
}

#[test]
fn bmf_names_each_measure_of_each_ok_case() {
    let expected = serde_json::json!({
        "pingpong/tcp/64B/c0s1": {
            "latency": {"value": 1100.0, "lower_value": 1000.0, "upper_value": 1200.0},
            "latency-p99": {"value": 2200.0, "lower_value": 2000.0, "upper_value": 2400.0},
            "throughput": {"value": 450000.0, "lower_value": 400000.0, "upper_value": 500000.0},
            "cpu-per-message": {"value": 2500.0, "lower_value": 2000.0, "upper_value": 3000.0},
        }
    });
    assert_eq!(Bmf.document(&record()), expected);
}

#[test]
fn an_export_file_is_its_document_pretty_printed() {
    let bytes = Bmf.serialize(&record()).unwrap();
    assert_eq!(bytes, serde_json::to_vec_pretty(&Bmf.document(&record())).unwrap());
    assert!(
        String::from_utf8(bytes)
            .unwrap()
            .starts_with("{\n  \"pingpong/tcp/64B/c0s1\": {\n")
    );
}
