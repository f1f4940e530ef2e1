//! The established connection: stream frames or seqpackets, plus the options read back.

use std::os::unix::net::UnixStream;

use ipcbench_core::framing::FramedStream;
use ipcbench_core::nosignal::NoSignalWriter;
use ipcbench_core::{Bare, Channel, Halves, Options, TransportError};

use crate::seqpacket::SeqpacketChannel;

/// One end of a Unix socket connection, of either [`crate::UdsKind`].
///
/// Dropping it closes the socket; the peer's next `recv` returns `Disconnected`.
#[derive(Debug)]
pub struct UdsChannel {
    inner: Inner,
    options: Options,
}

#[derive(Debug)]
enum Inner {
    Stream(FramedStream<UnixStream, NoSignalWriter<UnixStream>>),
    Seqpacket(SeqpacketChannel),
}

impl UdsChannel {
    /// A stream channel: length-prefixed frames over `stream`.
    pub(crate) fn stream(stream: UnixStream, options: Options) -> Result<Self, TransportError> {
        let writer = stream.try_clone().map_err(|source| TransportError::Io {
            op: "dup socket",
            source,
        })?;
        Ok(UdsChannel {
            inner: Inner::Stream(FramedStream::new(stream, NoSignalWriter(writer))),
            options,
        })
    }

    /// A seqpacket channel.
    pub(crate) fn seqpacket(channel: SeqpacketChannel, options: Options) -> Self {
        UdsChannel {
            inner: Inner::Seqpacket(channel),
            options,
        }
    }
}

impl Channel for UdsChannel {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        match &mut self.inner {
            Inner::Stream(frames) => frames.send(msg),
            Inner::Seqpacket(packets) => packets.send(msg),
        }
    }

    #[inline]
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        match &mut self.inner {
            Inner::Stream(frames) => frames.recv(buf),
            Inner::Seqpacket(packets) => packets.recv(buf),
        }
    }

    fn applied_options(&self) -> Options {
        self.options.clone()
    }

    fn split(&mut self) -> Option<Halves<'_>> {
        match &mut self.inner {
            Inner::Stream(frames) => frames.split(),
            Inner::Seqpacket(packets) => packets.split(),
        }
    }

    /// Plain writes and reads on a stream socket; a seqpacket socket has none (its packets
    /// are the messages, so there is no framing to leave out).
    fn bare(&mut self) -> Option<Bare<'_>> {
        match &mut self.inner {
            Inner::Stream(frames) => Some(frames.bare()),
            Inner::Seqpacket(_) => None,
        }
    }
}
