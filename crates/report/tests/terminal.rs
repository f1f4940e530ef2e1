//! The terminal summary from hand-built records: one table per scenario from the same column
//! model as `report.md`, laid out as aligned plain text.

mod common;

use ipcbench_record::{CaseRecord, RunRecord};
use serde_json::json;

fn with_extra(mut case: CaseRecord, figures: serde_json::Value) -> CaseRecord {
    for (key, value) in figures.as_object().unwrap() {
        case.extra.insert(key.clone(), value.clone());
    }
    case
}

/// A relayed case: the client's round trip through a uds-to-tcp relay that converts to text.
fn proxy() -> CaseRecord {
    let mut case = common::pingpong("uds->tcp", None, 64, false, 49_500.0);
    case.scenario = "proxy".to_owned();
    case.id = "proxy/uds->tcp/64B/text/c0s1".to_owned();
    with_extra(
        case,
        json!({"direct_p50_ns": 40000.0, "direct_p99_ns": 61000.0, "hop_added_p50_ns": 9500.0,
               "hop_added_p99_ns": -1200.0, "relay_cpu_ns_per_message": 7300.0,
               "relay_in_bytes_per_s": 2.6e6, "relay_out_bytes_per_s": 2.5e6}),
    )
}

/// Every kind of table: latency (with a flagged case, a kernel-resized buffer, a failed and an
/// unsupported case), stream, rpc, load (one short of its schedule), proxy and conn-cost.
fn every_scenario() -> RunRecord {
    let mut resized = common::pingpong("tcp", Some("sndbuf=1024"), 64, false, 21_000.0);
    resized
        .applied_options
        .insert("send_buffer_bytes".to_owned(), json!(4608));
    resized.flags.push("p99 over 10x p50".to_owned());
    let mut stream = common::stream("shm", 65536, false, 6e9);
    stream.summary.as_mut().unwrap().fraction_of_limit = Some(0.5);
    let mut short = with_extra(
        common::load("tcp", 10000, 5.0),
        json!({"scheduled_messages_per_s": 50000.0, "achieved_messages_per_s": 24600.0, "rate_shortfall_max": 0.508}),
    );
    short.flags.push("RATE SHORTFALL: 50.8% below the schedule".to_owned());
    let cases = vec![
        common::pingpong("tcp", None, 64, false, 20_000.0),
        resized,
        common::failed("pipe", 4096),
        common::unsupported("shm", 64),
        stream,
        with_extra(
            common::rpc("tcp", 16_384, 8, 1.0, true),
            json!({"fraction_of_bdp": 0.9}),
        ),
        with_extra(
            common::rpc("tcp", 16_384, 64, 1.0, true),
            json!({"fraction_of_bdp": 0.41}),
        ),
        short,
        with_extra(
            common::load("uds", 10000, 5.0),
            json!({"scheduled_messages_per_s": 50000.0, "achieved_messages_per_s": 49990.0, "rate_shortfall_max": 0.0002}),
        ),
        proxy(),
        with_extra(
            common::conn_cost("tcp", false, 73.2, 8691.0),
            json!({"sockets_per_connection": 2.0, "server_rss_residual_bytes": 2100.0}),
        ),
    ];
    common::record("every-scenario", cases)
}

#[test]
fn terminal_tables_snapshot() {
    insta::assert_snapshot!(ipcbench_report::terminal_tables(&every_scenario()));
}

#[test]
fn a_buffer_the_kernel_resized_shows_both_sizes() {
    let text = ipcbench_report::terminal_tables(&every_scenario());
    assert!(text.contains("tcp [sndbuf=1024→4608]"), "{text}");
    // The documents keep the id's spelling.
    let markdown = ipcbench_report::markdown(&every_scenario()).unwrap();
    assert!(
        markdown.contains("| tcp [sndbuf=1024] |") && !markdown.contains("1024→4608"),
        "{markdown}"
    );
}

#[test]
fn flagged_short_and_failed_cases_are_marked_and_explained() {
    let text = ipcbench_report::terminal_tables(&every_scenario());
    let load: Vec<&str> = text.lines().skip_while(|l| *l != "load").collect();
    assert!(load[3].contains("-50.8% SHORT") && load[3].ends_with("ok*"), "{text}");
    assert!(load[4].contains("-0.0%") && !load[4].contains("SHORT"), "{text}");
    assert!(
        text.contains("  load/tcp/256B/c10000/r5Hz/c0s1: * RATE SHORTFALL"),
        "{text}"
    );
    assert!(
        text.contains("  pingpong/pipe/4096B/c0s1: failed: peer exited"),
        "{text}"
    );
    assert!(text.contains("both ends of each loopback connection"), "{text}");
}

#[test]
fn columns_line_up_and_no_line_ends_in_a_space() {
    let text = ipcbench_report::terminal_tables(&every_scenario());
    for block in text.split("\n\n") {
        // The relative summary's lines stand between the name and the table.
        let lines: Vec<&str> = block
            .lines()
            .filter(|l| !l.starts_with("Relative (") && !l.contains(" is fastest ("))
            .collect();
        // Name, header, rule: the rule is as wide as the widest row.
        let rule = lines[2];
        assert!(rule.chars().all(|c| c == '-' || c == ' '), "{block}");
        for line in &lines {
            assert!(!line.ends_with(' '), "{line:?}");
        }
    }
}

#[test]
fn the_vs_bare_column_and_its_note_appear_only_when_a_case_has_the_figure() {
    let without = common::record("plain", vec![common::pingpong("tcp", None, 64, false, 20_000.0)]);
    assert!(!ipcbench_report::terminal_tables(&without).contains("vs bare"));
    assert!(
        !ipcbench_report::markdown(&without)
            .unwrap()
            .contains("overhead_vs_bare")
    );

    let mut measured = common::pingpong("tcp", None, 64, false, 20_000.0);
    let summary = measured.summary.as_mut().unwrap();
    summary.bare = Some(18_500.0);
    summary.overhead_vs_bare = Some(1.081);
    summary.ci95.insert("overhead_vs_bare".to_owned(), [1.05, 1.12]);
    let mut stream = common::stream("uds", 65536, false, 2e9);
    let summary = stream.summary.as_mut().unwrap();
    summary.bare = Some(2.2e9);
    summary.overhead_vs_bare = Some(1.1);
    let with = common::record(
        "bare",
        vec![measured, common::pingpong("uds", None, 64, false, 15_000.0), stream],
    );
    let text = ipcbench_report::terminal_tables(&with);
    assert!(text.contains("vs bare"), "{text}");
    assert!(text.contains("1.08x") && text.contains("1.10x"), "{text}");
    let markdown = ipcbench_report::markdown(&with).unwrap();
    assert!(markdown.contains("overhead_vs_bare"), "{markdown}");
    assert!(
        markdown.contains("18.5 µs") && markdown.contains("1.05 – 1.12"),
        "{markdown}"
    );
    assert!(markdown.contains("2.2 GB/s"), "{markdown}");
}

#[test]
fn the_relative_summary_names_the_fastest_transport_per_size_and_placement() {
    let record = common::record(
        "relative",
        vec![
            common::pingpong("tcp", None, 64, false, 20_000.0),
            common::pingpong("uds", None, 64, false, 10_000.0),
            common::pingpong("pipe", None, 64, false, 10_050.0),
            // Alone in its group (same-core): no line for it.
            common::pingpong("tcp", None, 64, true, 4_000.0),
            common::stream("tcp", 65536, false, 2e9),
            common::stream("pipe", 65536, false, 1e9),
        ],
    );
    let text = ipcbench_report::terminal_tables(&record);
    let lines: Vec<&str> = text.lines().collect();
    let cross = lines
        .iter()
        .find(|l| l.starts_with("64 B, cross-core 0/1:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(cross.contains("uds is fastest ("), "{cross}");
    // The fixtures' medians sit about 2x apart, with intervals well clear of each other.
    let tcp = &cross[cross.find("tcp 2.0").unwrap_or_else(|| panic!("{cross}"))..];
    assert!(tcp.contains("x (1.") && !tcp.contains("not told apart"), "{cross}");
    assert!(
        cross.contains("pipe 1.0") && cross.contains("not told apart"),
        "{cross}"
    );
    assert!(
        cross.find("pipe").unwrap() < cross.find("tcp").unwrap(),
        "slower ones in order: {cross}"
    );
    assert!(!text.contains("same-core 0/0:"), "a group of one has no line: {text}");
    let stream = lines
        .iter()
        .find(|l| l.starts_with("64 KiB, cross-core 0/1:"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(stream.contains("tcp is fastest (2"), "{stream}");
    assert!(stream.contains("pipe 2.00x (1."), "{stream}");
    // The summary stands above its scenario's table.
    let heading = text.find("Relative (p50 round trip").unwrap();
    assert!(text[..heading].trim_end().ends_with("pingpong"), "{text}");
    let markdown = ipcbench_report::markdown(&record).unwrap();
    assert!(
        markdown.contains("- 64 B, cross-core 0/1: uds is fastest"),
        "{markdown}"
    );
    let html = ipcbench_report::html(&record).unwrap();
    assert!(
        html.contains("<ul class=\"relative\">\n<li>64 B, cross-core 0/1: uds is fastest"),
        "{html}"
    );
}
