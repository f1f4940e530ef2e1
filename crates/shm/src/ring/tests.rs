//! The ring against a `VecDeque<u8>` model, under any sequence of writes, publishes, reads and
//! releases, any capacity and any starting point of the counters (so every wrap point).

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

/// One step of a test sequence.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Write these bytes if they fit (unpublished until `Publish`).
    Write(Vec<u8>),
    /// Publish everything written.
    Publish,
    /// Read up to this many bytes (all of them if that many are published).
    Read(usize),
    /// Copy up to this many bytes without consuming them.
    Peek(usize),
    /// Skip up to this many bytes.
    Skip(usize),
    /// Release everything read.
    Release,
}

pub(crate) fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..=max_len).prop_map(Op::Write),
        3 => Just(Op::Publish),
        4 => (0..=max_len).prop_map(Op::Read),
        1 => (0..=max_len).prop_map(Op::Peek),
        1 => (0..=max_len).prop_map(Op::Skip),
        3 => Just(Op::Release),
    ];
    proptest::collection::vec(op, 0..200)
}

/// Counter starting points: anywhere, and just below the `u64` wrap.
pub(crate) fn starts() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), (0u64..64).prop_map(|k| u64::MAX - k), 0u64..4096]
}

/// Runs `ops` against the ring and the model, checking every answer on the way.
pub(crate) fn check_against_model<S: Storage>(producer: &mut Producer<S>, consumer: &mut Consumer<S>, ops: &[Op]) {
    let capacity = producer.capacity().bytes() as usize;
    let mut published: VecDeque<u8> = VecDeque::new();
    let mut staged: Vec<u8> = Vec::new();
    let mut unreleased = 0usize;
    let mut counter = 0u8;
    for op in ops {
        match op {
            Op::Write(bytes) => {
                // Make the bytes distinct from earlier ones so a misplaced copy is caught.
                let bytes: Vec<u8> = bytes
                    .iter()
                    .map(|b| {
                        counter = counter.wrapping_add(1);
                        b ^ counter
                    })
                    .collect();
                let truly_free = capacity - unreleased - published.len() - staged.len();
                let free = producer.free(bytes.len() as u64) as usize;
                assert!(free <= truly_free, "free {free} > real {truly_free}");
                if bytes.len() <= truly_free {
                    assert!(
                        free >= bytes.len(),
                        "free {free} < wanted {} though it fits",
                        bytes.len()
                    );
                    producer.write(&bytes);
                    staged.extend_from_slice(&bytes);
                }
                assert_eq!(producer.has_unpublished(), !staged.is_empty());
            }
            Op::Publish => {
                producer.publish();
                published.extend(staged.drain(..));
            }
            Op::Read(n) | Op::Peek(n) | Op::Skip(n) => {
                let available = consumer.available(*n as u64) as usize;
                assert!(
                    available <= published.len(),
                    "available {available} > real {}",
                    published.len()
                );
                if *n <= published.len() {
                    assert!(available >= *n);
                } else {
                    assert_eq!(available, published.len(), "a refreshed count must be exact");
                }
                let take = (*n).min(available);
                let mut got = vec![0u8; take];
                match op {
                    Op::Read(_) => {
                        consumer.read(&mut got);
                        let want: Vec<u8> = published.drain(..take).collect();
                        assert_eq!(got, want);
                        unreleased += take;
                    }
                    Op::Peek(_) => {
                        consumer.peek(&mut got);
                        let want: Vec<u8> = published.iter().take(take).copied().collect();
                        assert_eq!(got, want);
                    }
                    _ => {
                        consumer.skip(take as u64);
                        published.drain(..take);
                        unreleased += take;
                    }
                }
            }
            Op::Release => {
                consumer.release();
                unreleased = 0;
            }
        }
        assert_eq!(consumer.has_unreleased(), unreleased > 0);
    }
    // Drain: whatever is left comes out in order.
    producer.publish();
    published.extend(staged.drain(..));
    let mut rest = vec![0u8; published.len()];
    assert_eq!(consumer.available(rest.len() as u64) as usize, rest.len());
    consumer.read(&mut rest);
    assert_eq!(rest, published.into_iter().collect::<Vec<_>>());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ring_matches_vecdeque_model(log2_capacity in 0u32..8, start in starts(), ops in ops(300)) {
        let capacity = Capacity::new(1 << log2_capacity).expect("power of two");
        let (mut producer, mut consumer) = in_memory(capacity, start);
        check_against_model(&mut producer, &mut consumer, &ops);
    }
}

#[test]
fn capacity_accepts_only_powers_of_two() {
    assert_eq!(Capacity::new(0), None);
    assert_eq!(Capacity::new(3), None);
    assert_eq!(Capacity::new(4096).map(Capacity::bytes), Some(4096));
    assert_eq!(Capacity::new(1).map(Capacity::bytes), Some(1));
}

#[test]
fn full_ring_reports_no_free_space() {
    let (mut producer, _consumer) = in_memory(Capacity::new(8).expect("power of two"), 0);
    producer.write(&[1; 8]);
    assert_eq!(producer.free(1), 0);
}

#[test]
#[should_panic(expected = "exceeds the free space")]
fn oversized_write_panics_before_touching_memory() {
    let (mut producer, _consumer) = in_memory(Capacity::new(8).expect("power of two"), 0);
    producer.write(&[1; 9]);
}

#[test]
#[should_panic(expected = "exceeds the data")]
fn read_past_published_data_panics() {
    let (mut producer, mut consumer) = in_memory(Capacity::new(8).expect("power of two"), 0);
    producer.write(&[1; 4]);
    consumer.available(4);
    let mut buf = [0u8; 4];
    consumer.read(&mut buf);
}

#[test]
fn released_space_is_reused_across_the_wrap() {
    let (mut producer, mut consumer) = in_memory(Capacity::new(8).expect("power of two"), u64::MAX - 2);
    let mut buf = [0u8; 6];
    for round in 0..10u8 {
        let bytes = [round; 6];
        assert!(producer.free(6) >= 6);
        producer.write(&bytes);
        producer.publish();
        assert_eq!(consumer.available(6), 6);
        consumer.read(&mut buf);
        consumer.release();
        assert_eq!(buf, bytes);
    }
}

#[test]
fn corrupt_counters_are_clamped() {
    let (mut producer, mut consumer) = in_memory(Capacity::new(8).expect("power of two"), 100);
    // A broken peer moves `head` past `tail` and `tail` far past `head`. Relaxed: one thread.
    producer.storage.counters().head.0.store(200, Ordering::Relaxed);
    producer.storage.counters().tail.0.store(10_000, Ordering::Relaxed);
    assert_eq!(producer.free(9), 0, "head ahead of tail must not look like free space");
    assert_eq!(consumer.available(9), 8, "available never exceeds the capacity");
}

// Records: the commit-word layer the transport sends messages with.

const KEY: u64 = 0x4000_1234_5678_9abc;

/// Reads the next whole record's body, if its commit word is there.
pub(crate) fn take_record<S: Storage>(consumer: &mut Consumer<S>, key: u64) -> Option<Vec<u8>> {
    let Header::Whole(len) = consumer.header(key)? else {
        panic!("a piecewise header where only whole records were written");
    };
    let mut body = vec![0u8; len as usize];
    consumer.skip(RECORD_HEADER_BYTES);
    consumer.read(&mut body);
    consumer.skip(record_bytes(len) - RECORD_HEADER_BYTES - len);
    consumer.release();
    Some(body)
}

/// Sends and receives `sizes` as whole records through a ring of `capacity`, one thread: each
/// message goes in when it fits, and is read back when the ring is full or at the end. Checks
/// that nothing is seen before it is committed and that every body comes back in order.
pub(crate) fn check_records<S: Storage>(producer: &mut Producer<S>, consumer: &mut Consumer<S>, sizes: &[usize]) {
    let capacity = producer.capacity().bytes();
    let mut in_flight: VecDeque<Vec<u8>> = VecDeque::new();
    for (i, &len) in sizes.iter().enumerate() {
        if record_bytes(len as u64) > capacity {
            continue;
        }
        // Distinct bytes per message, so a stale or misplaced body is caught.
        let body: Vec<u8> = (0..len).map(|j| (i * 131 + j * 7) as u8).collect();
        while !producer.try_write_record(&body, KEY) {
            let want = in_flight.pop_front().expect("a full ring holds something");
            assert_eq!(take_record(consumer, KEY).as_ref(), Some(&want));
        }
        in_flight.push_back(body);
    }
    while let Some(want) = in_flight.pop_front() {
        assert_eq!(take_record(consumer, KEY).as_ref(), Some(&want));
    }
    assert_eq!(consumer.header(KEY), None, "nothing left, yet a commit word matched");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn records_come_back_whole_and_in_order(
        log2_capacity in 6u32..11,
        lap in 0u64..4,
        sizes in proptest::collection::vec(0usize..700, 0..120),
    ) {
        let capacity = Capacity::new(1 << log2_capacity).expect("power of two");
        // Starts on a line, a few laps before the `u64` wrap.
        let start = 0u64.wrapping_sub((lap + 1) * capacity.bytes());
        let (mut producer, mut consumer) = in_memory(capacity, start);
        check_records(&mut producer, &mut consumer, &sizes);
    }
}

#[test]
fn record_sizes_are_padded_to_a_line() {
    assert_eq!(record_bytes(0), 64);
    assert_eq!(record_bytes(48), 64);
    assert_eq!(record_bytes(49), 128);
    assert_eq!(record_bytes(64), 128);
    assert_eq!(record_bytes(u64::MAX), !63);
}

#[test]
fn a_commit_word_from_the_last_lap_does_not_count() {
    let (mut producer, mut consumer) = in_memory(Capacity::new(64).expect("power of two"), 0);
    assert!(producer.try_write_record(b"first", KEY));
    assert_eq!(take_record(&mut consumer, KEY).as_deref(), Some(&b"first"[..]));
    // The same line again, one lap later: its old commit word is still there.
    assert_eq!(consumer.header(KEY), None);
    assert!(producer.try_write_record(b"second", KEY));
    assert_eq!(take_record(&mut consumer, KEY).as_deref(), Some(&b"second"[..]));
}

#[test]
fn another_key_never_matches() {
    let (mut producer, mut consumer) = in_memory(Capacity::new(256).expect("power of two"), 0);
    assert!(producer.try_write_record(b"x", KEY));
    assert_eq!(consumer.header(commit_key(KEY ^ 1)), None);
    assert_eq!(consumer.header(KEY), Some(Header::Whole(1)));
}

#[test]
fn a_piecewise_header_is_told_apart_and_its_body_read_through_tail() {
    let (mut producer, mut consumer) = in_memory(Capacity::new(64).expect("power of two"), 0);
    assert!(producer.free(RECORD_HEADER_BYTES) >= RECORD_HEADER_BYTES);
    producer.write_pieces_header(100, KEY);
    assert_eq!(consumer.header(KEY), Some(Header::Pieces(100)));
    consumer.skip(RECORD_HEADER_BYTES);
    consumer.release();
    // The body has not been published: nothing more is readable.
    assert_eq!(consumer.available(1), 0);
    let body: Vec<u8> = (0..100u8).collect();
    let mut got = Vec::new();
    let mut sent = 0;
    while got.len() < body.len() {
        let n = (producer.free(1) as usize).min(body.len() - sent);
        producer.write(&body[sent..sent + n]);
        producer.publish();
        sent += n;
        let mut piece = vec![0u8; consumer.available(1) as usize];
        consumer.read(&mut piece);
        consumer.release();
        got.extend(piece);
    }
    assert_eq!(got, body);
    // The padding up to the next line, then the next record.
    let padding = record_bytes(100) - RECORD_HEADER_BYTES - 100;
    assert!(producer.free(padding) >= padding);
    producer.advance(padding);
    producer.publish();
    assert_eq!(consumer.available(padding), padding);
    consumer.skip(padding);
    consumer.release();
    assert!(producer.try_write_record(b"next", KEY));
    assert_eq!(take_record(&mut consumer, KEY).as_deref(), Some(&b"next"[..]));
}

#[test]
fn a_record_seen_by_its_commit_word_survives_a_late_tail() {
    let (mut producer, mut consumer) = in_memory(Capacity::new(256).expect("power of two"), 0);
    assert!(producer.try_write_record(&[5; 40], KEY));
    // A broken or slow `tail` that lags behind the commit word must not shrink what is
    // readable. Relaxed: one thread.
    producer.storage.counters().tail.0.store(0, Ordering::Relaxed);
    assert_eq!(consumer.header(KEY), Some(Header::Whole(40)));
    assert_eq!(consumer.available(64), 64);
}

#[test]
fn a_corrupt_length_is_not_a_record() {
    let (mut producer, mut consumer) = in_memory(Capacity::new(64).expect("power of two"), 0);
    assert!(producer.try_write_record(b"ok", KEY));
    // The peer scribbles a length longer than the ring over the committed header.
    // SAFETY: one thread; offset 8 is inside the 64-byte area.
    unsafe { producer.storage.copy_in(8, &1000u64.to_le_bytes()) };
    assert_eq!(consumer.header(KEY), None);
}

#[test]
fn every_small_length_comes_back_exactly_by_either_read() {
    // Every arm of the constant-size copies in `try_write_record` (0, 1-3, 4-7, 8-15, 16-31,
    // 32-48 bytes on the header's line) and the bodies that spill onto a second line.
    let (mut producer, mut consumer) = in_memory(Capacity::new(1 << 12).expect("power of two"), 0);
    for len in 0..=FIRST_LINE_BODY + 16 {
        let body: Vec<u8> = (0..len).map(|j| (len * 31 + j * 7 + 1) as u8).collect();
        assert!(
            producer.try_write_record(&body, KEY),
            "a {len}-byte record fits an empty ring"
        );
        if len <= FIRST_LINE_BODY {
            assert_eq!(consumer.header(KEY), Some(Header::Whole(len as u64)));
            let mut line = [0u8; FIRST_LINE_BODY];
            consumer.read_small(len as u64, &mut line);
            consumer.release();
            assert_eq!(&line[..len], &body[..], "{len} bytes by read_small");
        } else {
            assert_eq!(take_record(&mut consumer, KEY), Some(body), "{len} bytes by read");
        }
    }
}

#[test]
fn every_two_line_length_comes_back_exactly_and_a_wrapping_record_is_left_to_read() {
    // A 4 KiB ring: the records of 49..=112 bytes (128 each) walk it several times, so some
    // start on its last line and wrap; `read_two_lines` refuses those, and `read` takes them.
    let (mut producer, mut consumer) = in_memory(Capacity::new(1 << 12).expect("power of two"), 0);
    let (mut by_lines, mut wrapped) = (0, 0);
    for round in 0..3 {
        // Shift the walk by one line per round so that records start on odd lines too.
        assert!(producer.try_write_record(b"shift", KEY));
        assert_eq!(take_record(&mut consumer, KEY), Some(b"shift".to_vec()));
        for len in FIRST_LINE_BODY + 1..=TWO_LINE_BODY {
            let body: Vec<u8> = (0..len).map(|j| (round * 13 + len * 31 + j * 7 + 1) as u8).collect();
            assert!(producer.try_write_record(&body, KEY), "a {len}-byte record fits");
            assert_eq!(consumer.header(KEY), Some(Header::Whole(len as u64)));
            let mut lines = [0u8; TWO_LINE_BODY];
            if consumer.read_two_lines(len as u64, &mut lines) {
                by_lines += 1;
                assert_eq!(&lines[..len], &body[..], "{len} bytes by read_two_lines");
            } else {
                wrapped += 1;
                assert_eq!(lines, [0u8; TWO_LINE_BODY], "a refused read writes nothing");
                consumer.skip(RECORD_HEADER_BYTES);
                let mut out = vec![0u8; len];
                consumer.read(&mut out);
                consumer.skip(record_bytes(len as u64) - RECORD_HEADER_BYTES - len as u64);
                assert_eq!(out, body, "{len} bytes by read after a wrap");
            }
            consumer.release();
        }
    }
    assert!(
        by_lines > 0 && wrapped > 0,
        "both paths ran: {by_lines} by lines, {wrapped} wrapped"
    );
}
