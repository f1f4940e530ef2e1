//! The stores without a server process: `local`, `shm` and `sqlite`, through [`StoreHost`],
//! and [`sweep_stale`] on a folder left by a dead owner.

mod common;

use std::time::Duration;

use common::{check_no_lost_update, check_rmw_contract, parent_dir, wait_gone};
use ipcbench_store::{
    SqliteOptions, StoreAddress, StoreConfig, StoreError, StoreHost, StoreKind, StoreSetup, Synchronous,
    WORK_DIR_PREFIX, sweep_stale,
};

fn setup(parent: &std::path::Path) -> StoreSetup {
    StoreSetup {
        work_dir: parent.to_owned(),
        n_clients: 16,
        state_bytes: 64,
    }
}

#[test]
fn local_store_counts_per_client() {
    let parent = parent_dir();
    let host = StoreHost::start(&StoreConfig::Local, &setup(parent.path())).expect("start");
    assert_eq!(host.kind(), StoreKind::Local);
    check_rmw_contract(&mut *host.connect().expect("connect"));
    // Each handle is its own map: another backend sees nothing.
    assert_eq!(host.connect().expect("connect").read_counter(11).expect("read"), 0);
}

#[test]
fn shm_store_counts_per_client_and_threads_lose_no_update() {
    let parent = parent_dir();
    let host = StoreHost::start(&StoreConfig::Shm, &setup(parent.path())).expect("start");
    check_rmw_contract(&mut *host.connect().expect("connect"));
    assert_eq!(host.connect().expect("connect").read_counter(11).expect("read"), 2);
    check_no_lost_update(host.address(), 4, 3_000, 5);
}

#[test]
fn shm_store_reports_overlong_data_and_a_full_map() {
    let parent = parent_dir();
    let setup = StoreSetup {
        work_dir: parent.path().to_owned(),
        n_clients: 1,
        state_bytes: 8,
    };
    let host = StoreHost::start(&StoreConfig::Shm, &setup).expect("start");
    let mut store = host.connect().expect("connect");
    let err = store.rmw(0, &[0u8; 9]).expect_err("too long");
    assert!(matches!(err, StoreError::Backend { store: "shm", .. }), "{err}");
    assert!(err.to_string().contains("exceed"), "{err}");
    // Room for twice the clients: 2 slots.
    store.rmw(1, b"").expect("rmw");
    store.rmw(2, b"").expect("rmw");
    let err = store.rmw(3, b"").expect_err("full");
    assert!(err.to_string().contains("full"), "{err}");
}

#[test]
fn shm_address_fails_cleanly_once_its_creator_is_gone() {
    let parent = parent_dir();
    let host = StoreHost::start(&StoreConfig::Shm, &setup(parent.path())).expect("start");
    let address = host.address().clone();
    drop(host);
    let err = address.connect().expect_err("the map is gone");
    assert!(matches!(err, StoreError::Backend { .. }), "{err}");
}

#[test]
fn sqlite_store_counts_per_client_with_every_synchronous_mode() {
    for synchronous in [Synchronous::Off, Synchronous::Normal, Synchronous::Full] {
        let parent = parent_dir();
        let config = StoreConfig::Sqlite(SqliteOptions {
            synchronous,
            ..SqliteOptions::default()
        });
        let host = StoreHost::start(&config, &setup(parent.path())).expect("start");
        check_rmw_contract(&mut *host.connect().expect("connect"));
        // Shared: a second handle sees the first one's records.
        assert_eq!(host.connect().expect("connect").read_counter(11).expect("read"), 2);
    }
}

#[test]
fn sqlite_writers_in_threads_lose_no_update() {
    let parent = parent_dir();
    let host = StoreHost::start(&StoreConfig::default_for(StoreKind::Sqlite), &setup(parent.path())).expect("start");
    check_no_lost_update(host.address(), 4, 150, 5);
}

#[test]
fn sqlite_leaves_no_file_behind() {
    let parent = parent_dir();
    let host = StoreHost::start(&StoreConfig::default_for(StoreKind::Sqlite), &setup(parent.path())).expect("start");
    let dir = host.work_dir().expect("a work folder").to_owned();
    let mut store = host.connect().expect("connect");
    store.rmw(1, b"x").expect("rmw");
    assert!(dir.join("state.db").exists() && dir.join("state.db-wal").exists());
    drop(store);
    drop(host);
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert_eq!(std::fs::read_dir(parent.path()).expect("list").count(), 0);
}

#[test]
fn an_sqlite_file_that_is_gone_is_a_backend_error() {
    let parent = parent_dir();
    let address = StoreAddress::Sqlite {
        path: parent.path().join("missing.db"),
        synchronous: Synchronous::Normal,
        busy_timeout_ms: 100,
    };
    let err = address.connect().expect_err("no such file");
    assert!(
        matches!(
            err,
            StoreError::Backend {
                store: "sqlite",
                op: "open",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn addresses_survive_serialization() {
    let parent = parent_dir();
    let host = StoreHost::start(&StoreConfig::Shm, &setup(parent.path())).expect("start");
    let json = serde_json::to_string(host.address()).expect("serialize");
    let back: StoreAddress = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(&back, host.address());
    back.connect().expect("connect").rmw(1, b"").expect("rmw");
}

/// A folder as a killed owner leaves it: an owner pid that is gone, and a "server" (a `sleep`
/// of ours) still running. The sweep kills the server and removes the folder, and leaves a
/// live owner's folder and unrelated entries alone.
#[test]
fn sweep_stale_kills_orphaned_servers_and_removes_their_folders() {
    let parent = parent_dir();
    let stale = parent.path().join(format!("{WORK_DIR_PREFIX}redis-1-0"));
    std::fs::create_dir(&stale).expect("mkdir");
    let mut dead = std::process::Command::new("true").spawn().expect("spawn true");
    let dead_pid = dead.id();
    dead.wait().expect("reap");
    std::fs::write(stale.join("owner"), format!("{dead_pid} 1\n")).expect("owner");
    let mut server = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let start_time = proc_start_time(server.id());
    std::fs::write(stale.join("server"), format!("{} {start_time}\n", server.id())).expect("server");

    // A live owner's folder (a real store of ours) and something that is not ours.
    let live = StoreHost::start(&StoreConfig::default_for(StoreKind::Sqlite), &setup(parent.path())).expect("start");
    let unrelated = parent.path().join("keep-me");
    std::fs::create_dir(&unrelated).expect("mkdir");

    let report = sweep_stale(parent.path()).expect("sweep");
    assert_eq!(report.removed, vec![stale.clone()]);
    assert_eq!(report.killed, vec![server.id()]);
    assert_eq!(report.n_in_use, 1);
    let status = server.wait().expect("reap the sleep");
    assert!(!status.success(), "the sleep was killed, not finished");
    assert!(!stale.exists());
    assert!(live.work_dir().expect("folder").exists());
    assert!(unrelated.exists());
    assert!(wait_gone(server.id(), Duration::from_secs(1)));
    // A missing folder is an empty sweep.
    assert_eq!(
        sweep_stale(&parent.path().join("nope")).expect("sweep").removed.len(),
        0
    );
}

/// Field 22 of `/proc/<pid>/stat`.
fn proc_start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let (_, rest) = stat.rsplit_once(')').expect("comm");
    rest.split_whitespace()
        .nth(19)
        .expect("field 22")
        .parse()
        .expect("number")
}
