//! Opening client connections (the load client's and the relay's upstream ones): connect,
//! optional TLS with ALPN, then hyper's HTTP/1.1 or HTTP/2 client handshake.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::tls::TlsClient;
use crate::wire::{Counted, Link, WireCounter};
use crate::{Address, ClientTls, HttpError, Protocol, address};

/// The request body type of every client connection (GETs carry none).
pub(crate) type RequestBody = Full<Bytes>;

/// One client connection's request handle.
pub(crate) enum Sender {
    H1(http1::SendRequest<RequestBody>),
    H2(http2::SendRequest<RequestBody>),
}

impl Sender {
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_closed(),
            Sender::H2(s) => s.is_closed(),
        }
    }

    /// Another handle on the same HTTP/2 connection; `None` for HTTP/1.1.
    pub(crate) fn share(&self) -> Option<Sender> {
        match self {
            Sender::H1(_) => None,
            Sender::H2(s) => Some(Sender::H2(s.clone())),
        }
    }

    /// Waits until the connection takes a request, then sends it and awaits the head.
    pub(crate) async fn send(&mut self, request: Request<RequestBody>) -> Result<Response<Incoming>, hyper::Error> {
        match self {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(request).await
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(request).await
            }
        }
    }
}

/// What a [`Connector`] counts, shareable with a role's live counters.
///
/// `Relaxed` throughout: tallies with nothing published through them.
#[derive(Debug, Default)]
pub(crate) struct ConnectStats {
    pub(crate) wire: Arc<WireCounter>,
    /// Connections opened (TCP or Unix).
    pub(crate) n_opened: AtomicU64,
    /// TLS handshakes completed.
    pub(crate) n_tls_handshakes: AtomicU64,
}

impl ConnectStats {
    pub(crate) fn n_opened(&self) -> u64 {
        self.n_opened.load(Ordering::Relaxed)
    }

    pub(crate) fn n_tls_handshakes(&self) -> u64 {
        self.n_tls_handshakes.load(Ordering::Relaxed)
    }
}

/// Opens connections to one address and counts them.
pub(crate) struct Connector {
    pub(crate) address: Address,
    pub(crate) protocol: Protocol,
    tls: Option<TlsClient>,
    pub(crate) stats: Arc<ConnectStats>,
    pub(crate) connect_limit: Duration,
}

impl Connector {
    pub(crate) fn new(
        address: Address,
        protocol: Protocol,
        tls: Option<&ClientTls>,
        connect_limit: Duration,
    ) -> Result<Connector, HttpError> {
        address.check_local()?;
        Ok(Connector {
            address,
            protocol,
            tls: tls.map(|t| t.build(protocol)).transpose()?,
            stats: Arc::default(),
            connect_limit,
        })
    }

    /// Whether requests need an absolute URI with this scheme (HTTP/2 sends `:scheme`).
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Opens one connection and spawns its driver on the current runtime.
    pub(crate) async fn open(&self) -> Result<Sender, HttpError> {
        let socket = address::connect(&self.address, self.connect_limit).await?;
        self.stats.n_opened.fetch_add(1, Ordering::Relaxed);
        let counted = Counted::new(socket, self.stats.wire.clone());
        let link = match &self.tls {
            None => Link::Plain(counted),
            Some(tls) => {
                let handshake = tls.connector.connect(tls.server_name.clone(), counted);
                let stream = match tokio::time::timeout(self.connect_limit, handshake).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(source)) => {
                        return Err(HttpError::TlsHandshake {
                            address: self.address.to_string(),
                            source,
                        });
                    }
                    Err(_) => return Err(self.timeout("TLS handshake")),
                };
                self.stats.n_tls_handshakes.fetch_add(1, Ordering::Relaxed);
                let negotiated = stream.get_ref().1.alpn_protocol();
                if negotiated != Some(self.protocol.alpn()) {
                    return Err(HttpError::Alpn {
                        address: self.address.to_string(),
                        wanted: self.protocol,
                        negotiated: negotiated.map_or("none".into(), |p| String::from_utf8_lossy(p).into_owned()),
                    });
                }
                Link::TlsClient(Box::new(stream))
            }
        };
        let io = TokioIo::new(link);
        let http_error = |source| HttpError::Http {
            what: "handshake",
            address: self.address.to_string(),
            source,
        };
        let handshake = async {
            match self.protocol {
                Protocol::H1 => {
                    let (sender, connection) = http1::Builder::new().handshake(io).await.map_err(http_error)?;
                    // The driver ends when the connection closes or every sender is dropped.
                    tokio::spawn(connection);
                    Ok(Sender::H1(sender))
                }
                Protocol::H2 => {
                    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                        .handshake(io)
                        .await
                        .map_err(http_error)?;
                    tokio::spawn(connection);
                    Ok(Sender::H2(sender))
                }
            }
        };
        match tokio::time::timeout(self.connect_limit, handshake).await {
            Ok(result) => result,
            Err(_) => Err(self.timeout("HTTP handshake")),
        }
    }

    pub(crate) fn timeout(&self, what: &'static str) -> HttpError {
        HttpError::Timeout {
            what,
            address: self.address.to_string(),
            waited: self.connect_limit,
        }
    }
}
