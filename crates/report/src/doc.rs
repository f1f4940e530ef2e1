//! The tables that `report.md` and `report.html` share, built once from the record.

use ipcbench_record::{CaseRecord, RunRecord, Status};

use crate::{Stamp, cases, format};

/// A table of text cells.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    pub header: Vec<String>,
    /// True for right-aligned (numeric) columns.
    pub numeric: Vec<bool>,
    pub rows: Vec<Vec<String>>,
}

/// The run's provenance as key/value rows.
pub(crate) fn run_facts(record: &RunRecord) -> Vec<(String, String)> {
    let stamp = Stamp::from_record(record);
    let env = &record.environment;
    let clock = &record.clock;
    let mut facts = vec![
        ("run".to_owned(), record.name.clone()),
        (
            "time".to_owned(),
            format!("{} to {} (UTC)", record.started_at, record.finished_at),
        ),
        ("machine".to_owned(), stamp.machine.clone()),
        ("kernel".to_owned(), format!("{} ({})", env.kernel, env.os)),
        (
            "clock".to_owned(),
            format!(
                "{}: {} per read, resolution {}, harness floor (null transport p50) {}",
                clock.source,
                format::time_ns(clock.overhead_ns, 3),
                format::time_ns(clock.resolution_ns, 3),
                format::time_ns(clock.null_floor_ns, 3)
            ),
        ),
    ];
    if let Some(calibration) = &record.calibration {
        let mut parts = Vec::new();
        if let Some(rtt) = calibration.cache_line_round_trip_ns {
            let cores = calibration
                .cache_line_cores
                .map(|[a, b]| format!(" (cores {a} and {b})"))
                .unwrap_or_default();
            parts.push(format!("cache-line round trip {}{cores}", format::time_ns(rtt, 3)));
        }
        if let Some(rtt) = calibration.two_line_round_trip_ns {
            parts.push(format!("two-line round trip {}", format::time_ns(rtt, 3)));
        }
        if let Some(bandwidth) = calibration.memcpy_bytes_per_s {
            parts.push(format!("memcpy {}", format::rate(bandwidth, "B/s", 3)));
        }
        if !parts.is_empty() {
            facts.push(("limits".to_owned(), parts.join(", ")));
        }
    }
    let mut governor = Vec::new();
    if let Some(g) = &env.governor {
        governor.push(format!("governor {g}"));
    }
    if let Some(c) = &env.clock_source {
        governor.push(format!("clock source {c}"));
    }
    governor.push(format!("load average {:.2} at start", env.load_average_1m));
    facts.push(("conditions".to_owned(), governor.join(", ")));
    facts.push((
        "software".to_owned(),
        format!("{}, {}", stamp.software, env.rustc_version),
    ));
    let sha = record.config_sha256.get(..12).unwrap_or(&record.config_sha256);
    facts.push(("plan".to_owned(), format!("{} (sha256 {sha}…)", record.config_source)));
    let ok = record.cases.iter().filter(|c| c.status == Status::Ok).count();
    let mut outcome = format!("{ok} of {} completed", record.cases.len());
    for (status, word) in [(Status::Failed, "failed"), (Status::Unsupported, "unsupported")] {
        let n = record.cases.iter().filter(|c| c.status == status).count();
        if n > 0 {
            outcome.push_str(&format!(", {n} {word}"));
        }
    }
    if record.interrupted {
        outcome.push_str(", run interrupted before every case ran");
    }
    facts.push(("cases".to_owned(), outcome));
    facts
}

fn size_text(case: &CaseRecord) -> String {
    match case.reply_bytes {
        Some(reply) if reply != case.message_bytes => {
            format!("{} → {}", format::bytes(case.message_bytes), format::bytes(reply))
        }
        _ => format::bytes(case.message_bytes),
    }
}

fn status_text(case: &CaseRecord) -> String {
    match case.status {
        Status::Ok if !case.flags.is_empty() => "ok*".to_owned(),
        Status::Ok => "ok".to_owned(),
        Status::Unsupported => "unsupported".to_owned(),
        Status::Failed => "FAILED".to_owned(),
    }
}

/// A column: header, numeric, and how a case fills its cell.
type Column = (&'static str, bool, Box<dyn Fn(&CaseRecord) -> String>);

/// The table of one scenario's cases: the columns that apply to it, one row per case.
pub(crate) fn scenario_table(record: &RunRecord, scenario: &str) -> Table {
    let of: Vec<&CaseRecord> = record.cases.iter().filter(|c| c.scenario == scenario).collect();
    let any = |f: &dyn Fn(&CaseRecord) -> bool| of.iter().any(|c| f(c));
    let has_latency = any(&|c| c.summary.as_ref().is_some_and(|s| s.latency_ns.is_some()));
    let has_corrected = any(&|c| c.summary.as_ref().is_some_and(|s| s.latency_corrected_ns.is_some()));
    let dash = || "–".to_owned();
    let mut columns: Vec<Column> = vec![
        ("transport", false, Box::new(cases::transport_label)),
        ("placement", false, Box::new(placement_text)),
        ("size", true, Box::new(size_text)),
    ];
    if any(&|c| c.window.is_some()) {
        columns.push((
            "window",
            true,
            Box::new(move |c| c.window.map(|w| w.to_string()).unwrap_or_else(dash)),
        ));
    }
    if any(&|c| c.delay_ms.is_some()) {
        columns.push((
            "delay",
            true,
            Box::new(move |c| {
                c.delay_ms
                    .map(|d| format!("{} ms", format::significant(d, 3)))
                    .unwrap_or_else(dash)
            }),
        ));
    }
    if any(&|c| c.connections.is_some()) {
        columns.push((
            "connections",
            true,
            Box::new(move |c| c.connections.map(|n| n.to_string()).unwrap_or_else(dash)),
        ));
    }
    if any(&|c| c.rate_per_connection_hz.is_some()) {
        columns.push((
            "rate/conn",
            true,
            Box::new(move |c| {
                c.rate_per_connection_hz
                    .map(|r| format!("{} Hz", format::significant(r, 3)))
                    .unwrap_or_else(dash)
            }),
        ));
    }
    if has_latency {
        let pick = |f: fn(&ipcbench_record::Percentiles) -> f64| {
            move |c: &CaseRecord| {
                c.summary
                    .as_ref()
                    .and_then(|s| s.latency_ns)
                    .map(|l| format::time_ns(f(&l), 3))
                    .unwrap_or_else(dash)
            }
        };
        columns.push(("p50", true, Box::new(pick(|l| l.p50))));
        columns.push((
            "p50 95% CI",
            true,
            Box::new(move |c| {
                c.summary
                    .as_ref()
                    .and_then(|s| s.ci95.get("latency_p50_ns"))
                    .map(|[lo, hi]| format!("{} – {}", format::time_ns(*lo, 3), format::time_ns(*hi, 3)))
                    .unwrap_or_else(dash)
            }),
        ));
        columns.push(("p99", true, Box::new(pick(|l| l.p99))));
        columns.push(("p99.9", true, Box::new(pick(|l| l.p999))));
        columns.push(("max", true, Box::new(pick(|l| l.max))));
    }
    if has_corrected {
        columns.push((
            "p99 from intended start",
            true,
            Box::new(move |c| {
                c.summary
                    .as_ref()
                    .and_then(|s| s.latency_corrected_ns)
                    .map(|l| format::time_ns(l.p99, 3))
                    .unwrap_or_else(dash)
            }),
        ));
    }
    columns.push((
        "msg/s",
        true,
        Box::new(move |c| {
            c.summary
                .as_ref()
                .map(|s| format::rate(s.messages_per_s, "", 3).trim_end().to_owned())
                .unwrap_or_else(dash)
        }),
    ));
    columns.push((
        "bytes/s",
        true,
        Box::new(move |c| {
            c.summary
                .as_ref()
                .map(|s| format::rate(s.bytes_per_s, "B/s", 3))
                .unwrap_or_else(dash)
        }),
    ));
    columns.push((
        "CPU/msg",
        true,
        Box::new(move |c| {
            c.summary
                .as_ref()
                .and_then(|s| s.cpu_ns_per_message)
                .map(|v| format::time_ns(v, 3))
                .unwrap_or_else(dash)
        }),
    ));
    columns.push((
        "CPU/byte",
        true,
        Box::new(move |c| {
            c.summary
                .as_ref()
                .and_then(|s| s.cpu_ns_per_byte)
                .map(|v| format::time_ns(v, 3))
                .unwrap_or_else(dash)
        }),
    ));
    columns.push((
        "trials",
        true,
        Box::new(|c| c.summary.as_ref().map(|s| s.n_trials).unwrap_or(0).to_string()),
    ));
    columns.push(("status", false, Box::new(status_text)));
    Table {
        header: columns.iter().map(|c| c.0.to_owned()).collect(),
        numeric: columns.iter().map(|c| c.1).collect(),
        rows: of
            .iter()
            .map(|case| columns.iter().map(|c| (c.2)(case)).collect())
            .collect(),
    }
}

fn placement_text(case: &CaseRecord) -> String {
    match case.cores.server {
        Some(server) => format!("{} {}/{}", case.cores.label, case.cores.client, server),
        None => format!("{} {}", case.cores.label, case.cores.client),
    }
}

/// Notes on a scenario's cases: why a case failed or was unsupported, and caveats.
pub(crate) fn scenario_notes(record: &RunRecord, scenario: &str) -> Vec<(String, String)> {
    record
        .cases
        .iter()
        .filter(|c| c.scenario == scenario)
        .filter_map(|c| match c.status {
            Status::Ok if !c.flags.is_empty() => Some((c.id.clone(), format!("* {}", c.flags.join("; ")))),
            Status::Ok => None,
            Status::Failed => Some((
                c.id.clone(),
                format!("failed: {}", c.reason.as_deref().unwrap_or("no reason recorded")),
            )),
            Status::Unsupported => Some((
                c.id.clone(),
                format!("unsupported: {}", c.reason.as_deref().unwrap_or("no reason recorded")),
            )),
        })
        .collect()
}
