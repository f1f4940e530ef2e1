//! The paired gate end to end (`ipcbench ci --against`), with known answers: against a copy of
//! this very binary an unchanged tiny plan passes; the same with `--set` slowing the new side's
//! `null` transport about tenfold fails and names the `null` case; the paired record holds,
//! per case, both sides' trials and the per-round ratios; a bad `--set` exits 2 naming it.
//!
//! Only `null` and same-core `inproc` run (no other process, steady latencies; see
//! tests/gate.rs), 6 rounds: the fewest with which the signed-rank test can reach p < 0.05
//! (2/64). Each trial is a fresh `ipcbench run` of a one-case plan, a few seconds each in a
//! debug build on a loaded machine, so everything runs in one test function, one run after
//! another.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

fn ipcbench() -> Command {
    let mut cmd = Command::cargo_bin("ipcbench").expect("binary built");
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    cmd.timeout(std::time::Duration::from_secs(900));
    cmd
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

const NULL_CASE: &str = "pingpong/null/64B/c0";
const INPROC_CASE: &str = "pingpong/inproc/64B/c0s0";

const TINY_PLAN: &str = "name = \"paired-test\"\nrepetitions = 3\nwarmup = \"10ms\"\nduration = \"60ms\"\n\
     cores = [0, 0]\n\n[[scenario]]\nkind = \"pingpong\"\ntransports = [\"null\", \"inproc\"]\nmessage_bytes = 64\n";

fn record(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

fn case<'a>(record: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    record["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
}

#[test]
fn paired_ci_passes_a_a_and_catches_a_tenfold_slowdown_of_one_side() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("tiny.toml");
    std::fs::write(&plan, TINY_PLAN).unwrap();
    // The old side: a copy of this binary, as a base commit's build would be.
    let old = dir.path().join("ipcbench-old");
    std::fs::copy(assert_cmd::cargo::cargo_bin("ipcbench"), &old).unwrap();

    // A/A: passes.
    let aa = dir.path().join("aa");
    let output = ipcbench()
        .args(["ci", "--rounds", "6", "--against"])
        .arg(&old)
        .arg(&plan)
        .arg("--out")
        .arg(&aa)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("paired comparison, 6 rounds per case"), "{stdout}");
    let summary = std::fs::read_to_string(aa.join("summary.md")).unwrap();
    assert!(
        summary.contains("**Paired comparison**, 6 rounds per case"),
        "{summary}"
    );

    // The record: per case, both sides' trials and the per-round ratios.
    let record = record(&aa);
    assert_eq!(record["paired"]["n_rounds"], 6);
    assert_eq!(record["paired"]["old_binary"], old.display().to_string());
    assert!(record["paired"]["old_environment"]["ipcbench_version"].is_string());
    for id in [NULL_CASE, INPROC_CASE] {
        let case = case(&record, id);
        let pairs = case["pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), 6, "{id}");
        assert_eq!(
            case["trials"].as_array().unwrap().len(),
            6,
            "{id}: the new side's trials"
        );
        for (idx, pair) in pairs.iter().enumerate() {
            assert_eq!(pair["round"], idx + 1);
            assert!(pair["old"]["latency_ns"]["p50"].as_f64().unwrap() > 0.0, "{pair}");
            assert!(pair["new"]["latency_ns"]["p50"].as_f64().unwrap() > 0.0, "{pair}");
            let ratio = pair["ratios"]["latency_p50_ns"].as_f64().unwrap();
            let expected =
                pair["new"]["latency_ns"]["p50"].as_f64().unwrap() / pair["old"]["latency_ns"]["p50"].as_f64().unwrap();
            assert!((ratio - expected).abs() < 1e-9, "{pair}");
        }
        let old_first = pairs.iter().filter(|p| p["old_first"] == true).count();
        assert!(old_first < 6 || pairs.len() < 6, "the order within rounds is shuffled");
    }
    let old_trials = aa
        .join("trials")
        .read_dir()
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with("-old.toml"));
    assert_eq!(
        old_trials.count(),
        12,
        "one one-case plan per case and round for the old side"
    );

    // The new side slowed about tenfold: the null case regresses, confirmed, and is named.
    let null_p50 = case(&record, NULL_CASE)["summary"]["latency_ns"]["p50"]
        .as_f64()
        .unwrap();
    let delay_ns = (10.0 * null_p50).ceil() as u64;
    let slow = dir.path().join("slow");
    let output = ipcbench()
        .args(["ci", "--rounds", "6", "--confirm", "1", "--against"])
        .arg(&old)
        .arg(&plan)
        .arg("--set")
        .arg(format!("transport.null.delay_ns={delay_ns}"))
        .arg("--out")
        .arg(&slow)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("REGRESSED {NULL_CASE}")), "{stdout}");
    assert!(!stdout.contains(&format!("REGRESSED {INPROC_CASE}")), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "the new side ran with --set transport.null.delay_ns={delay_ns}"
        )),
        "{stdout}"
    );
    let slow_record = self::record(&slow);
    let null = case(&slow_record, &format!("pingpong/null[delay={delay_ns}ns]/64B/c0"));
    assert_eq!(
        null["transport_options"]["delay_ns"], delay_ns,
        "the record is the new side's"
    );
    assert_eq!(null["pairs"].as_array().unwrap().len(), 6);
    assert!(slow.join("confirm-1").join("run.json").is_file());

    // A bad --set is refused before anything runs, with the plan's own message, naming it.
    let output = ipcbench()
        .args(["ci", "--against"])
        .arg(&old)
        .arg(&plan)
        .args(["--set", "transport.null.delay_ns=lots"])
        .arg("--out")
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--set transport.null.delay_ns=lots: "), "{stderr}");
    assert!(!dir.path().join("bad").exists());
}

#[test]
fn run_takes_set_and_refuses_a_bad_one_like_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("tiny.toml");
    std::fs::write(&plan, TINY_PLAN).unwrap();
    let output = ipcbench()
        .arg("run")
        .arg(&plan)
        .args([
            "--dry-run",
            "--set",
            "scenario.0.message_bytes=128",
            "--set",
            "transport.null.delay_ns=400",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("pingpong/null[delay=400ns]/128B/c0"), "{stdout}");
    let output = ipcbench()
        .arg("run")
        .arg(&plan)
        .args(["--dry-run", "--set", "scenario.4.message_bytes=128"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--set scenario.4.message_bytes=128: `scenario` has 1 entries"),
        "{stderr}"
    );
}

#[test]
fn a_bad_old_binary_is_refused_and_a_failing_one_keeps_the_completed_rounds() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("tiny.toml");
    std::fs::write(&plan, TINY_PLAN).unwrap();
    // Not an ipcbench at all: refused before anything runs.
    let out = dir.path().join("not-ipcbench");
    let output = ipcbench()
        .args(["ci", "--against", "/bin/echo", "--out"])
        .arg(&out)
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not an ipcbench binary"),
        "{}",
        describe(&output)
    );
    assert!(!out.exists(), "nothing may be made for a refused run");
    // Too many rounds: refused with the range.
    let output = ipcbench()
        .args(["ci", "--against", "/bin/echo", "--rounds", "1000000"])
        .arg(&plan)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("1 to 1000"),
        "{}",
        describe(&output)
    );

    // An "ipcbench" that answers --version and then runs the real binary's plans only for the
    // first pair's old side; after that it fails like a broken build would.
    let real = assert_cmd::cargo::cargo_bin("ipcbench");
    let count = dir.path().join("count");
    let fake = dir.path().join("ipcbench-broken");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then exec {real} --version; fi\n\
             if [ -e {count} ]; then echo 'error: this build is broken' >&2; exit 1; fi\n\
             touch {count}; exec {real} \"$@\"\n",
            real = real.display(),
            count = count.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = dir.path().join("broken");
    let output = ipcbench()
        .args(["ci", "--rounds", "6", "--against"])
        .arg(&fake)
        .arg("--out")
        .arg(&out)
        .arg(&plan)
        .output()
        .unwrap();
    let text = describe(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("this build is broken"), "{text}");
    assert!(text.contains("the completed rounds are in"), "{text}");
    // What completed (at most the first pair) is kept in partial/; no staging folder or lock is left.
    assert!(out.join("partial/run.json").is_file(), "{text}");
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
