//! The single-producer single-consumer byte ring and its index protocol.
//!
//! # Layout
//!
//! A ring is a data area of `capacity` bytes (a power of two) plus two counters, each on its
//! own cache line ([`Counters`]):
//!
//! ```text
//! tail  u64, written only by the producer: bytes ever published
//! head  u64, written only by the consumer: bytes ever released
//! data  [u8; capacity]
//! ```
//!
//! The storage is abstract ([`Storage`]): the transport keeps counters and data in a shared
//! mapping (`region::MappedRing`), the property tests and loom models in a heap allocation
//! ([`HeapRing`]). The protocol below is the same code over both.
//!
//! # Index scheme
//!
//! `head` and `tail` are byte counters that only grow (with wrapping arithmetic, so even a
//! `u64` overflow, which no real run reaches, is harmless). A byte's position in the data area
//! is `counter % capacity`, computed as `counter & (capacity - 1)`. The bytes in
//! `head..tail` are readable by the consumer; the rest of the area is free for the producer.
//! The ring is empty when `tail == head` and full when `tail - head == capacity`; no slot is
//! sacrificed to tell the two apart.
//!
//! # Protocol
//!
//! - The producer copies bytes into free space (`Producer::write`), then makes them visible
//!   with one `Release` store of `tail` (`Producer::publish`). Several writes may share one
//!   publish, which is how a length prefix and its message become visible together.
//! - The consumer loads `tail` with `Acquire` (`Consumer::available`), copies bytes out
//!   (`Consumer::read`), then hands the space back with one `Release` store of `head`
//!   (`Consumer::release`).
//! - The producer loads `head` with `Acquire` before reusing space (`Producer::free`).
//!
//! Each side keeps a private copy of the counter it owns and a cached copy of the other
//! side's counter, and reloads the shared counter only when the cached value cannot satisfy the
//! request. On the fast path a side therefore touches only its own cache line, and the other
//! side's line moves only when space or data actually runs out.
//!
//! Nothing here is a pointer: counters are numbers and positions are offsets into the data
//! area, so the two processes may map the area at different addresses.
//!
//! # Records and commit words
//!
//! The transport sends messages as records ([`Producer::try_write_record`],
//! [`Consumer::header`]). Every record starts on a cache line (its counter is a multiple of
//! [`RECORD_ALIGN`]) with a 16-byte header, the *commit word* and the body's length, and is
//! padded to the next line:
//!
//! ```text
//! at      commit word  u64: commit_word(at, key) when the whole record is here, that ^ PIECES
//!                      when only the header is and the body follows through `tail`
//! at + 8  length       u64 little-endian
//! at + 16 body, then padding up to the next multiple of RECORD_ALIGN
//! ```
//!
//! The producer writes the body and the length, then stores the commit word with `Release`;
//! the consumer polls the commit word at its `head` with `Acquire`. A small message then
//! arrives on the lines the consumer already polls, without a trip to the `tail` line first:
//! on the 2-vCPU KVM build machine that took the 64-byte spin round-trip p50 from 530 to 487 ns
//! (0 bytes: 332 to 320 ns), against a floor of 248 ns for any two lines (`calibration`).
//! (`tail` is still stored after every record, and is what a body sent in pieces is read by.)
//! `commit_word(at, key) = at ^ key` is different for every counter value, so a commit word
//! left over from an earlier lap never matches; `key` is the region's random token (with bit
//! 62 set, so a fresh, zeroed area never matches either), so leftover *body* bytes match only
//! by a 2^-64 accident.
//!
//! # Robustness against a broken peer
//!
//! The counters live in memory that another process can write. The free and available counts
//! are clamped to `0..=capacity` and every copy is bounds-checked against them, so a corrupt
//! counter can garble messages or stall the ring but can never make a copy leave the data
//! area.

#[cfg(any(test, loom))]
use crate::sync::UnsafeCell;
use crate::sync::{AtomicU64, Ordering};

/// Every record starts at a counter that is a multiple of this: on a cache line of its own.
pub(crate) const RECORD_ALIGN: u64 = 64;
/// Bytes of a record's header: the commit word and the body's length.
pub(crate) const RECORD_HEADER_BYTES: u64 = 16;
/// The body bytes that share the header's cache line.
pub(crate) const FIRST_LINE_BODY: usize = (RECORD_ALIGN - RECORD_HEADER_BYTES) as usize;
/// The body bytes of a record of two cache lines.
pub(crate) const TWO_LINE_BODY: usize = (2 * RECORD_ALIGN - RECORD_HEADER_BYTES) as usize;
/// Flipped in the commit word of a record whose body follows in pieces.
const PIECES: u64 = 1 << 63;

/// The ring bytes a record with a body of `len` bytes takes, padding included (saturating: a
/// body that large never fits anyway).
pub(crate) fn record_bytes(len: u64) -> u64 {
    RECORD_HEADER_BYTES
        .saturating_add(len)
        .checked_next_multiple_of(RECORD_ALIGN)
        .unwrap_or(!(RECORD_ALIGN - 1))
}

/// The commit word of a whole record starting at counter `at`.
fn commit_word(at: u64, key: u64) -> u64 {
    at ^ key
}

/// Turns a region token into a commit key: bit 62 set, so `commit_word(at, key)` is not 0 (a
/// fresh area) for any counter a run can reach, and bit 63 clear, so no whole-record word of
/// one counter is the pieces word of another one that near.
pub(crate) fn commit_key(token: u64) -> u64 {
    (token | 1 << 62) & !PIECES
}

/// Copies `src` (at most [`FIRST_LINE_BODY`] bytes) to `offset` with a few copies of constant
/// sizes, overlapping where the length falls between them, rather than one of a runtime length:
/// that is a `memcpy` call, or, built on the stack first, a store-forwarding stall when the line
/// is copied on (`perf` put 57% of `try_write_record`'s cycles on that stall).
///
/// # Safety
///
/// As [`Storage::copy_in`] for the range `offset..offset + src.len()`.
unsafe fn copy_in_small<S: Storage>(storage: &S, offset: usize, src: &[u8]) {
    debug_assert!(src.len() <= FIRST_LINE_BODY);
    let len = src.len();
    // SAFETY: in every arm each copy lies in `offset..offset + len` (a copy of N bytes at
    // `at` has `at + N <= len`), which the caller vouches for; overlapping copies write the
    // same source bytes to the same places.
    unsafe {
        match len {
            16.. => {
                storage.copy_in(offset, &src[..16]);
                if len > 32 {
                    storage.copy_in(offset + 16, &src[16..32]);
                }
                storage.copy_in(offset + len - 16, &src[len - 16..]);
            }
            8..16 => {
                storage.copy_in(offset, &src[..8]);
                storage.copy_in(offset + len - 8, &src[len - 8..]);
            }
            4..8 => {
                storage.copy_in(offset, &src[..4]);
                storage.copy_in(offset + len - 4, &src[len - 4..]);
            }
            1..4 => {
                storage.copy_in(offset, &src[..1]);
                storage.copy_in(offset + len - 1, &src[len - 1..]);
                storage.copy_in(offset + len / 2, &src[len / 2..len / 2 + 1]);
            }
            0 => {}
        }
    }
}

/// What [`Consumer::header`] found at the start of the next record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// The whole record is there: a body of this many bytes, and its padding.
    Whole(u64),
    /// Only the header is there: a body of this many bytes follows in pieces through `tail`.
    Pieces(u64),
}

/// Ring size in bytes: a power of two, so a position is `counter & (capacity - 1)`.
///
/// Invariant: `bytes` is a power of two (and so is never 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Capacity(u64);

impl Capacity {
    /// Accepts only powers of two.
    pub(crate) fn new(bytes: u64) -> Option<Capacity> {
        bytes.is_power_of_two().then_some(Capacity(bytes))
    }

    /// The size in bytes.
    pub(crate) fn bytes(self) -> u64 {
        self.0
    }

    /// The position in the data area of the byte numbered `counter`.
    fn offset(self, counter: u64) -> usize {
        // A position is below the capacity, which fits the address space of the data area.
        (counter & (self.0 - 1)) as usize
    }
}

/// Gives its contents a cache line of their own (128 bytes also covers adjacent-line
/// prefetch), so a line written by one side is not invalidated by the other side's writes.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub(crate) struct CachePadded<T>(pub(crate) T);

/// The two counters of one ring. `#[repr(C)]`: it is part of the shared-memory header.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Counters {
    /// Bytes ever published. Written only by the producer.
    pub(crate) tail: CachePadded<AtomicU64>,
    /// Bytes ever released. Written only by the consumer.
    pub(crate) head: CachePadded<AtomicU64>,
}

#[cfg(any(test, loom))]
impl Counters {
    /// An empty ring whose counters start at `start` (tests pick starts near a wrap point).
    pub(crate) fn new(start: u64) -> Self {
        Counters {
            tail: CachePadded(AtomicU64::new(start)),
            head: CachePadded(AtomicU64::new(start)),
        }
    }
}

/// Where one ring's counters and data area live.
///
/// # Safety
///
/// An implementor promises that [`Storage::capacity`] and [`Storage::counters`] return the same
/// values for the storage's whole life, and that the data area is `capacity` bytes that only
/// this ring's one [`Producer`] and one [`Consumer`] access, through `copy_in` and `copy_out`.
pub(crate) unsafe trait Storage {
    /// The size of the data area.
    fn capacity(&self) -> Capacity;

    /// The ring's counters.
    fn counters(&self) -> &Counters;

    /// Copies `src` into the data area at `offset`.
    ///
    /// # Safety
    ///
    /// `offset + src.len() <= capacity`, and the range is free space owned by the producer: the
    /// consumer does not touch it until a later `tail` store publishes it.
    unsafe fn copy_in(&self, offset: usize, src: &[u8]);

    /// Copies bytes from the data area at `offset` into `dst`.
    ///
    /// # Safety
    ///
    /// `offset + dst.len() <= capacity`, and the range is published data owned by the
    /// consumer: the producer does not touch it until a later `head` store releases it.
    unsafe fn copy_out(&self, offset: usize, dst: &mut [u8]);

    /// The 8 bytes at `offset` as an atomic word (a record's commit word).
    ///
    /// # Safety
    ///
    /// `offset` is a multiple of 8 and `offset + 8 <= capacity`; the word is only accessed
    /// atomically while the other side may be looking at it (the producer stores it only after
    /// the consumer released its bytes, and the consumer reads the bytes after it non-atomically
    /// only after an `Acquire` load of it saw the producer's `Release` store).
    unsafe fn word(&self, offset: usize) -> &AtomicU64;
}

// SAFETY: an `Arc` forwards to one shared `T`, so the values and the data area it names are
// those of `T`, which upholds the contract.
unsafe impl<T: Storage> Storage for crate::sync::Arc<T> {
    fn capacity(&self) -> Capacity {
        (**self).capacity()
    }

    fn counters(&self) -> &Counters {
        (**self).counters()
    }

    unsafe fn copy_in(&self, offset: usize, src: &[u8]) {
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { (**self).copy_in(offset, src) }
    }

    unsafe fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { (**self).copy_out(offset, dst) }
    }

    unsafe fn word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { (**self).word(offset) }
    }
}

/// The writing end of a ring.
///
/// Invariant: `tail - head_cache <= capacity` (wrapping), where `tail` counts every byte
/// written so far, published or not, and `head_cache` is a value of the shared `head` that is
/// at most the current one.
#[derive(Debug)]
pub(crate) struct Producer<S: Storage> {
    storage: S,
    capacity: Capacity,
    /// Bytes written so far, including unpublished ones; only this producer advances it.
    tail: u64,
    /// The value last stored to the shared `tail`.
    published: u64,
    /// The last value of the shared `head` this producer has seen.
    head_cache: u64,
}

impl<S: Storage> Producer<S> {
    /// The producer of the ring in `storage`.
    ///
    /// # Safety
    ///
    /// There is no other `Producer` for this storage, in this process or any other, while this
    /// one lives; and the counters describe a valid ring (`tail - head <= capacity`).
    pub(crate) unsafe fn new(storage: S) -> Self {
        let capacity = storage.capacity();
        let counters = storage.counters();
        // Relaxed: only a producer stores `tail` and the caller guarantees we are the only one,
        // so the value is our own (set before the storage was handed to us).
        let tail = counters.tail.0.load(Ordering::Relaxed);
        // Acquire pairs with the Release store in `Consumer::release`: the consumer is done
        // with the bytes below this `head`.
        let head_cache = counters.head.0.load(Ordering::Acquire);
        Producer {
            storage,
            capacity,
            tail,
            published: tail,
            head_cache,
        }
    }

    /// The ring's capacity.
    pub(crate) fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// Free bytes by the cached `head`, clamped so a corrupt counter cannot exceed capacity.
    fn cached_free(&self) -> u64 {
        let used = self.tail.wrapping_sub(self.head_cache);
        self.capacity.bytes().saturating_sub(used)
    }

    /// Bytes that can be written now. Reloads the shared `head` only when the cached value
    /// shows fewer than `want` free bytes, so the fast path touches no shared cache line.
    pub(crate) fn free(&mut self, want: u64) -> u64 {
        let free = self.cached_free();
        if free >= want {
            return free;
        }
        // Acquire pairs with the Release store in `Consumer::release`: the consumer has
        // finished reading every byte below the new `head`, so we may overwrite them.
        self.head_cache = self.storage.counters().head.0.load(Ordering::Acquire);
        self.cached_free()
    }

    /// Copies `bytes` into free space without publishing them.
    ///
    /// # Panics
    ///
    /// If `bytes` is longer than the free space last returned by [`Producer::free`] (minus
    /// what was written since): a caller bug, caught before any memory is touched.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        let len = bytes.len() as u64;
        assert!(
            len <= self.cached_free(),
            "ring write of {len} bytes exceeds the free space"
        );
        let start = self.capacity.offset(self.tail);
        let first = bytes.len().min(self.capacity.bytes() as usize - start);
        let (before_wrap, after_wrap) = bytes.split_at(first);
        // SAFETY: `start < capacity` and `first <= capacity - start`, so the first range is in
        // the data area; the second starts at 0 and is `len - first <= start` long (because
        // `len <= capacity`), so it ends before the first begins. Both lie in free space (the
        // assert above, with `head_cache` never ahead of the real `head`), which the consumer
        // does not read until `publish` stores a `tail` covering them.
        unsafe {
            self.storage.copy_in(start, before_wrap);
            if !after_wrap.is_empty() {
                self.storage.copy_in(0, after_wrap);
            }
        }
        self.tail = self.tail.wrapping_add(len);
    }

    /// True when bytes were written since the last [`Producer::publish`].
    #[cfg(all(test, not(loom)))]
    pub(crate) fn has_unpublished(&self) -> bool {
        self.tail != self.published
    }

    /// Makes every written byte visible to the consumer.
    pub(crate) fn publish(&mut self) {
        // Release pairs with the Acquire load in `Consumer::available`: the copies made by
        // `write` happen before the consumer reads them.
        self.storage.counters().tail.0.store(self.tail, Ordering::Release);
        self.published = self.tail;
    }

    /// Copies `bytes` into free space `skip` bytes past the write position, without advancing.
    fn write_ahead(&mut self, skip: u64, bytes: &[u8]) {
        let len = bytes.len() as u64;
        assert!(
            skip.saturating_add(len) <= self.cached_free(),
            "ring write of {len} bytes at +{skip} exceeds the free space"
        );
        let start = self.capacity.offset(self.tail.wrapping_add(skip));
        let first = bytes.len().min(self.capacity.bytes() as usize - start);
        let (before_wrap, after_wrap) = bytes.split_at(first);
        // SAFETY: as in `write`: both ranges lie in the data area, do not overlap, and are
        // free space (the assert) that the consumer does not read until a later publication.
        unsafe {
            self.storage.copy_in(start, before_wrap);
            if !after_wrap.is_empty() {
                self.storage.copy_in(0, after_wrap);
            }
        }
    }

    /// Moves the write position over `n` free bytes without writing them (a record's padding).
    ///
    /// # Panics
    ///
    /// If fewer than `n` bytes are free by the last [`Producer::free`].
    pub(crate) fn advance(&mut self, n: u64) {
        assert!(
            n <= self.cached_free(),
            "ring advance of {n} bytes exceeds the free space"
        );
        self.tail = self.tail.wrapping_add(n);
    }

    /// Stores the commit word of the record starting at the write position.
    fn commit(&mut self, word: u64) {
        debug_assert_eq!(self.tail % RECORD_ALIGN, 0, "records start on a line");
        let offset = self.capacity.offset(self.tail);
        // SAFETY: `offset` is a multiple of RECORD_ALIGN (records start on one, and the
        // capacity is a multiple of it), so the word is aligned and inside the data area. Its
        // bytes are free space (the callers checked), so the consumer only loads it atomically.
        let slot = unsafe { self.storage.word(offset) };
        // Release pairs with the Acquire load in `Consumer::header`: the body and length
        // written before this store are visible to a consumer that sees the word.
        slot.store(word, Ordering::Release);
    }

    /// Writes `body` as one whole record and publishes it, if the record fits the free space;
    /// returns false, having written nothing, if it does not.
    ///
    /// The body's lines after the header's are written first and the header's line last, so
    /// the line the consumer polls is taken from it once, with everything on it.
    pub(crate) fn try_write_record(&mut self, body: &[u8], key: u64) -> bool {
        let total = record_bytes(body.len() as u64);
        if self.free(total) < total {
            return false;
        }
        let (first_line, rest) = body.split_at(body.len().min(FIRST_LINE_BODY));
        if !rest.is_empty() {
            self.write_ahead(RECORD_ALIGN, rest);
        }
        let offset = self.capacity.offset(self.tail);
        // SAFETY: records start on a line (`tail` is a multiple of RECORD_ALIGN) and the
        // capacity is a multiple of it, since a record of at least one line fit (`free` above):
        // the line `offset..offset + 64` lies in the data area (the length at +8..+16, at most
        // FIRST_LINE_BODY body bytes from +16), and it is free space of this record, which the
        // consumer does not read before the commit word below.
        unsafe {
            self.storage.copy_in(offset + 8, &(body.len() as u64).to_le_bytes());
            copy_in_small(&self.storage, offset + RECORD_HEADER_BYTES as usize, first_line);
        }
        self.commit(commit_word(self.tail, key));
        self.tail = self.tail.wrapping_add(total);
        self.publish();
        true
    }

    /// Writes the header of a record whose body of `len` bytes will follow in pieces (written
    /// with [`Producer::write`], padded with [`Producer::advance`], published as it goes).
    ///
    /// # Panics
    ///
    /// If fewer than [`RECORD_HEADER_BYTES`] bytes are free by the last [`Producer::free`].
    pub(crate) fn write_pieces_header(&mut self, len: u64, key: u64) {
        self.write_ahead(8, &len.to_le_bytes());
        self.commit(commit_word(self.tail, key) ^ PIECES);
        self.tail = self.tail.wrapping_add(RECORD_HEADER_BYTES);
    }
}

/// The reading end of a ring.
///
/// Invariant: `tail_cache - head <= capacity` once clamped, where `head` counts every byte
/// read so far, released or not, and `tail_cache` is a value of the shared `tail` that is at
/// most the current one.
#[derive(Debug)]
pub(crate) struct Consumer<S: Storage> {
    storage: S,
    capacity: Capacity,
    /// Bytes read so far, including unreleased ones; only this consumer advances it.
    head: u64,
    /// The value last stored to the shared `head`.
    released: u64,
    /// The last value of the shared `tail` this consumer has seen.
    tail_cache: u64,
}

impl<S: Storage> Consumer<S> {
    /// The consumer of the ring in `storage`.
    ///
    /// # Safety
    ///
    /// There is no other `Consumer` for this storage, in this process or any other, while this
    /// one lives; and the counters describe a valid ring (`tail - head <= capacity`).
    pub(crate) unsafe fn new(storage: S) -> Self {
        let capacity = storage.capacity();
        let counters = storage.counters();
        // Relaxed: only a consumer stores `head` and the caller guarantees we are the only
        // one, so the value is our own.
        let head = counters.head.0.load(Ordering::Relaxed);
        // Acquire pairs with the Release store in `Producer::publish`: the bytes below this
        // `tail` are written.
        let tail_cache = counters.tail.0.load(Ordering::Acquire);
        Consumer {
            storage,
            capacity,
            head,
            released: head,
            tail_cache,
        }
    }

    /// Readable bytes by the cached `tail`, clamped so a corrupt counter cannot exceed the
    /// capacity.
    fn cached_available(&self) -> u64 {
        self.tail_cache.wrapping_sub(self.head).min(self.capacity.bytes())
    }

    /// Bytes that can be read now. Reloads the shared `tail` only when the cached value shows
    /// fewer than `want` readable bytes.
    pub(crate) fn available(&mut self, want: u64) -> u64 {
        let available = self.cached_available();
        if available >= want {
            return available;
        }
        // Acquire pairs with the Release store in `Producer::publish`: every byte below the
        // new `tail` was written before it was published.
        let tail = self.storage.counters().tail.0.load(Ordering::Acquire);
        self.extend_to(tail);
        self.cached_available()
    }

    /// Raises `tail_cache` to `end` unless that would move it back: a record seen by its commit
    /// word is readable before the `tail` that covers it is stored.
    fn extend_to(&mut self, end: u64) {
        // Counters grow and wrap: `end` is ahead when the wrapping distance is under 2^63.
        if end.wrapping_sub(self.tail_cache) < 1 << 63 {
            self.tail_cache = end;
        }
    }

    /// The header of the next record, when its commit word says it is there.
    ///
    /// A whole record's bytes (header, body and padding), or a piecewise one's header, then
    /// count as available. `None` when no record starts at the read position yet, or when the
    /// header is corrupt (a whole record longer than the ring): the caller waits on, which
    /// stalls but never reads outside the data area.
    pub(crate) fn header(&mut self, key: u64) -> Option<Header> {
        debug_assert_eq!(self.head % RECORD_ALIGN, 0, "records start on a line");
        let offset = self.capacity.offset(self.head);
        // SAFETY: `offset` is a multiple of RECORD_ALIGN, so the word is aligned and inside the
        // data area; the producer stores it only atomically (`Producer::commit`).
        let word = unsafe { self.storage.word(offset) };
        // Acquire pairs with the Release store in `Producer::commit`: the length and body
        // written before it are visible once we see the word.
        let seen = word.load(Ordering::Acquire);
        let whole = commit_word(self.head, key);
        let pieces = seen == whole ^ PIECES;
        if seen != whole && !pieces {
            return None;
        }
        let mut len = [0u8; 8];
        // SAFETY: `offset + 16 <= capacity` (offset is a multiple of 64 below the capacity,
        // itself a multiple of 64); the length was written before the commit word we saw and
        // is not touched again until we release the record.
        unsafe { self.storage.copy_out(offset + 8, &mut len) };
        let len = u64::from_le_bytes(len);
        if pieces {
            self.extend_to(self.head.wrapping_add(RECORD_HEADER_BYTES));
            return Some(Header::Pieces(len));
        }
        let total = record_bytes(len);
        if total > self.capacity.bytes() {
            return None;
        }
        self.extend_to(self.head.wrapping_add(total));
        Some(Header::Whole(len))
    }

    /// Copies the next `dst.len()` bytes without consuming them.
    ///
    /// # Panics
    ///
    /// If fewer bytes are available than `dst` needs (by the last [`Consumer::available`]).
    pub(crate) fn peek(&self, dst: &mut [u8]) {
        let len = dst.len() as u64;
        assert!(
            len <= self.cached_available(),
            "ring read of {len} bytes exceeds the data"
        );
        let start = self.capacity.offset(self.head);
        let first = dst.len().min(self.capacity.bytes() as usize - start);
        let (before_wrap, after_wrap) = dst.split_at_mut(first);
        // SAFETY: as in `Producer::write`, both ranges lie in the data area and do not overlap.
        // They hold published bytes (the assert, with `tail_cache` never ahead of the real
        // `tail`), which the producer does not overwrite until `release` stores a `head` past
        // them.
        unsafe {
            self.storage.copy_out(start, before_wrap);
            if !after_wrap.is_empty() {
                self.storage.copy_out(0, after_wrap);
            }
        }
    }

    /// Copies the body of a whole record of `len <= FIRST_LINE_BODY` bytes whose header was
    /// just seen into `dst`, as one copy of a constant size (all the body bytes the line can
    /// hold: bytes of `dst` past `len` are overwritten with the record's padding), and
    /// consumes the record.
    ///
    /// # Panics
    ///
    /// If `len` is larger than [`FIRST_LINE_BODY`] or the record is not available.
    pub(crate) fn read_small(&mut self, len: u64, dst: &mut [u8; FIRST_LINE_BODY]) {
        assert!(
            len <= FIRST_LINE_BODY as u64,
            "a small record has at most one line of body"
        );
        assert!(
            self.cached_available() >= RECORD_ALIGN,
            "ring read of a record exceeds the data"
        );
        let offset = self.capacity.offset(self.head);
        // SAFETY: `head` is at a record's start, a multiple of RECORD_ALIGN, and the capacity
        // is a multiple of it, so `offset + 64 <= capacity`; the record's whole line is
        // published (the assert, by its commit word), and the producer does not overwrite it
        // until `release` stores a `head` past it.
        unsafe { self.storage.copy_out(offset + RECORD_HEADER_BYTES as usize, dst) };
        self.head = self.head.wrapping_add(RECORD_ALIGN);
    }

    /// Copies the body of a whole record of `FIRST_LINE_BODY < len <= TWO_LINE_BODY` bytes
    /// whose header was just seen into `dst` as one copy of a constant size, like
    /// [`Consumer::read_small`] for the record's two lines, and consumes the record. `false`
    /// (nothing read) when the record wraps around the end of the data area.
    ///
    /// The copy's size and addresses do not depend on the length just loaded from the
    /// record's line (as `slot::guess_or` explains for the bare slot). Measured at 64 B with a
    /// 64 KiB ring (2 vCPU KVM guest, alternating runs): 240-270 ns per round trip against
    /// 260-300 ns with the copy sized by the length.
    ///
    /// # Panics
    ///
    /// If `len` is out of that range or the record is not available.
    pub(crate) fn read_two_lines(&mut self, len: u64, dst: &mut [u8; TWO_LINE_BODY]) -> bool {
        assert!(
            len > FIRST_LINE_BODY as u64 && len <= TWO_LINE_BODY as u64,
            "a two-line record has more than one line of body and at most two"
        );
        assert!(
            self.cached_available() >= 2 * RECORD_ALIGN,
            "ring read of a record exceeds the data"
        );
        let offset = self.capacity.offset(self.head);
        if offset + 2 * RECORD_ALIGN as usize > self.capacity.bytes() as usize {
            return false;
        }
        // SAFETY: `offset + 128 <= capacity` (checked above), inside the data area; the
        // record's two lines are published (the assert, by its commit word: its length makes
        // `record_bytes` 128), and the producer does not overwrite them until `release` stores
        // a `head` past them.
        unsafe { self.storage.copy_out(offset + RECORD_HEADER_BYTES as usize, dst) };
        self.head = self.head.wrapping_add(2 * RECORD_ALIGN);
        true
    }

    /// Copies the next `dst.len()` bytes out and consumes them (without releasing the space).
    ///
    /// # Panics
    ///
    /// As [`Consumer::peek`].
    pub(crate) fn read(&mut self, dst: &mut [u8]) {
        self.peek(dst);
        self.head = self.head.wrapping_add(dst.len() as u64);
    }

    /// Consumes `n` bytes without copying them.
    ///
    /// # Panics
    ///
    /// If fewer than `n` bytes are available.
    pub(crate) fn skip(&mut self, n: u64) {
        assert!(n <= self.cached_available(), "ring skip of {n} bytes exceeds the data");
        self.head = self.head.wrapping_add(n);
    }

    /// True when bytes were consumed since the last [`Consumer::release`].
    #[cfg(all(test, not(loom)))]
    pub(crate) fn has_unreleased(&self) -> bool {
        self.head != self.released
    }

    /// Hands the space of every consumed byte back to the producer.
    pub(crate) fn release(&mut self) {
        // Release pairs with the Acquire load in `Producer::free`: our copies out of the
        // released range happen before the producer overwrites it.
        self.storage.counters().head.0.store(self.head, Ordering::Release);
        self.released = self.head;
    }
}

/// A ring on the heap: what the property tests and the loom models drive.
#[cfg(any(test, loom))]
///
/// Each byte is its own [`UnsafeCell`], so under loom every access to the data is tracked and
/// a missing happens-before edge between a write and a read is reported as a data race.
#[derive(Debug)]
pub(crate) struct HeapRing {
    counters: Counters,
    cells: Box<[UnsafeCell<u8>]>,
    /// The commit words, one per 8 bytes of the area, kept beside the cells (loom cannot view
    /// a cell as an atomic): here a body byte never aliases a commit word, which the mapped
    /// ring's tests cover instead.
    words: Box<[AtomicU64]>,
    capacity: Capacity,
}

#[cfg(any(test, loom))]
// SAFETY: the cells are only reached through `copy_in`/`copy_out`, whose callers (the one
// producer and the one consumer) touch disjoint ranges, ordered by the counters' Release and
// Acquire operations; the counters are atomics.
unsafe impl Sync for HeapRing {}
#[cfg(any(test, loom))]
// SAFETY: as for `Sync`; the ring owns its cells and holds no thread-bound state.
unsafe impl Send for HeapRing {}

#[cfg(any(test, loom))]
// SAFETY: `capacity` and `counters` never change, `cells` has exactly `capacity` entries
// (built in `in_memory`), and only `copy_in`/`copy_out` touch them.
unsafe impl Storage for HeapRing {
    fn capacity(&self) -> Capacity {
        self.capacity
    }

    fn counters(&self) -> &Counters {
        &self.counters
    }

    unsafe fn copy_in(&self, offset: usize, src: &[u8]) {
        for (cell, &byte) in self.cells[offset..offset + src.len()].iter().zip(src) {
            // SAFETY: the caller guarantees the producer owns this byte for now (free space),
            // so nothing else reads or writes it during the write.
            cell.with_mut(|ptr| unsafe { ptr.write(byte) });
        }
    }

    unsafe fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        for (cell, byte) in self.cells[offset..offset + dst.len()].iter().zip(dst) {
            // SAFETY: the caller guarantees the consumer owns this byte for now (published and
            // not yet released), so nothing writes it during the read.
            *byte = cell.with(|ptr| unsafe { ptr.read() });
        }
    }

    unsafe fn word(&self, offset: usize) -> &AtomicU64 {
        &self.words[offset / 8]
    }
}

/// A fresh heap ring whose counters start at `start`, and its two ends.
#[cfg(any(test, loom))]
pub(crate) fn in_memory(
    capacity: Capacity,
    start: u64,
) -> (
    Producer<crate::sync::Arc<HeapRing>>,
    Consumer<crate::sync::Arc<HeapRing>>,
) {
    let cells = (0..capacity.bytes()).map(|_| UnsafeCell::new(0)).collect();
    let words = (0..capacity.bytes().div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
    let ring = crate::sync::Arc::new(HeapRing {
        counters: Counters::new(start),
        cells,
        words,
        capacity,
    });
    // SAFETY: the ring was just made, so these are its only producer and consumer, and its
    // counters start equal (an empty ring).
    unsafe { (Producer::new(crate::sync::Arc::clone(&ring)), Consumer::new(ring)) }
}

#[cfg(all(test, not(loom)))]
pub(crate) mod tests;
