//! How long a case is expected to take: the dry run's estimate and the progress bar's.

use std::time::Duration;

use super::case::Case;
use super::kinds::ScenarioKind;
use super::units::Amount;

/// What one trial of `case` is expected to take.
pub fn estimate_trial(case: &Case) -> Duration {
    // A message count at a delay takes at least a round trip per window of messages.
    let round_trip = Duration::from_secs_f64(2.0 * case.delay_ms.unwrap_or(0.0).max(0.0) / 1e3);
    let window = case.window.unwrap_or(1).max(1);
    let phase = |amount: Amount| match amount {
        Amount::Time(d) => d,
        // Assume about 20 µs per message when only a count is given.
        Amount::Messages(n) => Duration::from_micros(20u64.saturating_mul(n))
            .saturating_add(round_trip.saturating_mul(u32::try_from(n / window).unwrap_or(u32::MAX))),
    };
    let measured = match case.total_bytes {
        // Stream trials run until `total_bytes` moved: assume 1 GB/s, and 1 µs per message.
        Some(total) if case.scenario == ScenarioKind::Stream => {
            Duration::from_secs_f64(total as f64 / 1e9 + total.div_ceil(case.message_bytes.max(1)) as f64 * 1e-6)
        }
        _ => phase(case.measure),
    };
    // The bare loop's warm-up block takes about as long as the warm-up. A measured time is
    // shared between the measured and the bare blocks; a count gets as many bare messages again.
    let repeat = if case.bare { 2 } else { 1 };
    let measured_repeat = match case.measure {
        Amount::Time(_) if case.total_bytes.is_none() || case.scenario != ScenarioKind::Stream => 1,
        _ => repeat,
    };
    // Saturating: the plan's limits keep every term small, but an estimate must never panic.
    let mut estimate = phase(case.warmup)
        .saturating_mul(repeat)
        .saturating_add(measured.saturating_mul(measured_repeat))
        .saturating_add(Duration::from_millis(30));
    if case.delay_ms.is_some() || case.rate_mbit.is_some() {
        // Making and removing the namespace, the veth pair and the qdiscs.
        estimate += Duration::from_millis(100);
    }
    if let Some(balance) = &case.balance {
        // Starting the backends and the balancer, and the store's server: PostgreSQL's
        // initdb is the slow one.
        estimate += Duration::from_millis(500)
            + match balance.store.kind() {
                ipcbench_store::StoreKind::Postgres => Duration::from_secs(3),
                ipcbench_store::StoreKind::Redis => Duration::from_millis(300),
                _ => Duration::ZERO,
            };
    }
    if let Some(fleet) = &case.fleet {
        // Ramping the connections up (about 10,000 a second) and the steps of a search
        // (about half the most it may take).
        estimate += Duration::from_millis(case.connections.unwrap_or(0) / 10);
        if let Some(search) = &fleet.search {
            let step = phase(case.warmup)
                .saturating_add(phase(case.measure))
                .saturating_add(Duration::from_millis(300));
            estimate += step.saturating_mul(search.max_steps / 2);
        }
    }
    if case.scenario == ScenarioKind::Http {
        // Three processes, TLS identities and the clients' connections per trial.
        estimate += Duration::from_millis(300);
    }
    estimate
}
