//! [`SharedMap`]: the slot table of `map` in a memfd that several processes map at once.
//!
//! # Layout
//!
//! ```text
//! [0, 4096)                          MapHeader: magic, version, n_slots, data_bytes, slot_bytes, token
//! [4096 + i * slot_bytes, ...)       slot i: SlotHeader (32 bytes), then data_bytes of data
//! ```
//!
//! `slot_bytes` is `32 + data_bytes` rounded up to a cache line, so every slot starts on one
//! (aligned for its atomics) and two slots never share a line. All offsets are computed from
//! the mapping's base; nothing in the memfd is a pointer.
//!
//! # Creation and opening
//!
//! [`SharedMap::create`] makes the memfd (`memfd` module: no `/dev/shm` name, size sealed),
//! maps it, fills in the header and stores `magic` last with `Release`; the slots are the
//! fresh memfd's zeros, which is an empty table. It keeps the descriptor open for as long as it
//! lives, so its [`SharedMap::address`] stays valid for every process that opens the map
//! later. [`SharedMap::open`] checks the descriptor's name, maps it, loads `magic` with
//! `Acquire` and only then trusts the other fields, checking them against the mapping's
//! length. The memory goes away with the last mapping, even if every process is killed.
//!
//! # Waiting for a record
//!
//! A record's lock is held for a few hundred nanoseconds, so a waiter spins briefly, then
//! yields its core (the holder may be waiting for one), then sleeps in short steps. Every few
//! tries it checks whether the holder's process still exists: a holder killed with the record
//! locked turns into [`MapError::HolderDied`] at once, and any other wait into
//! [`MapError::LockTimeout`] after [`SharedMap::lock_timeout`], never a hang.

use std::fs::File;
use std::io;
use std::ptr;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use crate::map::{SLOT_HEADER_BYTES, SlotError, SlotHeader, Slots, Table};
use crate::memfd::{self, ProcAddress};
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// "IPCBMAP" and a zero byte, read as a little-endian `u64`.
const MAGIC: u64 = u64::from_le_bytes(*b"IPCBMAP\0");
/// Bumped whenever the layout changes.
const VERSION: u32 = 1;
/// Bytes before the first slot: the header, padded to a page.
const HEADER_BYTES: usize = 4096;
/// The name every map memfd carries (`/memfd:NAME` in `/proc/PID/fd`).
pub(crate) const MAP_MEMFD_NAME: &str = "ipcbench-map";
/// A slot's stride is a multiple of this.
const CACHE_LINE: usize = 64;

/// The most slots a map may have.
pub const MAX_MAP_SLOTS: usize = 1 << 24;
/// The most data bytes a record may hold.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// The largest mapping a map may need (header and slots).
pub const MAX_MAP_BYTES: usize = 1 << 30;
/// How long a record may stay locked by a live process before a waiter gives up.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Tries that only spin, before a waiter starts yielding.
const SPIN_TRIES: u32 = 64;
/// A waiter checks the holder's liveness every this many tries.
const LIVENESS_EVERY_TRIES: u32 = 64;
/// After yielding for this long, a waiter sleeps between tries.
const YIELD_FOR: Duration = Duration::from_millis(1);
/// One sleep between tries.
const SLEEP_STEP: Duration = Duration::from_micros(50);

/// The first [`HEADER_BYTES`] of the memfd. Atomics only, so that no byte of the shared
/// mapping is ever accessed non-atomically while another process might write it.
#[repr(C)]
#[derive(Debug)]
struct MapHeader {
    /// [`MAGIC`] once the creator has filled in everything else.
    magic: AtomicU64,
    version: AtomicU32,
    _reserved: AtomicU32,
    n_slots: AtomicU64,
    data_bytes: AtomicU64,
    slot_bytes: AtomicU64,
    /// A random number also carried in the address (see `memfd`).
    token: AtomicU64,
}

const _: () = assert!(size_of::<MapHeader>() <= HEADER_BYTES);
const _: () = assert!(align_of::<SlotHeader>() <= CACHE_LINE && HEADER_BYTES.is_multiple_of(CACHE_LINE));

/// Why the shared map refused an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MapError {
    /// Every slot holds another client.
    #[error("the shared map is full: all {n_slots} slots hold other clients")]
    Full {
        /// The map's slot count.
        n_slots: usize,
    },
    /// `u64::MAX` cannot be stored (it marks empty slots).
    #[error("client id {client_id} is reserved")]
    ReservedId {
        /// The refused id.
        client_id: u64,
    },
    /// The data does not fit a record.
    #[error("{len} bytes of data exceed the record size of {max} bytes")]
    DataTooLarge {
        /// The data's length.
        len: usize,
        /// The map's `data_bytes`.
        max: usize,
    },
    /// The requested geometry is beyond the limits.
    #[error(
        "a map of {n_slots} slots of {data_bytes} bytes is too large (at most {MAX_MAP_SLOTS} slots, \
         {MAX_RECORD_BYTES} bytes per record, {MAX_MAP_BYTES} bytes in all)"
    )]
    TooLarge {
        /// The requested slot count.
        n_slots: usize,
        /// The requested record size.
        data_bytes: usize,
    },
    /// A live process held the record's lock for longer than the lock timeout.
    #[error("the record of client {client_id} stayed locked by pid {holder} for {waited:?}")]
    LockTimeout {
        /// The client whose record was locked.
        client_id: u64,
        /// The pid in the lock.
        holder: u32,
        /// How long we waited.
        waited: Duration,
    },
    /// The process holding the record's lock no longer exists; the record may be half written.
    #[error("pid {holder} died holding the lock of client {client_id}'s record")]
    HolderDied {
        /// The client whose record is locked for good.
        client_id: u64,
        /// The dead pid.
        holder: u32,
    },
    /// The address is malformed, names no map, or names an incompatible one.
    #[error("bad shared map address `{address}`: {reason}")]
    BadAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The OS refused an operation.
    #[error("{op} failed")]
    Io {
        /// What we tried.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// The slots of one mapping of the memfd.
///
/// Invariant: the mapping is `HEADER_BYTES + n_slots * slot_bytes` bytes (checked against the
/// header and sealed), `n_slots` is a power of two, `slot_bytes` is a multiple of
/// [`CACHE_LINE`] of at least `SLOT_HEADER_BYTES + data_bytes`.
#[derive(Debug)]
struct MappedSlots {
    map: MmapRaw,
    n_slots: usize,
    data_bytes: usize,
    slot_bytes: usize,
}

impl MappedSlots {
    /// The first byte of slot `idx`.
    fn slot_ptr(&self, idx: usize) -> *mut u8 {
        assert!(idx < self.n_slots, "slot {idx} of {}", self.n_slots);
        // SAFETY: `idx < n_slots`, so the slot lies inside the mapping (invariant).
        unsafe { self.map.as_mut_ptr().add(HEADER_BYTES + idx * self.slot_bytes) }
    }

    fn header_of_map(map: &MmapRaw) -> &MapHeader {
        // SAFETY: every mapping we make is at least HEADER_BYTES long (`create` sizes it so;
        // `open` checks the length first) and page aligned, which satisfies `MapHeader`'s size
        // and alignment. Every field is an atomic integer, for which any bit pattern is valid
        // and which may be shared by reference while other processes access it atomically.
        // The size seal keeps the page mapped for as long as `map` lives.
        unsafe { &*map.as_ptr().cast::<MapHeader>() }
    }
}

// SAFETY: `n_slots`, `data_bytes` and `slot_bytes` are fixed at construction and match the
// sealed mapping (invariant); the data area of a slot is the `data_bytes` after its header and
// is reached only through `copy_in`/`copy_out`.
unsafe impl Slots for MappedSlots {
    fn n_slots(&self) -> usize {
        self.n_slots
    }

    fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    fn header(&self, idx: usize) -> &SlotHeader {
        // SAFETY: the slot starts inside the mapping on a cache line (HEADER_BYTES and
        // slot_bytes are multiples of 64), which satisfies `SlotHeader`'s alignment, and
        // SLOT_HEADER_BYTES fit before its data. Every field is an atomic integer (any bits are
        // valid, shared access is atomic). The mapping outlives `&self`.
        unsafe { &*self.slot_ptr(idx).cast::<SlotHeader>() }
    }

    unsafe fn copy_in(&self, idx: usize, src: &[u8]) {
        // SAFETY: the caller guarantees `src.len() <= data_bytes` and holds the slot's lock, so
        // the range after the header is inside the slot and no one else touches it now; `src`
        // is local memory, so the two cannot overlap.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), self.slot_ptr(idx).add(SLOT_HEADER_BYTES), src.len()) }
    }

    unsafe fn copy_out(&self, idx: usize, dst: &mut [u8]) {
        // SAFETY: as in `copy_in`, with `dst.len() <= data_bytes`; no one writes the range
        // while we hold the lock, and `dst` is local memory.
        unsafe { ptr::copy_nonoverlapping(self.slot_ptr(idx).add(SLOT_HEADER_BYTES), dst.as_mut_ptr(), dst.len()) }
    }
}

/// A client's record as read by [`SharedMap::read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRecord {
    /// How many read-modify-writes the record has seen.
    pub counter: u64,
    /// The length of the data last written (the caller's buffer got as much as fitted).
    pub data_len: usize,
}

/// A fixed-capacity map from client id to a record (a `u64` counter and up to `data_bytes`
/// of data), in shared memory that every process opening its address reads and writes.
///
/// Concurrent [`SharedMap::rmw`]s of one client, from any threads of any processes, are
/// serialized by a per-record lock, so no increment is ever lost. Clients are never removed;
/// the map holds at most [`SharedMap::n_slots`] of them. `SharedMap` is `Send + Sync`: threads
/// may share one mapping.
#[derive(Debug)]
pub struct SharedMap {
    table: Table<MappedSlots>,
    /// The memfd, kept by the creator so that the address keeps working; `None` when opened.
    _file: Option<File>,
    address: String,
    lock_timeout: Duration,
}

// SAFETY: the mapping is shared memory that every access reaches through atomics or under a
// slot lock (`map` module docs); it is not tied to a thread.
unsafe impl Send for MappedSlots {}
// SAFETY: as for `Send`: `&MappedSlots` only hands out atomics and lock-guarded copies.
unsafe impl Sync for MappedSlots {}

impl SharedMap {
    /// Creates an empty map with room for at least `n_slots` clients (rounded up to a power of
    /// two) of up to `data_bytes` each, in a new memfd of this process.
    ///
    /// # Errors
    ///
    /// `TooLarge` beyond [`MAX_MAP_SLOTS`], [`MAX_RECORD_BYTES`] or [`MAX_MAP_BYTES`]; `Io` if
    /// the memfd cannot be made or mapped.
    pub fn create(n_slots: usize, data_bytes: usize) -> Result<SharedMap, MapError> {
        let too_large = MapError::TooLarge { n_slots, data_bytes };
        let n_slots = n_slots.max(1);
        if n_slots > MAX_MAP_SLOTS || data_bytes > MAX_RECORD_BYTES {
            return Err(too_large);
        }
        let n_slots = n_slots.next_power_of_two();
        let slot_bytes = (SLOT_HEADER_BYTES + data_bytes).next_multiple_of(CACHE_LINE);
        let len = n_slots
            .checked_mul(slot_bytes)
            .and_then(|slots| slots.checked_add(HEADER_BYTES))
            .filter(|len| *len <= MAX_MAP_BYTES)
            .ok_or(too_large)?;
        let io = |op| move |source| MapError::Io { op, source };
        let file = memfd::create_sealed(MAP_MEMFD_NAME, len as u64).map_err(io("create shared memory"))?;
        let map = MmapOptions::new()
            .populate()
            .map_raw(&file)
            .map_err(io("map shared memory"))?;
        let token = memfd::random_token();
        let header = MappedSlots::header_of_map(&map);
        // Relaxed (all five): nobody can see these fields before the Release store of `magic`
        // below, which publishes them to the opener's Acquire load in `SharedMap::open`.
        header.version.store(VERSION, Ordering::Relaxed);
        header.n_slots.store(n_slots as u64, Ordering::Relaxed);
        header.data_bytes.store(data_bytes as u64, Ordering::Relaxed);
        header.slot_bytes.store(slot_bytes as u64, Ordering::Relaxed);
        header.token.store(token, Ordering::Relaxed);
        // Release pairs with the Acquire load in `SharedMap::open`: the fields above and the
        // zeroed slots of the fresh memfd are visible to whoever sees the magic.
        header.magic.store(MAGIC, Ordering::Release);
        let address = memfd::address_of(&file, token);
        let slots = MappedSlots {
            map,
            n_slots,
            data_bytes,
            slot_bytes,
        };
        Ok(SharedMap {
            table: Table::new(slots, std::process::id()),
            _file: Some(file),
            address,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        })
    }

    /// Opens the map at `address` (another process's [`SharedMap::address`], or this one's).
    ///
    /// # Errors
    ///
    /// `BadAddress` if the address is malformed, names no map (its creator is gone, say) or an
    /// incompatible one; `Io` if the OS refuses to open or map it.
    pub fn open(address: &str) -> Result<SharedMap, MapError> {
        let bad = |reason: String| MapError::BadAddress {
            address: address.to_owned(),
            reason,
        };
        let parsed = ProcAddress::parse(address).map_err(bad)?;
        let file = memfd::open_ours(&parsed.path, MAP_MEMFD_NAME)
            .map_err(|source| MapError::Io {
                op: "open shared memory",
                source,
            })?
            .ok_or_else(|| bad("no shared map there (is its creator still running?)".to_owned()))?;
        let len = file
            .metadata()
            .map_err(|source| MapError::Io {
                op: "inspect shared memory",
                source,
            })?
            .len() as usize;
        if len < HEADER_BYTES {
            return Err(bad("the memfd is smaller than a header".to_owned()));
        }
        let map = MmapOptions::new()
            .populate()
            .map_raw(&file)
            .map_err(|source| MapError::Io {
                op: "map shared memory",
                source,
            })?;
        if map.len() != len {
            return Err(bad("the memfd changed size while being mapped".to_owned()));
        }
        let header = MappedSlots::header_of_map(&map);
        // Acquire pairs with the Release store in `SharedMap::create`: once we see the magic,
        // the creator's other header fields are visible.
        if header.magic.load(Ordering::Acquire) != MAGIC {
            return Err(bad("the memfd has no shared map header".to_owned()));
        }
        // Relaxed (all five): published by the magic, as above, and never written again.
        let version = header.version.load(Ordering::Relaxed);
        if version != VERSION {
            return Err(bad(format!("layout version {version}, this build speaks {VERSION}")));
        }
        if header.token.load(Ordering::Relaxed) != parsed.token {
            return Err(bad("the memfd belongs to another map".to_owned()));
        }
        let n_slots = header.n_slots.load(Ordering::Relaxed) as usize;
        let data_bytes = header.data_bytes.load(Ordering::Relaxed) as usize;
        let slot_bytes = header.slot_bytes.load(Ordering::Relaxed) as usize;
        let consistent = n_slots.is_power_of_two()
            && n_slots <= MAX_MAP_SLOTS
            && data_bytes <= MAX_RECORD_BYTES
            && slot_bytes >= SLOT_HEADER_BYTES + data_bytes
            && slot_bytes.is_multiple_of(CACHE_LINE)
            && n_slots
                .checked_mul(slot_bytes)
                .and_then(|s| s.checked_add(HEADER_BYTES))
                == Some(len);
        if !consistent {
            return Err(bad(format!(
                "header says {n_slots} slots of {slot_bytes} bytes ({data_bytes} of data), which does not \
                 match a mapping of {len} bytes"
            )));
        }
        let slots = MappedSlots {
            map,
            n_slots,
            data_bytes,
            slot_bytes,
        };
        Ok(SharedMap {
            table: Table::new(slots, std::process::id()),
            _file: None,
            address: address.to_owned(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        })
    }

    /// The address other processes open the map by: `/proc/<pid>/fd/<fd>#<token>`. It works
    /// while the creating `SharedMap` lives.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// How many clients the map holds at most (a power of two).
    pub fn n_slots(&self) -> usize {
        self.table.slots().n_slots
    }

    /// The most data bytes a record holds.
    pub fn data_bytes(&self) -> usize {
        self.table.slots().data_bytes
    }

    /// How long a waiter gives up after when a live process keeps a record locked.
    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// Sets [`SharedMap::lock_timeout`] for this handle.
    pub fn set_lock_timeout(&mut self, timeout: Duration) {
        self.lock_timeout = timeout;
    }

    /// Increments `client_id`'s counter and replaces its data with `data`, atomically with
    /// respect to every other operation on that client; returns the new counter. A client's
    /// first `rmw` adds it to the map (counter 1).
    ///
    /// # Errors
    ///
    /// `DataTooLarge`, `ReservedId`, `Full` when the client is new and no slot is left, and
    /// `LockTimeout` or `HolderDied` when the record stays locked (see the module docs).
    pub fn rmw(&self, client_id: u64, data: &[u8]) -> Result<u64, MapError> {
        if data.len() > self.data_bytes() {
            return Err(MapError::DataTooLarge {
                len: data.len(),
                max: self.data_bytes(),
            });
        }
        let idx = self
            .table
            .find_or_claim(client_id)
            .map_err(|e| self.slot_error(e, client_id))?;
        let mut locked = self.table.lock(idx, self.patience(client_id))?;
        let counter = locked.counter() + 1;
        locked.write(counter, data);
        Ok(counter)
    }

    /// `client_id`'s record, with as much of its data as fits copied into `buf`; `None` if the
    /// client was never written.
    ///
    /// # Errors
    ///
    /// `ReservedId`, `LockTimeout` or `HolderDied`.
    pub fn read(&self, client_id: u64, buf: &mut [u8]) -> Result<Option<MapRecord>, MapError> {
        let Some(idx) = self.table.find(client_id).map_err(|e| self.slot_error(e, client_id))? else {
            return Ok(None);
        };
        let locked = self.table.lock(idx, self.patience(client_id))?;
        let data_len = locked.read_data(buf);
        Ok(Some(MapRecord {
            counter: locked.counter(),
            data_len,
        }))
    }

    /// `client_id`'s counter: 0 if the client was never written.
    ///
    /// # Errors
    ///
    /// As [`SharedMap::read`].
    pub fn counter(&self, client_id: u64) -> Result<u64, MapError> {
        Ok(self.read(client_id, &mut [])?.map_or(0, |record| record.counter))
    }

    /// Every client in the map with its counter, in no particular order.
    ///
    /// # Errors
    ///
    /// `LockTimeout` or `HolderDied` for a record that stays locked.
    pub fn counters(&self) -> Result<Vec<(u64, u64)>, MapError> {
        self.table
            .claimed()
            .map(|(idx, client_id)| {
                let locked = self.table.lock(idx, self.patience(client_id))?;
                Ok((client_id, locked.counter()))
            })
            .collect()
    }

    fn slot_error(&self, err: SlotError, client_id: u64) -> MapError {
        match err {
            SlotError::Full => MapError::Full {
                n_slots: self.n_slots(),
            },
            SlotError::Reserved => MapError::ReservedId { client_id },
        }
    }

    /// The waiting policy of the module docs, for one lock attempt.
    fn patience(&self, client_id: u64) -> impl FnMut(u32) -> Result<(), MapError> {
        let timeout = self.lock_timeout;
        let mut tries = 0u32;
        let mut started: Option<Instant> = None;
        move |holder| {
            tries = tries.wrapping_add(1);
            if tries < SPIN_TRIES {
                std::hint::spin_loop();
                return Ok(());
            }
            let started = *started.get_or_insert_with(Instant::now);
            if tries.is_multiple_of(LIVENESS_EVERY_TRIES) && !process_exists(holder) {
                return Err(MapError::HolderDied { client_id, holder });
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(MapError::LockTimeout {
                    client_id,
                    holder,
                    waited,
                });
            }
            if waited < YIELD_FOR {
                std::thread::yield_now();
            } else {
                std::thread::sleep(SLEEP_STEP);
            }
            Ok(())
        }
    }
}

/// Whether `pid` is a process that can still run (a zombie cannot release a lock).
fn process_exists(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after the command name, which ends at the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X'))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn rmw_counts_and_read_returns_the_last_data() {
        let map = SharedMap::create(10, 8).expect("create");
        assert_eq!(map.n_slots(), 16);
        assert_eq!(map.rmw(3, b"one").expect("rmw"), 1);
        assert_eq!(map.rmw(3, b"twotwo").expect("rmw"), 2);
        let mut buf = [0u8; 8];
        let record = map.read(3, &mut buf).expect("read").expect("present");
        assert_eq!(
            record,
            MapRecord {
                counter: 2,
                data_len: 6
            }
        );
        assert_eq!(&buf[..6], b"twotwo");
        assert_eq!(map.read(4, &mut buf).expect("read"), None);
        assert_eq!(map.counter(4).expect("counter"), 0);
    }

    #[test]
    fn an_opened_map_sees_the_creators_records() {
        let map = SharedMap::create(4, 4).expect("create");
        map.rmw(1, b"a").expect("rmw");
        let other = SharedMap::open(map.address()).expect("open");
        assert_eq!(other.rmw(1, b"b").expect("rmw"), 2);
        assert_eq!(map.counter(1).expect("counter"), 2);
        assert_eq!(other.counters().expect("counters"), vec![(1, 2)]);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let map = SharedMap::create(1, 2).expect("create");
        assert!(matches!(
            map.rmw(0, b"abc"),
            Err(MapError::DataTooLarge { len: 3, max: 2 })
        ));
        assert!(matches!(map.rmw(u64::MAX, b""), Err(MapError::ReservedId { .. })));
        map.rmw(0, b"").expect("first client fits");
        assert!(matches!(map.rmw(1, b""), Err(MapError::Full { n_slots: 1 })));
        assert!(matches!(
            SharedMap::create(MAX_MAP_SLOTS + 1, 0),
            Err(MapError::TooLarge { .. })
        ));
        assert!(matches!(
            SharedMap::create(1 << 20, 4096),
            Err(MapError::TooLarge { .. })
        ));
        for address in ["", "/proc/1/fd/3", "/proc/x/fd/3#00", "/proc/1/fd/999999#00"] {
            assert!(
                matches!(SharedMap::open(address), Err(MapError::BadAddress { .. })),
                "{address}"
            );
        }
    }

    #[test]
    fn open_refuses_another_maps_token() {
        let map = SharedMap::create(4, 4).expect("create");
        let (path, _) = map.address().split_once('#').expect("token");
        let wrong = format!(
            "{path}#{:016x}",
            memfd::ProcAddress::parse(map.address()).expect("parse").token ^ 1
        );
        assert!(matches!(SharedMap::open(&wrong), Err(MapError::BadAddress { .. })));
    }

    #[test]
    fn a_lock_held_by_a_dead_pid_is_reported_not_waited_on() {
        let map = SharedMap::create(4, 4).expect("create");
        map.rmw(9, b"x").expect("rmw");
        // A pid that has exited and been reaped: a child we ran to completion.
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let dead = child.id();
        child.wait().expect("reap");
        let slots = map.table.slots();
        let idx = map.table.find(9).expect("find").expect("present");
        // Relaxed: single-threaded test; we fake a holder that died mid-update.
        slots.header(idx).lock_word().store(dead, Ordering::Relaxed);
        assert!(matches!(map.rmw(9, b"y"), Err(MapError::HolderDied { client_id: 9, holder }) if holder == dead));
    }

    #[test]
    fn a_lock_held_by_a_live_process_times_out() {
        let mut map = SharedMap::create(4, 4).expect("create");
        map.set_lock_timeout(Duration::from_millis(20));
        map.rmw(9, b"x").expect("rmw");
        let idx = map.table.find(9).expect("find").expect("present");
        let _held = map.table.try_lock(idx).expect("free");
        assert!(matches!(
            map.rmw(9, b"y"),
            Err(MapError::LockTimeout { client_id: 9, .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Over a real mapping and its raw copies: counters and data as a `HashMap` model.
        #[test]
        fn mapped_map_matches_hashmap_model(
            ops in proptest::collection::vec((0u64..40, proptest::collection::vec(any::<u8>(), 0..=40)), 0..200),
        ) {
            let map = SharedMap::create(64, 40).expect("create");
            let mut model: HashMap<u64, (u64, Vec<u8>)> = HashMap::new();
            for (key, data) in ops {
                let entry = model.entry(key).or_default();
                entry.0 += 1;
                entry.1 = data.clone();
                prop_assert_eq!(map.rmw(key, &data).expect("rmw"), entry.0);
            }
            for (key, (counter, data)) in &model {
                let mut buf = [0u8; 40];
                let record = map.read(*key, &mut buf).expect("read").expect("present");
                prop_assert_eq!(record.counter, *counter);
                prop_assert_eq!(&buf[..record.data_len], &data[..]);
            }
            let mut listed = map.counters().expect("counters");
            listed.sort_unstable();
            let mut expected: Vec<(u64, u64)> = model.iter().map(|(k, (c, _))| (*k, *c)).collect();
            expected.sort_unstable();
            prop_assert_eq!(listed, expected);
        }
    }
}
