//! What a comparison runs with: the significance level and thresholds, from the defaults, a
//! plan's `[gate]` table and `--threshold` assignments.

use serde::{Deserialize, Serialize};

use ipcbench_record::RunRecord;

use crate::metric::{Metric, ThresholdKey};

/// Default significance level of the rank test.
pub const DEFAULT_ALPHA: f64 = 0.05;

/// The optional `[gate]` table of a plan: overrides of the gate's defaults.
///
/// Thresholds are fractions (`p50 = 0.10` is 10%); `alpha` is the rank test's significance
/// level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateTable {
    /// Significance level of the rank test (default 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Threshold of the p50 latency increase (default 0.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    /// Threshold of the p99 latency increase (default 0.25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    /// Threshold of the throughput drop (default 0.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<f64>,
    /// Threshold of the CPU-per-message increase (default 0.15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_per_message: Option<f64>,
}

impl GateTable {
    /// Checks every value given.
    ///
    /// # Errors
    /// A message naming the key, the value and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        GateSettings::default().with_table(self).map(|_| ())
    }

    /// The `[gate]` table the plan of `record` carried (its `config.gate`), if any.
    ///
    /// # Errors
    /// Why `config.gate` is not a `[gate]` table (an unknown key, a value that is not a number).
    pub fn of_record(record: &RunRecord) -> Result<Option<GateTable>, serde_json::Error> {
        match record.config.get("gate") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone()).map(Some),
        }
    }
}

/// The settings a comparison runs with: significance level and thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateSettings {
    /// Significance level of the rank test.
    pub alpha: f64,
    /// p50 latency: a larger relative increase regresses.
    pub p50: f64,
    /// p99 latency: a larger relative increase regresses.
    pub p99: f64,
    /// Throughput: a larger relative drop regresses.
    pub throughput: f64,
    /// CPU per message: a larger relative increase regresses.
    pub cpu_per_message: f64,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            alpha: DEFAULT_ALPHA,
            p50: 0.10,
            p99: 0.25,
            throughput: 0.10,
            cpu_per_message: 0.15,
        }
    }
}

/// The keys [`GateSettings::set`] accepts.
pub const GATE_KEYS: &str = "alpha, p50, p99, throughput, cpu_per_message";

impl GateSettings {
    /// These settings with every value of `table` applied.
    ///
    /// # Errors
    /// As [`GateSettings::set`].
    pub fn with_table(mut self, table: &GateTable) -> Result<GateSettings, String> {
        let entries = [
            ("alpha", table.alpha),
            ("p50", table.p50),
            ("p99", table.p99),
            ("throughput", table.throughput),
            ("cpu_per_message", table.cpu_per_message),
        ];
        for (key, value) in entries {
            if let Some(value) = value {
                self.set(key, value)?;
            }
        }
        Ok(self)
    }

    /// Sets one value by name (`alpha`, `p50`, `p99`, `throughput`, `cpu_per_message`).
    ///
    /// # Errors
    /// An unknown key, or a value out of range: `alpha` in (0, 1), thresholds in (0, 10]
    /// (the throughput threshold below 1, since throughput cannot drop by 100% or more).
    pub fn set(&mut self, key: &str, value: f64) -> Result<(), String> {
        if key == "alpha" {
            if !(value > 0.0 && value < 1.0) {
                return Err(format!(
                    "alpha = {value}: expected a significance level between 0 and 1, e.g. 0.05"
                ));
            }
            self.alpha = value;
            return Ok(());
        }
        let slot = match key {
            "p50" => &mut self.p50,
            "p99" => &mut self.p99,
            "throughput" => &mut self.throughput,
            "cpu_per_message" | "cpu" => &mut self.cpu_per_message,
            _ => return Err(format!("unknown gate key `{key}`; expected one of {GATE_KEYS}")),
        };
        let (in_range, allowed) = if key == "throughput" {
            (value > 0.0 && value < 1.0, "above 0 and below 1")
        } else {
            (value > 0.0 && value <= 10.0, "above 0 and at most 10")
        };
        if !in_range {
            return Err(format!(
                "{key} = {value}: expected a fraction {allowed} (0.1 means 10%)"
            ));
        }
        *slot = value;
        Ok(())
    }

    /// The defaults, then `table` (a plan's `[gate]`), then every `KEY=VALUE` assignment (the
    /// `--threshold` flags, see [`GateSettings::assign`]) in order: a later value wins.
    ///
    /// # Errors
    /// The first bad value, saying whether the table or an assignment gave it.
    pub fn resolve(table: Option<&GateTable>, assignments: &[String]) -> Result<GateSettings, SettingsError> {
        let mut settings = GateSettings::default();
        if let Some(table) = table {
            settings = settings.with_table(table).map_err(SettingsError::Table)?;
        }
        for item in assignments {
            settings.assign(item).map_err(SettingsError::Threshold)?;
        }
        Ok(settings)
    }

    /// Applies one `KEY=VALUE` assignment as `--threshold` takes it; the value is a fraction
    /// (`p99=0.4`) or a percentage (`p99=40%`).
    ///
    /// # Errors
    /// A message that quotes `item`: not `KEY=VALUE`, not a number, or as [`GateSettings::set`].
    pub fn assign(&mut self, item: &str) -> Result<(), String> {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}`: expected KEY=VALUE with KEY one of {GATE_KEYS}"))?;
        let value = value.trim();
        let number = match value.strip_suffix('%') {
            Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
            None => value.parse::<f64>(),
        }
        .map_err(|_| format!("`{item}`: `{value}` is not a number (e.g. 0.2 or 20%)"))?;
        self.set(key.trim(), number).map_err(|e| format!("`{item}`: {e}"))
    }

    /// The threshold of `metric`, a fraction.
    pub fn threshold(&self, metric: Metric) -> f64 {
        match metric.threshold_key() {
            ThresholdKey::P50 => self.p50,
            ThresholdKey::P99 => self.p99,
            ThresholdKey::Throughput => self.throughput,
            ThresholdKey::CpuPerMessage => self.cpu_per_message,
        }
    }
}

/// Why the settings of a comparison could not be resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A bad value in the plan's `[gate]` table.
    #[error("[gate]: {0}")]
    Table(String),
    /// A bad `--threshold` assignment.
    #[error("--threshold {0}")]
    Threshold(String),
}

/// How a comparison is made.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompareOptions {
    /// Significance level and thresholds.
    pub settings: GateSettings,
    /// Compare runs from different machines instead of refusing.
    pub allow_different_machine: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_take_fractions_and_percentages() {
        let mut s = GateSettings::default();
        s.assign("p99=40%").unwrap();
        s.assign(" alpha = 0.01").unwrap();
        assert_eq!((s.p50, s.p99, s.alpha, s.throughput), (0.10, 0.4, 0.01, 0.10));
    }

    #[test]
    fn assignments_override_the_plan_table_which_overrides_the_defaults() {
        let table = GateTable {
            p50: Some(0.3),
            p99: Some(0.5),
            ..GateTable::default()
        };
        let assignments = ["p99=40%".to_owned(), "alpha=0.01".to_owned()];
        let s = GateSettings::resolve(Some(&table), &assignments).unwrap();
        assert_eq!((s.p50, s.p99, s.alpha, s.throughput), (0.3, 0.4, 0.01, 0.10));
        let bad = GateSettings::resolve(None, &["p95=0.1".to_owned()]).unwrap_err();
        assert!(
            bad.to_string()
                .starts_with("--threshold `p95=0.1`: unknown gate key `p95`"),
            "{bad}"
        );
        let table = GateTable {
            throughput: Some(1.5),
            ..GateTable::default()
        };
        let bad = GateSettings::resolve(Some(&table), &[]).unwrap_err();
        assert!(bad.to_string().starts_with("[gate]: throughput = 1.5"), "{bad}");
    }

    #[test]
    fn bad_assignments_quote_themselves_and_say_why() {
        for (item, expect) in [
            ("p50", "expected KEY=VALUE"),
            ("p50=fast", "not a number"),
            ("throughput=1.5", "below 1"),
            ("p95=0.1", "unknown gate key `p95`"),
        ] {
            let err = GateSettings::default().assign(item).unwrap_err();
            assert!(
                err.starts_with(&format!("`{item}`")) && err.contains(expect),
                "{item}: {err}"
            );
        }
    }
}
