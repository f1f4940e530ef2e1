//! The one error type of the crate, with variants the harness can act on.

use std::io;
use std::time::Duration;

use crate::Protocol;

/// What can go wrong while serving, relaying or generating HTTP load.
///
/// Messages are lowercase and do not repeat their `source`; print the chain with `{err:#}`
/// through `anyhow`, or walk [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// A configuration value is out of range or inconsistent; says which and what is allowed.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Only loopback addresses and Unix sockets are allowed.
    #[error("`{address}` is neither a loopback address nor a Unix socket")]
    NotLoopback {
        /// The address as given.
        address: String,
    },
    /// Binding a listener failed.
    #[error("cannot listen on `{address}`")]
    Bind {
        /// Where.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Opening a connection failed (refused, no such socket file, ...).
    #[error("cannot connect to `{address}`")]
    Connect {
        /// Where.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A bounded wait ran out.
    #[error("{what} with `{address}` did not finish within {waited:?}")]
    Timeout {
        /// The step that timed out ("connect", "TLS handshake", "request", ...).
        what: &'static str,
        /// The peer.
        address: String,
        /// The limit that ran out.
        waited: Duration,
    },
    /// Building a TLS configuration or certificate failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A TLS handshake failed.
    #[error("TLS handshake with `{address}` failed")]
    TlsHandshake {
        /// The peer.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The server's ALPN choice is not the protocol asked for.
    #[error("`{address}` negotiated {negotiated} by ALPN, not {wanted}")]
    Alpn {
        /// The peer.
        address: String,
        /// What the client asked for.
        wanted: Protocol,
        /// What the server chose (`none` when it chose nothing).
        negotiated: String,
    },
    /// An HTTP handshake, request or body failed at the protocol level.
    #[error("HTTP {what} with `{address}` failed")]
    Http {
        /// The step ("handshake", "request", "response body").
        what: &'static str,
        /// The peer.
        address: String,
        /// Why.
        #[source]
        source: hyper::Error,
    },
    /// A request could not be built (bad header value, bad path).
    #[error("cannot build a request: {0}")]
    Request(String),
    /// A response had a status other than 200.
    #[error("`{address}` answered `{path}` with status {status}")]
    Status {
        /// The peer.
        address: String,
        /// The request path.
        path: String,
        /// The status code.
        status: u16,
    },
    /// A response body had the wrong length.
    #[error("`{address}` answered `{path}` with {got} body bytes, expected {expected}")]
    BodyLength {
        /// The peer.
        address: String,
        /// The request path.
        path: String,
        /// Bytes received.
        got: u64,
        /// `response_bytes`.
        expected: u64,
    },
    /// Every request of a block failed; carries the first failure.
    #[error("all {n_errors} requests of the block failed; the first: {first}")]
    AllFailed {
        /// Failed requests.
        n_errors: u64,
        /// The first failure, with its chain.
        first: String,
    },
    /// A latency above the histogram's ceiling (never silently dropped).
    #[error("latency of {0:?} exceeds the histogram ceiling")]
    OutOfRange(Duration),
    /// nginx is not installed; the harness marks such a case unsupported.
    #[error("nginx is not installed (no `nginx` in PATH, /usr/sbin or /usr/local/sbin)")]
    NginxMissing,
    /// nginx is installed but did not start, or misbehaved.
    #[error("nginx: {0}")]
    Nginx(String),
    /// Any other operating-system failure.
    #[error("{op} failed")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl HttpError {
    /// The error and its sources on one line, `outer: inner: innermost`.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(inner) = source {
            text.push_str(": ");
            text.push_str(&inner.to_string());
            source = inner.source();
        }
        text
    }

    pub(crate) fn io(op: &'static str) -> impl FnOnce(io::Error) -> HttpError {
        move |source| HttpError::Io { op, source }
    }
}
