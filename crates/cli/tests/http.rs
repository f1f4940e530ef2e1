//! The `http` scenario end to end with real processes and sockets: the built-in relay, nginx
//! started by the harness (`relay = "nginx"`), and bad plans. Figures are checked for presence
//! and consistency of counts, never for their size.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use serde_json::Value;

fn ipcbench() -> Command {
    let mut cmd = Command::cargo_bin("ipcbench").expect("binary built");
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    cmd.timeout(Duration::from_secs(60));
    cmd
}

/// `[0, 1]` where there are two cores, else both sides on core 0.
fn cores() -> &'static str {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        "[0, 1]"
    } else {
        "[0, 0]"
    }
}

/// Runs `plan` through the binary and returns the process output and `run.json`.
fn run_plan(plan: &str) -> (Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(&plan_path, plan).unwrap();
    let out = dir.path().join("out");
    let output = ipcbench()
        .args(["run", plan_path.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let record = std::fs::read(out.join("run.json"))
        .map(|bytes| serde_json::from_slice(&bytes).unwrap())
        .unwrap_or(Value::Null);
    (output, record)
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn number(value: &Value, key: &str) -> f64 {
    value[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` missing in {value:#}"))
}

fn tiny_plan(extra: &str) -> String {
    format!(
        r#"
name = "http-test"
repetitions = 1
warmup = "100ms"
duration = "400ms"
cores = {}

[[scenario]]
kind = "http"
front = ["h2"]
back = ["h1"]
response_bytes = 1024
connections = 2
streams = 4
pool_connections = 2
{extra}
"#,
        cores()
    )
}

#[test]
fn h2_to_h1_records_every_figure_with_consistent_counts() {
    let (output, record) = run_plan(&tiny_plan("cache_hit_ratio = 0.5"));
    assert!(output.status.success(), "{}", text(&output));
    let case = &record["cases"][0];
    assert_eq!(case["status"], "ok", "{}", case["reason"]);
    assert_eq!(case["scenario"], "http");
    assert_eq!(case["transport"], "tcp");
    assert!(case["id"].as_str().unwrap().contains("/front=h2/back=h1/"));
    let trial = &case["trials"][0];
    for key in ["histogram_v2", "histogram_corrected_v2"] {
        assert!(trial[key].is_string(), "{key}");
    }
    assert!(trial["latency_ns"]["p50"].as_f64().unwrap() > 0.0);
    assert!(trial["latency_corrected_ns"]["p99"].as_f64().unwrap() > 0.0);
    let extra = &trial["extra"];
    let hop = number(extra, "hop_added_p50_ns");
    let direct = number(extra, "direct_p50_ns");
    let corrected_p50 = trial["latency_corrected_ns"]["p50"].as_f64().unwrap();
    assert!((corrected_p50 - direct - hop).abs() < 1.0, "hop = relayed - direct");
    let requests = number(extra, "relayed_requests");
    assert_eq!(requests, trial["messages"].as_f64().unwrap());
    assert_eq!(
        number(extra, "relay_requests_in"),
        requests,
        "the relay saw every request"
    );
    assert_eq!(
        number(extra, "relay_requests_out"),
        number(extra, "origin_back_requests"),
        "every forwarded request reached the origin's back listener"
    );
    assert!(
        number(extra, "origin_back_requests") < requests,
        "hits never reach the origin"
    );
    assert_eq!(number(extra, "relay_upstream_errors"), 0.0);
    let upstream = number(extra, "upstream_connections");
    assert!(
        (1.0..=2.0).contains(&upstream),
        "{upstream} upstream connections, pool of 2"
    );
    for key in [
        "hop_added_p99_ns",
        "requests_per_s_in",
        "requests_per_s_out",
        "relay_cpu_ns_per_request",
        "pool_wait_p99_ns",
        "front_wire_bytes_per_request",
        "back_wire_bytes_per_request",
        "miss_penalty_p50_ns",
    ] {
        assert!(extra[key].is_f64(), "`{key}` missing in {extra:#}");
    }
    assert!(number(extra, "requests_per_s_in") > number(extra, "requests_per_s_out"));
    let summary_extra = &case["extra"];
    for key in [
        "hop_added_p50_ns",
        "hop_added_p50_ns_lo",
        "hop_added_p50_ns_hi",
        "hop_added_p99_ns_lo",
        "relay_cpu_ns_per_request",
        "front_wire_bytes_per_request",
    ] {
        assert!(summary_extra[key].is_f64(), "case extra `{key}`");
    }
    assert!(case["summary"]["ci95"]["hop_added_p50_ns"].is_array());
    assert_eq!(summary_extra["path"], "h2->h1");
}

#[test]
fn without_keep_alive_handshakes_are_counted() {
    let (output, record) = run_plan(&tiny_plan("keep_alive = false\nback_transport = \"uds\""));
    assert!(output.status.success(), "{}", text(&output));
    let case = &record["cases"][0];
    assert_eq!(case["status"], "ok", "{}", case["reason"]);
    assert_eq!(case["transport"], "tcp->uds");
    let extra = &case["trials"][0]["extra"];
    let handshakes = number(extra, "handshakes_per_s");
    let requests = number(extra, "requests_per_s_in");
    assert!(handshakes > 0.0);
    assert!(
        (handshakes - requests).abs() < 1e-6 * requests,
        "one connection per request: {handshakes} vs {requests}"
    );
}

#[test]
fn bad_http_plans_exit_2_with_the_key_position() {
    for (extra, message) in [
        ("pool_connections = 0", "pool_connections"),
        ("cache_hit_ratio = 1.5", "outside 0..=1"),
        ("streams = 100000", "concurrent streams"),
    ] {
        let plan = tiny_plan("").replace(&format!("{}\n", extra.split(" = ").next().unwrap()), "");
        // A later duplicate key would be a TOML error; replace the existing one instead.
        let key = extra.split(" = ").next().unwrap();
        let plan = match plan.lines().find(|l| l.starts_with(&format!("{key} ="))) {
            Some(line) => plan.replace(line, extra),
            None => format!("{plan}{extra}\n"),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.toml");
        std::fs::write(&path, &plan).unwrap();
        let output = ipcbench()
            .args(["run", path.to_str().unwrap(), "--dry-run"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{extra}: {}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = plan.lines().position(|l| l == extra).unwrap() + 1;
        assert!(stderr.contains(&format!("plan.toml:{line}:")), "{extra}: {stderr}");
        assert!(stderr.contains(message), "{extra}: {stderr}");
    }
    let plan = tiny_plan("").replace("front = [\"h2\"]", "front = [\"h3\"]");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.toml");
    std::fs::write(&path, &plan).unwrap();
    let output = ipcbench()
        .args(["run", path.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown protocol `h3`"));
}

#[test]
fn an_external_relay_that_does_not_answer_fails_the_case_quickly() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let started = std::time::Instant::now();
    let (output, record) = run_plan(&tiny_plan(&format!(
        "relay = \"127.0.0.1:{port}\"\norigin_listen = \"127.0.0.1:0\""
    )));
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let case = &record["cases"][0];
    assert_eq!(case["status"], "failed");
    assert!(case["reason"].as_str().unwrap().contains("relay"), "{}", case["reason"]);
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// h2 -> nginx -> h1 against ipcbench's own origin; nginx is started by the harness from the
/// plan's `relay = "nginx"` (Debian's package, which `.ci/run` installs).
#[test]
fn h2_through_nginx_records_the_hop_and_the_relay_cpu() {
    if ipcbench_http::find_nginx().is_err() {
        println!("skipped: nginx is not installed");
        return;
    }
    let (output, record) = run_plan(&tiny_plan("relay = \"nginx\""));
    assert!(output.status.success(), "{}", text(&output));
    let case = &record["cases"][0];
    assert_eq!(case["status"], "ok", "{}", case["reason"]);
    assert!(case["id"].as_str().unwrap().contains("/relay=nginx/"));
    assert_eq!(case["extra"]["relay"], "nginx");
    let extra = &case["trials"][0]["extra"];
    assert!(extra["hop_added_p50_ns"].is_f64(), "{extra:#}");
    assert!(number(extra, "relay_cpu_ns_per_request") >= 0.0);
    assert!(
        number(extra, "origin_back_requests") > 0.0,
        "nginx forwarded to the origin"
    );
    assert!(number(extra, "upstream_connections") >= 1.0);
    assert!(case["extra"]["hop_added_p50_ns"].is_f64());
    assert!(case["extra"]["relay_cpu_ns_per_request"].is_f64());
}
