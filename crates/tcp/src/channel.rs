//! The established connection: frames over a `TcpStream`, plus the options read back from it.

use std::net::TcpStream;

use ipcbench_core::framing::FramedStream;
use ipcbench_core::nosignal::NoSignalWriter;
use ipcbench_core::{Bare, Channel, Halves, Options, TransportError};

/// One end of a TCP connection: 4-byte length-prefixed frames over a `TcpStream`.
///
/// Reading and writing go through two handles to the same socket (`try_clone`), so dropping
/// the channel closes the connection and the peer's next `recv` sees end of stream.
#[derive(Debug)]
pub struct TcpChannel {
    frames: FramedStream<TcpStream, NoSignalWriter<TcpStream>>,
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

    /// Plain writes and reads on the socket.
    fn bare(&mut self) -> Option<Bare<'_>> {
        Some(self.frames.bare())
    }
}
