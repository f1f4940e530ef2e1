//! The accept loop the origin and the relay's front share: TLS with ALPN or cleartext, then
//! hyper's HTTP/1.1 or HTTP/2 server on each connection, until the stop signal.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::task::JoinSet;

use crate::address::Listener;
use crate::wire::{Counted, Link, WireCounter};
use crate::{HttpError, Protocol, ServerProtocol, Stop, TlsIdentity};

/// How long a TLS handshake on an accepted connection may take.
pub const TLS_ACCEPT_LIMIT: Duration = Duration::from_secs(5);
/// The pause after a failed `accept` (out of file descriptors, say) before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// How a server speaks on its accepted connections.
pub(crate) struct ServeSettings {
    protocol: ServerProtocol,
    tls: Option<tokio_rustls::TlsAcceptor>,
    h1: Arc<auto::Builder<TokioExecutor>>,
    h2: Arc<auto::Builder<TokioExecutor>>,
    both: Arc<auto::Builder<TokioExecutor>>,
}

impl ServeSettings {
    pub(crate) fn new(
        protocol: ServerProtocol,
        tls: Option<&TlsIdentity>,
        max_streams: u32,
    ) -> Result<ServeSettings, HttpError> {
        let tls = match tls {
            Some(identity) => Some(tokio_rustls::TlsAcceptor::from(identity.server_config(protocol)?)),
            None => None,
        };
        let builder = |only: Option<Protocol>| {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().keep_alive(true);
            builder.http2().max_concurrent_streams(max_streams);
            let builder = match only {
                Some(Protocol::H1) => builder.http1_only(),
                Some(Protocol::H2) => builder.http2_only(),
                None => builder,
            };
            Arc::new(builder)
        };
        Ok(ServeSettings {
            protocol,
            tls,
            h1: builder(Some(Protocol::H1)),
            h2: builder(Some(Protocol::H2)),
            both: builder(None),
        })
    }

    fn builder(&self, alpn: Option<&[u8]>) -> Arc<auto::Builder<TokioExecutor>> {
        match (alpn, self.protocol) {
            (Some(b"h2"), _) => self.h2.clone(),
            (Some(_), _) => self.h1.clone(),
            (None, ServerProtocol::H1) => self.h1.clone(),
            (None, ServerProtocol::H2) => self.h2.clone(),
            (None, ServerProtocol::Auto) => self.both.clone(),
        }
    }
}

/// Accepts and serves connections until `stop` fires, then aborts the open ones.
///
/// `accepted` counts connections accepted; `wire` their bytes.
pub(crate) async fn serve<S>(
    listener: Listener,
    settings: ServeSettings,
    wire: Arc<WireCounter>,
    accepted: Arc<AtomicU64>,
    stop: &Stop,
    service: S,
) where
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let settings = Arc::new(settings);
    let mut connections = JoinSet::new();
    loop {
        let socket = tokio::select! {
            () = stop.wait() => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        let socket = match socket {
            Ok(socket) => socket,
            Err(_) => {
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        // Relaxed: a tally read after the run.
        accepted.fetch_add(1, Ordering::Relaxed);
        let counted = Counted::new(socket, wire.clone());
        let settings = settings.clone();
        let service = service.clone();
        connections.spawn(async move {
            let (link, alpn) = match &settings.tls {
                None => (Link::Plain(counted), None),
                Some(acceptor) => match tokio::time::timeout(TLS_ACCEPT_LIMIT, acceptor.accept(counted)).await {
                    Ok(Ok(stream)) => {
                        let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                        (Link::TlsServer(Box::new(stream)), alpn)
                    }
                    // A failed or stalled handshake only loses this connection.
                    _ => return,
                },
            };
            let builder = settings.builder(alpn.as_deref());
            // A connection error (a peer that went away) ends only this connection.
            let _ = builder.serve_connection(TokioIo::new(link), service).await;
        });
    }
    connections.shutdown().await;
}

/// A current-thread runtime, the only kind this crate creates.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, HttpError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HttpError::io("starting a current-thread tokio runtime"))
}
