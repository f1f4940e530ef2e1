//! Named-pipe transport: a pair of FIFOs on Unix.
//!
//! [`PipeTransport`] makes two FIFOs in the run's directory, one per direction
//! (`<name>.to-server.fifo`, `<name>.to-client.fifo`), and hands out one [`PipeChannel`] per
//! side: length-prefixed frames from [`ipcbench_core::framing`] over the two pipe ends.
//!
//! Opening a FIFO blocks until the other end is opened too, and a read end opened before any
//! writer reports end of file, so both sides open with `O_NONBLOCK` and meet in a short
//! handshake with a bounded wait at every step: the client writes a hello once both of its ends
//! are open, the server answers once both of its ends are open, and neither reads before `poll`
//! reports data. Once both ends are open the FIFO files are unlinked; dropping the
//! [`PipeListener`] unlinks them too if no peer ever came.
//!
//! `pipe_buffer_bytes` is applied with `F_SETPIPE_SZ` by each side to the FIFO it writes, and
//! read back with `F_GETPIPE_SZ`. Linux rounds the size up to a power-of-two number of pages
//! and, for unprivileged users, refuses sizes above `fs.pipe-max-size` (1 MiB by default).
//!
//! # Platform-specific behavior
//! A write to a FIFO whose reader is gone raises `SIGPIPE` (FIFOs have no `MSG_NOSIGNAL`).
//! Rust programs ignore `SIGPIPE` unless told otherwise (std sets it to `SIG_IGN` before
//! `main`, and so do test binaries), so the write fails with `EPIPE` and `send` returns
//! [`ipcbench_core::TransportError::Disconnected`]. A host program that restores the default
//! action would be killed instead. Buffer sizes are Linux-only; elsewhere `pipe_buffer_bytes`
//! is refused. Windows named pipes are not written yet.
#![forbid(unsafe_code)]
#![cfg(unix)]

mod channel;
mod fifo;
mod transport;

pub use channel::PipeChannel;
pub use transport::{PipeListener, PipeTransport};
