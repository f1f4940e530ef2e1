//! The load client: keep-alive or per-request connections, HTTP/1.1 or HTTP/2 streams, open
//! or closed loop, every answer checked.
//!
//! **Lanes.** Each connection has lanes that each keep one request in flight: one lane per
//! HTTP/1.1 connection, `streams` lanes per HTTP/2 connection (sharing its multiplexed
//! connection).
//!
//! **Open loop** ([`Rate::PerConnection`]). Each connection has a schedule of intended send
//! times, evenly spaced at `1 / rate` from a random phase, that its lanes share as a queue:
//! a free lane takes the next intended time, waits for it (a `timerfd`, see `timer.rs`) and
//! sends. When every lane of a connection is busy, the next request leaves late, and its
//! latency is recorded twice, as in the harness's `load` scenario:
//! - **corrected** (`latency_corrected_ns`): reply time minus the *intended* send time, which
//!   counts the time spent queued behind slow requests (the coordinated-omission correction);
//! - **raw** (`latency_ns`): reply time minus the *actual* send time.
//!
//! Requests intended in a block are still sent after its end (a drain bounded by
//! `drain_limit`); those never sent are counted as `n_unsent`.
//!
//! **Closed loop** ([`Rate::Max`]): a lane sends its next request when the reply arrives;
//! corrected and raw are then the same.
//!
//! **Paths.** With probability `cache_hit_ratio` a request asks for one of `hot_paths` paths,
//! all requested once by [`Client::connect`] so that a caching relay holds them; otherwise a
//! path no client has asked for before, which a caching relay must miss. Responses carrying
//! `x-cache` are also recorded into the hit or miss histogram (raw latency), so the miss
//! penalty is a difference of two measured distributions.
//!
//! **Checks.** Every answer must be status 200 with exactly `response_bytes` body bytes;
//! anything else is an error, counted and never recorded as a latency.
//!
//! **Bounds.** Connecting, TLS and HTTP handshakes are bounded by `connect_timeout`, each
//! request by `request_timeout`, the drain by `drain_limit`, and a whole block by their sum;
//! nothing waits without a limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

use crate::connector::{Connector, RequestBody, Sender};
use crate::histogram::{self, merge, new_histogram};
use crate::origin::object_path;
use crate::relay::CACHE_HEADER;
use crate::server;
use crate::timer::{Epoch, Timer, TimerSlack};
use crate::wire::WireBytes;
use crate::{Address, ClientTls, HttpError, Protocol, RequestHeaders};

/// The most lanes (connections x streams) a client may run.
pub const MAX_LANES: usize = 100_000;
/// How long a lane pauses after a failed request in closed loop, so a dead peer is not
/// hammered in a tight loop.
pub const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// How fast each connection sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// Closed loop: each lane sends when its previous reply arrives.
    Max,
    /// Open loop: this many requests per second per connection, on a fixed schedule.
    PerConnection(f64),
}

/// What the client does.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The relay or origin to load.
    pub target: Address,
    /// The protocol spoken to it.
    pub protocol: Protocol,
    /// TLS (with ALPN for `protocol`) when set.
    pub tls: Option<ClientTls>,
    /// Connections (with `keep_alive`), or concurrent request lanes without it.
    pub connections: usize,
    /// Concurrent streams per HTTP/2 connection; HTTP/1.1 always has one.
    pub streams: usize,
    /// Reuse connections; when false, every request opens (and handshakes) a new one.
    pub keep_alive: bool,
    /// Extra request headers.
    pub request_headers: RequestHeaders,
    /// Body size asked for, and checked, on every request.
    pub response_bytes: u64,
    /// The share of requests for hot (cached) paths, 0 to 1.
    pub cache_hit_ratio: f64,
    /// Size of the hot set.
    pub hot_paths: usize,
    /// Open or closed loop.
    pub rate: Rate,
    /// Limit for connecting plus TLS and HTTP handshakes.
    pub connect_timeout: Duration,
    /// Limit for one request, from send to the last body byte.
    pub request_timeout: Duration,
    /// How long after a block's end requests intended in it may still be sent.
    pub drain_limit: Duration,
    /// Seed of the path choice and the schedule phases.
    pub seed: u64,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            target: Address::localhost(0),
            protocol: Protocol::H1,
            tls: None,
            connections: 4,
            streams: 1,
            keep_alive: true,
            request_headers: RequestHeaders::default(),
            response_bytes: 1024,
            cache_hit_ratio: 0.0,
            hot_paths: 16,
            rate: Rate::Max,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            drain_limit: Duration::from_secs(2),
            seed: 0x1bcb_e7c4,
        }
    }
}

impl ClientConfig {
    /// Checks every value a plan can get wrong.
    ///
    /// # Errors
    /// [`HttpError::InvalidConfig`] naming the key and what is allowed.
    pub fn validate(&self) -> Result<(), HttpError> {
        let invalid = |text: String| Err(HttpError::InvalidConfig(text));
        if self.connections == 0 || self.streams == 0 {
            return invalid("`connections` and `streams` must be at least 1".into());
        }
        if self.connections.saturating_mul(self.lanes_per_connection()) > MAX_LANES {
            return invalid(format!("`connections` x `streams` must be at most {MAX_LANES}"));
        }
        if !(0.0..=1.0).contains(&self.cache_hit_ratio) {
            return invalid(format!("`cache_hit_ratio` = {} is outside 0..=1", self.cache_hit_ratio));
        }
        if self.cache_hit_ratio > 0.0 && self.hot_paths == 0 {
            return invalid("`hot_paths` must be at least 1 when `cache_hit_ratio` > 0".into());
        }
        if let Rate::PerConnection(hz) = self.rate
            && !(hz.is_finite() && hz > 0.0 && hz <= 1e6)
        {
            return invalid(format!("rate {hz} per connection is outside (0, 1e6] requests/s"));
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return invalid("`connect_timeout` and `request_timeout` must be above zero".into());
        }
        self.request_headers.validate()?;
        self.target.check_local()
    }

    fn lanes_per_connection(&self) -> usize {
        match self.protocol {
            Protocol::H1 => 1,
            Protocol::H2 => self.streams,
        }
    }
}

/// What one block measured.
#[derive(Debug, Clone)]
pub struct BlockResult {
    /// Reply time minus intended send time, ns (equal to `latency_ns` in closed loop).
    pub latency_corrected_ns: Histogram<u64>,
    /// Reply time minus actual send time, ns.
    pub latency_ns: Histogram<u64>,
    /// Raw latency of answers marked `x-cache: hit`, ns.
    pub hit_latency_ns: Histogram<u64>,
    /// Raw latency of answers marked with any other `x-cache` value, ns.
    pub miss_latency_ns: Histogram<u64>,
    /// Requests answered correctly (the recorded samples).
    pub n_requests: u64,
    /// Requests that failed: connect or protocol errors, timeouts, wrong status or length.
    pub n_errors: u64,
    /// The first failure with its chain, if any.
    pub first_error: Option<String>,
    /// Answers marked as cache hits.
    pub n_hits: u64,
    /// Answers marked as cache misses.
    pub n_misses: u64,
    /// Open loop: requests the schedule intended in the block (closed loop: requests sent).
    pub n_scheduled: u64,
    /// Open loop: intended requests not sent before the drain ended.
    pub n_unsent: u64,
    /// Open loop: requests that left more than 1 ms after their intended time.
    pub n_late: u64,
    /// Open loop: the largest gap between intended and actual send time.
    pub max_send_lag: Duration,
    /// Client-side bytes on the wire during the block.
    pub wire: WireBytes,
    /// Connections opened during the block.
    pub n_connections_opened: u64,
    /// TLS handshakes completed during the block.
    pub n_tls_handshakes: u64,
    /// Wall time of the block, drain included.
    pub elapsed: Duration,
}

impl BlockResult {
    fn empty() -> BlockResult {
        BlockResult {
            latency_corrected_ns: new_histogram(),
            latency_ns: new_histogram(),
            hit_latency_ns: new_histogram(),
            miss_latency_ns: new_histogram(),
            n_requests: 0,
            n_errors: 0,
            first_error: None,
            n_hits: 0,
            n_misses: 0,
            n_scheduled: 0,
            n_unsent: 0,
            n_late: 0,
            max_send_lag: Duration::ZERO,
            wire: WireBytes::default(),
            n_connections_opened: 0,
            n_tls_handshakes: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// Correct answers per second of the block.
    pub fn requests_per_s(&self) -> f64 {
        self.n_requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Wire bytes (both directions) per correct answer; 0 without answers.
    pub fn wire_bytes_per_request(&self) -> f64 {
        if self.n_requests == 0 {
            0.0
        } else {
            self.wire.total_bytes() as f64 / self.n_requests as f64
        }
    }

    /// Adds another block's figures (histograms merged, counts summed, elapsed summed).
    pub fn merge(&mut self, other: &BlockResult) {
        merge(&mut self.latency_corrected_ns, &other.latency_corrected_ns);
        merge(&mut self.latency_ns, &other.latency_ns);
        merge(&mut self.hit_latency_ns, &other.hit_latency_ns);
        merge(&mut self.miss_latency_ns, &other.miss_latency_ns);
        self.n_requests += other.n_requests;
        self.n_errors += other.n_errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.n_hits += other.n_hits;
        self.n_misses += other.n_misses;
        self.n_scheduled += other.n_scheduled;
        self.n_unsent += other.n_unsent;
        self.n_late += other.n_late;
        self.max_send_lag = self.max_send_lag.max(other.max_send_lag);
        self.wire.read_bytes += other.wire.read_bytes;
        self.wire.written_bytes += other.wire.written_bytes;
        self.n_connections_opened += other.n_connections_opened;
        self.n_tls_handshakes += other.n_tls_handshakes;
        self.elapsed += other.elapsed;
    }
}

/// Everything a client has done since [`Client::connect`], the hot-set warm-up included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientTotals {
    /// Requests answered correctly.
    pub n_requests: u64,
    /// Requests that failed.
    pub n_errors: u64,
    /// Answers marked `x-cache: hit`.
    pub n_hits: u64,
    /// Answers marked as misses.
    pub n_misses: u64,
    /// Connections opened.
    pub n_connections_opened: u64,
    /// TLS handshakes completed.
    pub n_tls_handshakes: u64,
    /// Bytes on the wire.
    pub wire: WireBytes,
}

/// A connected load client with its own current-thread runtime; run it block by block.
pub struct Client {
    runtime: Runtime,
    shared: Arc<Shared>,
    slots: Vec<Slot>,
    n_blocks: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.shared.config)
            .field("n_blocks", &self.n_blocks)
            .finish_non_exhaustive()
    }
}

/// A connection's reusable sender (empty until opened, or without keep-alive).
type Slot = Arc<tokio::sync::Mutex<Option<Sender>>>;

/// A request lasting longer than this after its intended time counts as late.
const LATE: Duration = Duration::from_millis(1);

struct Shared {
    config: ClientConfig,
    connector: Connector,
    headers: HeaderMap,
    /// Makes miss paths unique across clients, processes and runs.
    nonce: u64,
    n_miss_paths: AtomicU64,
    // Relaxed: tallies with nothing published through them.
    n_requests: AtomicU64,
    n_errors: AtomicU64,
    n_hits: AtomicU64,
    n_misses: AtomicU64,
}

impl Client {
    /// Validates `config`, starts the runtime, opens the connections (with keep-alive; a
    /// probe connection without) and requests every hot path once.
    ///
    /// # Errors
    /// [`HttpError::InvalidConfig`]; [`HttpError::Connect`] or [`HttpError::Timeout`] within
    /// `connect_timeout` for a target that does not answer; any failure of the hot-set
    /// requests.
    pub fn connect(config: ClientConfig) -> Result<Client, HttpError> {
        config.validate()?;
        let runtime = server::runtime()?;
        let mut headers = config.request_headers.build();
        if config.protocol == Protocol::H1 {
            let host =
                HeaderValue::from_str(&config.target.authority()).map_err(|e| HttpError::Request(e.to_string()))?;
            headers.insert(header::HOST, host);
            if !config.keep_alive {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        let connector = Connector::new(
            config.target.clone(),
            config.protocol,
            config.tls.as_ref(),
            config.connect_timeout,
        )?;
        let shared = Arc::new(Shared {
            nonce: nonce(),
            n_miss_paths: AtomicU64::new(0),
            headers,
            connector,
            n_requests: AtomicU64::new(0),
            n_errors: AtomicU64::new(0),
            n_hits: AtomicU64::new(0),
            n_misses: AtomicU64::new(0),
            config,
        });
        let slots: Vec<Slot> = (0..shared.config.connections).map(|_| Slot::default()).collect();
        runtime.block_on(async {
            if shared.config.keep_alive {
                for slot in &slots {
                    *slot.lock().await = Some(shared.connector.open().await?);
                }
            } else {
                drop(shared.connector.open().await?);
            }
            if shared.config.cache_hit_ratio > 0.0 {
                // HTTP/1.1 takes the connection out of its slot; HTTP/2 shares it from there.
                let owns = shared.config.keep_alive && shared.config.protocol == Protocol::H1;
                let mut sender = if owns { slots[0].lock().await.take() } else { None };
                for hot_idx in 0..shared.config.hot_paths {
                    let path = shared.hot_path(hot_idx);
                    let answer = tokio::time::timeout(
                        shared.config.request_timeout,
                        shared.exchange(&mut sender, &slots[0], &path),
                    )
                    .await;
                    let answer = answer.map_err(|_| shared.request_timeout())?;
                    let answer = answer.inspect_err(|_| {
                        shared.n_errors.fetch_add(1, Ordering::Relaxed);
                    })?;
                    shared.count(answer);
                }
                if let (true, Some(sender)) = (owns, sender) {
                    *slots[0].lock().await = Some(sender);
                }
            }
            Ok::<_, HttpError>(())
        })?;
        Ok(Client {
            runtime,
            shared,
            slots,
            n_blocks: 0,
        })
    }

    /// Runs a discarded warm-up block of `warmup`, then a measured block of `measure`.
    ///
    /// # Errors
    /// As [`Client::run_block`].
    pub fn run(&mut self, warmup: Duration, measure: Duration) -> Result<BlockResult, HttpError> {
        if !warmup.is_zero() {
            self.run_block(warmup)?;
        }
        self.run_block(measure)
    }

    /// Loads the target for `duration` (plus the bounded drain) and returns what it measured.
    ///
    /// Connections persist from block to block; a connection that failed is reopened by the
    /// next request on it.
    ///
    /// # Errors
    /// [`HttpError::AllFailed`] when requests failed and none succeeded;
    /// [`HttpError::OutOfRange`] for a latency above the histogram ceiling; timer failures.
    /// Some failed requests among successful ones are reported in the result, not as an error.
    pub fn run_block(&mut self, duration: Duration) -> Result<BlockResult, HttpError> {
        let _slack = TimerSlack::tight();
        self.n_blocks += 1;
        let shared = self.shared.clone();
        let slots = self.slots.clone();
        let block_idx = self.n_blocks;
        let result = self.runtime.block_on(async move {
            let stats = &shared.connector.stats;
            let (wire_before, opened_before, tls_before) =
                (stats.wire.get(), stats.n_opened(), stats.n_tls_handshakes());
            let config = &shared.config;
            let epoch = Epoch::now();
            let plan = BlockPlan {
                epoch,
                end_ns: duration.as_nanos() as u64,
                drain_until: epoch.instant + duration + config.drain_limit,
            };
            let mut rng = SplitMix64(config.seed ^ block_idx.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut lanes = JoinSet::new();
            for slot in &slots {
                let schedule = match config.rate {
                    Rate::Max => None,
                    Rate::PerConnection(hz) => {
                        let gap_ns = ((1e9 / hz) as u64).max(1);
                        Some(Arc::new(Schedule {
                            next_ns: AtomicU64::new(rng.next() % gap_ns),
                            gap_ns,
                        }))
                    }
                };
                for _ in 0..config.lanes_per_connection() {
                    let lane = Lane {
                        shared: shared.clone(),
                        slot: slot.clone(),
                        schedule: schedule.clone(),
                        plan,
                        rng: SplitMix64(rng.next()),
                    };
                    lanes.spawn(lane.run());
                }
            }
            let hard_stop = plan.drain_until + config.request_timeout + config.connect_timeout + Duration::from_secs(1);
            let mut result = BlockResult::empty();
            loop {
                match tokio::time::timeout_at(hard_stop.into(), lanes.join_next()).await {
                    Ok(None) => break,
                    Ok(Some(Ok(Ok(outcome)))) => outcome.add_to(&mut result),
                    Ok(Some(Ok(Err(error)))) => return Err(error),
                    Ok(Some(Err(join_error))) => match join_error.try_into_panic() {
                        Ok(panic) => std::panic::resume_unwind(panic),
                        Err(_) => unreachable!("lanes are only cancelled after this loop"),
                    },
                    Err(_) => {
                        return Err(HttpError::Timeout {
                            what: "a block of requests",
                            address: config.target.to_string(),
                            waited: hard_stop - epoch.instant,
                        });
                    }
                }
            }
            result.elapsed = epoch.instant.elapsed();
            result.wire = stats.wire.get().since(wire_before);
            result.n_connections_opened = stats.n_opened() - opened_before;
            result.n_tls_handshakes = stats.n_tls_handshakes() - tls_before;
            Ok(result)
        })?;
        if result.n_requests == 0 && result.n_errors > 0 {
            return Err(HttpError::AllFailed {
                n_errors: result.n_errors,
                first: result.first_error.clone().unwrap_or_default(),
            });
        }
        Ok(result)
    }

    /// Everything done so far, hot-set warm-up and discarded blocks included.
    pub fn totals(&self) -> ClientTotals {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let stats = &self.shared.connector.stats;
        ClientTotals {
            n_requests: load(&self.shared.n_requests),
            n_errors: load(&self.shared.n_errors),
            n_hits: load(&self.shared.n_hits),
            n_misses: load(&self.shared.n_misses),
            n_connections_opened: stats.n_opened(),
            n_tls_handshakes: stats.n_tls_handshakes(),
            wire: stats.wire.get(),
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ClientConfig {
        &self.shared.config
    }
}

/// The fixed times of one block.
#[derive(Debug, Clone, Copy)]
struct BlockPlan {
    epoch: Epoch,
    /// Nothing is intended from here on, ns after the epoch.
    end_ns: u64,
    /// No request is sent after this.
    drain_until: Instant,
}

/// A connection's intended send times, shared by its lanes as a queue.
struct Schedule {
    next_ns: AtomicU64,
    gap_ns: u64,
}

impl Schedule {
    fn take(&self) -> u64 {
        // Relaxed: each lane needs a distinct value only; fetch_add gives that in any order.
        self.next_ns.fetch_add(self.gap_ns, Ordering::Relaxed)
    }
}

/// How an answer was served, by its `x-cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    Hit,
    Miss,
    Unmarked,
}

struct Lane {
    shared: Arc<Shared>,
    slot: Slot,
    schedule: Option<Arc<Schedule>>,
    plan: BlockPlan,
    rng: SplitMix64,
}

/// What one lane measured.
struct Outcome {
    result: BlockResult,
}

impl Outcome {
    fn add_to(self, total: &mut BlockResult) {
        total.merge(&self.result);
    }
}

impl Lane {
    async fn run(mut self) -> Result<Outcome, HttpError> {
        let shared = self.shared.clone();
        let config = &shared.config;
        let mut result = BlockResult::empty();
        let mut timer = match self.schedule {
            Some(_) => Some(Timer::new(self.plan.epoch)?),
            None => None,
        };
        // An HTTP/1.1 connection belongs to its one lane for the block.
        let mut sender = match (config.keep_alive, config.protocol) {
            (true, Protocol::H1) => self.slot.lock().await.take(),
            _ => None,
        };
        loop {
            let intended_ns = match (&self.schedule, &mut timer) {
                (Some(schedule), Some(timer)) => {
                    let intended = schedule.take();
                    if intended >= self.plan.end_ns {
                        break;
                    }
                    result.n_scheduled += 1;
                    if Instant::now() >= self.plan.drain_until {
                        result.n_unsent += 1;
                        continue;
                    }
                    timer.sleep_until(intended).await?;
                    intended
                }
                _ => {
                    let now = self.plan.epoch.elapsed_ns();
                    if now >= self.plan.end_ns {
                        break;
                    }
                    result.n_scheduled += 1;
                    now
                }
            };
            let actual = Instant::now();
            let intended = self.plan.epoch.instant + Duration::from_nanos(intended_ns);
            let path = self.choose_path();
            let answer = tokio::time::timeout(config.request_timeout, shared.exchange(&mut sender, &self.slot, &path))
                .await
                .unwrap_or_else(|_| Err(shared.request_timeout()));
            let received = Instant::now();
            match answer {
                Ok(served) => {
                    shared.count(served);
                    let raw = received - actual;
                    histogram::record(&mut result.latency_ns, raw)?;
                    histogram::record(
                        &mut result.latency_corrected_ns,
                        received.saturating_duration_since(intended),
                    )?;
                    let lag = actual.saturating_duration_since(intended);
                    result.max_send_lag = result.max_send_lag.max(lag);
                    if lag > LATE {
                        result.n_late += 1;
                    }
                    result.n_requests += 1;
                    match served {
                        Served::Hit => {
                            result.n_hits += 1;
                            histogram::record(&mut result.hit_latency_ns, raw)?;
                        }
                        Served::Miss => {
                            result.n_misses += 1;
                            histogram::record(&mut result.miss_latency_ns, raw)?;
                        }
                        Served::Unmarked => {}
                    }
                }
                Err(error) => {
                    shared.n_errors.fetch_add(1, Ordering::Relaxed);
                    result.n_errors += 1;
                    if result.first_error.is_none() {
                        result.first_error = Some(error.chain());
                    }
                    // The connection's state is unknown after a failure: do not reuse it.
                    sender = None;
                    if self.schedule.is_none() {
                        tokio::time::sleep(ERROR_BACKOFF).await;
                    }
                }
            }
        }
        if let (true, Protocol::H1, Some(sender)) = (config.keep_alive, config.protocol, sender) {
            *self.slot.lock().await = Some(sender);
        }
        Ok(Outcome { result })
    }

    fn choose_path(&mut self) -> String {
        let config = &self.shared.config;
        if config.cache_hit_ratio > 0.0 && self.rng.unit() < config.cache_hit_ratio {
            let hot_idx = (self.rng.next() % config.hot_paths as u64) as usize;
            self.shared.hot_path(hot_idx)
        } else {
            self.shared.miss_path()
        }
    }
}

impl Shared {
    fn hot_path(&self, hot_idx: usize) -> String {
        object_path(self.config.response_bytes, &format!("hot-{hot_idx}"))
    }

    fn miss_path(&self) -> String {
        // Relaxed: only uniqueness matters.
        let n = self.n_miss_paths.fetch_add(1, Ordering::Relaxed);
        object_path(self.config.response_bytes, &format!("m-{:016x}-{n}", self.nonce))
    }

    fn count(&self, served: Served) {
        self.n_requests.fetch_add(1, Ordering::Relaxed);
        match served {
            Served::Hit => self.n_hits.fetch_add(1, Ordering::Relaxed),
            Served::Miss => self.n_misses.fetch_add(1, Ordering::Relaxed),
            Served::Unmarked => 0,
        };
    }

    fn request_timeout(&self) -> HttpError {
        HttpError::Timeout {
            what: "request",
            address: self.config.target.to_string(),
            waited: self.config.request_timeout,
        }
    }

    /// One request on the lane's connection (opened or reopened as needed), answer checked.
    async fn exchange(&self, sender: &mut Option<Sender>, slot: &Slot, path: &str) -> Result<Served, HttpError> {
        if !self.config.keep_alive {
            // A fresh connection, dropped (and so closed) after the answer.
            let mut fresh = self.connector.open().await?;
            return self.request(&mut fresh, path).await;
        }
        if sender.as_ref().is_none_or(Sender::is_closed) {
            *sender = Some(match self.config.protocol {
                Protocol::H1 => self.connector.open().await?,
                Protocol::H2 => self.shared_h2(slot).await?,
            });
        }
        let active = sender.as_mut().expect("set just above");
        self.request(active, path).await
    }

    /// The HTTP/2 connection of `slot`, opened (or reopened) if needed.
    async fn shared_h2(&self, slot: &Slot) -> Result<Sender, HttpError> {
        let mut slot = slot.lock().await;
        if let Some(shared) = slot.as_ref().filter(|s| !s.is_closed()).and_then(Sender::share) {
            return Ok(shared);
        }
        let opened = self.connector.open().await?;
        let shared = opened.share().expect("an HTTP/2 sender is shareable");
        *slot = Some(opened);
        Ok(shared)
    }

    async fn request(&self, sender: &mut Sender, path: &str) -> Result<Served, HttpError> {
        let address = || self.config.target.to_string();
        let uri: Uri = match self.config.protocol {
            Protocol::H1 => path.parse(),
            // HTTP/2 sends `:scheme` and `:authority`, so it needs the absolute form.
            Protocol::H2 => format!("{}://{}{path}", self.connector.scheme(), self.config.target.authority()).parse(),
        }
        .map_err(|e| HttpError::Request(format!("bad path `{path}`: {e}")))?;
        let mut request: Request<RequestBody> = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = uri;
        *request.headers_mut() = self.headers.clone();
        let response = sender.send(request).await.map_err(|source| HttpError::Http {
            what: "request",
            address: address(),
            source,
        })?;
        let status = response.status();
        let served = match response.headers().get(CACHE_HEADER) {
            Some(value) if value.as_bytes().eq_ignore_ascii_case(b"hit") => Served::Hit,
            Some(_) => Served::Miss,
            None => Served::Unmarked,
        };
        let mut body = response.into_body();
        let mut n_body_bytes = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| HttpError::Http {
                what: "response body",
                address: address(),
                source,
            })?;
            if let Some(data) = frame.data_ref() {
                n_body_bytes += data.len() as u64;
            }
        }
        if status != StatusCode::OK {
            return Err(HttpError::Status {
                address: address(),
                path: path.to_owned(),
                status: status.as_u16(),
            });
        }
        if n_body_bytes != self.config.response_bytes {
            return Err(HttpError::BodyLength {
                address: address(),
                path: path.to_owned(),
                got: n_body_bytes,
                expected: self.config.response_bytes,
            });
        }
        Ok(served)
    }
}

/// A value no other client, process or run picks: time, process id and a counter mixed.
fn nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let time_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // Relaxed: only uniqueness matters.
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    SplitMix64(time_ns ^ (u64::from(std::process::id()) << 40) ^ count.wrapping_mul(0xff51_afd7_ed55_8ccd)).next()
}

/// SplitMix64: small, fast and good enough to pick paths and phases.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}
