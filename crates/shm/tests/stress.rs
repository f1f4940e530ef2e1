//! Cross-process stress: millions of checksummed messages of random sizes between two real
//! processes over a real mapping, for every wait strategy, through small rings that wrap and
//! fill all the time (and through which the largest messages must be streamed in pieces).
//!
//! Four phases per run: a one-way stream parent -> child, one child -> parent, a ping-pong
//! (every message a wake-up for the sleeping strategies), then both directions at once, each
//! process driving its channel's two halves (`Channel::split`) from two threads. Every message carries its
//! sequence number and checksum (`ipcbench_core::payload`), verified on arrival.
//!
//! `IPCBENCH_SHM_STRESS_MESSAGES` overrides the number of messages per stream phase. The
//! defaults (several million messages in all) keep the release run to about ten seconds on an
//! idle two-core machine; debug builds run a two-hundredth of them. The ping-pong and the
//! one-page ring are kept short because their cost is wake-ups, not bytes: on a loaded machine
//! a woken (or spinning) side may wait a scheduler tick for a core, so every round trip and
//! every refill of the tiny ring can cost a millisecond.
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

fn messages(release_default: u64) -> u64 {
    match std::env::var("IPCBENCH_SHM_STRESS_MESSAGES") {
        Ok(n) => n.parse().expect("IPCBENCH_SHM_STRESS_MESSAGES is a number"),
        Err(_) if cfg!(debug_assertions) => release_default / 200,
        Err(_) => release_default,
    }
}

type SendFn<'a> = &'a mut dyn FnMut(&[u8]) -> Result<(), TransportError>;
type RecvFn<'a> = &'a mut dyn FnMut(&mut [u8]) -> Result<usize, TransportError>;

fn send_stream(send: SendFn<'_>, n: u64, seed: u64) {
    let mut sizes = Sizes::new(seed);
    let mut payloads = Payloads::default();
    for seq in 0..n {
        let len = sizes.next_size();
        send(payloads.stamped(len, seq)).unwrap_or_else(|e| panic!("send {seq}: {e}"));
    }
}

fn receive_stream(recv: RecvFn<'_>, n: u64, seed: u64) {
    let mut sizes = Sizes::new(seed);
    let mut buf = vec![0u8; MAX_MESSAGE];
    for seq in 0..n {
        let len = sizes.next_size();
        let got = recv(&mut buf).unwrap_or_else(|e| panic!("recv {seq}: {e}"));
        verify(&buf[..got], len, seq).unwrap_or_else(|e| panic!("stream {seed}: {e}"));
    }
}

/// Sends `n` messages seeded `out` while receiving `n` seeded `back`, on two threads.
fn both_ways(channel: &mut ShmChannel, n: u64, out: u64, back: u64) {
    let (mut tx, mut rx) = channel.split().expect("shm channels split");
    thread::scope(|s| {
        s.spawn(move || send_stream(&mut |msg| tx.send(msg), n, out));
        receive_stream(&mut |buf| rx.recv(buf), n, back);
    });
}

/// Round trips of the ping-pong phase for `n` streamed messages.
fn round_trips(wait: WaitStrategy, n: u64) -> u64 {
    match wait {
        WaitStrategy::Spin => (n / 20).min(2_000),
        _ => (n / 20).min(5_000),
    }
}

/// The child: connects, then runs its half of the three phases.
#[test]
fn child() {
    let Some(role) = common::child_role() else {
        return; // Not a child: nothing to do.
    };
    assert_eq!(role, "stress");
    let wait = common::child_wait();
    let transport = ShmTransport::default().with_wait(wait);
    let mut channel = transport
        .connect(&common::child_env(ADDRESS_ENV), CONNECT_TIMEOUT)
        .expect("child connect");
    let n: u64 = common::child_env(MESSAGES_ENV).parse().expect("message count");
    receive_stream(&mut |buf| channel.recv(buf), n, TO_CHILD);
    send_stream(&mut |msg| channel.send(msg), n, TO_PARENT);
    let mut sizes = Sizes::new(PING_PONG);
    let mut buf = vec![0u8; MAX_MESSAGE];
    for seq in 0..round_trips(wait, n) {
        let got = channel.recv(&mut buf).expect("ping");
        verify(&buf[..got], sizes.next_size(), seq).expect("ping intact");
        channel.send(&buf[..got]).expect("pong");
    }
    both_ways(&mut channel, n / 10, BOTH_TO_PARENT, BOTH_TO_CHILD);
}

fn stress(wait: WaitStrategy, ring_bytes: usize, n: u64) {
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
            (MESSAGES_ENV, n.to_string()),
        ],
    );
    let started = Instant::now();
    common::within_or_kill(&mut child, RUN_LIMIT, move || {
        let mut channel = listener.accept(CONNECT_TIMEOUT).expect("accept");
        send_stream(&mut |msg| channel.send(msg), n, TO_CHILD);
        receive_stream(&mut |buf| channel.recv(buf), n, TO_PARENT);
        let mut sizes = Sizes::new(PING_PONG);
        let mut payloads = Payloads::default();
        let mut buf = vec![0u8; MAX_MESSAGE];
        for seq in 0..round_trips(wait, n) {
            let len = sizes.next_size();
            channel.send(payloads.stamped(len, seq)).expect("ping");
            let got = channel.recv(&mut buf).expect("pong");
            verify(&buf[..got], len, seq).expect("pong intact");
        }
        both_ways(&mut channel, n / 10, BOTH_TO_CHILD, BOTH_TO_PARENT);
    });
    let status = child.wait().expect("reap child");
    assert!(status.success(), "child failed: {status}");
    eprintln!(
        "shm {wait}, {ring_bytes}-byte ring: 2 x {n} streamed, {} round trips, 2 x {} both ways at once in {:.2?}",
        round_trips(wait, n),
        n / 10,
        started.elapsed()
    );
}

#[test]
fn stress_spin_across_processes() {
    stress(WaitStrategy::Spin, 64 << 10, messages(1_500_000));
}

#[test]
fn stress_hybrid_across_processes_one_page_ring() {
    stress(WaitStrategy::Hybrid, 4096, messages(500_000));
}

#[test]
fn stress_futex_across_processes() {
    stress(WaitStrategy::Futex, 1 << 20, messages(1_000_000));
}
