//! The shared mapping: one memfd holding a header and the data areas of two rings.
//!
//! # Layout
//!
//! All offsets are fixed, so each process computes them from the mapping's base address (the
//! two processes map the memfd at different addresses; nothing in it is a pointer):
//!
//! ```text
//! [0, 4096)                     SharedHeader
//!     control                   magic, version, ring_bytes, token      (one cache line)
//!     sides[0], sides[1]        server, client: pid, wait strategy, closed flag
//!     rings[0], rings[1]        counters (tail, head) and doorbells (data, space)
//! [4096, 4096 + cap)            data area of ring 0: client -> server
//! [4096 + cap, 4096 + 2 cap)    data area of ring 1: server -> client
//! [4096 + 2 cap, + slot area)   bare slot 0, written by the client
//! [.., + slot area)             bare slot 1, written by the server
//! ```
//!
//! `cap` is a power of two of at least 4 KiB, so both data areas start on a page boundary.
//! A bare slot (the bare loop's, see `transport`) is a [`SlotHeader`] (`seq`, `len`, `ack`)
//! followed at once by `slot` data bytes, `slot = min(cap, 4 MiB)`, in an area of `slot + 4096`
//! bytes; a small message shares the header's cache line, as it would in a minimal loop.
//!
//! # Creation and opening
//!
//! [`Region::create`] makes a memfd (`memfd` module: no name in `/dev/shm`, so a killed
//! process leaves nothing behind; its size sealed, so no one can truncate it under a
//! mapping), maps it, fills in the header and stores `magic` last with `Release`. [`Region::open`] maps a
//! descriptor opened from the creator's address, loads `magic` with `Acquire` and only then
//! trusts the other fields, checking version, token and the capacity against the mapping's
//! length. A mismatch is an error, never a panic.

use std::fs::File;
use std::io;
use std::ptr::{self, NonNull};

use crate::doorbell::Doorbell;
use crate::memfd;
use crate::ring::{CachePadded, Capacity, Counters, Storage};
use crate::slot::{SlotData, SlotHeader};
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering};
use memmap2::{MmapOptions, MmapRaw};

/// "IPCBSHM" and a zero byte, read as a little-endian `u64`.
const MAGIC: u64 = u64::from_le_bytes(*b"IPCBSHM\0");
/// Bumped whenever the layout changes.
const VERSION: u32 = 3;
/// Bytes before the first data area: the header, padded to a page.
pub(crate) const HEADER_BYTES: u64 = 4096;
/// The name every memfd of ours carries (it shows in `/proc/PID/fd` as `/memfd:NAME`).
pub(crate) const MEMFD_NAME: &str = "ipcbench-shm";

/// The fields fixed at creation. Atomics only so that no byte of the shared mapping is ever
/// accessed non-atomically while another process might write it.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Control {
    /// [`MAGIC`] once the creator has filled in everything else.
    magic: AtomicU64,
    version: AtomicU32,
    _reserved: AtomicU32,
    /// Capacity of each ring's data area.
    ring_bytes: AtomicU64,
    /// A random number also carried in the address, so a reused descriptor number that now
    /// names another endpoint's memfd is not mistaken for ours.
    token: AtomicU64,
}

/// What one side (server or client) tells the other about itself.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SideState {
    /// Process id; 0 until the side is there. The client claims its slot with a CAS
    /// (`transport` module docs).
    pub(crate) pid: AtomicU32,
    /// The side's wait strategy code (`WaitStrategy::code`): whether it may sleep on a futex.
    pub(crate) wait: AtomicU32,
    /// 1 once the side has dropped its end.
    pub(crate) closed: AtomicU32,
}

/// The shared state of one ring.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct RingHeader {
    pub(crate) counters: Counters,
    /// The consumer sleeps here waiting for data; the producer rings after publishing.
    pub(crate) data_bell: CachePadded<Doorbell>,
    /// The producer sleeps here waiting for space; the consumer rings after releasing.
    pub(crate) space_bell: CachePadded<Doorbell>,
}

/// The largest bare slot: larger writes go through it in pieces.
const MAX_SLOT_BYTES: u64 = 4 << 20;
/// Bytes of a [`SlotHeader`]; the slot's data follows at once.
const SLOT_HEADER_BYTES: u64 = 24;

const _: () = assert!(size_of::<SlotHeader>() as u64 == SLOT_HEADER_BYTES);

/// One bare slot of a [`Region`]: its header and `bytes` data bytes right after it.
///
/// Invariant: both point into the region's mapping, which outlives the borrow `'a`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot<'a> {
    pub(crate) header: &'a SlotHeader,
    pub(crate) data: NonNull<u8>,
    pub(crate) bytes: usize,
}

/// The first [`HEADER_BYTES`] of the memfd. `#[repr(C)]` so both processes read one layout.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct SharedHeader {
    control: CachePadded<Control>,
    sides: [CachePadded<SideState>; 2],
    rings: [RingHeader; 2],
}

const _: () = assert!(size_of::<SharedHeader>() <= HEADER_BYTES as usize);
const _: () = assert!(align_of::<SharedHeader>() <= 4096, "a mapping is page aligned");

/// Which end of the connection a process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Made the region ([`Region::create`]) and accepted the peer.
    Server,
    /// Opened the region from its address.
    Client,
}

impl Role {
    fn side_idx(self) -> usize {
        match self {
            Role::Server => 0,
            Role::Client => 1,
        }
    }

    /// The other role.
    pub(crate) fn peer(self) -> Role {
        match self {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        }
    }

    /// The ring this role produces into.
    pub(crate) fn tx_ring(self) -> usize {
        match self {
            Role::Client => 0,
            Role::Server => 1,
        }
    }

    /// The ring this role consumes from.
    pub(crate) fn rx_ring(self) -> usize {
        self.peer().tx_ring()
    }
}

/// Why [`Region::open`] refused a descriptor.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenError {
    /// Not (or not yet, or no longer) the endpoint we look for: worth retrying.
    #[error("{0}")]
    NotOurs(&'static str),
    /// Our endpoint, but unusable: retrying will not help.
    #[error("{0}")]
    Incompatible(String),
    /// The OS refused to map it.
    #[error("mapping the memfd failed")]
    Map(#[source] io::Error),
}

/// One mapping of the shared memfd.
///
/// Invariant: the mapping is `Region::len_for(capacity)` bytes (header, two rings, two bare slots), starts with an initialized
/// [`SharedHeader`] (the creator wrote `magic` last and the opener checked it), and its
/// size is sealed, so every offset below stays valid for the mapping's life.
#[derive(Debug)]
pub(crate) struct Region {
    map: MmapRaw,
    capacity: Capacity,
}

impl Region {
    /// The length of a region whose rings hold `capacity` bytes each.
    pub(crate) fn len_for(capacity: Capacity) -> u64 {
        HEADER_BYTES + 2 * capacity.bytes() + 2 * Region::slot_area_bytes(capacity)
    }

    /// Data bytes of each bare slot.
    fn slot_bytes(capacity: Capacity) -> u64 {
        capacity.bytes().min(MAX_SLOT_BYTES)
    }

    /// Bytes of each bare slot's area: header, data and padding to a page.
    fn slot_area_bytes(capacity: Capacity) -> u64 {
        Region::slot_bytes(capacity) + HEADER_BYTES
    }

    /// Creates the memfd, maps it and writes the header for `server`; returns the mapping
    /// and the descriptor (which the address names until the peer is accepted).
    pub(crate) fn create(capacity: Capacity, token: u64, server: (u32, u32)) -> io::Result<(Region, File)> {
        let file = memfd::create_sealed(MEMFD_NAME, Region::len_for(capacity))?;
        let map = MmapOptions::new().populate().map_raw(&file)?;
        let region = Region { map, capacity };
        let header = region.header();
        let control = &header.control.0;
        // Relaxed (all four): nobody can see these fields before the Release store of `magic`
        // below, which publishes them to the opener's Acquire load in `Region::open`.
        control.version.store(VERSION, Ordering::Relaxed);
        control.ring_bytes.store(capacity.bytes(), Ordering::Relaxed);
        control.token.store(token, Ordering::Relaxed);
        let side = region.side(Role::Server);
        side.pid.store(server.0, Ordering::Relaxed);
        side.wait.store(server.1, Ordering::Relaxed);
        // Release pairs with the Acquire load in `Region::open`: everything above (and the
        // zeroed counters of a fresh memfd) is visible to whoever sees the magic.
        control.magic.store(MAGIC, Ordering::Release);
        Ok((region, file))
    }

    /// Maps `file` and checks that it is the region with `token`.
    pub(crate) fn open(file: &File, token: u64) -> Result<Region, OpenError> {
        let len = file.metadata().map_err(OpenError::Map)?.len();
        if len < HEADER_BYTES {
            return Err(OpenError::NotOurs("the memfd is smaller than a header"));
        }
        let map = MmapOptions::new().populate().map_raw(file).map_err(OpenError::Map)?;
        if map.len() as u64 != len {
            return Err(OpenError::NotOurs("the memfd changed size while being mapped"));
        }
        // `Region::header` needs a valid capacity for nothing but the data areas; the header
        // itself lies in the first page, which `len >= HEADER_BYTES` guarantees is mapped.
        let unchecked = Region {
            map,
            capacity: Capacity::new(1).expect("1 is a power of two"),
        };
        let control = &unchecked.header().control.0;
        // Acquire pairs with the Release store in `Region::create`: once we see the magic,
        // the creator's other header fields are visible.
        if control.magic.load(Ordering::Acquire) != MAGIC {
            return Err(OpenError::NotOurs("the memfd has no ipcbench header"));
        }
        // Relaxed (three loads): published by the magic, as above, and never written again.
        let version = control.version.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(OpenError::Incompatible(format!(
                "layout version {version}, this build speaks {VERSION}"
            )));
        }
        if control.token.load(Ordering::Relaxed) != token {
            return Err(OpenError::NotOurs("the memfd belongs to another endpoint"));
        }
        let ring_bytes = control.ring_bytes.load(Ordering::Relaxed);
        let capacity = Capacity::new(ring_bytes)
            .filter(|c| c.bytes() >= HEADER_BYTES && Region::len_for(*c) == len)
            .ok_or_else(|| {
                OpenError::Incompatible(format!(
                    "header says rings of {ring_bytes} bytes, which does not match a mapping of {len} bytes"
                ))
            })?;
        Ok(Region {
            map: unchecked.map,
            capacity,
        })
    }

    /// Capacity of each ring.
    pub(crate) fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// The endpoint's random token (the key of its records' commit words).
    pub(crate) fn token(&self) -> u64 {
        // Relaxed: written by the creator before its Release store of the magic, which `open`
        // loaded with Acquire (or we are the creator), and never written again.
        self.header().control.0.token.load(Ordering::Relaxed)
    }

    fn header(&self) -> &SharedHeader {
        // SAFETY: the mapping is at least HEADER_BYTES long (checked by `create`'s sizing and
        // `open`'s length check) and page aligned, which satisfies `SharedHeader`'s size and
        // alignment (asserted at compile time). Every field is an atomic integer, for which
        // any bit pattern, including a fresh memfd's zeros, is valid, and which may be shared
        // by reference while other processes access them atomically. The size seal keeps the
        // pages mapped for as long as `self.map` lives, which bounds the reference.
        unsafe { &*self.map.as_ptr().cast::<SharedHeader>() }
    }

    /// The published state of `role`.
    pub(crate) fn side(&self, role: Role) -> &SideState {
        &self.header().sides[role.side_idx()].0
    }

    /// The shared state of ring `idx` (0 or 1).
    pub(crate) fn ring_header(&self, idx: usize) -> &RingHeader {
        &self.header().rings[idx]
    }

    /// Ring `idx` as a [`Storage`] that keeps this mapping alive.
    pub(crate) fn ring(self: &Arc<Self>, idx: usize) -> MappedRing {
        assert!(idx < 2, "a region has two rings");
        let offset = HEADER_BYTES + idx as u64 * self.capacity.bytes();
        // SAFETY: `offset + capacity <= len_for(capacity)`, the mapping's length (invariant),
        // so the data area lies inside the mapping.
        let data = unsafe { self.map.as_mut_ptr().add(offset as usize) };
        MappedRing {
            header: NonNull::from(self.ring_header(idx)),
            data: NonNull::new(data).expect("a mapping is not at address 0"),
            capacity: self.capacity,
            _region: Arc::clone(self),
        }
    }
}

impl Region {
    /// Bare slot `idx` (0: written by the client, 1: by the server).
    pub(crate) fn slot(&self, idx: usize) -> Slot<'_> {
        assert!(idx < 2, "a region has two bare slots");
        let offset = HEADER_BYTES + 2 * self.capacity.bytes() + idx as u64 * Region::slot_area_bytes(self.capacity);
        // SAFETY: the slot area `[offset, offset + slot_area_bytes)` ends at most at
        // `len_for(capacity)`, the mapping's length (invariant), so the header and the data
        // after it lie inside the mapping.
        let base = unsafe { self.map.as_mut_ptr().add(offset as usize) };
        // SAFETY: `base` is page aligned (every earlier area is a multiple of a page) and inside
        // the mapping with room for the header; a `SlotHeader` is three atomic integers, valid
        // for any bytes (a fresh memfd's zeros: an empty slot) and shareable by reference while
        // the other process accesses them atomically. The mapping outlives `&self`.
        let header = unsafe { &*base.cast::<SlotHeader>() };
        // SAFETY: the data starts right after the header, inside the same slot area.
        let data = unsafe { base.add(SLOT_HEADER_BYTES as usize) };
        Slot {
            header,
            data: NonNull::new(data).expect("a mapping is not at address 0"),
            bytes: Region::slot_bytes(self.capacity) as usize,
        }
    }
}

// SAFETY: `bytes` is fixed at construction and the data area has that many bytes after the
// header (`Slot` invariant); the copies touch only the bytes named.
unsafe impl SlotData for Slot<'_> {
    fn bytes(&self) -> usize {
        self.bytes
    }

    unsafe fn copy_in(&self, src: &[u8]) {
        // SAFETY: the caller guarantees `src.len() <= bytes` and that the reader does not read
        // the slot now; `src` is local memory, so the two cannot overlap.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), self.data.as_ptr(), src.len()) }
    }

    unsafe fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        // SAFETY: the caller guarantees `offset + dst.len() <= bytes` and that the writer does
        // not write the slot now; `dst` is local memory.
        unsafe { ptr::copy_nonoverlapping(self.data.as_ptr().add(offset), dst.as_mut_ptr(), dst.len()) }
    }
}

/// One ring of a [`Region`], seen as [`Storage`].
///
/// Invariant: `header` and `data` point into `_region`'s mapping, which this value keeps alive.
#[derive(Debug)]
pub(crate) struct MappedRing {
    header: NonNull<RingHeader>,
    data: NonNull<u8>,
    capacity: Capacity,
    _region: Arc<Region>,
}

// SAFETY: the pointers target a shared mapping that the `Arc` keeps alive wherever the value
// goes; the mapping is not tied to a thread.
unsafe impl Send for MappedRing {}

// SAFETY: `capacity` and `header` are fixed at construction; `data` is the ring's own data
// area of exactly `capacity` bytes (see `Region::ring`), which by the channel's roles only this
// ring's producer and consumer touch.
unsafe impl Storage for MappedRing {
    fn capacity(&self) -> Capacity {
        self.capacity
    }

    fn counters(&self) -> &Counters {
        // SAFETY: `header` points at a live `RingHeader` of atomics in the mapping (invariant),
        // which may be shared by reference as `Region::header` explains.
        unsafe { &self.header.as_ref().counters }
    }

    unsafe fn copy_in(&self, offset: usize, src: &[u8]) {
        // SAFETY: the caller guarantees `offset + src.len() <= capacity` and that the range is
        // free space no one else touches now; `src` is local memory, so the two cannot overlap.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), self.data.as_ptr().add(offset), src.len()) }
    }

    unsafe fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        // SAFETY: the caller guarantees `offset + dst.len() <= capacity` and that the range
        // holds published bytes the producer does not touch now; `dst` is local memory.
        unsafe { ptr::copy_nonoverlapping(self.data.as_ptr().add(offset), dst.as_mut_ptr(), dst.len()) }
    }

    unsafe fn word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: the caller guarantees `offset` is a multiple of 8 with `offset + 8 <=
        // capacity`; the data area starts on a page, so the pointer is inside it and aligned
        // for a `u64`, the size and alignment of `AtomicU64`, for which any bytes are a valid
        // value. The mapping outlives `&self` (invariant). The word is accessed atomically
        // whenever the other side may access it at the same time (the caller's contract); its
        // non-atomic accesses (as body bytes of another record) are ordered before or after
        // those by the counters' Release/Acquire pairs.
        unsafe { &*self.data.as_ptr().add(offset).cast::<AtomicU64>() }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rustix::fs::MemfdFlags;

    use super::*;
    use crate::ring::tests::{check_against_model, check_records, ops};
    use crate::ring::{Consumer, Producer};

    fn fresh(capacity: u64, token: u64) -> (Region, File) {
        let capacity = Capacity::new(capacity).expect("power of two");
        Region::create(capacity, token, (std::process::id(), 1)).expect("create region")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The same model check as the heap ring's, over a real mapping and the raw copies.
        #[test]
        fn mapped_ring_matches_vecdeque_model(ops in ops(6000)) {
            let (region, _file) = fresh(4096, 7);
            let region = Arc::new(region);
            // SAFETY: a fresh region and a single producer/consumer pair for ring 0.
            let (mut producer, mut consumer) =
                unsafe { (Producer::new(region.ring(0)), Consumer::new(region.ring(0))) };
            check_against_model(&mut producer, &mut consumer, &ops);
        }

        /// Records over a real mapping, where a commit word shares its bytes with the bodies of
        /// earlier laps: leftover bodies must never pass for a commit.
        #[test]
        fn mapped_records_come_back_whole_and_in_order(
            sizes in proptest::collection::vec(0usize..3000, 0..200),
        ) {
            let (region, _file) = fresh(4096, 7);
            let region = Arc::new(region);
            // SAFETY: a fresh region and a single producer/consumer pair for ring 1.
            let (mut producer, mut consumer) =
                unsafe { (Producer::new(region.ring(1)), Consumer::new(region.ring(1))) };
            check_records(&mut producer, &mut consumer, &sizes);
        }
    }

    #[test]
    fn open_accepts_its_own_region() {
        let (_region, file) = fresh(4096, 42);
        let opened = Region::open(&file, 42).expect("open");
        assert_eq!(opened.capacity().bytes(), 4096);
    }

    #[test]
    fn open_refuses_another_endpoints_token() {
        let (_region, file) = fresh(4096, 42);
        assert!(matches!(Region::open(&file, 43), Err(OpenError::NotOurs(_))));
    }

    #[test]
    fn open_refuses_a_capacity_that_does_not_match_the_mapping() {
        let (region, file) = fresh(4096, 42);
        // Relaxed: single-threaded test.
        region.header().control.0.ring_bytes.store(8192, Ordering::Relaxed);
        assert!(matches!(Region::open(&file, 42), Err(OpenError::Incompatible(_))));
        region.header().control.0.ring_bytes.store(4095, Ordering::Relaxed);
        assert!(matches!(Region::open(&file, 42), Err(OpenError::Incompatible(_))));
    }

    #[test]
    fn open_refuses_another_layout_version() {
        let (region, file) = fresh(4096, 42);
        // Relaxed: single-threaded test.
        region.header().control.0.version.store(VERSION + 1, Ordering::Relaxed);
        assert!(matches!(Region::open(&file, 42), Err(OpenError::Incompatible(_))));
    }

    #[test]
    fn open_refuses_a_file_without_magic() {
        let capacity = Capacity::new(4096).expect("power of two");
        let file = tempfile_of_len(Region::len_for(capacity));
        assert!(matches!(Region::open(&file, 0), Err(OpenError::NotOurs(_))));
        let short = tempfile_of_len(100);
        assert!(matches!(Region::open(&short, 0), Err(OpenError::NotOurs(_))));
    }

    #[test]
    fn the_memfd_cannot_be_shrunk_under_a_mapping() {
        let (_region, file) = fresh(4096, 1);
        assert!(file.set_len(0).is_err(), "the size seal must refuse truncation");
    }

    fn tempfile_of_len(len: u64) -> File {
        let fd = rustix::fs::memfd_create("not-ipcbench", MemfdFlags::CLOEXEC).expect("memfd");
        let file = File::from(fd);
        file.set_len(len).expect("size");
        file
    }

    #[test]
    fn a_bare_reader_acknowledges_when_it_writes_waits_or_flushes_and_not_before() {
        use crate::slot::{SlotState, Slots};
        let (region, _file) = fresh(4096, 7);
        let (a, b) = (region.slot(0), region.slot(1));
        let client = Slots {
            mine: a.header,
            my_data: &a,
            theirs: b.header,
            their_data: &b,
        };
        let server = Slots {
            mine: b.header,
            my_data: &b,
            theirs: a.header,
            their_data: &a,
        };
        let (mut c, mut s) = (SlotState::default(), SlotState::default());
        let mut buf = [0u8; 8];

        assert!(c.try_write(&client, &[1, 2, 3]));
        assert_eq!(s.try_read(&server, &mut buf[..3]), Ok(3));
        assert!(!c.writable(&client), "read to the end, not yet acknowledged");
        assert!(!c.try_write(&client, &[4]), "the slot is still taken");
        // Finding nothing more to read (about to wait) acknowledges.
        assert_eq!(s.try_read(&server, &mut buf), Ok(0));
        assert!(c.writable(&client));

        assert!(c.try_write(&client, &[4, 5]));
        assert_eq!(s.try_read(&server, &mut buf[..1]), Ok(1));
        assert_eq!(s.try_read(&server, &mut buf[1..2]), Ok(1));
        assert!(!c.writable(&client));
        // Writing acknowledges first, in the same line as the hand-off.
        assert!(s.try_write(&server, &[9]));
        assert!(c.writable(&client));
        assert_eq!(c.try_read(&client, &mut buf), Ok(1));
        assert_eq!(buf[0], 9);

        assert!(c.try_write(&client, &[6]));
        assert_eq!(s.try_read(&server, &mut buf), Ok(1));
        assert!(!c.writable(&client));
        s.flush_ack(&server);
        assert!(
            c.writable(&client),
            "an explicit flush (the bare loop's drop) acknowledges"
        );
    }
}
