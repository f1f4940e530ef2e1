//! What `load` and `conn-cost` share: a server process that is an event loop, a control
//! channel to it, and many connections opened in paced batches.
//!
//! The process structure differs from the single-channel trial of [`crate::trial::run_trial`]:
//!
//! 1. The measuring process binds an ordinary listener of the case's transport and starts the
//!    peer process, which connects to it: the **control channel** (blocking, in-band control
//!    messages of [`crate::protocol`], never on the measured path).
//! 2. The peer pins itself, raises its open-file limit, opens an event-loop listener
//!    ([`ipcbench_core::event_loop::EventListener`]) with a large backlog, starts its event
//!    loops, and sends `READY` followed by [`LISTENING`] with the listener's address.
//! 3. The measuring process opens the connections in batches (`open_connections`): each
//!    batch is at most half the accept backlog, and the next batch starts only once the
//!    server reports ([`ACCEPTED`]) that it accepted every connection so far, so the kernel's
//!    accept queue (`somaxconn`) never overflows and no handshake is silently dropped.
//! 4. The scenario runs; `MARK`, `END` and `REPORT` work as in every other scenario.
//!
//! Control commands added here (numbers above the core protocol's):
//!
//! | command     | sent by | body              | meaning                                       |
//! |-------------|---------|-------------------|-----------------------------------------------|
//! | `LISTENING` | server  | [`Listening`]     | where the event-loop listener accepts         |
//! | `ACCEPTED`  | both    | none / [`Accepted`] | how many connections the server accepted    |

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipcbench_core::event_loop::{EventLoopTransport, EventStream, is_backlog_full};
use ipcbench_core::{Channel, Endpoint, Listener, Transport};
use mio::{Events, Interest, Poll, Token};
use serde::{Deserialize, Serialize};

use crate::plan::Case;
use crate::process::PeerProcess;
use crate::protocol::ACCEPT_TIMEOUT;
use crate::protocol::{self, PeerReport, PeerSpec, Ready};
use crate::session::{TrialContext, TrialError, error_chain};

/// Server to client: the event-loop listener's address ([`Listening`]).
pub const LISTENING: u64 = 101;
/// Client to server (no body): how many connections have you accepted? The server answers
/// with the same command and an [`Accepted`] body.
pub const ACCEPTED: u64 = 102;
/// Client to server (no body): the counters since `MARK`; the server answers with the same
/// command and a [`PeerReport`] body, and keeps counting.
pub const COUNTERS: u64 = 131;
/// The accept backlog asked for; the kernel caps it at `net.core.somaxconn`.
pub const BACKLOG: u32 = 4096;
/// The most connections opened before waiting for the server to accept them.
pub const MAX_BATCH: u64 = 1000;
/// How long opening one batch, or the server accepting it, may take.
pub const BATCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The event-loop listener's address, sent by the server after `READY`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Listening {
    /// What `connect_nonblocking` takes (the first listener's address).
    pub address: String,
    /// Every listener's address (`server_addresses`); empty from older peers.
    #[serde(default)]
    pub all: Vec<String>,
}

impl Listening {
    /// A peer with one listener.
    pub fn one(address: String) -> Listening {
        Listening {
            address,
            all: Vec::new(),
        }
    }
}

/// The server's count of accepted connections.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Accepted {
    /// Connections accepted since the start.
    pub accepted: u64,
    /// Connections the server saw closed by the client.
    pub closed: u64,
}

/// A diagnostic for the known-answer test of the latency correction: the server's event loop
/// sleeps once, for `stall_ms`, when it has served `after_messages` messages. Not reachable
/// from a plan; only [`crate::scenario::load::trial_with`] sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stall {
    /// Messages served (counted from the start, warm-up included) before the stall.
    pub after_messages: u64,
    /// Length of the stall, ms.
    pub stall_ms: u64,
}

/// What a peer process of these scenarios does, sent in [`PeerSpec::extra`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum PeerRole {
    /// The event-loop echo server of `load` and `conn-cost`.
    EventServer {
        /// Where a Unix socket listener may create its file.
        work_dir: PathBuf,
        /// The test-only stall, if any.
        #[serde(default)]
        stall: Option<Stall>,
        /// The connections this server process holds.
        #[serde(default)]
        connections: u64,
        /// The addresses to listen on (empty: the transport's own).
        #[serde(default)]
        listen_ips: Vec<std::net::IpAddr>,
        /// How connections are held.
        #[serde(default)]
        model: crate::plan::ServerModel,
    },
    /// A load generator of `load` and `conn-cost` (`scenario/generator.rs`).
    LoadGenerator {
        /// Every server listening address of the case.
        servers: Vec<String>,
        /// The case-wide index of this generator's first connection.
        first: u64,
        /// The connections this generator holds.
        connections: u64,
        /// The first source address and how many (none: the kernel's choice).
        #[serde(default)]
        sources: Option<(std::net::Ipv4Addr, u32)>,
    },
    /// The relay of `proxy`: front transport in, back transport out.
    Relay {
        /// Where the back listener may create its file.
        work_dir: PathBuf,
    },
    /// The server of `proxy`: answers the relay and, directly, the measuring process.
    ProxyServer {
        /// The relay's back address to connect to.
        relay_address: String,
    },
    /// A backend of `balance`: answers each request with a read-modify-write of its client's
    /// record in the store.
    BalanceBackend {
        /// Where the backend's listener may create its file.
        work_dir: PathBuf,
        /// Which backend this is (0-based).
        backend_idx: usize,
        /// Where the trial's store is.
        store: ipcbench_store::StoreAddress,
    },
    /// The balancer of `balance`: client connections in, backend links out.
    Balancer {
        /// Where the client listener may create its file.
        work_dir: PathBuf,
        /// Every backend's listener, the members first, then a spare that joins on
        /// `add_backend_at`.
        backends: Vec<String>,
        /// How many of `backends` are members from the start.
        n_members: usize,
    },
    /// The origin of `http`: one listener for the direct path, one for the relay's upstream.
    HttpOrigin {
        /// Where a Unix socket listener may create its file.
        work_dir: PathBuf,
        /// The TLS identity of the direct path, when the case has `tls`.
        #[serde(default)]
        tls: Option<TlsDer>,
    },
    /// The built-in relay of `http`.
    HttpRelay {
        /// The origin's upstream listener.
        origin: String,
        /// The TLS identity of the front, when the case has `tls`.
        #[serde(default)]
        tls: Option<TlsDer>,
    },
}

impl PeerRole {
    /// The role a spec carries, if it is one of these scenarios' peers.
    pub fn of(spec: &PeerSpec) -> Option<PeerRole> {
        if spec.extra.is_null() {
            return None;
        }
        serde_json::from_value(spec.extra.clone()).ok()
    }

    /// The JSON for [`PeerSpec::extra`].
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("peer roles serialize")
    }
}

/// A TLS certificate and key as a peer's spec carries them (DER, base64): the `http` origin
/// and relay serve the identity the measuring process generated and trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsDer {
    /// The certificate, DER, base64.
    pub certificate: String,
    /// The PKCS#8 private key, DER, base64.
    pub key: String,
}

/// A peer's first steps: pins the thread to `core`, connects the control channel to the
/// measuring side, and returns it with the `READY` to send once the peer is set up. `who`
/// names the peer in the error.
///
/// # Errors
/// When the core cannot be pinned or the measuring side cannot be reached.
pub(crate) fn connect_control<T: Transport>(
    transport: &T,
    spec: &PeerSpec,
    core: usize,
    who: &str,
) -> Result<(T::Channel, Ready), TrialError> {
    let cores_applied = crate::affinity::pin_current_thread(core).map_err(TrialError::Failed)?;
    let control = transport
        .connect(&spec.address, protocol::CONNECT_TIMEOUT)
        .map_err(|e| TrialError::Failed(format!("{who} cannot connect to {}: {}", spec.address, error_chain(&e))))?;
    let ready = Ready {
        pid: std::process::id(),
        cores_applied,
        applied_options: control.applied_options().into_iter().collect(),
    };
    Ok((control, ready))
}

/// A listening peer's announcement: `READY`, then [`LISTENING`] with its listeners.
///
/// # Errors
/// When the control channel fails.
pub(crate) fn announce<C: Channel>(control: &mut C, ready: &Ready, listening: &Listening) -> Result<(), TrialError> {
    control.send(&protocol::encode(protocol::READY, Some(ready)))?;
    control.send(&protocol::encode(LISTENING, Some(listening)))?;
    Ok(())
}

/// Receives one control message and checks its command; returns its body.
pub(crate) fn expect_control<C: Channel>(
    channel: &mut C,
    buf: &mut [u8],
    command: u64,
    what: &str,
) -> Result<Vec<u8>, TrialError> {
    let n = channel.recv(buf)?;
    match protocol::decode(&buf[..n]) {
        Some((c, body)) if c == command => Ok(body.to_vec()),
        Some((c, _)) => Err(TrialError::Failed(format!("expected {what}, got control message {c}"))),
        None => Err(TrialError::Failed(format!("expected {what}, got a data message"))),
    }
}

/// Parses a JSON control body.
pub(crate) fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T, TrialError> {
    serde_json::from_slice(body).map_err(|e| TrialError::Failed(format!("peer sent a malformed {what}: {e}")))
}

/// The measuring side's handle on a started peer process and its control channel.
pub(crate) struct Started<C> {
    /// The control channel.
    pub control: C,
    /// The peer process (killed and reaped on drop).
    pub process: PeerProcess,
    /// The peer's `READY`.
    pub ready: Ready,
    /// The peer's second message ([`LISTENING`]), when it sends one.
    pub listening: Option<Listening>,
}

/// Binds a control listener on `transport`, starts a peer with `role`, accepts it, and reads
/// its `READY` (and its [`LISTENING`] when `expect_listening`).
///
/// `name` makes the endpoint unique within the trial; `case` is what the peer is told.
pub(crate) fn start_peer<T: Transport>(
    transport: &T,
    case: &Case,
    ctx: &TrialContext<'_>,
    name: &str,
    role: &PeerRole,
    expect_listening: bool,
) -> Result<Started<T::Channel>, TrialError> {
    let endpoint = Endpoint::new(
        format!("case{}-trial{}-{name}", case.index, ctx.trial_idx),
        ctx.work_dir,
    );
    let mut listener = transport.bind(&endpoint)?;
    let spec = PeerSpec {
        case: case.clone(),
        address: listener.address(),
        extra: role.to_json(),
    };
    let mut process = PeerProcess::launch(ctx, &spec, case.timeout)?;
    let accepted = listener.accept(ACCEPT_TIMEOUT);
    drop(listener);
    let mut control = match accepted {
        Ok(channel) => channel,
        Err(e) => {
            let failure = process.finish(Duration::ZERO);
            return Err(TrialError::Failed(failure.unwrap_or_else(|| {
                format!("{name} process never connected: {}", error_chain(&e))
            })));
        }
    };
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    let handshake = (|| {
        let ready: Ready = parse_body(
            &expect_control(&mut control, &mut buf, protocol::READY, "READY")?,
            "READY",
        )?;
        let listening = if expect_listening {
            Some(parse_body(
                &expect_control(&mut control, &mut buf, LISTENING, "LISTENING")?,
                "LISTENING",
            )?)
        } else {
            None
        };
        Ok::<_, TrialError>((ready, listening))
    })();
    match handshake {
        Ok((ready, listening)) => Ok(Started {
            control,
            process,
            ready,
            listening,
        }),
        Err(e) => {
            drop(control);
            Err(merge_failure::<()>(Err(e), process.finish(crate::protocol::EXIT_TIMEOUT)).unwrap_err())
        }
    }
}

/// Combines the measuring side's result with the peer's exit: the peer's own account of a
/// failure is more telling than the client's "disconnected".
pub(crate) fn merge_failure<X>(outcome: Result<X, TrialError>, peer_failure: Option<String>) -> Result<X, TrialError> {
    match (outcome, peer_failure) {
        (Ok(x), None) => Ok(x),
        (Err(TrialError::Failed(client)), Some(peer)) => Err(TrialError::Failed(format!("{peer} (client: {client})"))),
        (Err(e), _) => Err(e),
        (Ok(_), Some(peer)) => Err(TrialError::Failed(peer)),
    }
}

/// Asks the server how many connections it has accepted.
pub(crate) fn query_accepted<C: Channel>(control: &mut C, buf: &mut [u8]) -> Result<Accepted, TrialError> {
    control.send(&protocol::encode(ACCEPTED, None::<&()>))?;
    parse_body(&expect_control(control, buf, ACCEPTED, "ACCEPTED")?, "ACCEPTED")
}

/// Sends `END` and reads the peer's `REPORT`, skipping the echo of an earlier `MARK` that
/// was sent without waiting for it.
pub(crate) fn end_and_report<C: Channel>(
    control: &mut C,
    buf: &mut [u8],
    mark_pending: bool,
) -> Result<PeerReport, TrialError> {
    control.send(&protocol::encode(protocol::END, None::<&()>))?;
    if mark_pending {
        expect_control(control, buf, protocol::MARK, "the echo of MARK")?;
    }
    parse_body(&expect_control(control, buf, protocol::REPORT, "REPORT")?, "REPORT")
}

/// The accept backlog the kernel grants: [`BACKLOG`] capped at `net.core.somaxconn`.
pub fn granted_backlog() -> u64 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(128, |somaxconn| somaxconn.min(u64::from(BACKLOG)))
}

/// Connections per batch: half the granted backlog, at most [`MAX_BATCH`].
pub fn batch_size() -> u64 {
    (granted_backlog() / 2).clamp(1, MAX_BATCH)
}

/// Opens connections to `address` until `streams` holds `total`, registering each with
/// `poll` (token = its index in `streams`) for reads and writes, in paced batches (see the
/// module docs). `accepted` asks the server for its count.
///
/// # Errors
/// A connection that fails, or a batch that is not connected and accepted within
/// [`BATCH_TIMEOUT`].
pub(crate) fn open_connections(
    capability: &dyn EventLoopTransport,
    address: &str,
    total: u64,
    poll: &mut Poll,
    streams: &mut Vec<EventStream>,
    accepted: &mut dyn FnMut() -> Result<Accepted, TrialError>,
) -> Result<(), TrialError> {
    let batch = batch_size();
    let mut events = Events::with_capacity(1024);
    while (streams.len() as u64) < total {
        let first = streams.len();
        let count = batch.min(total - first as u64) as usize;
        let deadline = Instant::now() + BATCH_TIMEOUT;
        for idx in first..first + count {
            let mut stream = loop {
                match capability.connect_nonblocking(address) {
                    Ok(stream) => break stream,
                    Err(e) if is_backlog_full(&e) && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => {
                        return Err(TrialError::Failed(format!(
                            "connection {} of {total} to {address}: {}",
                            idx + 1,
                            error_chain(&e)
                        )));
                    }
                }
            };
            poll.registry()
                .register(&mut stream, Token(idx), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| TrialError::Failed(format!("cannot register connection {}: {e}", idx + 1)))?;
            streams.push(stream);
        }
        // A non-blocking connect reports its outcome with the first writable event.
        let mut pending: Vec<bool> = vec![true; count];
        let mut n_pending = count;
        while n_pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TrialError::Failed(format!(
                    "{n_pending} of {count} connections to {address} did not complete within {BATCH_TIMEOUT:?}"
                )));
            }
            poll.poll(&mut events, Some(left.min(Duration::from_millis(100))))
                .map_err(|e| TrialError::Failed(format!("poll failed: {e}")))?;
            for event in events.iter() {
                let Token(idx) = event.token();
                if idx < first || idx >= first + count || !pending[idx - first] {
                    continue;
                }
                let stream = &streams[idx];
                if let Ok(Some(err)) | Err(err) = stream.take_error() {
                    return Err(TrialError::Failed(format!(
                        "connection {} of {total} to {address} failed: {err}",
                        idx + 1
                    )));
                }
                if event.is_writable() && stream.is_connected() {
                    pending[idx - first] = false;
                    n_pending -= 1;
                }
            }
        }
        // Wait for the server to take them off its accept queue before the next batch.
        loop {
            let count = accepted()?;
            if count.accepted >= streams.len() as u64 {
                break;
            }
            if Instant::now() > deadline {
                return Err(TrialError::Failed(format!(
                    "the server accepted {} of {} connections within {BATCH_TIMEOUT:?}",
                    count.accepted,
                    streams.len()
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(())
}
