//! The names a plan chooses from: scenarios, transports and their options, schedules and
//! conversion stages, and one transport with every option decided ([`TransportSettings`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The scenarios of DESIGN section 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScenarioKind {
    /// Request/reply, one at a time: round-trip latency.
    Pingpong,
    /// One-way bulk: throughput.
    Stream,
    /// Request/reply with a window in flight, optionally over a delayed link.
    Rpc,
    /// Many connections on an open-loop schedule against an event-loop server.
    Load,
    /// Client -> relay -> server.
    Proxy,
    /// Memory cost per idle connection.
    ConnCost,
    /// A client fleet -> a balancer -> backends with shared state.
    Balance,
    /// HTTP/1.1 and HTTP/2 client -> relay -> origin, against the direct path.
    Http,
}

impl ScenarioKind {
    /// Every scenario, in the order `ipcbench list` shows them.
    pub const ALL: [ScenarioKind; 8] = [
        ScenarioKind::Pingpong,
        ScenarioKind::Stream,
        ScenarioKind::Rpc,
        ScenarioKind::Load,
        ScenarioKind::Proxy,
        ScenarioKind::ConnCost,
        ScenarioKind::Balance,
        ScenarioKind::Http,
    ];

    /// The name used in plans and records.
    pub fn as_str(self) -> &'static str {
        match self {
            ScenarioKind::Pingpong => "pingpong",
            ScenarioKind::Stream => "stream",
            ScenarioKind::Rpc => "rpc",
            ScenarioKind::Load => "load",
            ScenarioKind::Proxy => "proxy",
            ScenarioKind::ConnCost => "conn-cost",
            ScenarioKind::Balance => "balance",
            ScenarioKind::Http => "http",
        }
    }

    /// One line on what the scenario measures.
    pub fn describe(self) -> &'static str {
        match self {
            ScenarioKind::Pingpong => {
                "request of message_bytes, reply of reply_bytes, one at a time: round-trip latency"
            }
            ScenarioKind::Stream => {
                "one-way bulk of total_bytes (else for the duration) in messages of message_bytes, confirmed by \
                 the receiver: throughput, CPU per byte per side"
            }
            ScenarioKind::Rpc => {
                "window requests in flight (1 = stop-and-wait), replies of reply_bytes; delay_ms (one-way) and \
                 rate_mbit put tcp's peer behind a delayed link in a network namespace (root; netem, or a \
                 user-space delay line without it): throughput vs bandwidth-delay, round trips"
            }
            ScenarioKind::Load => {
                "connections x rate_per_connection_hz open-loop (or \"search\" for the capacity within slo_p99, or \
                 mode = \"closed\", wrk's way), over generator and server processes (event-loop or \
                 thread-per-connection) and source addresses: corrected and raw latency, server costs per request"
            }
            ScenarioKind::Proxy => "client -> relay -> server (front/back transports, convert): cost of a hop",
            ScenarioKind::ConnCost => {
                "idle connections opened in steps (over processes and source addresses, either server model): \
                 server and kernel bytes per connection, fitted"
            }
            ScenarioKind::Balance => {
                "connections from clients -> balancer (policy) -> backends, each request a read-modify-write of \
                 its client's record in state (local, shm, redis, postgres, sqlite): latency, state cost, share \
                 per backend, broken connections, lost updates"
            }
            ScenarioKind::Http => {
                "HTTP/1.1 or HTTP/2 client -> relay (built-in, nginx or your own) -> origin, alternating with the \
                 direct path: added latency, relay CPU per request, wire bytes per request, upstream pool, cache"
            }
        }
    }

    /// The scenario-specific keys this scenario accepts.
    pub(crate) fn keys(self) -> &'static [&'static str] {
        match self {
            ScenarioKind::Pingpong => &["reply_bytes", "bare", "verify"],
            ScenarioKind::Stream => &["total_bytes", "bare", "verify"],
            ScenarioKind::Rpc => &["reply_bytes", "window", "delay_ms", "rate_mbit", "verify"],
            ScenarioKind::Load => &[
                "connections",
                "rate_per_connection_hz",
                "schedule",
                "server_loops",
                "server_model",
                "mode",
                "pipeline",
                "slo_p99",
                "search_start_hz",
                "search_growth",
                "search_steps",
                "client_processes",
                "server_processes",
                "source_addresses",
                "source_address_base",
                "server_addresses",
            ],
            ScenarioKind::Proxy => &["reply_bytes", "front", "back", "convert"],
            ScenarioKind::ConnCost => &[
                "connections",
                "step",
                "server_model",
                "client_processes",
                "server_processes",
                "source_addresses",
                "source_address_base",
                "server_addresses",
            ],
            ScenarioKind::Balance => &[
                "connections",
                "rate_per_connection_hz",
                "schedule",
                "backends",
                "clients",
                "client_rate_skew",
                "policy",
                "state",
                "state_bytes",
                "persistence",
                "synchronous_commit",
                "synchronous",
                "add_backend_at",
                "remove_backend_at",
                "on_change",
            ],
            ScenarioKind::Http => &[
                "front",
                "back",
                "tls",
                "connections",
                "streams",
                "keep_alive",
                "pool_connections",
                "cache_hit_ratio",
                "response_bytes",
                "request_headers",
                "rate",
                "back_transport",
                "relay",
                "relay_pid",
                "origin_listen",
            ],
        }
    }
}

/// Transport names of DESIGN section 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// Loopback TCP.
    Tcp,
    /// Unix domain sockets.
    Uds,
    /// A FIFO pair.
    Pipe,
    /// Shared-memory ring buffers.
    Shm,
    /// Two threads of one process (baseline).
    Inproc,
    /// No peer (the harness's floor).
    Null,
}

impl TransportKind {
    /// Every transport, in the order `ipcbench list` shows them.
    pub const ALL: [TransportKind; 6] = [
        TransportKind::Tcp,
        TransportKind::Uds,
        TransportKind::Pipe,
        TransportKind::Shm,
        TransportKind::Inproc,
        TransportKind::Null,
    ];

    /// The name used in plans and records.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Uds => "uds",
            TransportKind::Pipe => "pipe",
            TransportKind::Shm => "shm",
            TransportKind::Inproc => "inproc",
            TransportKind::Null => "null",
        }
    }

    /// The `[transport.<name>]` options, with what they accept.
    pub fn options_help(self) -> &'static [(&'static str, &'static str)] {
        match self {
            TransportKind::Tcp => &[
                ("nodelay", "true (default) or false: TCP_NODELAY"),
                ("send_buffer_bytes", "\"default\" or a size: SO_SNDBUF, read back"),
                ("recv_buffer_bytes", "\"default\" or a size: SO_RCVBUF, read back"),
            ],
            TransportKind::Uds => &[
                ("kind", "\"stream\" (default) or \"seqpacket\""),
                ("address", "\"path\" (default: a socket file) or \"abstract\""),
                ("send_buffer_bytes", "\"default\" or a size: SO_SNDBUF, read back"),
                ("recv_buffer_bytes", "\"default\" or a size: SO_RCVBUF, read back"),
            ],
            TransportKind::Pipe => &[("pipe_buffer_bytes", "\"default\" or a size: F_SETPIPE_SZ, read back")],
            TransportKind::Shm => &[
                ("ring_bytes", "size of each of the two rings (default 4MiB)"),
                ("wait", "\"spin\" (default), \"hybrid\" (spin, then futex) or \"futex\""),
            ],
            TransportKind::Inproc | TransportKind::Null => &[(
                "delay_ns",
                "busy-wait added to every sent message (default 0): injects a known slowdown",
            )],
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TransportKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        TransportKind::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<_> = TransportKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown transport `{text}`; expected one of {}", names.join(", "))
            })
    }
}

/// Unix socket kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UdsKind {
    /// SOCK_STREAM with length-prefixed frames.
    Stream,
    /// SOCK_SEQPACKET: the kernel keeps message boundaries.
    Seqpacket,
}

/// Where a Unix socket lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UdsAddress {
    /// A socket file in the run's temporary directory.
    Path,
    /// Linux's abstract namespace: no file.
    Abstract,
}

/// Shared-memory wait strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShmWait {
    /// Busy-poll.
    Spin,
    /// Spin for a bounded time, then sleep on a futex.
    Hybrid,
    /// Sleep on a futex at once.
    Futex,
}

/// Open-loop send schedules (load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Evenly spaced sends, each connection with a random phase.
    #[default]
    Uniform,
    /// Exponentially distributed gaps.
    Poisson,
}

/// How the server of `load` and `conn-cost` holds its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerModel {
    /// `server_loops` epoll loops, every connection registered with one of them.
    #[default]
    EventLoop,
    /// A blocking thread for each connection (the goroutine-per-connection model).
    ThreadPerConnection,
}

impl ServerModel {
    /// The plan's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerModel::EventLoop => "event-loop",
            ServerModel::ThreadPerConnection => "thread-per-connection",
        }
    }
}

/// How `load` paces its requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// Requests leave on a schedule, whatever the replies do (real users).
    #[default]
    Open,
    /// Each connection sends its next request when a reply arrives (wrk's way).
    Closed,
}

/// Relay conversion stages (proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Convert {
    /// Forward frames unchanged.
    None,
    /// Binary frames in, a textual header-and-body framing out, and back.
    Text,
}

/// One transport with every option decided: what the CLI builds a concrete transport from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "transport", rename_all = "snake_case")]
pub enum TransportSettings {
    /// Loopback TCP.
    Tcp {
        /// TCP_NODELAY.
        nodelay: bool,
        /// SO_SNDBUF to ask for.
        send_buffer_bytes: Option<u64>,
        /// SO_RCVBUF to ask for.
        recv_buffer_bytes: Option<u64>,
        /// The address the client listens on; `None` is loopback. Not a plan key: the runner
        /// sets it to the host end of a delayed link (`crate::netns`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        listen_ip: Option<std::net::IpAddr>,
    },
    /// Unix domain sockets.
    Uds {
        /// Stream or seqpacket.
        kind: UdsKind,
        /// Path or abstract address.
        address: UdsAddress,
        /// SO_SNDBUF to ask for.
        send_buffer_bytes: Option<u64>,
        /// SO_RCVBUF to ask for.
        recv_buffer_bytes: Option<u64>,
    },
    /// A FIFO pair.
    Pipe {
        /// F_SETPIPE_SZ to ask for.
        pipe_buffer_bytes: Option<u64>,
    },
    /// Shared-memory rings.
    Shm {
        /// Bytes per ring.
        ring_bytes: u64,
        /// Wait strategy.
        wait: ShmWait,
    },
    /// Two threads of one process.
    Inproc {
        /// Busy-wait per sent message, ns.
        delay_ns: u64,
    },
    /// No peer.
    Null {
        /// Busy-wait per sent message, ns.
        delay_ns: u64,
    },
}

impl TransportSettings {
    /// Which transport this is.
    pub fn kind(&self) -> TransportKind {
        match self {
            TransportSettings::Tcp { .. } => TransportKind::Tcp,
            TransportSettings::Uds { .. } => TransportKind::Uds,
            TransportSettings::Pipe { .. } => TransportKind::Pipe,
            TransportSettings::Shm { .. } => TransportKind::Shm,
            TransportSettings::Inproc { .. } => TransportKind::Inproc,
            TransportSettings::Null { .. } => TransportKind::Null,
        }
    }

    /// The options as a JSON object (without the `transport` tag), for records.
    pub fn options_json(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.remove("transport");
                map
            }
            _ => serde_json::Map::new(),
        }
    }

    /// A short label of the options that differ from the transport's defaults
    /// (`sndbuf=1024`, `wait=hybrid`), empty for all defaults.
    pub fn label(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        let size = |name: &str, value: Option<u64>| value.map(|v| format!("{name}={v}"));
        match *self {
            TransportSettings::Tcp {
                nodelay,
                send_buffer_bytes,
                recv_buffer_bytes,
                ..
            } => {
                if !nodelay {
                    parts.push("nagle".into());
                }
                parts.extend(size("sndbuf", send_buffer_bytes));
                parts.extend(size("rcvbuf", recv_buffer_bytes));
            }
            TransportSettings::Uds {
                kind,
                address,
                send_buffer_bytes,
                recv_buffer_bytes,
            } => {
                if kind == UdsKind::Seqpacket {
                    parts.push("seqpacket".into());
                }
                if address == UdsAddress::Abstract {
                    parts.push("abstract".into());
                }
                parts.extend(size("sndbuf", send_buffer_bytes));
                parts.extend(size("rcvbuf", recv_buffer_bytes));
            }
            TransportSettings::Pipe { pipe_buffer_bytes } => parts.extend(size("pipebuf", pipe_buffer_bytes)),
            TransportSettings::Shm { ring_bytes, wait } => {
                let wait = match wait {
                    ShmWait::Spin => "spin",
                    ShmWait::Hybrid => "hybrid",
                    ShmWait::Futex => "futex",
                };
                parts.push(format!("wait={wait}"));
                if ring_bytes != DEFAULT_RING_BYTES {
                    parts.push(format!("ring={ring_bytes}"));
                }
            }
            TransportSettings::Inproc { delay_ns } | TransportSettings::Null { delay_ns } => {
                if delay_ns > 0 {
                    parts.push(format!("delay={delay_ns}ns"));
                }
            }
        }
        parts.join(",")
    }
}

/// Default size of each shared-memory ring.
pub const DEFAULT_RING_BYTES: u64 = 4 << 20;

/// How the balancer of `balance` picks a backend (the `policy` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// L4: a connection stays on the backend chosen when it opened (the one with the fewest
    /// connections): sticky per connection.
    Connection,
    /// Every request to the next backend in turn.
    RoundRobin,
    /// A client's requests always go to `hash(client) mod n`, over any connection.
    ClientHash,
    /// Consistent hashing with bounded load (factor [`BOUNDED_LOAD_FACTOR`]): a client's ring
    /// successor, unless that backend already has more than its share of requests in flight.
    BoundedHash,
}

/// The load bound of [`Policy::BoundedHash`]: no backend takes more than this times the mean
/// of the requests in flight (rounded up).
pub const BOUNDED_LOAD_FACTOR: f64 = 1.25;

impl Policy {
    /// The name used in plans and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Connection => "connection",
            Policy::RoundRobin => "round-robin",
            Policy::ClientHash => "client-hash",
            Policy::BoundedHash => "bounded-hash",
        }
    }

    /// True when all of a client's requests reach one backend while the membership is stable
    /// (what a backend-local store needs to be correct). `connection` is sticky only per
    /// connection: a client with several connections spreads over backends.
    pub fn is_client_sticky(self) -> bool {
        matches!(self, Policy::ClientHash)
    }
}

/// What the balancer does with open connections when a backend joins or leaves (`on_change`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnChange {
    /// Existing connections stay where they are; only new ones see the new membership (a
    /// leaving backend's connections still break).
    #[default]
    Keep,
    /// Connections whose owner changed are closed, so their clients reconnect to the new owner.
    Rehash,
}

impl OnChange {
    /// The name used in plans and records.
    pub fn as_str(self) -> &'static str {
        match self {
            OnChange::Keep => "keep",
            OnChange::Rehash => "rehash",
        }
    }
}
/// An HTTP version of the `http` scenario, as plans and case ids spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpVersion {
    /// HTTP/1.1: one request in flight per connection, text headers.
    H1,
    /// HTTP/2: multiplexed streams, HPACK headers (prior knowledge on cleartext).
    H2,
}

impl HttpVersion {
    /// `h1` or `h2`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::H1 => "h1",
            HttpVersion::H2 => "h2",
        }
    }
}

impl fmt::Display for HttpVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for HttpVersion {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "h1" => Ok(HttpVersion::H1),
            "h2" => Ok(HttpVersion::H2),
            other => Err(format!("unknown protocol `{other}`; expected `h1` or `h2`")),
        }
    }
}

/// The relay of an `http` case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HttpRelay {
    /// ipcbench's own relay (`ipcbench_http::Relay`), a peer process on the client's core.
    BuiltIn,
    /// nginx started by the harness with a generated config (`relay = "nginx"`).
    Nginx,
    /// A relay the user runs (`relay = "127.0.0.1:PORT"`), proxying to `origin_listen`.
    External {
        /// Where the relay listens.
        address: String,
        /// Its (master) process, whose CPU and its children's is the relay's CPU.
        pid: Option<u32>,
        /// Where ipcbench's origin listens for the relay's upstream connections.
        origin_listen: String,
    },
}

impl HttpRelay {
    /// `builtin`, `nginx` or `external`.
    pub fn label(&self) -> &'static str {
        match self {
            HttpRelay::BuiltIn => "builtin",
            HttpRelay::Nginx => "nginx",
            HttpRelay::External { .. } => "external",
        }
    }
}

/// Everything an `http` case decides besides the response size (`message_bytes`) and the
/// connections (`connections`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpCase {
    /// The protocol from the client to the relay (and on the direct path to the origin).
    pub front: HttpVersion,
    /// The protocol from the relay to the origin.
    pub back: HttpVersion,
    /// TLS on the front (and on the direct path); the back stays cleartext.
    pub tls: bool,
    /// Concurrent HTTP/2 streams per connection (HTTP/1.1: always 1).
    pub streams: u32,
    /// Reuse connections; false opens (and with `tls` handshakes) one per request.
    pub keep_alive: bool,
    /// The relay's upstream connections (h1: the pool's bound; h2: multiplexed connections).
    pub pool_connections: u32,
    /// The share of requests for hot paths a caching relay answers from memory.
    pub cache_hit_ratio: f64,
    /// Extra request headers per request.
    pub request_headers: u32,
    /// Bytes per extra header value.
    pub header_value_bytes: u32,
    /// Requests per second per connection; `None` is closed loop (`rate = "max"`).
    pub rate_hz: Option<f64>,
    /// The relay reaches the origin over a Unix socket instead of loopback TCP.
    pub back_uds: bool,
    /// Which relay.
    pub relay: HttpRelay,
}

impl HttpCase {
    /// The case id's dimensions of this case (see `ipcbench_record::CaseId`).
    pub fn dimensions(&self) -> Vec<String> {
        let mut dims = vec![
            format!("front={}", self.front),
            format!("back={}", self.back),
            format!("hit{}", self.cache_hit_ratio),
        ];
        if self.front == HttpVersion::H2 {
            dims.push(format!("streams{}", self.streams));
        }
        dims.push(format!("pool{}", self.pool_connections));
        dims.push(format!("hdr{}x{}", self.request_headers, self.header_value_bytes));
        if self.rate_hz.is_none() {
            dims.push("closed".into());
        }
        if self.tls {
            dims.push("tls".into());
        }
        if !self.keep_alive {
            dims.push("keepalive=off".into());
        }
        if self.relay != HttpRelay::BuiltIn {
            dims.push(format!("relay={}", self.relay.label()));
        }
        dims
    }
}

/// Scenarios whose server side an agent (`ipcbench serve`) can run: the plan key `peer`.
pub const REMOTE_SCENARIOS: [ScenarioKind; 4] = [
    ScenarioKind::Pingpong,
    ScenarioKind::Stream,
    ScenarioKind::Rpc,
    ScenarioKind::Load,
];

/// Parses an agent address (`peer = "IP:PORT"`): a dialable IP and port.
///
/// # Errors
/// What is wrong, and what is allowed.
pub fn agent_address(text: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = text.parse().map_err(|_| {
        format!(
            "`{text}` is not IP:PORT (for example 192.0.2.10:7100 or [2001:db8::1]:7100; host names are not resolved)"
        )
    })?;
    if addr.port() == 0 {
        return Err(format!(
            "`{text}`: port 0 cannot be dialled; give the agent's --listen port"
        ));
    }
    if addr.ip().is_unspecified() {
        return Err(format!("`{text}`: an unspecified IP (0.0.0.0 or ::) cannot be dialled"));
    }
    Ok(addr)
}
