//! The binary as a user runs it: real peer processes, real files, real exit codes.

use std::path::Path;

use assert_cmd::Command;

fn ipcbench() -> Command {
    let mut cmd = Command::cargo_bin("ipcbench").expect("binary built");
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    cmd.timeout(std::time::Duration::from_secs(120));
    cmd
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn smoke_plan_runs_every_transport_in_separate_processes() {
    let out = tempfile::tempdir().unwrap();
    let output = ipcbench()
        .args([
            "run",
            "bench-configs/smoke.toml",
            "--repetitions",
            "1",
            "--duration",
            "30ms",
            "--warmup",
            "5ms",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "stderr: {}", stderr_of(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("p99.9") && stdout.contains("CPU/msg"),
        "table header missing: {stdout}"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(record["schema"], "ipcbench.run/1");
    assert!(record["clock"]["overhead_ns"].as_f64().unwrap() > 0.0);
    assert!(record["environment"]["cores"].as_u64().unwrap() >= 1);
    let cases = record["cases"].as_array().unwrap();
    for transport in ["tcp", "uds", "pipe", "inproc", "null"] {
        let of_transport: Vec<_> = cases.iter().filter(|c| c["transport"] == transport).collect();
        assert!(!of_transport.is_empty(), "no {transport} case");
        for case in of_transport {
            assert_eq!(case["status"], "ok", "{}: {}", case["id"], case["reason"]);
            let l = &case["summary"]["latency_ns"];
            let get = |k: &str| l[k].as_f64().unwrap();
            assert!(
                get("min") <= get("p50") && get("p50") <= get("p99") && get("p99") <= get("max"),
                "{l}"
            );
            assert!(case["summary"]["cpu_ns_per_message"].as_f64().unwrap() > 0.0);
        }
    }
    let tcp = cases.iter().find(|c| c["transport"] == "tcp").unwrap();
    assert_eq!(tcp["applied_options"]["nodelay"], true);
    assert_eq!(tcp["peer_mode"], "process");
    assert!(
        tcp["trials"][0]["server"]["user_ns"].is_u64(),
        "the peer process reports its CPU"
    );
    // Core placement is read back on both sides.
    let cross = cases
        .iter()
        .find(|c| c["transport"] == "uds" && c["cores"]["label"] == "cross-core");
    if let Some(cross) = cross {
        assert_eq!(cross["cores"]["client_applied"], serde_json::json!([0]));
        assert_eq!(cross["cores"]["server_applied"], serde_json::json!([1]));
    }
    // No staging folders or socket files are left behind.
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().starts_with('.')), "{left:?}");
}

#[test]
fn misspelled_key_is_exit_2_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("bad.toml");
    std::fs::write(
        &plan,
        "name = \"bad\"\n\n[[scenario]]\nkind = \"pingpong\"\ntransprts = [\"tcp\"]\n",
    )
    .unwrap();
    let output = ipcbench().arg("run").arg(&plan).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("bad.toml:5:1:"), "{stderr}");
    assert!(
        stderr.contains("unknown field `transprts`") && stderr.contains("`transports`"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one clear error: {stderr}");
}

#[test]
fn bad_flags_are_exit_2() {
    for args in [
        vec!["run", "--dry-run", "--transports", "tcp,smoke-signals"],
        vec!["run", "--dry-run", "--sizes", "64,12XB"],
        vec!["run", "--dry-run", "--duration", "soon"],
        vec!["run", "no/such/plan.toml"],
        vec!["run", "--no-such-flag"],
    ] {
        let output = ipcbench().args(&args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr_of(&output));
        assert!(!stderr_of(&output).contains("panicked"), "{args:?}");
    }
}

#[test]
fn dry_run_of_the_default_plan_lists_cases_and_an_estimate() {
    let output = ipcbench().args(["run", "--dry-run"]).output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("plan `default` from built-in default"), "{stdout}");
    assert!(
        stdout.contains("pingpong/tcp/64B/c0s1") || stdout.contains("pingpong/tcp/64B/c0s0"),
        "{stdout}"
    );
    assert!(stdout.contains("estimated run time"), "{stdout}");
}

#[test]
fn list_names_every_transport_and_scenario() {
    let output = ipcbench().arg("list").output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for name in [
        "tcp",
        "uds",
        "pipe",
        "shm",
        "inproc",
        "null",
        "pingpong",
        "stream",
        "send_buffer_bytes",
        "delay_ns",
    ] {
        assert!(stdout.contains(name), "{name} missing from:\n{stdout}");
    }
}
