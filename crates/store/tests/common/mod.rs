//! Helpers shared by the store tests.
#![allow(dead_code)] // Each test binary uses a different part.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ipcbench_store::{Store, StoreAddress};

/// A fresh parent folder under `/tmp` that every user can traverse (PostgreSQL runs as
/// `postgres` and must reach its work folder), removed at the end of the test.
pub fn parent_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("ipcbench-store-test-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Whether `pid` names no live process (gone, or a zombie that can do nothing).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| matches!(state, 'Z' | 'X')),
    }
}

/// Waits up to `limit` for `pid` to be gone; whether it went.
pub fn wait_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !process_gone(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The basic contract on a fresh store: counters start at 1, count per client, and list.
pub fn check_rmw_contract(store: &mut dyn Store) {
    assert_eq!(store.read_counter(11).expect("read"), 0);
    assert_eq!(store.rmw(11, b"first").expect("rmw").counter, 1);
    assert_eq!(store.rmw(11, b"second").expect("rmw").counter, 2);
    assert_eq!(store.rmw(12, &[0u8; 64]).expect("rmw").counter, 1);
    // Ids beyond i64::MAX are stored bit for bit in the SQL stores.
    assert_eq!(store.rmw(u64::MAX - 1, b"").expect("rmw").counter, 1);
    assert_eq!(store.read_counter(11).expect("read"), 2);
    assert_eq!(store.read_counter(u64::MAX - 1).expect("read"), 1);
    assert_eq!(
        store.counters().expect("counters"),
        BTreeMap::from([(11, 2), (12, 1), (u64::MAX - 1, 1)])
    );
}

/// `n_threads` threads, each with its own handle from `address`, do `n_rounds`
/// read-modify-writes over `n_clients` clients (ids from 1000) at once. Every increment of a client must
/// return a distinct counter (1, 2, ... in some order), and the final counters must equal the
/// requests answered: no update lost.
pub fn check_no_lost_update(address: &StoreAddress, n_threads: u64, n_rounds: u64, n_clients: u64) {
    let seen: Vec<BTreeMap<u64, Vec<u64>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..n_threads)
            .map(|thread_idx| {
                scope.spawn(move || {
                    let mut store = address.connect().expect("connect");
                    let mut seen: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
                    for round in 0..n_rounds {
                        // Clear of the ids `check_rmw_contract` uses.
                        let client = 1_000 + (round + thread_idx) % n_clients;
                        let outcome = store.rmw(client, &[thread_idx as u8; 32]).expect("rmw");
                        seen.entry(client).or_default().push(outcome.counter);
                    }
                    seen
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).collect()
    });
    let mut by_client: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for map in seen {
        for (client, counters) in map {
            by_client.entry(client).or_default().extend(counters);
        }
    }
    let mut store = address.connect().expect("connect");
    let counters = store.counters().expect("counters");
    assert_eq!(by_client.len() as u64, n_clients);
    for (client, mut returned) in by_client {
        returned.sort_unstable();
        let answered = returned.len() as u64;
        assert_eq!(
            returned,
            (1..=answered).collect::<Vec<_>>(),
            "client {client}: duplicate counters"
        );
        assert_eq!(counters[&client], answered, "client {client}: lost updates");
    }
}

/// Whether `path` exists.
pub fn exists(path: &Path) -> bool {
    path.exists()
}
