//! The balancer process of `balance`: one event loop with the client connections in front and
//! one link to each backend behind.
//!
//! Requests are forwarded whole and unchanged; each backend answers its link in order, so a
//! reply belongs to the oldest request outstanding on that link (a FIFO of client connection
//! slots per link). Which backend a request goes to is the case's [`Policy`]:
//!
//! - `connection`: the backend is chosen when the connection opens (the member holding the
//!   fewest connections) and every request of the connection goes there (L4, sticky);
//! - `round-robin`: each request to the next member;
//! - `client-hash`: member `hash(client) mod n` (a client's id is in every request);
//! - `bounded-hash`: consistent hashing with bounded load: the client's successor on a ring
//!   of [`VNODES`] points per member, skipping members that already have more than
//!   `ceil(1.25 x mean)` of the requests in flight (Mirrokni et al.; HAProxy's
//!   `hash-balance-factor 125`).
//!
//! **Membership change** ([`Change`] from the measuring process): `Add` makes the spare
//! backend a member, `Remove` takes the last member out of the set (its in-flight requests
//! still complete). What happens to open client connections depends on `on_change`:
//! - a leaving member's `connection`-policy connections are closed in both modes;
//! - `rehash`: for `connection`, the fullest members give up connections until every member
//!   holds at most its even share; for the hash policies, every connection whose client's
//!   owner changed is closed (it reconnects and its requests go to the new owner);
//!   `round-robin` has no owners and closes nothing;
//! - `keep`: nothing else is closed.
//!
//! A connection is closed only while it has no request in flight (a busy one is closed right
//! after its reply is written), so a closed connection never leaves a request the store
//! counted but the client was not told of. The measuring process counts the closes as broken
//! connections and reconnects.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use ipcbench_core::event_loop::{EventListener, EventLoopTransport, EventStream};
use ipcbench_core::{Channel, Endpoint, Transport};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::affinity;
use crate::plan::{BOUNDED_LOAD_FACTOR, OnChange, Policy};
use crate::procstat::ProcessUsage;
use crate::protocol::{self, PeerReport, PeerSpec};
use crate::scenario::balance_wire::{self, BUCKET_NS, BalancerReport, CHANGE, Change, REPLY_BYTES, WINDOW_END};
use crate::scenario::echo_server::{flush, send_bytes};
use crate::scenario::fleet::{self, Accepted, BACKLOG, Listening};
use crate::session::{TrialError, error_chain};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Tokens of backend links count down from here.
const LINK_BASE: usize = usize::MAX - 16;
/// Ring points per member of `bounded-hash`.
pub const VNODES: u64 = 64;
/// How long connecting to the backends may take.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);

/// A command from the control thread to the loop.
enum Command {
    Mark,
    WindowEnd,
    Change(Change),
    Stop,
}

/// Counts the control thread reads while the loop runs.
#[derive(Debug, Default)]
struct Shared {
    /// Client connections accepted. Relaxed: a count.
    accepted: AtomicU64,
    /// Client connections the client closed. Relaxed: a count.
    closed: AtomicU64,
    /// Requests forwarded between `MARK` and `WINDOW_END`. Relaxed: a count.
    in_window: AtomicU64,
    /// Set once the loop failed (Relaxed: the message itself is behind the mutex).
    failed: AtomicBool,
    error: Mutex<Option<String>>,
}

/// A client connection as the balancer sees it.
struct ClientConn {
    stream: EventStream,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// The client id of its requests, once one arrived.
    client_id: Option<u64>,
    /// The backend of a `connection`-policy connection.
    bound: Option<usize>,
    /// A request of this connection is at a backend.
    busy: bool,
    /// Close as soon as it is idle and flushed (a membership change moved it).
    closing: bool,
}

/// A link to one backend.
struct BackendLink {
    stream: EventStream,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Client slots of the requests outstanding on this link, oldest first.
    waiting: VecDeque<usize>,
}

/// Serves one trial as the balancer.
///
/// # Errors
/// A message for the parent's record.
pub(crate) fn serve<T: Transport>(
    transport: &T,
    spec: &PeerSpec,
    work_dir: &std::path::Path,
    backends: &[String],
    n_members: usize,
) -> Result<(), TrialError> {
    let case = &spec.case;
    let balance = case
        .balance
        .clone()
        .ok_or_else(|| TrialError::Failed("the balancer's case has no balance options".into()))?;
    let (mut control, ready) = fleet::connect_control(transport, spec, case.placement.server, "balancer")?;
    let capability = transport
        .event_loop()
        .ok_or_else(|| TrialError::Unsupported(format!("`{}` has no event-loop capability", transport.name())))?;
    let connections = case.connections.unwrap_or(crate::plan::DEFAULT_BALANCE_CONNECTIONS);
    crate::fdlimit::ensure_open_files(connections + backends.len() as u64)
        .map_err(|e| TrialError::Failed(format!("balancer: {e}")))?;
    let poll = Poll::new().map_err(|e| TrialError::Failed(format!("cannot create an event loop: {e}")))?;
    let links = connect_links(capability, backends, &poll).map_err(TrialError::Failed)?;
    let endpoint = Endpoint::new(format!("case{}-balancer-{}", case.index, std::process::id()), work_dir);
    let listener = capability.listen_many(&endpoint, BACKLOG)?;
    let address = listener.address();
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| TrialError::Failed(format!("waker: {e}")))?);
    let (commands, inbox) = unbounded();
    let shared = Arc::new(Shared::default());
    let mut state = Balancer {
        poll,
        listener,
        links,
        clients: Vec::new(),
        free: Vec::new(),
        members: (0..n_members).collect(),
        policy: balance.policy,
        on_change: balance.on_change,
        ring: Vec::new(),
        in_flight: vec![0; backends.len()],
        bound_count: vec![0; backends.len()],
        next_rr: 0,
        message_bytes: case.message_bytes as usize,
        shared: Arc::clone(&shared),
        mark: None,
        window_open: false,
        forwarded: vec![0; backends.len()],
        buckets: Vec::new(),
        changes_ns: Vec::new(),
        closed_for_change: 0,
        orphan_replies: 0,
        scratch: vec![0u8; 64 * 1024],
    };
    state.rebuild_ring();
    let core = case.placement.server;
    let thread = thread::Builder::new()
        .name("balancer".into())
        .spawn(move || {
            let result = state.run(&inbox, core);
            (state, result)
        })
        .map_err(|e| TrialError::Failed(format!("cannot start the balancer loop: {e}")))?;
    fleet::announce(&mut control, &ready, &Listening::one(address))?;
    let result = control_loop(&mut control, &shared, &commands, &waker);
    let _ = commands.send(Command::Stop);
    let _ = waker.wake();
    let (state, loop_result) = thread
        .join()
        .map_err(|_| TrialError::Failed("the balancer's event loop panicked".into()))?;
    loop_result.map_err(|e| TrialError::Failed(format!("balancer: {e}")))?;
    let mut report = result?;
    report.forwarded = state.forwarded.clone();
    report.buckets = state.buckets.clone();
    report.members = state.members.clone();
    report.changes_ns = state.changes_ns.clone();
    report.closed_for_change = state.closed_for_change;
    report.orphan_replies = state.orphan_replies;
    report.accepted = shared.accepted.load(Ordering::Relaxed);
    control.send(&protocol::encode(protocol::REPORT, Some(&report)))?;
    Ok(())
}

/// Opens one link per backend and waits until each is connected.
fn connect_links(
    capability: &dyn EventLoopTransport,
    backends: &[String],
    poll: &Poll,
) -> Result<Vec<BackendLink>, String> {
    let deadline = Instant::now() + LINK_TIMEOUT;
    let mut links = Vec::new();
    for (idx, address) in backends.iter().enumerate() {
        let mut stream = capability
            .connect_nonblocking(address)
            .map_err(|e| format!("cannot connect to backend {idx} at {address}: {}", error_chain(&e)))?;
        poll.registry()
            .register(
                &mut stream,
                Token(LINK_BASE - idx),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("cannot register backend link {idx}: {e}"))?;
        while !stream.is_connected() {
            if let Ok(Some(e)) | Err(e) = stream.take_error() {
                return Err(format!("backend {idx} at {address}: {e}"));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "backend {idx} at {address} did not accept within {LINK_TIMEOUT:?}"
                ));
            }
            thread::sleep(Duration::from_millis(1));
        }
        links.push(BackendLink {
            stream,
            rx: Vec::new(),
            tx: Vec::new(),
            waiting: VecDeque::new(),
        });
    }
    Ok(links)
}

/// Answers control messages until `END`; returns the report without the loop's part.
fn control_loop<C: Channel>(
    control: &mut C,
    shared: &Shared,
    commands: &Sender<Command>,
    waker: &Waker,
) -> Result<BalancerReport, TrialError> {
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    let mut usage_start = ProcessUsage::now();
    let mut usage = None;
    let send = |command: Command| -> Result<(), TrialError> {
        commands
            .send(command)
            .map_err(|_| TrialError::Failed("the balancer's event loop is gone".into()))?;
        waker
            .wake()
            .map_err(|e| TrialError::Failed(format!("cannot wake the balancer's loop: {e}")))
    };
    loop {
        let n = control.recv(&mut buf)?;
        // Relaxed: the message is read under the mutex.
        if shared.failed.load(Ordering::Relaxed) {
            let message = shared.error.lock().unwrap_or_else(|e| e.into_inner()).clone();
            return Err(TrialError::Failed(format!("balancer: {}", message.unwrap_or_default())));
        }
        let Some((command, body)) = protocol::decode(&buf[..n]) else {
            return Err(TrialError::Failed("data message on the control channel".into()));
        };
        match command {
            fleet::ACCEPTED => {
                // Relaxed: counts, possibly a moment old; the client polls again.
                let answer = Accepted {
                    accepted: shared.accepted.load(Ordering::Relaxed),
                    closed: shared.closed.load(Ordering::Relaxed),
                };
                control.send(&protocol::encode(fleet::ACCEPTED, Some(&answer)))?;
            }
            protocol::MARK => {
                usage_start = ProcessUsage::now();
                send(Command::Mark)?;
                control.send(&buf[..n])?;
            }
            WINDOW_END => {
                usage = Some(usage_start.until(&ProcessUsage::now()));
                send(Command::WindowEnd)?;
            }
            CHANGE => {
                let change: Change = fleet::parse_body(body, "CHANGE")?;
                send(Command::Change(change))?;
            }
            protocol::END => {
                let rusage = usage.unwrap_or_else(|| usage_start.until(&ProcessUsage::now()));
                return Ok(BalancerReport {
                    report: PeerReport {
                        rusage,
                        messages: shared.in_window.load(Ordering::Relaxed),
                        bytes: 0,
                        extra: Default::default(),
                    },
                    ..BalancerReport::default()
                });
            }
            other => return Err(TrialError::Failed(format!("unexpected control message {other}"))),
        }
    }
}

/// A 64-bit mix (SplitMix64's finalizer): spreads client ids and ring points.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A client's place on the ring, in another domain than the members' points (which are
/// `mix` of small numbers too: client 3 must not sit exactly on member 0's third point).
fn client_point(client_id: u64) -> u64 {
    mix(client_id ^ 0xC1E7_5EED_0000_0000)
}

/// The event loop's state.
struct Balancer {
    poll: Poll,
    listener: Box<dyn EventListener>,
    links: Vec<BackendLink>,
    clients: Vec<Option<ClientConn>>,
    free: Vec<usize>,
    /// Backend indices in the set, in the order they joined.
    members: Vec<usize>,
    policy: Policy,
    on_change: OnChange,
    /// `bounded-hash`'s ring: (point, backend), sorted.
    ring: Vec<(u64, usize)>,
    in_flight: Vec<u64>,
    /// Connections bound to each backend (`connection` policy).
    bound_count: Vec<u64>,
    next_rr: usize,
    message_bytes: usize,
    shared: Arc<Shared>,
    mark: Option<Instant>,
    window_open: bool,
    forwarded: Vec<u64>,
    buckets: Vec<Vec<u64>>,
    changes_ns: Vec<u64>,
    closed_for_change: u64,
    orphan_replies: u64,
    scratch: Vec<u8>,
}

impl Balancer {
    fn run(&mut self, inbox: &Receiver<Command>, core: usize) -> Result<(), String> {
        let result = self.run_inner(inbox, core);
        if let Err(e) = &result {
            *self.shared.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
            // Relaxed: the message is behind the mutex.
            self.shared.failed.store(true, Ordering::Relaxed);
        }
        result
    }

    fn run_inner(&mut self, inbox: &Receiver<Command>, core: usize) -> Result<(), String> {
        affinity::pin_current_thread(core)?;
        self.poll
            .registry()
            .register(self.listener.source(), LISTENER, Interest::READABLE)
            .map_err(|e| format!("cannot register the listener: {e}"))?;
        let mut events = Events::with_capacity(1024);
        loop {
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("poll failed: {e}")),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all()?,
                    WAKER => {
                        while let Ok(command) = inbox.try_recv() {
                            match command {
                                Command::Mark => {
                                    self.mark = Some(Instant::now());
                                    self.window_open = true;
                                }
                                Command::WindowEnd => self.window_open = false,
                                Command::Change(change) => self.change(change),
                                Command::Stop => return Ok(()),
                            }
                        }
                    }
                    Token(t) if t > LINK_BASE - self.links.len() && t <= LINK_BASE => {
                        let backend = LINK_BASE - t;
                        if event.is_writable() {
                            let link = &mut self.links[backend];
                            flush(&mut link.stream, &mut link.tx)
                                .map_err(|e| format!("backend {backend}: write failed: {e}"))?;
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_backend_readable(backend)?;
                        }
                    }
                    Token(idx) => {
                        if event.is_writable() {
                            self.on_client_writable(idx);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_client_readable(idx)?;
                        }
                    }
                }
            }
        }
    }

    fn accept_all(&mut self) -> Result<(), String> {
        while let Some(mut stream) = self
            .listener
            .accept()
            .map_err(|e| format!("accept: {}", error_chain(&e)))?
        {
            let idx = self.free.pop().unwrap_or(self.clients.len());
            self.poll
                .registry()
                .register(&mut stream, Token(idx), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| format!("cannot register a connection: {e}"))?;
            let bound = (self.policy == Policy::Connection).then(|| self.fewest_connections());
            if let Some(b) = bound {
                self.bound_count[b] += 1;
            }
            let conn = ClientConn {
                stream,
                rx: Vec::new(),
                tx: Vec::new(),
                client_id: None,
                bound,
                busy: false,
                closing: false,
            };
            if idx == self.clients.len() {
                self.clients.push(Some(conn));
            } else {
                self.clients[idx] = Some(conn);
            }
            // Relaxed: a count.
            self.shared.accepted.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The member holding the fewest `connection`-policy connections (the first on a tie).
    fn fewest_connections(&self) -> usize {
        *self
            .members
            .iter()
            .min_by_key(|&&b| self.bound_count[b])
            .expect("a balancer has at least one member")
    }

    fn rebuild_ring(&mut self) {
        self.ring = self
            .members
            .iter()
            .flat_map(|&b| (0..VNODES).map(move |v| (mix((b as u64) << 32 | v), b)))
            .collect();
        self.ring.sort_unstable();
    }

    /// The client's owner when load does not matter: what `rehash` compares.
    fn owner(&self, client_id: u64) -> Option<usize> {
        match self.policy {
            Policy::ClientHash => Some(self.members[(mix(client_id) % self.members.len() as u64) as usize]),
            Policy::BoundedHash => {
                let start = self.ring.partition_point(|&(point, _)| point < client_point(client_id));
                Some(self.ring[start % self.ring.len()].1)
            }
            Policy::Connection | Policy::RoundRobin => None,
        }
    }

    /// Where a request of connection `idx` from `client_id` goes now.
    fn route(&mut self, idx: usize, client_id: u64) -> usize {
        match self.policy {
            Policy::Connection => self.clients[idx]
                .as_ref()
                .and_then(|c| c.bound)
                .unwrap_or_else(|| self.fewest_connections()),
            Policy::RoundRobin => {
                self.next_rr = (self.next_rr + 1) % self.members.len();
                self.members[self.next_rr]
            }
            Policy::ClientHash => self.owner(client_id).expect("client-hash has owners"),
            Policy::BoundedHash => {
                let total: u64 = self.members.iter().map(|&b| self.in_flight[b]).sum();
                let cap = (BOUNDED_LOAD_FACTOR * (total + 1) as f64 / self.members.len() as f64).ceil() as u64;
                let start = self.ring.partition_point(|&(point, _)| point < client_point(client_id));
                (0..self.ring.len())
                    .map(|i| self.ring[(start + i) % self.ring.len()].1)
                    .find(|&b| self.in_flight[b] < cap)
                    .unwrap_or(self.ring[start % self.ring.len()].1)
            }
        }
    }

    fn change(&mut self, change: Change) {
        let before: Vec<Option<usize>> = self
            .clients
            .iter()
            .map(|c| c.as_ref().and_then(|c| c.client_id).and_then(|id| self.owner(id)))
            .collect();
        let mut leaving = None;
        match change {
            Change::Add => {
                if let Some(spare) = (0..self.links.len()).find(|b| !self.members.contains(b)) {
                    self.members.push(spare);
                }
            }
            Change::Remove => {
                if self.members.len() > 1 {
                    leaving = self.members.pop();
                }
            }
        }
        self.rebuild_ring();
        if let Some(mark) = self.mark {
            self.changes_ns.push(mark.elapsed().as_nanos() as u64);
        }
        let mut to_close = Vec::new();
        for (idx, conn) in self.clients.iter().enumerate() {
            let Some(conn) = conn else { continue };
            let moved = match self.policy {
                Policy::Connection => leaving.is_some() && conn.bound == leaving,
                Policy::ClientHash | Policy::BoundedHash => {
                    self.on_change == OnChange::Rehash
                        && conn.client_id.and_then(|id| self.owner(id)) != before.get(idx).copied().flatten()
                }
                Policy::RoundRobin => false,
            };
            if moved {
                to_close.push(idx);
            }
        }
        if self.policy == Policy::Connection && self.on_change == OnChange::Rehash {
            // The fullest members give up connections down to the even share.
            let total: u64 = self.members.iter().map(|&b| self.bound_count[b]).sum();
            let share = total.div_ceil(self.members.len() as u64);
            for &b in &self.members {
                let surplus = self.bound_count[b].saturating_sub(share);
                to_close.extend(
                    self.clients
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.as_ref().is_some_and(|c| c.bound == Some(b)))
                        .map(|(idx, _)| idx)
                        .take(surplus as usize),
                );
            }
        }
        for idx in to_close {
            if let Some(Some(conn)) = self.clients.get_mut(idx)
                && !conn.closing
            {
                conn.closing = true;
                self.closed_for_change += 1;
                self.close_if_idle(idx);
            }
        }
    }

    /// Closes connection `idx` if it is marked, has nothing at a backend and nothing unsent.
    fn close_if_idle(&mut self, idx: usize) {
        let Some(Some(conn)) = self.clients.get(idx) else {
            return;
        };
        if !(conn.closing && !conn.busy && conn.tx.is_empty()) {
            return;
        }
        self.drop_client(idx);
    }

    fn drop_client(&mut self, idx: usize) {
        if let Some(mut conn) = self.clients.get_mut(idx).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if let Some(b) = conn.bound {
                self.bound_count[b] -= 1;
            }
            self.free.push(idx);
        }
    }

    fn on_client_writable(&mut self, idx: usize) {
        let Some(Some(conn)) = self.clients.get_mut(idx) else {
            return;
        };
        if flush(&mut conn.stream, &mut conn.tx).is_err() {
            self.client_gone(idx);
            return;
        }
        self.close_if_idle(idx);
    }

    /// The client closed its connection (or it broke).
    fn client_gone(&mut self, idx: usize) {
        // Relaxed: a count.
        self.shared.closed.fetch_add(1, Ordering::Relaxed);
        if self.clients.get(idx).and_then(Option::as_ref).is_some_and(|c| c.busy) {
            // Its reply will find the slot empty (or reused): mark it so the reply is dropped.
            if let Some(Some(conn)) = self.clients.get_mut(idx) {
                conn.closing = true;
            }
            return;
        }
        self.drop_client(idx);
    }

    fn on_client_readable(&mut self, idx: usize) -> Result<(), String> {
        loop {
            let Some(Some(conn)) = self.clients.get_mut(idx) else {
                return Ok(());
            };
            let read = conn.stream.read(&mut self.scratch);
            match read {
                Ok(0) => {
                    self.client_gone(idx);
                    return Ok(());
                }
                Ok(n) => {
                    let mut requests = Vec::new();
                    let mut rx = std::mem::take(&mut conn.rx);
                    balance_wire::frames(
                        &mut rx,
                        &self.scratch[..n],
                        self.message_bytes,
                        |body| {
                            requests.push(body.to_vec());
                            Ok(())
                        },
                        |len| {
                            format!(
                                "connection {idx}: request of {len} bytes, expected {}",
                                self.message_bytes
                            )
                        },
                    )?;
                    if let Some(Some(conn)) = self.clients.get_mut(idx) {
                        conn.rx = rx;
                    }
                    for body in requests {
                        self.forward(idx, &body)?;
                    }
                    if n < self.scratch.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.client_gone(idx);
                    return Ok(());
                }
            }
        }
    }

    fn forward(&mut self, idx: usize, body: &[u8]) -> Result<(), String> {
        let (client_id, _) = balance_wire::two_words(body);
        let backend = self.route(idx, client_id);
        if let Some(Some(conn)) = self.clients.get_mut(idx) {
            conn.client_id = Some(client_id);
            conn.busy = true;
        }
        let link = &mut self.links[backend];
        let header = (body.len() as u32).to_le_bytes();
        send_bytes(&mut link.stream, &mut link.tx, &header, body)
            .map_err(|e| format!("backend {backend}: write failed: {e}"))?;
        link.waiting.push_back(idx);
        self.in_flight[backend] += 1;
        if self.window_open {
            self.forwarded[backend] += 1;
            // Relaxed: a count.
            self.shared.in_window.fetch_add(1, Ordering::Relaxed);
            if let Some(mark) = self.mark {
                let bucket = (mark.elapsed().as_nanos() as u64 / BUCKET_NS) as usize;
                if self.buckets.len() <= bucket {
                    self.buckets.resize(bucket + 1, vec![0; self.links.len()]);
                }
                self.buckets[bucket][backend] += 1;
            }
        }
        Ok(())
    }

    fn on_backend_readable(&mut self, backend: usize) -> Result<(), String> {
        loop {
            let link = &mut self.links[backend];
            match link.stream.read(&mut self.scratch) {
                Ok(0) => return Err(format!("backend {backend} closed its link")),
                Ok(n) => {
                    let mut replies = Vec::new();
                    balance_wire::frames(
                        &mut link.rx,
                        &self.scratch[..n],
                        REPLY_BYTES,
                        |body| {
                            replies.push(balance_wire::reply_frame(
                                balance_wire::two_words(body).0,
                                balance_wire::two_words(body).1,
                            ));
                            Ok(())
                        },
                        |len| format!("backend {backend}: reply of {len} bytes, expected {REPLY_BYTES}"),
                    )?;
                    for frame in replies {
                        let Some(idx) = self.links[backend].waiting.pop_front() else {
                            return Err(format!("backend {backend} sent a reply no request waits for"));
                        };
                        self.in_flight[backend] -= 1;
                        self.deliver(idx, &frame);
                    }
                    if n < self.scratch.len() {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("backend {backend}: read failed: {e}")),
            }
        }
    }

    fn deliver(&mut self, idx: usize, frame: &[u8]) {
        let Some(Some(conn)) = self.clients.get_mut(idx) else {
            self.orphan_replies += 1;
            return;
        };
        conn.busy = false;
        if send_bytes(&mut conn.stream, &mut conn.tx, frame, &[]).is_err() {
            self.orphan_replies += 1;
            self.drop_client(idx);
            return;
        }
        self.close_if_idle(idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_spreads_clients_over_its_members() {
        let mut ring: Vec<(u64, usize)> = (0..4usize)
            .flat_map(|b| (0..VNODES).map(move |v| (mix((b as u64) << 32 | v), b)))
            .collect();
        ring.sort_unstable();
        let mut counts = [0; 4];
        for id in 0..4000u64 {
            let start = ring.partition_point(|&(point, _)| point < client_point(id));
            counts[ring[start % ring.len()].1] += 1;
        }
        // 64 points per member: each owns roughly a quarter of the ring.
        assert!(counts.iter().all(|&n| (600..1400).contains(&n)), "{counts:?}");
    }

    #[test]
    fn mix_spreads_neighbouring_ids() {
        let buckets: Vec<u64> = (0..4000u64).fold(vec![0; 4], |mut acc, id| {
            acc[(mix(id) % 4) as usize] += 1;
            acc
        });
        assert!(buckets.iter().all(|&n| (800..1200).contains(&n)), "{buckets:?}");
    }
}
