//! Counting the bytes that cross the socket, below TLS and HTTP framing.
//!
//! Every connection of every role is a [`Link`]: a [`Socket`] wrapped in [`Counted`], with
//! TLS on top when configured. Counting under TLS means the figures include record
//! overhead and handshakes: what the wire carries, not what the application asked to send.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes read from and written to sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireBytes {
    /// Bytes received.
    pub read_bytes: u64,
    /// Bytes sent.
    pub written_bytes: u64,
}

impl WireBytes {
    /// Both directions together.
    pub fn total_bytes(&self) -> u64 {
        self.read_bytes + self.written_bytes
    }

    /// What was added since an earlier reading of the same counter.
    pub fn since(&self, earlier: WireBytes) -> WireBytes {
        WireBytes {
            read_bytes: self.read_bytes.saturating_sub(earlier.read_bytes),
            written_bytes: self.written_bytes.saturating_sub(earlier.written_bytes),
        }
    }
}

/// A pair of byte counters shared by the connections of one side of a role.
///
/// `Relaxed` throughout: each counter is a plain tally with no other data published
/// through it, and readers only need an eventually exact sum.
#[derive(Debug, Default)]
pub(crate) struct WireCounter {
    read: AtomicU64,
    written: AtomicU64,
}

impl WireCounter {
    pub(crate) fn get(&self) -> WireBytes {
        WireBytes {
            read_bytes: self.read.load(Ordering::Relaxed),
            written_bytes: self.written.load(Ordering::Relaxed),
        }
    }
}

/// A connected stream socket.
#[derive(Debug)]
pub(crate) enum Socket {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Forwards the `AsyncRead` + `AsyncWrite` calls of an enum to its variants, all `Unpin`.
macro_rules! forward_io {
    ($type:ty, $($variant:path),+) => {
        impl AsyncRead for $type {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($variant(s) => Pin::new(s).poll_read(cx, buf),)+ }
            }
        }
        impl AsyncWrite for $type {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                match self.get_mut() { $($variant(s) => Pin::new(s).poll_write(cx, buf),)+ }
            }
            fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
                match self.get_mut() { $($variant(s) => Pin::new(s).poll_write_vectored(cx, bufs),)+ }
            }
            fn is_write_vectored(&self) -> bool {
                match self { $($variant(s) => s.is_write_vectored(),)+ }
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($variant(s) => Pin::new(s).poll_flush(cx),)+ }
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($variant(s) => Pin::new(s).poll_shutdown(cx),)+ }
            }
        }
    };
}

forward_io!(Socket, Socket::Tcp, Socket::Unix);

/// A socket that adds what it reads and writes to a [`WireCounter`].
#[derive(Debug)]
pub(crate) struct Counted {
    socket: Socket,
    counter: Arc<WireCounter>,
}

impl Counted {
    pub(crate) fn new(socket: Socket, counter: Arc<WireCounter>) -> Counted {
        Counted { socket, counter }
    }
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.socket).poll_read(cx, buf))?;
        let n = (buf.filled().len() - before) as u64;
        this.counter.read.fetch_add(n, Ordering::Relaxed);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.socket).poll_write(cx, buf))?;
        this.counter.written.fetch_add(n as u64, Ordering::Relaxed);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.socket).poll_write_vectored(cx, bufs))?;
        this.counter.written.fetch_add(n as u64, Ordering::Relaxed);
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }
}

/// One connection as hyper sees it: counted, with or without TLS.
#[derive(Debug)]
pub(crate) enum Link {
    Plain(Counted),
    TlsClient(Box<tokio_rustls::client::TlsStream<Counted>>),
    TlsServer(Box<tokio_rustls::server::TlsStream<Counted>>),
}

forward_io!(Link, Link::Plain, Link::TlsClient, Link::TlsServer);
