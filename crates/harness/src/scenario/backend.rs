//! A backend process of `balance`: one event loop that answers every request with a
//! read-modify-write of its client's record in the trial's store, and replies with the
//! client's new counter.
//!
//! The loop thread owns the store handle (one connection per backend) and times each
//! operation into the state histogram while the measured phase runs. The main thread serves
//! the control channel (`MARK`, [`WINDOW_END`], `END`); at `END` the loop stops and hands back
//! its histogram and the counters its handle sees, for the `lost_updates` check.
//!
//! A store failure does not stop the loop: the request is answered with counter
//! [`STORE_FAILED`], which fails the trial in the measuring process, and the store's own
//! message travels in the report.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use ipcbench_core::event_loop::{EventListener, EventStream};
use ipcbench_core::{Channel, Endpoint, Transport};
use ipcbench_record::stats;
use ipcbench_store::{Store, StoreAddress};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::affinity;
use crate::procstat::ProcessUsage;
use crate::protocol::{self, PeerReport, PeerSpec};
use crate::scenario::balance_wire::{self, BackendReport, STORE_FAILED, WINDOW_END};
use crate::scenario::echo_server::{flush, send_bytes};
use crate::scenario::fleet::{self, Accepted, Listening};
use crate::session::{TrialError, error_chain};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// What the loop shares with the control thread.
#[derive(Debug, Default)]
struct Shared {
    /// Set between `MARK` and `WINDOW_END`. Relaxed: a request at the edge may land on either
    /// side of it, which the histogram tolerates; it publishes no other memory.
    measuring: AtomicBool,
    /// Requests answered while `measuring`. Relaxed: a count.
    in_window: AtomicU64,
    /// Links accepted. Relaxed: a count.
    accepted: AtomicU64,
    /// Set at `END` (Release), read after the waker woke the loop (Acquire).
    stop: AtomicBool,
}

/// What the loop hands back when it stops.
struct Outcome {
    histogram: hdrhistogram::Histogram<u64>,
    store: Box<dyn Store>,
    requests_total: u64,
    store_error: Option<String>,
}

struct Link {
    stream: EventStream,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

/// Serves one trial as backend `backend_idx`.
///
/// # Errors
/// A message for the parent's record.
pub(crate) fn serve<T: Transport>(
    transport: &T,
    spec: &PeerSpec,
    work_dir: &std::path::Path,
    backend_idx: usize,
    store: &StoreAddress,
) -> Result<(), TrialError> {
    let case = &spec.case;
    let (mut control, ready) = fleet::connect_control(transport, spec, case.placement.server, "backend")?;
    let capability = transport
        .event_loop()
        .ok_or_else(|| TrialError::Unsupported(format!("`{}` has no event-loop capability", transport.name())))?;
    let handle = store
        .connect()
        .map_err(|e| TrialError::Failed(format!("backend {backend_idx}: {}", error_chain(&e))))?;
    let endpoint = Endpoint::new(
        format!("case{}-backend{backend_idx}-{}", case.index, std::process::id()),
        work_dir,
    );
    let listener = capability.listen_many(&endpoint, 64)?;
    let address = listener.address();
    let state_bytes = case.balance.as_ref().map_or(0, |b| b.state_bytes as usize);
    let shared = Arc::new(Shared::default());
    let poll = Poll::new().map_err(|e| TrialError::Failed(format!("cannot create an event loop: {e}")))?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| TrialError::Failed(format!("waker: {e}")))?);
    let loop_shared = Arc::clone(&shared);
    let message_bytes = case.message_bytes as usize;
    let core = case.placement.server;
    let thread = thread::Builder::new()
        .name(format!("backend-{backend_idx}"))
        .spawn(move || run_loop(poll, listener, handle, &loop_shared, message_bytes, state_bytes, core))
        .map_err(|e| TrialError::Failed(format!("cannot start the backend loop: {e}")))?;
    fleet::announce(&mut control, &ready, &Listening::one(address))?;
    let result = control_loop(&mut control, &shared);
    // Release pairs with the Acquire load in the loop after its wake-up.
    shared.stop.store(true, Ordering::Release);
    let _ = waker.wake();
    let joined = thread
        .join()
        .map_err(|_| TrialError::Failed(format!("backend {backend_idx}: the event loop panicked")))?;
    let mut outcome = joined.map_err(|e| TrialError::Failed(format!("backend {backend_idx}: {e}")))?;
    let mut report = result?;
    report.state_histogram_v2 = stats::encode_histogram(&outcome.histogram);
    report.requests_total = outcome.requests_total;
    report.store_error = outcome.store_error.take();
    match outcome.store.counters() {
        Ok(counters) => report.counters = counters.into_iter().collect(),
        Err(e) => {
            report.store_error.get_or_insert(error_chain(&e));
        }
    }
    control.send(&protocol::encode(protocol::REPORT, Some(&report)))?;
    Ok(())
}

/// Answers control messages until `END`; returns the report without the loop's part.
fn control_loop<C: Channel>(control: &mut C, shared: &Shared) -> Result<BackendReport, TrialError> {
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    let mut usage_start = ProcessUsage::now();
    let mut usage = None;
    loop {
        let n = control.recv(&mut buf)?;
        let Some((command, _)) = protocol::decode(&buf[..n]) else {
            return Err(TrialError::Failed("data message on the control channel".into()));
        };
        match command {
            fleet::ACCEPTED => {
                // Relaxed: a count, as everywhere in `Shared`.
                let answer = Accepted {
                    accepted: shared.accepted.load(Ordering::Relaxed),
                    closed: 0,
                };
                control.send(&protocol::encode(fleet::ACCEPTED, Some(&answer)))?;
            }
            protocol::MARK => {
                usage_start = ProcessUsage::now();
                shared.measuring.store(true, Ordering::Relaxed);
                control.send(&buf[..n])?;
            }
            WINDOW_END => {
                shared.measuring.store(false, Ordering::Relaxed);
                usage = Some(usage_start.until(&ProcessUsage::now()));
            }
            protocol::END => {
                let rusage = usage.unwrap_or_else(|| usage_start.until(&ProcessUsage::now()));
                return Ok(BackendReport {
                    report: PeerReport {
                        rusage,
                        messages: shared.in_window.load(Ordering::Relaxed),
                        bytes: 0,
                        extra: Default::default(),
                    },
                    ..BackendReport::default()
                });
            }
            other => return Err(TrialError::Failed(format!("unexpected control message {other}"))),
        }
    }
}

fn run_loop(
    mut poll: Poll,
    mut listener: Box<dyn EventListener>,
    mut store: Box<dyn Store>,
    shared: &Shared,
    message_bytes: usize,
    state_bytes: usize,
    core: usize,
) -> Result<Outcome, String> {
    affinity::pin_current_thread(core)?;
    poll.registry()
        .register(listener.source(), LISTENER, Interest::READABLE)
        .map_err(|e| format!("cannot register the listener: {e}"))?;
    let mut links: Vec<Option<Link>> = Vec::new();
    let mut events = Events::with_capacity(256);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut data = vec![0u8; state_bytes];
    let mut histogram = stats::new_histogram();
    let mut requests_total = 0u64;
    let mut store_error: Option<String> = None;
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll failed: {e}")),
        }
        for event in events.iter() {
            match event.token() {
                LISTENER => {
                    while let Some(mut stream) =
                        listener.accept().map_err(|e| format!("accept: {}", error_chain(&e)))?
                    {
                        let idx = links.len();
                        poll.registry()
                            .register(&mut stream, Token(idx), Interest::READABLE | Interest::WRITABLE)
                            .map_err(|e| format!("cannot register a link: {e}"))?;
                        links.push(Some(Link {
                            stream,
                            rx: Vec::new(),
                            tx: Vec::new(),
                        }));
                        // Relaxed: a count.
                        shared.accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                WAKER => {
                    // Acquire pairs with the Release store at `END`.
                    if shared.stop.load(Ordering::Acquire) {
                        return Ok(Outcome {
                            histogram,
                            store,
                            requests_total,
                            store_error,
                        });
                    }
                }
                Token(idx) => {
                    let Some(Some(link)) = links.get_mut(idx) else { continue };
                    if event.is_writable() {
                        flush(&mut link.stream, &mut link.tx).map_err(|e| format!("link {idx}: write failed: {e}"))?;
                    }
                    if !(event.is_readable() || event.is_read_closed() || event.is_error()) {
                        continue;
                    }
                    let mut closed = false;
                    loop {
                        match link.stream.read(&mut scratch) {
                            Ok(0) => {
                                closed = true;
                                break;
                            }
                            Ok(n) => {
                                let Link { stream, rx, tx } = link;
                                balance_wire::frames(
                                    rx,
                                    &scratch[..n],
                                    message_bytes,
                                    |body| {
                                        let (client_id, seq) = balance_wire::two_words(body);
                                        let fill = data.len().min(8);
                                        data[..fill].copy_from_slice(&seq.to_le_bytes()[..fill]);
                                        let counter = match store.rmw(client_id, &data) {
                                            Ok(outcome) => {
                                                // Relaxed: see `Shared::measuring`.
                                                if shared.measuring.load(Ordering::Relaxed) {
                                                    stats::record(&mut histogram, outcome.elapsed.as_nanos() as u64)
                                                        .map_err(|e| e.to_string())?;
                                                    shared.in_window.fetch_add(1, Ordering::Relaxed);
                                                }
                                                outcome.counter
                                            }
                                            Err(e) => {
                                                store_error.get_or_insert_with(|| error_chain(&e));
                                                STORE_FAILED
                                            }
                                        };
                                        requests_total += 1;
                                        send_bytes(stream, tx, &balance_wire::reply_frame(seq, counter), &[])
                                            .map_err(|e| format!("write failed: {e}"))
                                    },
                                    |len| format!("request of {len} bytes, expected {message_bytes}"),
                                )
                                .map_err(|e| format!("link {idx}: {e}"))?;
                                if n < scratch.len() {
                                    break;
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => {
                                closed = true;
                                break;
                            }
                        }
                    }
                    if closed && let Some(mut link) = links[idx].take() {
                        let _ = poll.registry().deregister(&mut link.stream);
                    }
                }
            }
        }
    }
}
