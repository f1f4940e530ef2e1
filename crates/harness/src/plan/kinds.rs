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
}

impl ScenarioKind {
    /// Every scenario, in the order `ipcbench list` shows them.
    pub const ALL: [ScenarioKind; 6] = [
        ScenarioKind::Pingpong,
        ScenarioKind::Stream,
        ScenarioKind::Rpc,
        ScenarioKind::Load,
        ScenarioKind::Proxy,
        ScenarioKind::ConnCost,
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
            ScenarioKind::Load => "connections x rate_per_connection_hz open-loop: corrected and raw latency",
            ScenarioKind::Proxy => "client -> relay -> server (front/back transports, convert): cost of a hop",
            ScenarioKind::ConnCost => "idle connections opened in steps: server bytes per connection",
        }
    }

    /// The scenario-specific keys this scenario accepts.
    pub(crate) fn keys(self) -> &'static [&'static str] {
        match self {
            ScenarioKind::Pingpong => &["reply_bytes"],
            ScenarioKind::Stream => &["total_bytes"],
            ScenarioKind::Rpc => &["reply_bytes", "window", "delay_ms", "rate_mbit"],
            ScenarioKind::Load => &["connections", "rate_per_connection_hz", "schedule", "server_loops"],
            ScenarioKind::Proxy => &["reply_bytes", "front", "back", "convert"],
            ScenarioKind::ConnCost => &["connections", "step"],
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
