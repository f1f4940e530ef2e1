//! `cases.csv`: one row per case with its headline figures, quoted as RFC 4180 asks
//! (CRLF line ends; a field holding a comma, quote or line break is quoted, quotes doubled).

use ipcbench_record::{CaseRecord, Percentiles, RunRecord, Status};

use crate::cases;

/// The metrics whose 95% interval gets a low/high column pair.
const CI_METRICS: [&str; 5] = [
    "latency_p50_ns",
    "latency_p99_ns",
    "messages_per_s",
    "bytes_per_s",
    "cpu_ns_per_message",
];

/// The header row's fields.
fn header() -> Vec<String> {
    let mut h: Vec<String> = [
        "id",
        "scenario",
        "transport",
        "options",
        "peer_mode",
        "placement",
        "client_core",
        "server_core",
        "message_bytes",
        "reply_bytes",
        "total_bytes",
        "window",
        "delay_ms",
        "connections",
        "rate_per_connection_hz",
        "status",
        "reason",
        "flags",
        "n_trials",
    ]
    .map(String::from)
    .to_vec();
    for p in ["min", "p50", "p90", "p99", "p999", "p9999", "max", "mean", "stdev"] {
        h.push(format!("latency_{p}_ns"));
    }
    for p in ["p50", "p99", "p999", "max"] {
        h.push(format!("latency_corrected_{p}_ns"));
    }
    for m in [
        "messages_per_s",
        "bytes_per_s",
        "cpu_ns_per_message",
        "cpu_ns_per_byte",
        "client_cpu_ns_per_byte",
        "server_cpu_ns_per_byte",
        "fraction_of_limit",
    ] {
        h.push(m.to_owned());
    }
    for m in CI_METRICS {
        h.push(format!("{m}_ci95_low"));
        h.push(format!("{m}_ci95_high"));
    }
    h
}

fn number(value: Option<f64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn whole(value: Option<u64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn row(case: &CaseRecord) -> Vec<String> {
    let summary = case.summary.as_ref();
    let latency = summary.and_then(|s| s.latency_ns);
    let corrected = summary.and_then(|s| s.latency_corrected_ns);
    let status = match case.status {
        Status::Ok => "ok",
        Status::Unsupported => "unsupported",
        Status::Failed => "failed",
    };
    let mut r = vec![
        case.id.clone(),
        case.scenario.clone(),
        case.transport.clone(),
        cases::options_label(case).unwrap_or_default(),
        case.peer_mode.clone(),
        case.cores.label.clone(),
        case.cores.client.to_string(),
        whole(case.cores.server.map(|s| s as u64)),
        case.message_bytes.to_string(),
        whole(case.reply_bytes),
        whole(case.total_bytes),
        whole(case.window),
        number(case.delay_ms),
        whole(case.connections),
        number(case.rate_per_connection_hz),
        status.to_owned(),
        case.reason.clone().unwrap_or_default(),
        case.flags.join("; "),
        summary.map(|s| s.n_trials.to_string()).unwrap_or_else(|| "0".into()),
    ];
    let fields: [fn(&Percentiles) -> f64; 9] = [
        |p| p.min,
        |p| p.p50,
        |p| p.p90,
        |p| p.p99,
        |p| p.p999,
        |p| p.p9999,
        |p| p.max,
        |p| p.mean,
        |p| p.stdev,
    ];
    for f in fields {
        r.push(number(latency.map(|l| f(&l))));
    }
    let corrected_fields: [fn(&Percentiles) -> f64; 4] = [|p| p.p50, |p| p.p99, |p| p.p999, |p| p.max];
    for f in corrected_fields {
        r.push(number(corrected.map(|l| f(&l))));
    }
    r.push(number(summary.map(|s| s.messages_per_s)));
    r.push(number(summary.map(|s| s.bytes_per_s)));
    r.push(number(summary.and_then(|s| s.cpu_ns_per_message)));
    r.push(number(summary.and_then(|s| s.cpu_ns_per_byte)));
    r.push(number(summary.and_then(|s| s.client_cpu_ns_per_byte)));
    r.push(number(summary.and_then(|s| s.server_cpu_ns_per_byte)));
    r.push(number(summary.and_then(|s| s.fraction_of_limit)));
    for m in CI_METRICS {
        let interval = summary.and_then(|s| s.ci95.get(m));
        r.push(number(interval.map(|i| i[0])));
        r.push(number(interval.map(|i| i[1])));
    }
    r
}

/// Quotes a field when RFC 4180 requires it.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn line(fields: &[String]) -> String {
    let mut out = fields.iter().map(|f| quote(f)).collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    out
}

/// `cases.csv`: a header and one row per case in plan order; numbers in full precision
/// (unit in the column name), empty where a figure does not apply.
pub fn cases_csv(record: &RunRecord) -> String {
    let mut out = line(&header());
    for case in &record.cases {
        out.push_str(&line(&row(case)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_rfc_4180() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn column_names_are_unique() {
        let h = header();
        let names: std::collections::BTreeSet<_> = h.iter().collect();
        assert_eq!(names.len(), h.len(), "duplicate column");
    }
}
