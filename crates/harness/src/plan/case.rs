//! One case of the expanded plan ([`Case`]) and its placement ([`CorePair`]); the case id is
//! built here as an [`ipcbench_record::CaseId`].

use std::time::Duration;

use ipcbench_record::CaseId;
use serde::{Deserialize, Serialize};

use super::kinds::{Convert, HttpCase, ScenarioKind, Schedule, TransportKind, TransportSettings};
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
            dimensions: self.http.as_ref().map(HttpCase::dimensions).unwrap_or_default(),
            client_core: self.placement.client,
            server_core: (!no_peer).then_some(self.placement.server),
        }
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
