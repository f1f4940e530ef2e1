//! A load generator process of `load` and `conn-cost`: its share of the connections, each on
//! one mio `Poll`, driven by the measuring process over its control channel.
//!
//! One process holds at most what its open-file limit allows, so a case of 100,000 connections
//! runs several generators (and several servers, `scenario/echo_server.rs`), each pinned to
//! the client core. The measuring process ([`super::load`], [`super::conn_cost`]) tells each
//! generator what to do and merges what they send back:
//!
//! | command   | sent by   | body            | meaning                                             |
//! |-----------|-----------|-----------------|-----------------------------------------------------|
//! | `OPEN`    | both      | [`Open`] / [`Opened`] | open `count` more connections (then, with `exchange`, one request and its echo on each); answered when all are connected |
//! | `PHASE`   | client    | [`Phase`]       | run one load phase on every connection             |
//! | `RESULT`  | generator | [`PhaseResult`] | the phase's histograms, counts and CPU             |
//! | `END`     | client    | none            | close everything; answered with `REPORT`           |
//!
//! Connection `i` (counted over the whole case, not per generator) dials server address
//! `i mod servers` and, with `source_addresses = n`, binds source address `base + i mod n`
//! (`IP_BIND_ADDRESS_NO_PORT`: the port is chosen at connect time, unique per 4-tuple, so
//! each source address has the whole ephemeral range towards each destination).
//!
//! **Open loop** (`mode = "open"`, the default) is the schedule of [`super::load`]: one request
//! in flight per connection, a send that comes due while one is in flight leaves the moment the
//! reply arrives, latency recorded corrected (from the intended time) and raw. **Closed loop**
//! (`mode = "closed"`, wrk's way): each connection starts `pipeline` requests at once and sends
//! the next one the moment a reply arrives, until the measured phase ends; latency is from the
//! actual send (there is no schedule to correct against), and the achieved rate is simply what
//! the server let through.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ipcbench_core::event_loop::{EventLoopTransport, EventStream, is_backlog_full};
use ipcbench_core::payload::{Payload, verify};
use ipcbench_core::{Channel, Transport};
use ipcbench_record::Rusage;
use ipcbench_record::stats::{self, SplitMix64};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use serde::{Deserialize, Serialize};

use crate::fdlimit;
use crate::plan::{LoadMode, Schedule};
use crate::protocol::{self, PeerReport, PeerSpec};
use crate::rusage::Snapshot;
use crate::scenario::echo_server::{FRAME_HEADER_BYTES, flush, send_bytes};
use crate::scenario::fleet::{self, BATCH_TIMEOUT};
use crate::scenario::pacing::{CLOSE_LIMIT, DRAIN_LIMIT, LATE_NS, NEVER, Timer, TimerSlack, gap_ns};
use crate::session::{TrialError, error_chain};

/// Both ways: open connections ([`Open`]) / they are open ([`Opened`]).
pub const OPEN: u64 = 132;
/// Client to generator: run a phase ([`Phase`]).
pub const PHASE: u64 = 133;
/// Generator to client: a phase's outcome ([`PhaseResult`]).
pub const RESULT: u64 = 134;
/// A receive buffer for [`RESULT`]: two encoded histograms.
pub const RESULT_BUF_BYTES: usize = 4 << 20;

const TIMER: Token = Token(usize::MAX - 1);
const SCRATCH_BYTES: usize = 64 * 1024;

/// The body of `OPEN` from the client.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Open {
    /// Connections to add.
    pub count: u64,
    /// Send one request on each new connection and wait for its echo (`conn-cost`).
    pub exchange: bool,
}

/// The body of `OPEN` from the generator.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Opened {
    /// Connections the generator holds now.
    pub held: u64,
}

/// The body of `PHASE`: one load phase, times in ns from the phase's own start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Open or closed loop.
    pub mode: LoadMode,
    /// Sends per second per connection (open loop).
    pub rate_hz: f64,
    /// The open-loop schedule.
    pub schedule: Schedule,
    /// Discarded warm-up.
    pub warmup_ns: u64,
    /// The measured phase.
    pub measure_ns: u64,
    /// Requests in flight per connection (closed loop).
    pub pipeline: u32,
    /// Seeds the schedule's random phases.
    pub seed: u64,
}

impl Phase {
    fn measure_from(&self) -> u64 {
        self.warmup_ns
    }

    fn measure_to(&self) -> u64 {
        self.warmup_ns + self.measure_ns.max(1)
    }

    fn in_window(&self, t: u64) -> bool {
        (self.measure_from()..self.measure_to()).contains(&t)
    }
}

/// The body of `RESULT`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhaseResult {
    /// Latency from the actual send, encoded ([`stats::encode_histogram`]).
    pub raw: String,
    /// Latency from the intended send (open loop; the same as `raw` in the closed loop).
    pub corrected: String,
    /// Sends the schedule intended in the measured phase (closed loop: the sends).
    pub scheduled: u64,
    /// Sends that left during the measured phase.
    pub sent_in_window: u64,
    /// Replies recorded.
    pub recorded: u64,
    /// Recorded requests that left more than [`LATE_NS`] late.
    pub late: u64,
    /// The largest lag between intended and actual send of a recorded request, ns.
    pub max_lag_ns: u64,
    /// Requests intended in the measured phase still owed when the drain ended.
    pub unsent: u64,
    /// The generator's CPU over the measured phase.
    pub usage: Rusage,
    /// Connections held.
    pub connections: u64,
}

/// A request sent and not yet answered.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    intended: u64,
    actual: u64,
}

/// What the generator keeps of one connection besides its stream.
#[derive(Debug, Default)]
struct ConnState {
    rx: Vec<u8>,
    tx: Vec<u8>,
    next_seq: u64,
    in_flight: VecDeque<InFlight>,
    /// Intended time of the next send (open loop), or [`NEVER`].
    next_due: u64,
    /// `next_due` passed while a request was in flight: send when it is answered.
    owed: bool,
}

/// Where connection `global` dials and which source address it binds.
#[derive(Debug, Clone)]
pub struct Addressing {
    /// Every server listening address of the case.
    pub servers: Vec<String>,
    /// The first source address and how many there are (`None`: the kernel's choice).
    pub sources: Option<(Ipv4Addr, u32)>,
}

impl Addressing {
    /// The server address of connection `global`.
    pub fn server(&self, global: u64) -> &str {
        &self.servers[(global % self.servers.len().max(1) as u64) as usize]
    }

    /// The source address of connection `global`.
    pub fn source(&self, global: u64) -> Option<IpAddr> {
        self.sources.map(|(base, n)| {
            let offset = (global % u64::from(n.max(1))) as u32;
            IpAddr::V4(Ipv4Addr::from(u32::from(base).wrapping_add(offset)))
        })
    }
}

/// The generator's connections and event loop.
pub(crate) struct Connections {
    poll: Poll,
    streams: Vec<EventStream>,
    state: Vec<ConnState>,
    addressing: Addressing,
    /// The case-wide index of this generator's first connection.
    first: u64,
    message_bytes: usize,
}

impl Connections {
    /// An empty set whose connection `k` is connection `first + k` of the case.
    pub(crate) fn new(addressing: Addressing, first: u64, message_bytes: usize) -> Result<Connections, TrialError> {
        Ok(Connections {
            poll: Poll::new().map_err(|e| TrialError::Failed(format!("cannot create an event loop: {e}")))?,
            streams: Vec::new(),
            state: Vec::new(),
            addressing,
            first,
            message_bytes,
        })
    }

    /// Connections held.
    pub(crate) fn len(&self) -> usize {
        self.streams.len()
    }

    /// Opens `count` more connections and waits until every one is connected; with
    /// `exchange`, sends one request on each and waits for its echo.
    ///
    /// # Errors
    /// A connection that fails, or a batch not connected within [`BATCH_TIMEOUT`].
    pub(crate) fn open(
        &mut self,
        capability: &dyn EventLoopTransport,
        count: u64,
        exchange: bool,
    ) -> Result<(), TrialError> {
        let from = self.streams.len();
        let deadline = Instant::now() + BATCH_TIMEOUT;
        for idx in from..from + count as usize {
            let global = self.first + idx as u64;
            let server = self.addressing.server(global).to_owned();
            let source = self.addressing.source(global);
            let mut stream = loop {
                match capability.connect_nonblocking_from(&server, source) {
                    Ok(stream) => break stream,
                    Err(e) if is_backlog_full(&e) && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => {
                        let from = source.map(|s| format!(" from {s}")).unwrap_or_default();
                        return Err(TrialError::Failed(format!(
                            "connection {} to {server}{from}: {}",
                            global + 1,
                            error_chain(&e)
                        )));
                    }
                }
            };
            self.poll
                .registry()
                .register(&mut stream, Token(idx), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| TrialError::Failed(format!("cannot register connection {}: {e}", global + 1)))?;
            self.streams.push(stream);
            self.state.push(ConnState {
                next_due: NEVER,
                ..ConnState::default()
            });
        }
        let mut pending = self.streams.len() - from;
        let mut done = vec![false; pending];
        let mut events = Events::with_capacity(1024);
        while pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TrialError::Failed(format!(
                    "{pending} of {count} connections did not complete within {BATCH_TIMEOUT:?}"
                )));
            }
            self.poll
                .poll(&mut events, Some(left.min(Duration::from_millis(100))))
                .map_err(|e| TrialError::Failed(format!("poll failed: {e}")))?;
            for event in events.iter() {
                let Token(idx) = event.token();
                if idx < from || idx >= self.streams.len() || done[idx - from] {
                    continue;
                }
                let stream = &self.streams[idx];
                if let Ok(Some(err)) | Err(err) = stream.take_error() {
                    return Err(TrialError::Failed(format!(
                        "connection {} to {} failed: {err}",
                        self.first + idx as u64 + 1,
                        self.addressing.server(self.first + idx as u64)
                    )));
                }
                if event.is_writable() && stream.is_connected() {
                    done[idx - from] = true;
                    pending -= 1;
                }
            }
        }
        if exchange {
            let mut payload = Payload::new(self.message_bytes);
            exchange_once(&mut self.poll, &mut self.streams, from, &mut payload)?;
            for state in &mut self.state[from..] {
                state.next_seq = 1;
            }
        }
        Ok(())
    }

    /// Runs one phase on every connection and returns its outcome.
    ///
    /// # Errors
    /// A connection that fails or closes, a malformed reply, or requests still unanswered
    /// [`DRAIN_LIMIT`] + [`CLOSE_LIMIT`] after the measured phase.
    pub(crate) fn run_phase(&mut self, phase: &Phase) -> Result<PhaseResult, TrialError> {
        let _slack = TimerSlack::tight();
        let epoch = Instant::now();
        let epoch_ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let mut timer = Timer::new(epoch_ts)?;
        let timer_fd = timer.fd.as_raw_fd();
        self.poll
            .registry()
            .register(&mut SourceFd(&timer_fd), TIMER, Interest::READABLE)
            .map_err(|e| TrialError::Failed(format!("cannot register the timer: {e}")))?;
        let seed = phase.seed ^ self.first.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut run = PhaseRun {
            phase,
            conns: self,
            heap: std::collections::BinaryHeap::new(),
            // Each generator its own random phases: the same seed everywhere would line them up.
            rng: SplitMix64::new(seed),
            payload: Payload::new(0),
            epoch,
            result: PhaseResult::default(),
            busy: 0,
            closing: false,
            raw: stats::new_histogram(),
            corrected: stats::new_histogram(),
        };
        run.payload = Payload::new(run.conns.message_bytes);
        let outcome = run.drive(&mut timer);
        let _ = self.poll.registry().deregister(&mut SourceFd(&timer_fd));
        outcome
    }
}

/// One phase in progress.
struct PhaseRun<'a> {
    phase: &'a Phase,
    conns: &'a mut Connections,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize)>>,
    rng: SplitMix64,
    payload: Payload,
    epoch: Instant,
    result: PhaseResult,
    /// Connections with a request in flight.
    busy: usize,
    /// The drain is over: owed requests are no longer sent.
    closing: bool,
    raw: hdrhistogram::Histogram<u64>,
    corrected: hdrhistogram::Histogram<u64>,
}

impl PhaseRun<'_> {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn gap(&mut self) -> u64 {
        gap_ns(self.phase.schedule, self.phase.rate_hz, &mut self.rng)
    }

    fn closed(&self) -> bool {
        self.phase.mode == LoadMode::Closed
    }

    /// Open loop: sets connection `idx`'s next intended send.
    fn schedule_next(&mut self, idx: usize, next: u64, now: u64) {
        let state = &mut self.conns.state[idx];
        if next >= self.phase.measure_to() {
            state.next_due = NEVER;
            return;
        }
        if self.phase.in_window(next) {
            self.result.scheduled += 1;
        }
        state.next_due = next;
        if next <= now && !state.in_flight.is_empty() {
            state.owed = true;
        } else {
            self.heap.push(std::cmp::Reverse((next, idx)));
        }
    }

    /// Sends connection `idx`'s next request, intended at `intended` (`None`: now).
    fn send(&mut self, idx: usize, intended: Option<u64>) -> Result<(), TrialError> {
        let state = &mut self.conns.state[idx];
        let seq = state.next_seq;
        state.next_seq += 1;
        let msg = self.payload.stamp(seq);
        let header = (msg.len() as u32).to_le_bytes();
        let actual = self.epoch.elapsed().as_nanos() as u64;
        let stream = &mut self.conns.streams[idx];
        send_bytes(stream, &mut state.tx, &header, msg)
            .map_err(|e| TrialError::Failed(format!("connection {idx}: send failed: {e}")))?;
        if state.in_flight.is_empty() {
            self.busy += 1;
        }
        state.in_flight.push_back(InFlight {
            seq,
            intended: intended.unwrap_or(actual),
            actual,
        });
        if self.phase.in_window(actual) {
            self.result.sent_in_window += 1;
            if self.closed() {
                self.result.scheduled += 1;
            }
        }
        Ok(())
    }

    fn on_due(&mut self, idx: usize, due: u64, now: u64) -> Result<(), TrialError> {
        if !self.conns.state[idx].in_flight.is_empty() {
            self.conns.state[idx].owed = true;
            return Ok(());
        }
        self.send(idx, Some(due))?;
        let next = due + self.gap();
        self.schedule_next(idx, next, now);
        Ok(())
    }

    fn on_readable(&mut self, idx: usize, scratch: &mut [u8]) -> Result<(), TrialError> {
        loop {
            let read = self.conns.streams[idx].read(scratch);
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
        let mut pending = std::mem::take(&mut self.conns.state[idx].rx);
        if pending.is_empty() {
            let used = self.on_frames(idx, data, received)?;
            pending.extend_from_slice(&data[used..]);
        } else {
            pending.extend_from_slice(data);
            let used = self.on_frames(idx, &pending, received)?;
            pending.drain(..used);
        }
        self.conns.state[idx].rx = pending;
        Ok(())
    }

    fn on_frames(&mut self, idx: usize, bytes: &[u8], received: u64) -> Result<usize, TrialError> {
        let message_bytes = self.conns.message_bytes;
        let frame_bytes = FRAME_HEADER_BYTES + message_bytes;
        let mut used = 0;
        while bytes.len() - used >= FRAME_HEADER_BYTES {
            let len = u32::from_le_bytes(bytes[used..used + FRAME_HEADER_BYTES].try_into().expect("4 bytes")) as usize;
            if len != message_bytes {
                return Err(TrialError::Failed(format!(
                    "connection {idx}: reply of {len} bytes, expected {message_bytes}"
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
        let Some(request) = self.conns.state[idx].in_flight.pop_front() else {
            return Err(TrialError::Failed(format!(
                "connection {idx}: a reply arrived with no request in flight"
            )));
        };
        verify(msg, self.conns.message_bytes, request.seq)?;
        if self.phase.in_window(request.intended) {
            stats::record(&mut self.raw, received.saturating_sub(request.actual))?;
            stats::record(&mut self.corrected, received.saturating_sub(request.intended))?;
            self.result.recorded += 1;
            let lag = request.actual.saturating_sub(request.intended);
            self.result.max_lag_ns = self.result.max_lag_ns.max(lag);
            if lag > LATE_NS {
                self.result.late += 1;
            }
        }
        let idle = self.conns.state[idx].in_flight.is_empty();
        if self.closed() {
            if received < self.phase.measure_to() {
                self.send(idx, None)?;
            }
            if idle {
                self.busy -= 1;
            }
            return Ok(());
        }
        let state = &mut self.conns.state[idx];
        if state.owed && self.closing {
            state.owed = false;
            self.result.unsent += 1;
            self.busy -= 1;
        } else if state.owed {
            state.owed = false;
            let intended = state.next_due;
            self.busy -= 1;
            self.send(idx, Some(intended))?;
            let next = intended + self.gap();
            self.schedule_next(idx, next, received);
        } else {
            self.busy -= 1;
        }
        Ok(())
    }

    fn on_writable(&mut self, idx: usize) -> Result<(), TrialError> {
        flush(&mut self.conns.streams[idx], &mut self.conns.state[idx].tx)
            .map_err(|e| TrialError::Failed(format!("connection {idx}: send failed: {e}")))
    }

    fn drive(&mut self, timer: &mut Timer) -> Result<PhaseResult, TrialError> {
        let n = self.conns.len();
        if self.closed() {
            for idx in 0..n {
                for _ in 0..self.phase.pipeline.max(1) {
                    self.send(idx, None)?;
                }
            }
        } else {
            for idx in 0..n {
                let first = match self.phase.schedule {
                    Schedule::Uniform => (self.rng.unit() * 1e9 / self.phase.rate_hz) as u64,
                    Schedule::Poisson => self.gap(),
                };
                self.schedule_next(idx, first, 0);
            }
        }
        let mut events = Events::with_capacity(4096);
        let mut scratch = vec![0u8; SCRATCH_BYTES];
        let mut usage_start = None;
        let mut usage = None;
        let measure_from = self.phase.measure_from();
        let measure_to = self.phase.measure_to();
        let drain_deadline = measure_to + DRAIN_LIMIT.as_nanos() as u64;
        let close_deadline = drain_deadline + CLOSE_LIMIT.as_nanos() as u64;
        loop {
            let now = self.now();
            if usage_start.is_none() && now >= measure_from {
                usage_start = Some(Snapshot::process_now());
            }
            if usage.is_none() && now >= measure_to {
                usage = usage_start.map(|start| start.until(&Snapshot::process_now()));
            }
            while let Some(&std::cmp::Reverse((due, idx))) = self.heap.peek() {
                if due > now {
                    break;
                }
                self.heap.pop();
                self.on_due(idx, due, now)?;
            }
            if usage.is_some() && self.heap.is_empty() && self.busy == 0 {
                break;
            }
            if now >= drain_deadline {
                self.closing = true;
            }
            if now >= close_deadline {
                break;
            }
            let mut wake = self.heap.peek().map_or(NEVER, |std::cmp::Reverse((due, _))| *due);
            if usage_start.is_none() {
                wake = wake.min(measure_from);
            }
            if usage.is_none() {
                wake = wake.min(measure_to);
            }
            wake = wake.min(if self.closing { close_deadline } else { drain_deadline });
            timer.arm(wake)?;
            match self.conns.poll.poll(&mut events, Some(Duration::from_secs(1))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(TrialError::Failed(format!("poll failed: {e}"))),
            }
            for event in events.iter() {
                match event.token() {
                    TIMER => timer.clear(),
                    Token(idx) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(idx, &mut scratch)?;
                        }
                        if event.is_writable() {
                            self.on_writable(idx)?;
                        }
                    }
                }
            }
        }
        let unanswered: usize = self.conns.state.iter().map(|c| c.in_flight.len()).sum();
        if unanswered > 0 {
            return Err(TrialError::Failed(format!(
                "{unanswered} requests were still unanswered {:?} after the measured phase (lost, or the server \
                 stopped answering)",
                DRAIN_LIMIT + CLOSE_LIMIT
            )));
        }
        for state in &mut self.conns.state {
            state.owed = false;
            state.next_due = NEVER;
        }
        let mut result = std::mem::take(&mut self.result);
        result.raw = stats::encode_histogram(&self.raw);
        result.corrected = stats::encode_histogram(&self.corrected);
        result.usage = usage.unwrap_or_default();
        result.connections = n as u64;
        Ok(result)
    }
}

/// Sends one request on each of `conns[from..]` and waits for every echo.
pub(crate) fn exchange_once(
    poll: &mut Poll,
    conns: &mut [EventStream],
    from: usize,
    payload: &mut Payload,
) -> Result<(), TrialError> {
    let message_bytes = payload.len();
    let frame_bytes = FRAME_HEADER_BYTES + message_bytes;
    let header = (message_bytes as u32).to_le_bytes();
    let mut tx: Vec<Vec<u8>> = vec![Vec::new(); conns.len() - from];
    let mut rx: Vec<Vec<u8>> = vec![Vec::new(); conns.len() - from];
    for (slot, stream) in conns[from..].iter_mut().enumerate() {
        send_bytes(stream, &mut tx[slot], &header, payload.stamp(0))
            .map_err(|e| TrialError::Failed(format!("connection {}: send failed: {e}", from + slot)))?;
    }
    let mut waiting = conns.len() - from;
    let deadline = Instant::now() + fleet::BATCH_TIMEOUT;
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    while waiting > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TrialError::Failed(format!(
                "{waiting} connections got no echo within {:?}",
                fleet::BATCH_TIMEOUT
            )));
        }
        poll.poll(&mut events, Some(left))
            .map_err(|e| TrialError::Failed(format!("poll failed: {e}")))?;
        for event in events.iter() {
            let Token(idx) = event.token();
            if idx < from || idx >= conns.len() {
                continue;
            }
            let slot = idx - from;
            let stream = &mut conns[idx];
            if event.is_writable() {
                flush(stream, &mut tx[slot])
                    .map_err(|e| TrialError::Failed(format!("connection {idx}: send failed: {e}")))?;
            }
            if rx[slot].len() == frame_bytes {
                continue;
            }
            loop {
                match std::io::Read::read(stream, &mut scratch) {
                    Ok(0) => return Err(TrialError::Failed(format!("the server closed connection {idx}"))),
                    Ok(n) => rx[slot].extend_from_slice(&scratch[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(TrialError::Failed(format!("connection {idx}: read failed: {e}"))),
                }
            }
            if rx[slot].len() > frame_bytes {
                return Err(TrialError::Failed(format!(
                    "connection {idx}: more bytes than one echo"
                )));
            }
            if rx[slot].len() == frame_bytes {
                let len = u32::from_le_bytes(rx[slot][..FRAME_HEADER_BYTES].try_into().expect("4 bytes")) as usize;
                if len != message_bytes {
                    return Err(TrialError::Failed(format!(
                        "connection {idx}: echo of {len} bytes, expected {message_bytes}"
                    )));
                }
                verify(&rx[slot][FRAME_HEADER_BYTES..], message_bytes, 0)?;
                waiting -= 1;
            }
        }
    }
    Ok(())
}

/// Serves one trial as a generator process: returns once the client said `END`.
///
/// # Errors
/// A message for the parent's record (the CLI prints it on stderr, where the parent reads it).
pub(crate) fn serve<T: Transport>(
    transport: &T,
    spec: &PeerSpec,
    addressing: Addressing,
    first: u64,
    connections: u64,
) -> Result<(), TrialError> {
    let case = &spec.case;
    let (mut control, ready) = fleet::connect_control(transport, spec, case.placement.client, "generator")?;
    let capability = transport
        .event_loop()
        .ok_or_else(|| TrialError::Unsupported(format!("`{}` has no event-loop capability", transport.name())))?;
    fdlimit::ensure_open_files(connections).map_err(|e| TrialError::Failed(format!("generator: {e}")))?;
    let mut conns = Connections::new(addressing, first, case.message_bytes as usize)?;
    control.send(&protocol::encode(protocol::READY, Some(&ready)))?;
    let whole = Snapshot::process_now();
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    loop {
        let n = control.recv(&mut buf)?;
        let Some((command, body)) = protocol::decode(&buf[..n]) else {
            return Err(TrialError::Failed("data message on the control channel".into()));
        };
        match command {
            OPEN => {
                let open: Open = fleet::parse_body(body, "OPEN")?;
                if conns.len() as u64 + open.count > connections {
                    return Err(TrialError::Failed(format!(
                        "asked to hold {} connections, more than the {connections} planned",
                        conns.len() as u64 + open.count
                    )));
                }
                conns.open(capability, open.count, open.exchange)?;
                let opened = Opened {
                    held: conns.len() as u64,
                };
                control.send(&protocol::encode(OPEN, Some(&opened)))?;
            }
            PHASE => {
                let phase: Phase = fleet::parse_body(body, "PHASE")?;
                let result = conns.run_phase(&phase)?;
                control.send(&protocol::encode(RESULT, Some(&result)))?;
            }
            protocol::END => {
                let report = PeerReport {
                    rusage: whole.until(&Snapshot::process_now()),
                    messages: 0,
                    bytes: 0,
                    extra: Default::default(),
                };
                control.send(&protocol::encode(protocol::REPORT, Some(&report)))?;
                return Ok(());
            }
            other => return Err(TrialError::Failed(format!("unexpected control message {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_spread_over_servers_and_sources() {
        let addressing = Addressing {
            servers: vec!["127.0.0.1:1".into(), "127.0.0.2:2".into()],
            sources: Some((Ipv4Addr::new(127, 1, 0, 1), 3)),
        };
        assert_eq!(addressing.server(0), "127.0.0.1:1");
        assert_eq!(addressing.server(5), "127.0.0.2:2");
        assert_eq!(addressing.source(0), Some(IpAddr::V4(Ipv4Addr::new(127, 1, 0, 1))));
        assert_eq!(addressing.source(4), Some(IpAddr::V4(Ipv4Addr::new(127, 1, 0, 2))));
        assert_eq!(addressing.source(5), Some(IpAddr::V4(Ipv4Addr::new(127, 1, 0, 3))));
        let none = Addressing {
            servers: vec!["x".into()],
            sources: None,
        };
        assert_eq!(none.source(7), None);
    }

    #[test]
    fn the_window_is_half_open_after_the_warmup() {
        let phase = Phase {
            mode: LoadMode::Open,
            rate_hz: 1.0,
            schedule: Schedule::Uniform,
            warmup_ns: 1_000,
            measure_ns: 1_000,
            pipeline: 1,
            seed: 1,
        };
        assert!(!phase.in_window(999) && phase.in_window(1_000) && phase.in_window(1_999) && !phase.in_window(2_000));
    }
}
