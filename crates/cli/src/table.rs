//! The summary table printed after a run.

use ipcbench_record::{CaseRecord, RunRecord, Status};

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

/// A throughput in bytes/s with a decimal prefix (`3.45 GB/s`).
pub fn format_throughput(bytes_per_s: f64) -> String {
    if bytes_per_s >= 1e9 {
        format!("{:.2} GB/s", bytes_per_s / 1e9)
    } else if bytes_per_s >= 1e6 {
        format!("{:.1} MB/s", bytes_per_s / 1e6)
    } else if bytes_per_s >= 1e3 {
        format!("{:.1} kB/s", bytes_per_s / 1e3)
    } else {
        format!("{bytes_per_s:.0} B/s")
    }
}

/// The transport and the options that differ from its defaults, from the case id; a buffer
/// size the kernel changed is shown with the value it applied (`sndbuf=1024→4608`).
fn transport_label(case: &CaseRecord) -> String {
    let options: Vec<String> = case
        .id
        .split('/')
        .nth(1)
        .and_then(|t| t.split_once('[').map(|(_, rest)| rest.trim_end_matches(']').to_owned()))
        .map(|label| label.split(',').map(|option| with_applied(case, option)).collect())
        .unwrap_or_default();
    if options.is_empty() {
        case.transport.clone()
    } else {
        format!("{} [{}]", case.transport, options.join(","))
    }
}

/// `sndbuf=1024` becomes `sndbuf=1024→4608` when the kernel applied 4608.
fn with_applied(case: &CaseRecord, option: &str) -> String {
    let Some((name, asked)) = option.split_once('=') else {
        return option.to_owned();
    };
    let key = match name {
        "sndbuf" => "send_buffer_bytes",
        "rcvbuf" => "recv_buffer_bytes",
        "pipebuf" => "pipe_buffer_bytes",
        _ => return option.to_owned(),
    };
    match case.applied_options.get(key).and_then(|v| v.as_u64()) {
        Some(applied) if applied.to_string() != asked => format!("{option}→{applied}"),
        _ => option.to_owned(),
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

fn placement_label(case: &CaseRecord) -> String {
    match case.cores.server {
        Some(server) => format!("{} {}/{}", case.cores.label, case.cores.client, server),
        None => format!("{} {}", case.cores.label, case.cores.client),
    }
}

fn status_label(case: &CaseRecord) -> String {
    match case.status {
        Status::Ok if !case.flags.is_empty() => "ok*".to_owned(),
        Status::Ok => "ok".to_owned(),
        Status::Unsupported => "unsupported".to_owned(),
        Status::Failed => "FAILED".to_owned(),
    }
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".into())
}

/// A fraction as a percentage (`41%`).
fn percent(fraction: f64) -> String {
    format!("{:.0}%", fraction * 100.0)
}

/// Lays out one table; columns whose index `numeric` accepts are right-aligned.
fn layout(header: &[&str], rows: &[Vec<String>], numeric: impl Fn(usize) -> bool) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
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
    out.push_str(&line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>()));
    out.push('\n');
    out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
    out.push('\n');
    for row in rows {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// Latency scenarios (pingpong and every scenario without a table of its own).
fn latency_table(cases: &[&CaseRecord]) -> String {
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
    let rows: Vec<Vec<String>> = cases
        .iter()
        .map(|case| {
            let summary = case.summary.as_ref();
            let latency = summary.and_then(|s| s.latency_ns);
            let cell = |f: fn(&ipcbench_record::Percentiles) -> f64| or_dash(latency.map(|l| format_ns(f(&l))));
            vec![
                case.scenario.clone(),
                transport_label(case),
                placement_label(case),
                size_label(case),
                cell(|l| l.p50),
                cell(|l| l.p99),
                cell(|l| l.p999),
                cell(|l| l.max),
                or_dash(summary.map(|s| format_rate(s.messages_per_s))),
                or_dash(summary.and_then(|s| s.cpu_ns_per_message).map(format_ns)),
                status_label(case),
            ]
        })
        .collect();
    layout(&header, &rows, |i| (4..=9).contains(&i))
}

/// `stream`: throughput, CPU per byte on each side, and the fraction of memcpy bandwidth.
fn stream_table(cases: &[&CaseRecord]) -> String {
    let header = [
        "scenario",
        "transport",
        "placement",
        "size",
        "total",
        "throughput",
        "msgs/s",
        "CPU/B client",
        "CPU/B server",
        "of memcpy",
        "status",
    ];
    let per_byte = |ns: Option<f64>| or_dash(ns.map(|ns| format!("{ns:.3} ns")));
    let rows: Vec<Vec<String>> = cases
        .iter()
        .map(|case| {
            let summary = case.summary.as_ref();
            vec![
                case.scenario.clone(),
                transport_label(case),
                placement_label(case),
                format_bytes(case.message_bytes),
                or_dash(case.total_bytes.map(format_bytes)),
                or_dash(summary.map(|s| format_throughput(s.bytes_per_s))),
                or_dash(summary.map(|s| format_rate(s.messages_per_s))),
                per_byte(summary.and_then(|s| s.client_cpu_ns_per_byte)),
                per_byte(summary.and_then(|s| s.server_cpu_ns_per_byte)),
                or_dash(summary.and_then(|s| s.fraction_of_limit).map(percent)),
                status_label(case),
            ]
        })
        .collect();
    layout(&header, &rows, |i| (4..=9).contains(&i))
}

/// `rpc`: throughput per window and delay, round trips, and the bandwidth-delay bound.
fn rpc_table(cases: &[&CaseRecord]) -> String {
    let header = [
        "scenario",
        "transport",
        "placement",
        "size",
        "window",
        "delay",
        "p50",
        "p99",
        "req/s",
        "throughput",
        "of BDP",
        "status",
    ];
    let rows: Vec<Vec<String>> = cases
        .iter()
        .map(|case| {
            let summary = case.summary.as_ref();
            let latency = summary.and_then(|s| s.latency_ns);
            vec![
                case.scenario.clone(),
                transport_label(case),
                placement_label(case),
                size_label(case),
                case.window.unwrap_or(1).to_string(),
                or_dash(case.delay_ms.map(|d| format!("{d} ms"))),
                or_dash(latency.map(|l| format_ns(l.p50))),
                or_dash(latency.map(|l| format_ns(l.p99))),
                or_dash(summary.map(|s| format_rate(s.messages_per_s))),
                or_dash(summary.map(|s| format_throughput(s.bytes_per_s))),
                or_dash(case.extra.get("fraction_of_bdp").and_then(|v| v.as_f64()).map(percent)),
                status_label(case),
            ]
        })
        .collect();
    layout(&header, &rows, |i| (4..=10).contains(&i))
}

/// A case's numeric extra figure.
fn extra(case: &CaseRecord, key: &str) -> Option<f64> {
    case.extra.get(key).and_then(|v| v.as_f64())
}

/// A difference of latencies, which noise can make negative (`-1.20 us`).
fn format_signed_ns(ns: f64) -> String {
    if ns < 0.0 {
        format!("-{}", format_ns(-ns))
    } else {
        format_ns(ns)
    }
}

/// `load`: corrected (from the intended send time) and uncorrected latency, achieved rate
/// against the target (the sends the schedule intended in the measured phase, per second:
/// `connections x rate` for the uniform schedule); a shortfall over 1% is marked in the table
/// and explained in the notes.
fn load_table(cases: &[&CaseRecord]) -> String {
    let header = [
        "scenario",
        "transport",
        "placement",
        "size",
        "conns",
        "target/s",
        "achieved/s",
        "vs target",
        "p50 corr",
        "p99 corr",
        "p99.9 corr",
        "p50 raw",
        "p99 raw",
        "p99.9 raw",
        "status",
    ];
    let rows: Vec<Vec<String>> = cases
        .iter()
        .map(|case| {
            let summary = case.summary.as_ref();
            let raw = summary.and_then(|s| s.latency_ns);
            let corrected = summary.and_then(|s| s.latency_corrected_ns);
            let versus = extra(case, "rate_shortfall_max").map(|s| {
                if s > 0.01 {
                    format!("-{:.1}% SHORT", s * 100.0)
                } else {
                    format!("-{:.1}%", s * 100.0)
                }
            });
            vec![
                case.scenario.clone(),
                transport_label(case),
                placement_label(case),
                size_label(case),
                or_dash(case.connections.map(|c| c.to_string())),
                or_dash(extra(case, "scheduled_messages_per_s").map(format_rate)),
                or_dash(extra(case, "achieved_messages_per_s").map(format_rate)),
                or_dash(versus),
                or_dash(corrected.map(|l| format_ns(l.p50))),
                or_dash(corrected.map(|l| format_ns(l.p99))),
                or_dash(corrected.map(|l| format_ns(l.p999))),
                or_dash(raw.map(|l| format_ns(l.p50))),
                or_dash(raw.map(|l| format_ns(l.p99))),
                or_dash(raw.map(|l| format_ns(l.p999))),
                status_label(case),
            ]
        })
        .collect();
    layout(&header, &rows, |i| (4..=13).contains(&i))
}

/// `proxy`: the direct round trip, the one through the relay, and the hop's cost between them.
fn proxy_table(cases: &[&CaseRecord]) -> String {
    let header = [
        "scenario",
        "front->back",
        "convert",
        "placement",
        "size",
        "direct p50",
        "proxied p50",
        "hop p50",
        "direct p99",
        "proxied p99",
        "hop p99",
        "relay CPU/msg",
        "relay in / out",
        "status",
    ];
    let rows: Vec<Vec<String>> = cases
        .iter()
        .map(|case| {
            let proxied = case.summary.as_ref().and_then(|s| s.latency_ns);
            let ns = |key: &str| or_dash(extra(case, key).map(format_signed_ns));
            let in_out = match (
                extra(case, "relay_in_bytes_per_s"),
                extra(case, "relay_out_bytes_per_s"),
            ) {
                (Some(i), Some(o)) => format!("{} / {}", format_throughput(i), format_throughput(o)),
                _ => "-".into(),
            };
            vec![
                case.scenario.clone(),
                transport_label(case),
                if case.id.contains("/text") { "text" } else { "none" }.into(),
                placement_label(case),
                size_label(case),
                ns("direct_p50_ns"),
                or_dash(proxied.map(|l| format_ns(l.p50))),
                ns("hop_added_p50_ns"),
                ns("direct_p99_ns"),
                or_dash(proxied.map(|l| format_ns(l.p99))),
                ns("hop_added_p99_ns"),
                ns("relay_cpu_ns_per_message"),
                in_out,
                status_label(case),
            ]
        })
        .collect();
    layout(&header, &rows, |i| (5..=12).contains(&i))
}

/// `conn-cost`: bytes per connection fitted over the connection count.
fn conn_cost_table(cases: &[&CaseRecord]) -> String {
    let header = [
        "scenario",
        "transport",
        "placement",
        "conns",
        "server RSS/conn",
        "RSS residual",
        "kernel slab/conn",
        "slab residual",
        "sockets/conn",
        "status",
    ];
    let bytes = |v: Option<f64>| or_dash(v.map(|b| format!("{b:.0} B")));
    let rows: Vec<Vec<String>> = cases
        .iter()
        .map(|case| {
            vec![
                case.scenario.clone(),
                transport_label(case),
                placement_label(case),
                or_dash(case.connections.map(|c| c.to_string())),
                bytes(extra(case, "server_rss_bytes_per_connection")),
                bytes(extra(case, "server_rss_residual_bytes")),
                bytes(extra(case, "kernel_slab_bytes_per_connection")),
                bytes(extra(case, "kernel_slab_residual_bytes")),
                or_dash(extra(case, "sockets_per_connection").map(|s| format!("{s:.2}"))),
                status_label(case),
            ]
        })
        .collect();
    let mut out = layout(&header, &rows, |i| (3..=8).contains(&i));
    out.push_str("(kernel slab and sockets count both ends of each loopback connection)\n");
    out
}

/// Renders the summary: one table per kind of scenario (latency, stream, rpc), each with the
/// columns that matter for it, then notes on flagged, failed and unsupported cases.
pub fn render(record: &RunRecord) -> String {
    let of = |kind: &str| -> Vec<&CaseRecord> { record.cases.iter().filter(|c| c.scenario == kind).collect() };
    let latency: Vec<&CaseRecord> = record
        .cases
        .iter()
        .filter(|c| !["stream", "rpc", "load", "proxy", "conn-cost"].contains(&c.scenario.as_str()))
        .collect();
    let tables = [
        (latency, latency_table as fn(&[&CaseRecord]) -> String),
        (of("stream"), stream_table),
        (of("rpc"), rpc_table),
        (of("load"), load_table),
        (of("proxy"), proxy_table),
        (of("conn-cost"), conn_cost_table),
    ];
    let mut out = String::new();
    for (cases, table) in tables {
        if cases.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&table(&cases));
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
        assert_eq!(format_throughput(3_454_000_000.0), "3.45 GB/s");
        assert_eq!(format_throughput(819_200.0), "819.2 kB/s");
    }

    fn case(id: &str, scenario: &str, transport: &str, extra: serde_json::Value) -> CaseRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "scenario": scenario, "transport": transport, "peer_mode": "process",
            "transport_options": {}, "message_bytes": 256, "connections": 10000,
            "cores": {"client": 0, "server": 1, "label": "cross-core"},
            "status": "ok", "trials": [], "extra": extra,
        }))
        .unwrap()
    }

    #[test]
    fn load_rows_show_the_rate_against_the_target_and_flag_a_shortfall() {
        let short = case(
            "load/tcp/256B/c10000/r5Hz/c0s1",
            "load",
            "tcp",
            serde_json::json!({"scheduled_messages_per_s": 50000.0, "achieved_messages_per_s": 24600.0,
                               "rate_shortfall_max": 0.508}),
        );
        let fine = case(
            "load/uds/256B/c10000/r5Hz/c0s1",
            "load",
            "uds",
            serde_json::json!({"scheduled_messages_per_s": 50000.0, "achieved_messages_per_s": 49990.0,
                               "rate_shortfall_max": 0.0002}),
        );
        let table = load_table(&[&short, &fine]);
        assert!(table.contains("p99.9 corr") && table.contains("p99.9 raw"), "{table}");
        let rows: Vec<&str> = table.lines().skip(2).collect();
        assert!(
            rows[0].contains("-50.8% SHORT") && rows[0].contains("24.6 k"),
            "{table}"
        );
        assert!(rows[1].contains("-0.0%") && !rows[1].contains("SHORT"), "{table}");
    }

    #[test]
    fn proxy_and_conn_cost_rows_show_their_figures() {
        let proxy = case(
            "proxy/uds->tcp/64B/text/c0s1",
            "proxy",
            "uds->tcp",
            serde_json::json!({"direct_p50_ns": 40000.0, "hop_added_p50_ns": 9500.0, "hop_added_p99_ns": -1200.0}),
        );
        let table = proxy_table(&[&proxy]);
        assert!(table.contains("uds->tcp") && table.contains("text"), "{table}");
        assert!(
            table.contains("40.00 us") && table.contains("9.50 us") && table.contains("-1.20 us"),
            "{table}"
        );
        let cost = case(
            "conn-cost/tcp/64B/c10000/c0s1",
            "conn-cost",
            "tcp",
            serde_json::json!({"server_rss_bytes_per_connection": 73.2, "kernel_slab_bytes_per_connection": 8691.0,
                               "sockets_per_connection": 2.0}),
        );
        let table = conn_cost_table(&[&cost]);
        assert!(
            table.contains("73 B") && table.contains("8691 B") && table.contains("2.00"),
            "{table}"
        );
        assert!(table.contains("both ends"), "{table}");
    }
}
