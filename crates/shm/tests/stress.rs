//! Cross-process stress: millions of checksummed messages of random sizes between two real
//! processes over a real mapping, for every wait strategy, through small rings that wrap and
//! fill all the time (and through which the largest messages must be streamed in pieces).
//!
//! Four phases per run: a one-way stream parent -> child, one child -> parent, a ping-pong
//! (every message a wake-up for the sleeping strategies), then both directions at once, each
//! process driving its channel's two halves (`Channel::split`) from two threads. Every message
//! carries its sequence number and checksum (`ipcbench_core::payload`), verified on arrival.
//!
//! Messages go in batches of [`BATCH`], each announced by a one-byte control message (1: a
//! batch follows, 0: the phase is over). The sender of a phase stops at the phase's message
//! count, or earlier once the phase has run for [`PHASE_BUDGET`] and sent at least
//! [`MIN_MESSAGES`]. On an idle two-core machine every phase reaches its count (several
//! million messages in all, in about ten seconds); on a machine loaded by other builds, where
//! a spinning side burns its time slice while its peer waits for a core and every wake-up can
//! cost a scheduler tick, the budget keeps the test to about twenty seconds instead of minutes.
//!
//! `IPCBENCH_SHM_STRESS_MESSAGES` overrides the message count of every phase (the budget
//! still applies); debug builds use a two-hundredth of the default counts.
#![cfg(all(target_os = "linux", not(loom)))]

mod common;

use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::{ADDRESS_ENV, CONNECT_TIMEOUT, MESSAGES_ENV, Payloads, Sizes, WAIT_ENV};
use ipcbench_core::payload::verify;
use ipcbench_core::{Channel, Endpoint, Listener, Transport, TransportError};
use ipcbench_shm::{ShmChannel, ShmTransport, WaitStrategy};

/// The largest size `Sizes` produces, rounded up.
const MAX_MESSAGE: usize = 300_000;
/// Messages between two control messages.
const BATCH: u64 = 1_000;
/// A phase stops early only after this many messages.
const MIN_MESSAGES: u64 = 5_000;
/// A phase stops early once it has run this long.
const PHASE_BUDGET: Duration = Duration::from_millis(1500);
/// How long one run may take before it counts as a hang.
const RUN_LIMIT: Duration = Duration::from_secs(240);
/// The runs share two cores; one at a time keeps them from starving each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The seeds of the phases' size sequences.
const TO_CHILD: u64 = 1;
const TO_PARENT: u64 = 2;
const PING_PONG: u64 = 3;
const BOTH_TO_CHILD: u64 = 4;
const BOTH_TO_PARENT: u64 = 5;

type SendFn<'a> = &'a mut dyn FnMut(&[u8]) -> Result<(), TransportError>;
type RecvFn<'a> = &'a mut dyn FnMut(&mut [u8]) -> Result<usize, TransportError>;

/// The message count of every phase, from the release default.
fn messages(release_default: u64) -> u64 {
    match std::env::var("IPCBENCH_SHM_STRESS_MESSAGES") {
        Ok(n) => n.parse().expect("IPCBENCH_SHM_STRESS_MESSAGES is a number"),
        Err(_) if cfg!(debug_assertions) => release_default / 200,
        Err(_) => release_default,
    }
}

/// When the sender of a phase stops.
#[derive(Debug, Clone, Copy)]
struct Budget {
    started: Instant,
    max: u64,
}

impl Budget {
    fn start(max: u64) -> Self {
        Budget {
            started: Instant::now(),
            max,
        }
    }

    /// Whether another batch follows after `sent` messages.
    fn another_batch(&self, sent: u64) -> bool {
        sent < self.max && (sent < MIN_MESSAGES || self.started.elapsed() < PHASE_BUDGET)
    }
}

/// Receives the control message before a batch: true when a batch follows.
fn batch_follows(recv: RecvFn<'_>) -> bool {
    let mut control = [0u8; 1];
    let n = recv(&mut control).unwrap_or_else(|e| panic!("control message: {e}"));
    assert_eq!(n, 1, "a control message has one byte");
    control[0] == 1
}

/// Sends a stream of checksummed messages; returns how many.
fn send_stream(send: SendFn<'_>, max: u64, seed: u64) -> u64 {
    let budget = Budget::start(max);
    let mut sizes = Sizes::new(seed);
    let mut payloads = Payloads::default();
    let mut seq = 0;
    loop {
        let more = budget.another_batch(seq);
        send(&[u8::from(more)]).unwrap_or_else(|e| panic!("control message: {e}"));
        if !more {
            return seq;
        }
        for _ in 0..BATCH {
            let len = sizes.next_size();
            send(payloads.stamped(len, seq)).unwrap_or_else(|e| panic!("send {seq}: {e}"));
            seq += 1;
        }
    }
}

/// Receives and verifies a stream; returns how many messages came.
fn receive_stream(recv: RecvFn<'_>, seed: u64) -> u64 {
    let mut sizes = Sizes::new(seed);
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut seq = 0;
    while batch_follows(recv) {
        for _ in 0..BATCH {
            let len = sizes.next_size();
            let got = recv(&mut buf).unwrap_or_else(|e| panic!("recv {seq}: {e}"));
            verify(&buf[..got], len, seq).unwrap_or_else(|e| panic!("stream {seed}: {e}"));
            seq += 1;
        }
    }
    seq
}

/// Sends a stream seeded `out` while receiving one seeded `back`, on two threads; returns
/// the numbers sent and received.
fn both_ways(channel: &mut ShmChannel, max: u64, out: u64, back: u64) -> (u64, u64) {
    let (mut tx, mut rx) = channel.split().expect("shm channels split");
    thread::scope(|s| {
        let sender = s.spawn(move || send_stream(&mut |msg| tx.send(msg), max, out));
        let received = receive_stream(&mut |buf| rx.recv(buf), back);
        (sender.join().expect("sending half"), received)
    })
}

/// The child: connects, then runs its half of the four phases.
#[test]
fn child() {
    let Some(role) = common::child_role() else {
        return; // Not a child: nothing to do.
    };
    assert_eq!(role, "stress");
    let transport = ShmTransport::default().with_wait(common::child_wait());
    let mut channel = transport
        .connect(&common::child_env(ADDRESS_ENV), CONNECT_TIMEOUT)
        .expect("child connect");
    let max: u64 = common::child_env(MESSAGES_ENV).parse().expect("message count");
    receive_stream(&mut |buf| channel.recv(buf), TO_CHILD);
    send_stream(&mut |msg| channel.send(msg), max, TO_PARENT);
    // Ping-pong: verify each ping and echo it.
    let mut sizes = Sizes::new(PING_PONG);
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut seq = 0;
    while batch_follows(&mut |buf| channel.recv(buf)) {
        for _ in 0..BATCH {
            let got = channel.recv(&mut buf).expect("ping");
            verify(&buf[..got], sizes.next_size(), seq).expect("ping intact");
            channel.send(&buf[..got]).expect("pong");
            seq += 1;
        }
    }
    both_ways(&mut channel, max, BOTH_TO_PARENT, BOTH_TO_CHILD);
}

/// The parent's half; returns the number of messages that crossed in each phase.
fn parent(channel: &mut ShmChannel, max: u64, round_trips: u64) -> [u64; 4] {
    let to_child = send_stream(&mut |msg| channel.send(msg), max, TO_CHILD);
    let to_parent = receive_stream(&mut |buf| channel.recv(buf), TO_PARENT);
    let budget = Budget::start(round_trips);
    let mut sizes = Sizes::new(PING_PONG);
    let mut payloads = Payloads::default();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut seq = 0;
    loop {
        let more = budget.another_batch(seq);
        channel.send(&[u8::from(more)]).expect("control message");
        if !more {
            break;
        }
        for _ in 0..BATCH {
            let len = sizes.next_size();
            channel.send(payloads.stamped(len, seq)).expect("ping");
            let got = channel.recv(&mut buf).expect("pong");
            verify(&buf[..got], len, seq).expect("pong intact");
            seq += 1;
        }
    }
    let (sent, received) = both_ways(channel, max, BOTH_TO_CHILD, BOTH_TO_PARENT);
    [to_child, to_parent, seq, sent + received]
}

fn stress(wait: WaitStrategy, ring_bytes: usize, max: u64, round_trips: u64) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let transport = ShmTransport::new(ring_bytes, wait);
    let mut listener = transport
        .bind(&Endpoint::new("stress", std::env::temp_dir()))
        .expect("bind");
    let mut child = common::spawn_child(
        "stress",
        &[
            (ADDRESS_ENV, listener.address()),
            (WAIT_ENV, wait.as_str().to_owned()),
            (MESSAGES_ENV, max.to_string()),
        ],
    );
    let started = Instant::now();
    let counts = common::within_or_kill(&mut child, RUN_LIMIT, move || {
        let mut channel = listener.accept(CONNECT_TIMEOUT).expect("accept");
        parent(&mut channel, max, round_trips)
    });
    let status = child.wait().expect("reap child");
    assert!(status.success(), "child failed: {status}");
    let [to_child, to_parent, ping_pong, both] = counts;
    eprintln!(
        "shm {wait}, {ring_bytes}-byte ring: {to_child} to the child, {to_parent} back, \
         {ping_pong} round trips, {both} both ways at once, in {:.2?}",
        started.elapsed()
    );
    for count in [to_child, to_parent, both / 2] {
        assert!(count >= MIN_MESSAGES.min(max), "a phase moved only {count} messages");
    }
}

#[test]
fn stress_spin_across_processes() {
    stress(WaitStrategy::Spin, 64 << 10, messages(1_500_000), messages(50_000));
}

#[test]
fn stress_hybrid_across_processes_one_page_ring() {
    stress(WaitStrategy::Hybrid, 4096, messages(600_000), messages(50_000));
}

#[test]
fn stress_futex_across_processes() {
    stress(WaitStrategy::Futex, 1 << 20, messages(1_000_000), messages(50_000));
}
