//! `balance`: a client fleet -> one balancer process -> `backends` backend processes, every
//! request a read-modify-write of its client's record in the case's store.
//!
//! **Processes.** The measuring process starts the store ([`StoreHost`], on this thread, which
//! lives for the whole trial: the servers die with it), the backends
//! (`scenario/backend.rs`, each with its own handle on the store), and the balancer
//! (`scenario/balancer.rs`), which links to every backend. The balancer, the backends and the
//! store's server run on the case's server core, the generator on its client core; all
//! affinities are read back. Each has a control channel to this process (`super::fleet`).
//!
//! **Fleet.** `connections` persistent connections, connection `i` belonging to client
//! `i mod clients`, each on its own open-loop schedule, with one request in flight at a
//! time and the same coordinated-omission correction as `load` (corrected latency from the
//! intended send time, raw from the actual one). With `client_rate_skew = s`, client `c`'s
//! connections send at a rate proportional to `1 / (c + 1)^s` (Zipf), scaled so the fleet's
//! total stays `connections x rate_per_connection_hz`.
//!
//! **Correctness.** Every reply carries the client's counter after the request. A shared
//! store hands each client the counters 1, 2, 3, ... once each; a counter a client has seen
//! before is a **stale read** (what a backend-local map returns when a client's requests
//! reach several backends). At the end every client's counter in the store (for `local`, the
//! sum over the backends' own maps) must equal the requests it was answered for; the
//! difference summed over clients is `lost_updates`, and any difference fails the case.
//!
//! **Membership change.** At `add_backend_at` / `remove_backend_at` (from the start of the
//! measured phase) the balancer is told to add its spare backend or drop its last member
//! (see `scenario/balancer.rs` for `on_change`). A connection the balancer closes is a
//! **broken connection**: the client reconnects at once (same client id) and carries on
//! with its schedule; a request that was unanswered when it broke is a **failed request**.
//! The share of each backend is recorded per 100 ms; its settle time is how long after the
//! change the share stays within [`SETTLE_DISTANCE`] (total variation) of where it ends up.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ipcbench_core::event_loop::{EventLoopTransport, EventStream, is_backlog_full};
use ipcbench_core::{Channel, Transport};
use ipcbench_record::stats::{self, SplitMix64};
use ipcbench_record::{Rusage, Trial};
use ipcbench_store::{StoreError, StoreHost, StoreSetup};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::plan::{Amount, BalanceOptions, Case, DEFAULT_BALANCE_CONNECTIONS, Schedule};
use crate::protocol;
use crate::rusage::Snapshot;
use crate::scenario::balance_wire::{
    self, BUCKET_NS, BackendReport, BalancerReport, CHANGE, Change, REPLY_BYTES, STORE_FAILED, WINDOW_END,
};
use crate::scenario::echo_server::{flush, send_bytes};
use crate::scenario::fleet::{self, PeerRole, Started};
use crate::scenario::load;
use crate::scenario::pacing::{self, NEVER, Timer, TimerSlack};
use crate::session::{TrialContext, TrialError, TrialOutput, error_chain, finish_trial};
use crate::{affinity, fdlimit};

/// Sends per second per connection when the plan names none.
pub const DEFAULT_RATE_HZ: f64 = 5.0;
/// The share has settled once every later bucket is within this total-variation distance
/// of the final share.
pub const SETTLE_DISTANCE: f64 = 0.1;
/// How long requests owed or in flight at the end of the measured phase may take.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
const TIMER: Token = Token(usize::MAX - 1);
const SCRATCH_BYTES: usize = 64 * 1024;

/// Runs one `balance` trial over `transport`.
///
/// # Errors
/// [`TrialError::Unsupported`] when the transport has no event-loop capability or the store
/// cannot run here (with the store's reason); [`TrialError::Failed`] otherwise, with a
/// store's own message when a store operation failed.
pub fn trial<T: Transport + 'static>(
    transport: T,
    case: &Case,
    ctx: &TrialContext<'_>,
) -> Result<TrialOutput, TrialError> {
    let options = case
        .balance
        .clone()
        .ok_or_else(|| TrialError::Failed("a balance case without its options".into()))?;
    let capability = transport
        .event_loop()
        .ok_or_else(|| load::no_event_loop(transport.name()))?;
    let connections = case.connections.unwrap_or(DEFAULT_BALANCE_CONNECTIONS);
    let rate_hz = case.rate_per_connection_hz.unwrap_or(DEFAULT_RATE_HZ);
    let limits = fdlimit::ensure_open_files(connections + 64).map_err(TrialError::Unsupported)?;
    // The store's server inherits this thread's affinity: the server core, as the balancer's.
    affinity::pin_current_thread(case.placement.server).map_err(TrialError::Failed)?;
    let store_parent = ctx.work_dir.parent().unwrap_or(ctx.work_dir);
    let setup = StoreSetup {
        work_dir: store_parent.to_owned(),
        n_clients: options.clients as usize,
        state_bytes: options.state_bytes as usize,
    };
    let host = StoreHost::start(&options.store, &setup).map_err(|e| store_start_error(&e))?;
    let client_cores = affinity::pin_current_thread(case.placement.client).map_err(TrialError::Failed)?;
    let n_backends = options.backends as usize + usize::from(options.add_backend_at.is_some());
    let mut backends: Vec<Started<T::Channel>> = Vec::with_capacity(n_backends);
    for backend_idx in 0..n_backends {
        let role = PeerRole::BalanceBackend {
            work_dir: ctx.work_dir.to_owned(),
            backend_idx,
            store: host.address().clone(),
        };
        backends.push(fleet::start_peer(
            &transport,
            case,
            ctx,
            &format!("backend{backend_idx}"),
            &role,
            true,
        )?);
    }
    let addresses: Vec<String> = backends
        .iter_mut()
        .map(|b| b.listening.take().map(|l| l.address).unwrap_or_default())
        .collect();
    let role = PeerRole::Balancer {
        work_dir: ctx.work_dir.to_owned(),
        backends: addresses,
        n_members: options.backends as usize,
    };
    let mut balancer = fleet::start_peer(&transport, case, ctx, "balancer", &role, true)?;
    let address = balancer.listening.take().map(|l| l.address).unwrap_or_default();
    let workload = Workload::new(case, &options, connections, rate_hz);
    let mut peers = Peers {
        balancer: &mut balancer.control,
        backends: backends.iter_mut().map(|b| &mut b.control).collect(),
        host: &host,
        mark_sent: false,
        store_cpu_start: Vec::new(),
        store_cpu_ns: None,
    };
    let outcome = drive(capability, &address, &mut peers, &workload);
    let reports = collect_reports(&mut peers);
    let store_cpu_ns = peers.store_cpu_ns;
    drop(peers);
    let applied_options = balancer.ready.applied_options.clone();
    let mut server_cores = balancer.ready.cores_applied.clone();
    let mut peer_failure = None;
    drop(balancer.control);
    if let Some(failure) = balancer.process.finish(protocol::EXIT_TIMEOUT) {
        peer_failure = Some(format!("balancer: {failure}"));
    }
    let mut backend_cores = Vec::new();
    for (idx, backend) in backends.into_iter().enumerate() {
        backend_cores.extend(backend.ready.cores_applied.iter().copied());
        drop(backend.control);
        let mut process = backend.process;
        if let Some(failure) = process.finish(protocol::EXIT_TIMEOUT)
            && peer_failure.is_none()
        {
            peer_failure = Some(format!("backend {idx}: {failure}"));
        }
    }
    backend_cores.sort_unstable();
    backend_cores.dedup();
    // A store's own message says more than "a backend's store failed".
    let store_error = reports
        .as_ref()
        .ok()
        .and_then(|(_, backends)| backends.iter().find_map(|b| b.store_error.clone()));
    // When the backends could not report (one died on a link the others closed first), the
    // store's own state still tells: a store server that is gone failed the trial.
    let store_error = store_error.or_else(|| {
        let store_failed = matches!(&outcome, Err(TrialError::Failed(m)) if m.contains(STORE_FAILED_TEXT));
        let gone: Vec<u32> = host
            .server_pids()
            .into_iter()
            .filter(|pid| {
                // Gone, or a zombie not yet reaped (the state follows the parenthesized name).
                std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with(['Z', 'X']))
                })
            })
            .collect();
        (store_failed && !gone.is_empty()).then(|| {
            format!(
                "{} server (pid {}) exited during the trial",
                host.kind(),
                gone.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            )
        })
    });
    if let Some(message) = store_error {
        return Err(TrialError::Failed(format!(
            "the {} store failed: {message}",
            host.kind()
        )));
    }
    let generated = fleet::merge_failure(outcome, peer_failure)?;
    let (balancer_report, backend_reports) = reports?;
    let counters = final_counters(&host, &backend_reports)?;
    let mut trial = figures(
        generated,
        &workload,
        &options,
        &balancer_report,
        &backend_reports,
        &counters,
        store_cpu_ns,
    )?;
    trial.extra.insert("fd_soft_limit".into(), limits.soft as f64);
    trial
        .extra
        .insert("store_servers".into(), host.server_pids().len() as f64);
    server_cores.extend(backend_cores);
    server_cores.sort_unstable();
    server_cores.dedup();
    drop(host);
    Ok(TrialOutput {
        trial,
        applied_options,
        client_cores,
        server_cores,
    })
}

/// A store that cannot start: unsupported with the store's reason when it cannot run here.
fn store_start_error(e: &StoreError) -> TrialError {
    if e.is_unavailable() {
        TrialError::Unsupported(error_chain(e))
    } else {
        TrialError::Failed(error_chain(e))
    }
}

/// The measuring side's account of a reply that says the backend's store operation failed.
const STORE_FAILED_TEXT: &str = "a backend's store operation failed";

/// The measuring side's handles on the other processes during the run.
struct Peers<'a, C> {
    balancer: &'a mut C,
    backends: Vec<&'a mut C>,
    host: &'a StoreHost,
    mark_sent: bool,
    store_cpu_start: Vec<(u32, u64)>,
    store_cpu_ns: Option<u64>,
}

impl<C: Channel> Peers<'_, C> {
    fn each(&mut self, msg: &[u8]) -> Result<(), TrialError> {
        self.balancer.send(msg)?;
        for backend in &mut self.backends {
            backend.send(msg)?;
        }
        Ok(())
    }

    fn mark(&mut self) -> Result<(), TrialError> {
        self.store_cpu_start = store_cpu(self.host);
        self.each(&protocol::encode(protocol::MARK, None::<&()>))?;
        self.mark_sent = true;
        Ok(())
    }

    fn window_end(&mut self) -> Result<(), TrialError> {
        self.each(&protocol::encode(WINDOW_END, None::<&()>))?;
        let end = store_cpu(self.host);
        let total = end
            .iter()
            .map(|(pid, ns)| {
                let start = self
                    .store_cpu_start
                    .iter()
                    .find(|(p, _)| p == pid)
                    .map_or(0, |(_, s)| *s);
                ns.saturating_sub(start)
            })
            .sum();
        self.store_cpu_ns = Some(total);
        Ok(())
    }
}

/// CPU used so far by each of the store's server processes, ns: the first field of
/// `/proc/<pid>/schedstat` (time on a CPU, ns; `stat`'s clock ticks are 10 ms coarse).
fn store_cpu(host: &StoreHost) -> Vec<(u32, u64)> {
    host.server_pids()
        .into_iter()
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
            Some((pid, text.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// Sends `END` to every peer and reads their reports.
fn collect_reports<C: Channel>(peers: &mut Peers<'_, C>) -> Result<(BalancerReport, Vec<BackendReport>), TrialError> {
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    let mark = peers.mark_sent;
    let balancer: BalancerReport = end_and_report(peers.balancer, &mut buf, mark, "the balancer")?;
    let mut backends = Vec::new();
    for (idx, backend) in peers.backends.iter_mut().enumerate() {
        backends.push(end_and_report(*backend, &mut buf, mark, &format!("backend {idx}"))?);
    }
    Ok((balancer, backends))
}

fn end_and_report<C: Channel, R: for<'de> serde::Deserialize<'de>>(
    control: &mut C,
    buf: &mut [u8],
    mark_pending: bool,
    who: &str,
) -> Result<R, TrialError> {
    let fail = |e: TrialError| TrialError::Failed(format!("{who}: {e}"));
    control
        .send(&protocol::encode(protocol::END, None::<&()>))
        .map_err(|e| fail(e.into()))?;
    if mark_pending {
        fleet::expect_control(control, buf, protocol::MARK, "the echo of MARK").map_err(fail)?;
    }
    let body = fleet::expect_control(control, buf, protocol::REPORT, "REPORT").map_err(fail)?;
    fleet::parse_body(&body, "REPORT").map_err(fail)
}

/// Every client's counter at the end: from the store itself when it is shared, else the sum
/// over the backends' own maps.
fn final_counters(host: &StoreHost, backends: &[BackendReport]) -> Result<Vec<(u64, u64)>, TrialError> {
    let mut total = std::collections::BTreeMap::new();
    if host.kind().is_shared() {
        let mut store = host.connect().map_err(|e| store_start_error(&e))?;
        total = store
            .counters()
            .map_err(|e| TrialError::Failed(format!("cannot read the final counters: {}", error_chain(&e))))?;
    } else {
        for backend in backends {
            for &(client, counter) in &backend.counters {
                *total.entry(client).or_insert(0) += counter;
            }
        }
    }
    Ok(total.into_iter().collect())
}

/// The fixed parameters of one trial, in nanoseconds from the start of the schedule.
#[derive(Debug, Clone)]
struct Workload {
    connections: u64,
    clients: u64,
    /// Each connection's rate, Hz.
    rates_hz: Vec<f64>,
    schedule: Schedule,
    message_bytes: usize,
    measure_from: u64,
    measure_to: u64,
    /// Membership changes, ns from the start of the schedule, in time order.
    changes: Vec<(u64, Change)>,
}

impl Workload {
    fn new(case: &Case, options: &BalanceOptions, connections: u64, rate_hz: f64) -> Workload {
        let as_ns = |amount: Amount| match amount {
            Amount::Time(d) => d.as_nanos() as u64,
            Amount::Messages(n) => (n as f64 / (connections as f64 * rate_hz) * 1e9) as u64,
        };
        let warmup = as_ns(case.warmup);
        let measure = as_ns(case.measure).max(1);
        let mut changes: Vec<(u64, Change)> = [
            (options.add_backend_at, Change::Add),
            (options.remove_backend_at, Change::Remove),
        ]
        .into_iter()
        .filter_map(|(at, change)| at.map(|at| (warmup + at.as_nanos() as u64, change)))
        .collect();
        changes.sort_by_key(|(at, _)| *at);
        Workload {
            connections,
            clients: options.clients.max(1),
            rates_hz: connection_rates(connections, options.clients.max(1), rate_hz, options.client_rate_skew),
            schedule: case.schedule,
            message_bytes: case.message_bytes as usize,
            measure_from: warmup,
            measure_to: warmup + measure,
            changes,
        }
    }

    fn in_window(&self, t: u64) -> bool {
        (self.measure_from..self.measure_to).contains(&t)
    }

    fn measure_ns(&self) -> u64 {
        self.measure_to - self.measure_from
    }
}

/// Each connection's rate: client `c` (of connection `i`, `c = i mod clients`) weighs
/// `1 / (c + 1)^skew`, scaled so the rates add up to `connections x rate_hz`.
fn connection_rates(connections: u64, clients: u64, rate_hz: f64, skew: f64) -> Vec<f64> {
    let weights: Vec<f64> = (0..connections)
        .map(|i| 1.0 / ((i % clients + 1) as f64).powf(skew))
        .collect();
    let sum: f64 = weights.iter().sum();
    weights
        .into_iter()
        .map(|w| w / sum * connections as f64 * rate_hz)
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    intended: u64,
    actual: u64,
}

struct Conn {
    stream: EventStream,
    connecting: bool,
    client_id: u64,
    rx: Vec<u8>,
    tx: Vec<u8>,
    next_seq: u64,
    in_flight: Option<InFlight>,
    next_due: u64,
    owed: bool,
}

/// Counters of one trial.
#[derive(Debug, Default)]
struct Tally {
    scheduled: u64,
    sent_in_window: u64,
    recorded: u64,
    late: u64,
    broken_connections: u64,
    failed_requests: u64,
    stale_reads: u64,
    answered_total: u64,
}

/// What the generator measured.
struct Generated {
    raw: hdrhistogram::Histogram<u64>,
    corrected: hdrhistogram::Histogram<u64>,
    tally: Tally,
    /// Requests answered per client, since the start.
    answered: Vec<u64>,
    usage: Rusage,
    ramp: Duration,
}

struct Generator<'a> {
    workload: &'a Workload,
    capability: &'a dyn EventLoopTransport,
    address: &'a str,
    poll: Poll,
    conns: Vec<Conn>,
    heap: BinaryHeap<Reverse<(u64, usize)>>,
    rng: SplitMix64,
    epoch: Instant,
    tally: Tally,
    busy: usize,
    answered: Vec<u64>,
    /// Counters each client has been given, as bit sets.
    seen: Vec<Vec<u64>>,
    reconnect: Vec<usize>,
    raw: hdrhistogram::Histogram<u64>,
    corrected: hdrhistogram::Histogram<u64>,
    request: Vec<u8>,
}

impl Generator<'_> {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn gap(&mut self, idx: usize) -> u64 {
        pacing::gap_ns(self.workload.schedule, self.workload.rates_hz[idx], &mut self.rng)
    }

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

    fn send(&mut self, idx: usize, intended: u64) -> Result<(), TrialError> {
        let actual = self.now();
        let conn = &mut self.conns[idx];
        let seq = conn.next_seq;
        conn.next_seq += 1;
        self.request[..8].copy_from_slice(&conn.client_id.to_le_bytes());
        self.request[8..16].copy_from_slice(&seq.to_le_bytes());
        let header = (self.request.len() as u32).to_le_bytes();
        if conn.connecting {
            conn.tx.extend_from_slice(&header);
            conn.tx.extend_from_slice(&self.request);
        } else if let Err(e) = send_bytes(&mut conn.stream, &mut conn.tx, &header, &self.request) {
            if is_broken(&e) {
                conn.in_flight = Some(InFlight { seq, intended, actual });
                return self.broken(idx);
            }
            return Err(TrialError::Failed(format!("connection {idx}: send failed: {e}")));
        }
        conn.in_flight = Some(InFlight { seq, intended, actual });
        if self.workload.in_window(actual) {
            self.tally.sent_in_window += 1;
        }
        Ok(())
    }

    fn on_due(&mut self, idx: usize, due: u64, now: u64) -> Result<(), TrialError> {
        if self.conns[idx].in_flight.is_some() {
            self.conns[idx].owed = true;
            return Ok(());
        }
        self.busy += 1;
        self.send(idx, due)?;
        let next = due + self.gap(idx);
        self.schedule_next(idx, next, now);
        Ok(())
    }

    /// The balancer closed connection `idx`: count it and reconnect.
    fn broken(&mut self, idx: usize) -> Result<(), TrialError> {
        self.tally.broken_connections += 1;
        let conn = &mut self.conns[idx];
        if conn.in_flight.take().is_some() {
            self.tally.failed_requests += 1;
            self.busy -= 1;
        }
        conn.rx.clear();
        conn.tx.clear();
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if conn.owed {
            conn.owed = false;
            let due = conn.next_due;
            self.heap.push(Reverse((due, idx)));
        }
        self.reconnect.push(idx);
        self.reconnect_pending()
    }

    /// Opens the connections whose reconnect is pending (the accept queue may be full).
    fn reconnect_pending(&mut self) -> Result<(), TrialError> {
        let pending = std::mem::take(&mut self.reconnect);
        for idx in pending {
            match self.capability.connect_nonblocking(self.address) {
                Ok(mut stream) => {
                    self.poll
                        .registry()
                        .register(&mut stream, Token(idx), Interest::READABLE | Interest::WRITABLE)
                        .map_err(|e| TrialError::Failed(format!("cannot register connection {idx}: {e}")))?;
                    let conn = &mut self.conns[idx];
                    conn.stream = stream;
                    conn.connecting = true;
                }
                Err(e) if is_backlog_full(&e) => self.reconnect.push(idx),
                Err(e) => {
                    return Err(TrialError::Failed(format!(
                        "connection {idx} cannot reconnect to {}: {}",
                        self.address,
                        error_chain(&e)
                    )));
                }
            }
        }
        Ok(())
    }

    fn on_writable(&mut self, idx: usize) -> Result<(), TrialError> {
        let conn = &mut self.conns[idx];
        if conn.connecting {
            if let Ok(Some(err)) | Err(err) = conn.stream.take_error() {
                return Err(TrialError::Failed(format!("connection {idx}: reconnect failed: {err}")));
            }
            if !conn.stream.is_connected() {
                return Ok(());
            }
            conn.connecting = false;
        }
        match flush(&mut conn.stream, &mut conn.tx) {
            Ok(()) => Ok(()),
            Err(e) if is_broken(&e) => self.broken(idx),
            Err(e) => Err(TrialError::Failed(format!("connection {idx}: send failed: {e}"))),
        }
    }

    fn on_readable(&mut self, idx: usize, scratch: &mut [u8]) -> Result<(), TrialError> {
        if self.conns[idx].connecting {
            return Ok(());
        }
        loop {
            let read = self.conns[idx].stream.read(scratch);
            match read {
                Ok(0) => return self.broken(idx),
                Ok(n) => {
                    let received = self.now();
                    let mut replies = Vec::new();
                    balance_wire::frames(
                        &mut self.conns[idx].rx,
                        &scratch[..n],
                        REPLY_BYTES,
                        |body| {
                            replies.push(balance_wire::two_words(body));
                            Ok(())
                        },
                        |len| TrialError::Failed(format!("connection {idx}: reply of {len} bytes, expected 16")),
                    )?;
                    for (seq, counter) in replies {
                        self.on_reply(idx, seq, counter, received)?;
                    }
                    if n < scratch.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_broken(&e) => return self.broken(idx),
                Err(e) => return Err(TrialError::Failed(format!("connection {idx}: read failed: {e}"))),
            }
        }
    }

    fn on_reply(&mut self, idx: usize, seq: u64, counter: u64, received: u64) -> Result<(), TrialError> {
        let Some(request) = self.conns[idx].in_flight.take() else {
            return Err(TrialError::Failed(format!(
                "connection {idx}: a reply arrived with no request in flight"
            )));
        };
        if seq != request.seq {
            return Err(TrialError::Failed(format!(
                "connection {idx}: reply to request {seq}, expected {}",
                request.seq
            )));
        }
        if counter == STORE_FAILED {
            return Err(TrialError::Failed(STORE_FAILED_TEXT.into()));
        }
        let client = self.conns[idx].client_id as usize;
        self.answered[client] += 1;
        self.tally.answered_total += 1;
        let seen = &mut self.seen[client];
        let (word, bit) = ((counter / 64) as usize, counter % 64);
        if seen.len() <= word {
            seen.resize(word + 1, 0);
        }
        if seen[word] & (1 << bit) != 0 {
            self.tally.stale_reads += 1;
        }
        seen[word] |= 1 << bit;
        if self.workload.in_window(request.intended) {
            stats::record(&mut self.raw, received.saturating_sub(request.actual))?;
            stats::record(&mut self.corrected, received.saturating_sub(request.intended))?;
            self.tally.recorded += 1;
            if request.actual.saturating_sub(request.intended) > pacing::LATE_NS {
                self.tally.late += 1;
            }
        }
        if self.conns[idx].owed {
            self.conns[idx].owed = false;
            let intended = self.conns[idx].next_due;
            self.send(idx, intended)?;
            let next = intended + self.gap(idx);
            self.schedule_next(idx, next, received);
        } else {
            self.busy -= 1;
        }
        Ok(())
    }
}

/// The errors that mean the balancer closed the connection.
fn is_broken(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
    )
}

/// Opens the fleet, runs warm-up, the measured phase (with its membership changes) and the
/// drain.
fn drive<C: Channel>(
    capability: &dyn EventLoopTransport,
    address: &str,
    peers: &mut Peers<'_, C>,
    workload: &Workload,
) -> Result<Generated, TrialError> {
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    let mut poll = Poll::new().map_err(|e| TrialError::Failed(format!("cannot create an event loop: {e}")))?;
    let mut streams = Vec::with_capacity(workload.connections as usize);
    let ramp_started = Instant::now();
    {
        let balancer = &mut *peers.balancer;
        fleet::open_connections(
            capability,
            address,
            workload.connections,
            &mut poll,
            &mut streams,
            &mut || fleet::query_accepted(balancer, &mut buf),
        )?;
    }
    let ramp = ramp_started.elapsed();
    let _slack = TimerSlack::tight();
    let epoch = Instant::now();
    let epoch_ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let mut timer = Timer::new(epoch_ts)?;
    poll.registry()
        .register(&mut SourceFd(&timer.fd.as_raw_fd()), TIMER, Interest::READABLE)
        .map_err(|e| TrialError::Failed(format!("cannot register the timer: {e}")))?;
    let clients = workload.clients as usize;
    let mut generator = Generator {
        workload,
        capability,
        address,
        poll,
        conns: streams
            .into_iter()
            .enumerate()
            .map(|(idx, stream)| Conn {
                stream,
                connecting: false,
                client_id: idx as u64 % workload.clients,
                rx: Vec::new(),
                tx: Vec::new(),
                next_seq: 0,
                in_flight: None,
                next_due: NEVER,
                owed: false,
            })
            .collect(),
        heap: BinaryHeap::with_capacity(workload.connections as usize),
        rng: SplitMix64::new(0xBA1A ^ workload.connections),
        epoch,
        tally: Tally::default(),
        busy: 0,
        answered: vec![0; clients],
        seen: vec![Vec::new(); clients],
        reconnect: Vec::new(),
        raw: stats::new_histogram(),
        corrected: stats::new_histogram(),
        request: vec![0u8; workload.message_bytes],
    };
    for idx in 0..generator.conns.len() {
        let first = match workload.schedule {
            Schedule::Uniform => (generator.rng.unit() * 1e9 / workload.rates_hz[idx]) as u64,
            Schedule::Poisson => generator.gap(idx),
        };
        generator.schedule_next(idx, first, 0);
    }
    let mut events = Events::with_capacity(4096);
    let mut scratch = vec![0u8; SCRATCH_BYTES];
    let mut usage_start = None;
    let mut usage = None;
    let mut next_change = 0;
    let close_deadline = workload.measure_to + DRAIN_LIMIT.as_nanos() as u64;
    loop {
        let now = generator.now();
        if usage_start.is_none() && now >= workload.measure_from {
            usage_start = Some(Snapshot::now());
            peers.mark()?;
        }
        while next_change < workload.changes.len() && now >= workload.changes[next_change].0 {
            let change = workload.changes[next_change].1;
            peers.balancer.send(&protocol::encode(CHANGE, Some(&change)))?;
            next_change += 1;
        }
        if usage.is_none() && now >= workload.measure_to {
            usage = usage_start.map(|start: Snapshot| start.until(&Snapshot::now()));
            peers.window_end()?;
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
        if now >= close_deadline {
            break;
        }
        if !generator.reconnect.is_empty() {
            generator.reconnect_pending()?;
        }
        let mut wake = generator.heap.peek().map_or(NEVER, |Reverse((due, _))| *due);
        if usage_start.is_none() {
            wake = wake.min(workload.measure_from);
        }
        if usage.is_none() {
            wake = wake.min(workload.measure_to);
        }
        if let Some((at, _)) = workload.changes.get(next_change) {
            wake = wake.min(*at);
        }
        if !generator.reconnect.is_empty() {
            wake = wake.min(now + 1_000_000);
        }
        wake = wake.min(close_deadline);
        timer.arm(wake)?;
        match generator.poll.poll(&mut events, Some(Duration::from_secs(1))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(TrialError::Failed(format!("poll failed: {e}"))),
        }
        for event in events.iter() {
            match event.token() {
                TIMER => timer.clear(),
                Token(idx) => {
                    if event.is_writable() {
                        generator.on_writable(idx)?;
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        generator.on_readable(idx, &mut scratch)?;
                    }
                }
            }
        }
    }
    let unanswered = generator.conns.iter().filter(|c| c.in_flight.is_some()).count();
    if unanswered > 0 {
        return Err(TrialError::Failed(format!(
            "{unanswered} requests were still unanswered {DRAIN_LIMIT:?} after the measured phase (lost, or \
             the balancer or a backend stopped answering)"
        )));
    }
    Ok(Generated {
        raw: generator.raw,
        corrected: generator.corrected,
        tally: generator.tally,
        answered: generator.answered,
        usage: usage.unwrap_or_default(),
        ramp,
    })
}

/// Turns what every process measured into the trial's figures; fails on lost updates.
fn figures(
    generated: Generated,
    workload: &Workload,
    options: &BalanceOptions,
    balancer: &BalancerReport,
    backends: &[BackendReport],
    counters: &[(u64, u64)],
    store_cpu_ns: Option<u64>,
) -> Result<Trial, TrialError> {
    let Generated {
        raw,
        corrected,
        tally,
        answered,
        usage,
        ramp,
    } = generated;
    let mut lost_updates = 0u64;
    let mut first_difference = None;
    let mut stored = std::collections::BTreeMap::new();
    for &(client, counter) in counters {
        stored.insert(client, counter);
    }
    for (client, &n) in answered.iter().enumerate() {
        let in_store = stored.remove(&(client as u64)).unwrap_or(0);
        if in_store != n {
            lost_updates += in_store.abs_diff(n);
            first_difference.get_or_insert((client, in_store, n));
        }
    }
    for (&client, &counter) in &stored {
        lost_updates += counter;
        first_difference.get_or_insert((client as usize, counter, 0));
    }
    if let Some((client, in_store, n)) = first_difference {
        return Err(TrialError::Failed(format!(
            "{lost_updates} lost updates: client {client}'s counter is {in_store} in the {} store but it was \
             answered {n} times",
            options.store.kind()
        )));
    }
    let mut state = stats::new_histogram();
    for backend in backends {
        let histogram = stats::decode_histogram(&backend.state_histogram_v2)
            .map_err(|e| TrialError::Failed(format!("a backend sent a bad state histogram: {e}")))?;
        state
            .add(&histogram)
            .map_err(|e| TrialError::Failed(format!("cannot merge state histograms: {e}")))?;
    }
    let mut trial = Trial {
        latency_ns: stats::percentiles(&raw),
        latency_corrected_ns: stats::percentiles(&corrected),
        histogram_v2: Some(stats::encode_histogram(&raw)),
        histogram_corrected_v2: Some(stats::encode_histogram(&corrected)),
        messages: tally.recorded,
        bytes: tally.recorded * (workload.message_bytes + REPLY_BYTES) as u64,
        server: Some(balancer.report.rusage),
        ..Trial::default()
    };
    finish_trial(&mut trial, Duration::from_nanos(workload.measure_ns()), usage);
    let measure_s = workload.measure_ns() as f64 / 1e9;
    let forwarded = balancer.report.messages.max(1) as f64;
    let extra = &mut trial.extra;
    let mut put = |key: &str, value: f64| {
        extra.insert(key.to_owned(), value);
    };
    put("target_messages_per_s", workload.rates_hz.iter().sum());
    put("scheduled_messages_per_s", tally.scheduled as f64 / measure_s);
    put("achieved_messages_per_s", tally.sent_in_window as f64 / measure_s);
    put(
        "rate_shortfall",
        if tally.scheduled > 0 {
            (1.0 - tally.sent_in_window as f64 / tally.scheduled as f64).max(0.0)
        } else {
            0.0
        },
    );
    put("late_sends", tally.late as f64);
    put("ramp_ns", ramp.as_nanos() as f64);
    put("connections_held", workload.connections as f64);
    put("clients", workload.clients as f64);
    put("backends", options.backends as f64);
    put("requests_answered", tally.answered_total as f64);
    put("lost_updates", lost_updates as f64);
    put("stale_reads", tally.stale_reads as f64);
    put(
        "stale_read_fraction",
        tally.stale_reads as f64 / tally.answered_total.max(1) as f64,
    );
    put("broken_connections", tally.broken_connections as f64);
    put("failed_requests", tally.failed_requests as f64);
    put("closed_for_change", balancer.closed_for_change as f64);
    put("orphan_replies", balancer.orphan_replies as f64);
    put(
        "incorrect_by_design",
        if options.incorrect_by_design() { 1.0 } else { 0.0 },
    );
    if let Some(p) = stats::percentiles(&state) {
        put("state_p50_ns", p.p50);
        put("state_p99_ns", p.p99);
        put("state_mean_ns", p.mean);
        put("state_max_ns", p.max);
    }
    put("state_samples", state.len() as f64);
    // CPU per request forwarded in the measured phase, per role.
    put(
        "balancer_cpu_ns_per_request",
        balancer.report.rusage.cpu_ns() as f64 / forwarded,
    );
    let backend_cpu: u64 = backends.iter().map(|b| b.report.rusage.cpu_ns()).sum();
    put("backends_cpu_ns_per_request", backend_cpu as f64 / forwarded);
    if let Some(store_ns) = store_cpu_ns
        && options.store.kind().is_shared()
        && matches!(
            options.store.kind(),
            ipcbench_store::StoreKind::Redis | ipcbench_store::StoreKind::Postgres
        )
    {
        put("store_cpu_ns_per_request", store_ns as f64 / forwarded);
    }
    // How busy each role was over the measured phase (1.0 = one core's worth): which one could
    // not keep up when the rate falls short (the names `finish_load`'s flag reads).
    let busy = |cpu_ns: u64| cpu_ns as f64 / workload.measure_ns().max(1) as f64;
    if let Some(client) = trial.client {
        put("client_cpu_ns_per_request", client.cpu_ns() as f64 / forwarded);
        put("client_cpu_fraction", busy(client.cpu_ns()));
    }
    put("server_cpu_fraction", busy(balancer.report.rusage.cpu_ns()));
    put("backends_cpu_fraction", busy(backend_cpu));
    // The share of each backend over the measured phase, among the members at the end.
    let members = &balancer.members;
    let total: u64 = members
        .iter()
        .map(|&b| balancer.forwarded.get(b).copied().unwrap_or(0))
        .sum();
    for (b, &n) in balancer.forwarded.iter().enumerate() {
        put(&format!("backend_{b}_share"), n as f64 / total.max(1) as f64);
    }
    if !members.is_empty() && total > 0 {
        let max = members.iter().map(|&b| balancer.forwarded[b]).max().unwrap_or(0) as f64;
        let mean = total as f64 / members.len() as f64;
        put("backend_share_max_over_mean", max / mean);
    }
    if let Some(&change_ns) = balancer.changes_ns.first() {
        put("change_at_ns", change_ns as f64);
        if let Some((settle_ns, settled)) = settle(&balancer.buckets, members, change_ns) {
            put("share_settle_ns", settle_ns as f64);
            put("share_settled", if settled { 1.0 } else { 0.0 });
        }
    }
    Ok(trial)
}

/// How long after `change_ns` the per-bucket share of `members` takes to stay within
/// [`SETTLE_DISTANCE`] of its final value (the mean share over the last quarter of the
/// buckets after the change), and whether it got there before the window ended. `None` when
/// fewer than 4 buckets follow the change.
pub(crate) fn settle(buckets: &[Vec<u64>], members: &[usize], change_ns: u64) -> Option<(u64, bool)> {
    let first = (change_ns / BUCKET_NS) as usize + 1;
    // The last bucket may be partial: leave it out.
    let after: Vec<Vec<f64>> = buckets
        .get(first..buckets.len().saturating_sub(1))?
        .iter()
        .map(|bucket| {
            let total: u64 = members.iter().map(|&b| bucket.get(b).copied().unwrap_or(0)).sum();
            members
                .iter()
                .map(|&b| bucket.get(b).copied().unwrap_or(0) as f64 / total.max(1) as f64)
                .collect()
        })
        .collect();
    if after.len() < 4 {
        return None;
    }
    let tail = &after[after.len() - after.len() / 4..];
    let reference: Vec<f64> = (0..members.len())
        .map(|m| tail.iter().map(|s| s[m]).sum::<f64>() / tail.len() as f64)
        .collect();
    let distance = |s: &[f64]| s.iter().zip(&reference).map(|(a, b)| (a - b).abs()).sum::<f64>() / 2.0;
    // The first bucket from which every later one is close.
    let mut settled_from = after.len();
    for (idx, share) in after.iter().enumerate().rev() {
        if distance(share) > SETTLE_DISTANCE {
            break;
        }
        settled_from = idx;
    }
    let settled = settled_from < after.len() - tail.len();
    let settle_ns =
        (first + settled_from) as u64 * BUCKET_NS - change_ns.min((first + settled_from) as u64 * BUCKET_NS);
    Some((settle_ns, settled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_rates_keep_the_fleet_total_and_favour_low_ids() {
        let rates = connection_rates(1000, 200, 5.0, 1.0);
        let total: f64 = rates.iter().sum();
        assert!((total - 5000.0).abs() < 1e-6, "{total}");
        assert!(rates[0] > rates[1] && rates[1] > rates[199]);
        // Connection 200 belongs to client 0 again.
        assert_eq!(rates[0], rates[200]);
        let even = connection_rates(10, 5, 2.0, 0.0);
        assert!(even.iter().all(|&r| (r - 2.0).abs() < 1e-9));
    }

    #[test]
    fn share_settles_when_the_new_member_catches_up() {
        // 4 members from the start, a fifth from the change in bucket 2; it takes 3 buckets
        // to get its fifth of the requests.
        let mut buckets = Vec::new();
        for idx in 0..20 {
            let new = match idx {
                0..=2 => 0,
                3 => 20,
                4 => 50,
                _ => 100,
            };
            buckets.push(vec![100, 100, 100, 100, new]);
        }
        let (settle_ns, settled) = settle(&buckets, &[0, 1, 2, 3, 4], 250_000_000).expect("enough buckets");
        assert!(settled);
        assert_eq!(settle_ns, 150_000_000);
    }

    #[test]
    fn share_that_never_moves_is_settled_at_once() {
        let buckets = vec![vec![100, 100, 0]; 12];
        let (settle_ns, settled) = settle(&buckets, &[0, 1, 2], 150_000_000).expect("enough buckets");
        assert!(settled);
        assert_eq!(settle_ns, 50_000_000);
    }
}
