//! Run plans: the TOML format, validation with `file:line:column` errors, and expansion of a
//! plan into its case matrix.
//!
//! A plan file names scenarios, each with a list of transports and sizes; transport options
//! live in `[transport.<name>]` tables, where any option may be a list (a case dimension, e.g.
//! `send_buffer_bytes = ["default", 1024]`). Unknown keys are errors. [`Plan::parse`] returns
//! the expanded [`Plan`]; every error it returns is a [`ConfigError`] naming the file, line and
//! column, what is wrong, and what is allowed.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::Spanned;

/// The built-in default plan, the same text as `bench-configs/default.toml`.
pub const DEFAULT_PLAN: &str = include_str!("../../../bench-configs/default.toml");

/// A bad plan: where, what, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File name (or `built-in default`, or `--flag` for a command-line override).
    pub source_name: String,
    /// 1-based line and column, when the error has a place in the file.
    pub position: Option<(usize, usize)>,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.source_name, self.message),
            None => write!(f, "{}: {}", self.source_name, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A message size, a buffer size, or a byte total: an integer or a string like `"4KiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

const SIZE_HELP: &str = "a number of bytes, optionally with a unit: B, KiB, MiB, GiB, KB, MB, GB (e.g. 64, \"4KiB\")";

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit() && c != '_')
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: u64 = number
            .replace('_', "")
            .parse()
            .map_err(|_| format!("bad size `{text}`: expected {SIZE_HELP}"))?;
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => {
                return Err(format!(
                    "bad size `{text}`: unknown unit `{}`; expected {SIZE_HELP}",
                    unit.trim()
                ));
            }
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| format!("size `{text}` is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SIZE_HELP)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("bad size {v}: sizes cannot be negative")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A buffer size option: `"default"` (leave the kernel's) or a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BufferSize {
    /// The kernel's default.
    Default,
    /// This many bytes, asked of the kernel (which may round or double it).
    Bytes(u64),
}

impl BufferSize {
    /// The size asked for, if any.
    pub fn bytes(self) -> Option<u64> {
        match self {
            BufferSize::Default => None,
            BufferSize::Bytes(n) => Some(n),
        }
    }
}

impl<'de> Deserialize<'de> for BufferSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BufferVisitor;
        impl Visitor<'_> for BufferVisitor {
            type Value = BufferSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "\"default\" or {SIZE_HELP}")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<BufferSize, E> {
                ByteSize::deserialize(de::value::I64Deserializer::<E>::new(v)).map(|b| BufferSize::Bytes(b.0))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<BufferSize, E> {
                Ok(BufferSize::Bytes(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<BufferSize, E> {
                if v == "default" {
                    return Ok(BufferSize::Default);
                }
                v.parse::<ByteSize>()
                    .map(|b| BufferSize::Bytes(b.0))
                    .map_err(|e| E::custom(format!("{e}, or \"default\"")))
            }
        }
        deserializer.deserialize_any(BufferVisitor)
    }
}

/// A phase length: a time (`"200ms"`, `"1s"`) or a message count (`100000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Amount {
    /// Run for this long.
    Time(#[serde(with = "duration_ns")] Duration),
    /// Run this many messages (round trips for request/reply scenarios).
    Messages(u64),
}

mod duration_ns {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_nanos() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_nanos)
    }
}

/// A duration written as text in a plan (`"200ms"`, `"1s"`, `"2m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationText(pub Duration);

impl Serialize for DurationText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map(DurationText).map_err(|e| {
            de::Error::custom(format!(
                "bad duration `{text}`: {e}; expected e.g. \"200ms\", \"1s\", \"2m\""
            ))
        })
    }
}

/// `warmup` accepts a duration or a message count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AmountText(Amount);

impl Serialize for AmountText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Amount::Time(d) => DurationText(d).serialize(s),
            Amount::Messages(n) => s.serialize_u64(n),
        }
    }
}

impl<'de> Deserialize<'de> for AmountText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AmountVisitor;
        impl Visitor<'_> for AmountVisitor {
            type Value = AmountText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"200ms\" or a message count like 1000")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AmountText, E> {
                u64::try_from(v)
                    .map(|n| AmountText(Amount::Messages(n)))
                    .map_err(|_| E::custom("a message count cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AmountText, E> {
                DurationText::deserialize(de::value::StrDeserializer::<E>::new(v))
                    .map(|d| AmountText(Amount::Time(d.0)))
            }
        }
        deserializer.deserialize_any(AmountVisitor)
    }
}

/// One value or a list of values; a list makes the key a case dimension.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// Several values, one case each.
    Many(Vec<T>),
}

/// Deserializes a single value or a list, keeping the element type's own error messages
/// (an untagged enum would replace them with "data did not match any variant").
impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::IntoDeserializer;
        use serde::de::value::{MapAccessDeserializer, StrDeserializer};
        struct OneOrManyVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(v) = seq.next_element()? {
                    values.push(v);
                }
                Ok(OneOrMany::Many(values))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(OneOrMany::One)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(StrDeserializer::<E>::new(v)).map(OneOrMany::One)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(OneOrMany::One)
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor(std::marker::PhantomData))
    }
}

impl<T: Clone> OneOrMany<T> {
    /// The values as a list.
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

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
    fn keys(self) -> &'static [&'static str] {
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpTable {
    nodelay: Option<OneOrMany<bool>>,
    send_buffer_bytes: Option<OneOrMany<BufferSize>>,
    recv_buffer_bytes: Option<OneOrMany<BufferSize>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UdsTable {
    kind: Option<OneOrMany<UdsKind>>,
    address: Option<OneOrMany<UdsAddress>>,
    send_buffer_bytes: Option<OneOrMany<BufferSize>>,
    recv_buffer_bytes: Option<OneOrMany<BufferSize>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PipeTable {
    pipe_buffer_bytes: Option<OneOrMany<BufferSize>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShmTable {
    ring_bytes: Option<OneOrMany<ByteSize>>,
    wait: Option<OneOrMany<ShmWait>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DelayTable {
    delay_ns: Option<OneOrMany<u64>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransportTables {
    tcp: Option<TcpTable>,
    uds: Option<UdsTable>,
    pipe: Option<PipeTable>,
    shm: Option<ShmTable>,
    inproc: Option<DelayTable>,
    null: Option<DelayTable>,
}

fn list_or<T: Clone>(value: &Option<OneOrMany<T>>, default: T) -> Vec<T> {
    value.as_ref().map(OneOrMany::to_vec).unwrap_or_else(|| vec![default])
}

impl TransportTables {
    /// Every combination of the options given for `kind`.
    fn settings(&self, kind: TransportKind) -> Vec<TransportSettings> {
        let mut out = Vec::new();
        match kind {
            TransportKind::Tcp => {
                let t = self.tcp.clone().unwrap_or_default();
                for nodelay in list_or(&t.nodelay, true) {
                    for send in list_or(&t.send_buffer_bytes, BufferSize::Default) {
                        for recv in list_or(&t.recv_buffer_bytes, BufferSize::Default) {
                            out.push(TransportSettings::Tcp {
                                nodelay,
                                send_buffer_bytes: send.bytes(),
                                recv_buffer_bytes: recv.bytes(),
                                listen_ip: None,
                            });
                        }
                    }
                }
            }
            TransportKind::Uds => {
                let t = self.uds.clone().unwrap_or_default();
                for kind in list_or(&t.kind, UdsKind::Stream) {
                    for address in list_or(&t.address, UdsAddress::Path) {
                        for send in list_or(&t.send_buffer_bytes, BufferSize::Default) {
                            for recv in list_or(&t.recv_buffer_bytes, BufferSize::Default) {
                                out.push(TransportSettings::Uds {
                                    kind,
                                    address,
                                    send_buffer_bytes: send.bytes(),
                                    recv_buffer_bytes: recv.bytes(),
                                });
                            }
                        }
                    }
                }
            }
            TransportKind::Pipe => {
                let t = self.pipe.clone().unwrap_or_default();
                for size in list_or(&t.pipe_buffer_bytes, BufferSize::Default) {
                    out.push(TransportSettings::Pipe {
                        pipe_buffer_bytes: size.bytes(),
                    });
                }
            }
            TransportKind::Shm => {
                let t = self.shm.clone().unwrap_or_default();
                for ring in list_or(&t.ring_bytes, ByteSize(DEFAULT_RING_BYTES)) {
                    for wait in list_or(&t.wait, ShmWait::Spin) {
                        out.push(TransportSettings::Shm {
                            ring_bytes: ring.0,
                            wait,
                        });
                    }
                }
            }
            TransportKind::Inproc => {
                let t = self.inproc.clone().unwrap_or_default();
                out.extend(
                    list_or(&t.delay_ns, 0)
                        .into_iter()
                        .map(|delay_ns| TransportSettings::Inproc { delay_ns }),
                );
            }
            TransportKind::Null => {
                let t = self.null.clone().unwrap_or_default();
                out.extend(
                    list_or(&t.delay_ns, 0)
                        .into_iter()
                        .map(|delay_ns| TransportSettings::Null { delay_ns }),
                );
            }
        }
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioSpec {
    kind: ScenarioKind,
    // A proxy scenario names its transports in `front` and `back` instead.
    #[serde(default)]
    transports: Vec<TransportKind>,
    message_bytes: OneOrMany<ByteSize>,
    reply_bytes: Option<ByteSize>,
    total_bytes: Option<ByteSize>,
    window: Option<OneOrMany<u64>>,
    delay_ms: Option<OneOrMany<f64>>,
    rate_mbit: Option<f64>,
    connections: Option<OneOrMany<u64>>,
    rate_per_connection_hz: Option<OneOrMany<f64>>,
    schedule: Option<Schedule>,
    server_loops: Option<u32>,
    front: Option<Vec<TransportKind>>,
    back: Option<Vec<TransportKind>>,
    convert: Option<OneOrMany<Convert>>,
    step: Option<u64>,
    repetitions: Option<u32>,
    warmup: Option<AmountText>,
    duration: Option<DurationText>,
    messages: Option<u64>,
    cores: Option<toml::Value>,
}

impl ScenarioSpec {
    fn present_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        let mut note = |present: bool, key: &'static str| {
            if present {
                keys.push(key);
            }
        };
        note(self.reply_bytes.is_some(), "reply_bytes");
        note(self.total_bytes.is_some(), "total_bytes");
        note(self.window.is_some(), "window");
        note(self.delay_ms.is_some(), "delay_ms");
        note(self.rate_mbit.is_some(), "rate_mbit");
        note(self.connections.is_some(), "connections");
        note(self.rate_per_connection_hz.is_some(), "rate_per_connection_hz");
        note(self.schedule.is_some(), "schedule");
        note(self.server_loops.is_some(), "server_loops");
        note(self.front.is_some(), "front");
        note(self.back.is_some(), "back");
        note(self.convert.is_some(), "convert");
        note(self.step.is_some(), "step");
        keys
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    name: String,
    repetitions: Option<u32>,
    warmup: Option<AmountText>,
    duration: Option<DurationText>,
    messages: Option<u64>,
    timeout: Option<DurationText>,
    cores: Option<toml::Value>,
    #[serde(default)]
    scenario: Vec<Spanned<ScenarioSpec>>,
    #[serde(default)]
    transport: TransportTables,
    /// Overrides of the regression gate's significance level and thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gate: Option<ipcbench_gate::GateTable>,
}

/// Client and server cores of one placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorePair {
    /// The client's (measuring side's) core.
    pub client: usize,
    /// The server's (peer's) core.
    pub server: usize,
}

impl CorePair {
    /// `cross-core` or `same-core`.
    pub fn label(self) -> &'static str {
        if self.client == self.server {
            "same-core"
        } else {
            "cross-core"
        }
    }
}

/// One case of the expanded plan: everything a trial needs, sent to the peer process too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Position in the plan.
    pub index: usize,
    /// Stable identifier (see [`Case::make_id`]).
    pub id: String,
    /// The scenario.
    pub scenario: ScenarioKind,
    /// The transport (the front transport for `proxy`).
    pub transport: TransportSettings,
    /// The back transport (`proxy` only).
    pub back_transport: Option<TransportSettings>,
    /// Request size.
    pub message_bytes: u64,
    /// Reply size (request/reply scenarios; equals `message_bytes` unless set).
    pub reply_bytes: u64,
    /// Bytes per trial (stream).
    pub total_bytes: Option<u64>,
    /// Requests in flight (rpc).
    pub window: Option<u64>,
    /// Added one-way delay (rpc).
    pub delay_ms: Option<f64>,
    /// Link rate limit (rpc).
    pub rate_mbit: Option<f64>,
    /// Connections (load, conn-cost).
    pub connections: Option<u64>,
    /// Send rate per connection (load).
    pub rate_per_connection_hz: Option<f64>,
    /// Open-loop schedule (load).
    pub schedule: Schedule,
    /// Server event loops (load).
    pub server_loops: u32,
    /// Relay conversion (proxy).
    pub convert: Convert,
    /// Connection step (conn-cost).
    pub step: Option<u64>,
    /// Core placement.
    pub placement: CorePair,
    /// Fresh launches.
    pub repetitions: u32,
    /// Discarded warm-up.
    pub warmup: Amount,
    /// The measured phase.
    pub measure: Amount,
    /// A trial that takes longer than this is killed and fails.
    #[serde(with = "duration_ns")]
    pub timeout: Duration,
}

impl Case {
    /// The identifier runs are compared by:
    /// `scenario/transport[options]/size[/extra dimensions]/placement`.
    pub fn make_id(&self) -> String {
        let mut id = format!("{}/{}", self.scenario.as_str(), self.transport.kind());
        if let Some(back) = &self.back_transport {
            id.push_str(&format!("->{}", back.kind()));
        }
        let mut label = self.transport.label();
        // A proxy's back options join the front's, prefixed, so every pair has its own id.
        if let Some(back) = &self.back_transport {
            for option in back.label().split(',').filter(|o| !o.is_empty()) {
                if !label.is_empty() {
                    label.push(',');
                }
                label.push_str("back.");
                label.push_str(option);
            }
        }
        if !label.is_empty() {
            id.push_str(&format!("[{label}]"));
        }
        id.push_str(&format!("/{}B", self.message_bytes));
        if self.reply_bytes != self.message_bytes {
            id.push_str(&format!(":{}B", self.reply_bytes));
        }
        if let Some(w) = self.window {
            id.push_str(&format!("/w{w}"));
        }
        if let Some(d) = self.delay_ms {
            id.push_str(&format!("/d{d}ms"));
        }
        if let Some(c) = self.connections {
            id.push_str(&format!("/c{c}"));
        }
        if let Some(r) = self.rate_per_connection_hz {
            id.push_str(&format!("/r{r}Hz"));
        }
        if self.convert == Convert::Text {
            id.push_str("/text");
        }
        if self.transport.kind() == TransportKind::Null {
            id.push_str(&format!("/c{}", self.placement.client));
        } else {
            id.push_str(&format!("/c{}s{}", self.placement.client, self.placement.server));
        }
        id
    }

    /// True when the peer busy-polls and both sides share one core.
    pub fn same_core(&self) -> bool {
        self.placement.client == self.placement.server
    }
}

/// A validated, expanded plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The plan's name.
    pub name: String,
    /// Every case, in plan order.
    pub cases: Vec<Case>,
    /// The plan as parsed, after overrides.
    pub config_json: serde_json::Value,
    /// Where it came from.
    pub source_name: String,
    /// SHA-256 of the plan text, hex.
    pub sha256: String,
    /// The `[gate]` table: the regression gate's overrides, when the plan has one.
    pub gate: Option<ipcbench_gate::GateTable>,
}

/// Command-line overrides of single keys.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--transports`: replaces every scenario's `transports`.
    pub transports: Option<Vec<TransportKind>>,
    /// `--sizes`: replaces every scenario's `message_bytes`.
    pub sizes: Option<Vec<u64>>,
    /// `--repetitions`.
    pub repetitions: Option<u32>,
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--warmup`.
    pub warmup: Option<Duration>,
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

struct Source<'a> {
    name: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            source_name: self.name.to_owned(),
            position: span.map(|s| line_column(self.text, s.start)),
            message: message.into(),
        }
    }
}

/// Reads a `cores` value: `[client, server]` or a list of such pairs.
fn parse_cores(value: &toml::Value, n_cores: usize) -> Result<Vec<CorePair>, String> {
    const HELP: &str = "expected [client, server] or a list of pairs like [[0, 1], [0, 0]]";
    let as_pair = |v: &toml::Value| -> Result<CorePair, String> {
        let items = v.as_array().ok_or(HELP)?;
        if items.len() != 2 {
            return Err(format!(
                "a core pair has 2 entries, this one has {}; {HELP}",
                items.len()
            ));
        }
        let mut cores = [0usize; 2];
        for (slot, item) in cores.iter_mut().zip(items) {
            let n = item.as_integer().ok_or(HELP)?;
            if n < 0 || n as usize >= n_cores {
                return Err(format!(
                    "core {n} does not exist: this machine has cores 0..={}",
                    n_cores - 1
                ));
            }
            *slot = n as usize;
        }
        Ok(CorePair {
            client: cores[0],
            server: cores[1],
        })
    };
    let items = value.as_array().ok_or(HELP)?;
    if items.iter().all(|v| v.is_integer()) {
        return Ok(vec![as_pair(value)?]);
    }
    let pairs = items.iter().map(as_pair).collect::<Result<Vec<_>, _>>()?;
    if pairs.is_empty() {
        return Err(format!("no placement given; {HELP}"));
    }
    Ok(pairs)
}

/// The placements used when a plan names none: cross-core and same-core, because on a VM a
/// cross-core wake-up costs several times a same-core one.
pub fn default_placements(n_cores: usize) -> Vec<CorePair> {
    if n_cores >= 2 {
        vec![CorePair { client: 0, server: 1 }, CorePair { client: 0, server: 0 }]
    } else {
        vec![CorePair { client: 0, server: 0 }]
    }
}

impl Plan {
    /// Parses, validates and expands a plan; `n_cores` bounds the core numbers.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, line and column.
    pub fn parse(source_name: &str, text: &str, overrides: &Overrides, n_cores: usize) -> Result<Plan, ConfigError> {
        let source = Source {
            name: source_name,
            text,
        };
        let mut file: PlanFile = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().replace('\n', " ");
            source.error(e.span(), message)
        })?;
        let span_of = |key: &str| -> Option<Range<usize>> {
            // Best effort: the first `key =` at the start of a line.
            text.match_indices(key)
                .find(|(i, _)| text[..*i].rsplit('\n').next().is_some_and(|l| l.trim().is_empty()))
                .map(|(i, _)| i..i + key.len())
        };
        if file.name.trim().is_empty()
            || !file
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(source.error(
                span_of("name"),
                format!("bad name `{}`: use letters, digits, `-`, `_`, `.`", file.name),
            ));
        }
        if file.scenario.is_empty() {
            return Err(source.error(None, "the plan has no [[scenario]]; add at least one"));
        }
        if let Some(gate) = &file.gate
            && let Err(message) = gate.validate()
        {
            return Err(source.error(span_of("[gate]"), format!("[gate]: {message}")));
        }
        if file.duration.is_some() && file.messages.is_some() {
            return Err(source.error(span_of("messages"), "give either `duration` or `messages`, not both"));
        }
        if let Some(r) = overrides.repetitions {
            file.repetitions = Some(r);
        }
        if let Some(d) = overrides.duration {
            file.duration = Some(DurationText(d));
            file.messages = None;
        }
        if let Some(w) = overrides.warmup {
            file.warmup = Some(AmountText(Amount::Time(w)));
        }
        let repetitions = file.repetitions.unwrap_or(3);
        if repetitions == 0 {
            return Err(source.error(span_of("repetitions"), "`repetitions` must be at least 1"));
        }
        let default_warmup = file
            .warmup
            .map(|a| a.0)
            .unwrap_or(Amount::Time(Duration::from_millis(200)));
        let default_measure = match (file.messages, file.duration) {
            (Some(n), _) => Amount::Messages(n),
            (None, Some(d)) => Amount::Time(d.0),
            (None, None) => Amount::Time(Duration::from_secs(1)),
        };
        let default_placements = match &file.cores {
            Some(value) => {
                parse_cores(value, n_cores).map_err(|m| source.error(span_of("cores"), format!("`cores`: {m}")))?
            }
            None => default_placements(n_cores),
        };

        let mut cases = Vec::new();
        for spanned in &mut file.scenario {
            let span = spanned.span();
            let spec = spanned.get_mut();
            if let Some(t) = &overrides.transports {
                spec.transports = t.clone();
            }
            if let Some(s) = &overrides.sizes {
                spec.message_bytes = OneOrMany::Many(s.iter().map(|&b| ByteSize(b)).collect());
            }
            let kind = spec.kind;
            let allowed = kind.keys();
            if let Some(bad) = spec.present_keys().into_iter().find(|k| !allowed.contains(k)) {
                return Err(source.error(
                    Some(span.clone()),
                    format!(
                        "`{bad}` does not apply to scenario `{}`; its own keys are: {}",
                        kind.as_str(),
                        allowed.join(", ")
                    ),
                ));
            }
            if spec.transports.is_empty() && kind != ScenarioKind::Proxy {
                return Err(source.error(Some(span.clone()), "`transports` is empty; name at least one transport"));
            }
            if spec.duration.is_some() && spec.messages.is_some() {
                return Err(source.error(Some(span.clone()), "give either `duration` or `messages`, not both"));
            }
            let sizes = spec.message_bytes.to_vec();
            if sizes.is_empty() {
                return Err(source.error(Some(span.clone()), "`message_bytes` is empty"));
            }
            if let Some(&ByteSize(big)) = sizes.iter().find(|s| s.0 > u32::MAX as u64) {
                return Err(source.error(
                    Some(span.clone()),
                    format!("message of {big} bytes is above the 4 GiB frame limit"),
                ));
            }
            let placements = match &spec.cores {
                Some(value) => parse_cores(value, n_cores)
                    .map_err(|m| source.error(Some(span.clone()), format!("`cores`: {m}")))?,
                None => default_placements.clone(),
            };
            let warmup = spec.warmup.map(|a| a.0).unwrap_or(default_warmup);
            let measure = match (spec.messages, spec.duration, overrides.duration) {
                (_, _, Some(d)) => Amount::Time(d),
                (Some(n), _, None) => Amount::Messages(n),
                (None, Some(d), None) => Amount::Time(d.0),
                (None, None, None) => default_measure,
            };
            let repetitions = overrides.repetitions.or(spec.repetitions).unwrap_or(repetitions);
            if repetitions == 0 {
                return Err(source.error(Some(span.clone()), "`repetitions` must be at least 1"));
            }
            let timeout = file
                .timeout
                .map(|d| d.0)
                .unwrap_or_else(|| default_timeout(warmup, measure) + slow_phase_allowance(spec, warmup, measure));

            let transports: Vec<(TransportSettings, Option<TransportSettings>)> = if kind == ScenarioKind::Proxy {
                let fronts = spec.front.clone().unwrap_or_default();
                let backs = spec.back.clone().unwrap_or_default();
                if fronts.is_empty() || backs.is_empty() || fronts.len() != backs.len() {
                    return Err(source.error(
                        Some(span.clone()),
                        "proxy needs `front` and `back` lists of equal length (front[i] -> relay -> back[i])",
                    ));
                }
                fronts
                    .iter()
                    .zip(&backs)
                    .flat_map(|(f, b)| {
                        let backs = file.transport.settings(*b);
                        file.transport
                            .settings(*f)
                            .into_iter()
                            .flat_map(move |fs| backs.clone().into_iter().map(move |bs| (fs.clone(), Some(bs))))
                    })
                    .collect()
            } else {
                spec.transports
                    .iter()
                    .flat_map(|k| file.transport.settings(*k))
                    .map(|s| (s, None))
                    .collect()
            };
            let windows: Vec<Option<u64>> = spec
                .window
                .as_ref()
                .map(|w| w.to_vec().into_iter().map(Some).collect())
                .unwrap_or(vec![None]);
            let delays: Vec<Option<f64>> = spec
                .delay_ms
                .as_ref()
                .map(|w| w.to_vec().into_iter().map(Some).collect())
                .unwrap_or(vec![None]);
            let connections: Vec<Option<u64>> = spec
                .connections
                .as_ref()
                .map(|w| w.to_vec().into_iter().map(Some).collect())
                .unwrap_or(vec![None]);
            let rates: Vec<Option<f64>> = spec
                .rate_per_connection_hz
                .as_ref()
                .map(|w| w.to_vec().into_iter().map(Some).collect())
                .unwrap_or(vec![None]);
            let converts = spec
                .convert
                .as_ref()
                .map(OneOrMany::to_vec)
                .unwrap_or(vec![Convert::None]);
            if windows.contains(&Some(0)) {
                return Err(source.error(Some(span.clone()), "`window` must be at least 1"));
            }
            if delays.iter().flatten().any(|d| !(0.0..=10_000.0).contains(d)) {
                return Err(source.error(Some(span.clone()), "`delay_ms` must be between 0 and 10000"));
            }
            if spec.rate_mbit.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                return Err(source.error(Some(span.clone()), "`rate_mbit` must be a positive number"));
            }
            if connections.contains(&Some(0)) {
                return Err(source.error(Some(span.clone()), "`connections` must be at least 1"));
            }
            if spec.step == Some(0) {
                return Err(source.error(Some(span.clone()), "`step` must be at least 1"));
            }
            if rates.iter().flatten().any(|r| !(*r > 0.0 && r.is_finite())) {
                return Err(source.error(Some(span.clone()), "`rate_per_connection_hz` must be a positive number"));
            }

            for (transport, back_transport) in &transports {
                for &ByteSize(message_bytes) in &sizes {
                    for &window in &windows {
                        for &delay_ms in &delays {
                            for &conns in &connections {
                                for &rate in &rates {
                                    for &convert in &converts {
                                        for &placement in &placements {
                                            let mut case = Case {
                                                index: cases.len(),
                                                id: String::new(),
                                                scenario: kind,
                                                transport: transport.clone(),
                                                back_transport: back_transport.clone(),
                                                message_bytes,
                                                reply_bytes: spec.reply_bytes.map(|b| b.0).unwrap_or(message_bytes),
                                                total_bytes: spec.total_bytes.map(|b| b.0),
                                                window,
                                                delay_ms,
                                                rate_mbit: spec.rate_mbit,
                                                connections: conns,
                                                rate_per_connection_hz: rate,
                                                schedule: spec.schedule.unwrap_or_default(),
                                                server_loops: spec.server_loops.unwrap_or(1),
                                                convert,
                                                step: spec.step,
                                                placement,
                                                repetitions,
                                                warmup,
                                                measure,
                                                timeout,
                                            };
                                            // Without a peer, placements differ only in the client's core.
                                            if transport.kind() == TransportKind::Null {
                                                case.placement.server = case.placement.client;
                                            }
                                            case.id = case.make_id();
                                            if !cases.iter().any(|c: &Case| c.id == case.id) {
                                                cases.push(case);
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let config_json = serde_json::to_value(&file).unwrap_or(serde_json::Value::Null);
        let sha256 = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Plan {
            name: file.name,
            cases,
            config_json,
            source_name: source_name.to_owned(),
            sha256,
            gate: file.gate,
        })
    }

    /// A rough estimate of the run time: warm-up plus measured phase plus launch cost per trial.
    pub fn estimated_duration(&self) -> Duration {
        self.cases.iter().map(|c| estimate_trial(c) * c.repetitions).sum()
    }
}

/// What one trial of `case` is expected to take.
pub fn estimate_trial(case: &Case) -> Duration {
    // A message count at a delay takes at least a round trip per window of messages.
    let round_trip = Duration::from_secs_f64(2.0 * case.delay_ms.unwrap_or(0.0).max(0.0) / 1e3);
    let window = case.window.unwrap_or(1).max(1);
    let phase = |amount: Amount| match amount {
        Amount::Time(d) => d,
        // Assume about 20 µs per message when only a count is given.
        Amount::Messages(n) => {
            Duration::from_micros(20 * n) + round_trip * u32::try_from(n / window).unwrap_or(u32::MAX)
        }
    };
    let measured = match case.total_bytes {
        // Stream trials run until `total_bytes` moved: assume 1 GB/s, and 1 µs per message.
        Some(total) if case.scenario == ScenarioKind::Stream => {
            Duration::from_secs_f64(total as f64 / 1e9 + total.div_ceil(case.message_bytes.max(1)) as f64 * 1e-6)
        }
        _ => phase(case.measure),
    };
    let mut estimate = phase(case.warmup) + measured + Duration::from_millis(30);
    if case.delay_ms.is_some() || case.rate_mbit.is_some() {
        // Making and removing the namespace, the veth pair and the qdiscs.
        estimate += Duration::from_millis(100);
    }
    estimate
}

/// Extra time a trial may take beyond [`default_timeout`]: moving `total_bytes` at a slow
/// 20 MB/s, and message counts at a round trip per message over a delayed link.
fn slow_phase_allowance(spec: &ScenarioSpec, warmup: Amount, measure: Amount) -> Duration {
    let mut allowance = Duration::ZERO;
    if let Some(total) = spec.total_bytes {
        allowance += Duration::from_secs_f64(total.0 as f64 / 20e6);
    }
    let max_delay_ms = spec
        .delay_ms
        .as_ref()
        .map(|d| d.to_vec().into_iter().fold(0.0f64, f64::max))
        .unwrap_or(0.0);
    let messages = |amount: Amount| match amount {
        Amount::Messages(n) => n,
        Amount::Time(_) => 0,
    };
    let n = messages(warmup).saturating_add(messages(measure));
    allowance + Duration::from_secs_f64((2.0 * max_delay_ms / 1e3 * n as f64).min(86_400.0))
}

fn default_timeout(warmup: Amount, measure: Amount) -> Duration {
    let phase = |amount: Amount| match amount {
        Amount::Time(d) => d,
        Amount::Messages(n) => Duration::from_millis(n / 10),
    };
    phase(warmup) + phase(measure) + Duration::from_secs(30)
}

#[cfg(test)]
mod tests;
