//! Loopback TCP transport.
//!
//! [`TcpTransport`] binds `127.0.0.1` (or [`TcpTransport::listen_ip`]) on a port the kernel
//! picks and hands out one [`TcpChannel`] per side: length-prefixed frames from
//! [`ipcbench_core::framing`] over a `std::net::TcpStream`.
//!
//! - Nagle is off by default (`nodelay`): we time small round trips, not bulk throughput.
//! - Buffer sizes are set with socket2 *before* `listen` and `connect`, because the receive
//!   buffer fixes the window scale in the TCP handshake. Linux doubles the value asked for (the
//!   extra half pays for its bookkeeping) and clamps it to `net.core.wmem_max`/`rmem_max`, so
//!   every channel records the value the kernel reports next to the value that was asked for.
//! - [`TcpListener`] waits in `accept` with `poll` on a non-blocking socket, so it honours its
//!   timeout. `connect` dials again every few milliseconds until its timeout and refuses a
//!   connection to itself (TCP simultaneous open, possible when repeatedly dialling a free port
//!   in the ephemeral range).
//! - It has the event-loop capability ([`ipcbench_core::event_loop`]): `listen_many` and
//!   `connect_nonblocking` hand out mio streams with the same options applied.
//! - Writes use `MSG_NOSIGNAL`, so a vanished peer is an `EPIPE` error
//!   ([`ipcbench_core::TransportError::Disconnected`]) even where `SIGPIPE` is not ignored.
#![forbid(unsafe_code)]

mod channel;
mod event;
mod transport;

pub use channel::TcpChannel;
pub use transport::{TcpListener, TcpTransport};
