//! Unix domain socket transport.
//!
//! [`UdsTransport`] listens on a socket file in the run's directory (or, on Linux, on an
//! abstract address that has no file) and hands out one [`UdsChannel`] per side. Two kinds:
//!
//! - [`UdsKind::Stream`] (`SOCK_STREAM`, the default): length-prefixed frames from
//!   [`ipcbench_core::framing`], like TCP.
//! - [`UdsKind::Seqpacket`] (`SOCK_SEQPACKET`): the kernel keeps message boundaries, so a
//!   message that fits one packet costs one `sendmsg` and one `recvmsg` and no framing reads.
//!   A packet may not exceed about `SO_SNDBUF` bytes, so larger messages are split: the first
//!   packet starts with an 8-byte length, the rest are bare continuation packets. No packet is
//!   ever empty (a 0-byte message is a header-only packet), so a 0-byte read always means the
//!   peer closed.
//!
//! Buffer sizes are applied before `listen`/`connect` and again to the accepted socket (a Unix
//! socket accepted on Linux starts with the default sizes, not the listener's), then read back
//! and recorded. Writes use `MSG_NOSIGNAL`, so a vanished peer is an `EPIPE` error
//! ([`ipcbench_core::TransportError::Disconnected`]) even where `SIGPIPE` is not ignored.
//! Dropping the [`UdsListener`] unlinks its socket file.
//!
//! Stream sockets have the event-loop capability ([`ipcbench_core::event_loop`]) for the
//! many-connection scenarios; seqpacket sockets do not.
#![forbid(unsafe_code)]
#![cfg(unix)]

mod address;
mod channel;
mod event;
mod seqpacket;
mod transport;

pub use channel::UdsChannel;
pub use transport::{UdsKind, UdsListener, UdsTransport};
