//! Reading a plan: the TOML file format, validation with `file:line:column` errors, and the
//! expansion of a plan into its case matrix.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::case::{
    BALANCE_MIN_MESSAGE_BYTES, BalanceOptions, Case, CorePair, DEFAULT_BALANCE_CONNECTIONS, DEFAULT_STATE_BYTES,
    FleetOptions, SearchOptions,
};
use super::estimate::estimate_trial;
use super::kinds::*;
use super::limits;
use super::set::PlanSet;
use super::units::*;

/// The built-in default plan, the same text as `bench-configs/default.toml`.
pub const DEFAULT_PLAN: &str = include_str!("../../../../bench-configs/default.toml");

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
    // A proxy scenario names its transports in `front` and `back` instead; http speaks tcp.
    #[serde(default)]
    transports: Vec<TransportKind>,
    // Every scenario but http (whose sizes are `response_bytes`).
    message_bytes: Option<OneOrMany<ByteSize>>,
    reply_bytes: Option<ByteSize>,
    total_bytes: Option<ByteSize>,
    window: Option<OneOrMany<u64>>,
    delay_ms: Option<OneOrMany<f64>>,
    rate_mbit: Option<f64>,
    connections: Option<OneOrMany<u64>>,
    rate_per_connection_hz: Option<OneOrMany<RateValue>>,
    schedule: Option<Schedule>,
    server_loops: Option<u32>,
    server_model: Option<OneOrMany<ServerModel>>,
    mode: Option<OneOrMany<LoadMode>>,
    pipeline: Option<Spanned<u64>>,
    slo_p99: Option<Spanned<DurationText>>,
    search_start_hz: Option<Spanned<f64>>,
    search_growth: Option<Spanned<f64>>,
    search_steps: Option<Spanned<u64>>,
    client_processes: Option<Spanned<u64>>,
    server_processes: Option<Spanned<u64>>,
    source_addresses: Option<Spanned<u64>>,
    source_address_base: Option<Spanned<String>>,
    server_addresses: Option<Spanned<u64>>,
    // Transports (proxy) or protocols (http).
    front: Option<Spanned<Vec<String>>>,
    back: Option<Spanned<Vec<String>>>,
    convert: Option<OneOrMany<Convert>>,
    step: Option<u64>,
    backends: Option<Spanned<u64>>,
    clients: Option<Spanned<u64>>,
    client_rate_skew: Option<Spanned<f64>>,
    policy: Option<OneOrMany<Policy>>,
    state: Option<OneOrMany<ipcbench_store::StoreKind>>,
    state_bytes: Option<Spanned<ByteSize>>,
    persistence: Option<ipcbench_store::Persistence>,
    synchronous_commit: Option<bool>,
    synchronous: Option<ipcbench_store::Synchronous>,
    add_backend_at: Option<Spanned<DurationText>>,
    remove_backend_at: Option<Spanned<DurationText>>,
    on_change: Option<OneOrMany<OnChange>>,
    tls: Option<bool>,
    streams: Option<Spanned<i64>>,
    keep_alive: Option<bool>,
    pool_connections: Option<Spanned<i64>>,
    cache_hit_ratio: Option<Spanned<OneOrMany<f64>>>,
    response_bytes: Option<OneOrMany<ByteSize>>,
    request_headers: Option<Spanned<HeadersSpec>>,
    rate: Option<Spanned<toml::Value>>,
    back_transport: Option<Spanned<TransportKind>>,
    relay: Option<Spanned<String>>,
    relay_pid: Option<Spanned<i64>>,
    origin_listen: Option<Spanned<String>>,
    /// Alternate the trial with the transport's bare loop (pingpong, stream; default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bare: Option<bool>,
    /// How much of each message the receiver checks (pingpong, stream, rpc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verify: Option<ipcbench_core::payload::Verify>,
    repetitions: Option<u32>,
    warmup: Option<AmountText>,
    duration: Option<DurationText>,
    messages: Option<u64>,
    cores: Option<toml::Value>,
    /// The agent that runs the server side (`IP:PORT`); overrides the plan's own `peer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peer: Option<Spanned<String>>,
    /// The agents (`IP:PORT`) that run `load`'s client fleet; overrides the plan's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generators: Option<Spanned<Vec<String>>>,
}

/// One entry of `rate_per_connection_hz`: a rate, or the word `"search"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum RateValue {
    Hz(f64),
    Word(String),
}

/// What one entry of `rate_per_connection_hz` asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RateChoice {
    /// The key is absent: the scenario's default.
    Default,
    /// A fixed rate per connection.
    Hz(f64),
    /// The capacity search.
    Search,
}

/// `request_headers = { count = 8, value_bytes = 64 }`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadersSpec {
    count: u32,
    value_bytes: u32,
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
        note(self.server_model.is_some(), "server_model");
        note(self.mode.is_some(), "mode");
        note(self.pipeline.is_some(), "pipeline");
        note(self.slo_p99.is_some(), "slo_p99");
        note(self.search_start_hz.is_some(), "search_start_hz");
        note(self.search_growth.is_some(), "search_growth");
        note(self.search_steps.is_some(), "search_steps");
        note(self.client_processes.is_some(), "client_processes");
        note(self.server_processes.is_some(), "server_processes");
        note(self.source_addresses.is_some(), "source_addresses");
        note(self.source_address_base.is_some(), "source_address_base");
        note(self.server_addresses.is_some(), "server_addresses");
        note(self.front.is_some(), "front");
        note(self.back.is_some(), "back");
        note(self.convert.is_some(), "convert");
        note(self.step.is_some(), "step");
        note(self.backends.is_some(), "backends");
        note(self.clients.is_some(), "clients");
        note(self.client_rate_skew.is_some(), "client_rate_skew");
        note(self.policy.is_some(), "policy");
        note(self.state.is_some(), "state");
        note(self.state_bytes.is_some(), "state_bytes");
        note(self.persistence.is_some(), "persistence");
        note(self.synchronous_commit.is_some(), "synchronous_commit");
        note(self.synchronous.is_some(), "synchronous");
        note(self.add_backend_at.is_some(), "add_backend_at");
        note(self.remove_backend_at.is_some(), "remove_backend_at");
        note(self.on_change.is_some(), "on_change");
        note(self.tls.is_some(), "tls");
        note(self.streams.is_some(), "streams");
        note(self.keep_alive.is_some(), "keep_alive");
        note(self.pool_connections.is_some(), "pool_connections");
        note(self.cache_hit_ratio.is_some(), "cache_hit_ratio");
        note(self.response_bytes.is_some(), "response_bytes");
        note(self.request_headers.is_some(), "request_headers");
        note(self.rate.is_some(), "rate");
        note(self.back_transport.is_some(), "back_transport");
        note(self.relay.is_some(), "relay");
        note(self.relay_pid.is_some(), "relay_pid");
        note(self.origin_listen.is_some(), "origin_listen");
        note(self.bare.is_some(), "bare");
        note(self.verify.is_some(), "verify");
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
    /// The agent that runs every scenario's server side (`IP:PORT`), unless a scenario names
    /// its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peer: Option<String>,
    /// The agents that run the client fleet of every `load` scenario (`["IP:PORT", ...]`),
    /// unless a scenario names its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generators: Option<Vec<String>>,
    #[serde(default)]
    scenario: Vec<Spanned<ScenarioSpec>>,
    #[serde(default)]
    transport: TransportTables,
    /// Overrides of the regression gate's significance level and thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gate: Option<ipcbench_gate::GateTable>,
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
    /// What the expansion did that the plan did not say in so many words (cases named twice,
    /// merged), for the CLI to print.
    pub notes: Vec<String>,
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
    /// `--set KEY=VALUE`, in order: applied to the plan document before anything else.
    pub sets: Vec<PlanSet>,
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

/// The span of `key = ...` in the table whose header spans `table` (the first line of its
/// body that starts with the key), so an error points at the key, not at its table's header.
/// The body ends at the next line that starts with `[` (the next table header).
fn key_span(text: &str, table: &Range<usize>, key: &str) -> Range<usize> {
    let start = table.start.min(text.len());
    let end = text[table.end.min(text.len())..]
        .find("\n[")
        .map(|i| table.end + i + 1)
        .unwrap_or(text.len());
    let mut offset = start;
    for line in text[start..end].split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            let at = offset + (line.len() - trimmed.len());
            return at..at + key.len();
        }
        offset += line.len();
    }
    table.clone()
}

/// The span of `key` in the `[header]` table of `text` (first occurrence), when it is there.
fn key_in_table(text: &str, header: &str, key: &str) -> Option<Range<usize>> {
    let start = text
        .match_indices(header)
        .map(|(i, _)| i)
        .find(|i| text[..*i].ends_with('\n') || *i == 0)?;
    let body_end = text[start + header.len()..]
        .find("\n[")
        .map(|i| start + header.len() + i + 1)
        .unwrap_or(text.len());
    let span = key_span(text, &(start..body_end), key);
    (span.start != start).then_some(span)
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
        if !overrides.sets.is_empty() {
            return parse_with_sets(source_name, text, overrides, n_cores);
        }
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
        if let Err(message) = limits::name(&file.name) {
            return Err(source.error(span_of("name"), message));
        }
        check_file_limits(&source, &file, &span_of)?;
        check_transport_limits(&source, &file.transport)?;
        check_overrides(source_name, overrides)?;
        let mut notes = Vec::new();
        for (idx, later) in file.scenario.iter().enumerate() {
            let same = |earlier: &Spanned<ScenarioSpec>| {
                serde_json::to_value(earlier.get_ref()).ok() == serde_json::to_value(later.get_ref()).ok()
            };
            if let Some(first) = file.scenario[..idx].iter().find(|e| same(e)) {
                let (line, _) = line_column(text, first.span().start);
                return Err(source.error(
                    Some(later.span()),
                    format!("this [[scenario]] repeats the one at line {line} exactly; remove one of them"),
                ));
            }
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
        // Which [[scenario]] first named each case id.
        let mut origin = std::collections::HashMap::new();
        for (scenario_idx, spanned) in file.scenario.iter_mut().enumerate() {
            let span = spanned.span();
            let spec = spanned.get_mut();
            let kind = spec.kind;
            if let Some(t) = &overrides.transports
                && kind != ScenarioKind::Http
            {
                spec.transports = t.clone();
            }
            if let Some(s) = &overrides.sizes {
                let sizes = Some(OneOrMany::Many(s.iter().map(|&b| ByteSize(b)).collect()));
                if kind == ScenarioKind::Http {
                    spec.response_bytes = sizes;
                } else {
                    spec.message_bytes = sizes;
                }
            }
            let allowed = kind.keys();
            if let Some(bad) = spec.present_keys().into_iter().find(|k| !allowed.contains(k)) {
                return Err(source.error(
                    Some(key_span(text, &span, bad)),
                    format!(
                        "`{bad}` does not apply to scenario `{}`; its own keys are: {}",
                        kind.as_str(),
                        allowed.join(", ")
                    ),
                ));
            }
            if kind == ScenarioKind::Http {
                if !spec.transports.is_empty() {
                    return Err(source.error(
                        Some(key_span(text, &span, "transports")),
                        "`transports` does not apply to `http`: it speaks over loopback TCP (`back_transport` = \
                         \"uds\" moves the relay's back side to a Unix socket)",
                    ));
                }
                if spec.message_bytes.is_some() {
                    return Err(source.error(
                        Some(key_span(text, &span, "message_bytes")),
                        "`message_bytes` does not apply to `http`; give the response sizes in `response_bytes`",
                    ));
                }
                if spec.messages.is_some() {
                    return Err(source.error(
                        Some(key_span(text, &span, "messages")),
                        "`http` measures for a `duration`, not a count of `messages`",
                    ));
                }
            } else if spec.transports.is_empty() && kind != ScenarioKind::Proxy {
                return Err(source.error(
                    Some(key_span(text, &span, "transports")),
                    "`transports` is empty; name at least one transport",
                ));
            }
            if spec.duration.is_some() && spec.messages.is_some() {
                return Err(source.error(
                    Some(key_span(text, &span, "messages")),
                    "give either `duration` or `messages`, not both",
                ));
            }
            check_scenario_limits(&source, spec, &span)?;
            let peer = remote_peer(&source, spec, &span, file.peer.as_deref(), &span_of)?;
            let generators = remote_generators(&source, spec, &span, file.generators.as_deref(), peer, &span_of)?;
            let (size_key, size_list) = if kind == ScenarioKind::Http {
                let default = OneOrMany::One(ByteSize(1024));
                ("response_bytes", spec.response_bytes.clone().unwrap_or(default))
            } else {
                let sizes = spec
                    .message_bytes
                    .clone()
                    .ok_or_else(|| source.error(Some(span.clone()), "missing field `message_bytes`"))?;
                ("message_bytes", sizes)
            };
            let sizes = size_list.to_vec();
            if sizes.is_empty() {
                return Err(source.error(Some(key_span(text, &span, size_key)), format!("`{size_key}` is empty")));
            }
            if let Some(&ByteSize(big)) = sizes.iter().find(|s| s.0 > limits::MAX_MESSAGE_BYTES) {
                return Err(source.error(
                    Some(key_span(text, &span, size_key)),
                    format!(
                        "a message of {big} bytes is above the {} MiB limit (both sides allocate buffers of its size)",
                        limits::MAX_MESSAGE_BYTES >> 20
                    ),
                ));
            }
            let placements = match &spec.cores {
                Some(value) => parse_cores(value, n_cores)
                    .map_err(|m| source.error(Some(key_span(text, &span, "cores")), format!("`cores`: {m}")))?,
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
                return Err(source.error(
                    Some(key_span(text, &span, "repetitions")),
                    "`repetitions` must be at least 1",
                ));
            }
            let bare_on = spec.bare.unwrap_or(true) && matches!(kind, ScenarioKind::Pingpong | ScenarioKind::Stream);
            let timeout = file.timeout.map(|d| d.0).unwrap_or_else(|| {
                let timeout = default_timeout(warmup, measure) + slow_phase_allowance(spec, warmup, measure);
                // The bare blocks take about as long again as the measured ones.
                if bare_on { timeout * 2 } else { timeout }
            });

            let https: Vec<Option<HttpCase>> = if kind == ScenarioKind::Http {
                http_cases(spec, &span, &source)?.into_iter().map(Some).collect()
            } else {
                vec![None]
            };
            let transports: Vec<(TransportSettings, Option<TransportSettings>)> = if kind == ScenarioKind::Http {
                file.transport
                    .settings(TransportKind::Tcp)
                    .into_iter()
                    .take(1)
                    .map(|s| (s, None))
                    .collect()
            } else if kind == ScenarioKind::Proxy {
                let transports_of = |list: &Option<Spanned<Vec<String>>>| -> Result<Vec<TransportKind>, ConfigError> {
                    let Some(list) = list else {
                        return Ok(Vec::new());
                    };
                    list.get_ref()
                        .iter()
                        .map(|name| name.parse::<TransportKind>())
                        .collect::<Result<_, _>>()
                        .map_err(|m| source.error(Some(list.span()), m))
                };
                let fronts = transports_of(&spec.front)?;
                let backs = transports_of(&spec.back)?;
                if fronts.is_empty() || backs.is_empty() || fronts.len() != backs.len() {
                    return Err(source.error(
                        Some(key_span(text, &span, if fronts.is_empty() { "front" } else { "back" })),
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
                .unwrap_or(if kind == ScenarioKind::Http {
                    vec![Some(DEFAULT_HTTP_CONNECTIONS)]
                } else {
                    vec![None]
                });
            let rate_at = || Some(key_span(text, &span, "rate_per_connection_hz"));
            let rates: Vec<RateChoice> = match &spec.rate_per_connection_hz {
                None => vec![RateChoice::Default],
                Some(list) => list
                    .to_vec()
                    .into_iter()
                    .map(|v| match v {
                        RateValue::Hz(hz) => Ok(RateChoice::Hz(hz)),
                        RateValue::Word(w) if w == "search" && kind == ScenarioKind::Load => Ok(RateChoice::Search),
                        RateValue::Word(w) => Err(source.error(
                            rate_at(),
                            format!(
                                "`rate_per_connection_hz` = {w:?}: expected a positive number{}",
                                if kind == ScenarioKind::Load {
                                    " or \"search\""
                                } else {
                                    ""
                                }
                            ),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            };
            let fleets = fleet_options(spec, &source, &span, kind, &rates)?;
            let converts = spec
                .convert
                .as_ref()
                .map(OneOrMany::to_vec)
                .unwrap_or(vec![Convert::None]);
            if windows.contains(&Some(0)) {
                return Err(source.error(Some(key_span(text, &span, "window")), "`window` must be at least 1"));
            }
            if delays.iter().flatten().any(|d| !(0.0..=10_000.0).contains(d)) {
                return Err(source.error(
                    Some(key_span(text, &span, "delay_ms")),
                    "`delay_ms` must be between 0 and 10000",
                ));
            }
            if spec.rate_mbit.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                return Err(source.error(
                    Some(key_span(text, &span, "rate_mbit")),
                    "`rate_mbit` must be a positive number",
                ));
            }
            if connections.contains(&Some(0)) {
                return Err(source.error(
                    Some(key_span(text, &span, "connections")),
                    "`connections` must be at least 1",
                ));
            }
            if spec.step == Some(0) {
                return Err(source.error(Some(key_span(text, &span, "step")), "`step` must be at least 1"));
            }
            if rates
                .iter()
                .any(|r| matches!(r, RateChoice::Hz(r) if !(*r > 0.0 && r.is_finite())))
            {
                return Err(source.error(
                    Some(key_span(text, &span, "rate_per_connection_hz")),
                    "`rate_per_connection_hz` must be a positive number",
                ));
            }

            let balances: Vec<Option<BalanceOptions>> = if kind == ScenarioKind::Balance {
                balance_options(spec, &source, &span, &sizes, measure, &connections)?
                    .into_iter()
                    .map(Some)
                    .collect()
            } else {
                vec![None]
            };

            for (transport, back_transport) in &transports {
                for &ByteSize(message_bytes) in &sizes {
                    for &window in &windows {
                        for &delay_ms in &delays {
                            for &conns in &connections {
                                for (rate, fleet) in rates.iter().flat_map(|r| fleets.iter().map(move |f| (*r, f))) {
                                    let fleet = fleet.clone().map(|mut f| {
                                        if rate == RateChoice::Search {
                                            f.search = Some(search_options(spec));
                                        }
                                        f
                                    });
                                    let rate = match rate {
                                        RateChoice::Hz(hz) => Some(hz),
                                        RateChoice::Default | RateChoice::Search => None,
                                    };
                                    for &convert in &converts {
                                        let combos: Vec<(&Option<HttpCase>, &Option<BalanceOptions>, CorePair)> = https
                                            .iter()
                                            .flat_map(|h| balances.iter().map(move |b| (h, b)))
                                            .flat_map(|(h, b)| placements.iter().map(move |p| (h, b, *p)))
                                            .collect();
                                        for (http, balance, placement) in combos {
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
                                                rate_per_connection_hz: http
                                                    .as_ref()
                                                    .map_or(rate, |h: &HttpCase| h.rate_hz),
                                                schedule: spec.schedule.unwrap_or_default(),
                                                server_loops: spec.server_loops.unwrap_or(1),
                                                convert,
                                                step: spec.step,
                                                http: http.clone(),
                                                bare: bare_on,
                                                verify: spec.verify.unwrap_or_default(),
                                                placement,
                                                repetitions,
                                                warmup,
                                                measure,
                                                timeout,
                                                balance: balance.clone(),
                                                fleet: fleet.clone(),
                                                peer,
                                                generators: generators.clone(),
                                            };
                                            if file.timeout.is_none() {
                                                case.timeout += fleet_allowance(&case);
                                            }
                                            // Without a peer, placements differ only in the client's core.
                                            if transport.kind() == TransportKind::Null {
                                                case.placement.server = case.placement.client;
                                            }
                                            case.id = case.make_id();
                                            match origin.get(&case.id) {
                                                // Null placements differ only in the server core: one case.
                                                Some(&first) if first == scenario_idx => {}
                                                Some(&first) => notes.push(format!(
                                                    "case {} is named by [[scenario]] {} and {}; it runs once",
                                                    case.id,
                                                    first + 1,
                                                    scenario_idx + 1
                                                )),
                                                None => {
                                                    origin.insert(case.id.clone(), scenario_idx);
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
            notes: {
                notes.dedup();
                notes
            },
        })
    }

    /// Every agent the plan's cases name in `peer` or `generators`, each once, in plan order.
    pub fn agents(&self) -> Vec<std::net::SocketAddr> {
        let mut out = Vec::new();
        for address in self
            .cases
            .iter()
            .flat_map(|c| c.peer.into_iter().chain(c.generators.iter().copied()))
        {
            if !out.contains(&address) {
                out.push(address);
            }
        }
        out
    }

    /// A rough estimate of the run time: warm-up plus measured phase plus launch cost per trial.
    pub fn estimated_duration(&self) -> Duration {
        self.cases
            .iter()
            .map(|c| estimate_trial(c).saturating_mul(c.repetitions))
            .fold(Duration::ZERO, Duration::saturating_add)
    }
}

/// The agent a scenario's server side runs on (its own `peer`, else the plan's), checked: an
/// address, a scenario an agent serves, tcp only, and no local delayed link.
fn remote_peer(
    source: &Source<'_>,
    spec: &ScenarioSpec,
    span: &Range<usize>,
    plan_peer: Option<&str>,
    span_of: &dyn Fn(&str) -> Option<Range<usize>>,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let text = source.text;
    let (value, key) = match (&spec.peer, plan_peer) {
        (Some(own), _) => (own.get_ref().as_str(), Some(own.span())),
        (None, Some(plan)) => (plan, span_of("peer")),
        (None, None) => return Ok(None),
    };
    let address = super::kinds::agent_address(value).map_err(|m| source.error(key.clone(), format!("`peer`: {m}")))?;
    let kind = spec.kind;
    if !super::kinds::REMOTE_SCENARIOS.contains(&kind) {
        return Err(source.error(
            key,
            format!(
                "`peer` runs the server side on an agent for pingpong, stream, rpc and load; scenario `{}` cannot \
                 run remotely (remove `peer` here, or give the other scenarios their own)",
                kind.as_str()
            ),
        ));
    }
    remote_over_tcp(source, spec, span, &format!("a remote peer ({address})"))?;
    for link_key in ["delay_ms", "rate_mbit"] {
        let present = if link_key == "delay_ms" {
            spec.delay_ms.is_some()
        } else {
            spec.rate_mbit.is_some()
        };
        if present {
            return Err(source.error(
                Some(key_span(text, span, link_key)),
                format!(
                    "`{link_key}` puts a local peer behind a delayed link in a namespace; with `peer` = {address} the \
                     network between the two machines is the link"
                ),
            ));
        }
    }
    Ok(Some(address))
}

/// Refuses every transport of `spec` but tcp, which alone reaches `what` on an agent.
fn remote_over_tcp(
    source: &Source<'_>,
    spec: &ScenarioSpec,
    span: &Range<usize>,
    what: &str,
) -> Result<(), ConfigError> {
    match spec.transports.iter().find(|t| **t != TransportKind::Tcp) {
        Some(bad) => Err(source.error(
            Some(key_span(source.text, span, "transports")),
            format!(
                "`{bad}` cannot reach {what}: remote cases run over tcp only; uds, pipe and shm connect processes of \
                 one machine, and inproc and null have no peer process"
            ),
        )),
        None => Ok(()),
    }
}

/// The agents a `load` scenario's client fleet runs on (its own `generators`, else the
/// plan's), checked: addresses, each once, not the `peer`, tcp only, and none of the keys that
/// name this machine's loopback addresses or its generator processes.
fn remote_generators(
    source: &Source<'_>,
    spec: &ScenarioSpec,
    span: &Range<usize>,
    plan_generators: Option<&[String]>,
    peer: Option<std::net::SocketAddr>,
    span_of: &dyn Fn(&str) -> Option<Range<usize>>,
) -> Result<Vec<std::net::SocketAddr>, ConfigError> {
    let text = source.text;
    let (values, key) = match (&spec.generators, plan_generators) {
        (Some(own), _) => (own.get_ref().as_slice(), Some(own.span())),
        (None, Some(plan)) => (plan, span_of("generators")),
        (None, None) => return Ok(Vec::new()),
    };
    let kind = spec.kind;
    if kind != ScenarioKind::Load {
        return Err(source.error(
            key,
            format!(
                "`generators` spreads the client fleet of `load` over agents; scenario `{}` cannot take it \
                 (`conn-cost` and `balance` run their clients on this machine for now; remove `generators` \
                 here, or give the load scenarios their own)",
                kind.as_str()
            ),
        ));
    }
    if values.is_empty() || values.len() as u64 > limits::MAX_PROCESSES {
        return Err(source.error(
            key,
            format!(
                "`generators` names {} agents; allowed 1..={} (or leave it out to run the generators here)",
                values.len(),
                limits::MAX_PROCESSES
            ),
        ));
    }
    let mut addresses = Vec::with_capacity(values.len());
    for value in values {
        let address =
            super::kinds::agent_address(value).map_err(|m| source.error(key.clone(), format!("`generators`: {m}")))?;
        if addresses.contains(&address) {
            return Err(source.error(
                key,
                format!("`generators` names {address} twice; an agent runs one generator process per trial"),
            ));
        }
        if peer == Some(address) {
            return Err(source.error(
                key,
                format!(
                    "{address} is both `peer` and one of the `generators`; an agent runs one process per trial, \
                     so name different agents"
                ),
            ));
        }
        addresses.push(address);
    }
    remote_over_tcp(source, spec, span, "remote generators")?;
    for (present, local_key, why) in [
        (
            spec.source_addresses.is_some() || spec.source_address_base.is_some(),
            if spec.source_addresses.is_some() {
                "source_addresses"
            } else {
                "source_address_base"
            },
            "binds loopback source addresses of this machine; remote generators dial from their agents' own \
             addresses",
        ),
        (
            spec.server_addresses.is_some(),
            "server_addresses",
            "listens on loopback addresses; with `generators` each server listens on this machine's address on \
             the route to each agent",
        ),
        (
            spec.client_processes.is_some(),
            "client_processes",
            "sets how many generator processes run here; with `generators` each agent runs one",
        ),
    ] {
        if present {
            return Err(source.error(
                Some(key_span(text, span, local_key)),
                format!("`{local_key}` {why}: remove it, or remove `generators`"),
            ));
        }
    }
    Ok(addresses)
}

/// The `balance` options of one scenario table, one entry per policy x state x on_change,
/// validated with the offending key's position.
fn balance_options(
    spec: &ScenarioSpec,
    source: &Source<'_>,
    table: &Range<usize>,
    sizes: &[ByteSize],
    measure: Amount,
    connections: &[Option<u64>],
) -> Result<Vec<BalanceOptions>, ConfigError> {
    use ipcbench_store::{PostgresOptions, RedisOptions, SqliteOptions, StoreConfig, StoreKind};
    let at = |value: &Option<Spanned<u64>>| value.as_ref().map(|v| v.span());
    let backends = spec.backends.as_ref().map_or(4, |b| *b.get_ref());
    if backends == 0 {
        return Err(source.error(at(&spec.backends), "`backends` must be at least 1"));
    }
    if backends > 64 {
        return Err(source.error(at(&spec.backends), "`backends` must be at most 64"));
    }
    let clients = spec.clients.as_ref().map_or(100, |c| *c.get_ref());
    let fewest_connections = connections
        .iter()
        .map(|c| c.unwrap_or(DEFAULT_BALANCE_CONNECTIONS))
        .min()
        .unwrap_or(DEFAULT_BALANCE_CONNECTIONS);
    if clients == 0 || clients > fewest_connections {
        return Err(source.error(
            at(&spec.clients),
            format!("`clients` must be between 1 and `connections` ({fewest_connections}): each client has at least one connection"),
        ));
    }
    let skew = spec.client_rate_skew.as_ref().map_or(0.0, |s| *s.get_ref());
    if !(0.0..=10.0).contains(&skew) {
        return Err(source.error(
            spec.client_rate_skew.as_ref().map(|s| s.span()),
            "`client_rate_skew` must be a Zipf exponent between 0 (even) and 10",
        ));
    }
    if let Some(small) = sizes.iter().find(|s| s.0 < BALANCE_MIN_MESSAGE_BYTES) {
        return Err(source.error(
            Some(key_span(source.text, table, "message_bytes")),
            format!(
                "a balance request carries its client id and sequence number: `message_bytes` must be at least {} (got {})",
                BALANCE_MIN_MESSAGE_BYTES,
                small.0
            ),
        ));
    }
    let state_bytes = spec.state_bytes.as_ref().map_or(DEFAULT_STATE_BYTES, |b| b.get_ref().0);
    if state_bytes > 1 << 20 {
        return Err(source.error(
            spec.state_bytes.as_ref().map(|b| b.span()),
            "`state_bytes` must be at most 1MiB",
        ));
    }
    let measure_ns = match measure {
        Amount::Time(d) => Some(d),
        Amount::Messages(_) => None,
    };
    let change_at = |value: &Option<Spanned<DurationText>>, key: &str| -> Result<Option<Duration>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        let d = value.get_ref().0;
        if let Some(measure) = measure_ns
            && d >= measure
        {
            return Err(source.error(
                Some(value.span()),
                format!("`{key}` ({d:?}) must fall inside the measured phase ({measure:?})"),
            ));
        }
        if measure_ns.is_none() {
            return Err(source.error(
                Some(value.span()),
                format!("`{key}` needs a `duration` (a time), not a message count"),
            ));
        }
        Ok(Some(d))
    };
    let add_backend_at = change_at(&spec.add_backend_at, "add_backend_at")?;
    let remove_backend_at = change_at(&spec.remove_backend_at, "remove_backend_at")?;
    if remove_backend_at.is_some() && backends < 2 && add_backend_at.is_none() {
        return Err(source.error(
            spec.remove_backend_at.as_ref().map(|v| v.span()),
            "`remove_backend_at` would remove the only backend: use `backends` of at least 2",
        ));
    }
    if spec.on_change.is_some() && add_backend_at.is_none() && remove_backend_at.is_none() {
        return Err(source.error(
            Some(key_span(source.text, table, "on_change")),
            "`on_change` applies to a membership change: add `add_backend_at` or `remove_backend_at`",
        ));
    }
    let policies = spec.policy.as_ref().map_or(vec![Policy::Connection], OneOrMany::to_vec);
    let states = spec.state.as_ref().map_or(vec![StoreKind::Local], OneOrMany::to_vec);
    let on_changes = spec.on_change.as_ref().map_or(vec![OnChange::Keep], OneOrMany::to_vec);
    if policies.is_empty() || states.is_empty() || on_changes.is_empty() {
        let empty = if policies.is_empty() {
            "policy"
        } else if states.is_empty() {
            "state"
        } else {
            "on_change"
        };
        return Err(source.error(
            Some(key_span(source.text, table, empty)),
            "`policy`, `state` and `on_change` need at least one value",
        ));
    }
    let mut out = Vec::new();
    for &policy in &policies {
        for &state in &states {
            let store = match state {
                StoreKind::Local => StoreConfig::Local,
                StoreKind::Shm => StoreConfig::Shm,
                StoreKind::Redis => StoreConfig::Redis(RedisOptions {
                    persistence: spec.persistence.unwrap_or_default(),
                    ..RedisOptions::default()
                }),
                StoreKind::Postgres => StoreConfig::Postgres(PostgresOptions {
                    synchronous_commit: spec.synchronous_commit.unwrap_or(true),
                    ..PostgresOptions::default()
                }),
                StoreKind::Sqlite => StoreConfig::Sqlite(SqliteOptions {
                    synchronous: spec.synchronous.unwrap_or_default(),
                    ..SqliteOptions::default()
                }),
            };
            for &on_change in &on_changes {
                out.push(BalanceOptions {
                    backends: backends as u32,
                    clients,
                    client_rate_skew: skew,
                    policy,
                    store: store.clone(),
                    state_bytes,
                    add_backend_at,
                    remove_backend_at,
                    on_change,
                });
            }
        }
    }
    Ok(out)
}

/// Connections of an `http` case when the plan names none.
pub const DEFAULT_HTTP_CONNECTIONS: u64 = 4;
/// HTTP/2 streams per connection of an `http` case when the plan names none.
pub const DEFAULT_HTTP_STREAMS: u32 = 8;
/// Upstream connections of an `http` case's relay when the plan names none.
pub const DEFAULT_POOL_CONNECTIONS: u32 = 4;
/// The most upstream connections a plan may ask for.
pub const MAX_POOL_CONNECTIONS: i64 = 4096;

/// The `http` settings of one scenario, expanded over `front` x `back` x `cache_hit_ratio`,
/// each value checked with the position of its key.
fn http_cases(spec: &ScenarioSpec, span: &Range<usize>, source: &Source<'_>) -> Result<Vec<HttpCase>, ConfigError> {
    let at = |range: Range<usize>, message: String| source.error(Some(range), message);
    let versions = |list: &Option<Spanned<Vec<String>>>, key: &str| -> Result<Vec<HttpVersion>, ConfigError> {
        let Some(list) = list else {
            return Ok(vec![HttpVersion::H1]);
        };
        if list.get_ref().is_empty() {
            return Err(at(list.span(), format!("`{key}` is empty; name `h1`, `h2` or both")));
        }
        list.get_ref()
            .iter()
            .map(|name| {
                name.parse::<HttpVersion>()
                    .map_err(|m| at(list.span(), format!("`{key}`: {m}")))
            })
            .collect()
    };
    let fronts = versions(&spec.front, "front")?;
    let backs = versions(&spec.back, "back")?;
    let relay = match (&spec.relay, &spec.origin_listen) {
        (None, None) => HttpRelay::BuiltIn,
        (None, Some(listen)) => {
            return Err(at(
                listen.span(),
                "`origin_listen` applies only to an external relay (`relay = \"127.0.0.1:PORT\"`)".into(),
            ));
        }
        (Some(relay), listen) if relay.get_ref() == "nginx" => {
            if let Some(listen) = listen {
                return Err(at(
                    listen.span(),
                    "`origin_listen` applies only to an external relay; with `relay = \"nginx\"` the harness picks it"
                        .into(),
                ));
            }
            HttpRelay::Nginx
        }
        (Some(relay), listen) => {
            relay.get_ref().parse::<ipcbench_http::Address>().map_err(|e| {
                at(
                    relay.span(),
                    format!("`relay`: {e}; or `relay = \"nginx\"` to have ipcbench start nginx"),
                )
            })?;
            let Some(listen) = listen else {
                return Err(at(
                    relay.span(),
                    "an external `relay` needs `origin_listen`: the address its upstream points at, where ipcbench's \
                     origin listens"
                        .into(),
                ));
            };
            listen
                .get_ref()
                .parse::<ipcbench_http::Address>()
                .map_err(|e| at(listen.span(), format!("`origin_listen`: {e}")))?;
            HttpRelay::External {
                address: relay.get_ref().clone(),
                pid: match &spec.relay_pid {
                    Some(pid) if *pid.get_ref() > 0 && *pid.get_ref() <= i64::from(i32::MAX) => {
                        Some(*pid.get_ref() as u32)
                    }
                    Some(pid) => return Err(at(pid.span(), "`relay_pid` must be a process id".into())),
                    None => None,
                },
                origin_listen: listen.get_ref().clone(),
            }
        }
    };
    if let (Some(pid), false) = (&spec.relay_pid, matches!(relay, HttpRelay::External { .. })) {
        return Err(at(
            pid.span(),
            "`relay_pid` applies only to an external relay (`relay = \"127.0.0.1:PORT\"`)".into(),
        ));
    }
    // What the relay advertises as SETTINGS_MAX_CONCURRENT_STREAMS (the origin, on the direct
    // path, advertises the built-in relay's value).
    let advertised = match relay {
        HttpRelay::BuiltIn => ipcbench_http::DEFAULT_MAX_STREAMS,
        HttpRelay::Nginx => ipcbench_http::NginxConfig::default().max_streams,
        HttpRelay::External { .. } => ipcbench_http::DEFAULT_MAX_STREAMS,
    };
    let streams = match &spec.streams {
        Some(s) if *s.get_ref() < 1 => return Err(at(s.span(), "`streams` must be at least 1".into())),
        Some(s) if *s.get_ref() > i64::from(advertised) => {
            return Err(at(
                s.span(),
                format!(
                    "`streams` = {} is above the {advertised} concurrent streams the {} relay advertises",
                    s.get_ref(),
                    relay.label()
                ),
            ));
        }
        Some(s) => *s.get_ref() as u32,
        None => DEFAULT_HTTP_STREAMS,
    };
    let pool_connections = match &spec.pool_connections {
        Some(p) if !(1..=MAX_POOL_CONNECTIONS).contains(p.get_ref()) => {
            return Err(at(
                p.span(),
                format!("`pool_connections` must be between 1 and {MAX_POOL_CONNECTIONS}"),
            ));
        }
        Some(p) => *p.get_ref() as u32,
        None => DEFAULT_POOL_CONNECTIONS,
    };
    let ratios = match &spec.cache_hit_ratio {
        Some(r) => {
            let ratios = r.get_ref().to_vec();
            if ratios.is_empty() {
                return Err(at(r.span(), "`cache_hit_ratio` is empty".into()));
            }
            if let Some(bad) = ratios.iter().find(|x| !(0.0..=1.0).contains(*x)) {
                return Err(at(
                    r.span(),
                    format!(
                        "`cache_hit_ratio` = {} is outside 0..=1 (0: every request misses, 1: all hit)",
                        limits::number(*bad)
                    ),
                ));
            }
            ratios
        }
        None => vec![0.0],
    };
    let headers = spec
        .request_headers
        .as_ref()
        .map_or(Ok(ipcbench_http::RequestHeaders::default()), |h| {
            let headers = ipcbench_http::RequestHeaders {
                count: h.get_ref().count as usize,
                value_bytes: h.get_ref().value_bytes as usize,
            };
            headers
                .validate()
                .map(|()| headers)
                .map_err(|e| at(h.span(), format!("`request_headers`: {e}")))
        })?;
    let rate_hz = match &spec.rate {
        None => None,
        Some(r) => match r.get_ref() {
            toml::Value::String(s) if s == "max" => None,
            toml::Value::Integer(n) if *n > 0 && *n <= 1_000_000 => Some(*n as f64),
            toml::Value::Float(x) if *x > 0.0 && *x <= 1e6 => Some(*x),
            other => {
                let shown = match other {
                    toml::Value::Float(x) => limits::number(*x),
                    other => other.to_string(),
                };
                return Err(at(
                    r.span(),
                    format!(
                        "`rate` = {shown}: expected \"max\" (closed loop) or requests per second per connection in \
                         (0, 1000000]"
                    ),
                ));
            }
        },
    };
    let back_uds = match spec.back_transport.as_ref() {
        None => false,
        Some(t) => match *t.get_ref() {
            TransportKind::Tcp => false,
            TransportKind::Uds if matches!(relay, HttpRelay::External { .. }) => {
                return Err(at(
                    t.span(),
                    "with an external relay, `origin_listen` decides the back transport (`unix:PATH` for a Unix \
                     socket)"
                        .into(),
                ));
            }
            TransportKind::Uds => true,
            other => {
                return Err(at(
                    t.span(),
                    format!("`back_transport` = `{other}`: http's back side runs over `tcp` or `uds`"),
                ));
            }
        },
    };
    let tls = spec.tls.unwrap_or(false);
    if relay != HttpRelay::BuiltIn {
        if let Some(back) = &spec.back
            && backs.contains(&HttpVersion::H2)
        {
            return Err(at(
                back.span(),
                format!(
                    "`back` = h2: the {} relay's back protocol is its own configuration; nginx proxies over h1",
                    relay.label()
                ),
            ));
        }
        if tls && relay == HttpRelay::Nginx {
            return Err(source.error(
                Some(key_span(source.text, span, "tls")),
                "`tls` with `relay = \"nginx\"` is not supported: the generated nginx config is cleartext",
            ));
        }
    }
    let mut out = Vec::new();
    for &front in &fronts {
        for &back in &backs {
            for &cache_hit_ratio in &ratios {
                out.push(HttpCase {
                    front,
                    back,
                    tls,
                    streams: if front == HttpVersion::H2 { streams } else { 1 },
                    keep_alive: spec.keep_alive.unwrap_or(true),
                    pool_connections,
                    cache_hit_ratio,
                    request_headers: headers.count as u32,
                    header_value_bytes: headers.value_bytes as u32,
                    rate_hz,
                    back_uds,
                    relay: relay.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// [`Plan::parse`] with `--set`s: each is applied to the TOML document in order, and the
/// result is parsed like a plan file. A plan that is bad without them reports its own error at
/// its line and column; otherwise the error names the first `--set` after which the plan is bad,
/// with the message the plan's own key would have given.
fn parse_with_sets(source_name: &str, text: &str, overrides: &Overrides, n_cores: usize) -> Result<Plan, ConfigError> {
    let plain = Overrides {
        sets: Vec::new(),
        ..overrides.clone()
    };
    let set_error = |set: &PlanSet, message: String| ConfigError {
        source_name: source_name.to_owned(),
        position: None,
        message: format!("{set}: {message}"),
    };
    let document: toml::Table = toml::from_str(text).map_err(|e| ConfigError {
        source_name: source_name.to_owned(),
        position: e.span().map(|s| line_column(text, s.start)),
        message: e.message().trim().replace('\n', " "),
    })?;
    let with_sets = |sets: &[PlanSet]| -> Result<String, ConfigError> {
        let mut document = document.clone();
        for set in sets {
            set.apply(&mut document).map_err(|m| set_error(set, m))?;
        }
        toml::to_string(&document).map_err(|e| set_error(&sets[sets.len() - 1], e.to_string()))
    };
    let full = with_sets(&overrides.sets)?;
    let error = match Plan::parse(source_name, &full, &plain, n_cores) {
        Ok(plan) => return Ok(plan),
        Err(error) => error,
    };
    Plan::parse(source_name, text, &plain, n_cores)?;
    for n in 1..overrides.sets.len() {
        if let Err(e) = Plan::parse(source_name, &with_sets(&overrides.sets[..n])?, &plain, n_cores) {
            return Err(set_error(&overrides.sets[n - 1], e.message));
        }
    }
    Err(set_error(&overrides.sets[overrides.sets.len() - 1], error.message))
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

/// What a `load` or `conn-cost` case needs beyond one phase: ramping its connections up
/// (allowing 2,000 a second) and, for a capacity search, every step with its drain.
fn fleet_allowance(case: &Case) -> Duration {
    let Some(fleet) = &case.fleet else {
        return Duration::ZERO;
    };
    let ramp = Duration::from_secs(case.connections.unwrap_or(0) / 2000);
    let phase = |amount: Amount| match amount {
        Amount::Time(d) => d,
        Amount::Messages(n) => Duration::from_millis(n / 10),
    };
    let steps = fleet.search.map_or(Duration::ZERO, |search| {
        (phase(case.warmup) + phase(case.measure) + Duration::from_secs(3)) * search.max_steps
    });
    ramp + steps
}

fn default_timeout(warmup: Amount, measure: Amount) -> Duration {
    let phase = |amount: Amount| match amount {
        Amount::Time(d) => d,
        Amount::Messages(n) => Duration::from_millis(n / 10),
    };
    phase(warmup) + phase(measure) + Duration::from_secs(30)
}

/// The file-level values against [`limits`].
fn check_file_limits(
    source: &Source<'_>,
    file: &PlanFile,
    span_of: &dyn Fn(&str) -> Option<Range<usize>>,
) -> Result<(), ConfigError> {
    let fail = |key: &str, message: String| Err(source.error(span_of(key), message));
    if let Some(r) = file.repetitions
        && let Err(m) = limits::count("repetitions", r.into(), 1..=limits::MAX_REPETITIONS.into())
    {
        return fail("repetitions", m);
    }
    if let Some(AmountText(amount)) = file.warmup
        && let Err(m) = check_amount("warmup", amount)
    {
        return fail("warmup", m);
    }
    if let Some(d) = file.duration
        && let Err(m) = limits::duration("duration", d.0)
    {
        return fail("duration", m);
    }
    if let Some(n) = file.messages
        && let Err(m) = limits::messages("messages", n)
    {
        return fail("messages", m);
    }
    if let Some(t) = file.timeout
        && let Err(m) = limits::timeout(t.0)
    {
        return fail("timeout", m);
    }
    Ok(())
}

fn check_amount(key: &str, amount: Amount) -> Result<(), String> {
    match amount {
        Amount::Time(d) => limits::duration(key, d),
        Amount::Messages(0) => Ok(()),
        Amount::Messages(n) => limits::messages(key, n),
    }
}

/// The command-line overrides against [`limits`]; the error names the flag.
fn check_overrides(source_name: &str, overrides: &Overrides) -> Result<(), ConfigError> {
    let flag_error = |flag: &str, message: String| ConfigError {
        source_name: source_name.to_owned(),
        position: None,
        message: format!("{flag}: {message}"),
    };
    if let Some(d) = overrides.duration {
        limits::duration("duration", d).map_err(|m| flag_error("--duration", m))?;
    }
    if let Some(d) = overrides.warmup {
        limits::duration("warmup", d).map_err(|m| flag_error("--warmup", m))?;
    }
    if let Some(r) = overrides.repetitions {
        limits::count("repetitions", r.into(), 1..=limits::MAX_REPETITIONS.into())
            .map_err(|m| flag_error("--repetitions", m))?;
    }
    for &size in overrides.sizes.iter().flatten() {
        limits::bytes("message_bytes", size, 0, limits::MAX_MESSAGE_BYTES).map_err(|m| flag_error("--sizes", m))?;
    }
    Ok(())
}

/// The search options of a scenario whose rate is `"search"` (validated by [`fleet_options`]).
fn search_options(spec: &ScenarioSpec) -> SearchOptions {
    let d = SearchOptions::default();
    SearchOptions {
        slo_p99_ns: spec
            .slo_p99
            .as_ref()
            .map_or(d.slo_p99_ns, |s| s.get_ref().0.as_nanos() as u64),
        start_hz: spec.search_start_hz.as_ref().map_or(d.start_hz, |s| *s.get_ref()),
        growth: spec.search_growth.as_ref().map_or(d.growth, |s| *s.get_ref()),
        max_steps: spec.search_steps.as_ref().map_or(d.max_steps, |s| *s.get_ref() as u32),
    }
}

/// The fleet options of a `load` or `conn-cost` scenario, one entry per server model x mode
/// (`[None]` for every other scenario), validated with the offending key's position.
fn fleet_options(
    spec: &ScenarioSpec,
    source: &Source<'_>,
    table: &Range<usize>,
    kind: ScenarioKind,
    rates: &[RateChoice],
) -> Result<Vec<Option<FleetOptions>>, ConfigError> {
    if !matches!(kind, ScenarioKind::Load | ScenarioKind::ConnCost) {
        return Ok(vec![None]);
    }
    let at = |key: &str| Some(key_span(source.text, table, key));
    let count = |value: &Option<Spanned<u64>>, key: &str, range: std::ops::RangeInclusive<u64>| {
        let Some(v) = value else { return Ok(None) };
        let n = *v.get_ref();
        if range.contains(&n) {
            Ok(Some(n as u32))
        } else {
            Err(source.error(
                Some(v.span()),
                format!(
                    "`{key}` = {n} is out of range; allowed {}..={}",
                    range.start(),
                    range.end()
                ),
            ))
        }
    };
    let d = FleetOptions::default();
    let client_processes = count(&spec.client_processes, "client_processes", 1..=limits::MAX_PROCESSES)?;
    let server_processes = count(&spec.server_processes, "server_processes", 1..=limits::MAX_PROCESSES)?;
    let source_addresses = count(
        &spec.source_addresses,
        "source_addresses",
        1..=limits::MAX_SOURCE_ADDRESSES,
    )?;
    let server_addresses = count(
        &spec.server_addresses,
        "server_addresses",
        1..=limits::MAX_SERVER_ADDRESSES,
    )?;
    let source_address_base = match &spec.source_address_base {
        None => d.source_address_base,
        Some(text) => {
            let ip: std::net::Ipv4Addr = text.get_ref().parse().map_err(|_| {
                source.error(
                    Some(text.span()),
                    format!("`source_address_base` = {:?} is not an IPv4 address", text.get_ref()),
                )
            })?;
            ip
        }
    };
    if source_address_base.octets()[0] != 127 || spec.source_address_base.is_some() && source_addresses.is_none() {
        return Err(source.error(
            at("source_address_base"),
            if source_address_base.octets()[0] != 127 {
                format!(
                    "`source_address_base` = {source_address_base} is outside 127.0.0.0/8: client source addresses \
                     must be loopback addresses of this machine"
                )
            } else {
                "`source_address_base` needs `source_addresses` (how many addresses to use)".to_owned()
            },
        ));
    }
    if let Some(n) = source_addresses {
        let last = u32::from(source_address_base) as u64 + u64::from(n) - 1;
        if last > u64::from(u32::from(std::net::Ipv4Addr::new(127, 255, 255, 254))) {
            return Err(source.error(
                at("source_addresses"),
                format!(
                    "`source_addresses` = {n} from {source_address_base} runs past 127.255.255.254, outside \
                     127.0.0.0/8; lower it or start lower"
                ),
            ));
        }
    }
    let models = spec
        .server_model
        .as_ref()
        .map(OneOrMany::to_vec)
        .unwrap_or(vec![ServerModel::EventLoop]);
    let modes = spec
        .mode
        .as_ref()
        .map(OneOrMany::to_vec)
        .unwrap_or(vec![LoadMode::Open]);
    if models.is_empty() || modes.is_empty() {
        let key = if models.is_empty() { "server_model" } else { "mode" };
        return Err(source.error(at(key), format!("`{key}` is empty")));
    }
    let closed = modes.contains(&LoadMode::Closed);
    if closed && rates.iter().any(|r| *r != RateChoice::Default) {
        return Err(source.error(
            at("rate_per_connection_hz"),
            "`mode = \"closed\"` sends each request when the last reply arrives: it has no \
             `rate_per_connection_hz` (put the open-loop rates in a [[scenario]] of their own)",
        ));
    }
    let pipeline = count(&spec.pipeline, "pipeline", 1..=limits::MAX_PIPELINE)?;
    if pipeline.is_some() && !closed {
        return Err(source.error(at("pipeline"), "`pipeline` applies to `mode = \"closed\"` only"));
    }
    let searching = rates.contains(&RateChoice::Search);
    for (key, present) in [
        ("slo_p99", spec.slo_p99.is_some()),
        ("search_start_hz", spec.search_start_hz.is_some()),
        ("search_growth", spec.search_growth.is_some()),
        ("search_steps", spec.search_steps.is_some()),
    ] {
        if present && !searching {
            return Err(source.error(
                at(key),
                format!("`{key}` applies to `rate_per_connection_hz = \"search\"` only"),
            ));
        }
    }
    if let Some(slo) = &spec.slo_p99
        && !(Duration::from_micros(10)..=Duration::from_secs(10)).contains(&slo.get_ref().0)
    {
        return Err(source.error(Some(slo.span()), "`slo_p99` must be between 10us and 10s"));
    }
    if let Some(hz) = &spec.search_start_hz
        && !(*hz.get_ref() > 0.0 && *hz.get_ref() <= limits::MAX_RATE_HZ)
    {
        return Err(source.error(
            Some(hz.span()),
            format!(
                "`search_start_hz` = {} must be above 0 and at most {}",
                limits::number(*hz.get_ref()),
                limits::MAX_RATE_HZ
            ),
        ));
    }
    if let Some(g) = &spec.search_growth
        && !(*g.get_ref() >= 1.05 && *g.get_ref() <= 10.0)
    {
        return Err(source.error(
            Some(g.span()),
            format!(
                "`search_growth` = {} must be between 1.05 and 10",
                limits::number(*g.get_ref())
            ),
        ));
    }
    count(&spec.search_steps, "search_steps", 2..=limits::MAX_SEARCH_STEPS)?;
    let mut out = Vec::new();
    for &server_model in &models {
        for &mode in &modes {
            out.push(Some(FleetOptions {
                client_processes: client_processes.unwrap_or(0),
                server_processes: server_processes.unwrap_or(0),
                source_addresses: source_addresses.unwrap_or(0),
                source_address_base,
                server_addresses: server_addresses.unwrap_or(1),
                server_model,
                mode,
                pipeline: pipeline.unwrap_or(1),
                search: None,
            }));
        }
    }
    Ok(out)
}

/// One scenario's values against [`limits`], each error at its key.
fn check_scenario_limits(source: &Source<'_>, spec: &ScenarioSpec, span: &Range<usize>) -> Result<(), ConfigError> {
    let at = |key: &str, message: String| Err(source.error(Some(key_span(source.text, span, key)), message));
    if let Some(r) = spec.reply_bytes
        && let Err(m) = limits::bytes("reply_bytes", r.0, 0, limits::MAX_MESSAGE_BYTES)
    {
        return at("reply_bytes", m);
    }
    if let Some(t) = spec.total_bytes
        && let Err(m) = limits::bytes("total_bytes", t.0, 1, limits::MAX_TOTAL_BYTES)
    {
        return at("total_bytes", m);
    }
    if let Some(AmountText(amount)) = spec.warmup
        && let Err(m) = check_amount("warmup", amount)
    {
        return at("warmup", m);
    }
    if let Some(d) = spec.duration
        && let Err(m) = limits::duration("duration", d.0)
    {
        return at("duration", m);
    }
    if let Some(n) = spec.messages
        && let Err(m) = limits::messages("messages", n)
    {
        return at("messages", m);
    }
    if let Some(r) = spec.repetitions
        && let Err(m) = limits::count("repetitions", r.into(), 1..=limits::MAX_REPETITIONS.into())
    {
        return at("repetitions", m);
    }
    if let Some(loops) = spec.server_loops
        && !limits::SERVER_LOOPS.contains(&loops)
    {
        let range = &limits::SERVER_LOOPS;
        return at(
            "server_loops",
            format!(
                "`server_loops` = {loops} is out of range; allowed {}..={}",
                range.start(),
                range.end()
            ),
        );
    }
    for &w in spec.window.iter().flat_map(OneOrMany::iter) {
        limits::count("window", w, 1..=limits::MAX_WINDOW).or_else(|m| at("window", m))?;
    }
    for &c in spec.connections.iter().flat_map(OneOrMany::iter) {
        limits::count("connections", c, 1..=limits::MAX_CONNECTIONS).or_else(|m| at("connections", m))?;
    }
    if let Some(step) = spec.step {
        limits::count("step", step, 1..=limits::MAX_CONNECTIONS).or_else(|m| at("step", m))?;
    }
    let fixed_rates = spec
        .rate_per_connection_hz
        .iter()
        .flat_map(OneOrMany::iter)
        .filter_map(|r| match r {
            RateValue::Hz(hz) => Some(*hz),
            RateValue::Word(_) => None,
        });
    for r in fixed_rates {
        if r > limits::MAX_RATE_HZ {
            return at(
                "rate_per_connection_hz",
                format!(
                    "`rate_per_connection_hz` = {} is above {}",
                    limits::number(r),
                    limits::MAX_RATE_HZ
                ),
            );
        }
    }
    Ok(())
}

/// The `[transport.*]` options against [`limits`], each error at its key in its table.
fn check_transport_limits(source: &Source<'_>, tables: &TransportTables) -> Result<(), ConfigError> {
    let at = |table: &str, key: &str, message: String| {
        Err(source.error(
            key_in_table(source.text, &format!("[transport.{table}]"), key),
            format!("[transport.{table}] {message}"),
        ))
    };
    let buffers =
        |table: &str, key: &str, values: &Option<OneOrMany<BufferSize>>, min: u64| -> Result<(), ConfigError> {
            for size in values.iter().flat_map(OneOrMany::iter) {
                if let Some(bytes) = size.bytes()
                    && let Err(m) = limits::bytes(key, bytes, min, limits::MAX_BUFFER_BYTES)
                {
                    return at(table, key, m);
                }
            }
            Ok(())
        };
    if let Some(t) = &tables.tcp {
        buffers("tcp", "send_buffer_bytes", &t.send_buffer_bytes, 1)?;
        buffers("tcp", "recv_buffer_bytes", &t.recv_buffer_bytes, 1)?;
    }
    if let Some(t) = &tables.uds {
        buffers("uds", "send_buffer_bytes", &t.send_buffer_bytes, 1)?;
        buffers("uds", "recv_buffer_bytes", &t.recv_buffer_bytes, 1)?;
    }
    if let Some(t) = &tables.pipe {
        buffers("pipe", "pipe_buffer_bytes", &t.pipe_buffer_bytes, 4096)?;
    }
    if let Some(t) = &tables.shm {
        for ring in t.ring_bytes.iter().flat_map(OneOrMany::iter) {
            if let Err(m) = limits::bytes("ring_bytes", ring.0, 4096, 1 << 30) {
                return at("shm", "ring_bytes", m);
            }
        }
    }
    for (name, table) in [("inproc", &tables.inproc), ("null", &tables.null)] {
        for &delay in table.iter().flat_map(|t| t.delay_ns.iter().flat_map(OneOrMany::iter)) {
            if let Err(m) = limits::count("delay_ns", delay, 0..=limits::MAX_DELAY_NS) {
                return at(name, "delay_ns", m);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
