//! The bare loop through the binary: pingpong and stream trials over real peer processes
//! alternate with the transport's bare loop and record `summary.bare` and
//! `summary.overhead_vs_bare`; `bare = false` leaves both out; a transport without a bare loop
//! says so and still runs. Nothing here looks at the figures' size: timing never decides a test.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

/// The transports with a bare loop, as plan lists.
const WITH_BARE: &str = r#"["tcp", "uds", "pipe", "shm"]"#;

fn run_plan(plan: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(&plan_path, plan).unwrap();
    let out = dir.path().join("out");
    let output = Command::cargo_bin("ipcbench")
        .expect("binary built")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .timeout(std::time::Duration::from_secs(180))
        .arg("run")
        .arg(&plan_path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap()
}

fn plan(transports: &str, bare: Option<bool>) -> String {
    let bare = bare.map(|b| format!("bare = {b}\n")).unwrap_or_default();
    format!(
        r#"name = "bare"
repetitions = 1
warmup = 50
messages = 400
cores = [0, 1]

[[scenario]]
kind = "pingpong"
transports = {transports}
message_bytes = [64]
{bare}
[[scenario]]
kind = "stream"
transports = {transports}
message_bytes = [4096]
total_bytes = "1MiB"
{bare}
[transport.shm]
wait = "hybrid"
"#
    )
}

#[test]
fn pingpong_and_stream_record_their_bare_loop_and_overhead() {
    let record = run_plan(&plan(WITH_BARE, None));
    let cases = record["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2 * 4);
    for case in cases {
        let id = case["id"].as_str().unwrap();
        assert_eq!(case["status"], "ok", "{id}: {case}");
        let summary = &case["summary"];
        let bare = summary["bare"]
            .as_f64()
            .unwrap_or_else(|| panic!("{id}: no summary.bare"));
        let overhead = summary["overhead_vs_bare"]
            .as_f64()
            .unwrap_or_else(|| panic!("{id}: no summary.overhead_vs_bare"));
        assert!(bare > 0.0 && overhead > 0.0, "{id}: {bare} {overhead}");
        let trial = &case["trials"][0]["extra"];
        let key = if case["scenario"] == "pingpong" {
            "bare_p50_ns"
        } else {
            "bare_bytes_per_s"
        };
        assert!(trial[key].as_f64().is_some_and(|v| v > 0.0), "{id}: {trial}");
    }
}

#[test]
fn bare_false_removes_the_figures_and_a_transport_without_one_says_so() {
    let record = run_plan(&plan(WITH_BARE, Some(false)));
    for case in record["cases"].as_array().unwrap() {
        assert_eq!(case["status"], "ok", "{case}");
        assert!(case["summary"].get("bare").is_none(), "{case}");
        assert!(case["summary"].get("overhead_vs_bare").is_none(), "{case}");
        assert!(case["trials"][0].get("extra").is_none(), "{case}");
    }
    let record = run_plan(&plan(r#"["inproc"]"#, None));
    for case in record["cases"].as_array().unwrap() {
        assert_eq!(case["status"], "ok", "{case}");
        assert_eq!(case["extra"]["bare"], "unsupported", "{case}");
        assert!(case["summary"].get("overhead_vs_bare").is_none(), "{case}");
    }
}
