//! Shared-memory transport of ipcbench: a lock-free SPSC ring buffer (work in progress).
//!
//! - `ring`: the byte ring and its index protocol, generic over where the bytes live.
//! - `doorbell`: the sleep/wake handshake used by the futex-based wait strategies.
//! - `sync`: the only place that names atomics and cells (loom's under `cfg(loom)`).
// The transport that uses the ring lands in the next commit.
#![allow(dead_code)]

mod doorbell;
#[cfg(all(test, loom))]
mod loom_models;
mod ring;
mod sync;
