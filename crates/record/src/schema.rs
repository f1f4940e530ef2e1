//! The result records: what `run.json` holds (schema `ipcbench.run/1`).
//!
//! Every field's unit is in its name. The report crate renders from these types alone, so an
//! old `run.json` can be rendered again; new fields are optional (`#[serde(default)]`) so older
//! records keep loading.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The schema tag written into every record.
pub const SCHEMA: &str = "ipcbench.run/1";

/// One whole run: its plan, machine, clock and every case.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The plan's name.
    pub name: String,
    /// UTC start time, RFC 3339.
    pub started_at: String,
    /// UTC end time, RFC 3339 (the time of the last completed case for a partial run).
    pub finished_at: String,
    /// The plan as parsed (after command-line overrides).
    pub config: serde_json::Value,
    /// Where the plan came from: a file path, or `built-in default`.
    pub config_source: String,
    /// SHA-256 of the plan's text, hex.
    pub config_sha256: String,
    /// The machine and software the run happened on.
    pub environment: Environment,
    /// The clock's own cost and resolution, measured at start-up.
    pub clock: ClockInfo,
    /// Physical limits measured at start-up (cache-line round trip, memcpy bandwidth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// Conditions that make the numbers less reliable, as printed during the run.
    pub warnings: Vec<String>,
    /// True when the run was stopped (Ctrl-C) before every case ran.
    #[serde(default)]
    pub interrupted: bool,
    /// Every case of the plan, in plan order.
    pub cases: Vec<CaseRecord>,
    /// Present when the run is paired (`ipcbench ci --against`): the other binary the run
    /// alternated with. The record's own fields (environment, `trials`) are the new side's; each
    /// case's `pairs` hold both sides' trials round by round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired: Option<PairedRun>,
    /// Every agent (`ipcbench serve` on another machine) that ran a side of a case, with its
    /// machine; empty for a run on one machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentRecord>,
}

/// An agent a run used: where it was, what it ran and the machine it ran on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AgentRecord {
    /// The agent's control address, `IP:PORT`, as the plan names it.
    pub address: String,
    /// What it ran: `peer` (the server side of the cases whose `peer` names it).
    pub role: String,
    /// The agent's ipcbench version.
    pub version: String,
    /// The agent's control protocol version.
    pub protocol_version: u32,
    /// The agent machine's manifest, as the run's own `environment` is for this machine.
    pub environment: Environment,
    /// The cases it served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub case_ids: Vec<String>,
}

/// How a paired run was made: the old side's binary and environment, the rounds and the order.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PairedRun {
    /// The old binary as given (`--against`).
    pub old_binary: String,
    /// The old side's environment as its own first trial recorded it (version, commit,
    /// compiler); the new side's is the record's `environment`.
    pub old_environment: Environment,
    /// Rounds per case: one old and one new trial each.
    pub n_rounds: usize,
    /// Seed of the order of cases and sides within each round.
    pub order_seed: u64,
    /// `--set KEY=VALUE` overrides applied to the new side only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_side_sets: Vec<String>,
    /// Cases the old side could not run (the new side's status is the case's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub old_side_failures: Vec<SideFailure>,
}

/// A case one side of a paired run could not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideFailure {
    /// The case's id.
    pub case_id: String,
    /// `failed` or `unsupported`.
    pub status: Status,
    /// Why.
    pub reason: String,
}

/// One round of a paired case: a trial of the old binary and one of the new, run back to back
/// on the same cores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// The round, from 1.
    pub round: usize,
    /// True when the old binary's trial ran first in this round.
    pub old_first: bool,
    /// The old binary's trial.
    pub old: Trial,
    /// The new binary's trial.
    pub new: Trial,
    /// `new / old` per metric (`latency_p50_ns`, `latency_p99_ns`, `messages_per_s`,
    /// `bytes_per_s`, `cpu_ns_per_message`), for the metrics both trials have with a positive
    /// old value.
    pub ratios: BTreeMap<String, f64>,
}

/// The environment manifest of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    /// Host name.
    pub hostname: String,
    /// CPU model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Online logical cores.
    pub cores: usize,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Operating system and architecture.
    pub os: String,
    /// Hypervisor or container, when one is detected (`kvm`, `docker`, ...).
    pub virtualization: Option<String>,
    /// The kernel's clock source (`tsc`, `kvm-clock`, ...).
    pub clock_source: Option<String>,
    /// CPU frequency governor of core 0, where readable.
    pub governor: Option<String>,
    /// One-minute load average when the run started.
    pub load_average_1m: f64,
    /// Total memory in bytes.
    pub memory_bytes: u64,
    /// `ulimit -n` soft limit at start.
    pub open_files_limit: u64,
    /// The compiler that built ipcbench.
    pub rustc_version: String,
    /// ipcbench's version.
    pub ipcbench_version: String,
    /// The git commit ipcbench was built from, when known.
    pub git_commit: Option<String>,
}

/// The cost and resolution of the clock used for every sample.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ClockInfo {
    /// What is read (`CLOCK_MONOTONIC via std::time::Instant`).
    pub source: String,
    /// Mean cost of one clock read, ns.
    pub overhead_ns: f64,
    /// Smallest non-zero step seen between two reads, ns.
    pub resolution_ns: f64,
    /// p50 round trip of the `null` transport: the harness's own cost per sample, ns.
    pub null_floor_ns: f64,
}

/// Physical limits of the machine measured at start-up.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// Round trip of one cache line bounced between the client and server cores, ns (p50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_line_round_trip_ns: Option<f64>,
    /// The cores that round trip was measured between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_line_cores: Option<[usize; 2]>,
    /// Round trip over two cache lines between the same cores, one written by each side (each
    /// polls the line the other writes), ns (p50): the floor of any channel with one ring per
    /// direction, which can never send a reply on the line its request came in on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub two_line_round_trip_ns: Option<f64>,
    /// Single-core memcpy bandwidth for a buffer larger than the last-level cache, bytes/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memcpy_bytes_per_s: Option<f64>,
}

/// What happened to a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every trial ran and every message checked out.
    Ok,
    /// The case cannot run on this transport or machine; nothing was measured.
    Unsupported,
    /// A trial failed; `reason` says why. Trials completed before it are kept.
    Failed,
}

/// Where the two sides ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The client's core as asked for.
    pub client: usize,
    /// The server's core as asked for (`None` when there is no peer).
    pub server: Option<usize>,
    /// `cross-core`, `same-core` or `no-peer`.
    pub label: String,
    /// The client's affinity as read back after pinning (last trial).
    #[serde(default)]
    pub client_applied: Vec<usize>,
    /// The server's affinity as read back by the peer after pinning (last trial).
    #[serde(default)]
    pub server_applied: Vec<usize>,
}

/// One case: one combination of scenario, transport, options, sizes and placement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    /// Stable identifier, the key by which runs are compared.
    pub id: String,
    /// `pingpong`, `stream`, `rpc`, `load`, `proxy` or `conn-cost`.
    pub scenario: String,
    /// Transport name (`tcp`, `uds`, `pipe`, `shm`, `inproc`, `null`); for `proxy`, `front->back`.
    pub transport: String,
    /// `process`, `thread` (inproc) or `none` (null).
    pub peer_mode: String,
    /// Transport options as asked for in the plan.
    pub transport_options: serde_json::Map<String, serde_json::Value>,
    /// Transport options as applied and read back from the OS (last trial).
    #[serde(default)]
    pub applied_options: serde_json::Map<String, serde_json::Value>,
    /// Request size.
    pub message_bytes: u64,
    /// Reply size (request/reply scenarios).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_bytes: Option<u64>,
    /// Bytes per trial (stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// Concurrent connections (load, conn-cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// Target send rate per connection (load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_connection_hz: Option<f64>,
    /// Requests in flight (rpc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u64>,
    /// Added one-way link delay (rpc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<f64>,
    /// Core placement.
    pub cores: Placement,
    /// Outcome.
    pub status: Status,
    /// Why the case failed or is unsupported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Caveats about this case's figures (e.g. within 10x of the clock's cost).
    #[serde(default)]
    pub flags: Vec<String>,
    /// Every trial (fresh launch) in the order run.
    pub trials: Vec<Trial>,
    /// Headline figures over the trials; absent when no trial completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Scenario-specific extra fields (e.g. rpc's bandwidth-delay figures, conn-cost's fit).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
    /// The rounds of a paired run (see [`RunRecord::paired`]); `trials` then holds the new
    /// side's trials in round order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<Pair>,
}

/// The percentile set of one latency distribution, ns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Smallest sample.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// 99.99th percentile.
    pub p9999: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Standard deviation.
    pub stdev: f64,
}

/// CPU and scheduling cost of one side over the measured phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rusage {
    /// User CPU time.
    pub user_ns: u64,
    /// System CPU time.
    pub system_ns: u64,
    /// Voluntary context switches (blocking waits).
    pub voluntary_csw: u64,
    /// Involuntary context switches (preemptions).
    pub involuntary_csw: u64,
    /// Peak resident set of the whole process.
    pub max_rss_bytes: u64,
}

impl CaseRecord {
    /// A case of `scenario` on `transport` as it stands before its first trial: status ok,
    /// request and reply of `message_bytes`, cross-core on cores 0 and 1, no options, flags,
    /// trials or figures. Tests and tools build their records from it with struct update syntax.
    pub fn skeleton(id: &str, scenario: &str, transport: &str, message_bytes: u64) -> CaseRecord {
        CaseRecord {
            id: id.to_owned(),
            scenario: scenario.to_owned(),
            transport: transport.to_owned(),
            peer_mode: "process".to_owned(),
            transport_options: Default::default(),
            applied_options: Default::default(),
            message_bytes,
            reply_bytes: Some(message_bytes),
            total_bytes: None,
            connections: None,
            rate_per_connection_hz: None,
            window: None,
            delay_ms: None,
            cores: Placement {
                client: 0,
                server: Some(1),
                label: "cross-core".to_owned(),
                client_applied: vec![0],
                server_applied: vec![1],
            },
            status: Status::Ok,
            reason: None,
            flags: Vec::new(),
            trials: Vec::new(),
            summary: None,
            extra: BTreeMap::new(),
            pairs: Vec::new(),
        }
    }
}

impl Rusage {
    /// User plus system CPU time.
    pub fn cpu_ns(&self) -> u64 {
        self.user_ns + self.system_ns
    }
}

/// One fresh launch of a case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Round-trip (or delivery) latency per message, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ns: Option<Percentiles>,
    /// Latency from the intended send time (coordinated-omission corrected; load only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_corrected_ns: Option<Percentiles>,
    /// Messages in the measured phase (round trips for request/reply scenarios).
    pub messages: u64,
    /// Payload bytes moved in the measured phase (both directions for request/reply).
    pub bytes: u64,
    /// Length of the measured phase.
    pub elapsed_ns: u64,
    /// `messages` per second.
    pub messages_per_s: f64,
    /// `bytes` per second.
    pub bytes_per_s: f64,
    /// The client side's CPU over the measured phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Rusage>,
    /// The server side's CPU over the measured phase (absent without a peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Rusage>,
    /// The latency histogram, HdrHistogram V2 + DEFLATE, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram_v2: Option<String>,
    /// The corrected latency histogram (load only), same encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram_corrected_v2: Option<String>,
    /// Scenario-specific figures of this trial.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, f64>,
}

/// Headline figures of a case: medians over trials, with 95% bootstrap intervals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Per percentile, the median over trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ns: Option<Percentiles>,
    /// Per percentile, the median over trials of the corrected latency (load only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_corrected_ns: Option<Percentiles>,
    /// Median over trials.
    pub messages_per_s: f64,
    /// Median over trials.
    pub bytes_per_s: f64,
    /// Both sides' CPU time per message, median over trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ns_per_message: Option<f64>,
    /// Both sides' CPU time per payload byte, median over trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ns_per_byte: Option<f64>,
    /// The client side's CPU time per payload byte, median over trials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpu_ns_per_byte: Option<f64>,
    /// The server side's CPU time per payload byte, median over trials (absent without a peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_ns_per_byte: Option<f64>,
    /// The case's headline figure against the matching physical limit in the run's
    /// `calibration`, as limit-relative speed: **1.0 = at the physical limit, smaller = further
    /// from it**. Pingpong: cache-line round trip / p50 round trip (only for the pair of cores
    /// the round trip was measured between). Stream: bytes/s / single-core memcpy bytes/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction_of_limit: Option<f64>,
    /// The transport's bare loop over the same objects and cores, run in blocks alternating
    /// with the measured ones in every trial, median over trials: its p50 round trip in ns
    /// (pingpong) or its bytes/s (stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bare: Option<f64>,
    /// ipcbench's own overhead over the bare loop, median over trials of each trial's ratio:
    /// p50 / bare p50 (pingpong) or bare bytes/s / bytes/s (stream). **1.0 = no overhead**;
    /// 1.25 = the figure is 25% worse than the bare loop's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_vs_bare: Option<f64>,
    /// 95% bootstrap interval of the median, per metric: `latency_p50_ns`, `latency_p99_ns`,
    /// `messages_per_s`, `bytes_per_s`, `cpu_ns_per_message`, `overhead_vs_bare`.
    pub ci95: BTreeMap<String, [f64; 2]>,
    /// Trials that completed.
    pub n_trials: usize,
}
