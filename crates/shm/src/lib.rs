//! Shared-memory transport of ipcbench: a lock-free single-producer single-consumer ring
//! buffer per direction, in memory shared by the two processes.
//!
//! [`ShmTransport`] (transport name `shm`) creates one memfd holding a small header and two
//! rings, and hands out [`ShmChannel`]s. Options: `ring_bytes` (per direction, rounded up to a
//! power of two) and `wait` ([`WaitStrategy`]: `spin`, `hybrid` or `futex`). The peer process
//! opens the memfd through the address `/proc/<pid>/fd/<fd>#<token>`.
//!
//! Surprising choices, each explained where it lives:
//! - A memfd instead of a `/dev/shm` name: a killed process leaves nothing behind (`region`).
//! - Messages longer than the ring are streamed through it in pieces, so every size works
//!   with every ring (`transport`).
//! - A sleeping side is woken only when it raised a flag first, a Dekker-style handshake with
//!   SeqCst fences (`doorbell`); futexes are the shared kind, since the waker is another
//!   process (`wait`).
//! - A peer killed with SIGKILL is noticed through a pidfd, zombie or not (`peer`).
//!
//! [`SharedMap`] is the other shared structure here: a fixed-capacity open-addressing table of
//! client records (a counter and a few bytes of data) in a memfd that any number of processes
//! map, with a lock per record so that concurrent read-modify-writes never lose an update
//! (`map` for the slot protocol, `map_region` for the mapping). The `balance` scenario keeps
//! its `shm` state in it.
//!
//! This is the workspace's one crate with `unsafe` code: the byte copies in and out of the
//! mappings and the casts of their pages to headers and slots. Every block names the
//! invariant it relies on, and every atomic operation the operation it pairs with. The index
//! protocol (`ring`), the bare loop's slots (`slot`), the doorbell and the map's slot protocol (`map`) are model-checked with
//! loom (`--cfg loom`, which builds only those modules and their models) and property-tested
//! against a `VecDeque` and a `HashMap`.
// A loom build keeps only the ring, the doorbell, the map's protocol and their models (the transport needs a real
// mapping and futexes), so outside the models' test build their items go unused.
#![cfg_attr(loom, allow(dead_code))]

mod doorbell;
#[cfg(all(test, loom))]
mod loom_map_models;
#[cfg(all(test, loom))]
mod loom_models;
mod map;
#[cfg(not(loom))]
mod map_region;
#[cfg(not(loom))]
mod memfd;
#[cfg(not(loom))]
mod peer;
#[cfg(not(loom))]
mod region;
mod ring;
mod slot;
mod sync;
#[cfg(not(loom))]
mod transport;
#[cfg(not(loom))]
mod wait;

#[cfg(not(loom))]
pub use map_region::{
    DEFAULT_LOCK_TIMEOUT, MAX_MAP_BYTES, MAX_MAP_SLOTS, MAX_RECORD_BYTES, MapError, MapRecord, SharedMap,
};
#[cfg(not(loom))]
pub use transport::{DEFAULT_RING_BYTES, MAX_RING_BYTES, MIN_RING_BYTES, ShmChannel, ShmListener, ShmTransport};
#[cfg(not(loom))]
pub use wait::{HYBRID_SPIN, LIVENESS_EVERY, ParseWaitStrategyError, SLEEP_TIMEOUT, SPIN_YIELD_AFTER, WaitStrategy};
