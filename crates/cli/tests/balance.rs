//! `balance` end to end: the binary with real balancer, backend and store processes, one
//! tiny plan per store, a membership change in both `on_change` modes, and what is left after
//! a `kill -9` of the runner.
//!
//! Each test gives the binary its own `TMPDIR`, so the stores' work folders and servers it
//! makes can be found (and must be gone) afterwards without looking at anyone else's.
//! No assertion depends on timing.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

/// A temporary folder the stores' servers can traverse (PostgreSQL runs as `postgres` when we
/// are root).
fn temp_parent() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("ipcbench-balance-test-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn ipcbench(tmp: &Path) -> Command {
    let mut cmd = Command::cargo_bin("ipcbench").expect("binary built");
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    cmd.env("TMPDIR", tmp);
    cmd.timeout(Duration::from_secs(120));
    cmd
}

fn cores() -> &'static str {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2 {
        "[0, 1]"
    } else {
        "[0, 0]"
    }
}

fn plan(state: &str, extra: &str) -> String {
    format!(
        r#"
name = "balance-test"
repetitions = 1
warmup = "100ms"
duration = "600ms"
cores = {}

[[scenario]]
kind = "balance"
transports = ["uds"]
message_bytes = 64
connections = 40
clients = 10
rate_per_connection_hz = 20
backends = 2
state = "{state}"
{extra}
"#,
        cores()
    )
}

/// Runs `plan` with `tmp` as the temp dir; returns the output and `run.json`.
fn run_plan(tmp: &Path, plan: &str) -> (Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(&plan_path, plan).unwrap();
    let out = dir.path().join("out");
    let output = ipcbench(tmp)
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

/// Store work folders under `tmp` (at any depth up to 2).
fn store_folders(tmp: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![(tmp.to_owned(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with("ipcbench-store-") {
                found.push(path);
            } else if depth < 2 && path.is_dir() {
                dirs.push((path, depth + 1));
            }
        }
    }
    found
}

/// Processes whose command line names `tmp` (a store's server started under it).
fn processes_under(tmp: &Path) -> Vec<String> {
    let needle = tmp.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if cmdline.contains(&needle) && !zombie {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn wait_until_gone(tmp: &Path, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = processes_under(tmp);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where a server binary should be, when it is not there (the case is then unsupported).
fn missing_binary(state: &str) -> Option<String> {
    let on_path = |name: &str| {
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
    };
    match state {
        "redis" if !on_path("redis-server") => Some("redis-server".into()),
        "postgres" => {
            let found = std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .any(|v| v.path().join("bin/postgres").is_file())
                || on_path("postgres");
            (!found).then(|| "postgres".into())
        }
        _ => None,
    }
}

fn check_store(state: &str) {
    let tmp = temp_parent();
    let (output, record) = run_plan(tmp.path(), &plan(state, "policy = \"round-robin\""));
    let case = &record["cases"][0];
    if let Some(binary) = missing_binary(state) {
        assert_eq!(case["status"], "unsupported", "{}", text(&output));
        assert!(!case["reason"].as_str().unwrap_or("").is_empty(), "{case}");
        eprintln!("skipped: {binary} is not installed here ({})", case["reason"]);
        return;
    }
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(case["status"], "ok", "{case}");
    let extra = &case["extra"];
    assert_eq!(extra["lost_updates"], 0.0, "{extra}");
    for key in [
        "state_p50_ns",
        "state_p99_ns",
        "backend_share_max_over_mean",
        "balancer_cpu_ns_per_request",
        "backends_cpu_ns_per_request",
        "stale_reads",
        "broken_connections",
    ] {
        assert!(extra[key].is_number(), "{key} missing from {extra}");
    }
    assert!(extra["state_p50_ns"].as_f64().unwrap() > 0.0, "{extra}");
    let trial = &case["trials"][0];
    assert!(trial["latency_corrected_ns"]["p50"].is_number(), "{trial}");
    assert!(trial["histogram_corrected_v2"].is_string(), "{trial}");
    if state == "local" {
        // Round-robin sends a client's requests to both backends' own maps.
        assert!(case["flags"].to_string().contains("INCORRECT BY DESIGN"), "{case}");
    } else {
        assert_eq!(
            extra["stale_reads"], 0.0,
            "a shared store never repeats a counter: {extra}"
        );
    }
    if matches!(state, "redis" | "postgres") {
        assert!(extra["store_cpu_ns_per_request"].is_number(), "{extra}");
    }
    assert_eq!(store_folders(tmp.path()), Vec::<PathBuf>::new());
    assert_eq!(
        wait_until_gone(tmp.path(), Duration::from_secs(5)),
        Vec::<String>::new()
    );
}

#[test]
fn local_state_runs_and_counts_stale_reads() {
    check_store("local");
}

#[test]
fn shm_state_runs_and_loses_no_update() {
    check_store("shm");
}

#[test]
fn sqlite_state_runs_and_leaves_no_file() {
    check_store("sqlite");
}

#[test]
fn redis_state_runs_and_leaves_no_server() {
    check_store("redis");
}

#[test]
fn postgres_state_runs_and_leaves_no_cluster() {
    check_store("postgres");
}

#[test]
fn membership_change_records_broken_connections_in_both_modes() {
    let tmp = temp_parent();
    let extra = "policy = \"connection\"\nadd_backend_at = \"200ms\"\non_change = [\"keep\", \"rehash\"]";
    let (output, record) = run_plan(tmp.path(), &plan("shm", extra));
    assert!(output.status.success(), "{}", text(&output));
    let cases = record["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "{record}");
    for case in cases {
        assert_eq!(case["status"], "ok", "{case}");
        let extra = &case["extra"];
        assert_eq!(extra["lost_updates"], 0.0, "{extra}");
        assert!(extra["broken_connections"].is_number(), "{extra}");
        assert!(extra["failed_requests"].is_number(), "{extra}");
        let id = case["id"].as_str().unwrap();
        // 40 connections on 2 backends, a third joins: rehash moves a third of them.
        if id.contains("on_change=rehash") {
            assert!(extra["broken_connections"].as_f64().unwrap() > 0.0, "{id}: {extra}");
        } else {
            assert_eq!(extra["broken_connections"], 0.0, "{id}: {extra}");
        }
    }
}

#[test]
fn bad_balance_input_exits_2_with_the_position() {
    let tmp = temp_parent();
    let dir = tempfile::tempdir().unwrap();
    for (bad, position) in [
        ("backends = 2", "backends = 0"),
        ("state = \"shm\"", "state = \"mysql\""),
    ]
    .map(|(from, to)| (plan("shm", "policy = \"round-robin\"").replace(from, to), to))
    {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, &bad).unwrap();
        let output = ipcbench(tmp.path())
            .args(["run", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        let line = bad.lines().position(|l| l == position).unwrap() + 1;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("bad.toml:{line}:")), "{stderr}");
    }
}

#[test]
fn a_killed_runner_leaves_no_server_and_no_store_folder() {
    for (state, server) in [("redis", "redis-server"), ("postgres", "bin/postgres")] {
        check_kill_9(state, server);
    }
}

/// Kills the runner with SIGKILL while `server` (a part of its command line) runs.
fn check_kill_9(state: &str, server: &str) {
    let tmp = temp_parent();
    if let Some(binary) = missing_binary(state) {
        eprintln!("skipped: {binary} is not installed here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(
        &plan_path,
        plan(state, "policy = \"client-hash\"").replace("duration = \"600ms\"", "duration = \"30s\""),
    )
    .unwrap();
    let mut runner = std::process::Command::new(assert_cmd::cargo::cargo_bin("ipcbench"))
        .args(["run", plan_path.to_str().unwrap(), "--out"])
        .arg(dir.path().join("out"))
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the server to run under our temp dir, then kill the runner mid-case.
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_under(tmp.path()).iter().all(|p| !p.contains(server)) {
        assert!(Instant::now() < deadline, "{server} never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    runner.kill().unwrap();
    runner.wait().unwrap();
    // A peer started just before the kill may miss its death signal and go only when its
    // connect times out (10 s).
    assert_eq!(
        wait_until_gone(tmp.path(), Duration::from_secs(20)),
        Vec::<String>::new()
    );
    // The run's clean-up watcher sweeps the store's folder once the run is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store_folders(tmp.path()).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(store_folders(tmp.path()), Vec::<PathBuf>::new());
    // And a run after it starts clean.
    let (output, _) = run_plan(tmp.path(), &plan("local", "policy = \"client-hash\""));
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(store_folders(tmp.path()), Vec::<PathBuf>::new());
}

#[test]
fn a_store_that_dies_mid_trial_fails_the_case_with_its_message() {
    let tmp = temp_parent();
    if missing_binary("redis").is_some() {
        eprintln!("skipped: redis-server is not installed here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.toml");
    std::fs::write(
        &plan_path,
        plan("redis", "policy = \"round-robin\"").replace("duration = \"600ms\"", "duration = \"20s\""),
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut runner = std::process::Command::new(assert_cmd::cargo::cargo_bin("ipcbench"))
        .args(["run", plan_path.to_str().unwrap(), "--out"])
        .arg(&out)
        .env("TMPDIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let server = loop {
        if let Some(line) = processes_under(tmp.path())
            .into_iter()
            .find(|p| p.contains("redis-server"))
        {
            break line.split(':').next().unwrap().parse::<u32>().unwrap();
        }
        assert!(Instant::now() < deadline, "redis-server never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    // The trial runs once the balancer is up (it starts after the store and the backends).
    while processes_under(tmp.path())
        .iter()
        .all(|p| !p.contains("\"role\":\"balancer\""))
    {
        assert!(Instant::now() < deadline, "the balancer never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    // The store dies under the running trial.
    std::process::Command::new("kill")
        .args(["-9", &server.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = runner.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not end after its store died");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(1));
    let record: Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let case = &record["cases"][0];
    assert_eq!(case["status"], "failed", "{case}");
    let reason = case["reason"].as_str().unwrap();
    assert!(reason.contains("the redis store failed: redis"), "{reason}");
    assert_eq!(store_folders(tmp.path()), Vec::<PathBuf>::new());
    assert_eq!(
        wait_until_gone(tmp.path(), Duration::from_secs(5)),
        Vec::<String>::new()
    );
}
