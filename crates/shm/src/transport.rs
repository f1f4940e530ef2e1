//! [`ShmTransport`], its listener and its channel: two rings in one memfd, one per direction.
//!
//! # Connection
//!
//! [`ShmTransport::bind`] creates the region (`region` module) and publishes the address
//! `/proc/<pid>/fd/<fd>#<token>`: opening `/proc/PID/fd/N` of a memfd reopens the same memory,
//! for a process of the same user as well as for the creator itself. The token, a random
//! number also stored in the header, tells our endpoint apart from whatever else may later
//! reuse that descriptor number. [`ShmTransport::connect`] opens and checks the region, then
//! claims the client slot with a compare-and-swap of the client pid from 0 (so exactly one
//! peer gets in), fills in its wait strategy, stores its real pid and wakes the listener's
//! futex on that word. [`ShmListener::accept`] waits
//! on it, then closes its descriptor: from then on the memory lives only in the two mappings,
//! and goes away with them, even if both processes are killed.
//!
//! # Messages
//!
//! A message is a record (`ring` module, "Records and commit words"): a 16-byte header (commit
//! word and length), the message's bytes, and padding to the next cache line, written into the
//! ring as a byte stream that wraps around the end of the data area. A record that fits the
//! free space is written whole and committed by its commit word, which is what the receiver
//! polls, so a small message arrives on the very cache lines the receiver is watching. A larger
//! one (up to any size, however small the ring) is streamed: its header is committed as
//! "pieces follow", then the sender publishes a piece through `tail` as soon as space frees up
//! and the receiver copies each piece out and releases it right away.
//!
//! A channel's sending half owns one ring's producer and its receiving half the other ring's
//! consumer, so `Channel::split` gives them to two threads with no lock between them.
//!
//! # The bare loop
//!
//! `Channel::bare` is the minimal loop the rings are measured against: one slot per direction
//! (`region::Slot`) carrying the same bytes and a sequence word, no record header, no commit
//! key, no padding. The writer waits until the reader acknowledged its previous hand-off
//! (`ack == seq`), copies up to a slot of bytes in, stores `len` and publishes `seq + 1`; the
//! reader waits for `seq`, copies out and publishes `ack`. A side writes only its own slot's
//! words, and its `ack` of the other slot shares the line it writes its data on, so a small
//! round trip moves one cache line each way. Waiting follows the channel's strategy on the
//! rings' doorbells (idle while the bare loop runs), so `hybrid` and `futex` sleep as usual.

use std::fs::File;
use std::time::{Duration, Instant};

use ipcbench_core::transport::{Halves, RecvHalf, SendHalf};
use ipcbench_core::{Bare, BareIo, Channel, Endpoint, Listener, Options, Transport, TransportError};

use crate::memfd;
use crate::peer::PeerWatch;
use crate::region::{MEMFD_NAME, MappedRing, OpenError, Region, Role, Slot};
use crate::ring::{
    Capacity, Consumer, FIRST_LINE_BODY, Header, Producer, RECORD_HEADER_BYTES, TWO_LINE_BODY, commit_key, record_bytes,
};
use crate::slot::{BadHandOff, SlotState, Slots};
use crate::sync::{Arc, Ordering};
use crate::wait::{self, Peer, WaitStrategy};

/// Ring size when none is configured: 4 MiB per direction.
pub const DEFAULT_RING_BYTES: usize = 4 << 20;
/// The smallest ring: one page. Smaller requests are rounded up to it.
pub const MIN_RING_BYTES: usize = 4096;
/// The largest ring: 1 GiB per direction.
pub const MAX_RING_BYTES: usize = 1 << 30;
/// The client pid slot while a client is claiming it (no real pid is this large).
const CLAIMING: u32 = u32::MAX;
/// Pause between two connection attempts.
const CONNECT_RETRY: Duration = Duration::from_millis(5);

/// Shared-memory transport: a lock-free single-producer single-consumer ring per direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShmTransport {
    /// Size of each ring's data area in bytes. Rounded up to a power of two of at least
    /// [`MIN_RING_BYTES`]; [`Channel::applied_options`] records the size actually mapped. The
    /// connecting side uses whatever size the listener mapped.
    pub ring_bytes: usize,
    /// How this side waits for data or space.
    pub wait: WaitStrategy,
}

impl Default for ShmTransport {
    fn default() -> Self {
        ShmTransport::new(DEFAULT_RING_BYTES, WaitStrategy::default())
    }
}

impl ShmTransport {
    /// A transport with rings of `ring_bytes` and the `wait` strategy.
    pub fn new(ring_bytes: usize, wait: WaitStrategy) -> Self {
        ShmTransport { ring_bytes, wait }
    }

    /// A transport with rings of `ring_bytes` and the default strategy (spin).
    pub fn with_capacity(ring_bytes: usize) -> Self {
        ShmTransport::new(ring_bytes, WaitStrategy::default())
    }

    /// The same transport with another wait strategy.
    pub fn with_wait(self, wait: WaitStrategy) -> Self {
        ShmTransport { wait, ..self }
    }

    /// The ring size [`Transport::bind`] maps for `ring_bytes`: the next power of two, and at
    /// least [`MIN_RING_BYTES`].
    ///
    /// # Errors
    ///
    /// `BadOption` for 0 or more than [`MAX_RING_BYTES`].
    pub fn mapped_ring_bytes(&self) -> Result<usize, TransportError> {
        if self.ring_bytes == 0 || self.ring_bytes > MAX_RING_BYTES {
            return Err(TransportError::BadOption {
                option: "ring_bytes",
                reason: format!(
                    "{} bytes is outside 1 B ..= {MAX_RING_BYTES} B (1 GiB)",
                    self.ring_bytes
                ),
            });
        }
        Ok(self.ring_bytes.max(MIN_RING_BYTES).next_power_of_two())
    }

    /// One attempt at [`Transport::connect`].
    fn try_connect(&self, address: &Address) -> Result<ShmChannel, Attempt> {
        // No such descriptor (yet, or any more): retry.
        let target = rustix::fs::readlink(address.path.as_str(), Vec::new()).map_err(|_| Attempt::Retry)?;
        // A descriptor number reused for something else: never map it, just retry.
        if !target.to_bytes().starts_with(format!("/memfd:{MEMFD_NAME}").as_bytes()) {
            return Err(Attempt::Retry);
        }
        let file = File::options()
            .read(true)
            .write(true)
            .open(&address.path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Attempt::Retry,
                _ => Attempt::Fail(TransportError::io("open shared memory", e)),
            })?;
        let region = Region::open(&file, address.token).map_err(|e| match e {
            OpenError::NotOurs(_) => Attempt::Retry,
            OpenError::Incompatible(reason) => Attempt::Fail(TransportError::BadAddress {
                address: address.text.clone(),
                reason,
            }),
            OpenError::Map(source) => Attempt::Fail(TransportError::io("map shared memory", source)),
        })?;
        drop(file); // The mapping keeps the memory; the listener's descriptor keeps the address.

        let me = region.side(Role::Client);
        // Claim the slot first, so a losing client never touches the winner's fields. Relaxed
        // (both orderings): the claim publishes nothing; the Release store below does. A taken
        // slot means another client got in first; retrying runs into the timeout.
        me.pid
            .compare_exchange(0, CLAIMING, Ordering::Relaxed, Ordering::Relaxed)
            .map_err(|_| Attempt::Retry)?;
        // Relaxed: published by the Release store of our pid below.
        me.wait.store(self.wait.code(), Ordering::Relaxed);
        // Release pairs with the Acquire load of the client pid in `ShmListener::accept`: the
        // listener sees our wait strategy.
        me.pid.store(std::process::id(), Ordering::Release);
        wait::futex_wake(&me.pid);

        let server = region.side(Role::Server);
        // Relaxed (both): written by the creator before its Release store of the magic, which
        // `Region::open` loaded with Acquire.
        let server_pid = server.pid.load(Ordering::Relaxed);
        let server_wait = server.wait.load(Ordering::Relaxed);
        Ok(ShmChannel::new(
            Arc::new(region),
            Role::Client,
            self.wait,
            PeerWatch::new(server_pid),
            WaitStrategy::code_may_sleep(server_wait),
        ))
    }
}

/// The outcome of a failed connection attempt.
enum Attempt {
    /// The endpoint is not (yet, or no longer) there: try again until the timeout.
    Retry,
    /// It is there and unusable.
    Fail(TransportError),
}

/// A parsed `/proc/<pid>/fd/<fd>#<token>` address.
#[derive(Debug)]
struct Address {
    text: String,
    path: String,
    token: u64,
}

impl Address {
    fn parse(text: &str) -> Result<Address, TransportError> {
        let parsed = memfd::ProcAddress::parse(text).map_err(|reason| TransportError::BadAddress {
            address: text.to_owned(),
            reason,
        })?;
        Ok(Address {
            text: text.to_owned(),
            path: parsed.path,
            token: parsed.token,
        })
    }
}

impl Transport for ShmTransport {
    type Listener = ShmListener;
    type Channel = ShmChannel;

    fn name(&self) -> &'static str {
        "shm"
    }

    /// Only `spin` busy-polls; `hybrid` spins for at most [`wait::HYBRID_SPIN`] per wait.
    fn busy_polls(&self) -> bool {
        self.wait == WaitStrategy::Spin
    }

    /// Creates the memfd and maps it. The endpoint's name and directory are not used: a
    /// memfd has no name, so there is nothing to clean up on disk.
    fn bind(&self, _endpoint: &Endpoint) -> Result<ShmListener, TransportError> {
        let ring_bytes = self.mapped_ring_bytes()?;
        let capacity = Capacity::new(ring_bytes as u64).expect("mapped_ring_bytes is a power of two");
        let token = memfd::random_token();
        let pid = std::process::id();
        let (region, file) = Region::create(capacity, token, (pid, self.wait.code()))
            .map_err(|e| TransportError::io("create shared memory", e))?;
        let address = memfd::address_of(&file, token);
        Ok(ShmListener {
            region: Arc::new(region),
            file: Some(file),
            address,
            wait: self.wait,
        })
    }

    fn connect(&self, address: &str, timeout: Duration) -> Result<ShmChannel, TransportError> {
        let address = Address::parse(address)?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_connect(&address) {
                Ok(channel) => return Ok(channel),
                Err(Attempt::Fail(err)) => return Err(err),
                Err(Attempt::Retry) if Instant::now() >= deadline => {
                    return Err(TransportError::ConnectTimeout {
                        endpoint: address.text,
                        waited: timeout,
                    });
                }
                Err(Attempt::Retry) => std::thread::sleep(CONNECT_RETRY),
            }
        }
    }
}

/// The listening half: the mapped region and the descriptor its address names.
///
/// Dropping it before [`ShmListener::accept`] succeeds marks the server side closed, so a
/// client that got in meanwhile sees `Disconnected` instead of waiting forever.
#[derive(Debug)]
pub struct ShmListener {
    region: Arc<Region>,
    /// The memfd; `None` once a peer was accepted (the address then stops working).
    file: Option<File>,
    address: String,
    wait: WaitStrategy,
}

impl Listener for ShmListener {
    type Channel = ShmChannel;

    /// `/proc/<pid>/fd/<fd>#<token>`, where `<token>` is 16 hexadecimal digits.
    fn address(&self) -> String {
        self.address.clone()
    }

    fn accept(&mut self, timeout: Duration) -> Result<ShmChannel, TransportError> {
        let timed_out = || TransportError::ConnectTimeout {
            endpoint: self.address.clone(),
            waited: timeout,
        };
        if self.file.is_none() {
            return Err(timed_out()); // The one peer was already accepted.
        }
        let client = self.region.side(Role::Client);
        let deadline = Instant::now() + timeout;
        let client_pid = loop {
            // Acquire pairs with the Release store of the pid in `connect`: the client's wait
            // strategy, stored before it, is visible.
            let pid = client.pid.load(Ordering::Acquire);
            if pid != 0 && pid != CLAIMING {
                break pid;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(timed_out());
            }
            // Sleeps only while the slot is empty; a claim in progress takes microseconds.
            wait::futex_wait(&client.pid, 0, (deadline - now).min(wait::SLEEP_TIMEOUT));
        };
        // Relaxed: published by the pid's Release store, which the Acquire load above saw.
        let client_wait = client.wait.load(Ordering::Relaxed);
        self.file = None;
        Ok(ShmChannel::new(
            Arc::clone(&self.region),
            Role::Server,
            self.wait,
            PeerWatch::new(client_pid),
            WaitStrategy::code_may_sleep(client_wait),
        ))
    }
}

impl Drop for ShmListener {
    fn drop(&mut self) {
        if self.file.is_some() {
            close_side(&self.region, Role::Server);
        }
    }
}

/// Marks `role` closed and wakes every sleeper of the region.
fn close_side(region: &Region, role: Role) {
    // Release pairs with the Acquire load in `Peer::closed`: everything this side published
    // is visible to a peer that sees the flag.
    region.side(role).closed.store(1, Ordering::Release);
    for idx in 0..2 {
        let ring = region.ring_header(idx);
        // `wait::ring` fences (SeqCst) before it looks for a sleeper, the waker's half of the
        // doorbell handshake whose sleeper's half checks `closed` after announcing itself.
        wait::ring(&ring.data_bell.0);
        wait::ring(&ring.space_bell.0);
    }
}

/// One end of a shared-memory connection.
///
/// Its sending half owns the producer of one ring, its receiving half the consumer of the
/// other; they share nothing mutable, so [`Channel::split`] hands them to two threads.
#[derive(Debug)]
pub struct ShmChannel {
    tx: TxSide,
    rx: RxSide,
    link: Link,
    bare: SlotState,
}

/// What both halves of a channel read: the mapping, who we are and how the peer waits.
#[derive(Debug)]
struct Link {
    region: Arc<Region>,
    role: Role,
    wait: WaitStrategy,
    watch: PeerWatch,
    /// False when the peer spins (never sleeps), so publishing needs no doorbell.
    peer_sleeps: bool,
    /// The key of both rings' commit words (from the region's token).
    key: u64,
}

impl Link {
    fn peer(&self) -> Peer<'_> {
        Peer {
            state: self.region.side(self.role.peer()),
            watch: &self.watch,
        }
    }
}

/// The sending half: the producer of the ring this side writes.
#[derive(Debug)]
struct TxSide {
    producer: Producer<MappedRing>,
}

/// The receiving half: the consumer of the ring this side reads.
#[derive(Debug)]
struct RxSide {
    consumer: Consumer<MappedRing>,
}

impl ShmChannel {
    fn new(region: Arc<Region>, role: Role, wait: WaitStrategy, watch: PeerWatch, peer_sleeps: bool) -> Self {
        // Spinning while the peer needs our only core just burns the time slice it needs:
        // `hybrid` then waits like `futex`. (`spin` on a shared core is refused by the harness.)
        let wait = if wait == WaitStrategy::Hybrid && watch.shares_our_only_core() {
            WaitStrategy::Futex
        } else {
            wait
        };
        // SAFETY: each role is held by one channel: the server's by the channel `accept` hands
        // out once (it then drops the descriptor), the client's by the one `connect` whose
        // compare-and-swap of the client pid succeeded. A role produces only into `tx_ring` and
        // consumes only from `rx_ring`, and the two roles' rings are crossed, so each ring has
        // one producer and one consumer. The counters start at zero in a fresh memfd: an empty
        // ring.
        let (producer, consumer) = unsafe {
            (
                Producer::new(region.ring(role.tx_ring())),
                Consumer::new(region.ring(role.rx_ring())),
            )
        };
        let key = commit_key(region.token());
        ShmChannel {
            tx: TxSide { producer },
            rx: RxSide { consumer },
            link: Link {
                key,
                region,
                role,
                wait,
                watch,
                peer_sleeps,
            },
            bare: SlotState::default(),
        }
    }
}

impl TxSide {
    fn send(&mut self, link: &Link, msg: &[u8]) -> Result<(), TransportError> {
        let total = record_bytes(msg.len() as u64);
        if total > self.producer.capacity().bytes() {
            return self.send_in_pieces(link, msg);
        }
        // A record that fits the ring goes whole, once there is room: the receiver then reads
        // it by its commit word alone.
        while !self.producer.try_write_record(msg, link.key) {
            self.wait_for_space(link, total)?;
        }
        self.ring_data_bell(link);
        Ok(())
    }

    /// Rings the peer's data doorbell if it may be asleep (after a publication).
    fn ring_data_bell(&self, link: &Link) {
        if link.peer_sleeps {
            wait::ring(&link.region.ring_header(link.role.tx_ring()).data_bell.0);
        }
    }

    /// Publishes what was written and rings the peer's data doorbell if it may be asleep.
    fn publish(&mut self, link: &Link) {
        self.producer.publish();
        self.ring_data_bell(link);
    }

    fn wait_for_space(&mut self, link: &Link, want: u64) -> Result<(), TransportError> {
        let bell = &link.region.ring_header(link.role.tx_ring()).space_bell.0;
        let producer = &mut self.producer;
        wait::wait_until(link.wait, bell, &link.peer(), || producer.free(want) >= want)
    }

    /// Sends a record that does not fit the free space: its header, then its body piece by
    /// piece, then its padding.
    fn send_in_pieces(&mut self, link: &Link, msg: &[u8]) -> Result<(), TransportError> {
        if self.producer.free(RECORD_HEADER_BYTES) < RECORD_HEADER_BYTES {
            self.wait_for_space(link, RECORD_HEADER_BYTES)?;
        }
        self.producer.write_pieces_header(msg.len() as u64, link.key);
        self.publish(link);
        let capacity = self.producer.capacity().bytes() as usize;
        // Body and padding: the padding is skipped over, never written.
        let total = (record_bytes(msg.len() as u64) - RECORD_HEADER_BYTES) as usize;
        let mut sent = 0;
        while sent < total {
            let remaining = total - sent;
            // Whatever fits the ring goes in one piece (the receiver then sees it whole);
            // beyond that, half a ring at a time, so neither side wakes for every few bytes.
            let want = if remaining <= capacity { remaining } else { capacity / 2 } as u64;
            if self.producer.free(want) < want {
                self.wait_for_space(link, want)?;
            }
            let end = sent + (self.producer.free(want) as usize).min(remaining);
            if sent < msg.len() {
                self.producer.write(&msg[sent..end.min(msg.len())]);
            }
            if end > msg.len() {
                self.producer.advance((end - sent.max(msg.len())) as u64);
            }
            self.publish(link);
            sent = end;
        }
        Ok(())
    }
}

impl RxSide {
    fn recv(&mut self, link: &Link, buf: &mut [u8]) -> Result<usize, TransportError> {
        let header = match self.consumer.header(link.key) {
            Some(header) => header,
            None => self.wait_for_record(link)?,
        };
        let (Header::Whole(len) | Header::Pieces(len)) = header;
        if len > buf.len() as u64 {
            // Nothing is consumed, so a retry with a larger buffer would still work.
            return Err(TransportError::MessageTooLarge {
                len: usize::try_from(len).unwrap_or(usize::MAX),
                max: buf.len(),
            });
        }
        if let (Header::Whole(len), Some(first_line)) = (header, buf.first_chunk_mut::<FIRST_LINE_BODY>())
            && len <= FIRST_LINE_BODY as u64
        {
            // A message on the header's line: one copy of a constant size (see `read_small`).
            self.consumer.read_small(len, first_line);
            self.release(link);
            return Ok(len as usize);
        }
        if let (Header::Whole(len), Some(two_lines)) = (header, buf.first_chunk_mut::<TWO_LINE_BODY>())
            && len <= TWO_LINE_BODY as u64
            && self.consumer.read_two_lines(len, two_lines)
        {
            // Two lines in one copy of a constant size (see `read_two_lines`).
            self.release(link);
            return Ok(len as usize);
        }
        let out = &mut buf[..len as usize];
        self.consumer.skip(RECORD_HEADER_BYTES);
        match header {
            Header::Whole(_) => {
                self.consumer.read(out);
                self.consumer.skip(record_bytes(len) - RECORD_HEADER_BYTES - len);
                self.release(link);
            }
            Header::Pieces(_) => {
                // The header's space goes back at once: the sender may need the whole ring
                // for the body.
                self.release(link);
                self.recv_in_pieces(link, out)?;
            }
        }
        Ok(len as usize)
    }

    /// Releases what was read and rings the peer's space doorbell if it may be asleep.
    fn release(&mut self, link: &Link) {
        self.consumer.release();
        if link.peer_sleeps {
            wait::ring(&link.region.ring_header(link.role.rx_ring()).space_bell.0);
        }
    }

    /// Waits until the next record's commit word is there.
    fn wait_for_record(&mut self, link: &Link) -> Result<Header, TransportError> {
        let bell = &link.region.ring_header(link.role.rx_ring()).data_bell.0;
        let consumer = &mut self.consumer;
        let mut header = None;
        wait::wait_until(link.wait, bell, &link.peer(), || {
            header = consumer.header(link.key);
            header.is_some()
        })?;
        header.ok_or(TransportError::Disconnected)
    }

    fn wait_for_data(&mut self, link: &Link, want: u64) -> Result<(), TransportError> {
        let bell = &link.region.ring_header(link.role.rx_ring()).data_bell.0;
        let consumer = &mut self.consumer;
        wait::wait_until(link.wait, bell, &link.peer(), || consumer.available(want) >= want)
    }

    /// Receives the body of a record sent in pieces, then skips its padding.
    fn recv_in_pieces(&mut self, link: &Link, out: &mut [u8]) -> Result<(), TransportError> {
        let mut got = 0;
        while got < out.len() {
            if self.consumer.available(1) == 0 {
                self.wait_for_data(link, 1)?;
            }
            let n = (self.consumer.available(1) as usize).min(out.len() - got);
            self.consumer.read(&mut out[got..got + n]);
            self.release(link);
            got += n;
        }
        let mut padding = record_bytes(out.len() as u64) - RECORD_HEADER_BYTES - out.len() as u64;
        while padding > 0 {
            if self.consumer.available(1) == 0 {
                self.wait_for_data(link, 1)?;
            }
            let n = self.consumer.available(1).min(padding);
            self.consumer.skip(n);
            self.release(link);
            padding -= n;
        }
        Ok(())
    }
}

impl Channel for ShmChannel {
    fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        self.tx.send(&self.link, msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.rx.recv(&self.link, buf)
    }

    /// `ring_bytes`: the size of each ring as mapped; `wait`: this side's strategy.
    fn applied_options(&self) -> Options {
        let mut options = Options::new();
        options.insert("ring_bytes".into(), self.link.region.capacity().bytes().into());
        options.insert("wait".into(), self.link.wait.as_str().into());
        options
    }

    /// Always possible: the halves own different rings and share only read-only state.
    fn split(&mut self) -> Option<Halves<'_>> {
        let link = &self.link;
        Some((
            Box::new(ShmSendHalf { tx: &mut self.tx, link }),
            Box::new(ShmRecvHalf { rx: &mut self.rx, link }),
        ))
    }

    /// One slot per direction with a sequence word (module docs, "The bare loop").
    fn bare(&mut self) -> Option<Bare<'_>> {
        let link = &self.link;
        Some(Box::new(ShmBare {
            state: &mut self.bare,
            link,
            mine: link.region.slot(link.role.tx_ring()),
            theirs: link.region.slot(link.role.rx_ring()),
        }))
    }
}

/// The bare loop of a [`ShmChannel`] (module docs, "The bare loop"; protocol in `slot`).
struct ShmBare<'a> {
    state: &'a mut SlotState,
    link: &'a Link,
    /// The slot this side writes and the one it reads.
    mine: Slot<'a>,
    theirs: Slot<'a>,
}

/// The two slots as the protocol sees them (a function of the fields, not of the whole
/// [`ShmBare`], so that `state` stays free to borrow mutably).
fn slots_of<'s, 'a>(mine: &'s Slot<'a>, theirs: &'s Slot<'a>) -> Slots<'s, Slot<'a>> {
    Slots {
        mine: mine.header,
        my_data: mine,
        theirs: theirs.header,
        their_data: theirs,
    }
}

impl BareIo for ShmBare<'_> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        // Just before our bytes (`slot` module docs, "When the reader acknowledges").
        self.acknowledge();
        let link = self.link;
        let slots = slots_of(&self.mine, &self.theirs);
        let ring = link.region.ring_header(link.role.tx_ring());
        for piece in bytes.chunks(self.mine.bytes) {
            while !self.state.try_write(&slots, piece) {
                let state = &*self.state;
                wait::wait_until(link.wait, &ring.space_bell.0, &link.peer(), || state.writable(&slots))?;
            }
            if link.peer_sleeps {
                wait::ring(&ring.data_bell.0);
            }
        }
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), TransportError> {
        let link = self.link;
        let slots = slots_of(&self.mine, &self.theirs);
        let ring = link.region.ring_header(link.role.rx_ring());
        let mut filled = 0;
        while filled < buf.len() {
            let ack_pending = self.state.ack_pending();
            let n = self
                .state
                .try_read(&slots, &mut buf[filled..])
                .map_err(|BadHandOff(len)| {
                    TransportError::io(
                        "read bare slot",
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("a hand-off of {len} bytes does not fit the slot"),
                        ),
                    )
                })?;
            if n == 0 {
                // Finding nothing, `try_read` acknowledged what was read; a sleeping writer
                // waits for that.
                if ack_pending && link.peer_sleeps {
                    wait::ring(&ring.space_bell.0);
                }
                let state = &*self.state;
                wait::wait_until(link.wait, &ring.data_bell.0, &link.peer(), || state.readable(&slots))?;
                continue;
            }
            filled += n;
        }
        Ok(())
    }
}

impl ShmBare<'_> {
    /// Acknowledges what was read, if anything, and rings the space doorbell a writer of the
    /// peer's may sleep on waiting for that.
    fn acknowledge(&mut self) {
        if self.state.ack_pending() {
            self.state.flush_ack(&slots_of(&self.mine, &self.theirs));
            if self.link.peer_sleeps {
                wait::ring(&self.link.region.ring_header(self.link.role.rx_ring()).space_bell.0);
            }
        }
    }
}

impl Drop for ShmBare<'_> {
    /// Acknowledges what was read, so that the peer's next hand-off does not wait for our
    /// next use of the slots (`slot` module docs, "When the reader acknowledges").
    fn drop(&mut self) {
        self.acknowledge();
    }
}

/// The sending half of a split [`ShmChannel`].
struct ShmSendHalf<'a> {
    tx: &'a mut TxSide,
    link: &'a Link,
}

impl SendHalf for ShmSendHalf<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        self.tx.send(self.link, msg)
    }
}

/// The receiving half of a split [`ShmChannel`].
struct ShmRecvHalf<'a> {
    rx: &'a mut RxSide,
    link: &'a Link,
}

impl RecvHalf for ShmRecvHalf<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.rx.recv(self.link, buf)
    }
}

impl Drop for ShmChannel {
    fn drop(&mut self) {
        // Every send publishes before it returns, so there is nothing left to flush.
        close_side(&self.link.region, self.link.role);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_bytes_round_up_to_a_power_of_two_of_at_least_a_page() {
        assert_eq!(ShmTransport::with_capacity(1).mapped_ring_bytes().ok(), Some(4096));
        assert_eq!(ShmTransport::with_capacity(5000).mapped_ring_bytes().ok(), Some(8192));
        assert_eq!(ShmTransport::default().mapped_ring_bytes().ok(), Some(4 << 20));
        assert!(ShmTransport::with_capacity(0).mapped_ring_bytes().is_err());
        assert!(
            ShmTransport::with_capacity(MAX_RING_BYTES + 1)
                .mapped_ring_bytes()
                .is_err()
        );
    }

    #[test]
    fn malformed_addresses_are_rejected_at_once() {
        for text in ["", "/proc/1/fd/3", "/tmp/x#00", "/proc/x/fd/3#00", "/proc/1/fd/3#zz"] {
            let started = Instant::now();
            let result = ShmTransport::default().connect(text, Duration::from_secs(5));
            assert!(
                matches!(result, Err(TransportError::BadAddress { .. })),
                "{text}: {result:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(4));
        }
    }

    #[test]
    fn spin_alone_busy_polls() {
        for wait in WaitStrategy::ALL {
            assert_eq!(
                ShmTransport::default().with_wait(wait).busy_polls(),
                wait == WaitStrategy::Spin
            );
        }
    }

    #[test]
    fn only_one_of_two_racing_clients_gets_in() {
        let transport = ShmTransport::new(4096, WaitStrategy::Futex);
        let mut listener = transport
            .bind(&Endpoint::new("race", std::env::temp_dir()))
            .expect("bind");
        let clients: Vec<_> = (0..2)
            .map(|_| {
                let address = listener.address();
                std::thread::spawn(move || transport.connect(&address, Duration::from_millis(300)))
            })
            .collect();
        let mut server = listener.accept(Duration::from_secs(5)).expect("accept");
        let results: Vec<_> = clients.into_iter().map(|c| c.join().expect("client thread")).collect();
        let (mut winners, losers): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
        assert_eq!(winners.len(), 1, "exactly one client connects");
        assert!(matches!(losers[0], Err(TransportError::ConnectTimeout { .. })));
        let mut winner = winners.pop().expect("one winner").expect("connected");
        winner.send(b"first").expect("send");
        let mut buf = [0u8; 8];
        assert_eq!(server.recv(&mut buf).expect("recv"), 5);
        assert!(
            listener.accept(Duration::from_millis(10)).is_err(),
            "one peer per listener"
        );
    }

    #[test]
    fn options_record_the_mapped_ring_and_the_strategy() {
        let transport = ShmTransport::new(5000, WaitStrategy::Hybrid);
        let dir = std::env::temp_dir();
        let mut listener = transport.bind(&Endpoint::new("options", &dir)).expect("bind");
        let client = transport
            .connect(&listener.address(), Duration::from_secs(5))
            .expect("connect");
        let server = listener.accept(Duration::from_secs(5)).expect("accept");
        for channel in [&client, &server] {
            let options = channel.applied_options();
            assert_eq!(options["ring_bytes"], 8192);
            assert_eq!(options["wait"], "hybrid");
        }
    }
}
