//! The origin: answers `GET /obj/<response_bytes>/<key>` with that many bytes.
//!
//! Paths that do not name a size get [`OriginConfig::response_bytes`]. Every response is
//! `200` with `content-length`, `content-type` and a `cache-control` that lets caching
//! relays (nginx's `proxy_cache`) keep it. The body is a slice of one shared buffer, so
//! serving costs no copy of the payload.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use crate::address::BoundListener;
use crate::server::{self, ServeSettings};
use crate::wire::{WireBytes, WireCounter};
use crate::{Address, HttpError, ServerProtocol, Stop, TlsIdentity};

/// The path prefix whose next segment is the response size.
pub const OBJECT_PREFIX: &str = "/obj/";
/// HTTP/2 streams a server allows per connection unless configured otherwise.
pub const DEFAULT_MAX_STREAMS: u32 = 256;

/// How the origin serves.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: Address,
    /// HTTP/1.1, HTTP/2 or both.
    pub protocol: ServerProtocol,
    /// TLS with ALPN when set; cleartext (h2 by prior knowledge) otherwise.
    pub tls: Option<TlsIdentity>,
    /// Body size for paths that do not name one.
    pub response_bytes: u64,
    /// The largest body a path may ask for; larger asks get `400`.
    pub max_response_bytes: u64,
    /// HTTP/2 concurrent streams allowed per connection.
    pub max_streams: u32,
    /// A pause before every answer: a simulated service time, and the known answer of the
    /// miss-penalty test (zero by default).
    pub response_delay: Duration,
}

impl Default for OriginConfig {
    fn default() -> OriginConfig {
        OriginConfig {
            listen: Address::localhost(0),
            protocol: ServerProtocol::Auto,
            tls: None,
            response_bytes: 1024,
            max_response_bytes: 64 << 20,
            max_streams: DEFAULT_MAX_STREAMS,
            response_delay: Duration::ZERO,
        }
    }
}

/// The origin's counters so far; what [`Origin::run`] returns at the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OriginReport {
    /// Requests answered (any status).
    pub n_requests: u64,
    /// Connections accepted.
    pub n_connections: u64,
    /// Bytes on the wire, all connections.
    pub wire: WireBytes,
    /// Time from the start of `run` (zero before it).
    pub elapsed: Duration,
}

/// Live counters of an origin, readable from another thread while it runs.
#[derive(Debug, Default)]
pub struct OriginCounters {
    n_requests: AtomicU64,
    n_connections: Arc<AtomicU64>,
    wire: Arc<WireCounter>,
    started: Mutex<Option<Instant>>,
}

impl OriginCounters {
    /// The counters now.
    pub fn snapshot(&self) -> OriginReport {
        let started = *self.started.lock().expect("no panics while holding the lock");
        OriginReport {
            // Relaxed: tallies with nothing published through them.
            n_requests: self.n_requests.load(Ordering::Relaxed),
            n_connections: self.n_connections.load(Ordering::Relaxed),
            wire: self.wire.get(),
            elapsed: started.map_or(Duration::ZERO, |s| s.elapsed()),
        }
    }
}

/// A bound origin, ready to [`run`](Origin::run).
#[derive(Debug)]
pub struct Origin {
    listener: BoundListener,
    config: OriginConfig,
    counters: Arc<OriginCounters>,
}

impl Origin {
    /// Binds the listener (so [`Origin::address`] is known before the role runs).
    ///
    /// # Errors
    /// [`HttpError::Bind`], [`HttpError::NotLoopback`], [`HttpError::InvalidConfig`].
    pub fn bind(config: OriginConfig) -> Result<Origin, HttpError> {
        if config.max_streams == 0 {
            return Err(HttpError::InvalidConfig("`max_streams` must be at least 1".into()));
        }
        if config.response_bytes > config.max_response_bytes {
            return Err(HttpError::InvalidConfig(format!(
                "`response_bytes` = {} exceeds `max_response_bytes` = {}",
                config.response_bytes, config.max_response_bytes
            )));
        }
        Ok(Origin {
            listener: BoundListener::bind(&config.listen)?,
            config,
            counters: Arc::default(),
        })
    }

    /// Where it listens (the actual port).
    pub fn address(&self) -> Address {
        self.listener.address()
    }

    /// Its live counters.
    pub fn counters(&self) -> Arc<OriginCounters> {
        self.counters.clone()
    }

    /// Serves on a current-thread runtime of its own until `stop` fires; returns the counters.
    ///
    /// # Errors
    /// Runtime, listener or TLS setup failures; a failing connection only ends itself.
    pub fn run(self, stop: &Stop) -> Result<OriginReport, HttpError> {
        let runtime = server::runtime()?;
        let settings = ServeSettings::new(self.config.protocol, self.config.tls.as_ref(), self.config.max_streams)?;
        *self.counters.started.lock().expect("no panics while holding the lock") = Some(Instant::now());
        let counters = self.counters.clone();
        let state = Arc::new(State {
            body: Mutex::new(pattern(self.config.response_bytes.max(64 * 1024))),
            default_bytes: self.config.response_bytes,
            max_bytes: self.config.max_response_bytes,
            counters: counters.clone(),
        });
        runtime.block_on(async {
            let listener = self.listener.into_tokio()?;
            let delay = self.config.response_delay;
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    Ok::<_, Infallible>(state.answer(&request))
                }
            });
            server::serve(
                listener,
                settings,
                counters.wire.clone(),
                counters.n_connections.clone(),
                stop,
                service,
            )
            .await;
            Ok::<_, HttpError>(())
        })?;
        Ok(counters.snapshot())
    }
}

struct State {
    /// A buffer at least as long as any body served so far; bodies are slices of it.
    body: Mutex<Bytes>,
    default_bytes: u64,
    max_bytes: u64,
    counters: Arc<OriginCounters>,
}

impl State {
    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        self.counters.n_requests.fetch_add(1, Ordering::Relaxed);
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        }
        let bytes = match requested_bytes(request.uri().path()) {
            Some(Ok(bytes)) => bytes,
            Some(Err(())) => return plain(StatusCode::BAD_REQUEST, "bad size in path\n"),
            None => self.default_bytes,
        };
        if bytes > self.max_bytes {
            return plain(StatusCode::BAD_REQUEST, "size above max_response_bytes\n");
        }
        let body = {
            let mut buffer = self.body.lock().expect("no panics while holding the lock");
            if (buffer.len() as u64) < bytes {
                *buffer = pattern(bytes);
            }
            buffer.slice(..bytes as usize)
        };
        Response::builder()
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CACHE_CONTROL, "public, max-age=600")
            .body(Full::new(body))
            .expect("static headers are valid")
    }
}

/// `Some(Ok(n))` for `/obj/<n>/...`, `Some(Err)` for a malformed size, `None` otherwise.
fn requested_bytes(path: &str) -> Option<Result<u64, ()>> {
    let rest = path.strip_prefix(OBJECT_PREFIX)?;
    let size = rest.split('/').next().unwrap_or_default();
    Some(size.parse().map_err(|_| ()))
}

/// The path of an object of `bytes` bytes named `key`.
pub fn object_path(bytes: u64, key: &str) -> String {
    format!("{OBJECT_PREFIX}{bytes}/{key}")
}

fn pattern(bytes: u64) -> Bytes {
    (0..bytes).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>().into()
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(text.as_bytes())))
        .expect("static headers are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_names_the_size() {
        assert_eq!(requested_bytes(&object_path(64, "hot-1")), Some(Ok(64)));
        assert_eq!(requested_bytes("/obj/x/y"), Some(Err(())));
        assert_eq!(requested_bytes("/other"), None);
    }
}
