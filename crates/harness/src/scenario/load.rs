//! `load`: `connections` keep-alive connections, each sending `message_bytes` at
//! `rate_per_connection_hz` on an open-loop schedule, against an event-loop echo server in its
//! own process (`scenario/echo_server.rs`).
//!
//! The load generator is the measuring process itself: one thread, one mio `Poll`, every
//! connection on it (never a thread per connection). The process structure, the control
//! channel and the paced ramp-up are described in [`super::fleet`].
//!
//! **Schedule.** Connection `i` has its own sequence of intended send times: evenly spaced at
//! `1 / rate` with a random phase (`schedule = "uniform"`), or with exponentially distributed
//! gaps (`"poisson"`). The schedule runs through warm-up and the measured phase without a
//! break; only messages *intended* in the measured phase are recorded.
//!
//! **One request in flight per connection** (a keep-alive client without pipelining, as in
//! HTTP/1.1 and wrk2): when a send comes due while the connection's previous request is still
//! unanswered, it goes out the moment the reply arrives. It then leaves *late*, and its latency
//! is recorded twice:
//! - **corrected** (`latency_corrected_ns`): reply time minus the *intended* send time. This is
//!   what a user arriving on schedule would have seen; it counts the time the request spent
//!   waiting behind a slow one (the coordinated-omission correction).
//! - **uncorrected** (`latency_ns`): reply time minus the *actual* send time: the round trip
//!   alone, which hides a stall from every request that queued behind it.
//!
//! A server that stalls for 100 ms therefore shows up in the corrected percentiles of every
//! request scheduled during the stall, but in the uncorrected ones of only the few requests
//! in flight when it began.
//!
//! **Rate.** The achieved rate is the number of requests actually sent during the measured
//! phase, per second; the target is the number the schedule intended in it (`connections x
//! rate` for the uniform schedule). A shortfall over 1% (the generator or the server could not
//! keep up) is flagged on the case and printed as a warning. Requests owed at the end of the
//! measured phase are still sent and answered (a bounded drain), so the slowest ones are not
//! silently dropped from the percentiles.
//!
//! **Timing.** The generator sleeps in `epoll_wait` until the next intended send, woken by a
//! `timerfd` armed at that absolute `CLOCK_MONOTONIC` time (epoll's own timeout has only
//! millisecond resolution), with the thread's timer slack set to 1 ns so the kernel does not
//! defer the wake-up by its default 50 µs.

use std::time::{Duration, Instant};

use ipcbench_core::Transport;

use crate::affinity;
use crate::plan::{Amount, Case, FleetOptions, LoadMode, SearchOptions, ServerModel};
use crate::scenario::fleet::Stall;
use crate::scenario::generator::Phase;
pub use crate::scenario::pacing::{CLOSE_LIMIT, DRAIN_LIMIT, LATE_NS};
use crate::scenario::processes::{self, MachineLimits, PhaseOutcome, Processes};
use crate::session::{TrialContext, TrialError, TrialOutput, finish_trial};
use ipcbench_record::Trial;
use ipcbench_record::stats;

/// Connections when the plan names none.
pub const DEFAULT_CONNECTIONS: u64 = 100;
/// Sends per second per connection when the plan names none.
pub const DEFAULT_RATE_HZ: f64 = 10.0;
/// A shortfall of the achieved rate beyond this fraction of the target is flagged.
pub const SHORTFALL_LIMIT: f64 = 0.01;
/// The flag a case gets when its achieved rate falls short.
pub const SHORTFALL_FLAG: &str = "RATE SHORTFALL";

/// Runs one `load` trial over `transport`.
///
/// # Errors
/// [`TrialError::Unsupported`] when the transport has no event-loop capability or the
/// connections cannot fit the machine ([`processes::layout`]); [`TrialError::Failed`] otherwise.
pub fn trial<T: Transport + 'static>(
    transport: T,
    case: &Case,
    ctx: &TrialContext<'_>,
) -> Result<TrialOutput, TrialError> {
    trial_with(transport, case, ctx, None)
}

/// [`trial`] with the server told to stall once (a diagnostic for the known-answer test
/// of the latency correction; plans cannot set it).
///
/// # Errors
/// As [`trial`].
pub fn trial_with<T: Transport + 'static>(
    transport: T,
    case: &Case,
    ctx: &TrialContext<'_>,
    stall: Option<Stall>,
) -> Result<TrialOutput, TrialError> {
    transport.event_loop().ok_or_else(|| no_event_loop(transport.name()))?;
    let connections = case.connections.unwrap_or(DEFAULT_CONNECTIONS);
    if connections == 0 {
        return Err(TrialError::Unsupported("`connections` must be at least 1".into()));
    }
    let fleet = case.fleet.clone().unwrap_or_default();
    let layout = processes::layout(case, connections, &MachineLimits::read())?;
    let client_cores = affinity::pin_current_thread(case.placement.client).map_err(TrialError::Failed)?;
    let mut procs = Processes::start(&transport, case, ctx, layout, stall)?;
    let applied_options = procs.servers[0].ready.applied_options.clone();
    let server_cores = procs.servers[0].ready.cores_applied.clone();
    let outcome = drive(&mut procs, case, connections, &fleet);
    let (n_generators, n_servers) = (procs.generators.len(), procs.servers.len());
    let (mut trial, capacity_step) = match outcome {
        Ok(done) => {
            let (_, _) = procs.finish()?;
            done
        }
        Err(e) => return Err(procs.fail(e)),
    };
    trial.extra.insert("client_processes".into(), n_generators as f64);
    trial.extra.insert("server_processes".into(), n_servers as f64);
    if let Some(step) = capacity_step {
        trial.extra.insert("capacity_step".into(), step as f64);
    }
    Ok(TrialOutput {
        trial,
        applied_options,
        client_cores,
        server_cores,
    })
}

/// Why a transport cannot run the many-connection scenarios.
pub(crate) fn no_event_loop(name: &str) -> TrialError {
    TrialError::Unsupported(format!(
        "`{name}` has no event-loop capability (only tcp and uds stream sockets can register many \
         connections with an event loop)"
    ))
}

/// A case's warm-up and measured phase in ns; a message count means that many messages
/// across all connections at the target rate.
pub(crate) fn phase_ns(case: &Case, connections: u64, rate_hz: f64) -> (u64, u64) {
    let as_ns = |amount: Amount| match amount {
        Amount::Time(d) => d.as_nanos() as u64,
        Amount::Messages(n) => (n as f64 / (connections as f64 * rate_hz) * 1e9) as u64,
    };
    (as_ns(case.warmup), as_ns(case.measure).max(1))
}

/// The phase of `case` at `rate_hz` per connection (ignored in the closed loop).
fn phase(case: &Case, fleet: &FleetOptions, connections: u64, rate_hz: f64, step: u64) -> Phase {
    // A closed loop's message count is counted at an assumed 10,000 requests/s.
    let (warmup_ns, measure_ns) = phase_ns(
        case,
        connections,
        if fleet.mode == LoadMode::Closed {
            10_000.0 / connections as f64
        } else {
            rate_hz
        },
    );
    Phase {
        mode: fleet.mode,
        rate_hz,
        schedule: case.schedule,
        warmup_ns,
        measure_ns,
        pipeline: fleet.pipeline,
        seed: 0x10AD ^ connections ^ (step << 40),
    }
}

/// One step of a capacity search.
#[derive(Debug, Clone, Copy)]
struct SearchPoint {
    offered_per_s: f64,
    achieved_per_s: f64,
    p50_ns: f64,
    p99_ns: f64,
    raw_p99_ns: f64,
    pass: bool,
}

/// True when a phase held its offered rate: achieved at least 99% of it, and the corrected
/// p99 within the SLO.
fn holds(outcome: &PhaseOutcome, slo_p99_ns: u64) -> bool {
    let p99 = outcome.corrected.value_at_quantile(0.99);
    outcome.achieved_per_s() >= (1.0 - SHORTFALL_LIMIT) * outcome.scheduled_per_s() && p99 <= slo_p99_ns
}

/// The rates of a capacity search: grow by `growth` until a step fails (or the first step
/// fails: shrink), then bisect between the highest rate held and the lowest one not, until
/// they are within 5% or the steps run out. Returns the next rate, or `None` when done.
fn next_rate(search: &SearchOptions, held: Option<f64>, failed: Option<f64>, last: f64) -> Option<f64> {
    match (held, failed) {
        (Some(_), None) => Some(last * search.growth),
        (None, Some(f)) => (f / search.growth >= search.start_hz / 1e3).then_some(f / search.growth),
        (Some(h), Some(f)) => (f / h > 1.05).then_some((h + f) / 2.0),
        (None, None) => Some(search.start_hz),
    }
}

/// Ramps the connections up, runs the case's phase (or the search's steps), and builds the
/// trial from the phase it reports (the search: the highest rate held).
fn drive<C: ipcbench_core::Channel>(
    procs: &mut Processes<C>,
    case: &Case,
    connections: u64,
    fleet: &FleetOptions,
) -> Result<(Trial, Option<usize>), TrialError> {
    let ramp_started = Instant::now();
    procs.open_until(connections, false)?;
    let ramp = ramp_started.elapsed();
    let rate_hz = case.rate_per_connection_hz.unwrap_or(DEFAULT_RATE_HZ);
    let (outcome, rate_hz, (search, converged), capacity_step) = match &fleet.search {
        None => {
            let phase = phase(case, fleet, connections, rate_hz, 0);
            (procs.run_phase(&phase)?, rate_hz, (Vec::new(), true), None)
        }
        Some(options) => {
            let mut points = Vec::new();
            let (mut held, mut failed) = (None::<f64>, None::<f64>);
            let mut best: Option<(PhaseOutcome, f64, usize)> = None;
            let mut converged = false;
            let mut fallback: Option<(PhaseOutcome, f64)> = None;
            let mut rate = options.start_hz;
            // A failed step is run once more before it counts: one stall of a shared machine
            // must not end the search early.
            let mut retried = false;
            for step in 0..options.max_steps as usize {
                let outcome = procs.run_phase(&phase(case, fleet, connections, rate, step as u64))?;
                let pass = holds(&outcome, options.slo_p99_ns);
                points.push(SearchPoint {
                    offered_per_s: outcome.scheduled_per_s(),
                    achieved_per_s: outcome.achieved_per_s(),
                    p50_ns: outcome.corrected.value_at_quantile(0.5) as f64,
                    p99_ns: outcome.corrected.value_at_quantile(0.99) as f64,
                    raw_p99_ns: outcome.raw.value_at_quantile(0.99) as f64,
                    pass,
                });
                if !pass && !retried {
                    retried = true;
                    fallback.get_or_insert((outcome, rate));
                    continue;
                }
                retried = false;
                if pass {
                    held = Some(held.map_or(rate, |h| h.max(rate)));
                    if best.as_ref().is_none_or(|(_, r, _)| rate > *r) {
                        best = Some((outcome, rate, step));
                    }
                } else {
                    failed = Some(failed.map_or(rate, |f| f.min(rate)));
                    fallback.get_or_insert((outcome, rate));
                }
                match next_rate(options, held, failed, rate) {
                    Some(next) => rate = next,
                    None => {
                        converged = true;
                        break;
                    }
                }
            }
            match (best, fallback) {
                (Some((outcome, rate, step)), _) => (outcome, rate, (points, converged), Some(step)),
                (None, Some((outcome, rate))) => (outcome, rate, (points, converged), None),
                (None, None) => return Err(TrialError::Failed("the capacity search ran no step".into())),
            }
        }
    };
    let mut trial = trial_of(&outcome, connections, rate_hz, fleet, !case.generators.is_empty());
    trial.extra.insert("ramp_ns".into(), ramp.as_nanos() as f64);
    if let Some(options) = &fleet.search {
        let capacity = capacity_step.map_or(0.0, |_| outcome.achieved_per_s());
        trial.extra.insert("capacity_msgs_per_s".into(), capacity);
        trial.extra.insert("slo_p99_ns".into(), options.slo_p99_ns as f64);
        trial.extra.insert("search_steps".into(), search.len() as f64);
        // 0: the steps ran out before the search closed in, so the capacity is a lower bound.
        trial
            .extra
            .insert("capacity_converged".into(), f64::from(u8::from(converged)));
        for (k, point) in search.iter().enumerate() {
            let mut put = |name: &str, value: f64| {
                trial.extra.insert(format!("search{k}_{name}"), value);
            };
            put("offered_per_s", point.offered_per_s);
            put("achieved_per_s", point.achieved_per_s);
            put("p50_corrected_ns", point.p50_ns);
            put("p99_corrected_ns", point.p99_ns);
            put("p99_ns", point.raw_p99_ns);
            put("pass", f64::from(u8::from(point.pass)));
        }
    } else if fleet.mode == LoadMode::Closed {
        // What wrk reports: the throughput the server let through.
        trial
            .extra
            .insert("capacity_msgs_per_s".into(), outcome.achieved_per_s());
    }
    Ok((trial, capacity_step))
}

/// The trial of one phase: merged histograms, rates, and the server's costs per request.
fn trial_of(
    outcome: &PhaseOutcome,
    connections: u64,
    rate_hz: f64,
    fleet: &FleetOptions,
    remote_generators: bool,
) -> Trial {
    let recorded = outcome.sum(|r| r.recorded);
    let mut trial = Trial {
        latency_ns: stats::percentiles(&outcome.raw),
        latency_corrected_ns: stats::percentiles(&outcome.corrected),
        histogram_v2: Some(stats::encode_histogram(&outcome.raw)),
        histogram_corrected_v2: Some(stats::encode_histogram(&outcome.corrected)),
        messages: recorded,
        ..Trial::default()
    };
    let measure = Duration::from_secs_f64(outcome.measure_s);
    finish_trial(&mut trial, measure, outcome.client_usage());
    let server = outcome.server_total();
    trial.server = Some(server.rusage);
    let scheduled = outcome.sum(|r| r.scheduled);
    let sent = outcome.sum(|r| r.sent_in_window);
    let achieved = outcome.achieved_per_s();
    let closed = fleet.mode == LoadMode::Closed;
    let extra = &mut trial.extra;
    extra.insert(
        "target_messages_per_s".into(),
        if closed { achieved } else { connections as f64 * rate_hz },
    );
    extra.insert("offered_per_connection_hz".into(), if closed { 0.0 } else { rate_hz });
    extra.insert("scheduled_messages_per_s".into(), outcome.scheduled_per_s());
    extra.insert("achieved_messages_per_s".into(), achieved);
    extra.insert(
        "rate_shortfall".into(),
        if scheduled > 0 && !closed {
            (1.0 - sent as f64 / scheduled as f64).max(0.0)
        } else {
            0.0
        },
    );
    extra.insert("scheduled_messages".into(), scheduled as f64);
    extra.insert("sent_messages".into(), sent as f64);
    extra.insert("unsent_messages".into(), outcome.sum(|r| r.unsent) as f64);
    extra.insert("late_sends".into(), outcome.sum(|r| r.late) as f64);
    extra.insert(
        "max_send_lag_ns".into(),
        outcome.results.iter().map(|r| r.max_lag_ns).max().unwrap_or(0) as f64,
    );
    extra.insert("connections_held".into(), outcome.sum(|r| r.connections) as f64);
    for (g, result) in outcome.results.iter().enumerate() {
        let achieved = result.sent_in_window as f64 / outcome.measure_s;
        extra.insert(format!("generator{g}_achieved_messages_per_s"), achieved);
        // Generator k runs on the k-th agent of the case's `generators` (the case record's
        // `extra.generators` names them).
        if remote_generators {
            extra.insert(format!("agent{g}_achieved_messages_per_s"), achieved);
            extra.insert(format!("agent{g}_messages"), result.recorded as f64);
            extra.insert(format!("agent{g}_connections"), result.connections as f64);
        }
    }
    for (key, value) in &server.extra {
        extra.insert(format!("server_{key}"), *value);
    }
    extra.insert("server_messages".into(), server.messages as f64);
    // How busy each side was over the measured phase (1.0 = one core's worth): which one
    // could not keep up when the rate falls short.
    let busy = |cpu_ns: u64| cpu_ns as f64 / (outcome.measure_s * 1e9).max(1.0);
    extra.insert("client_cpu_fraction".into(), busy(outcome.client_usage().cpu_ns()));
    extra.insert("server_cpu_fraction".into(), busy(server.rusage.cpu_ns()));
    // What each request cost the server: the mechanisms behind a capacity.
    let requests = server.messages.max(1) as f64;
    let get = |key: &str| server.extra.get(key).copied().unwrap_or(0.0);
    let switches = (server.rusage.voluntary_csw + server.rusage.involuntary_csw) as f64;
    let wakeups = match fleet.server_model {
        ServerModel::EventLoop => get("epoll_waits"),
        // A blocked thread's wake-up is a voluntary context switch.
        ServerModel::ThreadPerConnection => server.rusage.voluntary_csw as f64,
    };
    for (key, value) in [
        ("server_cpu_ns_per_request", server.rusage.cpu_ns() as f64 / requests),
        ("server_reads_per_request", get("reads") / requests),
        ("server_writes_per_request", get("writes") / requests),
        ("server_epoll_waits_per_request", get("epoll_waits") / requests),
        (
            "server_syscalls_per_request",
            (get("reads") + get("writes") + get("epoll_waits")) / requests,
        ),
        ("server_wakeups_per_request", wakeups / requests),
        ("server_events_per_wakeup", get("events") / get("epoll_waits").max(1.0)),
        ("server_context_switches_per_request", switches / requests),
        (
            "client_cpu_ns_per_request",
            outcome.client_usage().cpu_ns() as f64 / recorded.max(1) as f64,
        ),
    ] {
        extra.insert(key.into(), value);
    }
    trial
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};

    use super::*;
    use crate::plan::Schedule;
    use crate::scenario::pacing::{NEVER, Timer, TimerSlack, gap_ns};
    use ipcbench_record::stats::SplitMix64;

    const TIMER: Token = Token(1);

    #[test]
    fn the_search_grows_then_bisects_then_stops() {
        let search = SearchOptions {
            slo_p99_ns: 10_000_000,
            start_hz: 10.0,
            growth: 2.0,
            max_steps: 16,
        };
        assert_eq!(next_rate(&search, None, None, 0.0), Some(10.0));
        assert_eq!(next_rate(&search, Some(10.0), None, 10.0), Some(20.0));
        assert_eq!(next_rate(&search, Some(20.0), Some(40.0), 40.0), Some(30.0));
        // Within 5%: done.
        assert_eq!(next_rate(&search, Some(39.0), Some(40.0), 39.0), None);
        // The first step failed: shrink.
        assert_eq!(next_rate(&search, None, Some(10.0), 10.0), Some(5.0));
    }

    #[test]
    fn message_counts_become_time_at_the_target_rate() {
        let mut case: Case = serde_json::from_value(serde_json::json!({
            "index": 0, "id": "x", "scenario": "load",
            "transport": {"transport": "tcp", "nodelay": true, "send_buffer_bytes": null, "recv_buffer_bytes": null},
            "back_transport": null, "message_bytes": 256, "reply_bytes": 256, "total_bytes": null,
            "window": null, "delay_ms": null, "rate_mbit": null, "connections": 100,
            "rate_per_connection_hz": 10.0, "schedule": "uniform", "server_loops": 1, "convert": "none",
            "step": null, "placement": {"client": 0, "server": 1}, "repetitions": 1,
            "warmup": {"time": 500_000_000u64}, "measure": {"messages": 2000}, "timeout": 10_000_000_000u64
        }))
        .unwrap();
        // 2000 messages at 100 x 10 msg/s take 2 s.
        assert_eq!(phase_ns(&case, 100, 10.0), (500_000_000, 2_000_000_000));
        case.measure = Amount::Time(Duration::from_secs(3));
        assert_eq!(phase_ns(&case, 100, 10.0).1, 3_000_000_000);
    }

    #[test]
    fn poisson_gaps_average_the_period_and_vary() {
        let mut rng = SplitMix64::new(7);
        let n = 200_000;
        let gaps: Vec<u64> = (0..n).map(|_| gap_ns(Schedule::Poisson, 1000.0, &mut rng)).collect();
        let mean = gaps.iter().sum::<u64>() as f64 / n as f64;
        assert!((mean / 1e6 - 1.0).abs() < 0.01, "mean gap {mean} ns, expected 1e6");
        // An exponential distribution's standard deviation equals its mean.
        let var = gaps.iter().map(|&g| (g as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((var.sqrt() / mean - 1.0).abs() < 0.02);
    }

    #[test]
    fn timer_slack_is_tight_while_held_and_restored_after() {
        std::thread::spawn(|| {
            let before = rustix::thread::current_timer_slack().unwrap();
            {
                let _slack = TimerSlack::tight();
                assert_eq!(rustix::thread::current_timer_slack().unwrap(), 1);
            }
            assert_eq!(rustix::thread::current_timer_slack().unwrap(), before);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn timer_fires_at_its_absolute_time() {
        // `started` is read first, so it is no later than the epoch the timer counts from.
        let started = Instant::now();
        let epoch = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let mut timer = Timer::new(epoch).unwrap();
        timer.arm(20_000_000).unwrap();
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut SourceFd(&timer.fd.as_raw_fd()), TIMER, Interest::READABLE)
            .unwrap();
        let mut events = Events::with_capacity(4);
        while events.is_empty() {
            poll.poll(&mut events, Some(Duration::from_secs(5))).unwrap();
            assert!(started.elapsed() < Duration::from_secs(5), "the timer never fired");
        }
        // Never early: the expiry is an absolute time 20 ms after the epoch.
        assert!(started.elapsed() >= Duration::from_millis(20));
        timer.clear();
        assert_eq!(timer.armed, NEVER);
    }

    #[test]
    fn uniform_gaps_are_the_period() {
        let mut rng = SplitMix64::new(7);
        assert_eq!(gap_ns(Schedule::Uniform, 5.0, &mut rng), 200_000_000);
        assert_eq!(gap_ns(Schedule::Uniform, 1000.0, &mut rng), 1_000_000);
    }
}
