//! The tables that `report.md`, `report.html` and the terminal summary share, built once from
//! the record: one column model per scenario, each column marked with the renderings that show it.

use ipcbench_record::finish::SHORTFALL_LIMIT;
use ipcbench_record::{CaseRecord, Percentiles, RunRecord, Status, Summary};

use crate::{Stamp, cases, format};

/// A table of text cells.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Table {
    pub header: Vec<String>,
    /// True for right-aligned (numeric) columns.
    pub numeric: Vec<bool>,
    pub rows: Vec<Vec<String>>,
    /// A line explaining some of the columns, shown under the table (terminal tables only).
    pub footnote: Option<&'static str>,
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
    // The other machines: each agent that ran a side of some cases.
    for agent in &record.agents {
        let env = &agent.environment;
        facts.push((
            format!("agent {}", agent.address),
            format!(
                "{} side of {} case(s) on {}: {}, {} cores, {}; kernel {} ({}); ipcbench {} (control protocol {}); \
                 load average {:.2} at start",
                agent.role,
                agent.case_ids.len(),
                env.hostname,
                env.cpu_model,
                env.cores,
                env.virtualization.as_deref().unwrap_or("no virtualization detected"),
                env.kernel,
                env.os,
                agent.version,
                agent.protocol_version,
                env.load_average_1m
            ),
        ));
    }
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

pub(crate) fn size_text(case: &CaseRecord) -> String {
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

/// Which rendering a table is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// `report.md` and `report.html`.
    Document,
    /// The summary printed after a run.
    Terminal,
}

/// Which renderings show a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Everywhere,
    Document,
    Terminal,
}

impl Shown {
    fn includes(self, output: Output) -> bool {
        match self {
            Shown::Everywhere => true,
            Shown::Document => output == Output::Document,
            Shown::Terminal => output == Output::Terminal,
        }
    }
}

/// The scenarios whose terminal summary differs; every other scenario reads as a latency one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Latency,
    Stream,
    Rpc,
    Load,
    Proxy,
    ConnCost,
    Balance,
    Http,
}

impl Kind {
    fn of(scenario: &str) -> Kind {
        match scenario {
            "stream" => Kind::Stream,
            "rpc" => Kind::Rpc,
            "load" => Kind::Load,
            "proxy" => Kind::Proxy,
            "conn-cost" => Kind::ConnCost,
            "balance" => Kind::Balance,
            "http" => Kind::Http,
            _ => Kind::Latency,
        }
    }
}

/// A column: header, numeric, the renderings that show it, and how a case fills its cell.
struct Column {
    header: &'static str,
    numeric: bool,
    shown: Shown,
    cell: Box<dyn Fn(&CaseRecord) -> String>,
}

fn column(header: &'static str, numeric: bool, shown: Shown, cell: impl Fn(&CaseRecord) -> String + 'static) -> Column {
    Column {
        header,
        numeric,
        shown,
        cell: Box::new(cell),
    }
}

const DASH: &str = "–";

fn or_dash(text: Option<String>) -> String {
    text.unwrap_or_else(|| DASH.to_owned())
}

/// How the server of a `load` or `conn-cost` case held its connections.
fn server_model_text(case: &CaseRecord) -> String {
    if fleet_dimension(case, "model=").is_some_and(|m| m.contains("thread")) {
        "thread/conn".to_owned()
    } else {
        "event loop".to_owned()
    }
}

/// The first dimension of a `load` case's id that starts with `prefix`.
fn fleet_dimension(case: &CaseRecord, prefix: &str) -> Option<String> {
    let id: ipcbench_record::CaseId = case.id.parse().ok()?;
    id.dimensions.into_iter().find(|d| d.starts_with(prefix))
}

/// What the capacity cases of a `load` scenario say together: per server model, the closed
/// loop's throughput (what wrk reports) over the capacity search's (what real traffic gets),
/// with the interval the trials' ranges give, and the server's costs per request behind them.
pub(crate) fn capacity_findings(record: &RunRecord, scenario: &str) -> Vec<String> {
    if Kind::of(scenario) != Kind::Load {
        return Vec::new();
    }
    let of: Vec<&CaseRecord> = record
        .cases
        .iter()
        .filter(|c| c.scenario == scenario && extra(c, "capacity_msgs_per_s").is_some())
        .collect();
    let model = |c: &CaseRecord| fleet_dimension(c, "model=").unwrap_or_else(|| "model=event-loop".into());
    let mut models: Vec<String> = of.iter().map(|c| model(c)).collect();
    models.sort();
    models.dedup();
    let rate = |v: f64| format::rate(v, "msg/s", 3);
    let costs = |c: &CaseRecord| {
        format!(
            "{} system calls, {} wake-ups, {} context switches and {} of server CPU per request",
            extra(c, "server_syscalls_per_request").map_or_else(|| DASH.into(), |v| format!("{v:.2}")),
            extra(c, "server_wakeups_per_request").map_or_else(|| DASH.into(), |v| format!("{v:.2}")),
            extra(c, "server_context_switches_per_request").map_or_else(|| DASH.into(), |v| format!("{v:.2}")),
            extra(c, "server_cpu_ns_per_request").map_or_else(|| DASH.into(), |v| format::time_ns(v, 3)),
        )
    };
    let mut out = Vec::new();
    for m in models {
        let with: Vec<&&CaseRecord> = of.iter().filter(|c| model(c) == m).collect();
        let closed = with.iter().find(|c| fleet_dimension(c, "closed").is_some());
        let search = with.iter().find(|c| fleet_dimension(c, "search").is_some());
        let (Some(closed), Some(search)) = (closed, search) else {
            continue;
        };
        let get = |c: &CaseRecord, key: &str| extra(c, key).unwrap_or(f64::NAN);
        let (cm, cl, ch) = (
            get(closed, "capacity_msgs_per_s"),
            get(closed, "capacity_msgs_per_s_min"),
            get(closed, "capacity_msgs_per_s_max"),
        );
        let (sm, sl, sh) = (
            get(search, "capacity_msgs_per_s"),
            get(search, "capacity_msgs_per_s_min"),
            get(search, "capacity_msgs_per_s_max"),
        );
        if !(sm > 0.0 && sl > 0.0) {
            out.push(format!(
                "{}: the capacity search held no step, so there is no ratio to state",
                m.trim_start_matches("model=")
            ));
            continue;
        }
        out.push(format!(
            "{}: the closed loop of {} connections (wrk's way) gets {} ({} – {} over trials); the capacity search of {} connections at a low rate each holds {} ({} – {}) within its SLO: {:.1}x more with the closed loop (interval {:.1}x – {:.1}x). Closed loop: {}. Open loop at capacity: {}.",
            m.trim_start_matches("model="),
            closed.connections.unwrap_or(0),
            rate(cm),
            rate(cl),
            rate(ch),
            search.connections.unwrap_or(0),
            rate(sm),
            rate(sl),
            rate(sh),
            cm / sm,
            cl / sh,
            ch / sl,
            costs(closed),
            costs(search),
        ));
    }
    out
}

/// A numeric scenario figure of the case (`extra`).
fn extra(case: &CaseRecord, key: &str) -> Option<f64> {
    case.extra.get(key).and_then(|v| v.as_f64())
}

/// The dimensions of a `balance` case's id that start with one of `prefixes`, joined
/// (`state=postgres`, `synchronous_commit=off` -> `postgres synchronous_commit=off`).
fn balance_dimensions(case: &CaseRecord, prefixes: &[&str]) -> Option<String> {
    let id: ipcbench_record::CaseId = case.id.parse().ok()?;
    let parts: Vec<String> = id
        .dimensions
        .iter()
        .filter(|d| prefixes.iter().any(|p| d.starts_with(p)))
        .map(|d| {
            d.strip_prefix("policy=")
                .or_else(|| d.strip_prefix("state="))
                .unwrap_or(d)
                .to_owned()
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A latency percentile of the case: as measured, or (`corrected`) from the intended send time.
fn latency(corrected: bool, pick: fn(&Percentiles) -> f64) -> impl Fn(&CaseRecord) -> String {
    move |c| {
        let summary = c.summary.as_ref();
        let percentiles = if corrected {
            summary.and_then(|s| s.latency_corrected_ns)
        } else {
            summary.and_then(|s| s.latency_ns)
        };
        or_dash(percentiles.map(|l| format::time_ns(pick(&l), 3)))
    }
}

/// A figure of the summary, `–` without one.
fn summary_figure(figure: impl Fn(&Summary) -> Option<String> + 'static) -> impl Fn(&CaseRecord) -> String {
    move |c| or_dash(c.summary.as_ref().and_then(&figure))
}

/// The columns of one scenario's table for every rendering, in the order they read.
///
/// The documents show a column when any case has its figure; the terminal keeps the figures
/// that matter for the scenario's kind (the stream's CPU per byte on each side, the load's
/// rate against its schedule, the proxy hop's cost) and leaves out the rest.
fn columns(scenario: &str, of: &[&CaseRecord]) -> Vec<Column> {
    use Shown::{Document, Everywhere, Terminal};
    let kind = Kind::of(scenario);
    let any = |f: &dyn Fn(&CaseRecord) -> bool| of.iter().any(|c| f(c));
    let has_latency = any(&|c| c.summary.as_ref().is_some_and(|s| s.latency_ns.is_some()));
    let has_corrected = any(&|c| c.summary.as_ref().is_some_and(|s| s.latency_corrected_ns.is_some()));
    let count_rate = |v: f64| format::rate(v, "", 3).trim_end().to_owned();
    let time = |v: f64| format::time_ns(v, 3);

    let mut columns = vec![
        column("transport", false, Document, cases::transport_label),
        column("transport", false, Terminal, cases::transport_label_applied),
    ];
    if kind == Kind::Proxy {
        columns.push(column("convert", false, Terminal, |c| {
            if cases::converts_to_text(c) { "text" } else { "none" }.to_owned()
        }));
    }
    columns.push(column("placement", false, Everywhere, placement_text));
    columns.push(column("size", true, Everywhere, size_text));
    if kind == Kind::Http {
        columns.push(column("path", false, Everywhere, http_path));
        columns.push(column("hit ratio", true, Everywhere, |c| {
            or_dash(extra(c, "cache_hit_ratio").map(|r| format::significant(r, 3)))
        }));
    }
    if kind == Kind::Stream {
        columns.push(column("total", true, Terminal, |c| {
            or_dash(c.total_bytes.map(format::bytes))
        }));
    }
    if any(&|c| c.window.is_some()) {
        columns.push(column("window", true, Everywhere, |c| {
            or_dash(c.window.map(|w| w.to_string()))
        }));
    }
    if any(&|c| c.delay_ms.is_some()) {
        columns.push(column("delay", true, Everywhere, |c| {
            or_dash(c.delay_ms.map(|d| format!("{} ms", format::significant(d, 3))))
        }));
    }
    if any(&|c| c.connections.is_some()) {
        columns.push(column("connections", true, Everywhere, |c| {
            or_dash(c.connections.map(|n| n.to_string()))
        }));
    }
    if any(&|c| c.rate_per_connection_hz.is_some()) {
        columns.push(column("rate/conn", true, Everywhere, |c| {
            or_dash(
                c.rate_per_connection_hz
                    .map(|r| format!("{} Hz", format::significant(r, 3))),
            )
        }));
    }
    if kind == Kind::Balance {
        // What tells the balance cases apart: their id's dimensions (policy, state and its
        // options, membership change).
        columns.push(column("policy", false, Everywhere, |c| {
            or_dash(balance_dimensions(c, &["policy="]))
        }));
        columns.push(column("state", false, Everywhere, |c| {
            or_dash(balance_dimensions(
                c,
                &["state=", "persistence=", "synchronous_commit=", "synchronous="],
            ))
        }));
        if any(&|c| extra(c, "change_at_ns").is_some()) {
            columns.push(column("change", false, Everywhere, |c| {
                or_dash(balance_dimensions(c, &["add@", "remove@", "on_change="]))
            }));
        }
    }
    if kind == Kind::ConnCost && any(&|c| fleet_dimension(c, "model=").is_some()) {
        columns.push(column("server", false, Everywhere, server_model_text));
    }
    if kind == Kind::Load && any(&|c| extra(c, "capacity_msgs_per_s").is_some()) {
        columns.push(column("server", false, Everywhere, server_model_text));
        columns.push(column("mode", false, Everywhere, |c| {
            if fleet_dimension(c, "closed").is_some() {
                "closed".to_owned()
            } else if fleet_dimension(c, "search").is_some() {
                "search".to_owned()
            } else {
                "open".to_owned()
            }
        }));
        columns.push(column("capacity/s", true, Everywhere, move |c| {
            or_dash(extra(c, "capacity_msgs_per_s").map(count_rate))
        }));
        columns.push(column("capacity range", true, Document, move |c| {
            match (extra(c, "capacity_msgs_per_s_min"), extra(c, "capacity_msgs_per_s_max")) {
                (Some(lo), Some(hi)) => format!("{} – {}", count_rate(lo), count_rate(hi)),
                _ => DASH.to_owned(),
            }
        }));
        columns.push(column("srv syscalls/req", true, Everywhere, |c| {
            or_dash(extra(c, "server_syscalls_per_request").map(|v| format!("{v:.2}")))
        }));
        columns.push(column("srv wake-ups/req", true, Everywhere, |c| {
            or_dash(extra(c, "server_wakeups_per_request").map(|v| format!("{v:.2}")))
        }));
        columns.push(column("events/wake-up", true, Document, |c| {
            or_dash(extra(c, "server_events_per_wakeup").map(|v| format!("{v:.1}")))
        }));
        columns.push(column("srv csw/req", true, Document, |c| {
            or_dash(extra(c, "server_context_switches_per_request").map(|v| format!("{v:.2}")))
        }));
        columns.push(column("srv CPU/req", true, Everywhere, move |c| {
            or_dash(extra(c, "server_cpu_ns_per_request").map(time))
        }));
    }
    if kind == Kind::Load {
        columns.push(column("target/s", true, Terminal, move |c| {
            or_dash(extra(c, "scheduled_messages_per_s").map(count_rate))
        }));
        columns.push(column("achieved/s", true, Terminal, move |c| {
            or_dash(extra(c, "achieved_messages_per_s").map(count_rate))
        }));
        // A shortfall over the limit is marked here; the case's flag explains it in the notes.
        columns.push(column("vs target", true, Terminal, |c| {
            or_dash(extra(c, "rate_shortfall_max").map(|s| {
                let mark = if s > SHORTFALL_LIMIT { " SHORT" } else { "" };
                format!("-{:.1}%{mark}", s * 100.0)
            }))
        }));
    }
    if has_latency {
        columns.push(column("p50", true, Everywhere, latency(false, |l| l.p50)));
        columns.push(column(
            "p50 95% CI",
            true,
            Document,
            summary_figure(move |s| {
                let [lo, hi] = s.ci95.get("latency_p50_ns")?;
                Some(format!("{} – {}", time(*lo), time(*hi)))
            }),
        ));
        columns.push(column("p99", true, Everywhere, latency(false, |l| l.p99)));
        // The http table is wide with its own figures; the terminal keeps p50 and p99.
        let tail = if kind == Kind::Http { Document } else { Everywhere };
        columns.push(column("p99.9", true, tail, latency(false, |l| l.p999)));
        columns.push(column("max", true, tail, latency(false, |l| l.max)));
    }
    if has_corrected && kind == Kind::Http {
        columns.push(column(
            "p99 from intended start",
            true,
            Document,
            latency(true, |l| l.p99),
        ));
    } else if has_corrected {
        let corrected = |pick| latency(true, pick);
        columns.push(column("p99 from intended start", true, Document, corrected(|l| l.p99)));
        columns.push(column("p50 corr", true, Terminal, corrected(|l| l.p50)));
        columns.push(column("p99 corr", true, Terminal, corrected(|l| l.p99)));
        columns.push(column("p99.9 corr", true, Terminal, corrected(|l| l.p999)));
    }
    if kind == Kind::Balance {
        let figure = |key: &'static str| move |c: &CaseRecord| or_dash(extra(c, key).map(time));
        let count = |key: &'static str| move |c: &CaseRecord| or_dash(extra(c, key).map(|v| format!("{v:.0}")));
        columns.push(column("state p50", true, Everywhere, figure("state_p50_ns")));
        columns.push(column("state p99", true, Everywhere, figure("state_p99_ns")));
        columns.push(column("share max/mean", true, Everywhere, |c| {
            or_dash(extra(c, "backend_share_max_over_mean").map(|v| format!("{v:.2}")))
        }));
        columns.push(column("CPU/req bal+back+store", true, Everywhere, |c| {
            let part = |key| extra(c, key).unwrap_or(0.0);
            or_dash(extra(c, "balancer_cpu_ns_per_request").map(|b| {
                format::time_ns(
                    b + part("backends_cpu_ns_per_request") + part("store_cpu_ns_per_request"),
                    3,
                )
            }))
        }));
        columns.push(column("stale", true, Everywhere, count("stale_reads")));
        columns.push(column("broken", true, Everywhere, count("broken_connections")));
        columns.push(column("failed", true, Everywhere, count("failed_requests")));
        columns.push(column("lost", true, Everywhere, count("lost_updates")));
    }
    if kind == Kind::Proxy {
        let figure = |key: &'static str| move |c: &CaseRecord| or_dash(extra(c, key).map(time));
        columns.push(column("direct p50", true, Terminal, figure("direct_p50_ns")));
        columns.push(column("hop p50", true, Terminal, figure("hop_added_p50_ns")));
        columns.push(column("direct p99", true, Terminal, figure("direct_p99_ns")));
        columns.push(column("hop p99", true, Terminal, figure("hop_added_p99_ns")));
        columns.push(column(
            "relay CPU/msg",
            true,
            Terminal,
            figure("relay_cpu_ns_per_message"),
        ));
        columns.push(column("relay in / out", true, Terminal, |c| {
            match (extra(c, "relay_in_bytes_per_s"), extra(c, "relay_out_bytes_per_s")) {
                (Some(i), Some(o)) => format!("{} / {}", format::rate(i, "B/s", 3), format::rate(o, "B/s", 3)),
                _ => DASH.to_owned(),
            }
        }));
    }
    if kind == Kind::Http {
        let figure = |key: &'static str| move |c: &CaseRecord| or_dash(extra(c, key).map(time));
        let bytes = |key: &'static str| move |c: &CaseRecord| or_dash(extra(c, key).map(format::bytes_approx));
        let rate = |key: &'static str| move |c: &CaseRecord| or_dash(extra(c, key).map(count_rate));
        // The direct path (client -> origin over the front protocol) of the same trials: the
        // preset's "direct h1" and "direct h2".
        columns.push(column("direct p50", true, Everywhere, figure("direct_p50_ns")));
        columns.push(column("hop p50", true, Everywhere, figure("hop_added_p50_ns")));
        columns.push(column("hop p50 95% CI", true, Document, move |c| {
            match (extra(c, "hop_added_p50_ns_lo"), extra(c, "hop_added_p50_ns_hi")) {
                (Some(lo), Some(hi)) => format!("{} – {}", time(lo), time(hi)),
                _ => DASH.to_owned(),
            }
        }));
        columns.push(column("hop p99", true, Everywhere, figure("hop_added_p99_ns")));
        columns.push(column("in/s", true, Everywhere, rate("requests_per_s_in")));
        columns.push(column("out/s", true, Everywhere, rate("requests_per_s_out")));
        columns.push(column(
            "relay CPU/req",
            true,
            Everywhere,
            figure("relay_cpu_ns_per_request"),
        ));
        columns.push(column("upstream", true, Everywhere, |c| {
            or_dash(extra(c, "upstream_connections").map(|n| format!("{n:.0}")))
        }));
        columns.push(column("pool wait p99", true, Everywhere, figure("pool_wait_p99_ns")));
        columns.push(column(
            "front B/req",
            true,
            Everywhere,
            bytes("front_wire_bytes_per_request"),
        ));
        columns.push(column(
            "back B/req",
            true,
            Everywhere,
            bytes("back_wire_bytes_per_request"),
        ));
        columns.push(column("miss penalty", true, Everywhere, figure("miss_penalty_p50_ns")));
        columns.push(column("handshakes/s", true, Document, rate("handshakes_per_s")));
    }
    if kind == Kind::ConnCost {
        let bytes = |key: &'static str| move |c: &CaseRecord| or_dash(extra(c, key).map(format::bytes_approx));
        columns.push(column(
            "server RSS/conn",
            true,
            Terminal,
            bytes("server_rss_bytes_per_connection"),
        ));
        columns.push(column(
            "RSS residual",
            true,
            Terminal,
            bytes("server_rss_residual_bytes"),
        ));
        columns.push(column(
            "kernel slab/conn",
            true,
            Terminal,
            bytes("kernel_slab_bytes_per_connection"),
        ));
        columns.push(column(
            "slab residual",
            true,
            Terminal,
            bytes("kernel_slab_residual_bytes"),
        ));
        columns.push(column("sockets/conn", true, Terminal, |c| {
            or_dash(extra(c, "sockets_per_connection").map(|s| format::significant(s, 3)))
        }));
    }
    let in_terminal_if = |shown: bool| if shown { Everywhere } else { Document };
    columns.push(column(
        "msg/s",
        true,
        in_terminal_if(matches!(kind, Kind::Latency | Kind::Stream | Kind::Rpc)),
        summary_figure(move |s| Some(count_rate(s.messages_per_s))),
    ));
    columns.push(column(
        "bytes/s",
        true,
        in_terminal_if(matches!(kind, Kind::Stream | Kind::Rpc)),
        summary_figure(|s| Some(format::rate(s.bytes_per_s, "B/s", 3))),
    ));
    if any(&|c| c.summary.as_ref().is_some_and(|s| s.overhead_vs_bare.is_some())) {
        let stream = kind == Kind::Stream;
        columns.push(column(
            "bare",
            true,
            Document,
            summary_figure(move |s| s.bare.map(|b| if stream { format::rate(b, "B/s", 3) } else { time(b) })),
        ));
        columns.push(column(
            "vs bare",
            true,
            Everywhere,
            summary_figure(|s| s.overhead_vs_bare.map(|o| format!("{o:.2}x"))),
        ));
        columns.push(column(
            "vs bare 95% CI",
            true,
            Document,
            summary_figure(|s| {
                let [lo, hi] = s.ci95.get("overhead_vs_bare")?;
                Some(format!("{lo:.2} – {hi:.2}"))
            }),
        ));
    }
    if kind == Kind::Rpc {
        columns.push(column("of BDP", true, Terminal, |c| {
            or_dash(extra(c, "fraction_of_bdp").map(format::percent))
        }));
    }
    columns.push(column(
        "CPU/msg",
        true,
        in_terminal_if(kind == Kind::Latency),
        summary_figure(move |s| s.cpu_ns_per_message.map(time)),
    ));
    columns.push(column(
        "CPU/byte",
        true,
        Document,
        summary_figure(move |s| s.cpu_ns_per_byte.map(time)),
    ));
    if kind == Kind::Stream {
        columns.push(column(
            "CPU/B client",
            true,
            Terminal,
            summary_figure(move |s| s.client_cpu_ns_per_byte.map(time)),
        ));
        columns.push(column(
            "CPU/B server",
            true,
            Terminal,
            summary_figure(move |s| s.server_cpu_ns_per_byte.map(time)),
        ));
        columns.push(column(
            "of memcpy",
            true,
            Terminal,
            summary_figure(|s| s.fraction_of_limit.map(format::percent)),
        ));
    }
    columns.push(column("trials", true, Document, |c| {
        c.summary.as_ref().map(|s| s.n_trials).unwrap_or(0).to_string()
    }));
    columns.push(column("status", false, Everywhere, status_text));
    columns
}

/// An http case's path: `h2->h1`, or `h2->nginx->h1` through a relay that is not ipcbench's.
fn http_path(case: &CaseRecord) -> String {
    let text = |key: &str| case.extra.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    match (text("front"), text("back"), text("relay").as_deref()) {
        (Some(front), Some(back), Some("builtin") | None) => format!("{front}->{back}"),
        (Some(front), Some(back), Some(relay)) => format!("{front}->{relay}->{back}"),
        _ => DASH.to_owned(),
    }
}

/// A line printed under the terminal table of a scenario whose columns need it.
fn terminal_footnote(scenario: &str) -> Option<&'static str> {
    (Kind::of(scenario) == Kind::ConnCost)
        .then_some("(kernel slab and sockets count both ends of each loopback connection)")
}

/// The table of one scenario's cases for `output`: the columns that apply to it, one row per
/// case.
pub(crate) fn scenario_table(record: &RunRecord, scenario: &str, output: Output) -> Table {
    let of: Vec<&CaseRecord> = record.cases.iter().filter(|c| c.scenario == scenario).collect();
    let columns: Vec<Column> = columns(scenario, &of)
        .into_iter()
        .filter(|c| c.shown.includes(output))
        .collect();
    Table {
        header: columns.iter().map(|c| c.header.to_owned()).collect(),
        numeric: columns.iter().map(|c| c.numeric).collect(),
        rows: of
            .iter()
            .map(|case| columns.iter().map(|c| (c.cell)(case)).collect())
            .collect(),
        footnote: match output {
            Output::Document => None,
            Output::Terminal => terminal_footnote(scenario),
        },
    }
}

pub(crate) fn placement_text(case: &CaseRecord) -> String {
    match case.cores.server {
        Some(server) => format!("{} {}/{}", case.cores.label, case.cores.client, server),
        None => format!("{} {}", case.cores.label, case.cores.client),
    }
}

/// What the `vs bare` column means, for a scenario whose table has it (`None` otherwise, so a
/// record without the figure renders as before).
pub(crate) fn bare_explanation(record: &RunRecord, scenario: &str) -> Option<&'static str> {
    record
        .cases
        .iter()
        .filter(|c| c.scenario == scenario)
        .any(|c| c.summary.as_ref().is_some_and(|s| s.overhead_vs_bare.is_some()))
        .then_some(
            "`vs bare` is `overhead_vs_bare`, ipcbench's own cost: every trial also ran the transport's bare loop \
             (raw writes and reads of the same bytes over the same connected objects and cores: no frame, no \
             sequence number, no checksum; for shm one slot per direction with a sequence word) in blocks \
             alternating with the measured ones, so drift hits both. The ratio is the p50 round trip over the bare \
             loop's (stream: the bare loop's bytes/s over the measured ones), median over trials with its 95% \
             interval; `bare` is the bare loop's own figure. 1.00x means no overhead; a case above 1.25x is flagged.",
        )
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
