//! Cross-process test of the shared map: several processes (this test binary re-run as
//! children) hammer the same few clients of one map at once, and no increment may be lost.
//!
//! Each of [`N_CHILDREN`] children and the parent itself meet at a start barrier, then run
//! [`N_ROUNDS`] read-modify-writes spread evenly over [`N_CLIENTS`] clients, so every client
//! must end at exactly `(N_CHILDREN + 1) * N_ROUNDS / N_CLIENTS`, and the data must be one
//! writer's whole record.
//! Every wait of the parent has a deadline, after which it kills the children and fails.
#![cfg(all(target_os = "linux", not(loom)))]

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{child_env, child_role, spawn_child};
use ipcbench_shm::SharedMap;

const ADDRESS: &str = "IPCBENCH_SHM_TEST_MAP_ADDRESS";
const WRITER: &str = "IPCBENCH_SHM_TEST_MAP_WRITER";
const N_CHILDREN: u64 = 4;
const N_CLIENTS: u64 = 8;
/// Per process; debug builds do a tenth.
const N_ROUNDS: u64 = if cfg!(debug_assertions) { 20_000 } else { 200_000 };
/// The client whose counter is the start barrier: every writer increments it, then waits
/// until all have, so that the writers overlap instead of running one after another.
const BARRIER: u64 = 1_000;
const DATA_BYTES: usize = 24;
/// How long the children may take in all (far more than they need on a loaded machine).
const LIMIT: Duration = Duration::from_secs(60);

/// The record a writer stores: its number in every byte, so a torn record shows.
fn data_of(writer: u64) -> [u8; DATA_BYTES] {
    [writer as u8; DATA_BYTES]
}

/// Waits at the barrier, then runs `N_ROUNDS` read-modify-writes as `writer`.
fn hammer(map: &SharedMap, writer: u64) {
    map.rmw(BARRIER, &[]).expect("arrive");
    let deadline = Instant::now() + LIMIT;
    while map.counter(BARRIER).expect("barrier") < N_CHILDREN + 1 {
        assert!(Instant::now() < deadline, "not every writer arrived within {LIMIT:?}");
        std::thread::yield_now();
    }
    for round in 0..N_ROUNDS {
        map.rmw(round % N_CLIENTS, &data_of(writer)).expect("rmw");
    }
}

/// The children's side: does nothing in the parent.
#[test]
fn child() {
    if child_role().as_deref() != Some("map-writer") {
        return;
    }
    let map = SharedMap::open(&child_env(ADDRESS)).expect("open the parent's map");
    let writer: u64 = child_env(WRITER).parse().expect("writer number");
    hammer(&map, writer);
}

/// Waits for `child` until `deadline`, killing it then.
fn wait_or_kill(child: &mut Child, deadline: Instant) -> std::process::ExitStatus {
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a writer did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn processes_hammering_shared_clients_lose_no_update() {
    if child_role().is_some() {
        return;
    }
    let map = SharedMap::create(64, DATA_BYTES).expect("create");
    let mut children: Vec<Child> = (1..=N_CHILDREN)
        .map(|writer| {
            spawn_child(
                "map-writer",
                &[(ADDRESS, map.address().to_owned()), (WRITER, writer.to_string())],
            )
        })
        .collect();
    hammer(&map, 0);
    let deadline = Instant::now() + LIMIT;
    for child in &mut children {
        let status = wait_or_kill(child, deadline);
        assert!(status.success(), "a writer failed: {status}");
    }
    let mut counters = map.counters().expect("counters");
    counters.sort_unstable();
    let each = (N_CHILDREN + 1) * N_ROUNDS / N_CLIENTS;
    let mut expected: Vec<(u64, u64)> = (0..N_CLIENTS).map(|client| (client, each)).collect();
    expected.push((BARRIER, N_CHILDREN + 1));
    assert_eq!(counters, expected);
    for client in 0..N_CLIENTS {
        let mut buf = [0u8; DATA_BYTES];
        let record = map.read(client, &mut buf).expect("read").expect("present");
        assert_eq!(record.data_len, DATA_BYTES);
        assert!(buf.iter().all(|b| *b == buf[0]), "torn record {buf:?}");
        assert!(u64::from(buf[0]) <= N_CHILDREN);
    }
}
