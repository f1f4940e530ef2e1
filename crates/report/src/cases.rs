//! Views of the cases that the charts and tables share: labels, series keys and the merged
//! latency histogram of a case.

use hdrhistogram::Histogram;
use ipcbench_record::stats;
use ipcbench_record::{CaseId, CaseRecord, Status};

use crate::{ReportError, format};

/// The transports in the order tables and legends list them; others follow by name.
const TRANSPORT_ORDER: [&str; 6] = ["tcp", "uds", "pipe", "shm", "inproc", "null"];

/// True when the case ran to completion and has headline figures to show.
pub(crate) fn is_measured(case: &CaseRecord) -> bool {
    case.status == Status::Ok && case.summary.is_some()
}

/// The case's id as a typed value; `None` for an id that does not parse (a hand-edited
/// record), which then shows no options and no dimensions.
pub(crate) fn case_id(case: &CaseRecord) -> Option<CaseId> {
    case.id.parse().ok()
}

/// The options label of a case as its id spells it (`nodelay=false` from
/// `pingpong/tcp[nodelay=false]/64B/c0s1`), if any.
pub(crate) fn options_label(case: &CaseRecord) -> Option<String> {
    case_id(case)?.options_label()
}

/// True when the relay of a proxy case converts to text framing (the id's `text` dimension).
pub(crate) fn converts_to_text(case: &CaseRecord) -> bool {
    case_id(case).is_some_and(|id| id.text)
}

/// `tcp`, or `tcp [nodelay=false]` when the case set transport options.
pub(crate) fn transport_label(case: &CaseRecord) -> String {
    match options_label(case) {
        Some(options) => format!("{} [{options}]", case.transport),
        None => case.transport.clone(),
    }
}

/// [`transport_label`] with the value the kernel applied after each buffer size it changed:
/// `tcp [sndbuf=1024→4608]`.
pub(crate) fn transport_label_applied(case: &CaseRecord) -> String {
    let options: Vec<String> = case_id(case)
        .map(|id| id.options.iter().map(|option| with_applied(case, option)).collect())
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

/// The sort key and legend label of one line on a chart: transport (with options), placement,
/// and any dimension the chart does not put on an axis.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SeriesKey {
    rank: usize,
    /// Transport with its options label.
    pub transport: String,
    /// `cross-core`, `same-core`, `no-peer`.
    pub placement: String,
    /// The numbers behind `extra`, so that `10 conn` sorts before `200 conn`.
    order: Vec<u64>,
    /// Further dimensions (`reply 12 B`, `w8`), already formatted.
    pub extra: Vec<String>,
}

impl SeriesKey {
    /// The key of `case` on a chart whose axes show the message size (and, for rpc, the window
    /// and delay): the other dimensions go into the label.
    pub(crate) fn of(case: &CaseRecord, axes_show: &[Dimension]) -> SeriesKey {
        let mut extra = Vec::new();
        let mut order = Vec::new();
        if let Some(reply) = case.reply_bytes
            && reply != case.message_bytes
        {
            extra.push(format!("reply {}", format::bytes(reply)));
            order.push(reply);
        }
        if !axes_show.contains(&Dimension::Size) {
            extra.push(format::bytes(case.message_bytes));
            order.push(case.message_bytes);
        }
        if let Some(window) = case.window
            && !axes_show.contains(&Dimension::Window)
        {
            extra.push(format!("window {window}"));
            order.push(window);
        }
        if let Some(delay) = case.delay_ms
            && !axes_show.contains(&Dimension::Delay)
        {
            extra.push(format!("delay {} ms", format::significant(delay, 3)));
            order.push((delay.max(0.0) * 1000.0) as u64);
        }
        if let Some(connections) = case.connections {
            extra.push(format!("{connections} conn"));
            order.push(connections);
        }
        if let Some(rate) = case.rate_per_connection_hz {
            extra.push(format!("{} Hz/conn", format::significant(rate, 3)));
            order.push((rate.max(0.0) * 1000.0) as u64);
        }
        if converts_to_text(case) {
            extra.push("text".to_owned());
        }
        let rank = TRANSPORT_ORDER
            .iter()
            .position(|t| *t == case.transport)
            .unwrap_or(TRANSPORT_ORDER.len());
        SeriesKey {
            rank,
            transport: transport_label(case),
            placement: case.cores.label.clone(),
            order,
            extra,
        }
    }

    /// `tcp · cross-core`, `shm [wait=spin] · same-core · reply 12 B`.
    pub(crate) fn label(&self) -> String {
        let mut parts = vec![self.transport.clone(), self.placement.clone()];
        parts.extend(self.extra.iter().cloned());
        parts.join(" · ")
    }
}

/// A case dimension that a chart may put on an axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dimension {
    /// `message_bytes`.
    Size,
    /// `window`.
    Window,
    /// `delay_ms`.
    Delay,
}

/// Which histogram of a trial to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    /// `histogram_v2`: latency as measured.
    Measured,
    /// `histogram_corrected_v2`: latency from the intended send time (load).
    Corrected,
}

/// All trials' histograms of a case merged into one, or `None` when no trial stored one.
///
/// # Errors
/// [`ReportError::Histogram`] when a stored histogram cannot be decoded or merged.
pub(crate) fn merged_histogram(case: &CaseRecord, which: Which) -> Result<Option<Histogram<u64>>, ReportError> {
    let mut merged: Option<Histogram<u64>> = None;
    for trial in &case.trials {
        let text = match which {
            Which::Measured => &trial.histogram_v2,
            Which::Corrected => &trial.histogram_corrected_v2,
        };
        let Some(text) = text else { continue };
        let histogram = stats::decode_histogram(text).map_err(|message| ReportError::Histogram {
            case_id: case.id.clone(),
            message,
        })?;
        match &mut merged {
            None => merged = Some(histogram),
            Some(all) => all.add(&histogram).map_err(|e| ReportError::Histogram {
                case_id: case.id.clone(),
                message: format!("cannot merge the trials' histograms: {e:?}"),
            })?,
        }
    }
    Ok(merged.filter(|h| !h.is_empty()))
}

/// The scenarios of a record in the order of first appearance.
pub(crate) fn scenarios(cases: &[CaseRecord]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for case in cases {
        if !seen.contains(&case.scenario) {
            seen.push(case.scenario.clone());
        }
    }
    seen
}

/// A file-name-safe form of a case id: `pingpong/tcp[nodelay=false]/64B/c0s1` becomes
/// `pingpong_tcp-nodelay=false_64B_c0s1`.
pub(crate) fn file_stem(id: &str) -> String {
    let id = id.replace("->", "-to-");
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '=' | ',' | '+' => out.push(c),
            '[' => out.push('-'),
            ']' => {}
            _ => out.push('_'),
        }
    }
    let trimmed = out.trim_matches('_').replace("__", "_");
    if trimmed.is_empty() { "case".to_owned() } else { trimmed }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe_and_readable() {
        assert_eq!(file_stem("pingpong/tcp/64B/c0s1"), "pingpong_tcp_64B_c0s1");
        assert_eq!(
            file_stem("pingpong/tcp[nodelay=false]/64B/c0s1"),
            "pingpong_tcp-nodelay=false_64B_c0s1"
        );
        assert_eq!(file_stem("proxy/tcp->uds/1024B/c0s1"), "proxy_tcp-to-uds_1024B_c0s1");
        assert_eq!(file_stem("///"), "case");
    }
}
