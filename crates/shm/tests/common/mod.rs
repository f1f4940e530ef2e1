//! Helpers for the tests that run the peer as a real child process.
//!
//! The child is this same test binary, re-run with `--exact child` and the role in the
//! environment variable [`CHILD_ENV`]; each test file has a `child` test that does nothing
//! unless that variable is set. Every wait of the parent has a deadline, after which it kills
//! the child and fails, so a deadlock fails the test instead of hanging it.
#![allow(dead_code)] // Each test binary uses a different part.

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ipcbench_core::payload::Payload;
use ipcbench_shm::WaitStrategy;

/// Names the child's role; unset in the parent.
pub const CHILD_ENV: &str = "IPCBENCH_SHM_TEST_CHILD";
/// The address the child connects to.
pub const ADDRESS_ENV: &str = "IPCBENCH_SHM_TEST_ADDRESS";
/// The child's wait strategy.
pub const WAIT_ENV: &str = "IPCBENCH_SHM_TEST_WAIT";
/// The child's ring size (when it is the one that binds).
pub const RING_ENV: &str = "IPCBENCH_SHM_TEST_RING";
/// How many messages each phase has.
pub const MESSAGES_ENV: &str = "IPCBENCH_SHM_TEST_MESSAGES";

/// How long a child may take to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts this test binary again as a child in `role`, with `envs` set and its standard
/// output piped to the parent.
pub fn spawn_child(role: &str, envs: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().expect("current exe");
    Command::new(exe)
        .args(["--exact", "child", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ENV, role)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child")
}

/// The child's role, if this process is a child.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Reads a variable the parent set for the child.
pub fn child_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child needs {name}"))
}

/// The child's wait strategy.
pub fn child_wait() -> WaitStrategy {
    child_env(WAIT_ENV).parse().expect("wait strategy")
}

/// Runs `work` on its own thread; if it does not finish within `limit`, kills `child` and
/// fails.
pub fn within_or_kill<R: Send + 'static>(
    child: &mut Child,
    limit: Duration,
    work: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(work());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(err) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("parent side did not finish within {limit:?} ({err:?}): hang or panic");
        }
    }
}

/// A deterministic stream of message sizes: mostly small, some a few KiB, a few up to
/// 300 KB (far above a one-page ring, so they are streamed in pieces).
#[derive(Debug, Clone)]
pub struct Sizes {
    state: u64,
}

impl Sizes {
    pub fn new(seed: u64) -> Self {
        Sizes { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The size of the next message.
    pub fn next_size(&mut self) -> usize {
        let r = self.next_u64();
        let pick = r % 1000;
        let spread = (r >> 10) as usize;
        match pick {
            0..=799 => spread % 257,
            800..=949 => 257 + spread % (4096 - 257 + 1),
            950..=994 => 4097 + spread % 64 * 449, // up to ~32 KiB
            _ => 32_768 + spread % 64 * 4_177,     // up to ~300 KB
        }
    }
}

/// Reusable payloads by size (every size is one of at most a few thousand).
#[derive(Default)]
pub struct Payloads {
    by_size: HashMap<usize, Payload>,
}

impl Payloads {
    /// The message numbered `seq` of `len` bytes, stamped.
    pub fn stamped(&mut self, len: usize, seq: u64) -> &[u8] {
        self.by_size.entry(len).or_insert_with(|| Payload::new(len)).stamp(seq)
    }
}

/// Entries of `/dev/shm` now.
pub fn dev_shm() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Descriptors and mappings of this process that still name one of our memfds.
pub fn our_memfds_in_this_process() -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        found.extend(
            maps.lines()
                .filter(|l| l.contains("memfd:ipcbench-shm"))
                .map(str::to_owned),
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        for entry in dir.filter_map(Result::ok) {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                let target = target.to_string_lossy().into_owned();
                if target.contains("memfd:ipcbench-shm") {
                    found.push(format!("{:?} -> {target}", entry.path()));
                }
            }
        }
    }
    found
}
