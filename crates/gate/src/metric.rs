//! The figures the gate compares and the threshold each one is held against.

use serde::{Deserialize, Serialize};

use ipcbench_record::{CaseRecord, Trial};

/// A figure the gate compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Median latency of a trial, ns.
    #[serde(rename = "latency_p50_ns")]
    LatencyP50,
    /// 99th-percentile latency of a trial, ns.
    #[serde(rename = "latency_p99_ns")]
    LatencyP99,
    /// Messages (round trips for request/reply) per second.
    #[serde(rename = "messages_per_s")]
    MessagesPerS,
    /// Payload bytes per second (stream cases only).
    #[serde(rename = "bytes_per_s")]
    BytesPerS,
    /// Both sides' CPU time per message, ns.
    #[serde(rename = "cpu_ns_per_message")]
    CpuPerMessage,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 5] = [
        Metric::LatencyP50,
        Metric::LatencyP99,
        Metric::MessagesPerS,
        Metric::BytesPerS,
        Metric::CpuPerMessage,
    ];

    /// The name used in JSON and in `Summary::ci95` (`latency_p50_ns`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Metric::LatencyP50 => "latency_p50_ns",
            Metric::LatencyP99 => "latency_p99_ns",
            Metric::MessagesPerS => "messages_per_s",
            Metric::BytesPerS => "bytes_per_s",
            Metric::CpuPerMessage => "cpu_ns_per_message",
        }
    }

    /// A short label for tables (`p50`, `msg/s`, ...).
    pub fn label(self) -> &'static str {
        match self {
            Metric::LatencyP50 => "p50",
            Metric::LatencyP99 => "p99",
            Metric::MessagesPerS => "msg/s",
            Metric::BytesPerS => "bytes/s",
            Metric::CpuPerMessage => "CPU/msg",
        }
    }

    /// The unit of the metric's values.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::LatencyP50 | Metric::LatencyP99 => "ns",
            Metric::MessagesPerS => "messages/s",
            Metric::BytesPerS => "bytes/s",
            Metric::CpuPerMessage => "ns/message",
        }
    }

    /// True for throughput: a larger value is better.
    pub fn bigger_is_better(self) -> bool {
        matches!(self, Metric::MessagesPerS | Metric::BytesPerS)
    }

    /// Which threshold applies.
    pub fn threshold_key(self) -> ThresholdKey {
        match self {
            Metric::LatencyP50 => ThresholdKey::P50,
            Metric::LatencyP99 => ThresholdKey::P99,
            Metric::MessagesPerS | Metric::BytesPerS => ThresholdKey::Throughput,
            Metric::CpuPerMessage => ThresholdKey::CpuPerMessage,
        }
    }

    /// True when the metric is compared for `case` (bytes/s only for `stream`, where it is the
    /// headline; elsewhere it is messages/s times a constant size).
    pub fn applies(self, case: &CaseRecord) -> bool {
        self != Metric::BytesPerS || case.scenario == "stream"
    }

    /// The metric's value in one trial, when the trial has it.
    pub fn trial_value(self, trial: &Trial) -> Option<f64> {
        let value = match self {
            Metric::LatencyP50 => trial.latency_ns.map(|l| l.p50),
            Metric::LatencyP99 => trial.latency_ns.map(|l| l.p99),
            Metric::MessagesPerS => Some(trial.messages_per_s),
            Metric::BytesPerS => Some(trial.bytes_per_s),
            Metric::CpuPerMessage => {
                let client = trial.client?;
                let cpu = client.cpu_ns() + trial.server.map(|s| s.cpu_ns()).unwrap_or(0);
                (trial.messages > 0).then(|| cpu as f64 / trial.messages as f64)
            }
        };
        value.filter(|v| v.is_finite())
    }

    /// The metric's per-trial values of `case` (trials without it are skipped).
    pub fn values(self, case: &CaseRecord) -> Vec<f64> {
        case.trials.iter().filter_map(|t| self.trial_value(t)).collect()
    }
}

/// The threshold names of `[gate]` and `--threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdKey {
    /// p50 latency.
    P50,
    /// p99 latency.
    P99,
    /// Messages/s and bytes/s.
    Throughput,
    /// CPU per message.
    CpuPerMessage,
}
