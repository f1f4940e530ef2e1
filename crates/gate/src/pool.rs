//! Pooling the confirmation re-runs of the flagged cases into one record.

use ipcbench_record::finish::{FinishContext, finish_case};
use ipcbench_record::{RunRecord, Status};

/// Pools the trials of several runs of the same cases (the confirmation re-runs) into one
/// record: the first run's record with every later run's trials appended per case id, and the
/// summaries recomputed. A case failed in any run keeps that status. Paired records pool their
/// `pairs` the same way, renumbering the rounds.
pub fn pool_runs(runs: &[RunRecord]) -> Option<RunRecord> {
    let (first, rest) = runs.split_first()?;
    let mut pooled = first.clone();
    for run in rest {
        for case in &run.cases {
            match pooled.cases.iter_mut().find(|c| c.id == case.id) {
                Some(target) => {
                    target.trials.extend(case.trials.iter().cloned());
                    // Paired re-runs: their rounds follow the ones already pooled.
                    let offset = target.pairs.len();
                    target
                        .pairs
                        .extend(case.pairs.iter().enumerate().map(|(idx, pair)| ipcbench_record::Pair {
                            round: offset + idx + 1,
                            ..pair.clone()
                        }));
                    if case.status != Status::Ok && target.status == Status::Ok {
                        target.status = case.status.clone();
                        target.reason = case.reason.clone();
                    }
                }
                None => pooled.cases.push(case.clone()),
            }
        }
        pooled.interrupted |= run.interrupted;
        pooled.finished_at = run.finished_at.clone();
    }
    let context = FinishContext {
        clock_overhead_ns: pooled.clock.overhead_ns,
        calibration: pooled.calibration.as_ref(),
        link_rate_mbit: None,
    };
    let mut cases = std::mem::take(&mut pooled.cases);
    for case in &mut cases {
        finish_case(case, &context);
    }
    pooled.cases = cases;
    Some(pooled)
}
