//! The relative summary above a scenario's table (hyperfine's "N times faster" habit): per size
//! and placement, the fastest transport and how many times slower each other one is.
//!
//! Computed from the run alone. The figure is the case's headline: the p50 round trip for
//! `pingpong` and `rpc` (lower is faster), bytes/s for `stream` (higher is faster). A ratio's
//! interval comes from the two cases' 95% intervals of the median, taken at their far ends
//! (slower case's low end over the faster's high end, and the other way round): conservative,
//! so an interval that reaches 1.00 means the run cannot tell the two apart. Cases are grouped
//! by everything in their id but the transport and its options, so only cases that differ in
//! the transport alone are put side by side.

use ipcbench_record::{CaseRecord, Summary};

use crate::{cases, doc, format};

/// Which way a scenario's headline figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Lower,
    Higher,
}

/// Picks a case's headline figure out of its summary.
type Figure = fn(&Summary) -> Option<f64>;

/// The headline of a scenario that has a relative summary: which way is better, the figure and
/// the name of its interval in `ci95`.
fn headline(scenario: &str) -> Option<(Better, Figure, &'static str)> {
    match scenario {
        "pingpong" | "rpc" => Some((
            Better::Lower,
            |s| s.latency_ns.as_ref().map(|l| l.p50),
            "latency_p50_ns",
        )),
        "stream" => Some((Better::Higher, |s| Some(s.bytes_per_s), "bytes_per_s")),
        _ => None,
    }
}

/// One case in a comparison: its label, figure and interval.
struct Entry {
    label: String,
    value: f64,
    interval: Option<[f64; 2]>,
}

/// The group of a case: its id without the transport and its options, with a readable title.
fn group_of(case: &CaseRecord) -> Option<(String, String)> {
    let mut id = cases::case_id(case)?;
    id.transport.clear();
    id.back_transport = None;
    id.options.clear();
    let mut title = vec![doc::size_text(case)];
    title.extend(id.window.map(|w| format!("window {w}")));
    title.extend(id.delay_ms.map(|d| format!("delay {d} ms")));
    title.extend(id.dimensions.iter().cloned());
    title.push(doc::placement_text(case));
    Some((id.to_string(), title.join(", ")))
}

/// The relative summary of `scenario`: a heading line and one line per group of at least two
/// measured cases; empty when the scenario has no such group or no headline figure.
pub(crate) fn relative_summary(cases_of_run: &[CaseRecord], scenario: &str) -> Vec<String> {
    let Some((better, figure, ci_key)) = headline(scenario) else {
        return Vec::new();
    };
    let mut groups: Vec<(String, String, Vec<Entry>)> = Vec::new();
    for case in cases_of_run
        .iter()
        .filter(|c| c.scenario == scenario && cases::is_measured(c))
    {
        let Some(summary) = case.summary.as_ref() else { continue };
        let Some(value) = figure(summary).filter(|v| v.is_finite() && *v > 0.0) else {
            continue;
        };
        let Some((key, title)) = group_of(case) else { continue };
        let entry = Entry {
            label: cases::transport_label(case),
            value,
            interval: summary
                .ci95
                .get(ci_key)
                .copied()
                .filter(|[lo, hi]| *lo > 0.0 && hi >= lo),
        };
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, entries)) => entries.push(entry),
            None => groups.push((key, title, vec![entry])),
        }
    }
    let show = |v: f64| match better {
        Better::Lower => format::time_ns(v, 3),
        Better::Higher => format::rate(v, "B/s", 3),
    };
    let mut lines = Vec::new();
    for (_, title, mut entries) in groups.into_iter().filter(|(_, _, e)| e.len() >= 2) {
        entries.sort_by(|a, b| match better {
            Better::Lower => a.value.total_cmp(&b.value),
            Better::Higher => b.value.total_cmp(&a.value),
        });
        let fastest = &entries[0];
        let others: Vec<String> = entries[1..]
            .iter()
            .map(|other| {
                // As a time ratio: p50 over p50, or bytes/s the other way round; the interval
                // from the far ends of both.
                let (numerator, denominator) = match better {
                    Better::Lower => (other, fastest),
                    Better::Higher => (fastest, other),
                };
                let ratio = numerator.value / denominator.value;
                let interval = numerator
                    .interval
                    .zip(denominator.interval)
                    .map(|(n, d)| [n[0] / d[1], n[1] / d[0]]);
                let interval = match interval {
                    Some([lo, hi]) if lo <= 1.0 => format!(" ({}–{}x: not told apart)", times(lo), times(hi)),
                    Some([lo, hi]) => format!(" ({}–{}x)", times(lo), times(hi)),
                    None => String::new(),
                };
                format!("{} {}x{interval}", other.label, times(ratio))
            })
            .collect();
        lines.push(format!(
            "{title}: {} is fastest ({}); slower: {}",
            fastest.label,
            show(fastest.value),
            others.join(", ")
        ));
    }
    if !lines.is_empty() {
        let what = match better {
            Better::Lower => "p50 round trip",
            Better::Higher => "bytes/s",
        };
        lines.insert(
            0,
            format!(
                "Relative ({what}; how many times slower than the fastest transport of the same size and placement, \
                 with the interval from both cases' 95% intervals):"
            ),
        );
    }
    lines
}

/// A ratio with three significant digits, trailing zeros kept (`2.00`, `57.7`, `111`).
fn times(ratio: f64) -> String {
    match ratio {
        r if r < 10.0 => format!("{r:.2}"),
        r if r < 100.0 => format!("{r:.1}"),
        r => format!("{r:.0}"),
    }
}
