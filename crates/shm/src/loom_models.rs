//! Loom models of the index protocol, of records' commit words, of the bare loop's slots and of
//! the doorbell handshake.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p ipcbench-shm --release
//! --lib loom`. Loom runs each model under every interleaving (up to the preemption bound) and
//! every reordering the memory model allows, over a [`HeapRing`](crate::ring::HeapRing) whose
//! bytes are loom cells: a read of a byte that the protocol did not order after its write is
//! reported as a data race, and a lost wake-up shows up as a model that never ends.
//!
//! The capacities are tiny on purpose: every write then waits for space, every read for
//! data, and the counters wrap (they start just below `u64::MAX`).

use loom::sync::Arc;
use loom::thread;

use crate::doorbell::Doorbell;
use crate::ring::{
    Capacity, Consumer, Header, HeapRing, Producer, RECORD_HEADER_BYTES, TWO_LINE_BODY, commit_key, in_memory,
    record_bytes,
};
use crate::slot::HeapSlot;

type Tx = Producer<Arc<HeapRing>>;
type Rx = Consumer<Arc<HeapRing>>;

fn capacity(bytes: u64) -> Capacity {
    Capacity::new(bytes).expect("power of two")
}

/// Writes `chunks` one by one, each published whole, yielding while the ring is full.
fn write_all(tx: &mut Tx, chunks: &[&[u8]]) {
    for chunk in chunks {
        while tx.free(chunk.len() as u64) < chunk.len() as u64 {
            thread::yield_now();
        }
        tx.write(chunk);
        tx.publish();
    }
}

/// Reads `n` bytes in pieces of at most `piece`, releasing after each piece.
fn read_n(rx: &mut Rx, n: usize, piece: usize) -> Vec<u8> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let available = rx.available(1) as usize;
        if available == 0 {
            thread::yield_now();
            continue;
        }
        let mut buf = vec![0u8; available.min(piece).min(n - seen.len())];
        rx.read(&mut buf);
        rx.release();
        seen.extend_from_slice(&buf);
    }
    seen
}

#[test]
fn loom_bytes_arrive_in_order_through_a_tiny_ring() {
    loom::model(|| {
        let (mut tx, mut rx) = in_memory(capacity(2), u64::MAX - 1);
        let producer = thread::spawn(move || write_all(&mut tx, &[&[1, 2], &[3], &[4]]));
        let seen = read_n(&mut rx, 4, 1);
        producer.join().expect("producer");
        assert_eq!(seen, [1, 2, 3, 4]);
    });
}

#[test]
fn loom_records_written_across_the_wrap_read_back_whole() {
    loom::model(|| {
        let (mut tx, mut rx) = in_memory(capacity(4), u64::MAX - 2);
        let producer = thread::spawn(move || write_all(&mut tx, &[&[1, 2, 3], &[4, 5, 6]]));
        let seen = read_n(&mut rx, 6, 4);
        producer.join().expect("producer");
        assert_eq!(seen, [1, 2, 3, 4, 5, 6]);
    });
}

/// Sends `bodies` as whole records, yielding while the ring is full.
fn send_records(tx: &mut Tx, bodies: &[&[u8]], key: u64) {
    for body in bodies {
        while !tx.try_write_record(body, key) {
            thread::yield_now();
        }
    }
}

/// Receives `n` whole records by their commit words, yielding while none is there.
fn recv_records(rx: &mut Rx, n: usize, key: u64) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let Some(Header::Whole(len)) = rx.header(key) else {
            thread::yield_now();
            continue;
        };
        let mut body = vec![0u8; len as usize];
        rx.skip(RECORD_HEADER_BYTES);
        rx.read(&mut body);
        rx.skip(record_bytes(len) - RECORD_HEADER_BYTES - len);
        rx.release();
        seen.push(body);
    }
    seen
}

#[test]
fn loom_a_committed_record_is_read_whole_and_a_stale_commit_is_ignored() {
    loom::model(|| {
        // One line: the second record reuses the first one's line (and its stale commit word)
        // once the consumer releases it, and the counters cross the `u64` wrap there.
        let key = commit_key(0x0123_4567_89ab_cdef);
        let (mut tx, mut rx) = in_memory(capacity(64), 0u64.wrapping_sub(64));
        let producer = thread::spawn(move || send_records(&mut tx, &[&[1, 2, 3], &[4, 5]], key));
        let seen = recv_records(&mut rx, 2, key);
        producer.join().expect("producer");
        assert_eq!(seen, [vec![1, 2, 3], vec![4, 5]]);
    });
}

#[test]
fn loom_two_line_records_are_read_whole_by_one_constant_copy() {
    loom::model(|| {
        // Two lines: the second record reuses the first one's lines once the consumer releases
        // them, and `read_two_lines` copies both lines whatever the length.
        let key = commit_key(0x0fed_cba9_8765_4321);
        let (mut tx, mut rx) = in_memory(capacity(128), 0u64.wrapping_sub(128));
        let first: Vec<u8> = (1..=49).collect();
        let second: Vec<u8> = (101..=212).collect();
        let bodies = [first.clone(), second.clone()];
        let producer = thread::spawn(move || {
            let refs: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
            send_records(&mut tx, &refs, key);
        });
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let Some(Header::Whole(len)) = rx.header(key) else {
                thread::yield_now();
                continue;
            };
            let mut lines = [0u8; TWO_LINE_BODY];
            assert!(
                rx.read_two_lines(len, &mut lines),
                "a ring of two lines never wraps a record"
            );
            rx.release();
            seen.push(lines[..len as usize].to_vec());
        }
        producer.join().expect("producer");
        assert_eq!(seen, [first, second]);
    });
}

/// The two doorbells of one ring: the consumer sleeps on `data`, the producer on `space`.
#[derive(Default)]
struct Bells {
    data: Doorbell,
    space: Doorbell,
}

/// The transport's wait loop with the futex replaced by "spin until the word is AWAKE".
fn sleep_until(bell: &Doorbell, mut ready: impl FnMut() -> bool) {
    loop {
        if ready() {
            return;
        }
        bell.announce();
        if ready() {
            bell.cancel();
            return;
        }
        while bell.is_announced() {
            thread::yield_now();
        }
        bell.cancel();
    }
}

#[test]
fn loom_doorbells_never_lose_a_wakeup() {
    loom::model(|| {
        let (mut tx, mut rx) = in_memory(capacity(1), u64::MAX);
        let bells = Arc::new(Bells::default());
        let producer_bells = Arc::clone(&bells);
        let producer = thread::spawn(move || {
            for byte in [7u8, 9] {
                sleep_until(&producer_bells.space, || tx.free(1) >= 1);
                tx.write(&[byte]);
                tx.publish();
                // Without the waking half, a sleeping consumer would spin forever.
                producer_bells.data.ring();
            }
        });
        let mut seen = Vec::new();
        for _ in 0..2 {
            sleep_until(&bells.data, || rx.available(1) >= 1);
            let mut buf = [0u8; 1];
            rx.read(&mut buf);
            rx.release();
            bells.space.ring();
            seen.push(buf[0]);
        }
        producer.join().expect("producer");
        assert_eq!(seen, [7, 9]);
    });
}

/// Sends `pieces` through a slot, yielding while the reader has not acknowledged the last one.
fn slot_send(state: &mut crate::slot::SlotState, slots: &crate::slot::Slots<'_, HeapSlot>, pieces: &[&[u8]]) {
    for piece in pieces {
        while !state.try_write(slots, piece) {
            thread::yield_now();
        }
    }
}

/// Reads `n` bytes from a slot in reads of at most `chunk` bytes.
fn slot_receive(
    state: &mut crate::slot::SlotState,
    slots: &crate::slot::Slots<'_, HeapSlot>,
    n: usize,
    chunk: usize,
) -> Vec<u8> {
    let mut seen = Vec::new();
    while seen.len() < n {
        let mut buf = vec![0u8; chunk.min(n - seen.len())];
        let got = state.try_read(slots, &mut buf).expect("hand-off in range");
        if got == 0 {
            thread::yield_now();
        }
        seen.extend_from_slice(&buf[..got]);
    }
    seen
}

#[test]
fn loom_bare_slot_hands_bytes_over_in_order_and_reuses_the_slot_only_after_ack() {
    loom::model(|| {
        // Slot 0 carries client -> server, slot 1 the way back; 2 data bytes each.
        let slot = [Arc::new(HeapSlot::new(2)), Arc::new(HeapSlot::new(2))];
        let [a, b] = [Arc::clone(&slot[0]), Arc::clone(&slot[1])];
        let server = thread::spawn(move || {
            let slots = crate::slot::Slots {
                mine: &b.header,
                my_data: &*b,
                theirs: &a.header,
                their_data: &*a,
            };
            let mut state = crate::slot::SlotState::default();
            // Three hand-offs, read in pieces of one byte, then a one-byte answer.
            let seen = slot_receive(&mut state, &slots, 4, 1);
            slot_send(&mut state, &slots, &[&[9]]);
            seen
        });
        let (a, b) = (&slot[0], &slot[1]);
        let slots = crate::slot::Slots {
            mine: &a.header,
            my_data: &**a,
            theirs: &b.header,
            their_data: &**b,
        };
        let mut state = crate::slot::SlotState::default();
        slot_send(&mut state, &slots, &[&[1, 2], &[3], &[4]]);
        assert_eq!(slot_receive(&mut state, &slots, 1, 2), [9]);
        assert_eq!(server.join().expect("server"), [1, 2, 3, 4]);
    });
}
