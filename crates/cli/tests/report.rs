//! `ipcbench report` and the report that `ipcbench run` writes: real runs, real files, exit
//! codes. Only `null` and `inproc` run (no other process), so a run takes well under a second.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

fn ipcbench() -> Command {
    let mut cmd = Command::cargo_bin("ipcbench").expect("binary built");
    cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    cmd.timeout(std::time::Duration::from_secs(120));
    cmd
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn run_writes_the_report_and_report_renders_it_again_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let output = ipcbench()
        .args([
            "run",
            "bench-configs/smoke.toml",
            "--transports",
            "null,inproc",
            "--repetitions",
            "1",
            "--duration",
            "20ms",
            "--warmup",
            "5ms",
            "--out",
        ])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "stderr: {}", stderr_of(&output));
    let written = files_under(&run_dir);
    for expected in [
        "run.json",
        "report.md",
        "report.html",
        "cases.csv",
        "charts/latency-vs-size-pingpong.png",
        "charts/latency-vs-size-pingpong.svg",
        "charts/spectrum-pingpong-64B.png",
        "charts/spectrum-pingpong-4096B.svg",
        "charts/cpu-pingpong.png",
        "hgrm/pingpong_null_64B_c0.hgrm",
    ] {
        assert!(
            written.iter().any(|p| p == Path::new(expected)),
            "{expected} missing: {written:?}"
        );
    }
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));

    let again = tmp.path().join("again");
    let output = ipcbench()
        .arg("report")
        .arg(run_dir.join("run.json"))
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert!(output.status.success(), "stderr: {}", stderr_of(&output));
    let rendered = files_under(&again);
    assert_eq!(
        rendered,
        written
            .iter()
            .filter(|p| *p != Path::new("run.json"))
            .cloned()
            .collect::<Vec<_>>()
    );
    for file in &rendered {
        assert!(
            std::fs::read(run_dir.join(file)).unwrap() == std::fs::read(again.join(file)).unwrap(),
            "{} differs between the run and the re-render",
            file.display()
        );
    }

    // A folder works as well as its run.json; --format picks outputs.
    let only_csv = tmp.path().join("csv");
    let output = ipcbench()
        .arg("report")
        .arg(&run_dir)
        .args(["--format", "csv", "--out"])
        .arg(&only_csv)
        .output()
        .unwrap();
    assert!(output.status.success(), "stderr: {}", stderr_of(&output));
    assert_eq!(files_under(&only_csv), [Path::new("cases.csv")]);
}

#[test]
fn bad_records_exit_2_with_one_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let malformed = tmp.path().join("malformed.json");
    std::fs::write(&malformed, "{\n  \"schema\": \"ipcbench.run/1\",\n  \"name\": \n}\n").unwrap();
    let foreign = tmp.path().join("foreign.json");
    std::fs::write(&foreign, "{\"schema\": \"other/2\"}").unwrap();
    let incomplete = tmp.path().join("incomplete.json");
    std::fs::write(&incomplete, "{\"schema\": \"ipcbench.run/1\", \"name\": \"x\"}").unwrap();
    let cases: [(&Path, &str); 4] = [
        (&tmp.path().join("missing.json"), "cannot read"),
        (&malformed, "is not valid JSON"),
        (&foreign, "is not an ipcbench run record"),
        (&incomplete, "does not match the run record schema"),
    ];
    for (path, message) in cases {
        let output = ipcbench().arg("report").arg(path).output().unwrap();
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{}: {stderr}", path.display());
        assert!(stderr.starts_with("error: ") && stderr.contains(message), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
    let output = ipcbench()
        .args(["report", "x.json", "--format", "png,pdf"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("unknown report format `pdf`"));
}
