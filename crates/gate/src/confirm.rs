//! The confirmation policy: the first run nominates, the re-runs decide.
//!
//! The cases a comparison flags are run again a few times, as a plan of only those cases; their
//! trials are pooled per case ([`pool_runs`]) and compared with the baseline on their own,
//! without the first run's trials, which were selected for looking bad. A flagged case stays a
//! regression only when a metric that regressed in the first run regresses again in the pooled
//! re-runs ([`Comparison::apply_confirmation`]). The gate decides which cases and how often;
//! running them is the caller's, through [`Rerun`].

use ipcbench_record::RunRecord;

use crate::compare::{CompareError, compare};
use crate::comparison::Comparison;
use crate::paired::compare_paired;
use crate::pool::pool_runs;
use crate::settings::CompareOptions;

/// Runs some cases of the new run's plan once more: what the gate asks of its caller.
pub trait Rerun {
    /// Why a re-run could not be made.
    type Error;

    /// Runs the cases with these ids (their ids in the new run) once more and returns the
    /// record; `round` counts from 1 to `n_rounds`. A record marked `interrupted` stops the
    /// confirmation.
    ///
    /// # Errors
    /// Whatever kept the re-run from producing a record.
    fn rerun(&mut self, case_ids: &[String], round: usize, n_rounds: usize) -> Result<RunRecord, Self::Error>;
}

/// How a confirmation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfirmOutcome {
    /// The comparison with the re-runs applied (as it was when nothing was flagged or no
    /// re-runs were asked for). Boxed: a comparison is large, and the other variant empty.
    Decided(Box<Comparison>),
    /// A re-run was interrupted: nothing was decided.
    Interrupted,
}

/// Why a confirmation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfirmError<E> {
    /// A re-run failed.
    #[error("a confirmation re-run failed")]
    Rerun(#[source] E),
    /// The pooled re-runs could not be compared with the baseline.
    #[error(transparent)]
    Compare(#[from] CompareError),
}

/// Confirms the regressions of `comparison` (the new run against `old`): when it flags cases
/// and `n_rounds > 0`, re-runs those cases `n_rounds` times through `rerun`, pools the re-runs
/// and applies their comparison with `old`.
///
/// # Errors
/// [`ConfirmError::Rerun`] when a re-run fails, [`ConfirmError::Compare`] when the pooled
/// re-runs cannot be compared with `old`.
pub fn confirm<R: Rerun + ?Sized>(
    old: &RunRecord,
    comparison: Comparison,
    options: &CompareOptions,
    n_rounds: usize,
    rerun: &mut R,
) -> Result<ConfirmOutcome, ConfirmError<R::Error>> {
    confirm_with(comparison, n_rounds, rerun, |pooled| compare(old, pooled, options))
}

/// [`confirm`] for a paired comparison ([`compare_paired`]): each re-run is a paired record of
/// the flagged cases (old and new binary again, round by round); their pairs are pooled per
/// case and judged on their own.
///
/// # Errors
/// As [`confirm`].
pub fn confirm_paired<R: Rerun + ?Sized>(
    comparison: Comparison,
    options: &CompareOptions,
    n_rounds: usize,
    rerun: &mut R,
) -> Result<ConfirmOutcome, ConfirmError<R::Error>> {
    confirm_with(comparison, n_rounds, rerun, |pooled| compare_paired(pooled, options))
}

fn confirm_with<R: Rerun + ?Sized>(
    mut comparison: Comparison,
    n_rounds: usize,
    rerun: &mut R,
    judge: impl Fn(&RunRecord) -> Result<Comparison, CompareError>,
) -> Result<ConfirmOutcome, ConfirmError<R::Error>> {
    let flagged: Vec<String> = comparison.flagged().iter().map(|(_, id)| (*id).to_owned()).collect();
    if flagged.is_empty() || n_rounds == 0 {
        return Ok(ConfirmOutcome::Decided(Box::new(comparison)));
    }
    let mut reruns = Vec::with_capacity(n_rounds);
    for round in 1..=n_rounds {
        let record = rerun.rerun(&flagged, round, n_rounds).map_err(ConfirmError::Rerun)?;
        if record.interrupted {
            return Ok(ConfirmOutcome::Interrupted);
        }
        reruns.push(record);
    }
    if let Some(pooled) = pool_runs(&reruns) {
        let confirmation = judge(&pooled)?;
        comparison.apply_confirmation(&confirmation, n_rounds);
    }
    Ok(ConfirmOutcome::Decided(Box::new(comparison)))
}
