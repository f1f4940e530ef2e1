//! The optional event-loop capability: many non-blocking connections on one mio `Poll`.
//!
//! The scenarios with thousands of connections (`load`, `conn-cost`) cannot afford a thread per
//! connection, and the blocking [`crate::Channel`] cannot be multiplexed. A transport that can
//! hand out non-blocking sockets implements [`EventLoopTransport`] and returns it from
//! [`crate::Transport::event_loop`]; every other transport keeps the default `None`, and the
//! harness reports those cases as unsupported instead of faking them.
//!
//! - Streams are [`EventStream`]s: an enum of mio's TCP and Unix stream types, so an event
//!   loop's reads and writes are direct calls with no dynamic dispatch.
//! - Listeners are trait objects ([`EventListener`]): accepting is not on the measured path,
//!   and each transport applies its own options (buffer sizes, `TCP_NODELAY`) to accepted
//!   sockets. Dropping a listener removes any socket file it created.
//! - [`EventLoopTransport::connect_nonblocking`] starts a connection and returns at once; the
//!   caller registers the stream for `WRITABLE` and checks [`EventStream::take_error`] on the
//!   first event, which is how a non-blocking connect reports its outcome.
//!
//! The streams carry whatever bytes the caller writes: the event-loop scenarios frame their
//! messages themselves, with the same 4-byte length prefix as [`crate::framing`].

use std::io::{self, IoSlice, Read, Write};

use mio::event::Source;
use mio::{Interest, Registry, Token};

use crate::{Endpoint, TransportError};

/// A transport that can register many non-blocking connections with an event loop.
pub trait EventLoopTransport: Send + Sync {
    /// Creates a listening endpoint that accepts many connections, with room for `backlog`
    /// connections waiting to be accepted (the kernel caps it at `net.core.somaxconn`).
    ///
    /// # Errors
    /// `Io` when the endpoint cannot be created; `BadOption` when an option cannot be applied.
    fn listen_many(&self, endpoint: &Endpoint, backlog: u32) -> Result<Box<dyn EventListener>, TransportError>;

    /// Starts a non-blocking connection to `address` (as published by
    /// [`EventListener::address`]) and returns without waiting for it to complete.
    ///
    /// # Errors
    /// `BadAddress` for a malformed address; `Io` when the socket cannot be made or the
    /// connection is refused. An `Io` error whose source is [`io::ErrorKind::WouldBlock`] means
    /// the listener's backlog is full (Unix sockets report this at once): try again later.
    fn connect_nonblocking(&self, address: &str) -> Result<EventStream, TransportError>;

    /// [`EventLoopTransport::listen_many`] on a given local IP address instead of the
    /// transport's own, so one machine can offer several destination addresses (each with its
    /// own range of ephemeral ports). `None` is `listen_many`.
    ///
    /// # Errors
    /// As `listen_many`; `BadOption` when the transport has no IP addresses.
    fn listen_many_on(
        &self,
        endpoint: &Endpoint,
        backlog: u32,
        ip: Option<std::net::IpAddr>,
    ) -> Result<Box<dyn EventListener>, TransportError> {
        match ip {
            None => self.listen_many(endpoint, backlog),
            Some(ip) => Err(no_ip_addresses("listen address", ip)),
        }
    }

    /// [`EventLoopTransport::connect_nonblocking`] from a given source IP address, bound
    /// without a port (`IP_BIND_ADDRESS_NO_PORT`) so the kernel picks the port at connect time
    /// and shares it across destinations. `None` is `connect_nonblocking`.
    ///
    /// # Errors
    /// As `connect_nonblocking`; `BadOption` when the transport has no IP addresses.
    fn connect_nonblocking_from(
        &self,
        address: &str,
        source: Option<std::net::IpAddr>,
    ) -> Result<EventStream, TransportError> {
        match source {
            None => self.connect_nonblocking(address),
            Some(ip) => Err(no_ip_addresses("source address", ip)),
        }
    }
}

/// The error of a transport without IP addresses asked for one.
fn no_ip_addresses(what: &'static str, ip: std::net::IpAddr) -> TransportError {
    TransportError::BadOption {
        option: what,
        reason: format!("{ip}: this transport has no IP addresses (only tcp has)"),
    }
}

/// A listening endpoint for many connections, registered with a mio `Poll` for `READABLE`.
pub trait EventListener: Send {
    /// The text [`EventLoopTransport::connect_nonblocking`] takes: `IP:PORT`, a path, `@name`.
    fn address(&self) -> String;

    /// Accepts one waiting connection, already non-blocking and with the transport's options
    /// applied; `Ok(None)` when none is waiting (wait for the next readable event).
    ///
    /// # Errors
    /// `Io` for a failure that accepting again will not cure (for example no descriptors
    /// left, `EMFILE`).
    fn accept(&mut self) -> Result<Option<EventStream>, TransportError>;

    /// The listening socket as a mio event source, to register with a `Poll`.
    fn source(&mut self) -> &mut dyn Source;
}

/// One non-blocking connection of an event-loop transport.
///
/// `Read` and `Write` return [`io::ErrorKind::WouldBlock`] when the socket has nothing to read
/// or no room to write; mio's readiness is edge-triggered, so a reader must read until then.
#[derive(Debug)]
#[non_exhaustive]
pub enum EventStream {
    /// A TCP connection.
    Tcp(mio::net::TcpStream),
    /// A Unix stream socket connection.
    Unix(mio::net::UnixStream),
}

impl EventStream {
    /// The socket's pending error, if any: after a non-blocking connect, `Some` means the
    /// connection failed.
    ///
    /// # Errors
    /// When the error cannot be read.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            EventStream::Tcp(s) => s.take_error(),
            EventStream::Unix(s) => s.take_error(),
        }
    }

    /// True once the connection is established (the peer's address is known).
    pub fn is_connected(&self) -> bool {
        match self {
            EventStream::Tcp(s) => s.peer_addr().is_ok(),
            EventStream::Unix(s) => s.peer_addr().is_ok(),
        }
    }
}

impl Read for EventStream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            EventStream::Tcp(s) => s.read(buf),
            EventStream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for EventStream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            EventStream::Tcp(s) => s.write(buf),
            EventStream::Unix(s) => s.write(buf),
        }
    }

    #[inline]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            EventStream::Tcp(s) => s.write_vectored(bufs),
            EventStream::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for EventStream {
    fn register(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            EventStream::Tcp(s) => s.register(registry, token, interests),
            EventStream::Unix(s) => s.register(registry, token, interests),
        }
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interests: Interest) -> io::Result<()> {
        match self {
            EventStream::Tcp(s) => s.reregister(registry, token, interests),
            EventStream::Unix(s) => s.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            EventStream::Tcp(s) => s.deregister(registry),
            EventStream::Unix(s) => s.deregister(registry),
        }
    }
}

/// True for the error [`EventLoopTransport::connect_nonblocking`] returns when the listener's
/// backlog is full and the connection should be tried again later.
pub fn is_backlog_full(err: &TransportError) -> bool {
    matches!(err, TransportError::Io { source, .. } if source.kind() == io::ErrorKind::WouldBlock)
}
