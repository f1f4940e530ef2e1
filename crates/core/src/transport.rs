//! The `Transport`, `Listener` and `Channel` traits and their contract.
//!
//! Every transport promises the following; the `conformance` suite (feature `conformance`) has one test per
//! item and every transport crate runs it:
//!
//! 1. **Whole, in order, exactly once.** A message passed to [`Channel::send`] arrives as one
//!    message of the same length and bytes from [`Channel::recv`] on the other side, in the
//!    order sent, exactly once, for every length from 0 bytes to well above the transport's
//!    buffer or ring size.
//! 2. **One peer.** [`Listener::accept`] returns a channel for exactly one peer, or
//!    [`TransportError::ConnectTimeout`] when none arrived within its timeout.
//! 3. **Connect retries.** [`Transport::connect`] retries until its timeout, so the peer may be
//!    started before or after the listener is ready to accept.
//! 4. **Disconnection is an error, never a hang.** Once one side drops its channel (or its
//!    process dies), the other side's next `recv` (and, for a peer that no longer reads, `send`)
//!    returns [`TransportError::Disconnected`] within a bounded time.
//! 5. **Nothing left behind.** Dropping the listener and the channels removes every socket
//!    file, FIFO and named shared-memory object the transport created.
//! 6. **Bare bytes, when offered.** A channel whose [`Channel::bare`] returns `Some` moves raw
//!    bytes whole and in order in both directions through it (no framing), and is a whole
//!    channel again once the [`Bare`] is dropped, provided both sides read exactly what the
//!    other wrote in between.
//!
//! Both `send` and `recv` block. The timed loop of the harness is generic over
//! [`Transport`], so every transport gets its own monomorphic copy of it and the measured path
//! has no dynamic dispatch.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::event_loop::EventLoopTransport;
use crate::{Endpoint, TransportError};

/// Transport options as the operating system actually applied them, read back after setup.
///
/// Keys are config keys (`send_buffer_bytes`, `wait`, ...) so records line up with plans.
pub type Options = BTreeMap<String, serde_json::Value>;

/// How the peer of a transport runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerMode {
    /// The peer is a separate process (every real transport).
    Process,
    /// The peer is a thread of the same process (`inproc` only); records label it as such.
    Thread,
    /// There is no peer: the channel answers by itself (`null`, the harness's floor).
    None,
}

/// A way to move messages between two peers.
pub trait Transport: Send + Sync {
    /// The listening half, made by [`Transport::bind`].
    type Listener: Listener<Channel = Self::Channel>;
    /// The connection each side gets.
    type Channel: Channel + 'static;

    /// Stable short name for configs, records and chart legends ("tcp", "shm").
    fn name(&self) -> &'static str;

    /// How the peer runs; [`PeerMode::Process`] unless the transport is a baseline.
    fn peer_mode(&self) -> PeerMode {
        PeerMode::Process
    }

    /// True when a side busy-polls while it waits (shared-memory spin). The harness refuses to
    /// run such a transport with both sides on one core, where it would measure the scheduler.
    fn busy_polls(&self) -> bool {
        false
    }

    /// Creates the endpoint without waiting for a peer.
    ///
    /// # Errors
    /// `Io` when the endpoint cannot be created; `BadOption` when an option cannot be applied.
    fn bind(&self, endpoint: &Endpoint) -> Result<Self::Listener, TransportError>;

    /// Connects to the address published by [`Listener::address`], retrying until `timeout`.
    ///
    /// # Errors
    /// `ConnectTimeout` when no listener answered in time; `BadAddress` for a malformed address.
    fn connect(&self, address: &str, timeout: Duration) -> Result<Self::Channel, TransportError>;

    /// The optional event-loop capability (many non-blocking connections on one mio `Poll`),
    /// used by the many-connection scenarios. `None` (the default) when this transport, or
    /// this configuration of it, has none; those cases are then reported as unsupported.
    fn event_loop(&self) -> Option<&dyn EventLoopTransport> {
        None
    }

    /// The same transport with its listeners on `ip` instead, for a transport whose endpoints
    /// are IP addresses (tcp); `None` (the default) for every other. The many-connection
    /// scenarios use it to listen on the address each remote generator reaches this machine at.
    fn on_ip(&self, _ip: std::net::IpAddr) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
}

/// The listening half of a transport, waiting for its one peer.
///
/// Dropping it removes every file or name it created (contract item 5).
pub trait Listener: Send {
    /// The connection [`Listener::accept`] hands out.
    type Channel: Channel;

    /// The text a peer passes to [`Transport::connect`]: a port, a path, a descriptor number.
    fn address(&self) -> String;

    /// Waits up to `timeout` for exactly one peer.
    ///
    /// # Errors
    /// `ConnectTimeout` when no peer arrived in time.
    fn accept(&mut self, timeout: Duration) -> Result<Self::Channel, TransportError>;
}

/// One end of an established connection.
pub trait Channel: Send {
    /// Sends one message, blocking while the peer cannot take it yet.
    ///
    /// # Errors
    /// `Disconnected` once the peer is gone; `MessageTooLarge` past the transport's limit.
    fn send(&mut self, msg: &[u8]) -> Result<(), TransportError>;

    /// Receives one message into `buf` and returns its length. Bytes of `buf` past that length
    /// may have been overwritten (a transport may copy in whole lines or predicted lengths).
    ///
    /// # Errors
    /// `Disconnected` once the peer is gone; `MessageTooLarge` if `buf` is too short (the
    /// channel is unusable afterwards).
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError>;

    /// The transport options as applied and read back from the operating system.
    fn applied_options(&self) -> Options {
        Options::new()
    }

    /// Optional capability: splits the channel into a sending and a receiving half that two
    /// threads may use at the same time. The halves borrow the channel; once both are dropped
    /// the channel is whole again, with nothing lost in between.
    ///
    /// A client that keeps several requests in flight needs this. With one thread and blocking
    /// calls it deadlocks once the bytes in flight exceed the buffers of both directions: it
    /// blocks writing requests while the peer blocks writing replies that nobody reads.
    ///
    /// The halves are trait objects (one indirect call per message); every real transport
    /// spends a system call or a cache-line transfer per message, orders of magnitude more.
    ///
    /// `None` (the default) when the transport cannot be split.
    fn split(&mut self) -> Option<Halves<'_>> {
        None
    }

    /// Optional capability: the transport's bare loop, raw bytes over the same connected
    /// objects (the socket, the FIFO pair, one shared-memory slot per direction) with no
    /// framing, no header and no check. The harness times it against the framed channel to
    /// measure its own overhead (`overhead_vs_bare`).
    ///
    /// Both sides must switch at the same point in the conversation, with nothing of the
    /// framed channel in flight, and must read exactly the bytes the other side writes before
    /// switching back. Bytes the channel already buffered are handed out first.
    ///
    /// The [`Bare`] is a trait object, so each write and read costs one indirect call (about a
    /// nanosecond), against a system call or a cache-line transfer for the I/O itself.
    ///
    /// `None` (the default) when the transport has no bare loop (`inproc`, `null`).
    fn bare(&mut self) -> Option<Bare<'_>> {
        None
    }
}

/// Raw byte I/O on the objects under a channel; see [`Channel::bare`].
pub trait BareIo {
    /// Writes all of `bytes`, blocking while the peer cannot take them yet.
    ///
    /// # Errors
    /// `Disconnected` once the peer is gone.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), TransportError>;

    /// Fills all of `buf`, blocking until the bytes arrive.
    ///
    /// # Errors
    /// `Disconnected` once the peer is gone.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), TransportError>;
}

/// The bare loop of a channel, borrowing it (see [`Channel::bare`]).
pub type Bare<'a> = Box<dyn BareIo + 'a>;

/// The sending half of a channel split by [`Channel::split`].
pub trait SendHalf: Send {
    /// Sends one message, as [`Channel::send`].
    ///
    /// # Errors
    /// As [`Channel::send`].
    fn send(&mut self, msg: &[u8]) -> Result<(), TransportError>;
}

/// The receiving half of a channel split by [`Channel::split`].
pub trait RecvHalf: Send {
    /// Receives one message, as [`Channel::recv`].
    ///
    /// # Errors
    /// As [`Channel::recv`].
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError>;
}

/// The two halves of a split channel, borrowing it.
pub type Halves<'a> = (Box<dyn SendHalf + 'a>, Box<dyn RecvHalf + 'a>);
