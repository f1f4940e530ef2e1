//! Two runs compared case by case: matching the cases, judging each metric, the notes that
//! qualify the verdicts. The method is described in the crate docs.

use std::collections::{BTreeMap, BTreeSet};

use ipcbench_record::stats;
use ipcbench_record::{CaseRecord, RunRecord, SCHEMA, Status};

use crate::comparison::{COMPARE_SCHEMA, CaseComparison, Comparison, NotCompared, RunInfo};
use crate::judge::{case_verdict, compare_metric};
use crate::machine_shift::discount_machine_shift;
use crate::matching::{keys, run_machine_differences};
use crate::metric::Metric;
use crate::settings::{CompareOptions, GateSettings};

/// Why two runs cannot be compared.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// A record is not an `ipcbench.run/1` record.
    #[error("the {which} run has schema `{found}`; expected `{SCHEMA}`")]
    Schema {
        /// `old` or `new`.
        which: &'static str,
        /// The schema found.
        found: String,
    },
    /// The runs come from different machines.
    #[error(
        "the runs come from different machines ({}); figures from different machines are not comparable \
         (allow it with --allow-different-machine)",
        .0.join("; ")
    )]
    DifferentMachine(Vec<String>),
    /// A record holds cases the gate cannot judge (no trials, or no positive figure): a pass
    /// over them would mean nothing.
    #[error("the {which} run cannot be judged: {}", .problems.join("; "))]
    CannotJudge {
        /// `old` or `new`.
        which: &'static str,
        /// What is wrong, per case.
        problems: Vec<String>,
    },
    /// The runs share no case: nothing would be judged, so a pass would mean nothing.
    #[error("the runs have no case in common (old: {n_old} cases, new: {n_new} cases); compare runs of the same plan")]
    NoCaseInCommon {
        /// Cases of the old run.
        n_old: usize,
        /// Cases of the new run.
        n_new: usize,
    },
}

/// [`compare`] for two runs a user named: also refuses two runs that share no case.
///
/// # Errors
/// As [`compare`], and [`CompareError::NoCaseInCommon`].
pub fn compare_common(old: &RunRecord, new: &RunRecord, options: &CompareOptions) -> Result<Comparison, CompareError> {
    let comparison = compare(old, new, options)?;
    if comparison.cases.is_empty() && comparison.not_compared.is_empty() {
        return Err(CompareError::NoCaseInCommon {
            n_old: old.cases.len(),
            n_new: new.cases.len(),
        });
    }
    Ok(comparison)
}

/// The cases of `run` that report `ok` but give the gate nothing to judge: no trials, or no
/// trial with a positive figure (latency, messages/s or bytes/s). At most five are named.
fn unjudgeable(run: &RunRecord) -> Vec<String> {
    let positive = |t: &ipcbench_record::Trial| {
        t.latency_ns.is_some_and(|l| l.p50 > 0.0) || t.messages_per_s > 0.0 || t.bytes_per_s > 0.0
    };
    let mut problems: Vec<String> = run
        .cases
        .iter()
        .filter(|c| c.status == Status::Ok)
        .filter_map(|c| {
            if c.trials.is_empty() {
                Some(format!("case {} is ok but has no trials", c.id))
            } else if !c.trials.iter().any(positive) {
                Some(format!("case {} has only zero or negative figures", c.id))
            } else {
                None
            }
        })
        .collect();
    if problems.len() > 5 {
        let more = problems.len() - 5;
        problems.truncate(5);
        problems.push(format!("and {more} more"));
    }
    problems
}

/// Compares `new` against `old` (the baseline).
///
/// # Errors
/// [`CompareError::Schema`] for a record of another schema; [`CompareError::DifferentMachine`]
/// when the machines differ and `options.allow_different_machine` is false.
pub fn compare(old: &RunRecord, new: &RunRecord, options: &CompareOptions) -> Result<Comparison, CompareError> {
    for (which, run) in [("old", old), ("new", new)] {
        if run.schema != SCHEMA {
            return Err(CompareError::Schema {
                which,
                found: run.schema.clone(),
            });
        }
    }
    for (which, run) in [("old", old), ("new", new)] {
        let problems = unjudgeable(run);
        if !problems.is_empty() {
            return Err(CompareError::CannotJudge { which, problems });
        }
    }
    let differences = run_machine_differences(old, new);
    if !differences.is_empty() && !options.allow_different_machine {
        return Err(CompareError::DifferentMachine(differences));
    }
    let settings = options.settings;
    let mut notes = Vec::new();
    if !differences.is_empty() {
        notes.push(format!(
            "the runs come from different machines ({}): a change may be the machine's, not the code's",
            differences.join("; ")
        ));
    }
    if old.config_sha256 != new.config_sha256 {
        notes.push("the runs used different plan files; only cases with the same id are compared".into());
    }
    for (which, run) in [("old", old), ("new", new)] {
        let env = &run.environment;
        let per_core = env.load_average_1m / env.cores.max(1) as f64;
        if per_core > 0.5 {
            notes.push(format!(
                "the {which} run started at load average {:.2} on {} cores: other work competed for the CPUs, \
                 and wall-clock figures (throughput, p99) may show it",
                env.load_average_1m, env.cores
            ));
        }
        if run.interrupted {
            notes.push(format!(
                "the {which} run was interrupted: only its completed cases are compared"
            ));
        }
    }
    let old_keys = keys(old);
    let new_keys = keys(new);
    let new_by_key: BTreeMap<&str, &CaseRecord> = new_keys.iter().map(String::as_str).zip(&new.cases).collect();
    let mut cases = Vec::new();
    let mut placements = Vec::new();
    let mut not_compared = Vec::new();
    let mut only_in_old = Vec::new();
    for (key, old_case) in old_keys.iter().zip(&old.cases) {
        let Some(new_case) = new_by_key.get(key.as_str()) else {
            only_in_old.push(key.clone());
            continue;
        };
        if old_case.status != Status::Ok || new_case.status != Status::Ok {
            let reason = [(old_case, "old"), (new_case, "new")]
                .iter()
                .filter(|(c, _)| c.status != Status::Ok)
                .map(|(c, which)| {
                    format!(
                        "{which}: {} ({})",
                        status_name(&c.status),
                        c.reason.as_deref().unwrap_or("no reason recorded")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            not_compared.push(NotCompared {
                key: key.clone(),
                old_status: old_case.status.clone(),
                new_status: new_case.status.clone(),
                reason,
                newly_failed: old_case.status == Status::Ok && new_case.status == Status::Failed,
            });
            continue;
        }
        cases.push(compare_case(key, old_case, new_case, &settings));
        placements.push(new_case.cores.label.clone());
    }
    notes.extend(discount_machine_shift(&mut cases, &placements, &settings));
    let old_set: BTreeSet<&str> = old_keys.iter().map(String::as_str).collect();
    let only_in_new = new_keys
        .iter()
        .filter(|k| !old_set.contains(k.as_str()))
        .cloned()
        .collect();
    Ok(Comparison {
        schema: COMPARE_SCHEMA.into(),
        old: RunInfo::of(old),
        new: RunInfo::of(new),
        settings,
        machine_differences: differences,
        cases,
        only_in_old,
        only_in_new,
        not_compared,
        notes,
        confirmation_runs: None,
        paired: None,
    })
}

fn compare_case(key: &str, old: &CaseRecord, new: &CaseRecord, settings: &GateSettings) -> CaseComparison {
    let (n_old, n_new) = (old.trials.len(), new.trials.len());
    let min_p_value = stats::mann_whitney_min_p(n_old, n_new);
    let mut notes = Vec::new();
    let (old_delay, new_delay) = (delay_ns(old), delay_ns(new));
    if old_delay != new_delay {
        notes.push(format!(
            "injected delay_ns differs: {old_delay} ns (old) vs {new_delay} ns (new) per sent message"
        ));
    }
    if let Some(p) = min_p_value
        && p >= settings.alpha
    {
        notes.push(format!(
            "too few trials to detect anything: with {n_old} vs {n_new} trials the smallest possible p-value is \
             {p:.3}, not below alpha = {}; use at least 5 repetitions",
            settings.alpha
        ));
    }
    let mut metrics = Vec::new();
    for metric in Metric::ALL.into_iter().filter(|m| m.applies(old) && m.applies(new)) {
        let (old_values, new_values) = (metric.values(old), metric.values(new));
        if old_values.is_empty() && new_values.is_empty() {
            continue;
        }
        match compare_metric(metric, &old_values, &new_values, settings) {
            Some(m) => metrics.push(m),
            None => notes.push(format!(
                "{} not compared: {} old and {} new values{}",
                metric.label(),
                old_values.len(),
                new_values.len(),
                if stats::median(&old_values).is_some_and(|m| m <= 0.0) {
                    ", the old median is 0"
                } else {
                    ""
                }
            )),
        }
    }
    let verdict = case_verdict(&metrics);
    CaseComparison {
        key: key.to_owned(),
        old_id: old.id.clone(),
        new_id: new.id.clone(),
        scenario: new.scenario.clone(),
        transport: new.transport.clone(),
        message_bytes: new.message_bytes,
        n_old,
        n_new,
        min_p_value,
        metrics,
        verdict,
        notes,
        confirmation: None,
    }
}

fn status_name(status: &Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Unsupported => "unsupported",
        Status::Failed => "failed",
    }
}

fn delay_ns(case: &CaseRecord) -> u64 {
    case.transport_options
        .get("delay_ns")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}
