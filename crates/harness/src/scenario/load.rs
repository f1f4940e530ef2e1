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

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read};
use std::num::NonZeroU64;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ipcbench_core::Transport;
use ipcbench_core::event_loop::{EventLoopTransport, EventStream};
use ipcbench_core::payload::{Payload, verify};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::plan::{Amount, Case, Schedule};
use crate::protocol;
use crate::rusage::Snapshot;
use crate::scenario::echo_server::{FRAME_HEADER_BYTES, flush, send_bytes};
use crate::scenario::fleet::{self, PeerRole, Stall};
use crate::session::{TrialContext, TrialError, TrialOutput, finish_trial};
use crate::{affinity, fdlimit};
use ipcbench_record::Trial;
use ipcbench_record::stats::{self, SplitMix64};

/// Connections when the plan names none.
pub const DEFAULT_CONNECTIONS: u64 = 100;
/// Sends per second per connection when the plan names none.
pub const DEFAULT_RATE_HZ: f64 = 10.0;
/// A shortfall of the achieved rate beyond this fraction of the target is flagged.
pub const SHORTFALL_LIMIT: f64 = 0.01;
/// How long requests owed or in flight at the end of the measured phase may take.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// How long requests in flight when the drain ends may take to be answered.
pub const CLOSE_LIMIT: Duration = Duration::from_secs(5);
/// A send that leaves this much after its intended time counts as late.
pub const LATE_NS: u64 = 1_000_000;
/// The flag a case gets when its achieved rate falls short.
pub const SHORTFALL_FLAG: &str = "RATE SHORTFALL";

const TIMER: Token = Token(usize::MAX - 1);
pub(crate) const NEVER: u64 = u64::MAX;
const SCRATCH_BYTES: usize = 64 * 1024;

/// Runs one `load` trial over `transport`.
///
/// # Errors
/// [`TrialError::Unsupported`] when the transport has no event-loop capability or the
/// connections cannot fit the open-file limit; [`TrialError::Failed`] otherwise.
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
    let capability = transport.event_loop().ok_or_else(|| no_event_loop(transport.name()))?;
    let connections = case.connections.unwrap_or(DEFAULT_CONNECTIONS);
    let rate_hz = case.rate_per_connection_hz.unwrap_or(DEFAULT_RATE_HZ);
    if connections == 0 {
        return Err(TrialError::Unsupported("`connections` must be at least 1".into()));
    }
    let limits = fdlimit::ensure_open_files(connections).map_err(TrialError::Unsupported)?;
    let client_cores = affinity::pin_current_thread(case.placement.client).map_err(TrialError::Failed)?;
    let role = PeerRole::EventServer {
        work_dir: ctx.work_dir.to_owned(),
        stall,
    };
    let mut started = fleet::start_peer(&transport, case, ctx, "load", &role, true)?;
    let address = started.listening.take().map(|l| l.address).unwrap_or_default();
    let workload = Workload::new(case, connections, rate_hz);
    let outcome = drive(capability, &address, &mut started.control, &workload);
    let applied_options = started.ready.applied_options.clone();
    let server_cores = started.ready.cores_applied.clone();
    drop(started.control);
    let peer_failure = started.process.finish(crate::protocol::EXIT_TIMEOUT);
    let (mut trial, report) = fleet::merge_failure(outcome, peer_failure)?;
    trial.server = Some(report.rusage);
    for (key, value) in report.extra {
        trial.extra.insert(format!("server_{key}"), value);
    }
    trial.extra.insert("server_messages".into(), report.messages as f64);
    trial.extra.insert("fd_soft_limit".into(), limits.soft as f64);
    // How busy each side was over the measured phase (1.0 = one core's worth): which one
    // could not keep up when the rate falls short.
    let busy = |cpu_ns: u64| cpu_ns as f64 / trial.elapsed_ns.max(1) as f64;
    if let Some(client) = trial.client {
        trial.extra.insert("client_cpu_fraction".into(), busy(client.cpu_ns()));
    }
    trial
        .extra
        .insert("server_cpu_fraction".into(), busy(report.rusage.cpu_ns()));
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

/// The fixed parameters of one trial, in nanoseconds from the start of the schedule.
#[derive(Debug, Clone, Copy)]
struct Workload {
    connections: u64,
    rate_hz: f64,
    schedule: Schedule,
    message_bytes: usize,
    /// Start of the measured phase (end of warm-up).
    measure_from: u64,
    /// End of the measured phase; nothing is intended from here on.
    measure_to: u64,
}

impl Workload {
    fn new(case: &Case, connections: u64, rate_hz: f64) -> Workload {
        // A message count means that many messages across all connections at the target rate.
        let as_ns = |amount: Amount| match amount {
            Amount::Time(d) => d.as_nanos() as u64,
            Amount::Messages(n) => (n as f64 / (connections as f64 * rate_hz) * 1e9) as u64,
        };
        let warmup = as_ns(case.warmup);
        let measure = as_ns(case.measure).max(1);
        Workload {
            connections,
            rate_hz,
            schedule: case.schedule,
            message_bytes: case.message_bytes as usize,
            measure_from: warmup,
            measure_to: warmup + measure,
        }
    }

    fn measure_ns(&self) -> u64 {
        self.measure_to - self.measure_from
    }

    fn in_window(&self, t: u64) -> bool {
        (self.measure_from..self.measure_to).contains(&t)
    }
}

/// The gap between two intended sends of one connection, ns.
pub(crate) fn gap_ns(schedule: Schedule, rate_hz: f64, rng: &mut SplitMix64) -> u64 {
    let mean_ns = 1e9 / rate_hz;
    match schedule {
        Schedule::Uniform => mean_ns as u64,
        // Inverse-CDF sampling of the exponential distribution; 1 - u is in (0, 1].
        Schedule::Poisson => (-(1.0 - rng.unit()).ln() * mean_ns) as u64,
    }
}

/// A request sent and not yet answered.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    intended: u64,
    actual: u64,
}

/// One connection as the generator sees it.
struct Conn {
    stream: EventStream,
    rx: Vec<u8>,
    tx: Vec<u8>,
    next_seq: u64,
    in_flight: Option<InFlight>,
    /// Intended time of the next send, or [`NEVER`].
    next_due: u64,
    /// `next_due` has passed while a request was in flight: send as soon as it is answered.
    owed: bool,
}

/// Counters of one trial.
#[derive(Debug, Default)]
struct Tally {
    /// Sends the schedule intended in the measured phase.
    scheduled: u64,
    /// Sends that actually left during the measured phase.
    sent_in_window: u64,
    /// Replies to requests intended in the measured phase (the recorded samples).
    recorded: u64,
    /// Recorded requests that left more than [`LATE_NS`] after their intended time.
    late: u64,
    /// The largest gap between intended and actual send time of a recorded request.
    max_lag: u64,
    /// Requests intended in the measured phase that were still owed when the drain ended.
    unsent: u64,
}

/// A `timerfd` that wakes the event loop at an absolute time of the schedule.
pub(crate) struct Timer {
    pub(crate) fd: OwnedFd,
    epoch: rustix::time::Timespec,
    armed: u64,
}

impl Timer {
    pub(crate) fn new(epoch: rustix::time::Timespec) -> Result<Timer, TrialError> {
        use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .map_err(|e| TrialError::Failed(format!("cannot create a timer: {e}")))?;
        Ok(Timer {
            fd,
            epoch,
            armed: NEVER,
        })
    }

    /// Arms the timer for `at` ns after the epoch (or disarms it for [`NEVER`]).
    pub(crate) fn arm(&mut self, at: u64) -> Result<(), TrialError> {
        use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec, timerfd_settime};
        if at == self.armed {
            return Ok(());
        }
        let value = if at == NEVER {
            Timespec { tv_sec: 0, tv_nsec: 0 }
        } else {
            let total = self.epoch.tv_nsec as u64 + at % 1_000_000_000;
            Timespec {
                tv_sec: self.epoch.tv_sec + (at / 1_000_000_000) as i64 + (total / 1_000_000_000) as i64,
                tv_nsec: (total % 1_000_000_000) as _,
            }
        };
        let spec = Itimerspec {
            it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: value,
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::ABSTIME, &spec)
            .map_err(|e| TrialError::Failed(format!("cannot arm the timer: {e}")))?;
        self.armed = at;
        Ok(())
    }

    /// Clears the expiry count after a wake-up.
    pub(crate) fn clear(&mut self) {
        let mut count = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut count);
        self.armed = NEVER;
    }
}

/// Sets the calling thread's timer slack to 1 ns until dropped.
pub(crate) struct TimerSlack(Option<u64>);

impl TimerSlack {
    pub(crate) fn tight() -> TimerSlack {
        let before = rustix::thread::current_timer_slack().ok();
        let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1));
        TimerSlack(before)
    }
}

impl Drop for TimerSlack {
    fn drop(&mut self) {
        if let Some(before) = self.0 {
            let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(before));
        }
    }
}

/// The generator: connections, schedule and histograms of one trial.
struct Generator<'a> {
    workload: &'a Workload,
    conns: Vec<Conn>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    rng: SplitMix64,
    payload: Payload,
    epoch: Instant,
    tally: Tally,
    /// Connections with a request in flight (and perhaps one owed).
    busy: usize,
    /// The drain is over: owed requests are no longer sent, only answers awaited.
    closing: bool,
    raw: hdrhistogram::Histogram<u64>,
    corrected: hdrhistogram::Histogram<u64>,
}

impl Generator<'_> {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// The gap to the next intended send of a connection.
    fn gap(&mut self) -> u64 {
        gap_ns(self.workload.schedule, self.workload.rate_hz, &mut self.rng)
    }

    /// Sets connection `idx`'s next intended send after `after`, queueing it in the heap or
    /// marking it owed when it is already due; counts it when it falls in the window.
    fn schedule_next(&mut self, idx: usize, next: u64, now: u64) {
        let conn = &mut self.conns[idx];
        if next >= self.workload.measure_to {
            conn.next_due = NEVER;
            return;
        }
        if self.workload.in_window(next) {
            self.tally.scheduled += 1;
        }
        conn.next_due = next;
        if next <= now && conn.in_flight.is_some() {
            conn.owed = true;
        } else {
            self.heap.push(Reverse((next, idx)));
        }
    }

    /// Sends connection `idx`'s request intended at `intended`.
    fn send(&mut self, idx: usize, intended: u64) -> Result<(), TrialError> {
        let conn = &mut self.conns[idx];
        let seq = conn.next_seq;
        conn.next_seq += 1;
        let msg = self.payload.stamp(seq);
        let header = (msg.len() as u32).to_le_bytes();
        let actual = self.epoch.elapsed().as_nanos() as u64;
        send_bytes(&mut conn.stream, &mut conn.tx, &header, msg)
            .map_err(|e| TrialError::Failed(format!("connection {idx}: send failed: {e}")))?;
        conn.in_flight = Some(InFlight { seq, intended, actual });
        if self.workload.in_window(actual) {
            self.tally.sent_in_window += 1;
        }
        Ok(())
    }

    /// A send came due for connection `idx`.
    fn on_due(&mut self, idx: usize, due: u64, now: u64) -> Result<(), TrialError> {
        if self.conns[idx].in_flight.is_some() {
            // Keep-alive without pipelining: it leaves when the reply arrives.
            self.conns[idx].owed = true;
            return Ok(());
        }
        self.busy += 1;
        self.send(idx, due)?;
        let next = due + self.gap();
        self.schedule_next(idx, next, now);
        Ok(())
    }

    /// Reads what connection `idx` has, handling every whole reply.
    fn on_readable(&mut self, idx: usize, scratch: &mut [u8]) -> Result<(), TrialError> {
        loop {
            let read = self.conns[idx].stream.read(scratch);
            match read {
                Ok(0) => {
                    return Err(TrialError::Failed(format!(
                        "the server closed connection {idx} during the run"
                    )));
                }
                Ok(n) => {
                    let received = self.now();
                    self.on_bytes(idx, &scratch[..n], received)?;
                    if n < scratch.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TrialError::Failed(format!("connection {idx}: read failed: {e}"))),
            }
        }
    }

    fn on_bytes(&mut self, idx: usize, data: &[u8], received: u64) -> Result<(), TrialError> {
        let mut pending = std::mem::take(&mut self.conns[idx].rx);
        if pending.is_empty() {
            // The usual case: whole replies straight from the read buffer, nothing copied.
            let used = self.on_frames(idx, data, received)?;
            pending.extend_from_slice(&data[used..]);
        } else {
            pending.extend_from_slice(data);
            let used = self.on_frames(idx, &pending, received)?;
            pending.drain(..used);
        }
        self.conns[idx].rx = pending;
        Ok(())
    }

    /// Handles every whole reply at the start of `bytes`; returns the bytes used.
    fn on_frames(&mut self, idx: usize, bytes: &[u8], received: u64) -> Result<usize, TrialError> {
        let frame_bytes = FRAME_HEADER_BYTES + self.workload.message_bytes;
        let mut used = 0;
        while bytes.len() - used >= FRAME_HEADER_BYTES {
            let len = u32::from_le_bytes(bytes[used..used + FRAME_HEADER_BYTES].try_into().expect("4 bytes")) as usize;
            if len != self.workload.message_bytes {
                return Err(TrialError::Failed(format!(
                    "connection {idx}: reply of {len} bytes, expected {}",
                    self.workload.message_bytes
                )));
            }
            if bytes.len() - used < frame_bytes {
                break;
            }
            self.on_reply(idx, &bytes[used + FRAME_HEADER_BYTES..used + frame_bytes], received)?;
            used += frame_bytes;
        }
        Ok(used)
    }

    fn on_reply(&mut self, idx: usize, msg: &[u8], received: u64) -> Result<(), TrialError> {
        let Some(request) = self.conns[idx].in_flight.take() else {
            return Err(TrialError::Failed(format!(
                "connection {idx}: a reply arrived with no request in flight"
            )));
        };
        verify(msg, self.workload.message_bytes, request.seq)?;
        if self.workload.in_window(request.intended) {
            stats::record(&mut self.raw, received.saturating_sub(request.actual))?;
            stats::record(&mut self.corrected, received.saturating_sub(request.intended))?;
            self.tally.recorded += 1;
            let lag = request.actual.saturating_sub(request.intended);
            self.tally.max_lag = self.tally.max_lag.max(lag);
            if lag > LATE_NS {
                self.tally.late += 1;
            }
        }
        if self.conns[idx].owed && self.closing {
            self.conns[idx].owed = false;
            self.tally.unsent += 1;
            self.busy -= 1;
        } else if self.conns[idx].owed {
            self.conns[idx].owed = false;
            let intended = self.conns[idx].next_due;
            self.send(idx, intended)?;
            let next = intended + self.gap();
            self.schedule_next(idx, next, received);
        } else {
            self.busy -= 1;
        }
        Ok(())
    }

    fn on_writable(&mut self, idx: usize) -> Result<(), TrialError> {
        let conn = &mut self.conns[idx];
        flush(&mut conn.stream, &mut conn.tx)
            .map_err(|e| TrialError::Failed(format!("connection {idx}: send failed: {e}")))
    }
}

/// Opens the connections, runs warm-up and the measured phase, drains, and collects the
/// server's report.
fn drive<C: ipcbench_core::Channel>(
    capability: &dyn EventLoopTransport,
    address: &str,
    control: &mut C,
    workload: &Workload,
) -> Result<(Trial, protocol::PeerReport), TrialError> {
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    let mut poll = Poll::new().map_err(|e| TrialError::Failed(format!("cannot create an event loop: {e}")))?;
    let mut streams = Vec::with_capacity(workload.connections as usize);
    let ramp_started = Instant::now();
    fleet::open_connections(
        capability,
        address,
        workload.connections,
        &mut poll,
        &mut streams,
        &mut || fleet::query_accepted(control, &mut buf),
    )?;
    let ramp = ramp_started.elapsed();
    let _slack = TimerSlack::tight();
    let epoch = Instant::now();
    let epoch_ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let mut timer = Timer::new(epoch_ts)?;
    poll.registry()
        .register(&mut SourceFd(&timer.fd.as_raw_fd()), TIMER, Interest::READABLE)
        .map_err(|e| TrialError::Failed(format!("cannot register the timer: {e}")))?;
    let mut generator = Generator {
        workload,
        conns: streams
            .into_iter()
            .map(|stream| Conn {
                stream,
                rx: Vec::new(),
                tx: Vec::new(),
                next_seq: 0,
                in_flight: None,
                next_due: NEVER,
                owed: false,
            })
            .collect(),
        heap: BinaryHeap::with_capacity(workload.connections as usize),
        rng: SplitMix64::new(0x10AD ^ workload.connections),
        payload: Payload::new(workload.message_bytes),
        epoch,
        tally: Tally::default(),
        busy: 0,
        closing: false,
        raw: stats::new_histogram(),
        corrected: stats::new_histogram(),
    };
    for idx in 0..generator.conns.len() {
        let first = match workload.schedule {
            Schedule::Uniform => (generator.rng.unit() * 1e9 / workload.rate_hz) as u64,
            Schedule::Poisson => generator.gap(),
        };
        generator.schedule_next(idx, first, 0);
    }
    let mut events = Events::with_capacity(4096);
    let mut scratch = vec![0u8; SCRATCH_BYTES];
    let mut usage_start = None;
    let mut usage = None;
    // Owed requests may still leave until the drain deadline; answers are awaited until the
    // close deadline.
    let drain_deadline = workload.measure_to + DRAIN_LIMIT.as_nanos() as u64;
    let close_deadline = drain_deadline + CLOSE_LIMIT.as_nanos() as u64;
    loop {
        let now = generator.now();
        if usage_start.is_none() && now >= workload.measure_from {
            usage_start = Some(Snapshot::now());
            // Not waiting for the echo: it is read after the run.
            control.send(&protocol::encode(protocol::MARK, None::<&()>))?;
        }
        if usage.is_none() && now >= workload.measure_to {
            usage = usage_start.map(|start| start.until(&Snapshot::now()));
        }
        while let Some(&Reverse((due, idx))) = generator.heap.peek() {
            if due > now {
                break;
            }
            generator.heap.pop();
            generator.on_due(idx, due, now)?;
        }
        if usage.is_some() && generator.heap.is_empty() && generator.busy == 0 {
            break;
        }
        if now >= drain_deadline && !generator.closing {
            generator.closing = true;
            // Owed requests of idle connections cannot exist (owed implies one in flight),
            // so every owed request is counted as its connection's answer arrives.
        }
        if now >= close_deadline {
            break;
        }
        let mut wake = generator.heap.peek().map_or(NEVER, |Reverse((due, _))| *due);
        if usage_start.is_none() {
            wake = wake.min(workload.measure_from);
        }
        if usage.is_none() {
            wake = wake.min(workload.measure_to);
        }
        wake = wake.min(if generator.closing {
            close_deadline
        } else {
            drain_deadline
        });
        timer.arm(wake)?;
        match poll.poll(&mut events, Some(Duration::from_secs(1))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(TrialError::Failed(format!("poll failed: {e}"))),
        }
        for event in events.iter() {
            match event.token() {
                TIMER => timer.clear(),
                Token(idx) => {
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        generator.on_readable(idx, &mut scratch)?;
                    }
                    if event.is_writable() {
                        generator.on_writable(idx)?;
                    }
                }
            }
        }
    }
    let unanswered = generator.conns.iter().filter(|c| c.in_flight.is_some()).count();
    if unanswered > 0 {
        return Err(TrialError::Failed(format!(
            "{unanswered} requests were still unanswered {:?} after the measured phase (lost, or the server \
             stopped answering)",
            DRAIN_LIMIT + CLOSE_LIMIT
        )));
    }
    let unsent = generator.tally.unsent;
    let usage = usage.unwrap_or_default();
    let report = fleet::end_and_report(control, &mut buf, true)?;
    let tally = &generator.tally;
    let measure_s = workload.measure_ns() as f64 / 1e9;
    let mut trial = Trial {
        latency_ns: stats::percentiles(&generator.raw),
        latency_corrected_ns: stats::percentiles(&generator.corrected),
        histogram_v2: Some(stats::encode_histogram(&generator.raw)),
        histogram_corrected_v2: Some(stats::encode_histogram(&generator.corrected)),
        messages: tally.recorded,
        bytes: tally.recorded * 2 * workload.message_bytes as u64,
        ..Trial::default()
    };
    finish_trial(&mut trial, Duration::from_nanos(workload.measure_ns()), usage);
    let target = tally.scheduled as f64 / measure_s;
    let achieved = tally.sent_in_window as f64 / measure_s;
    let extra = &mut trial.extra;
    extra.insert(
        "target_messages_per_s".into(),
        workload.connections as f64 * workload.rate_hz,
    );
    extra.insert("scheduled_messages_per_s".into(), target);
    extra.insert("achieved_messages_per_s".into(), achieved);
    extra.insert(
        "rate_shortfall".into(),
        if tally.scheduled > 0 {
            (1.0 - tally.sent_in_window as f64 / tally.scheduled as f64).max(0.0)
        } else {
            0.0
        },
    );
    extra.insert("scheduled_messages".into(), tally.scheduled as f64);
    extra.insert("sent_messages".into(), tally.sent_in_window as f64);
    extra.insert("unsent_messages".into(), unsent as f64);
    extra.insert("late_sends".into(), tally.late as f64);
    extra.insert("max_send_lag_ns".into(), tally.max_lag as f64);
    extra.insert("connections_held".into(), generator.conns.len() as f64);
    extra.insert("ramp_ns".into(), ramp.as_nanos() as f64);
    Ok((trial, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(schedule: Schedule) -> Workload {
        Workload {
            connections: 1,
            rate_hz: 1000.0,
            schedule,
            message_bytes: 64,
            measure_from: 1_000,
            measure_to: 2_000,
        }
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
        let p = Workload::new(&case, 100, 10.0);
        assert_eq!(p.measure_from, 500_000_000);
        // 2000 messages at 100 x 10 msg/s take 2 s.
        assert_eq!(p.measure_ns(), 2_000_000_000);
        case.measure = Amount::Time(Duration::from_secs(3));
        assert_eq!(Workload::new(&case, 100, 10.0).measure_ns(), 3_000_000_000);
    }

    #[test]
    fn window_is_half_open() {
        let p = workload(Schedule::Uniform);
        assert!(!p.in_window(999) && p.in_window(1_000) && p.in_window(1_999) && !p.in_window(2_000));
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
