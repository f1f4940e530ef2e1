//! Hostile but fair use: bad plans and flags exit 2 with the key's position, a FIFO plan does
//! not hang, a stopped peer fails its case within seconds, Ctrl-C stops the trial in flight,
//! `kill -9` of the runner leaves nothing behind and keeps the completed cases, a second run
//! into a locked or non-empty `--out` is refused before measuring, and the gate refuses a
//! record it cannot judge.
//!
//! Every wait has a bound far above what the behaviour needs (a stop detected in about 1 s is
//! asserted within 15 s of a 60 s trial), so the tests hold on a loaded 2-core machine.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{bin, run_bounded, text};

const SCENARIO: &str = "[[scenario]]\nkind = \"pingpong\"\ntransports = [\"null\"]\nmessage_bytes = 64\n";

#[test]
fn bad_plans_exit_2_at_validation_with_the_keys_own_position() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str)] = &[
        ("duration = \"18446744073709551615s\"\n", "plan.toml:2:1: `duration`"),
        ("warmup = \"18446744073709551615s\"\n", "plan.toml:2:1: `warmup`"),
        ("timeout = \"0s\"\n", "plan.toml:2:1: `timeout`"),
        ("messages = 18446744073709551615\n", "plan.toml:2:1: `messages`"),
        (
            "[transport.null]\ndelay_ns = 18446744073709551615\n",
            "plan.toml:3:1: [transport.null] `delay_ns`",
        ),
        (
            "[transport.shm]\nring_bytes = 0\n",
            "plan.toml:3:1: [transport.shm] `ring_bytes`",
        ),
        (
            "[transport.tcp]\nsend_buffer_bytes = \"16GiB\"\n",
            "plan.toml:3:1: [transport.tcp] `send_buffer_bytes`",
        ),
    ];
    for (top, expected) in cases {
        let plan = dir.path().join("plan.toml");
        // Top-level keys and transport tables before the scenario.
        std::fs::write(&plan, format!("name = \"p\"\n{top}{SCENARIO}")).unwrap();
        let (output, _) = run_bounded(&["run", "--dry-run", plan.to_str().unwrap()], Duration::from_secs(20));
        assert_eq!(output.status.code(), Some(2), "{top}: {}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{top}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    }
    for key in ["reply_bytes = \"5GiB\"", "server_loops = 0", "window = 0"] {
        let plan = dir.path().join("plan.toml");
        let kind = if key.starts_with("server") {
            "load"
        } else if key.starts_with("window") {
            "rpc"
        } else {
            "pingpong"
        };
        std::fs::write(
            &plan,
            format!("name = \"p\"\n{}{key}\n", SCENARIO.replace("pingpong", kind)),
        )
        .unwrap();
        let (output, _) = run_bounded(&["run", "--dry-run", plan.to_str().unwrap()], Duration::from_secs(20));
        assert_eq!(output.status.code(), Some(2), "{key}: {}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("plan.toml:6:1:"), "{key}: the key's own line: {stderr}");
    }
    let (output, _) = run_bounded(
        &["run", "--dry-run", "--duration", "300000000000y"],
        Duration::from_secs(20),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--duration"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_fifo_or_a_directory_as_the_plan_is_refused_without_reading() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("plan.toml");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (output, took) = run_bounded(&["run", "--dry-run", fifo.to_str().unwrap()], Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not a regular file"),
        "{}",
        text(&output)
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let (output, _) = run_bounded(
        &["run", "--dry-run", dir.path().to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

/// A plan of one long pingpong trial on `transport`, cross-core.
fn long_plan(dir: &Path, transport: &str, trials: u32, duration: &str) -> PathBuf {
    let plan = dir.join(format!("long-{transport}.toml"));
    std::fs::write(
        &plan,
        format!(
            "name = \"long\"\nrepetitions = {trials}\nwarmup = \"10ms\"\nduration = \"{duration}\"\ncores = [0, 1]\n\
             [[scenario]]\nkind = \"pingpong\"\ntransports = [\"{transport}\"]\nmessage_bytes = 64\n"
        ),
    )
    .unwrap();
    plan
}

fn spawn_run(plan: &Path, out: &Path) -> Child {
    Command::new(bin())
        .arg("run")
        .arg(plan)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The pids of the live children of `parent` whose command line contains `word`.
fn children(parent: u32, word: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(parent) && String::from_utf8_lossy(&cmdline).contains(word) {
            out.push(pid);
        }
    }
    out
}

/// Waits up to `limit` for a child of `parent` named `word`.
fn wait_for_child(parent: u32, word: &str, limit: Duration) -> u32 {
    let started = Instant::now();
    loop {
        if let Some(&pid) = children(parent, word).first() {
            return pid;
        }
        assert!(
            started.elapsed() < limit,
            "no `{word}` child of {parent} within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, name: &str) {
    assert!(
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
}

fn wait_bounded(child: &mut Child, limit: Duration) -> (std::process::ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the run did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stopped_peer_fails_its_case_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let plan = long_plan(dir.path(), "tcp", 1, "60s");
    let out = dir.path().join("out");
    let mut run = spawn_run(&plan, &out);
    let peer = wait_for_child(run.id(), "peer", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    signal(peer, "STOP");
    let (status, took) = wait_bounded(&mut run, Duration::from_secs(50));
    // The watchdog kills a peer stopped for 1 s; 15 s is far above that and far below 60 s.
    assert!(took < Duration::from_secs(15), "the case ended {took:?} after the stop");
    assert_eq!(status.code(), Some(1));
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let reason = record["cases"][0]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("was stopped"), "{reason}");
}

#[test]
fn ctrl_c_stops_the_trial_in_flight_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let plan = long_plan(dir.path(), "uds", 1, "60s");
    let out = dir.path().join("out");
    let mut run = spawn_run(&plan, &out);
    wait_for_child(run.id(), "peer", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    signal(run.id(), "INT");
    let (status, took) = wait_bounded(&mut run, Duration::from_secs(50));
    assert_eq!(status.code(), Some(130));
    // The trial's schedule had about 59 s left; it stops in well under a second when quiet.
    assert!(
        took < Duration::from_secs(15),
        "the trial in flight took {took:?} to stop"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("partial/run.json")).unwrap()).unwrap();
    assert_eq!(record["interrupted"], true);
    let case = &record["cases"][0];
    assert!(
        case["flags"].to_string().contains("interrupted during trial 1 of 1"),
        "{case}"
    );
    assert!(children(run.id(), "peer").is_empty());
}

/// Work directories under the temp dir owned by `pid`.
fn work_dirs_of(pid: u32) -> Vec<PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("ipcbench-"))
        })
        .filter(|p| std::fs::read_to_string(p.join("owner.pid")).is_ok_and(|t| t.trim() == pid.to_string()))
        .collect()
}

#[test]
fn kill_9_of_the_runner_leaves_nothing_behind_and_keeps_the_completed_cases() {
    // Pseudo-random moments, fixed per transport so a failure can be reproduced.
    for (transport, after_ms) in [("pipe", 1900u64), ("tcp", 2600), ("shm", 1200)] {
        let dir = tempfile::tempdir().unwrap();
        let plan = long_plan(dir.path(), transport, 3, "1s");
        let out = dir.path().join("out");
        let mut run = spawn_run(&plan, &out);
        let pid = run.id();
        // Once the first trial is saved, kill at a moment inside a later trial.
        let saved = dir.path().join(format!(".out.staging-{pid}/run.json"));
        let started = Instant::now();
        while !saved.is_file() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{transport}: no trial completed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(after_ms % 1000));
        assert!(
            !work_dirs_of(pid).is_empty(),
            "{transport}: the run has its work dir while it runs"
        );
        signal(pid, "KILL");
        let _ = wait_bounded(&mut run, Duration::from_secs(10));
        // The watcher cleans up within a second or so of the death; allow 10.
        let started = Instant::now();
        let leftovers = || -> Vec<String> {
            let mut found: Vec<String> = work_dirs_of(pid).iter().map(|p| p.display().to_string()).collect();
            for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.contains("staging") || name.ends_with(".lock") {
                    found.push(name);
                }
            }
            found
        };
        while !leftovers().is_empty() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(leftovers().is_empty(), "{transport}: left behind: {:?}", leftovers());
        let partial = out.join("partial/run.json");
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&partial).unwrap_or_else(|e| {
            panic!(
                "{transport}: the completed cases are kept in {}: {e}",
                partial.display()
            )
        }))
        .unwrap();
        assert!(
            !record["cases"][0]["trials"].as_array().unwrap().is_empty(),
            "{transport}: {record}"
        );
    }
}

#[test]
fn a_second_run_into_a_locked_or_non_empty_out_is_refused_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let plan = long_plan(dir.path(), "tcp", 1, "20s");
    let out = dir.path().join("out");
    let mut first = spawn_run(&plan, &out);
    wait_for_child(first.id(), "peer", Duration::from_secs(20));
    let (output, took) = run_bounded(
        &["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is in use by another run") && stderr.contains(&first.id().to_string()),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(5), "refused before measuring: {took:?}");
    signal(first.id(), "INT");
    let _ = wait_bounded(&mut first, Duration::from_secs(20));
    // `out` now holds the interrupted run's partial results: not empty.
    let (output, _) = run_bounded(
        &["run", plan.to_str().unwrap(), "--out", out.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--force"),
        "{}",
        text(&output)
    );
}

#[test]
fn compare_refuses_a_record_whose_trials_are_empty() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/baseline/run.json");
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&baseline).unwrap()).unwrap();
    for case in record["cases"].as_array_mut().unwrap() {
        case["trials"] = serde_json::json!([]);
    }
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, serde_json::to_vec(&record).unwrap()).unwrap();
    let (output, _) = run_bounded(
        &["compare", empty.to_str().unwrap(), baseline.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no trials"),
        "{}",
        text(&output)
    );
    let (output, _) = run_bounded(
        &["compare", baseline.to_str().unwrap(), empty.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

#[test]
fn kill_9_during_a_delayed_rpc_case_leaves_no_namespace() {
    let ip_works = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ip_works {
        eprintln!("skipped: `ip netns` is not available here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("rpc.toml");
    std::fs::write(
        &plan,
        "name = \"rpc\"\nrepetitions = 3\nwarmup = \"10ms\"\nduration = \"2s\"\ncores = [0, 1]\n[[scenario]]\n\
         kind = \"rpc\"\ntransports = [\"tcp\"]\nmessage_bytes = 1024\nwindow = 4\ndelay_ms = 5\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut run = spawn_run(&plan, &out);
    let pid = run.id();
    let namespaces = || -> Vec<String> {
        let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&format!("ipcb-{pid}-")))
            .map(str::to_owned)
            .collect()
    };
    let started = Instant::now();
    while namespaces().is_empty() {
        if run.try_wait().unwrap().is_some() {
            eprintln!(
                "skipped: the run made no namespace (it cannot here): {:?}",
                run.wait_with_output()
            );
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no namespace appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(700));
    signal(pid, "KILL");
    let _ = wait_bounded(&mut run, Duration::from_secs(10));
    let started = Instant::now();
    while (!namespaces().is_empty() || !work_dirs_of(pid).is_empty()) && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(namespaces().is_empty(), "namespaces left: {:?}", namespaces());
    assert!(work_dirs_of(pid).is_empty());
}
