//! Finishing a case record from its trials: the summary (medians with 95% intervals), the
//! flags, the fraction of the physical limit, and each scenario's case-level figures.
//!
//! [`finish_case`] is the one way to do it. The runner calls it after every trial (so it
//! replaces what it set before) and the gate calls it on the pooled trials of its confirmation
//! re-runs, so a pooled record carries the same flags and figures as a fresh one.

use crate::schema::{Calibration, CaseRecord, Rusage, Summary, Trial};
use crate::stats;

/// What finishing a case needs besides its trials.
#[derive(Debug, Clone, Copy, Default)]
pub struct FinishContext<'a> {
    /// The run's clock cost per read, ns (figures within 10x of it are flagged).
    pub clock_overhead_ns: f64,
    /// The run's measured physical limits, when it has them.
    pub calibration: Option<&'a Calibration>,
    /// The delayed link's rate per direction (rpc with `rate_mbit`); `None` keeps the
    /// `link_rate_bytes_per_s` a record already has.
    pub link_rate_mbit: Option<f64>,
}

/// Recomputes everything of `case` that derives from its trials.
pub fn finish_case(case: &mut CaseRecord, context: &FinishContext<'_>) {
    summarize(case, context.clock_overhead_ns);
    flag_unstable(case);
    finish_bare(case);
    match case.scenario.as_str() {
        "load" => finish_load(case),
        "proxy" => finish_proxy(case),
        "conn-cost" => finish_conn_cost(case),
        "balance" => finish_balance(case),
        "http" => finish_http(case),
        _ => {}
    }
    if let Some(limits) = context.calibration {
        let fraction = fraction_of_limit(case, limits);
        if let Some(summary) = case.summary.as_mut() {
            summary.fraction_of_limit = fraction;
        }
    }
    let kept_rate = case.extra.get("link_rate_bytes_per_s").and_then(|v| v.as_f64());
    link_figures(case, context.link_rate_mbit);
    if context.link_rate_mbit.is_none()
        && let Some(rate) = kept_rate
        && case.delay_ms.is_some_and(|d| d > 0.0)
    {
        case.extra.insert("link_rate_bytes_per_s".into(), rate.into());
    }
}

fn collect(trials: &[Trial], get: impl Fn(&Trial) -> Option<f64>) -> Vec<f64> {
    trials.iter().filter_map(get).collect()
}

/// Recomputes a case's summary and its clock flag from its trials.
fn summarize(case: &mut CaseRecord, clock_overhead_ns: f64) {
    let trials = &case.trials;
    if trials.is_empty() {
        case.summary = None;
        return;
    }
    let latency: Vec<_> = trials.iter().filter_map(|t| t.latency_ns).collect();
    let corrected: Vec<_> = trials.iter().filter_map(|t| t.latency_corrected_ns).collect();
    let cpu = |t: &Trial| t.client.map(|c| c.cpu_ns() + t.server.map(|s| s.cpu_ns()).unwrap_or(0));
    let cpu_per_message = collect(trials, |t| {
        cpu(t).filter(|_| t.messages > 0).map(|c| c as f64 / t.messages as f64)
    });
    let cpu_per_byte = collect(trials, |t| {
        cpu(t).filter(|_| t.bytes > 0).map(|c| c as f64 / t.bytes as f64)
    });
    let side_per_byte = |side: fn(&Trial) -> Option<Rusage>| {
        stats::median(&collect(trials, |t| {
            side(t)
                .filter(|_| t.bytes > 0)
                .map(|u| u.cpu_ns() as f64 / t.bytes as f64)
        }))
    };
    let messages_per_s = collect(trials, |t| Some(t.messages_per_s));
    let bytes_per_s = collect(trials, |t| Some(t.bytes_per_s));
    let mut ci95 = std::collections::BTreeMap::new();
    let mut interval = |name: &str, values: &[f64]| {
        if let Some(ci) = stats::bootstrap_median_ci(values) {
            ci95.insert(name.to_owned(), ci);
        }
    };
    interval("latency_p50_ns", &latency.iter().map(|p| p.p50).collect::<Vec<_>>());
    interval("latency_p99_ns", &latency.iter().map(|p| p.p99).collect::<Vec<_>>());
    interval("messages_per_s", &messages_per_s);
    interval("bytes_per_s", &bytes_per_s);
    interval("cpu_ns_per_message", &cpu_per_message);
    let summary = Summary {
        latency_ns: stats::median_percentiles(&latency),
        latency_corrected_ns: stats::median_percentiles(&corrected),
        messages_per_s: stats::median(&messages_per_s).unwrap_or(0.0),
        bytes_per_s: stats::median(&bytes_per_s).unwrap_or(0.0),
        cpu_ns_per_message: stats::median(&cpu_per_message),
        cpu_ns_per_byte: stats::median(&cpu_per_byte),
        client_cpu_ns_per_byte: side_per_byte(|t| t.client),
        server_cpu_ns_per_byte: side_per_byte(|t| t.server),
        fraction_of_limit: case.summary.as_ref().and_then(|s| s.fraction_of_limit),
        bare: None,
        overhead_vs_bare: None,
        ci95,
        n_trials: trials.len(),
    };
    case.flags.retain(|f| !f.starts_with(CLOCK_FLAG));
    if let Some(l) = &summary.latency_ns
        && l.p50 < 10.0 * clock_overhead_ns
    {
        case.flags.push(format!(
            "{CLOCK_FLAG} ({:.0} ns): the figure is mostly the cost of reading the clock",
            10.0 * clock_overhead_ns
        ));
    }
    case.summary = Some(summary);
}

const CLOCK_FLAG: &str = "p50 within 10x of the clock's cost";

/// The start of the flag on a case whose trials disagree.
pub const UNSTABLE_FLAG: &str = "unstable";
/// The largest spread of the trial figures, relative to their median, that is not flagged.
pub const UNSTABLE_SPREAD: f64 = 0.25;

/// Flags a case whose trial figures spread by more than [`UNSTABLE_SPREAD`] of their median:
/// the p50 latency where the case has one, else bytes/s. The flag gives the spread and the range,
/// so a reader knows how far to trust the headline (same-core cases on a VM often earn it).
fn flag_unstable(case: &mut CaseRecord) {
    case.flags.retain(|f| !f.starts_with(UNSTABLE_FLAG));
    if case.trials.len() < 2 {
        return;
    }
    let p50s: Vec<f64> = case.trials.iter().filter_map(|t| t.latency_ns.map(|l| l.p50)).collect();
    let capacities: Vec<f64> = case
        .trials
        .iter()
        .filter_map(|t| t.extra.get("capacity_msgs_per_s").copied())
        .collect();
    // A capacity case's headline is its capacity (a search's latency is that of whichever step
    // each trial held last, at a different load in each).
    let (values, what, unit) = if capacities.len() == case.trials.len() {
        (capacities, "capacity", "msg/s")
    } else if p50s.len() == case.trials.len() {
        (p50s, "p50", "ns")
    } else {
        (case.trials.iter().map(|t| t.bytes_per_s).collect(), "bytes/s", "B/s")
    };
    let Some(median) = stats::median(&values).filter(|m| *m > 0.0) else {
        return;
    };
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let spread = (high - low) / median;
    if spread > UNSTABLE_SPREAD {
        case.flags.push(format!(
            "{UNSTABLE_FLAG}: the trials' {what} spread by {:.0}% of their median ({} to {} {unit}); \
             the headline is a median of figures that disagree",
            spread * 100.0,
            crate::units::significant(low, 3),
            crate::units::significant(high, 3),
        ));
    }
}

/// The start of the flag on a case whose overhead over its bare loop exceeds [`OVERHEAD_LIMIT`].
pub const OVERHEAD_FLAG: &str = "overhead";
/// The largest `overhead_vs_bare` that is not flagged.
pub const OVERHEAD_LIMIT: f64 = 1.25;
/// The trial extra of a pingpong trial's bare loop: its p50 round trip, ns.
pub const BARE_P50_KEY: &str = "bare_p50_ns";
/// The trial extra of a stream trial's bare loop: its bytes/s.
pub const BARE_BYTES_PER_S_KEY: &str = "bare_bytes_per_s";
/// The trial extra saying the transport has no bare loop (1.0).
pub const BARE_UNSUPPORTED_KEY: &str = "bare_unsupported";

/// One trial's bare figure and ipcbench's overhead over it: p50 / bare p50 for a trial with
/// `bare_p50_ns`, bare bytes/s / bytes/s for one with `bare_bytes_per_s`.
pub fn trial_overhead(trial: &Trial) -> Option<(f64, f64)> {
    if let Some(&bare) = trial.extra.get(BARE_P50_KEY) {
        let p50 = trial.latency_ns?.p50;
        return (bare > 0.0 && p50 > 0.0).then(|| (bare, p50 / bare));
    }
    let bare = *trial.extra.get(BARE_BYTES_PER_S_KEY)?;
    (bare > 0.0 && trial.bytes_per_s > 0.0).then(|| (bare, bare / trial.bytes_per_s))
}

/// `summary.bare`, `summary.overhead_vs_bare` with its interval, the overhead flag, and
/// `extra.bare = "unsupported"` for a transport without a bare loop.
fn finish_bare(case: &mut CaseRecord) {
    case.flags.retain(|f| !f.starts_with(OVERHEAD_FLAG));
    case.extra.remove("bare");
    if case.trials.iter().any(|t| t.extra.contains_key(BARE_UNSUPPORTED_KEY)) {
        case.extra.insert("bare".into(), "unsupported".into());
    }
    let pairs: Vec<(f64, f64)> = case.trials.iter().filter_map(trial_overhead).collect();
    let Some(summary) = case.summary.as_mut() else {
        return;
    };
    let bares: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let ratios: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    summary.bare = stats::median(&bares);
    summary.overhead_vs_bare = stats::median(&ratios);
    summary.ci95.remove("overhead_vs_bare");
    if let Some(ci) = stats::bootstrap_median_ci(&ratios) {
        summary.ci95.insert("overhead_vs_bare".into(), ci);
    }
    if let (Some(overhead), Some(bare)) = (summary.overhead_vs_bare, summary.bare)
        && overhead > OVERHEAD_LIMIT
    {
        let (figure, own, bare) = if case.trials.iter().any(|t| t.extra.contains_key(BARE_P50_KEY)) {
            let own = summary.latency_ns.map(|l| l.p50).unwrap_or(0.0);
            (
                "p50 round trip",
                crate::units::time_ns(own, 3),
                crate::units::time_ns(bare, 3),
            )
        } else {
            (
                "throughput",
                crate::units::rate(summary.bytes_per_s, "B/s", 3),
                crate::units::rate(bare, "B/s", 3),
            )
        };
        case.flags.push(format!(
            "{OVERHEAD_FLAG}: {overhead:.2}x the transport's bare loop in {figure} ({own} against {bare} over the \
             same objects and cores): more than {OVERHEAD_LIMIT:.2}x is ipcbench's own cost, not the transport's"
        ));
    }
}

/// The case's headline figure against its physical limit: 1.0 = at the limit, smaller =
/// further from it (see the module docs). `None` when the scenario has no matching limit,
/// the case has no summary or no peer (`null`), or the limit was not measured (a pingpong case counts only when
/// its placement is the pair of cores the round trip was measured between).
pub fn fraction_of_limit(case: &CaseRecord, calibration: &Calibration) -> Option<f64> {
    let summary = case.summary.as_ref()?;
    if case.peer_mode == "none" {
        return None; // Nothing crosses to a peer, so no physical limit applies.
    }
    match case.scenario.as_str() {
        "pingpong" => {
            let limit = calibration.cache_line_round_trip_ns?;
            let [a, b] = calibration.cache_line_cores?;
            let server = case.cores.server?;
            let same_pair = (case.cores.client, server) == (a, b) || (case.cores.client, server) == (b, a);
            let p50 = summary.latency_ns?.p50;
            (same_pair && p50 > 0.0).then(|| limit / p50)
        }
        "stream" => {
            let limit = calibration.memcpy_bytes_per_s?;
            (limit > 0.0).then(|| summary.bytes_per_s / limit)
        }
        _ => None,
    }
}

/// The flag on a `load` case whose generator sent less than its schedule intended.
pub const SHORTFALL_FLAG: &str = "RATE SHORTFALL";
/// The largest shortfall of the achieved rate below the scheduled one that is not flagged.
pub const SHORTFALL_LIMIT: f64 = 0.01;

/// The case-level figures and flags of a `load` case, from its trials (called after every
/// trial, so it replaces what it set before).
fn finish_load(case: &mut CaseRecord) {
    case.flags.retain(|f| !f.starts_with(SHORTFALL_FLAG));
    let values = |case: &CaseRecord, key: &str| -> Vec<f64> {
        case.trials.iter().filter_map(|t| t.extra.get(key).copied()).collect()
    };
    let target = stats::median(&values(case, "target_messages_per_s"));
    let scheduled = stats::median(&values(case, "scheduled_messages_per_s"));
    let achieved = stats::median(&values(case, "achieved_messages_per_s"));
    let held = stats::median(&values(case, "connections_held"));
    let worst = values(case, "rate_shortfall").into_iter().reduce(f64::max);
    for (key, value) in [
        ("target_messages_per_s", target),
        ("scheduled_messages_per_s", scheduled),
        ("achieved_messages_per_s", achieved),
        ("rate_shortfall_max", worst),
        ("connections_held", held),
    ] {
        if let Some(v) = value {
            case.extra.insert(key.into(), v.into());
        }
    }
    // The capacity (a search's highest rate held, a closed loop's throughput) with its range
    // over trials, and the server's costs per request behind it.
    let capacities = values(case, "capacity_msgs_per_s");
    if let Some(median) = stats::median(&capacities) {
        let lo = capacities.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = capacities.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        case.extra.insert("capacity_msgs_per_s".into(), median.into());
        case.extra.insert("capacity_msgs_per_s_min".into(), lo.into());
        case.extra.insert("capacity_msgs_per_s_max".into(), hi.into());
    }
    for key in [
        "server_cpu_ns_per_request",
        "server_syscalls_per_request",
        "server_reads_per_request",
        "server_writes_per_request",
        "server_epoll_waits_per_request",
        "server_wakeups_per_request",
        "server_events_per_wakeup",
        "server_context_switches_per_request",
        "client_cpu_ns_per_request",
    ] {
        if let Some(v) = stats::median(&values(case, key)) {
            case.extra.insert(key.into(), v.into());
        }
    }
    if let Some(worst) = worst
        && worst > SHORTFALL_LIMIT
    {
        let (idx, trial) = case
            .trials
            .iter()
            .enumerate()
            .max_by(|a, b| {
                let s = |t: &Trial| t.extra.get("rate_shortfall").copied().unwrap_or(0.0);
                s(a.1).total_cmp(&s(b.1))
            })
            .expect("a shortfall comes from a trial");
        let get = |key: &str| trial.extra.get(key).copied().unwrap_or(0.0);
        case.flags.push(format!(
            "{SHORTFALL_FLAG}: trial {} sent {:.0} msg/s, {:.1}% below the {:.0} msg/s the schedule intended \
             (the generator or the server could not keep up: generator CPU {:.0}%, server CPU {:.0}% of a \
             core; {} requests left late, {} still owed at the end)",
            idx + 1,
            get("achieved_messages_per_s"),
            worst * 100.0,
            get("scheduled_messages_per_s"),
            get("client_cpu_fraction") * 100.0,
            get("server_cpu_fraction") * 100.0,
            get("late_sends"),
            get("unsent_messages"),
        ));
    }
}

/// The flag on a `balance` case whose state is backend-local under a policy that spreads a
/// client's requests over several backends.
pub const INCORRECT_BY_DESIGN_FLAG: &str = "INCORRECT BY DESIGN";

/// The case-level figures of a `balance` case: medians over trials of the trial figures, the
/// worst of the counts that must be zero, and the rate and design flags (called after every
/// trial, so it replaces what it set before).
fn finish_balance(case: &mut CaseRecord) {
    finish_load(case);
    case.flags.retain(|f| !f.starts_with(INCORRECT_BY_DESIGN_FLAG));
    let values = |case: &CaseRecord, key: &str| -> Vec<f64> {
        case.trials.iter().filter_map(|t| t.extra.get(key).copied()).collect()
    };
    let mut keys: Vec<String> = [
        "state_p50_ns",
        "state_p99_ns",
        "state_mean_ns",
        "backend_share_max_over_mean",
        "balancer_cpu_ns_per_request",
        "backends_cpu_ns_per_request",
        "store_cpu_ns_per_request",
        "client_cpu_ns_per_request",
        "stale_read_fraction",
        "share_settle_ns",
        "change_at_ns",
        "backends",
        "clients",
    ]
    .iter()
    .map(|k| (*k).to_owned())
    .collect();
    // Every backend's share, whatever their number.
    let mut shares: Vec<String> = case
        .trials
        .iter()
        .flat_map(|t| t.extra.keys())
        .filter(|k| k.starts_with("backend_") && k.ends_with("_share"))
        .cloned()
        .collect();
    shares.sort();
    shares.dedup();
    keys.extend(shares);
    for key in &keys {
        match stats::median(&values(case, key)) {
            Some(v) => {
                case.extra.insert(key.clone(), v.into());
            }
            None => {
                case.extra.remove(key);
            }
        }
    }
    // Counts that tell of a change or a fault: the worst trial's, so none hides behind a median.
    for key in [
        "lost_updates",
        "stale_reads",
        "broken_connections",
        "failed_requests",
        "orphan_replies",
        "incorrect_by_design",
    ] {
        if let Some(worst) = values(case, key).into_iter().reduce(f64::max) {
            case.extra.insert(key.into(), worst.into());
        }
    }
    // Settled in every trial.
    if let Some(settled) = values(case, "share_settled").into_iter().reduce(f64::min) {
        case.extra.insert("share_settled".into(), settled.into());
    }
    if values(case, "incorrect_by_design").iter().any(|&v| v > 0.0) {
        let stale = values(case, "stale_reads").into_iter().reduce(f64::max).unwrap_or(0.0);
        case.flags.push(format!(
            "{INCORRECT_BY_DESIGN_FLAG}: state = local keeps a map per backend, and nothing in this policy (or \
             across a membership change) keeps all of a client's requests on one backend: {stale:.0} stale reads in \
             the worst trial"
        ));
    }
}

/// The case-level figures of a proxy case: medians over trials (called after every trial, so
/// it replaces what it set before).
fn finish_proxy(case: &mut CaseRecord) {
    let keys = [
        "direct_p50_ns",
        "direct_p99_ns",
        "direct_p999_ns",
        "hop_added_p50_ns",
        "hop_added_p99_ns",
        "hop_added_p999_ns",
        "relay_cpu_ns_per_message",
        "relay_in_bytes_per_s",
        "relay_out_bytes_per_s",
    ];
    for key in keys {
        let values: Vec<f64> = case.trials.iter().filter_map(|t| t.extra.get(key).copied()).collect();
        if let Some(median) = stats::median(&values) {
            case.extra.insert(key.into(), median.into());
        }
    }
    // The direct path runs over the back transport: the hop is added to that round trip.
    if let Some(back) = case.transport.split("->").nth(1) {
        case.extra.insert("direct_transport".into(), back.into());
    }
    case.extra.insert("relay_core".into(), case.cores.client.into());
}

/// The trial figures of an `http` case that its record carries as medians over trials.
pub const HTTP_FIGURES: [&str; 28] = [
    "hop_added_p50_ns",
    "hop_added_p90_ns",
    "hop_added_p99_ns",
    "hop_added_p999_ns",
    "hop_added_raw_p50_ns",
    "direct_p50_ns",
    "direct_p99_ns",
    "requests_per_s_in",
    "requests_per_s_out",
    "direct_requests_per_s",
    "relay_cpu_ns_per_request",
    "upstream_connections",
    "upstream_connections_measured",
    "pool_wait_p50_ns",
    "pool_wait_p99_ns",
    "front_wire_bytes_per_request",
    "front_request_wire_bytes_per_request",
    "direct_wire_bytes_per_request",
    "back_wire_bytes_per_request",
    "miss_penalty_p50_ns",
    "hit_p50_ns",
    "miss_p50_ns",
    "cache_hit_share",
    "handshakes_per_s",
    "tls_handshakes_per_s",
    "relay_requests_in",
    "relay_upstream_errors",
    "unsent_requests",
];

/// The figures of an `http` case whose 95% interval is kept: in `summary.ci95` and as
/// `<name>_lo` / `<name>_hi` in the case's `extra`.
pub const HTTP_INTERVALS: [&str; 4] = [
    "hop_added_p50_ns",
    "hop_added_p99_ns",
    "relay_cpu_ns_per_request",
    "requests_per_s_in",
];

/// The case-level figures of an `http` case: medians over trials, and bootstrap intervals of
/// the hop's cost (called after every trial, so it replaces what it set before).
fn finish_http(case: &mut CaseRecord) {
    for key in HTTP_FIGURES {
        case.extra.remove(key);
        let values: Vec<f64> = case.trials.iter().filter_map(|t| t.extra.get(key).copied()).collect();
        if let Some(median) = stats::median(&values) {
            case.extra.insert(key.into(), median.into());
        }
    }
    for key in HTTP_INTERVALS {
        let values: Vec<f64> = case.trials.iter().filter_map(|t| t.extra.get(key).copied()).collect();
        let (lo, hi) = (format!("{key}_lo"), format!("{key}_hi"));
        case.extra.remove(&lo);
        case.extra.remove(&hi);
        if let Some([low, high]) = stats::bootstrap_median_ci(&values) {
            case.extra.insert(lo, low.into());
            case.extra.insert(hi, high.into());
            if let Some(summary) = case.summary.as_mut() {
                summary.ci95.insert(key.into(), [low, high]);
            }
        }
    }
    case.extra.insert("relay_core".into(), case.cores.client.into());
}

/// The case-level figures of a `conn-cost` case: medians over trials (called after every
/// trial, so it replaces what it set before).
fn finish_conn_cost(case: &mut CaseRecord) {
    let keys = [
        "server_rss_bytes_per_connection",
        "server_rss_intercept_bytes",
        "server_rss_residual_bytes",
        "kernel_slab_bytes_per_connection",
        "kernel_slab_intercept_bytes",
        "kernel_slab_residual_bytes",
        "tcp_mem_bytes_per_connection",
        "sockets_per_connection",
    ];
    for key in keys {
        let values: Vec<f64> = case.trials.iter().filter_map(|t| t.extra.get(key).copied()).collect();
        if let Some(median) = stats::median(&values) {
            case.extra.insert(key.into(), median.into());
        }
    }
}

/// The start of the flag on cases that ran over the user-space delay line.
const USER_SPACE_FLAG: &str = "delay emulated in user space";

/// The bandwidth-delay bound of an `rpc` case over a delayed link, stored in the case's
/// `extra` map after each summary:
///
/// - `round_trip_floor_ms`: twice the one-way `delay_ms`;
/// - `bdp_bytes_per_s`: at most `window` x (request + reply) bytes per round-trip floor, the
///   most a window can move however fast the link is;
/// - `fraction_of_bdp`: the summary's `bytes_per_s` over that bound (1.0 = the window is the
///   only limit; lower = the link, the buffers or the hosts limit first);
/// - `link_rate_bytes_per_s`: the link rate per direction when `rate_mbit` is set.
///
/// Nothing is stored for cases without a delay or with a delay of 0. A case whose trials ran
/// over the user-space delay line (the harness's user-space delay line) gets a flag saying so.
fn link_figures(case: &mut CaseRecord, rate_mbit: Option<f64>) {
    let user_space = case
        .trials
        .iter()
        .any(|t| t.extra.get("link_user_space").is_some_and(|v| *v > 0.0));
    if user_space && !case.flags.iter().any(|f| f.starts_with(USER_SPACE_FLAG)) {
        case.flags.push(format!(
            "{USER_SPACE_FLAG}: this kernel has no netem, so TUN devices and forwarding threads carry the \
             delay, adding tens of microseconds per packet and some CPU load"
        ));
    }
    for key in [
        "round_trip_floor_ms",
        "bdp_bytes_per_s",
        "fraction_of_bdp",
        "link_rate_bytes_per_s",
    ] {
        case.extra.remove(key);
    }
    let Some(delay_ms) = case.delay_ms.filter(|d| *d > 0.0) else {
        return;
    };
    let window = case.window.unwrap_or(1) as f64;
    let per_request = (case.message_bytes + case.reply_bytes.unwrap_or(case.message_bytes)) as f64;
    let round_trip_s = 2.0 * delay_ms / 1e3;
    let bdp = window * per_request / round_trip_s;
    case.extra.insert("round_trip_floor_ms".into(), (2.0 * delay_ms).into());
    case.extra.insert("bdp_bytes_per_s".into(), bdp.into());
    if let Some(summary) = &case.summary {
        case.extra
            .insert("fraction_of_bdp".into(), (summary.bytes_per_s / bdp).into());
    }
    if let Some(rate) = rate_mbit {
        case.extra
            .insert("link_rate_bytes_per_s".into(), (rate * 1e6 / 8.0).into());
    }
}
/// Run-level warnings about cases whose figures need attention (a load case that missed its
/// rate), for the record's `warnings`.
pub fn run_warnings(cases: &[CaseRecord]) -> Vec<String> {
    cases
        .iter()
        .flat_map(|case| {
            case.flags
                .iter()
                .filter(|f| f.starts_with(SHORTFALL_FLAG))
                .map(move |f| format!("{}: {f}", case.id))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Percentiles;

    fn case_with_p50s(p50s: &[f64]) -> CaseRecord {
        CaseRecord {
            trials: p50s
                .iter()
                .map(|&p50| Trial {
                    latency_ns: Some(Percentiles {
                        p50,
                        ..Percentiles::default()
                    }),
                    messages: 1000,
                    messages_per_s: 1e9 / p50,
                    ..Trial::default()
                })
                .collect(),
            ..CaseRecord::skeleton("pingpong/tcp/64B/c0s1", "pingpong", "tcp", 64)
        }
    }

    fn balance_trial(pairs: &[(&str, f64)]) -> Trial {
        Trial {
            extra: pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            ..Trial::default()
        }
    }

    #[test]
    fn trials_that_disagree_by_more_than_a_quarter_are_flagged_unstable() {
        let mut case = case_with_p50s(&[4000.0, 4100.0, 6000.0]);
        finish_case(&mut case, &FinishContext::default());
        let flag = case
            .flags
            .iter()
            .find(|f| f.starts_with(UNSTABLE_FLAG))
            .expect("flagged");
        assert!(
            flag.contains("spread by 49%") && flag.contains("4000 to 6000 ns"),
            "{flag}"
        );
        // Finishing again replaces the flag instead of adding a second one.
        finish_case(&mut case, &FinishContext::default());
        assert_eq!(case.flags.iter().filter(|f| f.starts_with(UNSTABLE_FLAG)).count(), 1);
    }

    #[test]
    fn trials_that_agree_are_not_flagged() {
        let mut case = case_with_p50s(&[4000.0, 4100.0, 3950.0]);
        finish_case(&mut case, &FinishContext::default());
        assert!(
            case.flags.iter().all(|f| !f.starts_with(UNSTABLE_FLAG)),
            "{:?}",
            case.flags
        );
        let mut single = case_with_p50s(&[4000.0]);
        finish_case(&mut single, &FinishContext::default());
        assert!(single.flags.is_empty());
    }

    fn with_bare_p50s(mut case: CaseRecord, bare: &[f64]) -> CaseRecord {
        for (trial, &b) in case.trials.iter_mut().zip(bare) {
            trial.extra.insert(BARE_P50_KEY.into(), b);
        }
        case
    }

    #[test]
    fn pingpong_overhead_is_the_median_of_each_trials_p50_over_its_bare_p50() {
        // Ratios 1.1, 1.2 and 1.05: the median is 1.1, the bare figure the median 1000 ns.
        let mut case = with_bare_p50s(case_with_p50s(&[1100.0, 1200.0, 1050.0]), &[1000.0, 1000.0, 1000.0]);
        finish_case(&mut case, &FinishContext::default());
        let summary = case.summary.as_ref().expect("summary");
        assert_eq!(summary.bare, Some(1000.0));
        let overhead = summary.overhead_vs_bare.expect("overhead");
        assert!((overhead - 1.1).abs() < 1e-9, "{overhead}");
        let [low, high] = summary.ci95["overhead_vs_bare"];
        assert!(low <= overhead && overhead <= high && low >= 1.05 - 1e-9 && high <= 1.2 + 1e-9);
        assert!(
            case.flags.iter().all(|f| !f.starts_with(OVERHEAD_FLAG)),
            "{:?}",
            case.flags
        );
    }

    #[test]
    fn stream_overhead_is_bare_bytes_per_s_over_the_measured_ones_and_is_flagged_above_the_limit() {
        let mut case = case_with_p50s(&[1.0, 1.0, 1.0]);
        case.scenario = "stream".into();
        for (trial, (own, bare)) in case.trials.iter_mut().zip([(1e9, 1.5e9), (1e9, 1.4e9), (2e9, 3.2e9)]) {
            trial.latency_ns = None;
            trial.bytes_per_s = own;
            trial.extra.insert(BARE_BYTES_PER_S_KEY.into(), bare);
        }
        finish_case(&mut case, &FinishContext::default());
        let summary = case.summary.as_ref().expect("summary");
        assert_eq!(summary.bare, Some(1.5e9));
        assert!((summary.overhead_vs_bare.expect("overhead") - 1.5).abs() < 1e-9);
        let flag = case
            .flags
            .iter()
            .find(|f| f.starts_with(OVERHEAD_FLAG))
            .expect("flagged above 1.25");
        assert!(flag.contains("1.50x") && flag.contains("throughput"), "{flag}");
        finish_case(&mut case, &FinishContext::default());
        assert_eq!(case.flags.iter().filter(|f| f.starts_with(OVERHEAD_FLAG)).count(), 1);
    }

    #[test]
    fn without_bare_figures_there_is_no_overhead_and_unsupported_says_so() {
        let mut case = case_with_p50s(&[1000.0, 1000.0]);
        finish_case(&mut case, &FinishContext::default());
        let summary = case.summary.as_ref().expect("summary");
        assert_eq!((summary.bare, summary.overhead_vs_bare), (None, None));
        assert!(!summary.ci95.contains_key("overhead_vs_bare"));
        assert!(!case.extra.contains_key("bare"));
        case.trials[0].extra.insert(BARE_UNSUPPORTED_KEY.into(), 1.0);
        finish_case(&mut case, &FinishContext::default());
        assert_eq!(case.extra["bare"], "unsupported");
        let json = serde_json::to_string(case.summary.as_ref().expect("summary")).expect("json");
        assert!(!json.contains("bare"), "absent figures are not written: {json}");
    }

    #[test]
    fn balance_cases_take_medians_and_the_worst_counts_and_flag_local_state() {
        let mut case: CaseRecord = serde_json::from_value(serde_json::json!({
            "id": "balance/uds/64B/c0s1", "scenario": "balance", "transport": "uds", "peer_mode": "process",
            "transport_options": {}, "message_bytes": 64, "status": "ok", "trials": [],
            "cores": {"client": 0, "server": 1, "label": "cross-core", "client_applied": [0], "server_applied": [1]}
        }))
        .expect("a case record");
        case.trials = vec![
            balance_trial(&[
                ("state_p50_ns", 100.0),
                ("stale_reads", 5.0),
                ("broken_connections", 0.0),
                ("incorrect_by_design", 1.0),
                ("backend_0_share", 0.5),
            ]),
            balance_trial(&[
                ("state_p50_ns", 300.0),
                ("stale_reads", 9.0),
                ("broken_connections", 2.0),
                ("incorrect_by_design", 1.0),
                ("backend_0_share", 0.7),
            ]),
        ];
        finish_case(&mut case, &FinishContext::default());
        assert_eq!(case.extra["state_p50_ns"], 200.0);
        assert_eq!(case.extra["stale_reads"], 9.0);
        assert_eq!(case.extra["broken_connections"], 2.0);
        assert_eq!(case.extra["backend_0_share"], 0.6);
        let flags: Vec<_> = case
            .flags
            .iter()
            .filter(|f| f.starts_with(INCORRECT_BY_DESIGN_FLAG))
            .collect();
        assert_eq!(flags.len(), 1, "{:?}", case.flags);
        assert!(flags[0].contains("9 stale reads"), "{}", flags[0]);
        // Finishing again replaces what it set.
        finish_case(&mut case, &FinishContext::default());
        assert_eq!(
            case.flags
                .iter()
                .filter(|f| f.starts_with(INCORRECT_BY_DESIGN_FLAG))
                .count(),
            1
        );
    }
}
