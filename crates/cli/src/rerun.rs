//! Running plans for `ipcbench ci`: the measured run, and the confirmation re-runs the gate
//! asks for through [`ipcbench_gate::Rerun`].

use std::path::Path;

use anyhow::Result;
use ipcbench_gate::Rerun;
use ipcbench_harness::agent_wire::Secret;
use ipcbench_harness::plan::Plan;
use ipcbench_record::RunRecord;

use crate::run;

/// Re-runs the flagged cases as a sub-plan of `plan`, round `n` into `<dir>/confirm-<n>`.
pub struct PlanRerun<'a> {
    /// The plan of the run under test.
    pub plan: &'a Plan,
    /// That run's results folder.
    pub dir: &'a Path,
    /// The secret the plan's agents want proved.
    pub token: Option<&'a Secret>,
}

impl Rerun for PlanRerun<'_> {
    type Error = anyhow::Error;

    fn rerun(&mut self, case_ids: &[String], round: usize, n_rounds: usize) -> Result<RunRecord> {
        eprintln!(
            "ipcbench ci: {} case(s) flagged; confirmation re-run {round} of {n_rounds}",
            case_ids.len()
        );
        let cases = self.plan.cases.iter().filter(|c| case_ids.contains(&c.id));
        let sub_plan = Plan {
            cases: cases.cloned().collect(),
            ..self.plan.clone()
        };
        let dir = self.dir.join(format!("confirm-{round}"));
        Ok(execute_on_own_thread(&sub_plan, Some(&dir), self.token)?.record)
    }
}

/// Runs [`run::execute_with`] on a thread of its own: a trial pins the thread that runs it, and a
/// pinned main thread would make the next run see (and record) a single core.
pub fn execute_on_own_thread(plan: &Plan, out: Option<&Path>, token: Option<&Secret>) -> Result<run::Executed> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| run::execute_with(plan, out, false, token))
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the measuring thread panicked")))
    })
}
