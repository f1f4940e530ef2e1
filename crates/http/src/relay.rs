//! The relay: a front server (HTTP/1.1 or HTTP/2, optional TLS) that answers from its cache
//! or forwards to the origin over a back protocol.
//!
//! **Back = h1.** A bounded pool of keep-alive connections, at most `pool_connections` of
//! them at once. A request first takes a permit (the wait is measured into `pool_wait_ns`),
//! then an idle connection, or opens one. The connection goes back to the pool once the
//! response body is read whole: HTTP/1.1 carries one exchange at a time.
//!
//! **Back = h2.** `pool_connections` multiplexed connections, chosen round-robin, each opened
//! on first use and reopened if it closes. Requests share a connection as streams.
//!
//! **Cache.** A `GET` whose path is cached is answered from memory and never reaches the
//! origin; a `200` from the origin is stored under its path. Every response carries
//! `x-cache: hit` or `x-cache: miss`, the header clients split their latency by.
//! Responses are buffered whole before they are forwarded (as nginx's `proxy_buffering`).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use tokio::sync::Semaphore;

use crate::address::BoundListener;
use crate::cache::{Cache, Entry};
use crate::connector::{ConnectStats, Connector, RequestBody, Sender};
use crate::histogram::{self, new_histogram};
use crate::origin::DEFAULT_MAX_STREAMS;
use crate::server::{self, ServeSettings};
use crate::wire::{WireBytes, WireCounter};
use crate::{Address, HttpError, Protocol, ServerProtocol, Stop, TlsIdentity};

/// The response header that says whether the relay's cache answered.
pub const CACHE_HEADER: &str = "x-cache";

/// How the relay serves and forwards.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where the front listens; port 0 picks a free one.
    pub listen: Address,
    /// Front protocol(s).
    pub front: ServerProtocol,
    /// TLS on the front when set.
    pub tls: Option<TlsIdentity>,
    /// Back protocol to the origin (cleartext; h2 by prior knowledge).
    pub back: Protocol,
    /// The origin's address.
    pub origin: Address,
    /// Upstream connections: the h1 pool's bound, or the number of h2 connections. At least 1.
    pub pool_connections: usize,
    /// Whether to cache `200` responses by path.
    pub cache: bool,
    /// The most responses the cache holds.
    pub cache_entries: usize,
    /// HTTP/2 concurrent streams the front allows per connection.
    pub max_streams: u32,
    /// How long a request may wait for a pooled connection.
    pub pool_wait_limit: Duration,
    /// How long connecting to the origin may take.
    pub connect_limit: Duration,
    /// How long the origin may take to answer one request.
    pub upstream_limit: Duration,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            listen: Address::localhost(0),
            front: ServerProtocol::Auto,
            tls: None,
            back: Protocol::H1,
            origin: Address::localhost(0),
            pool_connections: 8,
            cache: true,
            cache_entries: 10_000,
            max_streams: DEFAULT_MAX_STREAMS,
            pool_wait_limit: Duration::from_secs(5),
            connect_limit: Duration::from_secs(2),
            upstream_limit: Duration::from_secs(5),
        }
    }
}

impl RelayConfig {
    /// Checks the values a plan can get wrong.
    ///
    /// # Errors
    /// [`HttpError::InvalidConfig`] naming the key and what is allowed.
    pub fn validate(&self) -> Result<(), HttpError> {
        if self.pool_connections == 0 {
            return Err(HttpError::InvalidConfig("`pool_connections` must be at least 1".into()));
        }
        if self.max_streams == 0 {
            return Err(HttpError::InvalidConfig("`max_streams` must be at least 1".into()));
        }
        if self.cache && self.cache_entries == 0 {
            return Err(HttpError::InvalidConfig(
                "`cache_entries` must be at least 1 with `cache`".into(),
            ));
        }
        self.origin.check_local()
    }
}

/// The relay's counters so far; what [`Relay::run`] returns at the end.
#[derive(Debug, Clone)]
pub struct RelayReport {
    /// Requests received on the front.
    pub n_requests_in: u64,
    /// Requests forwarded to the origin.
    pub n_requests_out: u64,
    /// Requests answered from the cache.
    pub n_cache_hits: u64,
    /// Cacheable requests the cache could not answer.
    pub n_cache_misses: u64,
    /// Forwarded requests that failed (answered `502`).
    pub n_upstream_errors: u64,
    /// Front connections accepted.
    pub n_front_connections: u64,
    /// Upstream connections opened.
    pub n_upstream_connections: u64,
    /// Front bytes on the wire.
    pub front_wire: WireBytes,
    /// Back bytes on the wire.
    pub back_wire: WireBytes,
    /// The wait for an upstream connection per forwarded request, ns.
    pub pool_wait_ns: Histogram<u64>,
    /// Time from the start of `run` (zero before it).
    pub elapsed: Duration,
}

/// Live counters of a relay, readable from another thread while it runs.
///
/// `Relaxed` throughout: tallies with nothing published through them.
#[derive(Debug)]
pub struct RelayCounters {
    n_requests_in: AtomicU64,
    n_requests_out: AtomicU64,
    n_cache_hits: AtomicU64,
    n_cache_misses: AtomicU64,
    n_upstream_errors: AtomicU64,
    n_front_connections: Arc<AtomicU64>,
    front_wire: Arc<WireCounter>,
    back: Arc<ConnectStats>,
    pool_wait_ns: Mutex<Histogram<u64>>,
    started: Mutex<Option<Instant>>,
}

impl RelayCounters {
    fn new() -> RelayCounters {
        RelayCounters {
            n_requests_in: AtomicU64::new(0),
            n_requests_out: AtomicU64::new(0),
            n_cache_hits: AtomicU64::new(0),
            n_cache_misses: AtomicU64::new(0),
            n_upstream_errors: AtomicU64::new(0),
            n_front_connections: Arc::default(),
            front_wire: Arc::default(),
            back: Arc::default(),
            pool_wait_ns: Mutex::new(new_histogram()),
            started: Mutex::new(None),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> RelayReport {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let started = *self.started.lock().expect("no panics while holding the lock");
        RelayReport {
            n_requests_in: load(&self.n_requests_in),
            n_requests_out: load(&self.n_requests_out),
            n_cache_hits: load(&self.n_cache_hits),
            n_cache_misses: load(&self.n_cache_misses),
            n_upstream_errors: load(&self.n_upstream_errors),
            n_front_connections: load(&self.n_front_connections),
            n_upstream_connections: self.back.n_opened(),
            front_wire: self.front_wire.get(),
            back_wire: self.back.wire.get(),
            pool_wait_ns: self
                .pool_wait_ns
                .lock()
                .expect("no panics while holding the lock")
                .clone(),
            elapsed: started.map_or(Duration::ZERO, |s| s.elapsed()),
        }
    }
}

/// A bound relay, ready to [`run`](Relay::run).
#[derive(Debug)]
pub struct Relay {
    listener: BoundListener,
    config: RelayConfig,
    counters: Arc<RelayCounters>,
}

impl Relay {
    /// Validates the config and binds the front listener.
    ///
    /// # Errors
    /// [`HttpError::InvalidConfig`], [`HttpError::Bind`], [`HttpError::NotLoopback`].
    pub fn bind(config: RelayConfig) -> Result<Relay, HttpError> {
        config.validate()?;
        Ok(Relay {
            listener: BoundListener::bind(&config.listen)?,
            config,
            counters: Arc::new(RelayCounters::new()),
        })
    }

    /// Where the front listens (the actual port).
    pub fn address(&self) -> Address {
        self.listener.address()
    }

    /// Its live counters.
    pub fn counters(&self) -> Arc<RelayCounters> {
        self.counters.clone()
    }

    /// Relays on a current-thread runtime of its own until `stop` fires; returns the counters.
    ///
    /// The origin need not be up yet: upstream connections open on first use, and a
    /// request the origin cannot take is answered `502` (and counted).
    ///
    /// # Errors
    /// Runtime, listener or TLS setup failures.
    pub fn run(self, stop: &Stop) -> Result<RelayReport, HttpError> {
        let runtime = server::runtime()?;
        let config = &self.config;
        let settings = ServeSettings::new(config.front, config.tls.as_ref(), config.max_streams)?;
        let mut connector = Connector::new(config.origin.clone(), config.back, None, config.connect_limit)?;
        connector.stats = self.counters.back.clone();
        let upstream = match config.back {
            Protocol::H1 => Upstream::H1 {
                permits: Semaphore::new(config.pool_connections),
                idle: Mutex::new(Vec::new()),
            },
            Protocol::H2 => Upstream::H2 {
                slots: (0..config.pool_connections)
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
                next: AtomicUsize::new(0),
            },
        };
        let state = Arc::new(State {
            connector,
            upstream,
            cache: config.cache.then(|| Mutex::new(Cache::new(config.cache_entries))),
            counters: self.counters.clone(),
            pool_wait_limit: config.pool_wait_limit,
            upstream_limit: config.upstream_limit,
        });
        *self.counters.started.lock().expect("no panics while holding the lock") = Some(Instant::now());
        let counters = self.counters.clone();
        runtime.block_on(async {
            let listener = self.listener.into_tokio()?;
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(state.handle(request).await) }
            });
            server::serve(
                listener,
                settings,
                counters.front_wire.clone(),
                counters.n_front_connections.clone(),
                stop,
                service,
            )
            .await;
            Ok::<_, HttpError>(())
        })?;
        Ok(counters.snapshot())
    }
}

enum Upstream {
    H1 {
        permits: Semaphore,
        idle: Mutex<Vec<http1::SendRequest<RequestBody>>>,
    },
    H2 {
        slots: Vec<tokio::sync::Mutex<Option<Sender>>>,
        next: AtomicUsize,
    },
}

/// What the origin answered, read whole.
struct Fetched {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

struct State {
    connector: Connector,
    upstream: Upstream,
    cache: Option<Mutex<Cache>>,
    counters: Arc<RelayCounters>,
    pool_wait_limit: Duration,
    upstream_limit: Duration,
}

impl State {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let counters = &self.counters;
        counters.n_requests_in.fetch_add(1, Ordering::Relaxed);
        let key = request
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let cacheable = request.method() == hyper::Method::GET;
        if let (Some(cache), true) = (&self.cache, cacheable) {
            let cached = cache.lock().expect("no panics while holding the lock").get(&key);
            if let Some(entry) = cached {
                counters.n_cache_hits.fetch_add(1, Ordering::Relaxed);
                return respond(StatusCode::OK, entry.headers.clone(), entry.body.clone(), "hit");
            }
            counters.n_cache_misses.fetch_add(1, Ordering::Relaxed);
        }
        counters.n_requests_out.fetch_add(1, Ordering::Relaxed);
        match self.forward(request, &key).await {
            Ok(fetched) => {
                if let (Some(cache), true, StatusCode::OK) = (&self.cache, cacheable, fetched.status) {
                    let entry = Entry {
                        headers: fetched.headers.clone(),
                        body: fetched.body.clone(),
                    };
                    cache
                        .lock()
                        .expect("no panics while holding the lock")
                        .insert(key, entry);
                }
                respond(fetched.status, fetched.headers, fetched.body, "miss")
            }
            Err(error) => {
                counters.n_upstream_errors.fetch_add(1, Ordering::Relaxed);
                let text = format!("relay: {}\n", error.chain());
                let mut headers = HeaderMap::new();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                respond(StatusCode::BAD_GATEWAY, headers, Bytes::from(text), "miss")
            }
        }
    }

    /// Rewrites the front request for the back protocol and sends it to the origin.
    async fn forward(&self, request: Request<Incoming>, path: &str) -> Result<Fetched, HttpError> {
        let (parts, body) = request.into_parts();
        let body = self
            .bounded("request body", body.collect())
            .await?
            .map_err(|source| HttpError::Http {
                what: "request body",
                address: "front".into(),
                source,
            })?;
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        let authority = self.connector.address.authority();
        let uri: Uri = match self.connector.protocol {
            // HTTP/2 sends `:scheme` and `:authority`, so it needs the absolute form.
            Protocol::H2 => format!("http://{authority}{path}").parse(),
            Protocol::H1 => {
                let host = HeaderValue::from_str(&authority).map_err(|e| HttpError::Request(e.to_string()))?;
                headers.insert(header::HOST, host);
                path.parse()
            }
        }
        .map_err(|e| HttpError::Request(format!("bad path `{path}`: {e}")))?;
        let mut back = Request::new(Full::new(body.to_bytes()));
        *back.method_mut() = parts.method;
        *back.uri_mut() = uri;
        *back.headers_mut() = headers;
        match &self.upstream {
            Upstream::H1 { permits, idle } => self.forward_h1(permits, idle, back).await,
            Upstream::H2 { slots, next } => self.forward_h2(slots, next, back).await,
        }
    }

    async fn forward_h1(
        &self,
        permits: &Semaphore,
        idle: &Mutex<Vec<http1::SendRequest<RequestBody>>>,
        request: Request<RequestBody>,
    ) -> Result<Fetched, HttpError> {
        let asked = Instant::now();
        let permit = match tokio::time::timeout(self.pool_wait_limit, permits.acquire()).await {
            Ok(permit) => permit.expect("the pool's semaphore is never closed"),
            Err(_) => return Err(self.timeout("waiting for a pooled upstream connection", self.pool_wait_limit)),
        };
        self.record_pool_wait(asked.elapsed())?;
        let pooled = loop {
            let candidate = idle.lock().expect("no panics while holding the lock").pop();
            match candidate {
                Some(sender) if !sender.is_closed() => break Some(sender),
                Some(_) => continue,
                None => break None,
            }
        };
        let mut sender = match pooled {
            Some(sender) => Sender::H1(sender),
            None => self.connector.open().await?,
        };
        let fetched = self.exchange(&mut sender, request).await;
        if let (Ok(_), Sender::H1(sender)) = (&fetched, sender)
            && !sender.is_closed()
        {
            idle.lock().expect("no panics while holding the lock").push(sender);
        }
        drop(permit);
        fetched
    }

    async fn forward_h2(
        &self,
        slots: &[tokio::sync::Mutex<Option<Sender>>],
        next: &AtomicUsize,
        request: Request<RequestBody>,
    ) -> Result<Fetched, HttpError> {
        // Relaxed: only spreads requests; no data is published through it.
        let slot_idx = next.fetch_add(1, Ordering::Relaxed) % slots.len();
        let asked = Instant::now();
        let mut slot = match tokio::time::timeout(self.pool_wait_limit, slots[slot_idx].lock()).await {
            Ok(slot) => slot,
            Err(_) => return Err(self.timeout("waiting for an upstream HTTP/2 connection", self.pool_wait_limit)),
        };
        self.record_pool_wait(asked.elapsed())?;
        let shared = slot.as_ref().filter(|s| !s.is_closed()).and_then(Sender::share);
        let mut sender = match shared {
            Some(sender) => sender,
            None => {
                let opened = self.connector.open().await?;
                let shared = opened.share().expect("an HTTP/2 sender is shareable");
                *slot = Some(opened);
                shared
            }
        };
        drop(slot);
        self.exchange(&mut sender, request).await
    }

    /// Sends one request and reads the response whole, within `upstream_limit`.
    async fn exchange(&self, sender: &mut Sender, request: Request<RequestBody>) -> Result<Fetched, HttpError> {
        let address = || self.connector.address.to_string();
        let response = self
            .bounded("upstream request", sender.send(request))
            .await?
            .map_err(|source| HttpError::Http {
                what: "request",
                address: address(),
                source,
            })?;
        let (parts, body) = response.into_parts();
        let body = self
            .bounded("upstream response body", body.collect())
            .await?
            .map_err(|source| HttpError::Http {
                what: "response body",
                address: address(),
                source,
            })?;
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        headers.remove(header::CONTENT_LENGTH);
        Ok(Fetched {
            status: parts.status,
            headers,
            body: body.to_bytes(),
        })
    }

    async fn bounded<F: Future>(&self, what: &'static str, future: F) -> Result<F::Output, HttpError> {
        tokio::time::timeout(self.upstream_limit, future)
            .await
            .map_err(|_| self.timeout(what, self.upstream_limit))
    }

    fn timeout(&self, what: &'static str, waited: Duration) -> HttpError {
        HttpError::Timeout {
            what,
            address: self.connector.address.to_string(),
            waited,
        }
    }

    fn record_pool_wait(&self, waited: Duration) -> Result<(), HttpError> {
        let mut histogram = self
            .counters
            .pool_wait_ns
            .lock()
            .expect("no panics while holding the lock");
        histogram::record(&mut histogram, waited)
    }
}

/// Headers that belong to one connection and must not be forwarded (RFC 9110, 7.6.1).
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    const HOP_BY_HOP: [HeaderName; 6] = [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HOST,
    ];
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

fn respond(status: StatusCode, mut headers: HeaderMap, body: Bytes, cache: &'static str) -> Response<Full<Bytes>> {
    headers.insert(CACHE_HEADER, HeaderValue::from_static(cache));
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}
