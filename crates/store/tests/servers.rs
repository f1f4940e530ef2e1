//! The stores with a real server: `redis` (Debian's `redis-server`) and `postgres` (Debian's
//! `postgresql`). Each test starts its own server in its own folder under `/tmp`; the
//! PostgreSQL checks share one cluster (`initdb` takes seconds) and run in one test.
//!
//! The `kill -9` test re-runs this binary as a child (`--exact child`) that starts a server
//! and is then killed, and checks that the server dies with it and that `sweep_stale` removes
//! what it left.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{check_no_lost_update, check_rmw_contract, parent_dir, process_gone, wait_gone};
use ipcbench_store::{
    Persistence, PostgresOptions, PostgresServer, RedisOptions, RedisServer, Store, StoreConfig, StoreError, StoreHost,
    StoreKind, StoreSetup, sweep_stale,
};

const CHILD_ENV: &str = "IPCBENCH_STORE_TEST_CHILD";
const PARENT_ENV: &str = "IPCBENCH_STORE_TEST_PARENT";

fn setup(parent: &Path) -> StoreSetup {
    StoreSetup {
        work_dir: parent.to_owned(),
        n_clients: 16,
        state_bytes: 64,
    }
}

/// Starts a store, failing with the reason if it is unavailable here.
fn start(config: &StoreConfig, parent: &Path) -> StoreHost {
    match StoreHost::start(config, &setup(parent)) {
        Ok(host) => host,
        Err(err) if err.is_unavailable() => panic!("{err} (the tests need Debian's redis-server and postgresql)"),
        Err(err) => panic!("start {}: {err:#?}", config.kind()),
    }
}

#[test]
fn redis_store_counts_per_client_and_connections_lose_no_update() {
    let parent = parent_dir();
    let host = start(&StoreConfig::default_for(StoreKind::Redis), parent.path());
    check_rmw_contract(&mut *host.connect().expect("connect"));
    check_no_lost_update(host.address(), 4, 500, 5);
}

#[test]
fn redis_with_aof_keeps_its_file_in_the_work_folder_and_removes_everything() {
    let parent = parent_dir();
    let config = StoreConfig::Redis(RedisOptions {
        persistence: Persistence::Aof,
        ..RedisOptions::default()
    });
    let host = start(&config, parent.path());
    let mut store = host.connect().expect("connect");
    store.rmw(1, b"persisted").expect("rmw");
    let dir = host.work_dir().expect("folder").to_owned();
    assert!(dir.join("appendonlydir").is_dir(), "no AOF folder in {}", dir.display());
    let pids = host.server_pids();
    assert_eq!(pids.len(), 1);
    drop(host);
    assert!(process_gone(pids[0]), "redis-server {} still runs", pids[0]);
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert_eq!(std::fs::read_dir(parent.path()).expect("list").count(), 0);
    // A request to the stopped server fails with Redis's own error, it does not hang.
    let err = store.rmw(1, b"x").expect_err("server gone");
    assert!(
        matches!(
            err,
            StoreError::Backend {
                store: "redis",
                op: "rmw",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_missing_redis_binary_is_unavailable_and_leaves_nothing() {
    let parent = parent_dir();
    let config = StoreConfig::Redis(RedisOptions {
        binary: PathBuf::from("/nonexistent/redis-server"),
        ..RedisOptions::default()
    });
    let err = StoreHost::start(&config, &setup(parent.path())).expect_err("no binary");
    assert!(matches!(err, StoreError::Unavailable { store: "redis", .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/redis-server"), "{err}");
    assert_eq!(std::fs::read_dir(parent.path()).expect("list").count(), 0);
}

#[test]
fn a_redis_that_exits_at_start_is_a_start_error_with_its_message() {
    let parent = parent_dir();
    // `false --version` fails the probe; `true` passes it and then exits at once as a server.
    let config = StoreConfig::Redis(RedisOptions {
        binary: PathBuf::from("true"),
        start_timeout: Duration::from_secs(10),
        ..RedisOptions::default()
    });
    let err = StoreHost::start(&config, &setup(parent.path())).expect_err("not a server");
    assert!(matches!(err, StoreError::Start { store: "redis", .. }), "{err:?}");
    assert_eq!(std::fs::read_dir(parent.path()).expect("list").count(), 0);
}

/// One cluster for all PostgreSQL checks: the contract, concurrent connections, a failure
/// mid-run, and that stopping it leaves no process, segment or file.
#[test]
fn postgres_store_counts_loses_no_update_and_leaves_nothing() {
    let parent = parent_dir();
    let config = StoreConfig::Postgres(PostgresOptions {
        synchronous_commit: false,
        ..PostgresOptions::default()
    });
    let host = start(&config, parent.path());
    check_rmw_contract(&mut *host.connect().expect("connect"));
    check_no_lost_update(host.address(), 4, 200, 5);

    let dir = host.work_dir().expect("folder").to_owned();
    let mut store = host.connect().expect("connect");
    // The postmaster and its children (checkpointer, writers, our connections' backends).
    let pids = host.server_pids();
    assert!(pids.len() > 1, "{pids:?}");
    let segments_before = sysv_segments_of(pids[0]);
    drop(host);
    for pid in &pids {
        assert!(
            wait_gone(*pid, Duration::from_secs(10)),
            "postgres process {pid} still runs"
        );
    }
    assert!(!dir.exists(), "{} is still there", dir.display());
    assert_eq!(
        sysv_segments_of(pids[0]),
        Vec::<String>::new(),
        "was {segments_before:?}"
    );
    let err = store.rmw(1, b"x").expect_err("server gone");
    assert!(matches!(err, StoreError::Backend { store: "postgres", .. }), "{err}");
}

#[test]
fn missing_postgres_binaries_are_unavailable() {
    let parent = parent_dir();
    let config = StoreConfig::Postgres(PostgresOptions {
        bin_dir: Some(PathBuf::from("/nonexistent/bin")),
        ..PostgresOptions::default()
    });
    let err = StoreHost::start(&config, &setup(parent.path())).expect_err("no binaries");
    assert!(
        matches!(err, StoreError::Unavailable { store: "postgres", .. }),
        "{err}"
    );
    let config = StoreConfig::Postgres(PostgresOptions {
        user: "no-such-user-here".to_owned(),
        ..PostgresOptions::default()
    });
    let err = StoreHost::start(&config, &setup(parent.path())).expect_err("no user");
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(std::fs::read_dir(parent.path()).expect("list").count(), 0);
}

/// The System V segments created by `pid` (from `/proc/sysvipc/shm`).
fn sysv_segments_of(pid: u32) -> Vec<String> {
    std::fs::read_to_string("/proc/sysvipc/shm")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|line| line.split_whitespace().nth(4) == Some(&pid.to_string()))
        .map(str::to_owned)
        .collect()
}

/// The child's side of `a_killed_owner_takes_its_servers_along_and_the_sweep_removes_the_rest`:
/// starts the store named in [`CHILD_ENV`], prints its pids and folder, and waits to be killed.
#[test]
fn child() {
    let Ok(kind) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parent = PathBuf::from(std::env::var(PARENT_ENV).expect("parent folder"));
    let line = match kind.as_str() {
        "redis" => {
            let server = RedisServer::start(&RedisOptions::default(), &parent).expect("start redis");
            let line = format!("READY {} {}", server.pid(), server.work_dir().display());
            std::mem::forget(server); // Never stopped by us: only the kill ends it.
            line
        }
        "postgres" => {
            let server = PostgresServer::start(&PostgresOptions::default(), &parent).expect("start postgres");
            let pids: Vec<String> = server.pids().iter().map(u32::to_string).collect();
            let line = format!("READY {} {}", pids.join(","), server.work_dir().display());
            std::mem::forget(server);
            line
        }
        other => panic!("unknown child {other}"),
    };
    println!("{line}");
    std::thread::sleep(Duration::from_secs(120));
}

/// Runs the child for `kind`, kills it with SIGKILL once its server is up, and checks that the
/// server's processes die with it and that the sweep removes its folder (and segment).
fn check_kill_9(kind: &str) {
    let parent = parent_dir();
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args(["--exact", "child", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ENV, kind)
        .env(PARENT_ENV, parent.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("READY ") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    let line = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not start {kind} within 60 s");
        }
    };
    let mut words = line.split_whitespace().skip(1);
    let pids: Vec<u32> = words
        .next()
        .expect("pids")
        .split(',')
        .map(|p| p.parse().expect("pid"))
        .collect();
    let dir = PathBuf::from(words.next().expect("folder"));
    child.kill().expect("kill -9");
    child.wait().expect("reap the child");
    for pid in &pids {
        assert!(
            wait_gone(*pid, Duration::from_secs(15)),
            "{kind} process {pid} outlived its owner"
        );
    }
    assert!(
        dir.exists(),
        "nobody but the sweep should have removed {}",
        dir.display()
    );
    let report = sweep_stale(parent.path()).expect("sweep");
    assert_eq!(report.removed, vec![dir.clone()]);
    assert!(!dir.exists());
    assert_eq!(sysv_segments_of(pids[0]), Vec::<String>::new());
}

#[test]
fn a_killed_owner_takes_its_redis_along_and_the_sweep_removes_the_rest() {
    check_kill_9("redis");
}

#[test]
fn a_killed_owner_takes_its_postgres_along_and_the_sweep_removes_the_rest() {
    check_kill_9("postgres");
}

/// `Store` is object safe and boxes forward (what `StoreAddress::connect` returns).
#[test]
fn boxed_stores_forward() {
    let mut store: Box<dyn Store> = Box::new(ipcbench_store::LocalStore::new());
    assert_eq!(store.kind(), StoreKind::Local);
    assert_eq!(store.rmw(1, b"").expect("rmw").counter, 1);
}
