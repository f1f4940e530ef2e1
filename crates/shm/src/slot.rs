//! The bare loop's slot protocol: one slot per direction carrying bytes and a sequence word.
//!
//! Each side owns one slot and writes only its words: `seq` (hand-offs it published into its
//! slot), `len` (bytes of the latest one) and `ack` (hand-offs of the *other* slot it has read
//! to the end). A writer may fill its slot once the reader's `ack` equals its own `seq`; it
//! copies the bytes in, stores `len`, then publishes `seq + 1`. The reader waits for `seq` to
//! pass what it has consumed and copies out (possibly over several reads). The counters only
//! grow and start at zero in a fresh mapping.
//!
//! # When the reader acknowledges
//!
//! Not at once: a hand-off read to the end is acknowledged ([`SlotState::flush_ack`]) when
//! the reader next writes ([`SlotState::try_write`] stores `ack` just before its own bytes),
//! when it finds nothing to read (before it waits) or when it lets go of the slots (the
//! transport's bare loop flushes on drop). So a writer waiting for `ack` waits only for a
//! reader that is itself busy elsewhere, as it would for any reader that has not read yet.
//! The reason is the line: `ack` shares the header's line with `seq`, which the peer polls
//! while it waits for our reply. Stored on its own, `ack` takes that line from the poller and
//! the reply must take it back; stored just before the reply, both go in one transfer. The
//! transport's bare loop between two pinned threads at 64 B (2 vCPU KVM guest, alternated
//! 0.2 s runs, two sittings): 260-270 -> 230-250 ns per round trip in the fast regime and
//! 870-920 -> 620-720 ns in the slow one.
//!
//! # Guessing the length
//!
//! A reader sizes its copy by the previous hand-off's length when the new one has the same
//! ([`guess_or`]), so that the addresses of its loads do not depend on a value loaded from the
//! peer's line. Measured with a one-slot loop of this protocol at 64 B, whose data spans two
//! lines (2 vCPU KVM guest, AMD EPYC, alternating runs): 250-270 ns per round trip with the
//! copy sized by the loaded length, 160-200 ns sized by the guess, the same as a copy of a
//! constant size.
//!
//! The protocol depends only on `sync` and on [`SlotData`], so the loom models in
//! `loom_models` drive it over heap cells ([`HeapSlot`]) with the same code the mapping uses.

use crate::sync::{AtomicU64, Ordering};

/// The words at the start of a slot. `#[repr(C)]`: it lies in the shared mapping.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SlotHeader {
    /// Hand-offs ever published into this slot by its owner.
    pub(crate) seq: AtomicU64,
    /// Bytes of the latest hand-off.
    pub(crate) len: AtomicU64,
    /// Hand-offs of the *other* slot that the owner has finished reading.
    pub(crate) ack: AtomicU64,
}

/// Where a slot's data bytes live.
///
/// # Safety
///
/// `bytes` never changes, and `copy_in`/`copy_out` touch exactly the data bytes they are given.
pub(crate) unsafe trait SlotData {
    /// The most bytes one hand-off carries.
    fn bytes(&self) -> usize;

    /// Copies `src` to the start of the data.
    ///
    /// # Safety
    ///
    /// `src.len() <= bytes()`, and the reader has acknowledged every earlier hand-off, so it
    /// does not read the data now.
    unsafe fn copy_in(&self, src: &[u8]);

    /// Copies data bytes from `offset` into `dst`.
    ///
    /// # Safety
    ///
    /// `offset + dst.len() <= bytes()`, within a published hand-off not yet acknowledged, so
    /// the writer does not write the data now.
    unsafe fn copy_out(&self, offset: usize, dst: &mut [u8]);
}

/// One side's view of the two slots: its own (it writes) and the peer's (it reads).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slots<'a, D> {
    pub(crate) mine: &'a SlotHeader,
    pub(crate) my_data: &'a D,
    pub(crate) theirs: &'a SlotHeader,
    pub(crate) their_data: &'a D,
}

/// A hand-off whose `len` is 0 or larger than the slot: the peer broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadHandOff(pub(crate) u64);

/// One side's local copies of the counters and its place in the current hand-off.
#[derive(Debug, Default)]
pub(crate) struct SlotState {
    sent: u64,
    consumed: u64,
    /// The `consumed` last stored in our `ack` (see "When the reader acknowledges").
    acked: u64,
    current_len: usize,
    current_read: usize,
    /// The length of the previous hand-off, the guess for the next (see `try_read`).
    last_len: usize,
}

impl SlotState {
    /// True when a hand-off read to the end is not acknowledged yet.
    pub(crate) fn ack_pending(&self) -> bool {
        self.acked != self.consumed
    }

    /// Acknowledges every hand-off read to the end that is not acknowledged yet.
    pub(crate) fn flush_ack<D: SlotData>(&mut self, slots: &Slots<'_, D>) {
        if self.acked != self.consumed {
            self.acked = self.consumed;
            // Release pairs with the peer's Acquire load of our `ack` in `writable`: our copy
            // out is done before it overwrites its slot.
            slots.mine.ack.store(self.consumed, Ordering::Release);
        }
    }

    /// True when our slot is free for the next hand-off (the wait condition of a writer).
    pub(crate) fn writable<D: SlotData>(&self, slots: &Slots<'_, D>) -> bool {
        // Acquire pairs with the peer's Release store of its `ack` in `flush_ack`: it has
        // copied our previous hand-off out before we overwrite it.
        slots.theirs.ack.load(Ordering::Acquire) == self.sent
    }

    /// Publishes `piece` (1 to `bytes()` bytes) as the next hand-off if the slot is free.
    /// Acknowledges what was read first, free slot or not.
    pub(crate) fn try_write<D: SlotData>(&mut self, slots: &Slots<'_, D>, piece: &[u8]) -> bool {
        assert!(
            !piece.is_empty() && piece.len() <= slots.my_data.bytes(),
            "a hand-off carries 1 to bytes() bytes"
        );
        // Just before our bytes: `ack` and the hand-off take the line from the peer together.
        self.flush_ack(slots);
        if !self.writable(slots) {
            return false;
        }
        // SAFETY: `piece.len() <= bytes()` (asserted); the peer acknowledged every earlier
        // hand-off (the Acquire load in `writable`), so it does not read the data now.
        unsafe { slots.my_data.copy_in(piece) };
        // Relaxed: published by the Release store of `seq` below.
        slots.mine.len.store(piece.len() as u64, Ordering::Relaxed);
        self.sent += 1;
        // Release pairs with the peer's Acquire load of our `seq` in `readable`: the bytes and
        // `len` above are visible to it.
        slots.mine.seq.store(self.sent, Ordering::Release);
        true
    }

    /// True when bytes are there to read (the wait condition of a reader).
    pub(crate) fn readable<D: SlotData>(&self, slots: &Slots<'_, D>) -> bool {
        // Acquire pairs with the peer's Release store of its `seq` in `try_write`: its bytes
        // and `len` for the next hand-off are visible once we see it.
        self.current_read < self.current_len || slots.theirs.seq.load(Ordering::Acquire) > self.consumed
    }

    /// Reads up to `buf.len()` bytes of the current or next hand-off; 0 when none is there,
    /// having acknowledged what was read (the caller is about to wait).
    pub(crate) fn try_read<D: SlotData>(&mut self, slots: &Slots<'_, D>, buf: &mut [u8]) -> Result<usize, BadHandOff> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.readable(slots) {
            self.flush_ack(slots);
            return Ok(0);
        }
        if self.current_read == self.current_len {
            // The copy below is sized by the guess when the two agree (module docs, "Guessing
            // the length").
            let guess = self.last_len;
            // Relaxed: published by the `seq` store that `readable`'s Acquire load saw.
            let len = slots.theirs.len.load(Ordering::Relaxed);
            if len == 0 || len > slots.their_data.bytes() as u64 {
                return Err(BadHandOff(len));
            }
            self.current_len = guess_or(guess, len as usize);
            self.last_len = self.current_len;
            self.current_read = 0;
        }
        let take = (self.current_len - self.current_read).min(buf.len());
        // SAFETY: `current_read + take <= current_len <= bytes()` (checked above), within the
        // published hand-off we have not acknowledged yet, so the writer leaves it alone.
        unsafe { slots.their_data.copy_out(self.current_read, &mut buf[..take]) };
        self.current_read += take;
        if self.current_read == self.current_len {
            // Acknowledged later (module docs, "When the reader acknowledges").
            self.consumed += 1;
        }
        Ok(take)
    }
}

/// `len`, as the value of `guess` when the two are equal.
///
/// The same number either way; what differs is where the processor takes it from. A copy
/// sized by a length just loaded from the peer's line cannot issue its loads before that load
/// completes. Sized by `guess`, a value already in this core, it can issue them as soon as the
/// processor predicts the wait is over and the comparison equal, so (as far as we can tell
/// from the timings: this machine has no cache-miss counters) the transfer of the data's
/// second line overlaps the first's. A wrong guess costs a mispredicted branch. `black_box`
/// keeps the optimiser from folding the two arms into `len` (they are equal) or into a
/// conditional move, which would again wait for `len`.
#[inline(always)]
pub(crate) fn guess_or(guess: usize, len: usize) -> usize {
    if len == guess { std::hint::black_box(guess) } else { len }
}

/// A slot on the heap for the loom models: each byte its own cell, so loom reports a read
/// that the protocol did not order after its write.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct HeapSlot {
    pub(crate) header: SlotHeader,
    cells: Box<[crate::sync::UnsafeCell<u8>]>,
}

#[cfg(loom)]
impl HeapSlot {
    /// An empty slot of `bytes` data bytes.
    pub(crate) fn new(bytes: usize) -> Self {
        HeapSlot {
            header: SlotHeader::default(),
            cells: (0..bytes).map(|_| crate::sync::UnsafeCell::new(0)).collect(),
        }
    }
}

#[cfg(loom)]
// SAFETY: the cells are reached only through `copy_in`/`copy_out`, whose callers (the slot's
// one writer and one reader) are ordered by the protocol's Release/Acquire pairs.
unsafe impl Sync for HeapSlot {}

#[cfg(loom)]
// SAFETY: `bytes` is the fixed number of cells, and the copies touch only the cells named.
unsafe impl SlotData for HeapSlot {
    fn bytes(&self) -> usize {
        self.cells.len()
    }

    unsafe fn copy_in(&self, src: &[u8]) {
        for (cell, &byte) in self.cells.iter().zip(src) {
            // SAFETY: the caller guarantees the reader does not read the slot now.
            cell.with_mut(|ptr| unsafe { ptr.write(byte) });
        }
    }

    unsafe fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        for (cell, byte) in self.cells[offset..offset + dst.len()].iter().zip(dst) {
            // SAFETY: the caller guarantees the writer does not write the slot now.
            *byte = cell.with(|ptr| unsafe { ptr.read() });
        }
    }
}
