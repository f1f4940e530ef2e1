//! The server process of `load` and `conn-cost`: event loops that echo framed messages.
//!
//! `server_loops` threads each run one mio `Poll`. Loop 0 also owns the listener: it accepts
//! every connection and deals them out round-robin (handing a stream to another loop through
//! a channel and waking it with its `Waker`). A loop never blocks on one connection: it reads
//! each readable connection until it would block, and for every whole frame (a 4-byte
//! little-endian length, then the payload) it checks the length, the sequence number and the
//! checksum, then writes the frame back unchanged; bytes the socket cannot take yet wait in a
//! per-connection buffer until the connection is writable again.
//!
//! The process's main thread serves the control channel: `ACCEPTED` queries during ramp-up,
//! `MARK` (snapshot the whole process's CPU counters and message count), `END` (stop the
//! loops, join them, send `REPORT`). Every loop thread is pinned to the server core.

use std::io::{self, IoSlice, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};
use ipcbench_core::event_loop::{EventListener, EventStream};
use ipcbench_core::payload::verify;
use ipcbench_core::{Channel, Endpoint, Transport};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::plan::ServerModel;
use crate::procstat::ProcessUsage;
use crate::protocol::{self, PeerReport, PeerSpec};
use crate::scenario::fleet::{self, Accepted, BACKLOG, Listening, Stall};
use crate::session::{TrialError, error_chain};
use crate::{affinity, fdlimit};

/// Listener `k` has token `LISTENER - k` (at most [`crate::plan::limits::MAX_SERVER_ADDRESSES`]
/// of them, all above every connection's token and below [`WAKER`]).
const LISTENER: Token = Token(usize::MAX - 16);
const WAKER: Token = Token(usize::MAX - 2);
/// Bytes read per `read` call; a short read means the socket is drained for now.
const SCRATCH_BYTES: usize = 64 * 1024;
/// Bytes in a frame header.
pub(crate) const FRAME_HEADER_BYTES: usize = 4;

/// What the loops share with the control thread.
#[derive(Debug, Default)]
struct Shared {
    /// Connections accepted so far. Relaxed everywhere: a count read for reporting, it
    /// publishes no other memory.
    accepted: AtomicU64,
    /// Connections the client closed. Relaxed: a count, as above.
    closed: AtomicU64,
    /// Messages echoed so far. Relaxed: a count, as above; `fetch_add` hands each message a
    /// unique number, which is all the stall diagnostic needs.
    messages: AtomicU64,
    /// System calls and wake-ups of the loops (or connection threads), per [`Counter`].
    /// Relaxed: counts for the report, as above.
    counts: [AtomicU64; N_COUNTERS],
    /// Set by the control thread at `END` (Release), read by each loop after its `Waker` woke
    /// it (Acquire); nothing else is published through it.
    stop: AtomicBool,
    /// The first failure of any loop.
    error: Mutex<Option<String>>,
    /// The distinct client IP addresses accepted (off the hot path: once per connection).
    peers: Mutex<std::collections::HashSet<std::net::IpAddr>>,
}

/// What the server counts of its own work, for the per-request costs of `load`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    /// `read` calls (including those that found nothing: `EAGAIN`).
    Reads,
    /// `write` calls.
    Writes,
    /// `epoll_wait` calls that returned (event-loop wake-ups).
    Polls,
    /// Events those wake-ups delivered.
    Events,
}

/// How many [`Counter`]s there are.
const N_COUNTERS: usize = 4;

impl Counter {
    /// Every counter with its report key.
    pub(crate) const ALL: [(Counter, &'static str); N_COUNTERS] = [
        (Counter::Reads, "reads"),
        (Counter::Writes, "writes"),
        (Counter::Polls, "epoll_waits"),
        (Counter::Events, "events"),
    ];
}

/// Counts kept by one thread and added to [`Shared::counts`] once per wake-up, so the hot path
/// does no atomic operation per system call.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LocalCounts([u64; N_COUNTERS]);

impl LocalCounts {
    pub(crate) fn add(&mut self, counter: Counter, n: u64) {
        self.0[counter as usize] += n;
    }

    /// Adds the counts to `shared` and clears them.
    fn publish(&mut self, shared: &Shared) {
        for (slot, n) in shared.counts.iter().zip(&mut self.0) {
            if *n > 0 {
                // Relaxed: a count for reports; it publishes nothing.
                slot.fetch_add(*n, Ordering::Relaxed);
                *n = 0;
            }
        }
    }
}

impl Shared {
    /// Counts one accepted connection from `stream`'s peer.
    fn accepted_from(&self, stream: &EventStream) {
        // Relaxed: a count for reports; it publishes nothing.
        self.accepted.fetch_add(1, Ordering::Relaxed);
        if let EventStream::Tcp(s) = stream
            && let Ok(peer) = s.peer_addr()
        {
            self.peers.lock().unwrap_or_else(|e| e.into_inner()).insert(peer.ip());
        }
    }

    /// Distinct client IP addresses so far.
    fn peer_addresses(&self) -> usize {
        self.peers.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Every counter now (Relaxed loads: counts, possibly a wake-up old).
    fn counts_now(&self) -> [u64; N_COUNTERS] {
        std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }

    fn fail(&self, message: String) {
        let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(message);
    }
}

/// One loop's handle: how to hand it a connection, wake it, and join it.
struct LoopHandle {
    inbox: Sender<EventStream>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

/// Fixed parameters of every loop.
#[derive(Debug, Clone, Copy)]
struct LoopConfig {
    message_bytes: usize,
    core: usize,
    stall: Option<Stall>,
}

/// The running event loops.
struct EchoServer {
    shared: Arc<Shared>,
    loops: Vec<LoopHandle>,
}

impl EchoServer {
    /// Starts `n_loops` loops; loop 0 accepts from every listener.
    fn start(listeners: Vec<Box<dyn EventListener>>, n_loops: usize, config: LoopConfig) -> Result<EchoServer, String> {
        let shared = Arc::new(Shared::default());
        let mut polls = Vec::new();
        let mut inboxes = Vec::new();
        let mut loops = Vec::new();
        for _ in 0..n_loops {
            let poll = Poll::new().map_err(|e| format!("cannot create an event loop: {e}"))?;
            let waker = Waker::new(poll.registry(), WAKER).map_err(|e| format!("cannot create a waker: {e}"))?;
            let (inbox, receiver) = unbounded();
            polls.push(poll);
            inboxes.push(receiver);
            loops.push(LoopHandle {
                inbox,
                waker: Arc::new(waker),
                thread: None,
            });
        }
        let peers: Vec<(Sender<EventStream>, Arc<Waker>)> =
            loops.iter().map(|l| (l.inbox.clone(), Arc::clone(&l.waker))).collect();
        let mut listeners = Some(listeners);
        for (idx, (poll, inbox)) in polls.into_iter().zip(inboxes).enumerate() {
            let state = LoopState {
                idx,
                poll,
                listeners: listeners.take().unwrap_or_default(),
                counts: LocalCounts::default(),
                inbox,
                peers: peers.clone(),
                next_peer: 0,
                shared: Arc::clone(&shared),
                config,
                conns: Vec::new(),
                free: Vec::new(),
                scratch: vec![0u8; SCRATCH_BYTES],
            };
            let shared = Arc::clone(&shared);
            let thread = thread::Builder::new()
                .name(format!("event-loop-{idx}"))
                .spawn(move || {
                    if let Err(e) = state.run() {
                        shared.fail(e);
                    }
                })
                .map_err(|e| format!("cannot start event loop {idx}: {e}"))?;
            loops[idx].thread = Some(thread);
        }
        Ok(EchoServer { shared, loops })
    }

    /// Stops and joins every loop; returns the first failure of any loop.
    fn stop(mut self) -> Result<(), String> {
        // Release pairs with the Acquire load in each loop after its wake-up.
        self.shared.stop.store(true, Ordering::Release);
        for handle in &self.loops {
            let _ = handle.waker.wake();
        }
        for handle in &mut self.loops {
            if let Some(thread) = handle.thread.take()
                && thread.join().is_err()
            {
                self.shared.fail("an event loop panicked".into());
            }
        }
        match self.shared.error.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// One connection as the server sees it.
struct ServerConn {
    stream: EventStream,
    /// Bytes of an incomplete frame.
    rx: Vec<u8>,
    /// Bytes the socket could not take yet.
    tx: Vec<u8>,
    /// The sequence number the next request must carry.
    seq: u64,
}

/// One event loop and its connections (indexed by token; `free` lists empty slots).
struct LoopState {
    idx: usize,
    poll: Poll,
    listeners: Vec<Box<dyn EventListener>>,
    counts: LocalCounts,
    inbox: Receiver<EventStream>,
    peers: Vec<(Sender<EventStream>, Arc<Waker>)>,
    next_peer: usize,
    shared: Arc<Shared>,
    config: LoopConfig,
    conns: Vec<Option<ServerConn>>,
    free: Vec<usize>,
    scratch: Vec<u8>,
}

impl LoopState {
    fn run(mut self) -> Result<(), String> {
        affinity::pin_current_thread(self.config.core)?;
        for (k, listener) in self.listeners.iter_mut().enumerate() {
            self.poll
                .registry()
                .register(listener.source(), Token(LISTENER.0 - k), Interest::READABLE)
                .map_err(|e| format!("cannot register the listener: {e}"))?;
        }
        let n_listeners = self.listeners.len();
        let mut events = Events::with_capacity(1024);
        loop {
            self.counts.publish(&self.shared);
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("event loop {}: poll failed: {e}", self.idx)),
            }
            self.counts.add(Counter::Polls, 1);
            for event in events.iter() {
                self.counts.add(Counter::Events, 1);
                match event.token() {
                    Token(t) if t <= LISTENER.0 && t > LISTENER.0 - n_listeners => self.accept_all(LISTENER.0 - t)?,
                    WAKER => {
                        while let Ok(stream) = self.inbox.try_recv() {
                            self.add(stream)?;
                        }
                        // Acquire pairs with the Release store in `EchoServer::stop`.
                        if self.shared.stop.load(Ordering::Acquire) {
                            return Ok(());
                        }
                    }
                    Token(idx) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(idx)?;
                        }
                        if event.is_writable() {
                            self.on_writable(idx)?;
                        }
                    }
                }
            }
        }
    }

    /// Accepts every waiting connection of listener `k` and deals them out round-robin.
    fn accept_all(&mut self, k: usize) -> Result<(), String> {
        loop {
            let accepted = match self.listeners.get_mut(k) {
                Some(listener) => listener.accept().map_err(|e| format!("accept: {}", error_chain(&e)))?,
                None => return Ok(()),
            };
            let Some(stream) = accepted else { return Ok(()) };
            self.shared.accepted_from(&stream);
            let target = self.next_peer;
            self.next_peer = (self.next_peer + 1) % self.peers.len();
            if target == self.idx {
                self.add(stream)?;
            } else {
                let (inbox, waker) = &self.peers[target];
                inbox.send(stream).map_err(|_| format!("event loop {target} is gone"))?;
                waker
                    .wake()
                    .map_err(|e| format!("cannot wake event loop {target}: {e}"))?;
            }
        }
    }

    fn add(&mut self, mut stream: EventStream) -> Result<(), String> {
        let idx = self.free.pop().unwrap_or(self.conns.len());
        self.poll
            .registry()
            .register(&mut stream, Token(idx), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| format!("cannot register a connection: {e}"))?;
        let conn = ServerConn {
            stream,
            rx: Vec::new(),
            tx: Vec::new(),
            seq: 0,
        };
        if idx == self.conns.len() {
            self.conns.push(Some(conn));
        } else {
            self.conns[idx] = Some(conn);
        }
        Ok(())
    }

    fn close(&mut self, idx: usize) {
        if let Some(mut conn) = self.conns.get_mut(idx).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.free.push(idx);
            // Relaxed: a count for reports; it publishes nothing.
            self.shared.closed.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_readable(&mut self, idx: usize) -> Result<(), String> {
        let Some(Some(conn)) = self.conns.get_mut(idx) else {
            return Ok(());
        };
        let config = self.config;
        let shared = &*self.shared;
        loop {
            self.counts.add(Counter::Reads, 1);
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => break,
                Ok(n) => {
                    let echoed = handle_bytes(conn, &self.scratch[..n], config, shared)
                        .map_err(|e| format!("connection {idx}: {e}"))?;
                    self.counts.add(Counter::Writes, echoed);
                    if n < self.scratch.len() {
                        // Drained for now; the next arrival raises a new readable event.
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_reset(&e) => break,
                Err(e) => return Err(format!("connection {idx}: read failed: {e}")),
            }
        }
        self.close(idx);
        Ok(())
    }

    fn on_writable(&mut self, idx: usize) -> Result<(), String> {
        let Some(Some(conn)) = self.conns.get_mut(idx) else {
            return Ok(());
        };
        if !conn.tx.is_empty() {
            self.counts.add(Counter::Writes, 1);
        }
        match flush(&mut conn.stream, &mut conn.tx) {
            Ok(()) => Ok(()),
            Err(e) if is_reset(&e) => {
                self.close(idx);
                Ok(())
            }
            Err(e) => Err(format!("connection {idx}: write failed: {e}")),
        }
    }
}

/// True for the errors that mean the client went away.
fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
    )
}

/// Parses whole frames out of `data` (after any bytes kept from earlier), checks and echoes
/// each; keeps an incomplete tail for the next read. Returns the frames echoed (one write
/// call each).
fn handle_bytes(conn: &mut ServerConn, data: &[u8], config: LoopConfig, shared: &Shared) -> Result<u64, String> {
    let before = conn.seq;
    if conn.rx.is_empty() {
        let used = handle_frames(conn, data, config, shared)?;
        conn.rx.extend_from_slice(&data[used..]);
    } else {
        conn.rx.extend_from_slice(data);
        let pending = std::mem::take(&mut conn.rx);
        let used = handle_frames(conn, &pending, config, shared)?;
        conn.rx = pending;
        conn.rx.drain(..used);
    }
    Ok(conn.seq - before)
}

/// Handles every whole frame at the start of `data`; returns the bytes used.
fn handle_frames(conn: &mut ServerConn, data: &[u8], config: LoopConfig, shared: &Shared) -> Result<usize, String> {
    let mut used = 0;
    while data.len() - used >= FRAME_HEADER_BYTES {
        let header: [u8; FRAME_HEADER_BYTES] = data[used..used + FRAME_HEADER_BYTES].try_into().expect("4 bytes");
        let len = u32::from_le_bytes(header) as usize;
        if len != config.message_bytes {
            return Err(format!(
                "frame of {len} bytes, expected {} (corrupt stream)",
                config.message_bytes
            ));
        }
        let end = used + FRAME_HEADER_BYTES + len;
        if data.len() < end {
            break;
        }
        let frame = &data[used..end];
        // Relaxed: a count; the unique value it returns is all the stall needs.
        let served = shared.messages.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(stall) = config.stall
            && served == stall.after_messages
        {
            thread::sleep(Duration::from_millis(stall.stall_ms));
        }
        verify(&frame[FRAME_HEADER_BYTES..], config.message_bytes, conn.seq).map_err(|e| e.to_string())?;
        conn.seq += 1;
        send_bytes(&mut conn.stream, &mut conn.tx, frame, &[]).map_err(|e| format!("write failed: {e}"))?;
        used = end;
    }
    Ok(used)
}

/// Writes `head` then `body` now if nothing is queued (one vectored write, no allocation),
/// keeping what the socket cannot take in `tx`.
pub(crate) fn send_bytes(stream: &mut EventStream, tx: &mut Vec<u8>, head: &[u8], body: &[u8]) -> io::Result<()> {
    let total = head.len() + body.len();
    let mut written = 0;
    if tx.is_empty() {
        loop {
            match stream.write_vectored(&[IoSlice::new(head), IoSlice::new(body)]) {
                Ok(n) => {
                    written = n;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    if written < total {
        if written < head.len() {
            tx.extend_from_slice(&head[written..]);
            tx.extend_from_slice(body);
        } else {
            tx.extend_from_slice(&body[written - head.len()..]);
        }
    }
    Ok(())
}

/// Writes queued bytes until the socket would block or the queue is empty.
pub(crate) fn flush(stream: &mut EventStream, tx: &mut Vec<u8>) -> io::Result<()> {
    let mut written = 0;
    while written < tx.len() {
        match stream.write(&tx[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    tx.drain(..written);
    Ok(())
}

/// How a server process of `load` or `conn-cost` is set up (from its [`PeerRole`]).
#[derive(Debug, Clone)]
pub(crate) struct ServerSetup<'a> {
    /// Where a Unix socket listener may create its file.
    pub work_dir: &'a std::path::Path,
    /// The test-only stall (event-loop model only).
    pub stall: Option<Stall>,
    /// The connections this process holds.
    pub connections: u64,
    /// The addresses to listen on (empty: the transport's own, one listener).
    pub listen_ips: &'a [std::net::IpAddr],
    /// How connections are held.
    pub model: ServerModel,
}

/// The running server, of either model.
enum Running {
    Events(EchoServer),
    Threads(ThreadServer),
}

impl Running {
    fn shared(&self) -> &Shared {
        match self {
            Running::Events(s) => &s.shared,
            Running::Threads(s) => &s.shared,
        }
    }

    fn stop(self) -> Result<(), String> {
        match self {
            Running::Events(s) => s.stop(),
            Running::Threads(s) => s.stop(),
        }
    }
}

/// Serves one trial as the echo server: returns once the client said `END` and got the
/// report.
///
/// # Errors
/// A message for the parent's record (the CLI prints it on stderr, where the parent reads it).
pub(crate) fn serve<T: Transport>(transport: &T, spec: &PeerSpec, setup: &ServerSetup<'_>) -> Result<(), TrialError> {
    let case = &spec.case;
    let (mut control, ready) = fleet::connect_control(transport, spec, case.placement.server, "peer")?;
    let capability = transport
        .event_loop()
        .ok_or_else(|| TrialError::Unsupported(format!("`{}` has no event-loop capability", transport.name())))?;
    fdlimit::ensure_open_files(setup.connections + setup.listen_ips.len() as u64)
        .map_err(|e| TrialError::Failed(format!("server: {e}")))?;
    let endpoint = Endpoint::new(
        format!("case{}-events-{}", case.index, std::process::id()),
        setup.work_dir,
    );
    let listeners: Vec<Box<dyn EventListener>> = if setup.listen_ips.is_empty() {
        vec![capability.listen_many(&endpoint, BACKLOG)?]
    } else {
        setup
            .listen_ips
            .iter()
            .map(|ip| capability.listen_many_on(&endpoint, BACKLOG, Some(*ip)))
            .collect::<Result<_, _>>()?
    };
    let addresses: Vec<String> = listeners.iter().map(|l| l.address()).collect();
    let n_loops = case.server_loops.max(1) as usize;
    let config = LoopConfig {
        message_bytes: case.message_bytes as usize,
        core: case.placement.server,
        stall: setup.stall,
    };
    let server = match setup.model {
        ServerModel::EventLoop => {
            Running::Events(EchoServer::start(listeners, n_loops, config).map_err(TrialError::Failed)?)
        }
        ServerModel::ThreadPerConnection => {
            Running::Threads(ThreadServer::start(listeners, config).map_err(TrialError::Failed)?)
        }
    };
    let listening = Listening {
        address: addresses[0].clone(),
        all: addresses,
    };
    fleet::announce(&mut control, &ready, &listening)?;
    let loops = match setup.model {
        ServerModel::EventLoop => n_loops,
        ServerModel::ThreadPerConnection => 0,
    };
    let result = control_loop(&mut control, server.shared(), loops);
    let stopped = server.stop();
    match (result, stopped) {
        // The report goes out only after the loops stopped cleanly.
        (Ok(report), Ok(())) => Ok(control.send(&report)?),
        (_, Err(loop_error)) => Err(TrialError::Failed(format!("server: {loop_error}"))),
        (Err(e), Ok(())) => Err(e),
    }
}

/// The server's counters over the window since `MARK`.
struct Window {
    usage: ProcessUsage,
    messages: u64,
    counts: [u64; N_COUNTERS],
}

impl Window {
    fn start(shared: &Shared) -> Window {
        Window {
            usage: ProcessUsage::now(),
            // Relaxed: a count; a message or two in flight at MARK may land on either side.
            messages: shared.messages.load(Ordering::Relaxed),
            counts: shared.counts_now(),
        }
    }

    /// The window's report: CPU, messages, and every counter.
    fn report(&self, shared: &Shared, n_loops: usize) -> PeerReport {
        // Relaxed loads: the counts for the report, as above.
        let messages = shared.messages.load(Ordering::Relaxed) - self.messages;
        let mut extra = std::collections::BTreeMap::new();
        extra.insert("loops".to_owned(), n_loops as f64);
        extra.insert("accepted".to_owned(), shared.accepted.load(Ordering::Relaxed) as f64);
        extra.insert("closed".to_owned(), shared.closed.load(Ordering::Relaxed) as f64);
        extra.insert("peer_addresses".to_owned(), shared.peer_addresses() as f64);
        for ((_, key), (now, then)) in Counter::ALL.iter().zip(shared.counts_now().iter().zip(&self.counts)) {
            extra.insert((*key).to_owned(), now.saturating_sub(*then) as f64);
        }
        PeerReport {
            rusage: self.usage.until(&ProcessUsage::now()),
            messages,
            bytes: 0,
            extra,
        }
    }
}

/// Answers control messages until `END`; returns the encoded `REPORT`.
fn control_loop<C: Channel>(control: &mut C, shared: &Shared, n_loops: usize) -> Result<Vec<u8>, TrialError> {
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    let mut window = Window::start(shared);
    loop {
        let n = control.recv(&mut buf)?;
        let Some((command, _)) = protocol::decode(&buf[..n]) else {
            return Err(TrialError::Failed("data message on the control channel".into()));
        };
        match command {
            fleet::ACCEPTED => {
                // Relaxed loads: counts for the report, possibly a moment old; the client polls again.
                let answer = Accepted {
                    accepted: shared.accepted.load(Ordering::Relaxed),
                    closed: shared.closed.load(Ordering::Relaxed),
                };
                control.send(&protocol::encode(fleet::ACCEPTED, Some(&answer)))?;
            }
            protocol::MARK => {
                window = Window::start(shared);
                control.send(&buf[..n])?;
            }
            fleet::COUNTERS => {
                let report = window.report(shared, n_loops);
                control.send(&protocol::encode(fleet::COUNTERS, Some(&report)))?;
            }
            protocol::END => {
                let report = window.report(shared, n_loops);
                return Ok(protocol::encode(protocol::REPORT, Some(&report)));
            }
            other => return Err(TrialError::Failed(format!("unexpected control message {other}"))),
        }
    }
}

/// The thread-per-connection server: an acceptor thread on the listeners, and a blocking
/// thread for each accepted connection that reads, checks and echoes its frames.
struct ThreadServer {
    shared: Arc<Shared>,
    waker: Arc<Waker>,
    acceptor: Option<JoinHandle<()>>,
}

/// Stack of a connection thread: small, as a goroutine-style server would ask.
const CONNECTION_STACK_BYTES: usize = 64 * 1024;
/// Read buffer of a connection thread.
const CONNECTION_SCRATCH_BYTES: usize = 4 * 1024;

impl ThreadServer {
    fn start(mut listeners: Vec<Box<dyn EventListener>>, config: LoopConfig) -> Result<ThreadServer, String> {
        let shared = Arc::new(Shared::default());
        let mut poll = Poll::new().map_err(|e| format!("cannot create an event loop: {e}"))?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| format!("cannot create a waker: {e}"))?);
        for (k, listener) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(listener.source(), Token(k), Interest::READABLE)
                .map_err(|e| format!("cannot register the listener: {e}"))?;
        }
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("acceptor".into())
                .spawn(move || {
                    if let Err(e) = accept_threads(&mut poll, &mut listeners, config, &shared) {
                        shared.fail(e);
                    }
                })
                .map_err(|e| format!("cannot start the acceptor: {e}"))?
        };
        Ok(ThreadServer {
            shared,
            waker,
            acceptor: Some(acceptor),
        })
    }

    /// Stops the acceptor; connection threads end with the process (each is blocked in a read
    /// of its own connection). Returns the first failure of any thread.
    fn stop(mut self) -> Result<(), String> {
        // Release pairs with the Acquire load in the acceptor after its wake-up.
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        if let Some(thread) = self.acceptor.take()
            && thread.join().is_err()
        {
            self.shared.fail("the acceptor panicked".into());
        }
        match self.shared.error.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The acceptor: every accepted connection gets a thread of its own.
fn accept_threads(
    poll: &mut Poll,
    listeners: &mut [Box<dyn EventListener>],
    config: LoopConfig,
    shared: &Arc<Shared>,
) -> Result<(), String> {
    affinity::pin_current_thread(config.core)?;
    let mut events = Events::with_capacity(64);
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("acceptor: poll failed: {e}")),
        }
        for event in events.iter() {
            if event.token() == WAKER {
                // Acquire pairs with the Release store in `ThreadServer::stop`.
                if shared.stop.load(Ordering::Acquire) {
                    return Ok(());
                }
                continue;
            }
            let Some(listener) = listeners.get_mut(event.token().0) else {
                continue;
            };
            while let Some(stream) = listener.accept().map_err(|e| format!("accept: {}", error_chain(&e)))? {
                shared.accepted_from(&stream);
                set_blocking(&stream)?;
                let shared = Arc::clone(shared);
                thread::Builder::new()
                    .stack_size(CONNECTION_STACK_BYTES)
                    .spawn(move || connection_thread(stream, config, &shared))
                    .map_err(|e| format!("cannot start a connection thread: {e}"))?;
            }
        }
    }
}

/// Makes an accepted socket blocking, for a thread that waits in `read`.
fn set_blocking(stream: &EventStream) -> Result<(), String> {
    use std::os::fd::AsFd;
    let fd = match stream {
        EventStream::Tcp(s) => s.as_fd(),
        EventStream::Unix(s) => s.as_fd(),
        _ => return Err("a stream of an unknown kind".into()),
    };
    rustix::io::ioctl_fionbio(fd, false).map_err(|e| format!("cannot make a connection blocking: {e}"))
}

/// One connection's thread: blocking reads, every whole frame checked and echoed.
fn connection_thread(stream: EventStream, config: LoopConfig, shared: &Shared) {
    let mut conn = ServerConn {
        stream,
        rx: Vec::new(),
        tx: Vec::new(),
        seq: 0,
    };
    let mut scratch = vec![0u8; CONNECTION_SCRATCH_BYTES];
    let mut counts = LocalCounts::default();
    let outcome = loop {
        counts.add(Counter::Reads, 1);
        match conn.stream.read(&mut scratch) {
            Ok(0) => break Ok(()),
            Ok(n) => match handle_bytes(&mut conn, &scratch[..n], config, shared) {
                // A blocking write takes the whole frame; `tx` stays empty.
                Ok(echoed) => counts.add(Counter::Writes, echoed),
                Err(e) => break Err(e),
            },
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_reset(&e) => break Ok(()),
            Err(e) => break Err(format!("read failed: {e}")),
        }
        if !conn.tx.is_empty()
            && let Err(e) = flush(&mut conn.stream, &mut conn.tx)
        {
            break Err(format!("write failed: {e}"));
        }
        counts.publish(shared);
    };
    counts.publish(shared);
    // Relaxed: a count for reports; it publishes nothing.
    shared.closed.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = outcome {
        shared.fail(format!("connection thread: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use ipcbench_core::payload::Payload;

    use super::*;

    fn pair() -> (EventStream, EventStream) {
        let (a, b) = mio::net::UnixStream::pair().unwrap();
        (EventStream::Unix(a), EventStream::Unix(b))
    }

    /// Reads from `stream` until `n` bytes arrived, flushing `tx` on `writer` meanwhile.
    fn read_exactly(stream: &mut EventStream, n: usize, writer: &mut EventStream, tx: &mut Vec<u8>) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while out.len() < n {
            assert!(Instant::now() < deadline, "got {} of {n} bytes", out.len());
            flush(writer, tx).unwrap();
            match stream.read(&mut buf) {
                Ok(0) => panic!("closed"),
                Ok(k) => out.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(1)),
                Err(e) => panic!("{e}"),
            }
        }
        out
    }

    #[test]
    fn what_the_socket_cannot_take_is_queued_and_flushed_in_order() {
        let (mut writer, mut reader) = pair();
        let head = [1u8, 2, 3, 4];
        let body: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
        let mut tx = Vec::new();
        send_bytes(&mut writer, &mut tx, &head, &body).unwrap();
        assert!(!tx.is_empty(), "4 MiB cannot fit a socket buffer at once");
        // Queued bytes go first: a second message waits behind them.
        send_bytes(&mut writer, &mut tx, &[9], &[8]).unwrap();
        let got = read_exactly(&mut reader, head.len() + body.len() + 2, &mut writer, &mut tx);
        assert_eq!(&got[..4], &head);
        assert!(got[4..4 + body.len()] == body[..]);
        assert_eq!(&got[4 + body.len()..], &[9, 8]);
        assert!(tx.is_empty());
    }

    fn conn(stream: EventStream) -> ServerConn {
        ServerConn {
            stream,
            rx: Vec::new(),
            tx: Vec::new(),
            seq: 0,
        }
    }

    fn config(message_bytes: usize) -> LoopConfig {
        LoopConfig {
            message_bytes,
            core: 0,
            stall: None,
        }
    }

    fn frame(payload: &mut Payload, seq: u64) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(payload.stamp(seq));
        out
    }

    #[test]
    fn frames_split_across_reads_are_checked_and_echoed_whole() {
        let (server_side, mut client_side) = pair();
        let mut conn = conn(server_side);
        let shared = Shared::default();
        let mut payload = Payload::new(100);
        let mut bytes = frame(&mut payload, 0);
        bytes.extend(frame(&mut payload, 1));
        // Deliver the two frames in three uneven pieces.
        for piece in [&bytes[..3], &bytes[3..150], &bytes[150..]] {
            handle_bytes(&mut conn, piece, config(100), &shared).unwrap();
        }
        assert_eq!(conn.seq, 2);
        assert!(conn.rx.is_empty());
        assert_eq!(shared.messages.load(Ordering::Relaxed), 2);
        let (mut idle, _) = pair();
        let echoed = read_exactly(&mut client_side, bytes.len(), &mut idle, &mut Vec::new());
        assert_eq!(echoed, bytes);
    }

    #[test]
    fn wrong_length_or_sequence_fails_the_connection() {
        let shared = Shared::default();
        let mut payload = Payload::new(100);
        let (stream, _peer) = pair();
        let mut c = conn(stream);
        let error = handle_bytes(&mut c, &frame(&mut payload, 0), config(64), &shared).unwrap_err();
        assert!(error.contains("frame of 100 bytes, expected 64"), "{error}");
        let (stream, _peer) = pair();
        let mut c = conn(stream);
        let error = handle_bytes(&mut c, &frame(&mut payload, 5), config(100), &shared).unwrap_err();
        assert!(error.contains("expected message 0"), "{error}");
    }
}
