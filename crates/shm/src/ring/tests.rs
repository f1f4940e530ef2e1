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
