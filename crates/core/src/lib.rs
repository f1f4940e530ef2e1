//! The contract every ipcbench transport implements, and the pieces transports share.
//!
//! - [`Transport`], [`Listener`] and [`Channel`]: a blocking, message-oriented connection
//!   between exactly two peers. The contract is written on [`transport`] and checked by the
//!   `conformance` suite (feature `conformance`), which every transport runs from its own tests.
//! - [`TransportError`]: what a transport can fail with, named so the harness can act on it.
//! - [`framing`]: length-prefixed frames for byte-stream transports (TCP, Unix stream sockets,
//!   FIFOs).
//! - [`payload`]: every benchmark message carries a sequence number and a checksum that the
//!   receiver verifies, so a lost, duplicated, reordered or corrupt message fails the case.
//! - [`event_loop`]: the optional second capability, registering many non-blocking
//!   connections with a mio event loop (`tcp` and `uds` have it), for the many-connection
//!   scenarios.
//! - [`baseline`]: the two reference transports, `inproc` (two threads of one process) and
//!   `null` (no peer at all: the harness's own floor).
//!
//! A surprising choice: listening is split into [`Transport::bind`] (create the endpoint, do not
//! wait) and [`Listener::accept`] (wait for the one peer). The harness needs the endpoint's
//! address, and for shared memory an inheritable descriptor, *before* it spawns the peer process.
#![forbid(unsafe_code)]

pub mod baseline;
#[cfg(feature = "conformance")]
pub mod conformance;
mod endpoint;
mod error;
pub mod event_loop;
pub mod framing;
#[cfg(unix)]
pub mod nosignal;
pub mod payload;
pub mod sockets;
pub mod transport;
#[cfg(unix)]
pub mod wait;

pub use endpoint::Endpoint;
pub use error::TransportError;
pub use transport::{Bare, BareIo, Channel, Halves, Listener, Options, PeerMode, RecvHalf, SendHalf, Transport};
