//! The established connection: frames over two pipe ends, plus the options read back.

use std::fs::File;

use ipcbench_core::framing::FramedStream;
use ipcbench_core::{Bare, Channel, Halves, Options, TransportError};

/// One end of a FIFO-pair connection: frames are read from one FIFO and written to the other.
///
/// Dropping it closes both ends: the peer's `recv` then sees end of file and its `send` gets
/// `EPIPE`, both reported as `Disconnected`.
#[derive(Debug)]
pub struct PipeChannel {
    frames: FramedStream<File, File>,
}

impl PipeChannel {
    /// Wraps the blocking read end `inbound` and write end `outbound`.
    pub(crate) fn new(inbound: File, outbound: File, options: Options) -> Self {
        PipeChannel {
            frames: FramedStream::new(inbound, outbound).with_options(options),
        }
    }
}

impl Channel for PipeChannel {
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

    /// Plain writes and reads on the FIFO pair.
    fn bare(&mut self) -> Option<Bare<'_>> {
        Some(self.frames.bare())
    }
}
