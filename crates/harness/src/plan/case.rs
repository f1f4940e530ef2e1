//! One case of the expanded plan ([`Case`]) and its placement ([`CorePair`]); the case id is
//! built here as an [`ipcbench_record::CaseId`].

use std::time::Duration;

use ipcbench_record::CaseId;
use serde::{Deserialize, Serialize};

use super::kinds::{
    Convert, HttpCase, LoadMode, OnChange, Policy, ScenarioKind, Schedule, ServerModel, TransportKind,
    TransportSettings,
};
use super::units::{Amount, duration_ns};

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
    /// Everything else an `http` case decides (`message_bytes` is its response size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCase>,
    /// Alternate the measured phase with the transport's bare loop (pingpong, stream; plan
    /// key `bare`, default true): the trial then records `bare_p50_ns` or `bare_bytes_per_s`.
    #[serde(default)]
    pub bare: bool,
    /// How much of each message the receiver checks (plan key `verify`; pingpong, stream and
    /// rpc; default `sampled`; every other scenario checks in full).
    #[serde(default)]
    pub verify: ipcbench_core::payload::Verify,
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
    /// The balancer, backends and state of a `balance` case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<BalanceOptions>,
    /// Processes, addresses, server model, mode and capacity search of `load` and
    /// `conn-cost` (absent in older records: the defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetOptions>,
    /// The agent (`ipcbench serve`, `IP:PORT`) that runs the server side (plan key `peer`);
    /// `None` runs it on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<std::net::SocketAddr>,
    /// The agents (`IP:PORT`) that run the client fleet of `load` (plan key `generators`), one
    /// generator process each; empty runs the generators on this machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generators: Vec<std::net::SocketAddr>,
}

/// What `load` and `conn-cost` add to [`Case`]: how the connections are spread over processes
/// and addresses, how the server holds them, and how `load` paces its requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetOptions {
    /// Generator processes (0: as many as the open-file limit needs).
    pub client_processes: u32,
    /// Server processes (0: as many as the open-file limit needs).
    pub server_processes: u32,
    /// Client source addresses (0: the kernel's choice, 127.0.0.1); connection `i` binds
    /// address `i mod n`, counted up from `source_address_base`.
    pub source_addresses: u32,
    /// The first source address.
    pub source_address_base: std::net::Ipv4Addr,
    /// Listening addresses per server process (127.0.0.1, 127.0.0.2, ...), each its own
    /// destination for the ephemeral port range.
    pub server_addresses: u32,
    /// How the server holds connections.
    pub server_model: ServerModel,
    /// Open loop (a schedule) or closed loop (the next request on each reply).
    pub mode: LoadMode,
    /// Requests in flight per connection in the closed loop.
    pub pipeline: u32,
    /// Search for the highest rate the server holds instead of one fixed rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchOptions>,
}

/// The first source address when the plan names none: outside 127.0.0.0/24, where servers listen.
pub const DEFAULT_SOURCE_BASE: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 1, 0, 1);

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            client_processes: 0,
            server_processes: 0,
            source_addresses: 0,
            source_address_base: DEFAULT_SOURCE_BASE,
            server_addresses: 1,
            server_model: ServerModel::EventLoop,
            mode: LoadMode::Open,
            pipeline: 1,
            search: None,
        }
    }
}

/// `rate_per_connection_hz = "search"`: offered rates tried in steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SearchOptions {
    /// The corrected p99 a rate must hold, ns.
    pub slo_p99_ns: u64,
    /// The first offered rate per connection.
    pub start_hz: f64,
    /// Each step offers this many times the last until one fails.
    pub growth: f64,
    /// The most steps (growth and refinement together).
    pub max_steps: u32,
}

/// The SLO of a capacity search when the plan names none.
pub const DEFAULT_SLO_P99: Duration = Duration::from_millis(10);

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            slo_p99_ns: DEFAULT_SLO_P99.as_nanos() as u64,
            start_hz: 1.0,
            growth: 1.5,
            max_steps: 16,
        }
    }
}

impl FleetOptions {
    /// The id dimensions of the case: only what differs from the defaults, so cases of older
    /// plans keep their ids.
    pub fn dimensions(&self) -> Vec<String> {
        let d = FleetOptions::default();
        let mut out = Vec::new();
        if self.server_model != d.server_model {
            out.push(format!("model={}", self.server_model.as_str()));
        }
        if self.mode == LoadMode::Closed {
            out.push("closed".into());
            if self.pipeline != 1 {
                out.push(format!("pipeline={}", self.pipeline));
            }
        }
        if let Some(search) = &self.search {
            out.push(format!("search,slo={}us", search.slo_p99_ns / 1000));
        }
        if self.client_processes != 0 {
            out.push(format!("cp={}", self.client_processes));
        }
        if self.server_processes != 0 {
            out.push(format!("sp={}", self.server_processes));
        }
        if self.source_addresses != 0 {
            out.push(format!("src={}", self.source_addresses));
        }
        if self.server_addresses != 1 {
            out.push(format!("dst={}", self.server_addresses));
        }
        out
    }
}

/// What a `balance` case adds to [`Case`] (`connections` and `rate_per_connection_hz` are
/// the case's own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalanceOptions {
    /// Backend processes behind the balancer (at least 1).
    pub backends: u32,
    /// Distinct client ids; connection `i` belongs to client `i mod clients`.
    pub clients: u64,
    /// Zipf exponent of the clients' rates (0 = every connection at the same rate).
    pub client_rate_skew: f64,
    /// How the balancer picks a backend.
    pub policy: Policy,
    /// Where the records live, with the store's options.
    pub store: ipcbench_store::StoreConfig,
    /// Data bytes of each client's record.
    pub state_bytes: u64,
    /// When a backend joins, counted from the start of the measured phase.
    #[serde(default, with = "opt_duration_ns")]
    pub add_backend_at: Option<Duration>,
    /// When a backend leaves, counted from the start of the measured phase.
    #[serde(default, with = "opt_duration_ns")]
    pub remove_backend_at: Option<Duration>,
    /// What happens to open connections on a membership change.
    pub on_change: OnChange,
}

impl BalanceOptions {
    /// True when the case changes its membership mid-run.
    pub fn changes_membership(&self) -> bool {
        self.add_backend_at.is_some() || self.remove_backend_at.is_some()
    }

    /// True when a backend-local store cannot be correct under this policy: the record of
    /// `state = "local"` with anything but `client-hash` on a stable membership.
    pub fn incorrect_by_design(&self) -> bool {
        self.store.kind() == ipcbench_store::StoreKind::Local
            && (!self.policy.is_client_sticky() || self.changes_membership())
    }

    /// The id dimensions of the case, in a fixed order.
    pub fn dimensions(&self) -> Vec<String> {
        use ipcbench_store::StoreConfig;
        let mut out = vec![
            format!("policy={}", self.policy.as_str()),
            format!("state={}", self.store.kind()),
        ];
        match &self.store {
            StoreConfig::Redis(o) if o.persistence == ipcbench_store::Persistence::Aof => {
                out.push("persistence=aof".into());
            }
            StoreConfig::Postgres(o) if !o.synchronous_commit => out.push("synchronous_commit=off".into()),
            StoreConfig::Sqlite(o) if o.synchronous != ipcbench_store::Synchronous::Normal => {
                out.push(format!("synchronous={}", o.synchronous.as_str().to_lowercase()));
            }
            _ => {}
        }
        out.push(format!("b{}", self.backends));
        out.push(format!("clients={}", self.clients));
        if self.client_rate_skew > 0.0 {
            out.push(format!("skew={}", self.client_rate_skew));
        }
        if self.state_bytes != DEFAULT_STATE_BYTES {
            out.push(format!("sb={}", self.state_bytes));
        }
        if let Some(at) = self.add_backend_at {
            out.push(format!("add@{}ms", at.as_millis()));
        }
        if let Some(at) = self.remove_backend_at {
            out.push(format!("remove@{}ms", at.as_millis()));
        }
        if self.changes_membership() {
            out.push(format!("on_change={}", self.on_change.as_str()));
        }
        out
    }
}

/// Splits `total` into `parts` shares that differ by at most one.
pub fn shares(total: u64, parts: u64) -> Vec<u64> {
    let parts = parts.max(1);
    (0..parts)
        .map(|k| total / parts + u64::from(k < total % parts))
        .collect()
}

/// The case-id dimension of a case whose server side runs on an agent.
pub const REMOTE_DIMENSION: &str = "remote";
/// The id dimension of a case whose client fleet runs on agents, followed by their count
/// (`agents2`).
pub const GENERATORS_DIMENSION: &str = "agents";

/// Connections of a `balance` case when the plan names none.
pub const DEFAULT_BALANCE_CONNECTIONS: u64 = 100;
/// The smallest `balance` request: a client id and a sequence number.
pub const BALANCE_MIN_MESSAGE_BYTES: u64 = 16;
/// Data bytes of a record when the plan names none.
pub const DEFAULT_STATE_BYTES: u64 = 64;

/// `Option<Duration>` as integer nanoseconds (or null).
mod opt_duration_ns {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        value.map(|d| d.as_nanos() as u64).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_nanos))
    }
}

impl Case {
    /// The identity runs are compared by (see [`CaseId`] for how it reads).
    pub fn case_id(&self) -> CaseId {
        let mut options: Vec<String> = split_label(&self.transport.label());
        // A proxy's back options join the front's, prefixed, so every pair has its own id.
        if let Some(back) = &self.back_transport {
            options.extend(split_label(&back.label()).into_iter().map(|o| format!("back.{o}")));
        }
        let no_peer = self.transport.kind() == TransportKind::Null;
        CaseId {
            scenario: self.scenario.as_str().to_owned(),
            transport: self.transport.kind().to_string(),
            back_transport: match (&self.back_transport, &self.http) {
                (Some(back), _) => Some(back.kind().to_string()),
                (None, Some(http)) if http.back_uds => Some(TransportKind::Uds.to_string()),
                _ => None,
            },
            options,
            message_bytes: self.message_bytes,
            reply_bytes: Some(self.reply_bytes).filter(|r| *r != self.message_bytes),
            window: self.window,
            delay_ms: self.delay_ms,
            connections: self.connections,
            rate_per_connection_hz: self.rate_per_connection_hz,
            text: self.convert == Convert::Text,
            dimensions: {
                let mut dimensions = match (&self.balance, &self.http, &self.fleet) {
                    (Some(balance), _, _) => balance.dimensions(),
                    (None, Some(http), _) => http.dimensions(),
                    (None, None, Some(fleet)) => fleet.dimensions(),
                    (None, None, None) => Vec::new(),
                };
                // A remote server side is another case than a local one: the gate never
                // matches the two.
                if self.peer.is_some() || !self.generators.is_empty() {
                    dimensions.push(REMOTE_DIMENSION.into());
                }
                if !self.generators.is_empty() {
                    dimensions.push(format!("{GENERATORS_DIMENSION}{}", self.generators.len()));
                }
                dimensions
            },
            client_core: self.placement.client,
            server_core: (!no_peer).then_some(self.placement.server),
        }
    }

    /// The connections each agent of `generators` holds out of `connections`, in that
    /// order ([`shares`]); empty when the generators run here.
    pub fn generator_shares(&self, connections: u64) -> Vec<u64> {
        if self.generators.is_empty() {
            return Vec::new();
        }
        shares(connections, self.generators.len() as u64)
    }

    /// The case id as stored in records: [`Case::case_id`] written out.
    pub fn make_id(&self) -> String {
        self.case_id().to_string()
    }

    /// True when the peer busy-polls and both sides share one core.
    pub fn same_core(&self) -> bool {
        self.placement.client == self.placement.server
    }
}

/// `nagle,sndbuf=1024` -> [`nagle`, `sndbuf=1024`]; empty for an empty label.
fn split_label(label: &str) -> Vec<String> {
    label.split(',').filter(|o| !o.is_empty()).map(str::to_owned).collect()
}
