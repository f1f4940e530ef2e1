//! The machine's physical limits, measured at the start of every run, and each case's figure
//! as a fraction of the matching limit.
//!
//! - **Cache-line round trip** between the client and server cores of the plan's first
//!   cross-core placement: two threads, each pinned to one of the cores, bounce one `AtomicU64`
//!   back and forth. No message between two cores can make a round trip faster than the line
//!   that carries it, so this is the floor under every cross-core `pingpong` figure.
//! - **Two-line round trip** between the same cores: each thread writes its own line and polls
//!   the other's, as the two rings of a channel do (a request arrives on one line, its reply
//!   leaves on another). On the 2-vCPU KVM build machine it is about 2.3x the single-line figure
//!   (255-266 ns against 114 ns): bouncing one line lets the reader take it over with the data it
//!   reads, while with two lines every write must first take its line back from the poller. It is
//!   the floor under a channel with one ring per direction, stored beside the other
//!   (`two_line_round_trip_ns`) so a `shm` figure can be read against both.
//! - **Single-core memcpy bandwidth** for buffers larger than the last-level cache: the rate at
//!   which one core can copy memory that is not in any cache. Every byte a transport moves is
//!   copied at least once (shared memory) or twice (through a kernel buffer), so a `stream`
//!   cannot beat this figure.
//!
//! [`fraction_of_limit`] puts a case's headline figure against its limit as
//! **limit-relative speed: 1.0 = at the physical limit, smaller = further from it**. For latency
//! that is `limit / achieved` (cache-line round trip / pingpong p50); for throughput it is
//! `achieved / limit` (stream bytes/s / memcpy bytes/s).
//!
//! All three measurements together stay under a second (each is bounded in time, not only in
//! count, so a busy machine cannot stretch them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::affinity;
use crate::plan::{Plan, TransportKind};
use ipcbench_record::Calibration;
use ipcbench_record::stats;

/// Round trips timed together as one sample (one clock read per batch keeps the clock's own
/// cost, tens of ns, out of a figure of about a hundred; short batches keep a busy machine,
/// which deschedules one of the two threads now and then, from spoiling most of them).
const ROUND_TRIPS_PER_BATCH: u64 = 100;
/// Most batches taken for the cache-line round trip.
const MAX_BATCHES: usize = 200;
/// Time budget of the cache-line measurement.
const CACHE_LINE_BUDGET: Duration = Duration::from_millis(250);
/// Smallest and largest memcpy buffer (each of source and destination).
const MIN_COPY_BYTES: usize = 64 << 20;
const MAX_COPY_BYTES: usize = 256 << 20;
/// Timed copies of the memcpy buffer (the best one counts).
const COPY_RUNS: usize = 3;
/// Time budget of the memcpy measurement (after the first, untimed, copy).
const COPY_BUDGET: Duration = Duration::from_millis(400);

/// Measures the limits for `plan`: the cache-line round trip between the cores of its first
/// cross-core placement (absent when it has none) and memcpy bandwidth.
pub fn measure(plan: &Plan) -> Calibration {
    let cores = plan
        .cases
        .iter()
        .filter(|c| c.transport.kind() != TransportKind::Null)
        .map(|c| c.placement)
        .find(|p| p.client != p.server);
    let mut calibration = Calibration {
        memcpy_bytes_per_s: memcpy_bytes_per_s(copy_buffer_bytes(last_level_cache_bytes())),
        ..Calibration::default()
    };
    if let Some(pair) = cores
        && let Some(ns) = cache_line_round_trip_ns(pair.client, pair.server, CACHE_LINE_BUDGET)
    {
        calibration.cache_line_round_trip_ns = Some(ns);
        calibration.cache_line_cores = Some([pair.client, pair.server]);
        calibration.two_line_round_trip_ns = two_line_round_trip_ns(pair.client, pair.server, CACHE_LINE_BUDGET);
    }
    calibration
}

/// The round trip of one cache line between `core_a` and `core_b`, ns (median of batches), or
/// `None` when the threads cannot be pinned there or not one batch finished within `budget`.
pub fn cache_line_round_trip_ns(core_a: usize, core_b: usize, budget: Duration) -> Option<f64> {
    line_round_trip_ns(core_a, core_b, budget, Lines::One)
}

/// The round trip between `core_a` and `core_b` when each writes its own line and polls the
/// other's, ns (median of batches); `None` as for [`cache_line_round_trip_ns`].
pub fn two_line_round_trip_ns(core_a: usize, core_b: usize, budget: Duration) -> Option<f64> {
    line_round_trip_ns(core_a, core_b, budget, Lines::Two)
}

/// How many lines a round trip bounces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lines {
    /// Both sides write and poll one line.
    One,
    /// The first side writes line 0 and polls line 1; the responder the other way round.
    Two,
}

fn line_round_trip_ns(core_a: usize, core_b: usize, budget: Duration, lines: Lines) -> Option<f64> {
    // Each counter on its own 128-byte line, so nothing else shares (or prefetches into) it.
    #[repr(align(128))]
    struct Line(AtomicU64);
    let pair = Arc::new([Line(AtomicU64::new(0)), Line(AtomicU64::new(0))]);
    // The line each side writes: with one line both write (and poll) the same.
    let (ping, pong) = match lines {
        Lines::One => (0, 0),
        Lines::Two => (0, 1),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let responder = {
        let pair = Arc::clone(&pair);
        let stop = Arc::clone(&stop);
        thread::spawn(move || -> bool {
            if affinity::pin_current_thread(core_b).is_err() {
                // Relaxed: a flag polled in a loop; it publishes no other data.
                stop.store(true, Ordering::Relaxed);
                return false;
            }
            let mut expected = 1u64;
            // Relaxed: the counter is the only datum exchanged and no other memory is
            // published through it; coherence alone guarantees each side eventually sees the
            // other's store, and that line transfer is exactly what is being timed.
            loop {
                if pair[ping].0.load(Ordering::Relaxed) == expected {
                    // Relaxed, as above: answer the odd value with the next even one.
                    pair[pong].0.store(expected + 1, Ordering::Relaxed);
                    expected += 2;
                } else if stop.load(Ordering::Relaxed) {
                    // Relaxed: a flag polled in a loop; it publishes no other data.
                    return true;
                } else {
                    std::hint::spin_loop();
                }
            }
        })
    };
    let samples = thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut samples = Vec::with_capacity(MAX_BATCHES);
                if affinity::pin_current_thread(core_a).is_err() {
                    return samples;
                }
                let deadline = Instant::now() + budget;
                let mut value = 0u64;
                'batches: while samples.len() < MAX_BATCHES && Instant::now() < deadline {
                    let started = Instant::now();
                    for _ in 0..ROUND_TRIPS_PER_BATCH {
                        // Relaxed: see the responder; only the line transfer is measured.
                        pair[ping].0.store(value + 1, Ordering::Relaxed);
                        let mut spins = 0u32;
                        // Relaxed: waits for the responder's even answer on the same line.
                        while pair[pong].0.load(Ordering::Relaxed) != value + 2 {
                            std::hint::spin_loop();
                            spins = spins.wrapping_add(1);
                            // Relaxed: a flag polled in a loop; it publishes no other data.
                            if spins.is_multiple_of(65_536)
                                && (Instant::now() >= deadline || stop.load(Ordering::Relaxed))
                            {
                                break 'batches;
                            }
                        }
                        value += 2;
                    }
                    samples.push(started.elapsed().as_nanos() as f64 / ROUND_TRIPS_PER_BATCH as f64);
                }
                samples
            })
            .join()
            .unwrap_or_default()
    });
    // Relaxed: a flag polled in a loop; it publishes no other data.
    stop.store(true, Ordering::Relaxed);
    let pinned = responder.join().unwrap_or(false);
    if !pinned {
        return None;
    }
    stats::median(&samples)
}

/// The last-level cache of core 0 in bytes, from sysfs (`index3`, else the highest index).
pub fn last_level_cache_bytes() -> Option<usize> {
    let base = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    (0..8)
        .rev()
        .filter_map(|idx| std::fs::read_to_string(base.join(format!("index{idx}/size"))).ok())
        .find_map(|text| parse_cache_size(text.trim()))
}

/// Parses sysfs cache sizes such as `32768K`, `8M` or `512`.
fn parse_cache_size(text: &str) -> Option<usize> {
    let (number, multiplier) = match text.as_bytes().last()? {
        b'K' => (&text[..text.len() - 1], 1 << 10),
        b'M' => (&text[..text.len() - 1], 1 << 20),
        b'G' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    number.parse::<usize>().ok()?.checked_mul(multiplier)
}

/// Source and destination size for the memcpy figure: together at least 1.5 times the
/// last-level cache, so the copy streams from and to memory, within 64..=256 MiB each.
fn copy_buffer_bytes(llc: Option<usize>) -> usize {
    let wanted = llc.map(|b| b / 4 * 3).unwrap_or(MIN_COPY_BYTES);
    wanted.clamp(MIN_COPY_BYTES, MAX_COPY_BYTES)
}

/// Single-core memcpy bandwidth (bytes/s) for buffers of `bytes`: the best of a few timed
/// copies after one untimed copy that faults every page in.
pub fn memcpy_bytes_per_s(bytes: usize) -> Option<f64> {
    // Filled, not just allocated: reading untouched pages would hit the shared zero page.
    let source = vec![0x5Au8; bytes];
    let mut destination = vec![0u8; bytes];
    destination.copy_from_slice(&source);
    let deadline = Instant::now() + COPY_BUDGET;
    let mut best: Option<Duration> = None;
    for _ in 0..COPY_RUNS {
        let started = Instant::now();
        destination.copy_from_slice(std::hint::black_box(&source));
        std::hint::black_box(&mut destination);
        let took = started.elapsed();
        best = Some(best.map_or(took, |b| b.min(took)));
        if Instant::now() >= deadline {
            break;
        }
    }
    best.filter(|b| !b.is_zero()).map(|b| bytes as f64 / b.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes_parse_with_their_units() {
        assert_eq!(parse_cache_size("32768K"), Some(32 << 20));
        assert_eq!(parse_cache_size("8M"), Some(8 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("lots"), None);
        assert_eq!(parse_cache_size(""), None);
    }

    #[test]
    fn copy_buffers_exceed_the_cache_within_bounds() {
        assert_eq!(copy_buffer_bytes(None), MIN_COPY_BYTES);
        assert_eq!(copy_buffer_bytes(Some(8 << 20)), MIN_COPY_BYTES);
        assert_eq!(copy_buffer_bytes(Some(128 << 20)), 96 << 20);
        assert_eq!(copy_buffer_bytes(Some(1 << 30)), MAX_COPY_BYTES);
    }

    #[test]
    fn cache_line_bounces_between_two_cores() {
        let n_cores = crate::affinity::online_cores();
        if n_cores < 2 {
            eprintln!("skipped: one core only, and a cache line needs two cores to bounce between");
            return;
        }
        // A generous budget: a busy machine may take long to run both threads at once.
        let ns = cache_line_round_trip_ns(0, 1, Duration::from_secs(10)).expect("both threads pin");
        assert!(ns > 0.0 && ns.is_finite(), "{ns}");
        let two = two_line_round_trip_ns(0, 1, Duration::from_secs(10)).expect("both threads pin");
        assert!(two > 0.0 && two.is_finite(), "{two}");
    }

    #[test]
    fn unpinnable_cores_give_no_round_trip() {
        assert_eq!(
            cache_line_round_trip_ns(0, usize::MAX / 2, Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn memcpy_of_a_small_buffer_has_a_rate() {
        let rate = memcpy_bytes_per_s(1 << 20).unwrap();
        assert!(rate > 0.0 && rate.is_finite());
    }
}
