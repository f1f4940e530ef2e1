//! `http`: client -> relay -> origin speaking real HTTP/1.1 and HTTP/2 (`ipcbench-http`: hyper,
//! h2, rustls), against the direct path client -> origin in the same trial.
//!
//! **Processes.** The measuring process is the client (two `ipcbench_http::Client`s, one per
//! path, on its current-thread runtime, pinned to the client core). The origin is a peer
//! process on the server core with two listeners: the **direct** one (front protocol, TLS when
//! the case has it), and the **back** one (cleartext, loopback TCP or a Unix socket) that only
//! the relay reaches, so the origin's back counters are exactly the relay's upstream traffic.
//! The relay is, by the case's `relay`:
//! - built in: a peer process running `ipcbench_http::Relay`, pinned to the client's core like
//!   `proxy`'s relay (a sidecar; see `proxy.rs`, "Placement");
//! - `nginx`: nginx started by the measuring process with a generated config
//!   (`ipcbench_http::Nginx`: h1 or h2 front, an upstream keepalive pool of `pool_connections`,
//!   `proxy_cache` when `cache_hit_ratio` > 0), master and workers pinned to the client's core;
//! - external: the user's relay at `relay`, proxying to the origin's back listener at
//!   `origin_listen`; its CPU comes from `relay_pid` and its children when given.
//!
//! Control messages run over the case's transport (loopback TCP) as in every scenario; the
//! HTTP traffic runs over sockets `ipcbench-http` opens itself.
//!
//! **Blocks.** Warm-up and measured phase alternate blocks of [`BLOCK`] on the direct and the
//! relayed path, so both see the same machine conditions. `MARK` (after the warm-up) and `END`
//! bracket the measured phase on both peers, which report their process CPU (all threads,
//! `getrusage(RUSAGE_SELF)`) and counter deltas.
//!
//! **Figures** (trial `extra`; the relayed path's latency is the trial's `latency_ns`, corrected
//! in `latency_corrected_ns`, both histograms kept):
//! - `direct_p50_ns`, `direct_p99_ns` (corrected); `hop_added_p50_ns`, `hop_added_p99_ns`:
//!   relayed minus direct, corrected latency (in closed loop corrected = raw);
//!   `hop_added_raw_p50_ns` from the raw histograms;
//! - `requests_per_s_in`: answers the client got per second of relayed blocks;
//!   `requests_per_s_out`: requests the origin's back listener answered per second of relayed
//!   blocks (lower than `in` by the cache hits); `direct_requests_per_s`;
//! - `relay_cpu_ns_per_request`: relay process CPU over the measured phase per relayed request;
//! - `upstream_connections`: connections the origin's back listener accepted in the whole trial
//!   (warm-up included; the pool opens them on first use), `upstream_connections_measured` in
//!   the measured phase; `pool_wait_p50_ns`/`pool_wait_p99_ns` (built-in relay);
//! - `front_wire_bytes_per_request` (client side of relayed blocks, both directions, headers
//!   and framing included, below TLS), `front_request_wire_bytes_per_request` (the request
//!   direction alone), `direct_wire_bytes_per_request`,
//!   `back_wire_bytes_per_request` (origin's back listener per forwarded request);
//! - `miss_penalty_p50_ns`: relayed miss p50 minus hit p50 (raw), when 0 < `cache_hit_ratio` < 1;
//!   `cache_hit_share`;
//! - `handshakes_per_s` (new front connections per second of relayed blocks) and
//!   `tls_handshakes_per_s`, when `keep_alive = false`.
//!
//! Every answer is checked (status 200, exact body length); a failed request fails the trial.

use std::collections::BTreeMap;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use hdrhistogram::Histogram;
use ipcbench_core::{Channel, Transport};
use ipcbench_http::{
    Address, BlockResult, Client, ClientConfig, HttpError, Nginx, NginxConfig, Origin, OriginConfig, Protocol, Rate,
    Relay, RelayConfig, RequestHeaders, ServerProtocol, Stop, TlsIdentity,
};
use serde::{Deserialize, Serialize};

use crate::affinity;
use crate::plan::{Amount, Case, HttpCase, HttpRelay, HttpVersion};
use crate::protocol::{self, PeerReport, PeerSpec, Ready};
use crate::rusage::Snapshot;
use crate::scenario::fleet::{self, PeerRole, Started, TlsDer};
use crate::session::{
    TrialContext, TrialError, TrialOutput, control_exchange, error_chain, finish_trial, interrupted, stop_requested,
};
use ipcbench_record::{Trial, stats};

/// The length of one block; the client alternates blocks over the direct and relayed paths.
pub const BLOCK: Duration = Duration::from_millis(100);
/// Peer to client: where its HTTP listeners are ([`HttpListening`]).
pub const HTTP_LISTENING: u64 = 104;

/// Where a serving peer's HTTP listeners are, sent after `READY`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HttpListening {
    /// The listener clients reach (origin: the direct path; relay: its front).
    pub front: String,
    /// The origin's upstream listener, which only the relay reaches.
    #[serde(default)]
    pub back: Option<String>,
}

fn failed(what: &str) -> impl Fn(HttpError) -> TrialError + '_ {
    move |e| TrialError::Failed(format!("{what}: {}", e.chain()))
}

fn protocol_of(version: HttpVersion) -> Protocol {
    match version {
        HttpVersion::H1 => Protocol::H1,
        HttpVersion::H2 => Protocol::H2,
    }
}

fn settings(case: &Case) -> Result<&HttpCase, TrialError> {
    case.http
        .as_ref()
        .ok_or_else(|| TrialError::Unsupported("an http case needs its http settings".into()))
}

impl TlsDer {
    /// The identity's certificate and key.
    pub fn of(identity: &TlsIdentity) -> TlsDer {
        let b64 = base64::engine::general_purpose::STANDARD;
        TlsDer {
            certificate: b64.encode(identity.certificate_der()),
            key: b64.encode(identity.key_pkcs8_der()),
        }
    }

    fn identity(&self) -> Result<TlsIdentity, TrialError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let decode = |text: &str| {
            b64.decode(text)
                .map_err(|e| TrialError::Failed(format!("bad TLS identity in the spec: {e}")))
        };
        Ok(TlsIdentity::from_der(decode(&self.certificate)?, decode(&self.key)?))
    }
}

// ---------------------------------------------------------------------------------------------
// The measuring side.

/// The relay of one trial, whichever kind it is.
enum RelayHandle<C> {
    Peer(Started<C>),
    Nginx(Nginx),
    External { pid: Option<u32> },
}

impl<C: Channel> RelayHandle<C> {
    /// The relay's process CPU so far, for the relays the harness does not talk to.
    fn cpu(&self) -> Option<Duration> {
        match self {
            RelayHandle::Peer(_) => None,
            RelayHandle::Nginx(nginx) => nginx.cpu_time().ok(),
            RelayHandle::External { pid } => pid.and_then(|pid| ipcbench_http::process_tree_cpu(pid).ok()),
        }
    }

    /// Reaps a relay peer (`None` when it exited cleanly); stops nginx.
    fn finish(self) -> Option<String> {
        match self {
            RelayHandle::Peer(mut started) => {
                drop(started.control);
                started
                    .process
                    .finish(protocol::EXIT_TIMEOUT)
                    .map(|f| format!("relay: {f}"))
            }
            RelayHandle::Nginx(nginx) => {
                drop(nginx);
                None
            }
            RelayHandle::External { .. } => None,
        }
    }
}

/// Runs one `http` trial; `transport` carries the control channels only.
///
/// # Errors
/// [`TrialError::Failed`] with the reason (a peer's own account when it has one); every
/// process is reaped and nginx stopped either way.
pub fn trial<T: Transport + 'static>(
    transport: T,
    case: &Case,
    ctx: &TrialContext<'_>,
) -> Result<TrialOutput, TrialError> {
    let http = settings(case)?.clone();
    let client_cores = affinity::pin_current_thread(case.placement.client).map_err(TrialError::Failed)?;
    let identity = if http.tls {
        Some(TlsIdentity::generate().map_err(failed("TLS identity"))?)
    } else {
        None
    };
    let tls = identity.as_ref().map(TlsDer::of);
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    let role = PeerRole::HttpOrigin {
        work_dir: ctx.work_dir.to_owned(),
        tls: tls.clone(),
    };
    let mut origin = fleet::start_peer(&transport, case, ctx, "origin", &role, false)?;
    let origin_listening = match listening(&mut origin.control, &mut buf) {
        Ok(l) => l,
        Err(e) => return Err(reap_origin::<_, ()>(origin, Err(e)).unwrap_err()),
    };
    let back = origin_listening.back.clone().unwrap_or_default();
    let relay = start_relay(&transport, case, ctx, &http, &back, tls, &mut buf);
    let (mut relay, relay_address) = match relay {
        Ok(relay) => relay,
        Err(e) => return Err(reap_origin::<_, ()>(origin, Err(e)).unwrap_err()),
    };
    let outcome = parse_address(&origin_listening.front, "the origin's direct listener").and_then(|direct| {
        let relayed = parse_address(&relay_address, "the relay")?;
        measure(
            &mut origin.control,
            &mut relay,
            case,
            &http,
            direct,
            relayed,
            identity.as_ref(),
        )
    });
    let server_cores = origin.ready.cores_applied.clone();
    let applied_options = origin.ready.applied_options.clone();
    let relay_failure = relay.finish();
    let trial = reap_origin(origin, outcome);
    let trial = match (trial, relay_failure) {
        (Ok(trial), None) => trial,
        (Ok(_), Some(relay)) => return Err(TrialError::Failed(relay)),
        (Err(TrialError::Failed(e)), Some(relay)) => return Err(TrialError::Failed(format!("{relay}; {e}"))),
        (Err(e), _) => return Err(e),
    };
    Ok(TrialOutput {
        trial,
        applied_options,
        client_cores,
        server_cores,
    })
}

fn parse_address(text: &str, what: &str) -> Result<Address, TrialError> {
    text.parse()
        .map_err(|e: HttpError| TrialError::Failed(format!("{what} at `{text}`: {}", e.chain())))
}

/// Ends the origin peer and merges its account of a failure into `outcome`.
fn reap_origin<C, X>(mut origin: Started<C>, outcome: Result<X, TrialError>) -> Result<X, TrialError> {
    drop(origin.control);
    let failure = origin
        .process
        .finish(protocol::EXIT_TIMEOUT)
        .map(|f| format!("origin: {f}"));
    fleet::merge_failure(outcome, failure)
}

fn listening<C: Channel>(control: &mut C, buf: &mut [u8]) -> Result<HttpListening, TrialError> {
    let body = fleet::expect_control(control, buf, HTTP_LISTENING, "HTTP_LISTENING")?;
    fleet::parse_body(&body, "HTTP_LISTENING")
}

/// Starts (or names) the relay; returns it and the address clients reach it at.
fn start_relay<T: Transport>(
    transport: &T,
    case: &Case,
    ctx: &TrialContext<'_>,
    http: &HttpCase,
    origin_back: &str,
    tls: Option<TlsDer>,
    buf: &mut [u8],
) -> Result<(RelayHandle<T::Channel>, String), TrialError> {
    match &http.relay {
        HttpRelay::BuiltIn => {
            let role = PeerRole::HttpRelay {
                origin: origin_back.to_owned(),
                tls,
            };
            let mut relay = fleet::start_peer(transport, case, ctx, "relay", &role, false)?;
            match listening(&mut relay.control, buf) {
                Ok(l) => Ok((RelayHandle::Peer(relay), l.front)),
                Err(e) => {
                    drop(relay.control);
                    Err(fleet::merge_failure::<()>(Err(e), relay.process.finish(protocol::EXIT_TIMEOUT)).unwrap_err())
                }
            }
        }
        HttpRelay::Nginx => {
            let nginx = Nginx::start(&NginxConfig {
                dir: ctx.work_dir.to_owned(),
                front: protocol_of(http.front),
                upstream: parse_address(origin_back, "the origin's back listener")?,
                keepalive: http.pool_connections as usize,
                cache: http.cache_hit_ratio > 0.0,
                access_log: false,
                workers: 1,
                ..NginxConfig::default()
            })
            .map_err(failed("nginx"))?;
            // The relay is the client's sidecar, as the built-in one.
            let mut pids = vec![nginx.pid()];
            pids.extend(nginx.worker_pids());
            for pid in pids {
                affinity::pin_process(pid, case.placement.client).map_err(TrialError::Failed)?;
            }
            let address = nginx.address().to_string();
            Ok((RelayHandle::Nginx(nginx), address))
        }
        HttpRelay::External { address, pid, .. } => Ok((RelayHandle::External { pid: *pid }, address.clone())),
    }
}

/// Both paths' blocks, merged.
#[derive(Default)]
struct Paths {
    direct: Option<BlockResult>,
    relayed: Option<BlockResult>,
}

fn add(total: &mut Option<BlockResult>, block: BlockResult) {
    match total {
        Some(total) => total.merge(&block),
        None => *total = Some(block),
    }
}

/// Alternates direct and relayed blocks for `length`.
fn alternate(direct: &mut Client, relayed: &mut Client, length: Duration) -> Result<Paths, TrialError> {
    let started = Instant::now();
    let mut paths = Paths::default();
    while paths.relayed.is_none() || started.elapsed() < length {
        // Ctrl-C ends the trial at the next block (every 100 ms per path).
        if stop_requested() {
            return Err(interrupted());
        }
        add(
            &mut paths.direct,
            direct.run_block(BLOCK).map_err(failed("direct path"))?,
        );
        add(
            &mut paths.relayed,
            relayed.run_block(BLOCK).map_err(failed("relayed path"))?,
        );
    }
    Ok(paths)
}

fn phase(amount: Amount) -> Duration {
    match amount {
        Amount::Time(d) => d,
        // The plan refuses counts for http; a count still gets a short phase.
        Amount::Messages(_) => BLOCK * 2,
    }
}

/// Connects both clients, runs warm-up and the measured phase, and collects every figure.
fn measure<C: Channel>(
    origin: &mut C,
    relay: &mut RelayHandle<C>,
    case: &Case,
    http: &HttpCase,
    direct_target: Address,
    relay_target: Address,
    identity: Option<&TlsIdentity>,
) -> Result<Trial, TrialError> {
    let config = |target: Address| ClientConfig {
        target,
        protocol: protocol_of(http.front),
        tls: identity.map(TlsIdentity::client),
        connections: case.connections.unwrap_or(1) as usize,
        streams: http.streams as usize,
        keep_alive: http.keep_alive,
        request_headers: RequestHeaders {
            count: http.request_headers as usize,
            value_bytes: http.header_value_bytes as usize,
        },
        response_bytes: case.message_bytes,
        cache_hit_ratio: http.cache_hit_ratio,
        rate: http.rate_hz.map_or(Rate::Max, Rate::PerConnection),
        ..ClientConfig::default()
    };
    let mut direct = Client::connect(config(direct_target)).map_err(failed("connecting to the origin"))?;
    let mut relayed = Client::connect(config(relay_target)).map_err(failed("connecting to the relay"))?;
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    if !phase(case.warmup).is_zero() {
        alternate(&mut direct, &mut relayed, phase(case.warmup))?;
    }
    control_exchange(origin, protocol::MARK, &mut buf)?;
    let relay_cpu_start = match &mut *relay {
        RelayHandle::Peer(peer) => {
            control_exchange(&mut peer.control, protocol::MARK, &mut buf)?;
            None
        }
        _ => relay.cpu(),
    };
    let usage_start = Snapshot::now();
    let paths = alternate(&mut direct, &mut relayed, phase(case.measure))?;
    let usage = usage_start.until(&Snapshot::now());
    let relay_cpu_end = relay.cpu();
    let origin_report = control_exchange(origin, protocol::END, &mut buf)?
        .ok_or_else(|| TrialError::Failed("the origin sent no REPORT".into()))?;
    let relay_report = match &mut *relay {
        RelayHandle::Peer(peer) => Some(
            control_exchange(&mut peer.control, protocol::END, &mut buf)?
                .ok_or_else(|| TrialError::Failed("the relay sent no REPORT".into()))?,
        ),
        _ => None,
    };
    let (Some(d), Some(r)) = (paths.direct, paths.relayed) else {
        unreachable!("alternate runs at least one block per path");
    };
    for (path, block) in [("direct", &d), ("relayed", &r)] {
        if block.n_errors > 0 {
            return Err(TrialError::Failed(format!(
                "{} of {} requests on the {path} path failed; first: {}",
                block.n_errors,
                block.n_errors + block.n_requests,
                block.first_error.as_deref().unwrap_or("?")
            )));
        }
    }
    let relay_cpu = match (&relay_report, relay_cpu_start, relay_cpu_end) {
        (Some(report), _, _) => Some(report.rusage.cpu_ns() as f64),
        (None, Some(start), Some(end)) => Some(end.saturating_sub(start).as_nanos() as f64),
        _ => None,
    };
    let mut trial = Trial {
        latency_ns: stats::percentiles(&r.latency_ns),
        latency_corrected_ns: stats::percentiles(&r.latency_corrected_ns),
        histogram_v2: Some(stats::encode_histogram(&r.latency_ns)),
        histogram_corrected_v2: Some(stats::encode_histogram(&r.latency_corrected_ns)),
        messages: r.n_requests,
        bytes: r.n_requests * case.message_bytes,
        server: Some(origin_report.rusage),
        ..Trial::default()
    };
    finish_trial(&mut trial, r.elapsed, usage);
    let figures = Figures {
        http,
        direct: &d,
        relayed: &r,
        origin: &origin_report,
        relay: relay_report.as_ref(),
        relay_cpu_ns: relay_cpu,
    };
    trial.extra = figures.extra();
    Ok(trial)
}

/// What the trial's `extra` is computed from.
struct Figures<'a> {
    http: &'a HttpCase,
    direct: &'a BlockResult,
    relayed: &'a BlockResult,
    origin: &'a PeerReport,
    relay: Option<&'a PeerReport>,
    relay_cpu_ns: Option<f64>,
}

impl Figures<'_> {
    fn extra(&self) -> BTreeMap<String, f64> {
        let (d, r) = (self.direct, self.relayed);
        let mut extra = BTreeMap::new();
        let mut put = |key: &str, value: f64| {
            extra.insert(key.to_owned(), value);
        };
        let q = |h: &Histogram<u64>, quantile: f64| h.value_at_quantile(quantile) as f64;
        let origin = |key: &str| self.origin.extra.get(key).copied().unwrap_or(0.0);
        let relayed_s = r.elapsed.as_secs_f64().max(1e-9);
        for (name, quantile) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            let (direct, relayed) = (
                q(&d.latency_corrected_ns, quantile),
                q(&r.latency_corrected_ns, quantile),
            );
            put(&format!("direct_{name}_ns"), direct);
            put(&format!("hop_added_{name}_ns"), relayed - direct);
        }
        put("hop_added_raw_p50_ns", q(&r.latency_ns, 0.5) - q(&d.latency_ns, 0.5));
        put("requests_per_s_in", r.requests_per_s());
        put("requests_per_s_out", origin("back_requests") / relayed_s);
        put("direct_requests_per_s", d.requests_per_s());
        put("relayed_requests", r.n_requests as f64);
        put("direct_requests", d.n_requests as f64);
        put("origin_back_requests", origin("back_requests"));
        if let Some(cpu) = self.relay_cpu_ns {
            put("relay_cpu_ns", cpu);
            if r.n_requests > 0 {
                put("relay_cpu_ns_per_request", cpu / r.n_requests as f64);
            }
        }
        put("upstream_connections", origin("back_connections_total"));
        put("upstream_connections_measured", origin("back_connections"));
        put("front_wire_bytes_per_request", r.wire_bytes_per_request());
        if r.n_requests > 0 {
            // The request direction alone: where HPACK's indexing of repeated headers shows.
            put(
                "front_request_wire_bytes_per_request",
                r.wire.written_bytes as f64 / r.n_requests as f64,
            );
        }
        put("direct_wire_bytes_per_request", d.wire_bytes_per_request());
        if origin("back_requests") > 0.0 {
            put(
                "back_wire_bytes_per_request",
                origin("back_wire_bytes") / origin("back_requests"),
            );
        }
        if let Some(relay) = self.relay {
            let get = |key: &str| relay.extra.get(key).copied();
            for key in ["pool_wait_p50_ns", "pool_wait_p99_ns"] {
                if let Some(v) = get(key) {
                    put(key, v);
                }
            }
            put("relay_requests_in", get("requests_in").unwrap_or(0.0));
            put("relay_requests_out", get("requests_out").unwrap_or(0.0));
            put("relay_upstream_errors", get("upstream_errors").unwrap_or(0.0));
            put("relay_user_ns", relay.rusage.user_ns as f64);
            put("relay_system_ns", relay.rusage.system_ns as f64);
        }
        if r.n_requests > 0 {
            put("cache_hit_share", r.n_hits as f64 / r.n_requests as f64);
        }
        let ratio = self.http.cache_hit_ratio;
        if ratio > 0.0 && ratio < 1.0 && !r.hit_latency_ns.is_empty() && !r.miss_latency_ns.is_empty() {
            put(
                "miss_penalty_p50_ns",
                q(&r.miss_latency_ns, 0.5) - q(&r.hit_latency_ns, 0.5),
            );
            put("hit_p50_ns", q(&r.hit_latency_ns, 0.5));
            put("miss_p50_ns", q(&r.miss_latency_ns, 0.5));
        }
        if !self.http.keep_alive {
            put("handshakes_per_s", r.n_connections_opened as f64 / relayed_s);
            put("tls_handshakes_per_s", r.n_tls_handshakes as f64 / relayed_s);
        }
        put("unsent_requests", (r.n_unsent + d.n_unsent) as f64);
        put("late_requests", r.n_late as f64);
        extra
    }
}

// ---------------------------------------------------------------------------------------------
// The serving peers.

/// A serving role's counters at one moment.
struct Sample {
    values: BTreeMap<String, f64>,
    pool_wait_ns: Option<Histogram<u64>>,
}

/// The threads of the serving roles and their stop signal.
struct Serving {
    stop: Stop,
    threads: Vec<(&'static str, JoinHandle<Result<(), HttpError>>)>,
}

impl Serving {
    fn finish(self) -> Result<(), TrialError> {
        self.stop.stop();
        let mut outcome = Ok(());
        for (name, thread) in self.threads {
            let result = match thread.join() {
                Ok(result) => result.map_err(failed(name)),
                Err(_) => Err(TrialError::Failed(format!("{name} panicked"))),
            };
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    }
}

/// Answers `MARK` and `END` on the control channel until `END`; reports the process CPU and
/// the counters' deltas over the measured phase (`<name>`), and their totals (`<name>_total`).
fn control_loop<C: Channel>(control: &mut C, sample: &dyn Fn() -> Sample) -> Result<(), TrialError> {
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    let mut start = (Snapshot::process_now(), sample());
    loop {
        let n = control.recv(&mut buf)?;
        match protocol::decode(&buf[..n]) {
            Some((protocol::MARK, _)) => {
                start = (Snapshot::process_now(), sample());
                control.send(&buf[..n])?;
            }
            Some((protocol::END, _)) => {
                let rusage = start.0.until(&Snapshot::process_now());
                let end = sample();
                let mut extra = BTreeMap::new();
                for (key, value) in &end.values {
                    let before = start.1.values.get(key).copied().unwrap_or(0.0);
                    extra.insert(key.clone(), value - before);
                    extra.insert(format!("{key}_total"), *value);
                }
                if let (Some(mut waits), Some(before)) = (end.pool_wait_ns, start.1.pool_wait_ns.as_ref())
                    && waits.subtract(before).is_ok()
                    && !waits.is_empty()
                {
                    extra.insert("pool_wait_p50_ns".into(), waits.value_at_quantile(0.5) as f64);
                    extra.insert("pool_wait_p99_ns".into(), waits.value_at_quantile(0.99) as f64);
                }
                let messages = extra
                    .get("requests_in")
                    .or(extra.get("back_requests"))
                    .copied()
                    .unwrap_or(0.0) as u64;
                let report = PeerReport {
                    rusage,
                    messages,
                    bytes: 0,
                    extra,
                };
                control.send(&protocol::encode(protocol::REPORT, Some(&report)))?;
                return Ok(());
            }
            Some((other, _)) => {
                return Err(TrialError::Failed(format!("unexpected control message {other}")));
            }
            None => return Err(TrialError::Failed("a data message on the control channel".into())),
        }
    }
}

fn connect_control<T: Transport>(transport: &T, spec: &PeerSpec) -> Result<T::Channel, TrialError> {
    transport
        .connect(&spec.address, protocol::CONNECT_TIMEOUT)
        .map_err(|e| TrialError::Failed(format!("cannot connect to {}: {}", spec.address, error_chain(&e))))
}

fn announce<C: Channel>(
    control: &mut C,
    cores_applied: Vec<usize>,
    listening: &HttpListening,
) -> Result<(), TrialError> {
    let ready = Ready {
        pid: std::process::id(),
        cores_applied,
        applied_options: control.applied_options().into_iter().collect(),
    };
    control.send(&protocol::encode(protocol::READY, Some(&ready)))?;
    control.send(&protocol::encode(HTTP_LISTENING, Some(listening)))?;
    Ok(())
}

/// Serves one trial as the origin: the direct listener and the back listener, each on a
/// thread of its own (same core), until `END`.
///
/// # Errors
/// A message for the parent's record.
pub(crate) fn serve_origin<T: Transport>(
    transport: &T,
    spec: &PeerSpec,
    work_dir: &Path,
    tls: Option<&TlsDer>,
) -> Result<(), TrialError> {
    let case = &spec.case;
    let http = settings(case)?;
    let cores_applied = affinity::pin_current_thread(case.placement.server).map_err(TrialError::Failed)?;
    let mut control = connect_control(transport, spec)?;
    let base = OriginConfig {
        protocol: ServerProtocol::Auto,
        response_bytes: case.message_bytes,
        max_response_bytes: case.message_bytes.max(OriginConfig::default().max_response_bytes),
        ..OriginConfig::default()
    };
    let direct = Origin::bind(OriginConfig {
        tls: tls.map(TlsDer::identity).transpose()?,
        ..base.clone()
    })
    .map_err(failed("origin (direct)"))?;
    let back_listen = match &http.relay {
        HttpRelay::External { origin_listen, .. } => parse_address(origin_listen, "`origin_listen`")?,
        _ if http.back_uds => {
            Address::Unix(work_dir.join(format!("case{}-origin-{}.sock", case.index, std::process::id())))
        }
        _ => Address::localhost(0),
    };
    let back = Origin::bind(OriginConfig {
        listen: back_listen,
        ..base
    })
    .map_err(failed("origin (back)"))?;
    let listening = HttpListening {
        front: direct.address().to_string(),
        back: Some(back.address().to_string()),
    };
    let (direct_counters, back_counters) = (direct.counters(), back.counters());
    let stop = Stop::new();
    // The threads inherit this thread's affinity: the server core.
    let serving = Serving {
        threads: vec![
            ("origin (direct)", {
                let stop = stop.clone();
                std::thread::spawn(move || direct.run(&stop).map(drop))
            }),
            ("origin (back)", {
                let stop = stop.clone();
                std::thread::spawn(move || back.run(&stop).map(drop))
            }),
        ],
        stop,
    };
    let sample = || {
        let (d, b) = (direct_counters.snapshot(), back_counters.snapshot());
        let values = [
            ("direct_requests", d.n_requests),
            ("direct_connections", d.n_connections),
            ("direct_wire_bytes", d.wire.total_bytes()),
            ("back_requests", b.n_requests),
            ("back_connections", b.n_connections),
            ("back_wire_bytes", b.wire.total_bytes()),
        ];
        Sample {
            values: values.into_iter().map(|(k, v)| (k.to_owned(), v as f64)).collect(),
            pool_wait_ns: None,
        }
    };
    let outcome = announce(&mut control, cores_applied, &listening).and_then(|()| control_loop(&mut control, &sample));
    let finished = serving.finish();
    outcome.and(finished)
}

/// Serves one trial as the built-in relay, pinned to the client's core, until `END`.
///
/// # Errors
/// A message for the parent's record.
pub(crate) fn serve_relay<T: Transport>(
    transport: &T,
    spec: &PeerSpec,
    origin: &str,
    tls: Option<&TlsDer>,
) -> Result<(), TrialError> {
    let case = &spec.case;
    let http = settings(case)?;
    // The client's core: the relay is the client's sidecar (proxy.rs, "Placement").
    let cores_applied = affinity::pin_current_thread(case.placement.client).map_err(TrialError::Failed)?;
    let mut control = connect_control(transport, spec)?;
    let relay = Relay::bind(RelayConfig {
        front: protocol_of(http.front).into(),
        tls: tls.map(TlsDer::identity).transpose()?,
        back: protocol_of(http.back),
        origin: parse_address(origin, "the origin's back listener")?,
        pool_connections: http.pool_connections as usize,
        cache: http.cache_hit_ratio > 0.0,
        ..RelayConfig::default()
    })
    .map_err(failed("relay"))?;
    let listening = HttpListening {
        front: relay.address().to_string(),
        back: None,
    };
    let counters = relay.counters();
    let stop = Stop::new();
    let serving = Serving {
        threads: vec![("relay", {
            let stop = stop.clone();
            std::thread::spawn(move || relay.run(&stop).map(drop))
        })],
        stop,
    };
    let sample = || {
        let r = counters.snapshot();
        let values = [
            ("requests_in", r.n_requests_in),
            ("requests_out", r.n_requests_out),
            ("cache_hits", r.n_cache_hits),
            ("cache_misses", r.n_cache_misses),
            ("upstream_errors", r.n_upstream_errors),
            ("front_connections", r.n_front_connections),
            ("upstream_connections", r.n_upstream_connections),
            ("front_wire_bytes", r.front_wire.total_bytes()),
            ("back_wire_bytes", r.back_wire.total_bytes()),
        ];
        Sample {
            values: values.into_iter().map(|(k, v)| (k.to_owned(), v as f64)).collect(),
            pool_wait_ns: Some(r.pool_wait_ns),
        }
    };
    let outcome = announce(&mut control, cores_applied, &listening).and_then(|()| control_loop(&mut control, &sample));
    let finished = serving.finish();
    outcome.and(finished)
}
