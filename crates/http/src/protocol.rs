//! The names of the HTTP versions, as configs and records spell them.

use std::fmt;
use std::str::FromStr;

use crate::HttpError;

/// An HTTP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.1 (`h1`): one request in flight per connection, text headers.
    H1,
    /// HTTP/2 (`h2`): multiplexed streams, HPACK headers; prior knowledge on cleartext.
    H2,
}

impl Protocol {
    /// The ALPN identifier (`http/1.1`, `h2`).
    pub fn alpn(self) -> &'static [u8] {
        match self {
            Protocol::H1 => b"http/1.1",
            Protocol::H2 => b"h2",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::H1 => "h1",
            Protocol::H2 => "h2",
        })
    }
}

impl FromStr for Protocol {
    type Err = HttpError;

    fn from_str(text: &str) -> Result<Protocol, HttpError> {
        match text {
            "h1" => Ok(Protocol::H1),
            "h2" => Ok(Protocol::H2),
            other => Err(HttpError::InvalidConfig(format!(
                "unknown protocol `{other}`; expected `h1` or `h2`"
            ))),
        }
    }
}

/// What a server accepts on its listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerProtocol {
    /// HTTP/1.1 only.
    H1,
    /// HTTP/2 only (prior knowledge on cleartext).
    H2,
    /// Both: chosen by ALPN with TLS, by the connection preface on cleartext.
    Auto,
}

impl From<Protocol> for ServerProtocol {
    fn from(protocol: Protocol) -> ServerProtocol {
        match protocol {
            Protocol::H1 => ServerProtocol::H1,
            Protocol::H2 => ServerProtocol::H2,
        }
    }
}

impl ServerProtocol {
    /// The ALPN identifiers a TLS server offers, most preferred first.
    pub(crate) fn alpn(self) -> Vec<Vec<u8>> {
        match self {
            ServerProtocol::H1 => vec![Protocol::H1.alpn().to_vec()],
            ServerProtocol::H2 => vec![Protocol::H2.alpn().to_vec()],
            ServerProtocol::Auto => vec![Protocol::H2.alpn().to_vec(), Protocol::H1.alpn().to_vec()],
        }
    }
}
