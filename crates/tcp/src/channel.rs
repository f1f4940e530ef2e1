//! The established connection: frames over a `TcpStream`, plus the options read back from it.

use std::io::{self, IoSlice, Write};
use std::net::TcpStream;

use ipcbench_core::framing::FramedStream;
use ipcbench_core::{Channel, Halves, Options, TransportError};
use rustix::net::{SendAncillaryBuffer, SendFlags, send, sendmsg};

/// One end of a TCP connection: 4-byte length-prefixed frames over a `TcpStream`.
///
/// Reading and writing go through two handles to the same socket (`try_clone`), so dropping
/// the channel closes the connection and the peer's next `recv` sees end of stream.
#[derive(Debug)]
pub struct TcpChannel {
    frames: FramedStream<TcpStream, NoSignalWriter>,
}

impl TcpChannel {
    /// Wraps a connected stream; `options` are the values read back from the socket.
    pub(crate) fn new(stream: TcpStream, options: Options) -> Result<Self, TransportError> {
        let writer = stream.try_clone().map_err(|source| TransportError::Io {
            op: "dup socket",
            source,
        })?;
        Ok(TcpChannel {
            frames: FramedStream::new(stream, NoSignalWriter(writer)).with_options(options),
        })
    }

    /// The connected stream (for its local and peer addresses).
    pub fn stream(&self) -> &TcpStream {
        self.frames.reader()
    }
}

impl Channel for TcpChannel {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        self.frames.send(msg)
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.frames.recv(buf)
    }

    fn applied_options(&self) -> Options {
        self.frames.applied_options()
    }

    fn split(&mut self) -> Option<Halves<'_>> {
        self.frames.split()
    }
}

/// The writing half of the socket. It sends with `MSG_NOSIGNAL`, so writing to a closed peer
/// returns `EPIPE` instead of raising `SIGPIPE` (std's `write_vectored` is a plain `writev`).
#[derive(Debug)]
struct NoSignalWriter(TcpStream);

impl Write for NoSignalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(send(&self.0, buf, SendFlags::NOSIGNAL)?)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Ok(sendmsg(
            &self.0,
            bufs,
            &mut SendAncillaryBuffer::default(),
            SendFlags::NOSIGNAL,
        )?)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
