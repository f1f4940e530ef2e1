//! `kill -9` of the peer in the middle of a stream: the survivor returns `Disconnected` within
//! a second, whatever its wait strategy and whichever end it holds, and nothing is left behind
//! (no `/dev/shm` entry, no memfd descriptor or mapping in the survivor once it drops its end).
//!
//! Three cases per strategy:
//! - the survivor is the listener, blocked receiving from a child that streams to it;
//! - the survivor is the listener, blocked sending to a child that stopped reading (full ring);
//! - the survivor is the connecting side, receiving from a child that listens and streams.
//!
//! The child is killed but not reaped until the survivor has reported, so the survivor faces a
//! zombie, the harder case (a zombie still answers `kill(pid, 0)`).
#![cfg(all(target_os = "linux", not(loom)))]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::{ADDRESS_ENV, CONNECT_TIMEOUT, RING_ENV, WAIT_ENV};
use ipcbench_core::payload::Payload;
use ipcbench_core::{Channel, Endpoint, Listener, Transport, TransportError};
use ipcbench_shm::{ShmChannel, ShmTransport, WaitStrategy};

/// The bound for noticing a dead peer: 200 times the 10 ms liveness check, so a loaded 2-core
/// machine that holds a thread off its core for a while still passes.
const NOTICE_WITHIN: Duration = Duration::from_secs(2);
/// How long one case may take before it counts as a hang.
const CASE_LIMIT: Duration = Duration::from_secs(60);
/// A small ring fills fast, so the sending case blocks quickly.
const RING_BYTES: usize = 64 << 10;
/// The cases share two cores with spinning peers; one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Sends stamped 200-byte messages until the peer goes away.
fn stream_forever(channel: &mut ShmChannel) {
    let mut payload = Payload::new(200);
    for seq in 0.. {
        if channel.send(payload.stamp(seq)).is_err() {
            return;
        }
    }
}

#[test]
fn child() {
    let Some(role) = common::child_role() else {
        return; // Not a child: nothing to do.
    };
    let transport = ShmTransport::default().with_wait(common::child_wait());
    match role.as_str() {
        // Connects and streams until killed.
        "sender" => {
            let mut channel = transport
                .connect(&common::child_env(ADDRESS_ENV), CONNECT_TIMEOUT)
                .expect("connect");
            stream_forever(&mut channel);
        }
        // Connects, says hello, then never reads again (so the parent's ring fills).
        "sink" => {
            let mut channel = transport
                .connect(&common::child_env(ADDRESS_ENV), CONNECT_TIMEOUT)
                .expect("connect");
            channel.send(b"hello").expect("hello");
            let parent = std::os::unix::process::parent_id();
            let until = Instant::now() + CASE_LIMIT;
            // Wait to be killed; leave on our own if the parent is gone or the case overran.
            while std::os::unix::process::parent_id() == parent && Instant::now() < until {
                thread::sleep(Duration::from_millis(50));
            }
        }
        // Listens, prints its address for the parent, accepts and streams until killed.
        "listening-sender" => {
            let ring_bytes = common::child_env(RING_ENV).parse().expect("ring bytes");
            let transport = ShmTransport {
                ring_bytes,
                ..transport
            };
            let mut listener = transport
                .bind(&Endpoint::new("kill", std::env::temp_dir()))
                .expect("bind");
            println!("ADDRESS {}", listener.address());
            let mut channel = listener.accept(CONNECT_TIMEOUT).expect("accept");
            stream_forever(&mut channel);
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Kills `child` after `after` from another thread; returns when the kill was sent.
fn kill_later(mut child: Child, after: Duration) -> thread::JoinHandle<(Child, Instant)> {
    thread::spawn(move || {
        thread::sleep(after);
        // Taken before the kill: the survivor may notice the death before this thread runs
        // again, so a time taken after the kill could come after the survivor's.
        let killed_at = Instant::now();
        child.kill().expect("SIGKILL the child");
        (child, killed_at)
    })
}

/// Runs `survive` (which must end in an error) while the child is killed mid-stream, then
/// checks the error, the time it took to notice, and that nothing was left behind.
fn assert_notices_kill(what: &str, child: Child, survive: impl FnOnce() -> (TransportError, Instant) + Send + 'static) {
    let pid = child.id();
    let worker = thread::spawn(survive);
    // The survivor is mid-stream (or blocked) by now; kill the child, but do not reap it.
    let killer = kill_later(child, Duration::from_millis(330));
    let started = Instant::now();
    while !worker.is_finished() {
        if started.elapsed() > CASE_LIMIT {
            // Make sure the child does not outlive a failed case.
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("{what}: survivor hung");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let (error, noticed_at) = worker.join().expect("survivor thread");
    let (mut child, killed_at) = killer.join().expect("killer thread");
    let waited = noticed_at.saturating_duration_since(killed_at);
    child.wait().expect("reap child");
    assert!(
        matches!(error, TransportError::Disconnected),
        "{what}: expected Disconnected, got {error:?}"
    );
    assert!(waited < NOTICE_WITHIN, "{what}: noticed the kill only after {waited:?}");
    assert!(
        noticed_at >= killed_at,
        "{what}: the survivor failed before the child was killed"
    );
    eprintln!("{what}: noticed the kill after {waited:.1?}");
}

/// Reads the child's `ADDRESS ...` line (the test harness prints its own lines first).
fn read_address(stdout: &mut impl BufRead) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = stdout.read_line(&mut line).expect("read child stdout");
        assert!(n > 0, "the child ended without printing its address");
        if let Some(address) = line.trim().strip_prefix("ADDRESS ") {
            return address.to_owned();
        }
    }
}

fn survive_kill(wait: WaitStrategy) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let shm_before = common::dev_shm();
    let transport = ShmTransport::new(RING_BYTES, wait);
    let env = |address: String| {
        vec![
            (ADDRESS_ENV, address),
            (WAIT_ENV, wait.as_str().to_owned()),
            (RING_ENV, RING_BYTES.to_string()),
        ]
    };

    // 1. The listener receives from a streaming child.
    let mut listener = transport
        .bind(&Endpoint::new("kill", std::env::temp_dir()))
        .expect("bind");
    let child = common::spawn_child("sender", &env(listener.address()));
    assert_notices_kill(&format!("{wait}: receiving listener"), child, move || {
        let mut channel = listener.accept(CONNECT_TIMEOUT).expect("accept");
        let mut buf = vec![0u8; 1024];
        loop {
            if let Err(e) = channel.recv(&mut buf) {
                return (e, Instant::now());
            }
        }
    });

    // 2. The listener sends to a child that stopped reading, so it blocks on a full ring.
    let mut listener = transport
        .bind(&Endpoint::new("kill", std::env::temp_dir()))
        .expect("bind");
    let child = common::spawn_child("sink", &env(listener.address()));
    assert_notices_kill(&format!("{wait}: blocked sender"), child, move || {
        let mut channel = listener.accept(CONNECT_TIMEOUT).expect("accept");
        let mut hello = [0u8; 8];
        channel.recv(&mut hello).expect("hello");
        let msg = vec![7u8; 1000];
        loop {
            if let Err(e) = channel.send(&msg) {
                return (e, Instant::now());
            }
        }
    });

    // 3. The connecting side receives from a child that listens.
    let mut child = common::spawn_child("listening-sender", &env(String::new()));
    // Keep the reader (and so the pipe) open until the child is gone.
    let mut stdout = BufReader::new(child.stdout.take().expect("child stdout"));
    let address = read_address(&mut stdout);
    assert_notices_kill(&format!("{wait}: receiving client"), child, move || {
        let mut channel = transport.connect(&address, CONNECT_TIMEOUT).expect("connect");
        let mut buf = vec![0u8; 1024];
        loop {
            if let Err(e) = channel.recv(&mut buf) {
                return (e, Instant::now());
            }
        }
    });
    drop(stdout);

    let new_in_dev_shm: Vec<_> = common::dev_shm().difference(&shm_before).cloned().collect();
    assert!(new_in_dev_shm.is_empty(), "left in /dev/shm: {new_in_dev_shm:?}");
    let left = common::our_memfds_in_this_process();
    assert!(
        left.is_empty(),
        "still open or mapped after the channels dropped: {left:?}"
    );
}

#[test]
fn spin_survivor_notices_kill() {
    survive_kill(WaitStrategy::Spin);
}

#[test]
fn hybrid_survivor_notices_kill() {
    survive_kill(WaitStrategy::Hybrid);
}

#[test]
fn futex_survivor_notices_kill() {
    survive_kill(WaitStrategy::Futex);
}
