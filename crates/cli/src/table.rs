//! The summary table printed after a run.

use ipcbench_harness::record::{CaseRecord, RunRecord, Status};

/// A latency in the unit that keeps three significant digits readable.
pub fn format_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} us", ns / 1_000.0)
    } else if ns < 1_000_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else {
        format!("{:.2} s", ns / 1_000_000_000.0)
    }
}

/// A rate with an SI prefix (`1.25 M`).
pub fn format_rate(value: f64) -> String {
    if value >= 1e9 {
        format!("{:.2} G", value / 1e9)
    } else if value >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// A byte count with a binary prefix (`64 KiB`).
pub fn format_bytes(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

fn transport_label(case: &CaseRecord) -> String {
    let options: Vec<String> = case
        .id
        .split('/')
        .nth(1)
        .and_then(|t| t.split_once('[').map(|(_, rest)| rest.trim_end_matches(']').to_owned()))
        .into_iter()
        .collect();
    if options.is_empty() {
        case.transport.clone()
    } else {
        format!("{} [{}]", case.transport, options.join(","))
    }
}

fn size_label(case: &CaseRecord) -> String {
    match case.reply_bytes {
        Some(reply) if reply != case.message_bytes => {
            format!("{}->{}", format_bytes(case.message_bytes), format_bytes(reply))
        }
        _ => format_bytes(case.message_bytes),
    }
}

/// Renders the summary table: one row per case, grouped by scenario.
pub fn render(record: &RunRecord) -> String {
    let header = [
        "scenario",
        "transport",
        "placement",
        "size",
        "p50",
        "p99",
        "p99.9",
        "max",
        "msgs/s",
        "CPU/msg",
        "status",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for case in &record.cases {
        let summary = case.summary.as_ref();
        let latency = summary.and_then(|s| s.latency_ns);
        let cell = |f: fn(&ipcbench_harness::record::Percentiles) -> f64| {
            latency.map(|l| format_ns(f(&l))).unwrap_or_else(|| "-".into())
        };
        let placement = match case.cores.server {
            Some(server) => format!("{} {}/{}", case.cores.label, case.cores.client, server),
            None => format!("{} {}", case.cores.label, case.cores.client),
        };
        let status = match case.status {
            Status::Ok if !case.flags.is_empty() => "ok*".to_owned(),
            Status::Ok => "ok".to_owned(),
            Status::Unsupported => "unsupported".to_owned(),
            Status::Failed => "FAILED".to_owned(),
        };
        rows.push(vec![
            case.scenario.clone(),
            transport_label(case),
            placement,
            size_label(case),
            cell(|l| l.p50),
            cell(|l| l.p99),
            cell(|l| l.p999),
            cell(|l| l.max),
            summary
                .map(|s| format_rate(s.messages_per_s))
                .unwrap_or_else(|| "-".into()),
            summary
                .and_then(|s| s.cpu_ns_per_message)
                .map(format_ns)
                .unwrap_or_else(|| "-".into()),
            status,
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let numeric = |i: usize| (4..=9).contains(&i);
    let line = |cells: &[String]| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if numeric(i) {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = String::new();
    out.push_str(&line(&header.map(String::from)));
    out.push('\n');
    out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    let notes: Vec<String> = record
        .cases
        .iter()
        .filter_map(|c| match (&c.status, &c.reason) {
            (Status::Ok, _) if !c.flags.is_empty() => Some(format!("  * {}: {}", c.id, c.flags.join("; "))),
            (Status::Ok, _) => None,
            (_, Some(reason)) => Some(format!("  {}: {reason}", c.id)),
            (_, None) => None,
        })
        .collect();
    if !notes.is_empty() {
        out.push_str("\nNotes:\n");
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_keep_three_digits() {
        assert_eq!(format_ns(850.0), "850 ns");
        assert_eq!(format_ns(12_345.0), "12.35 us");
        assert_eq!(format_ns(2_500_000.0), "2.50 ms");
        assert_eq!(format_bytes(65536), "64 KiB");
        assert_eq!(format_bytes(26), "26 B");
        assert_eq!(format_rate(1_250_000.0), "1.25 M");
    }
}
