//! The conformance suite: one check per item of the contract on [`crate::transport`].
//!
//! Each transport crate runs it from `tests/conformance.rs`:
//!
//! ```ignore
//! ipcbench_core::conformance_tests!(ipcbench_tcp::TcpTransport::default());
//! ```
//!
//! The checks run both sides as threads of the test process; the harness's own tests cover
//! the separate-process path. Every wait is bounded by [`within`], so a transport that
//! deadlocks fails its test instead of hanging the run.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::payload::{Payload, verify};
use crate::{Channel, Endpoint, Listener, Transport, TransportError};

/// How long any single check may take before it counts as a hang.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a peer's disappearance may take to show up as `Disconnected`.
pub const DISCONNECT_WITHIN: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Message sizes from empty to well above any socket, pipe or ring buffer.
pub const SIZES: &[usize] = &[
    0,
    1,
    7,
    12,
    13,
    64,
    1000,
    4095,
    4096,
    65_535,
    65_536,
    65_537,
    300_001,
    1 << 20,
    (4 << 20) + 3,
];

/// Runs `f` on its own thread and panics if it does not finish within `limit`.
pub fn within<R: Send + 'static>(limit: Duration, what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {limit:?} (hang)"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: panicked"),
    }
}

/// Binds in a fresh directory and connects one client; returns (server, client, dir).
pub fn connected_pair<T: Transport + 'static>(transport: &Arc<T>, dir: &Path) -> (T::Channel, T::Channel) {
    let mut listener = transport.bind(&Endpoint::new("conformance", dir)).expect("bind");
    let address = listener.address();
    let client_transport = Arc::clone(transport);
    let client = thread::spawn(move || client_transport.connect(&address, CONNECT_TIMEOUT).expect("connect"));
    let server = listener.accept(CONNECT_TIMEOUT).expect("accept");
    let client = client.join().expect("connect thread");
    drop(listener);
    (server, client)
}

fn fresh_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ipcbench-conformance-")
        .tempdir()
        .expect("temp dir")
}

/// Contract item 1: every size arrives whole and intact, in both directions.
pub fn messages_arrive_whole<T: Transport + 'static>(transport: Arc<T>) {
    within(CHECK_TIMEOUT, "messages_arrive_whole", move || {
        let dir = fresh_dir();
        let (mut server, mut client) = connected_pair(&transport, dir.path());
        let echo = thread::spawn(move || {
            let mut buf = vec![0u8; SIZES[SIZES.len() - 1]];
            for (seq, &size) in SIZES.iter().enumerate() {
                let n = server.recv(&mut buf).expect("server recv");
                verify(&buf[..n], size, seq as u64).expect("request intact");
                server.send(&buf[..n]).expect("server send");
            }
            server
        });
        let mut buf = vec![0u8; SIZES[SIZES.len() - 1]];
        for (seq, &size) in SIZES.iter().enumerate() {
            client.send(Payload::new(size).stamp(seq as u64)).expect("client send");
            let n = client.recv(&mut buf).expect("client recv");
            verify(&buf[..n], size, seq as u64).expect("reply intact");
        }
        echo.join().expect("echo thread");
    });
}

/// Contract item 1: a one-way burst of mixed sizes arrives in order, exactly once.
pub fn burst_arrives_in_order_exactly_once<T: Transport + 'static>(transport: Arc<T>) {
    within(CHECK_TIMEOUT, "burst_arrives_in_order_exactly_once", move || {
        let dir = fresh_dir();
        let (mut server, mut client) = connected_pair(&transport, dir.path());
        const N: u64 = 3000;
        let size_of = |seq: u64| [0usize, 5, 64, 1500, 9000, 70_000][(seq % 6) as usize];
        let sender = thread::spawn(move || {
            let mut payloads: Vec<Payload> = (0..6).map(|i| Payload::new(size_of(i))).collect();
            for seq in 0..N {
                client.send(payloads[(seq % 6) as usize].stamp(seq)).expect("send");
            }
            client
        });
        let mut buf = vec![0u8; 70_000];
        for seq in 0..N {
            let n = server.recv(&mut buf).expect("recv");
            verify(&buf[..n], size_of(seq), seq).expect("in order and intact");
        }
        let _client = sender.join().expect("sender thread");
    });
}

/// Contract item 2: `accept` without a peer ends in `ConnectTimeout`, not a hang.
pub fn accept_times_out_without_peer<T: Transport + 'static>(transport: Arc<T>) {
    within(CHECK_TIMEOUT, "accept_times_out_without_peer", move || {
        let dir = fresh_dir();
        let mut listener = transport.bind(&Endpoint::new("lonely", dir.path())).expect("bind");
        let started = Instant::now();
        let result = listener.accept(Duration::from_millis(300));
        assert!(
            matches!(result, Err(TransportError::ConnectTimeout { .. })),
            "accept without a peer must time out, got {:?}",
            result.map(|_| ())
        );
        assert!(started.elapsed() < Duration::from_secs(5), "accept overran its timeout");
    });
}

/// Contract item 3: a client that dials before `accept` is called still gets through.
pub fn connect_retries_until_accepted<T: Transport + 'static>(transport: Arc<T>) {
    within(CHECK_TIMEOUT, "connect_retries_until_accepted", move || {
        let dir = fresh_dir();
        let mut listener = transport.bind(&Endpoint::new("late", dir.path())).expect("bind");
        let address = listener.address();
        let client_transport = Arc::clone(&transport);
        let client = thread::spawn(move || client_transport.connect(&address, CONNECT_TIMEOUT));
        thread::sleep(Duration::from_millis(200));
        let mut server = listener.accept(CONNECT_TIMEOUT).expect("accept");
        let mut client = client.join().expect("connect thread").expect("connect");
        client.send(b"late but here").expect("send");
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"late but here");
    });
}

/// Contract item 3: dialling an endpoint nobody listens on fails within its timeout.
pub fn connect_to_nothing_fails<T: Transport + 'static>(transport: Arc<T>) {
    within(CHECK_TIMEOUT, "connect_to_nothing_fails", move || {
        let dir = fresh_dir();
        let listener = transport.bind(&Endpoint::new("gone", dir.path())).expect("bind");
        let address = listener.address();
        drop(listener);
        let started = Instant::now();
        assert!(
            transport.connect(&address, Duration::from_millis(300)).is_err(),
            "connected to a dropped listener"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "connect overran its timeout"
        );
    });
}

/// Contract item 4: dropping one side makes the other's `recv` return `Disconnected`.
pub fn drop_disconnects_peer<T: Transport + 'static>(transport: Arc<T>) {
    for drop_client in [true, false] {
        let transport = Arc::clone(&transport);
        within(CHECK_TIMEOUT, "drop_disconnects_peer", move || {
            let dir = fresh_dir();
            let (server, client) = connected_pair(&transport, dir.path());
            let (dropped, mut survivor) = if drop_client {
                (client, server)
            } else {
                (server, client)
            };
            drop(dropped);
            let waited = within(DISCONNECT_WITHIN, "recv after the peer dropped", move || {
                let mut buf = vec![0u8; 1024];
                survivor.recv(&mut buf).map(|_| ())
            });
            assert!(
                matches!(waited, Err(TransportError::Disconnected)),
                "expected Disconnected, got {waited:?}"
            );
        });
    }
}

/// Contract item 4: a sender whose peer is gone gets `Disconnected` instead of blocking.
pub fn send_to_dropped_peer_fails<T: Transport + 'static>(transport: Arc<T>) {
    within(CHECK_TIMEOUT, "send_to_dropped_peer_fails", move || {
        let dir = fresh_dir();
        let (server, mut client) = connected_pair(&transport, dir.path());
        drop(server);
        let result = within(DISCONNECT_WITHIN, "send after the peer dropped", move || {
            let msg = vec![0u8; 64 * 1024];
            // Enough to fill any buffer: the send must fail once nobody reads.
            for _ in 0..4096 {
                client.send(&msg)?;
            }
            Ok(())
        });
        assert!(
            matches!(result, Err(TransportError::Disconnected)),
            "expected Disconnected, got {result:?}"
        );
    });
}

/// Contract item 5: dropping listener and channels leaves the endpoint directory empty.
pub fn drop_removes_every_file<T: Transport + 'static>(transport: Arc<T>) {
    within(CHECK_TIMEOUT, "drop_removes_every_file", move || {
        let dir = fresh_dir();
        {
            let (mut server, mut client) = connected_pair(&transport, dir.path());
            client.send(b"x").expect("send");
            let mut buf = [0u8; 8];
            server.recv(&mut buf).expect("recv");
        }
        {
            let _unused = transport.bind(&Endpoint::new("unused", dir.path())).expect("bind");
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read dir")
            .map(|e| e.expect("entry").path())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    });
}

/// Optional capability [`Channel::split`]: with many large messages in flight both ways, the
/// halves on two threads never deadlock, and the channel is whole again afterwards.
///
/// A transport that cannot split passes trivially; the harness reports the cases that need it
/// as unsupported.
pub fn split_halves_never_deadlock<T: Transport + 'static>(transport: Arc<T>) {
    within(CHECK_TIMEOUT, "split_halves_never_deadlock", move || {
        let dir = fresh_dir();
        let (mut server, mut client) = connected_pair(&transport, dir.path());
        if client.split().is_none() {
            return;
        }
        const N: u64 = 64;
        const SIZE: usize = 256 * 1024;
        // The server echoes with one thread: it would deadlock against a one-thread client
        // that writes all N requests before reading, since N x SIZE exceeds any buffer.
        let echo = thread::spawn(move || {
            let mut buf = vec![0u8; SIZE];
            for seq in 0..=N {
                let n = server.recv(&mut buf).expect("server recv");
                if seq < N {
                    verify(&buf[..n], SIZE, seq).expect("request intact");
                }
                server.send(&buf[..n]).expect("server send");
            }
            server
        });
        {
            let (mut tx, mut rx) = client.split().expect("split twice");
            thread::scope(|s| {
                s.spawn(move || {
                    let mut payload = Payload::new(SIZE);
                    for seq in 0..N {
                        tx.send(payload.stamp(seq)).expect("send half");
                    }
                });
                let mut buf = vec![0u8; SIZE];
                for seq in 0..N {
                    let n = rx.recv(&mut buf).expect("recv half");
                    verify(&buf[..n], SIZE, seq).expect("reply intact");
                }
            });
        }
        client.send(b"whole again").expect("send after split");
        let mut buf = vec![0u8; SIZE];
        let n = client.recv(&mut buf).expect("recv after split");
        assert_eq!(&buf[..n], b"whole again");
        echo.join().expect("echo thread");
    });
}

/// Sizes for the bare loop check: small, around a page and a ring, and above any buffer.
const BARE_SIZES: &[usize] = &[1, 8, 64, 1000, 4096, 65_537, (1 << 20) + 3];
/// Bytes of the bare loop check's one-way burst, read back in chunks of another size.
const BARE_BURST_BYTES: usize = 300_001;

fn pattern(len: usize, salt: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ salt) as u8).collect()
}

/// Contract item 6: a channel that offers a bare loop moves raw bytes whole and in order in
/// both directions through it, and is a whole channel again afterwards. A transport without
/// one passes (it says so by returning `None`; the harness records such cases as
/// `bare: unsupported`).
pub fn bare_moves_bytes_whole<T: Transport + 'static>(transport: Arc<T>) {
    within(CHECK_TIMEOUT, "bare_moves_bytes_whole", move || {
        let dir = fresh_dir();
        let (mut server, mut client) = connected_pair(&transport, dir.path());
        let offered = (client.bare().is_some(), server.bare().is_some());
        assert_eq!(
            offered.0, offered.1,
            "both ends of a channel offer the bare loop, or neither"
        );
        if !offered.0 {
            return;
        }
        let echo = thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let n = server.recv(&mut buf).expect("framed recv before");
            assert_eq!(&buf[..n], b"before");
            {
                let mut bare = server.bare().expect("bare");
                let mut buf = vec![0u8; BARE_SIZES[BARE_SIZES.len() - 1]];
                for &size in BARE_SIZES {
                    bare.read_exact(&mut buf[..size]).expect("bare read");
                    bare.write_all(&buf[..size]).expect("bare echo");
                }
                // The burst comes in writes of 1000 bytes and is read in pieces of 777.
                let mut got = Vec::with_capacity(BARE_BURST_BYTES);
                while got.len() < BARE_BURST_BYTES {
                    let n = (BARE_BURST_BYTES - got.len()).min(777);
                    bare.read_exact(&mut buf[..n]).expect("bare burst read");
                    got.extend_from_slice(&buf[..n]);
                }
                assert!(
                    got == pattern(BARE_BURST_BYTES, 7),
                    "the burst arrived whole and in order"
                );
                bare.write_all(&[1]).expect("bare ack");
            }
            let n = server.recv(&mut buf).expect("framed recv after");
            server.send(&buf[..n]).expect("framed send after");
            server
        });
        client.send(b"before").expect("framed send before");
        {
            let mut bare = client.bare().expect("bare");
            let mut buf = vec![0u8; BARE_SIZES[BARE_SIZES.len() - 1]];
            for (idx, &size) in BARE_SIZES.iter().enumerate() {
                let sent = pattern(size, idx);
                bare.write_all(&sent).expect("bare write");
                bare.read_exact(&mut buf[..size]).expect("bare read echo");
                assert!(buf[..size] == sent[..], "{size} bytes came back whole");
            }
            let burst = pattern(BARE_BURST_BYTES, 7);
            for chunk in burst.chunks(1000) {
                bare.write_all(chunk).expect("bare burst write");
            }
            let mut ack = [0u8; 1];
            bare.read_exact(&mut ack).expect("bare ack");
            assert_eq!(ack, [1]);
        }
        client.send(b"whole again").expect("framed send after");
        let mut buf = vec![0u8; 64];
        let n = client.recv(&mut buf).expect("framed recv after");
        assert_eq!(&buf[..n], b"whole again");
        echo.join().expect("echo thread");
    });
}

/// Generates one `#[test]` per conformance check for the transport built by `$make`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance as suite;
            fn transport() -> ::std::sync::Arc<impl $crate::Transport + 'static> {
                ::std::sync::Arc::new($make)
            }
            #[test]
            fn messages_arrive_whole() {
                suite::messages_arrive_whole(transport());
            }
            #[test]
            fn burst_arrives_in_order_exactly_once() {
                suite::burst_arrives_in_order_exactly_once(transport());
            }
            #[test]
            fn accept_times_out_without_peer() {
                suite::accept_times_out_without_peer(transport());
            }
            #[test]
            fn connect_retries_until_accepted() {
                suite::connect_retries_until_accepted(transport());
            }
            #[test]
            fn connect_to_nothing_fails() {
                suite::connect_to_nothing_fails(transport());
            }
            #[test]
            fn drop_disconnects_peer() {
                suite::drop_disconnects_peer(transport());
            }
            #[test]
            fn send_to_dropped_peer_fails() {
                suite::send_to_dropped_peer_fails(transport());
            }
            #[test]
            fn drop_removes_every_file() {
                suite::drop_removes_every_file(transport());
            }
            #[test]
            fn split_halves_never_deadlock() {
                suite::split_halves_never_deadlock(transport());
            }
            #[test]
            fn bare_moves_bytes_whole() {
                suite::bare_moves_bytes_whole(transport());
            }
        }
    };
}
