//! The error type shared by every transport.

use std::io;
use std::time::Duration;

/// What a transport operation can fail with.
///
/// The variants are named so the harness can act on them: `Disconnected` ends a case cleanly
/// (the peer is gone), everything else is reported as the case's failure reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer closed its end, exited or was killed.
    #[error("peer closed the connection")]
    Disconnected,
    /// A message does not fit the receive buffer or the transport's frame limit.
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    MessageTooLarge {
        /// Length of the offending message.
        len: usize,
        /// The limit it broke.
        max: usize,
    },
    /// No peer arrived in time.
    #[error("no peer connected to `{endpoint}` within {waited:?}")]
    ConnectTimeout {
        /// The address that was listened on or dialled.
        endpoint: String,
        /// How long we waited.
        waited: Duration,
    },
    /// An address string that this transport cannot parse.
    #[error("bad address `{address}`: {reason}")]
    BadAddress {
        /// The address as given.
        address: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A transport option that cannot be applied (out of range, not supported here).
    #[error("option `{option}`: {reason}")]
    BadOption {
        /// The option's config key.
        option: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// Any other operating-system failure.
    #[error("{op} failed")]
    Io {
        /// The operation that failed ("connect", "mkfifo", ...).
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl TransportError {
    /// Wraps an I/O error, turning the errors that mean "the peer is gone" into
    /// [`TransportError::Disconnected`].
    pub fn io(op: &'static str, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected => TransportError::Disconnected,
            _ => TransportError::Io { op, source },
        }
    }

    /// True when the peer is gone, as opposed to a local failure.
    pub fn is_disconnected(&self) -> bool {
        matches!(self, TransportError::Disconnected)
    }
}
