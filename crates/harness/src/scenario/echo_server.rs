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

use crate::plan::Case;
use crate::procstat::ProcessUsage;
use crate::protocol::{self, PeerReport, PeerSpec, Ready};
use crate::scenario::fleet::{self, Accepted, BACKLOG, Listening, Stall};
use crate::session::{TrialError, error_chain};
use crate::{affinity, fdlimit};

const LISTENER: Token = Token(usize::MAX - 1);
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
    /// Set by the control thread at `END` (Release), read by each loop after its `Waker` woke
    /// it (Acquire); nothing else is published through it.
    stop: AtomicBool,
    /// The first failure of any loop.
    error: Mutex<Option<String>>,
}

impl Shared {
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
    /// Starts `n_loops` loops; loop 0 accepts from `listener`.
    fn start(listener: Box<dyn EventListener>, n_loops: usize, config: LoopConfig) -> Result<EchoServer, String> {
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
        let mut listener = Some(listener);
        for (idx, (poll, inbox)) in polls.into_iter().zip(inboxes).enumerate() {
            let state = LoopState {
                idx,
                poll,
                listener: listener.take(),
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
    listener: Option<Box<dyn EventListener>>,
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
        if let Some(listener) = &mut self.listener {
            self.poll
                .registry()
                .register(listener.source(), LISTENER, Interest::READABLE)
                .map_err(|e| format!("cannot register the listener: {e}"))?;
        }
        let mut events = Events::with_capacity(1024);
        loop {
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("event loop {}: poll failed: {e}", self.idx)),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all()?,
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

    /// Accepts every waiting connection and deals them out round-robin.
    fn accept_all(&mut self) -> Result<(), String> {
        loop {
            let accepted = match &mut self.listener {
                Some(listener) => listener.accept().map_err(|e| format!("accept: {}", error_chain(&e)))?,
                None => return Ok(()),
            };
            let Some(stream) = accepted else { return Ok(()) };
            // Relaxed: a count for reports; it publishes nothing.
            self.shared.accepted.fetch_add(1, Ordering::Relaxed);
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
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => break,
                Ok(n) => {
                    handle_bytes(conn, &self.scratch[..n], config, shared)
                        .map_err(|e| format!("connection {idx}: {e}"))?;
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
/// each; keeps an incomplete tail for the next read.
fn handle_bytes(conn: &mut ServerConn, data: &[u8], config: LoopConfig, shared: &Shared) -> Result<(), String> {
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
    Ok(())
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

/// The connections a case opens (both `load` and `conn-cost`).
pub(crate) fn connections_of(case: &Case, default: u64) -> u64 {
    case.connections.unwrap_or(default)
}

/// Serves one trial as the event-loop server: returns once the client said `END` and got the
/// report.
///
/// # Errors
/// A message for the parent's record (the CLI prints it on stderr, where the parent reads it).
pub(crate) fn serve<T: Transport>(
    transport: &T,
    spec: &PeerSpec,
    work_dir: &std::path::Path,
    stall: Option<Stall>,
    default_connections: u64,
) -> Result<(), TrialError> {
    let case = &spec.case;
    let cores_applied = affinity::pin_current_thread(case.placement.server).map_err(TrialError::Failed)?;
    let mut control = transport
        .connect(&spec.address, protocol::CONNECT_TIMEOUT)
        .map_err(|e| TrialError::Failed(format!("peer cannot connect to {}: {}", spec.address, error_chain(&e))))?;
    let capability = transport
        .event_loop()
        .ok_or_else(|| TrialError::Unsupported(format!("`{}` has no event-loop capability", transport.name())))?;
    let connections = connections_of(case, default_connections);
    fdlimit::ensure_open_files(connections).map_err(|e| TrialError::Failed(format!("server: {e}")))?;
    let endpoint = Endpoint::new(format!("case{}-events-{}", case.index, std::process::id()), work_dir);
    let listener = capability.listen_many(&endpoint, BACKLOG)?;
    let address = listener.address();
    let n_loops = case.server_loops.max(1) as usize;
    let server = EchoServer::start(
        listener,
        n_loops,
        LoopConfig {
            message_bytes: case.message_bytes as usize,
            core: case.placement.server,
            stall,
        },
    )
    .map_err(TrialError::Failed)?;
    let ready = Ready {
        pid: std::process::id(),
        cores_applied,
        applied_options: control.applied_options().into_iter().collect(),
    };
    control.send(&protocol::encode(protocol::READY, Some(&ready)))?;
    control.send(&protocol::encode(fleet::LISTENING, Some(&Listening { address })))?;
    let result = control_loop(&mut control, &server.shared, n_loops);
    let stopped = server.stop();
    match (result, stopped) {
        // The report goes out only after the loops stopped cleanly.
        (Ok(report), Ok(())) => Ok(control.send(&report)?),
        (_, Err(loop_error)) => Err(TrialError::Failed(format!("server: {loop_error}"))),
        (Err(e), Ok(())) => Err(e),
    }
}

/// Answers control messages until `END`; returns the encoded `REPORT`.
fn control_loop<C: Channel>(control: &mut C, shared: &Shared, n_loops: usize) -> Result<Vec<u8>, TrialError> {
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    let mut usage_start = ProcessUsage::now();
    let mut messages_at_mark = 0;
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
                usage_start = ProcessUsage::now();
                // Relaxed: a count; a message or two in flight at MARK may land on either side.
                messages_at_mark = shared.messages.load(Ordering::Relaxed);
                control.send(&buf[..n])?;
            }
            protocol::END => {
                // Relaxed loads: the counts for the report, as above.
                let messages = shared.messages.load(Ordering::Relaxed) - messages_at_mark;
                let mut extra = std::collections::BTreeMap::new();
                extra.insert("loops".to_owned(), n_loops as f64);
                extra.insert("accepted".to_owned(), shared.accepted.load(Ordering::Relaxed) as f64);
                extra.insert("closed".to_owned(), shared.closed.load(Ordering::Relaxed) as f64);
                let report = PeerReport {
                    rusage: usage_start.until(&ProcessUsage::now()),
                    messages,
                    bytes: 0,
                    extra,
                };
                return Ok(protocol::encode(protocol::REPORT, Some(&report)));
            }
            other => return Err(TrialError::Failed(format!("unexpected control message {other}"))),
        }
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
