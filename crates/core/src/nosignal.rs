//! Writing to a stream socket without `SIGPIPE`, shared by the socket transports.

use std::io::{self, IoSlice, Write};
use std::os::fd::AsFd;

use rustix::net::{SendAncillaryBuffer, SendFlags, send, sendmsg};

/// The writing half of a stream socket. It sends with `MSG_NOSIGNAL`, so writing to a closed
/// peer returns `EPIPE` (then [`crate::TransportError::Disconnected`]) instead of raising
/// `SIGPIPE`: std's `write`/`write_vectored` are a plain `write`/`writev`, which would raise it.
#[derive(Debug)]
pub struct NoSignalWriter<S>(pub S);

impl<S: AsFd> Write for NoSignalWriter<S> {
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
