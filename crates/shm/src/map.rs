//! The slot protocol of the shared map: a fixed-capacity open-addressing table of client
//! records that several processes read and write at once.
//!
//! # Slots
//!
//! The table has `n_slots` slots, a power of two. Each slot is a [`SlotHeader`] of atomics
//! followed by `data_bytes` bytes of record data (where those bytes live is the [`Slots`]
//! implementor's business: the memfd of `map_region`, or the heap cells of the models):
//!
//! ```text
//! key       client id + 1; 0 while the slot is empty. Claimed once, never changed again
//! lock      0 while free, else the pid of the process holding the record
//! counter   the record's counter            } read and written only by the
//! data_len  how many data bytes are valid   } holder of `lock`, as are the data bytes
//! ```
//!
//! # Finding a client: claim once, never free
//!
//! A client's home slot is a fixed hash of its id (the same in every process); a lookup
//! probes linearly from there. A slot's key goes from 0 to `id + 1` by one compare-and-swap
//! and never changes again: the table has no deletion. So a probe that meets another key
//! moves on, a probe that meets its own key has found the record, and a probe that meets an
//! empty slot knows the client is not in the table (every key is claimed in the first empty
//! slot of its probe sequence, and slots never empty again) and claims it. Two processes that
//! race for the same empty slot are ordered by the CAS: the loser reads the winner's key and,
//! if the winner claimed it for another client, moves on. Id `u64::MAX` is reserved (its
//! `id + 1` would be the empty mark).
//!
//! The key word carries nothing but the key: the record behind it is only ever touched under
//! the lock, whose Acquire/Release pairs order it. So the key's own operations are `Relaxed`;
//! the single word's modification order alone decides who claimed a slot.
//!
//! # Records: one lock per slot
//!
//! A read-modify-write takes the slot's lock (CAS 0 -> pid, `Acquire`), reads the counter,
//! stores counter + 1 and the new data, and releases the lock (store 0, `Release`), which
//! publishes all of it to the next holder's `Acquire`. Two processes incrementing one client
//! are therefore serialized: no update is lost. The lock is never held across a wait or a
//! system call, only for a few loads, stores and one copy of `data_bytes`.
//!
//! The lock word holds the holder's pid so that a waiter can tell a holder that died (killed
//! with the record locked) from one that is merely slow: how long to wait and what to do then
//! is the caller's choice (`map_region` gives up with an error naming the dead pid, or after a
//! timeout). A lock left behind by a dead process is never broken: its record may be half
//! written.

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// The atomics at the start of each slot. `#[repr(C)]`: part of the shared-memory layout.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct SlotHeader {
    /// Client id + 1, or 0 while empty. Written once, by the CAS that claims the slot.
    key: AtomicU64,
    /// 0 while free, else the holder's pid.
    lock: AtomicU32,
    _reserved: AtomicU32,
    /// Only accessed by the lock's holder.
    counter: AtomicU64,
    /// Only accessed by the lock's holder; at most `data_bytes`.
    data_len: AtomicU64,
}

#[cfg(any(test, loom))]
impl SlotHeader {
    /// An empty, unlocked slot (as a fresh memfd's zeros are).
    pub(crate) fn empty() -> Self {
        SlotHeader {
            key: AtomicU64::new(0),
            lock: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
            counter: AtomicU64::new(0),
            data_len: AtomicU64::new(0),
        }
    }
}

#[cfg(all(test, not(loom)))]
impl SlotHeader {
    /// The lock word, for tests that fake a holder.
    pub(crate) fn lock_word(&self) -> &AtomicU32 {
        &self.lock
    }
}

/// Bytes of a [`SlotHeader`].
pub(crate) const SLOT_HEADER_BYTES: usize = size_of::<SlotHeader>();
#[cfg(not(loom))] // loom's atomics are larger; only the mapped layout needs the size
const _: () = assert!(SLOT_HEADER_BYTES == 32);

/// The reserved client id (its key would be the empty mark).
pub(crate) const RESERVED_ID: u64 = u64::MAX;

/// The slot a client's probe sequence starts at. A fixed mix (the splitmix64 finalizer), so
/// every process computes the same slot; it spreads consecutive ids over the table.
pub(crate) fn home_slot(client_id: u64, n_slots: usize) -> usize {
    let mut z = client_id;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // A power of two, so the mask keeps the low bits; the result is below `n_slots`.
    (z as usize) & (n_slots - 1)
}

/// Where a table's slots live.
///
/// # Safety
///
/// An implementor promises that `n_slots` (a power of two) and `data_bytes` never change,
/// that `header(idx)` returns the same header for every `idx < n_slots` for the storage's
/// whole life, and that each slot's data area is `data_bytes` bytes that are only reached
/// through `copy_in` and `copy_out`.
pub(crate) unsafe trait Slots {
    /// The number of slots, a power of two.
    fn n_slots(&self) -> usize;

    /// The capacity of each slot's data area.
    fn data_bytes(&self) -> usize;

    /// The header of slot `idx` (`idx < n_slots`).
    fn header(&self, idx: usize) -> &SlotHeader;

    /// Copies `src` to the start of slot `idx`'s data area.
    ///
    /// # Safety
    ///
    /// `idx < n_slots`, `src.len() <= data_bytes`, and the caller holds the slot's lock.
    unsafe fn copy_in(&self, idx: usize, src: &[u8]);

    /// Copies the start of slot `idx`'s data area into `dst`.
    ///
    /// # Safety
    ///
    /// `idx < n_slots`, `dst.len() <= data_bytes`, and the caller holds the slot's lock.
    unsafe fn copy_out(&self, idx: usize, dst: &mut [u8]);
}

/// Why a client could not be given a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotError {
    /// Every slot holds another client.
    Full,
    /// The id is [`RESERVED_ID`].
    Reserved,
}

/// The protocol over some [`Slots`], for one holder identity (the pid stored in held locks).
#[derive(Debug)]
pub(crate) struct Table<S: Slots> {
    slots: S,
    holder: u32,
}

impl<S: Slots> Table<S> {
    /// The protocol over `slots`; locks taken through it hold `holder` (non-zero).
    pub(crate) fn new(slots: S, holder: u32) -> Self {
        assert!(holder != 0, "0 marks a free lock");
        Table { slots, holder }
    }

    /// The storage.
    pub(crate) fn slots(&self) -> &S {
        &self.slots
    }

    /// The slot of `client_id`, if the client is in the table.
    pub(crate) fn find(&self, client_id: u64) -> Result<Option<usize>, SlotError> {
        self.probe(client_id, false)
    }

    /// The slot of `client_id`, claiming the first empty one of its probe sequence if the
    /// client is not in the table yet.
    pub(crate) fn find_or_claim(&self, client_id: u64) -> Result<usize, SlotError> {
        self.probe(client_id, true)?.ok_or(SlotError::Full)
    }

    fn probe(&self, client_id: u64, claim: bool) -> Result<Option<usize>, SlotError> {
        if client_id == RESERVED_ID {
            return Err(SlotError::Reserved);
        }
        let key = client_id + 1;
        let n_slots = self.slots.n_slots();
        let home = home_slot(client_id, n_slots);
        for step in 0..n_slots {
            let idx = (home + step) & (n_slots - 1);
            let word = &self.slots.header(idx).key;
            // Relaxed: the key word publishes nothing but itself (module docs); the record is
            // ordered by the lock.
            let mut seen = word.load(Ordering::Relaxed);
            if seen == 0 {
                if !claim {
                    return Ok(None);
                }
                // Relaxed (both): as above. Success claims the slot for good; failure hands us
                // the key another process just claimed it with.
                match word.compare_exchange(0, key, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => return Ok(Some(idx)),
                    Err(winner) => seen = winner,
                }
            }
            if seen == key {
                return Ok(Some(idx));
            }
        }
        if claim { Err(SlotError::Full) } else { Ok(None) }
    }

    /// Takes slot `idx`'s lock if it is free; otherwise returns the pid that holds it.
    pub(crate) fn try_lock(&self, idx: usize) -> Result<Locked<'_, S>, u32> {
        let header = self.slots.header(idx);
        // Acquire pairs with the Release store in `Locked::drop` of the previous holder: its
        // counter, length and data are visible to us. Relaxed on failure: we touch nothing.
        match header
            .lock
            .compare_exchange(0, self.holder, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Ok(Locked {
                slots: &self.slots,
                header,
                idx,
            }),
            Err(holder) => Err(holder),
        }
    }

    /// Takes slot `idx`'s lock, calling `wait` with the holder's pid after each failed try;
    /// an error from `wait` ends the attempt.
    pub(crate) fn lock<E>(&self, idx: usize, mut wait: impl FnMut(u32) -> Result<(), E>) -> Result<Locked<'_, S>, E> {
        loop {
            match self.try_lock(idx) {
                Ok(locked) => return Ok(locked),
                Err(holder) => wait(holder)?,
            }
        }
    }

    /// Every claimed slot and its client id, in slot order.
    pub(crate) fn claimed(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        (0..self.slots.n_slots()).filter_map(|idx| {
            // Relaxed: as in `probe`.
            let key = self.slots.header(idx).key.load(Ordering::Relaxed);
            (key != 0).then(|| (idx, key - 1))
        })
    }
}

/// A held slot lock; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct Locked<'a, S: Slots> {
    slots: &'a S,
    header: &'a SlotHeader,
    idx: usize,
}

impl<S: Slots> Locked<'_, S> {
    /// The record's counter.
    pub(crate) fn counter(&self) -> u64 {
        // Relaxed: only the lock holder touches the counter; the lock's Acquire ordered the
        // previous holder's store before this load.
        self.header.counter.load(Ordering::Relaxed)
    }

    /// Copies the record's data into the start of `buf` (as much as fits) and returns the
    /// data's whole length.
    pub(crate) fn read_data(&self, buf: &mut [u8]) -> usize {
        // Relaxed: as in `counter`. The holder that stored it kept it at most `data_bytes`.
        let len = (self.header.data_len.load(Ordering::Relaxed) as usize).min(self.slots.data_bytes());
        let n = len.min(buf.len());
        // SAFETY: we hold the lock; `idx` came from the table and `n <= data_bytes`.
        unsafe { self.slots.copy_out(self.idx, &mut buf[..n]) };
        len
    }

    /// Replaces the record with `counter` and `data`.
    ///
    /// # Panics
    ///
    /// If `data` is longer than the slot's data area (callers check first).
    pub(crate) fn write(&mut self, counter: u64, data: &[u8]) {
        assert!(
            data.len() <= self.slots.data_bytes(),
            "the caller checks the data's length"
        );
        // SAFETY: we hold the lock; `idx` came from the table and the length was checked.
        unsafe { self.slots.copy_in(self.idx, data) };
        // Relaxed (both): only the lock holder touches them; the Release store in `drop`
        // publishes them with the data.
        self.header.data_len.store(data.len() as u64, Ordering::Relaxed);
        self.header.counter.store(counter, Ordering::Relaxed);
    }
}

impl<S: Slots> Drop for Locked<'_, S> {
    fn drop(&mut self) {
        // Release pairs with the Acquire CAS in `Table::try_lock` of the next holder: our
        // counter, length and data writes happen before its reads.
        self.header.lock.store(0, Ordering::Release);
    }
}

/// A table on the heap: what the property tests and the loom models drive.
///
/// Each data byte is its own [`UnsafeCell`](crate::sync::UnsafeCell), so under loom every
/// access to the data is tracked and one that the lock did not order is reported as a race.
#[cfg(any(test, loom))]
#[derive(Debug)]
pub(crate) struct HeapSlots {
    headers: Box<[SlotHeader]>,
    cells: Box<[crate::sync::UnsafeCell<u8>]>,
    data_bytes: usize,
}

#[cfg(any(test, loom))]
impl HeapSlots {
    /// An empty table of `n_slots` (a power of two) slots of `data_bytes` each.
    pub(crate) fn new(n_slots: usize, data_bytes: usize) -> Self {
        assert!(n_slots.is_power_of_two());
        HeapSlots {
            headers: (0..n_slots).map(|_| SlotHeader::empty()).collect(),
            cells: (0..n_slots * data_bytes)
                .map(|_| crate::sync::UnsafeCell::new(0))
                .collect(),
            data_bytes,
        }
    }
}

#[cfg(any(test, loom))]
// SAFETY: the cells are only reached through `copy_in`/`copy_out`, whose callers hold the
// slot's lock, so accesses to one slot's cells are ordered by its Acquire/Release pairs; the
// headers are atomics.
unsafe impl Sync for HeapSlots {}
#[cfg(any(test, loom))]
// SAFETY: as for `Sync`; the table owns its cells and holds no thread-bound state.
unsafe impl Send for HeapSlots {}

#[cfg(any(test, loom))]
// SAFETY: `headers` and `data_bytes` never change; `cells` has `data_bytes` entries per slot
// (built in `new`), and only `copy_in`/`copy_out` touch them.
unsafe impl Slots for HeapSlots {
    fn n_slots(&self) -> usize {
        self.headers.len()
    }

    fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    fn header(&self, idx: usize) -> &SlotHeader {
        &self.headers[idx]
    }

    unsafe fn copy_in(&self, idx: usize, src: &[u8]) {
        let start = idx * self.data_bytes;
        for (cell, &byte) in self.cells[start..start + src.len()].iter().zip(src) {
            // SAFETY: the caller holds the slot's lock, so no one else touches its bytes now.
            cell.with_mut(|ptr| unsafe { ptr.write(byte) });
        }
    }

    unsafe fn copy_out(&self, idx: usize, dst: &mut [u8]) {
        let start = idx * self.data_bytes;
        for (cell, byte) in self.cells[start..start + dst.len()].iter().zip(dst) {
            // SAFETY: the caller holds the slot's lock, so no one writes its bytes now.
            *byte = cell.with(|ptr| unsafe { ptr.read() });
        }
    }
}

// SAFETY: an `Arc` forwards to one shared `T`, which upholds the contract.
unsafe impl<T: Slots> Slots for crate::sync::Arc<T> {
    fn n_slots(&self) -> usize {
        (**self).n_slots()
    }

    fn data_bytes(&self) -> usize {
        (**self).data_bytes()
    }

    fn header(&self, idx: usize) -> &SlotHeader {
        (**self).header(idx)
    }

    unsafe fn copy_in(&self, idx: usize, src: &[u8]) {
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { (**self).copy_in(idx, src) }
    }

    unsafe fn copy_out(&self, idx: usize, dst: &mut [u8]) {
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { (**self).copy_out(idx, dst) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// One read-modify-write through the protocol, as `map_region` does it.
    fn rmw<S: Slots>(table: &Table<S>, client_id: u64, data: &[u8]) -> Result<u64, SlotError> {
        let idx = table.find_or_claim(client_id)?;
        let mut locked = table.lock(idx, |_| {
            std::hint::spin_loop();
            Ok::<_, SlotError>(())
        })?;
        let counter = locked.counter() + 1;
        locked.write(counter, data);
        Ok(counter)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Rmw(u64, Vec<u8>),
        Read(u64),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        let op = prop_oneof![
            3 => (0u64..24, proptest::collection::vec(any::<u8>(), 0..=8)).prop_map(|(k, d)| Op::Rmw(k, d)),
            1 => (0u64..24).prop_map(Op::Read),
        ];
        proptest::collection::vec(op, 0..300)
    }

    proptest! {
        /// The table behaves like a `HashMap` of (counter, data) with room for `n_slots`
        /// clients: same counters, same data, and `Full` exactly when a new client does not fit.
        #[test]
        fn table_matches_hashmap_model(ops in ops(), n_slots_log2 in 0u32..5) {
            let n_slots = 1usize << n_slots_log2;
            let table = Table::new(HeapSlots::new(n_slots, 8), 1);
            let mut model: HashMap<u64, (u64, Vec<u8>)> = HashMap::new();
            for op in ops {
                match op {
                    Op::Rmw(key, data) => {
                        let fits = model.contains_key(&key) || model.len() < n_slots;
                        match rmw(&table, key, &data) {
                            Ok(counter) => {
                                prop_assert!(fits);
                                let entry = model.entry(key).or_default();
                                entry.0 += 1;
                                entry.1 = data;
                                prop_assert_eq!(counter, entry.0);
                            }
                            Err(err) => {
                                prop_assert!(!fits);
                                prop_assert_eq!(err, SlotError::Full);
                            }
                        }
                    }
                    Op::Read(key) => {
                        let found = table.find(key).expect("not reserved").map(|idx| {
                            let locked = table.try_lock(idx).expect("uncontended");
                            let mut buf = [0u8; 8];
                            let len = locked.read_data(&mut buf);
                            (locked.counter(), buf[..len].to_vec())
                        });
                        prop_assert_eq!(found.as_ref(), model.get(&key));
                    }
                }
            }
            let mut listed: Vec<u64> = table.claimed().map(|(_, key)| key).collect();
            let mut expected: Vec<u64> = model.keys().copied().collect();
            listed.sort_unstable();
            expected.sort_unstable();
            prop_assert_eq!(listed, expected);
        }
    }

    #[test]
    fn the_reserved_id_is_refused() {
        let table = Table::new(HeapSlots::new(4, 0), 1);
        assert_eq!(table.find_or_claim(RESERVED_ID), Err(SlotError::Reserved));
        assert_eq!(table.find(RESERVED_ID), Err(SlotError::Reserved));
    }

    #[test]
    fn a_held_lock_names_its_holder() {
        let table = Table::new(HeapSlots::new(1, 0), 77);
        let idx = table.find_or_claim(5).expect("room");
        let held = table.try_lock(idx).expect("free");
        assert_eq!(table.try_lock(idx).err(), Some(77));
        drop(held);
        assert!(table.try_lock(idx).is_ok());
    }

    #[test]
    fn threads_hammering_shared_keys_lose_no_update() {
        let table = Table::new(HeapSlots::new(8, 16), 1);
        let n_threads = 4;
        let n_rounds = 2_000;
        std::thread::scope(|scope| {
            for t in 0..n_threads {
                let table = &table;
                scope.spawn(move || {
                    for round in 0..n_rounds {
                        rmw(table, round % 5, &[t as u8; 16]).expect("room");
                    }
                });
            }
        });
        let total: u64 = table
            .claimed()
            .map(|(idx, _)| table.try_lock(idx).expect("free").counter())
            .sum();
        assert_eq!(total, n_threads * n_rounds);
    }
}
