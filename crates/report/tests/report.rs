//! The report outputs from hand-built records: snapshots of the text formats, every chart
//! drawn for runs of every shape, a self-contained HTML page, and rendering that repeats
//! byte for byte.

mod common;

use std::path::Path;

use ipcbench_record::RunRecord;
use ipcbench_report::{ComparisonRow, Formats, Stamp};

fn one_case() -> RunRecord {
    common::record("one", vec![common::pingpong("tcp", None, 64, false, 20_000.0)])
}

fn small() -> RunRecord {
    common::record(
        "small",
        vec![
            common::pingpong("tcp", None, 64, false, 20_000.0),
            common::pingpong("uds", Some("kind=seqpacket"), 64, true, 3_000.0),
            common::failed("pipe", 4096),
            common::unsupported("shm", 64),
        ],
    )
}

/// Renders `record` into a fresh folder and checks that every listed chart exists as a
/// non-trivial PNG and SVG; returns the folder.
fn render_checked(record: &RunRecord) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let written = ipcbench_report::render(record, dir.path(), &Formats::ALL).unwrap();
    if let Some(keep) = std::env::var_os("IPCBENCH_REPORT_KEEP") {
        // For looking at the charts: IPCBENCH_REPORT_KEEP=/tmp/x cargo test -p ipcbench-report
        let keep = Path::new(&keep).join(&record.name);
        ipcbench_report::render(record, &keep, &Formats::ALL).unwrap();
    }
    let charts = ipcbench_report::chart_list(record).unwrap();
    assert!(!charts.is_empty(), "{}: no charts", record.name);
    for chart in &charts {
        let png = dir.path().join("charts").join(format!("{}.png", chart.stem));
        let svg = dir.path().join("charts").join(format!("{}.svg", chart.stem));
        let png_bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n", "{} is not a PNG", png.display());
        assert!(
            png_bytes.len() > 20_000,
            "{} is only {} bytes",
            png.display(),
            png_bytes.len()
        );
        let svg_text = std::fs::read_to_string(&svg).unwrap();
        assert!(svg_text.starts_with("<svg") && svg_text.trim_end().ends_with("</svg>"));
        assert!(
            svg_text.len() > 5_000,
            "{} is only {} bytes",
            svg.display(),
            svg_text.len()
        );
        assert!(
            svg_text.contains(&xml_text(&chart.title)),
            "{}: title missing",
            svg.display()
        );
        assert!(written.contains(&png) && written.contains(&svg));
    }
    for file in ["report.md", "report.html", "cases.csv"] {
        assert!(dir.path().join(file).is_file(), "{file} missing");
    }
    dir
}

fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn stems(record: &RunRecord) -> Vec<String> {
    ipcbench_report::chart_list(record)
        .unwrap()
        .into_iter()
        .map(|c| c.stem)
        .collect()
}

#[test]
fn markdown_report_snapshot() {
    insta::assert_snapshot!(ipcbench_report::markdown(&small()).unwrap());
}

#[test]
fn csv_snapshot_has_one_rfc_4180_row_per_case() {
    let record = small();
    let csv = ipcbench_report::cases_csv(&record);
    assert!(csv.ends_with("\r\n"));
    assert_eq!(csv.matches("\r\n").count(), record.cases.len() + 1);
    // The failed case's reason holds a comma and quotes: quoted, quotes doubled.
    assert!(csv.contains("\"peer exited with status 1: checksum mismatch in message 17, \"\"seq\"\" 16\""));
    insta::assert_snapshot!(csv.replace("\r\n", "\n"));
}

#[test]
fn hgrm_snapshot_of_a_merged_case() {
    let files = ipcbench_report::hgrm_files(&small()).unwrap();
    // Completed cases only: the failed and the unsupported case get none.
    let names: Vec<&str> = files.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "pingpong_tcp_64B_c0s1.hgrm",
            "pingpong_uds-kind=seqpacket_64B_c0s0.hgrm"
        ]
    );
    let text = &files[0].text;
    assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
    assert!(
        text.contains("Total count    =         6000]"),
        "three trials of 2000 merged"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn charts_render_for_a_single_case() {
    let record = one_case();
    assert_eq!(
        stems(&record),
        ["latency-vs-size-pingpong", "spectrum-pingpong-64B", "cpu-pingpong"]
    );
    render_checked(&record);
}

#[test]
fn charts_render_for_many_cases_with_failed_and_unsupported_ones() {
    let record = common::many();
    assert_eq!(
        stems(&record),
        [
            "latency-vs-size-pingpong",
            "spectrum-pingpong-64B",
            "spectrum-pingpong-4096B",
            "cpu-pingpong"
        ]
    );
    let dir = render_checked(&record);
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("| FAILED |") && md.contains("| unsupported |"));
    assert!(md.contains("failed: peer exited with status 1"));
}

#[test]
fn charts_render_for_sizes_from_1_byte_to_4_mib() {
    let record = common::sweep();
    let stems = stems(&record);
    // Six spectra at most, the smallest and largest size among them.
    let spectra: Vec<&String> = stems.iter().filter(|s| s.starts_with("spectrum-")).collect();
    assert_eq!(spectra.len(), 6);
    assert_eq!(spectra[0], "spectrum-pingpong-1B");
    assert_eq!(spectra[5], "spectrum-pingpong-4194304B");
    let dir = render_checked(&record);
    assert_eq!(std::fs::read_dir(dir.path().join("hgrm")).unwrap().count(), 23);
}

#[test]
fn stream_runs_get_a_throughput_chart() {
    let record = common::streams();
    assert_eq!(stems(&record), ["throughput-vs-size-stream", "cpu-stream"]);
    render_checked(&record);
}

#[test]
fn rpc_runs_get_a_window_chart_with_bandwidth_delay_bounds() {
    let record = common::rpcs();
    assert_eq!(stems(&record), ["window-rpc-tcp-cross-core-16384B", "cpu-rpc"]);
    let dir = render_checked(&record);
    let svg = std::fs::read_to_string(dir.path().join("charts/window-rpc-tcp-cross-core-16384B.svg")).unwrap();
    // A bound per delay: stored RTTs for 0 and 1 ms, the link's floor (2 x delay) for 10 ms.
    assert!(svg.contains("delay 0 ms: bound, RTT 30 µs (measured)"), "{svg}");
    assert!(svg.contains("delay 1 ms: bound, RTT 2.03 ms (measured)"));
    assert!(svg.contains("delay 10 ms: bound, RTT 20 ms (2 × delay)"), "{svg}");
    assert!(svg.contains("W × 32 KiB / RTT"), "request + reply bytes per round trip");
}

#[test]
fn load_runs_get_a_latency_vs_connections_chart() {
    let record = common::loads();
    let stems = stems(&record);
    assert_eq!(stems[0], "latency-vs-load-load");
    let dir = render_checked(&record);
    let svg = std::fs::read_to_string(dir.path().join("charts/latency-vs-load-load.svg")).unwrap();
    assert!(svg.contains("Latency vs connection count (load)"));
    assert!(svg.contains("connections, each sending 5 msg/s (log scale)"));
    assert!(svg.contains("Latency timed from the"), "{svg}");
}

#[test]
fn http_runs_get_hop_cpu_wire_and_throughput_charts() {
    let record = common::https();
    let stems = stems(&record);
    for stem in ["http-hop-added", "http-relay-cpu", "http-wire-bytes", "http-throughput"] {
        assert!(stems.iter().any(|s| s == stem), "{stem} missing from {stems:?}");
    }
    let dir = render_checked(&record);
    let svg = std::fs::read_to_string(dir.path().join("charts/http-hop-added.svg")).unwrap();
    assert!(
        svg.contains("h2-&gt;h1 · 1 KiB · hit 0.9"),
        "one group per path, size and ratio"
    );
    let markdown = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for header in [
        "| path |",
        "| hop p50 |",
        "| relay CPU/req |",
        "| front B/req |",
        "| out/s |",
    ] {
        assert!(markdown.contains(header), "{header} missing from the http table");
    }
}

#[test]
fn conn_cost_runs_get_a_memory_chart_and_no_cpu_chart() {
    let record = common::conn_costs();
    assert_eq!(stems(&record), ["memory-vs-connections-conn-cost"]);
    let dir = render_checked(&record);
    let svg = std::fs::read_to_string(dir.path().join("charts/memory-vs-connections-conn-cost.svg")).unwrap();
    assert!(svg.contains("tcp · cross-core: RSS 250"), "{svg}");
    assert!(svg.contains("B/conn, slab 5.86 KiB/conn"));
    assert!(svg.contains(">\n0.5 MiB\n<"), "ticks in one unit");
}

#[test]
fn html_is_self_contained_and_embeds_every_chart() {
    let record = common::many();
    let html = ipcbench_report::html(&record).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("//"), "a protocol-relative or network reference");
    for attribute in ["src=", "@import", "url("] {
        assert!(!html.contains(attribute), "external resource via {attribute}");
    }
    let charts = ipcbench_report::chart_list(&record).unwrap();
    assert_eq!(html.matches("<svg ").count(), charts.len());
    for chart in &charts {
        assert!(
            html.contains(&format!("<figure id=\"{}\">", chart.stem)),
            "{} missing",
            chart.stem
        );
    }
    assert!(html.contains("@media print"));
}

#[test]
fn rendering_again_gives_the_same_bytes() {
    let record = common::many();
    let first = render_checked(&record);
    // Through JSON, as `ipcbench report` reads it back.
    let json = serde_json::to_string_pretty(&record).unwrap();
    let again = ipcbench_report::parse_record(&json, Path::new("run.json")).unwrap();
    let second = tempfile::tempdir().unwrap();
    let mut written = ipcbench_report::render(&again, second.path(), &Formats::ALL).unwrap();
    written.sort();
    assert!(written.len() > 10);
    for path in written {
        let relative = path.strip_prefix(second.path()).unwrap();
        assert_eq!(
            std::fs::read(first.path().join(relative)).unwrap(),
            std::fs::read(&path).unwrap(),
            "{} differs",
            relative.display()
        );
    }
}

#[test]
fn formats_select_the_outputs() {
    let record = one_case();
    let dir = tempfile::tempdir().unwrap();
    let formats: Formats = "svg,csv".parse().unwrap();
    let written = ipcbench_report::render(&record, dir.path(), &formats).unwrap();
    assert!(written.iter().all(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        name.ends_with(".svg") || name == "cases.csv"
    }));
    assert!(!dir.path().join("report.html").exists() && !dir.path().join("hgrm").exists());
}

fn row(case_id: &str, metric: &str, ratio: f64, regressed: bool, improved: bool) -> ComparisonRow {
    ComparisonRow {
        case_id: case_id.to_owned(),
        metric: metric.to_owned(),
        ratio,
        ci_low: ratio * 0.95,
        ci_high: ratio * 1.06,
        regressed,
        improved,
    }
}

#[test]
fn comparison_chart_renders_pages_of_rows() {
    let old = common::many();
    let mut new = common::many();
    new.started_at = "2026-01-03T00:00:00Z".to_owned();
    let stamp = Stamp::comparison(&old, &new);
    assert_eq!(stamp.date, "2026-01-02T03:04:05Z vs 2026-01-03T00:00:00Z");
    let mut rows = vec![
        row("pingpong/tcp/64B/c0s1", "latency_p50_ns", 1.31, true, false),
        row("pingpong/uds/64B/c0s1", "latency_p99_ns", 0.72, false, true),
        row("pingpong/pipe/64B/c0s1", "bytes_per_s", 1.01, false, false),
        row("pingpong/shm/64B/c0s1", "latency_p50_ns", f64::NAN, false, false),
    ];
    let dir = tempfile::tempdir().unwrap();
    let files = ipcbench_report::render_comparison(&rows, &stamp, &dir.path().join("cmp/comparison")).unwrap();
    if let Some(keep) = std::env::var_os("IPCBENCH_REPORT_KEEP") {
        ipcbench_report::render_comparison(&rows, &stamp, &Path::new(&keep).join("comparison/comparison")).unwrap();
    }
    assert_eq!(
        files,
        [
            dir.path().join("cmp/comparison.svg"),
            dir.path().join("cmp/comparison.png")
        ]
    );
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    assert!(svg.contains("1 regressed, 1 improved of 4"));
    assert!(svg.contains("+31.0%") && svg.contains("-28.0%") && svg.contains("n/a"));
    // Regressions are red (the colour of the regression legend entry and its row).
    assert!(svg.contains("#C81E1E"), "no red in the chart");

    for i in 0..40 {
        rows.push(row(
            &format!("pingpong/tcp/{i}B/c0s1"),
            "latency_p50_ns",
            1.0 + i as f64 / 100.0,
            false,
            false,
        ));
    }
    let files = ipcbench_report::render_comparison(&rows, &stamp, &dir.path().join("many")).unwrap();
    assert_eq!(files.len(), 4, "two pages of PNG and SVG: {files:?}");
    assert!(dir.path().join("many-2.png").is_file());
    assert_eq!(ipcbench_report::comparison_svgs(&rows, &stamp).unwrap().len(), 2);
    assert!(
        ipcbench_report::render_comparison(&[], &stamp, &dir.path().join("none"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn load_reports_bad_files_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = ipcbench_report::load_record(&dir.path().join("nope.json")).unwrap_err();
    assert!(missing.is_bad_input() && missing.to_string().starts_with("cannot read"));
    let path = dir.path().join("other.json");
    std::fs::write(&path, r#"{"schema": "something/else"}"#).unwrap();
    let foreign = ipcbench_report::load_record(&path).unwrap_err();
    assert!(foreign.is_bad_input());
    assert!(
        foreign.to_string().contains("is not an ipcbench run record"),
        "{foreign}"
    );
}

#[test]
fn a_run_with_an_agent_names_both_machines() {
    let mut record = one_case();
    record.agents.push(ipcbench_record::AgentRecord {
        address: "198.18.0.2:7100".into(),
        role: "peer".into(),
        version: "0.1.0".into(),
        protocol_version: 1,
        environment: ipcbench_record::Environment {
            hostname: "agent-host".into(),
            cpu_model: "Agent CPU".into(),
            cores: 16,
            kernel: "6.1.0".into(),
            ..Default::default()
        },
        case_ids: vec![record.cases[0].id.clone()],
    });
    let markdown = ipcbench_report::markdown(&record).unwrap();
    let row = markdown
        .lines()
        .find(|l| l.starts_with("| agent 198.18.0.2:7100 |"))
        .unwrap_or_else(|| panic!("{markdown}"));
    assert!(
        row.contains("agent-host") && row.contains("Agent CPU") && row.contains("16 cores"),
        "{row}"
    );
    assert!(
        Stamp::from_record(&record)
            .machine
            .contains("agent 198.18.0.2:7100: Agent CPU, 16 cores")
    );
    // A record without agents renders as before (the snapshots above hold it).
    assert!(!ipcbench_report::markdown(&one_case()).unwrap().contains("agent "));
}
