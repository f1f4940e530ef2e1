//! `ipcbench ci --against OLD_BINARY`: the paired run. Every round of every case runs one
//! trial with the old binary and one with this one, back to back on the same cores, in an
//! order shuffled with a fixed seed; both sides' trials go into one record (`pairs` per case).
//!
//! Both sides are driven the same way: each trial is `<binary> run <one-case plan> --out <dir>`,
//! where the plan is the expanded case written back as plain TOML with one repetition
//! (`ipcbench_harness::plan::one_case_plan`). So the old binary only needs to run plans (it may
//! be a release from before this feature), and neither side runs inside the gate's process.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use ipcbench_gate::Rerun;
use ipcbench_harness::plan::{Plan, one_case_plan};
use ipcbench_record::finish::{FinishContext, finish_case};
use ipcbench_record::stats::SplitMix64;
use ipcbench_record::{CaseRecord, Pair, PairedRun, RunRecord, SideFailure, Status};

use crate::UsageError;
use crate::output::RunOutput;

/// Checks that `binary` is an ipcbench that starts: `<binary> --version` must exit 0 and
/// print `ipcbench`.
///
/// # Errors
/// A usage error naming the binary and what it did.
pub fn check_old_binary(binary: &Path) -> Result<()> {
    let output = Command::new(binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| UsageError(format!("--against {}: cannot start it: {e}", binary.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let first_line: String = stdout.lines().next().unwrap_or("").chars().take(80).collect();
    if !output.status.success() || !first_line.starts_with("ipcbench") {
        bail!(UsageError(format!(
            "--against {}: not an ipcbench binary (`--version` {} and printed {:?}); give the path of an older \
             ipcbench build",
            binary.display(),
            exit_text(output.status),
            first_line.trim()
        )));
    }
    Ok(())
}

/// `exit status 1`, or the signal that ended the process.
fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => "ended without a status".into(),
    }
}

/// Seed of the order of cases and sides within each round.
pub const ORDER_SEED: u64 = 0x9A1_2ED;

/// The two sides of a paired run and how many rounds each case gets.
pub struct PairedPlan<'a> {
    /// The plan as the old side runs it (without `--set`).
    pub old: &'a Plan,
    /// The plan as the new side runs it (with `--set`); the same cases, by position.
    pub new: &'a Plan,
    /// The old binary.
    pub old_binary: PathBuf,
    /// Rounds per case.
    pub n_rounds: usize,
    /// The `--set`s of the new side, as given.
    pub new_side_sets: Vec<String>,
}

enum Side {
    Old,
    New,
}

impl Side {
    fn name(&self) -> &'static str {
        match self {
            Side::Old => "old",
            Side::New => "new",
        }
    }
}

/// One trial's outcome as the side's own `run` recorded it.
struct TrialRun {
    record: RunRecord,
    case: CaseRecord,
}

impl PairedPlan<'_> {
    /// Checks that both plans expand to the same number of cases (that every case can be
    /// written as a one-case plan is checked by [`PairedPlan::run`] before its first trial).
    ///
    /// # Errors
    /// A usage error when `--set` changed the number of cases.
    pub fn check(&self) -> Result<()> {
        if self.old.cases.len() != self.new.cases.len() {
            bail!(UsageError(format!(
                "--set changed the plan's case matrix ({} cases without it, {} with it); a paired run needs the same \
                 cases on both sides",
                self.old.cases.len(),
                self.new.cases.len()
            )));
        }
        Ok(())
    }

    /// Every case of both sides written as a one-case plan (old side first), once per run.
    fn one_case_texts(&self) -> Result<[Vec<String>; 2]> {
        let texts = |plan: &Plan| -> Result<Vec<String>> {
            plan.cases
                .iter()
                .map(|case| {
                    one_case_plan(case, &plan.name)
                        .map_err(|e| UsageError(format!("{e}; a paired run cannot run it")).into())
                })
                .collect()
        };
        Ok([texts(self.old)?, texts(self.new)?])
    }

    fn trial(
        &self,
        side: &Side,
        text: &str,
        case_idx: usize,
        round: usize,
        trials_dir: &Path,
    ) -> Result<Option<TrialRun>> {
        let binary = match side {
            Side::Old => self.old_binary.clone(),
            Side::New => std::env::current_exe().context("cannot find the running binary")?,
        };
        let stem = format!("{case_idx:03}-r{round:02}-{}", side.name());
        let plan_file = trials_dir.join(format!("{stem}.toml"));
        let out = trials_dir.join(&stem);
        std::fs::write(&plan_file, text).with_context(|| format!("cannot write {}", plan_file.display()))?;
        let output = Command::new(&binary)
            .arg("run")
            .arg(&plan_file)
            .arg("--out")
            .arg(&out)
            .output()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let code = output.status.code();
        if code == Some(130) || code.is_none() {
            return Ok(None);
        }
        let run_json = out.join("run.json");
        if code == Some(2) || !run_json.is_file() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            bail!(UsageError(format!(
                "{} ({} side) could not run the one-case plan trials/{}.toml: it {} and wrote no run.json: {}",
                binary.display(),
                side.name(),
                stem,
                exit_text(output.status),
                last.trim()
            )));
        }
        let record = ipcbench_report::load_record(&run_json)
            .with_context(|| format!("the {} side's trial record", side.name()))?;
        let case = record
            .cases
            .first()
            .cloned()
            .with_context(|| format!("{} holds no case", run_json.display()))?;
        Ok(Some(TrialRun { record, case }))
    }

    /// Runs the cases at `case_indices` (all when `None`) for every round into `out` and
    /// returns the paired record (also written to `<out>/run.json`, with every trial's own
    /// folder under `<out>/trials/`).
    ///
    /// # Errors
    /// When the output folder cannot be made, a binary cannot be started, or a side refuses
    /// its one-case plan.
    pub fn run(&self, case_indices: Option<&[usize]>, out: Option<&Path>) -> Result<(RunRecord, PathBuf)> {
        let indices: Vec<usize> = case_indices.map_or_else(|| (0..self.new.cases.len()).collect(), <[usize]>::to_vec);
        // Ctrl-C reaches the trial's process too; this process stops after it instead of dying.
        let stop = crate::run::stop_flag()?;
        // Every case must survive being written as a plan of its own, before anything runs.
        let texts = self.one_case_texts()?;
        let output = RunOutput::create(&format!("{}-paired", self.new.name), out, false)?;
        // Cleans up after this process if it dies before the end (kill -9 included).
        let mut watcher = crate::cleanup::Watcher::start(&crate::cleanup::Leftovers {
            work_dir: None,
            staging: Some(output.staging_dir().to_owned()),
            partial: Some(output.partial_dir()),
            lock: Some(output.lock_file().to_owned()),
        })?;
        let trials_dir = output.staging_dir().join("trials");
        std::fs::create_dir_all(&trials_dir).with_context(|| format!("cannot create {}", trials_dir.display()))?;
        eprintln!(
            "ipcbench ci: paired run of `{}` against {}: {} cases x {} rounds x 2 sides -> {}",
            self.new.name,
            self.old_binary.display(),
            indices.len(),
            self.n_rounds,
            output.final_dir().display()
        );
        let mut cases: Vec<Option<CaseRecord>> = vec![None; self.new.cases.len()];
        let mut done: Vec<bool> = vec![false; self.new.cases.len()];
        let mut old_failures: Vec<SideFailure> = Vec::new();
        let (mut first_new, mut first_old): (Option<RunRecord>, Option<RunRecord>) = (None, None);
        let mut rng = SplitMix64::new(ORDER_SEED);
        let mut interrupted = false;
        // A side that cannot run its trial ends the run; the completed rounds are kept.
        let mut fatal: Option<anyhow::Error> = None;
        'rounds: for round in 1..=self.n_rounds {
            let mut order = indices.clone();
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i + 1));
            }
            for &idx in &order {
                if done[idx] {
                    continue;
                }
                let old_first = rng.below(2) == 0;
                let sides = if old_first {
                    [Side::Old, Side::New]
                } else {
                    [Side::New, Side::Old]
                };
                let mut trials: [Option<TrialRun>; 2] = [None, None];
                for side in &sides {
                    // Relaxed: the flag publishes nothing else (see `run::stop_flag`).
                    let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
                    let run = if stopped() {
                        None
                    } else {
                        let text = &texts[usize::from(matches!(side, Side::New))][idx];
                        match self.trial(side, text, idx, round, &trials_dir) {
                            Ok(run) => run,
                            Err(e) => {
                                fatal = Some(e);
                                None
                            }
                        }
                    };
                    let Some(run) = run.filter(|_| !stopped()) else {
                        interrupted = true;
                        break 'rounds;
                    };
                    let slot = usize::from(matches!(side, Side::New));
                    trials[slot] = Some(run);
                }
                let [Some(old), Some(new)] = trials else {
                    unreachable!("both sides ran")
                };
                first_old.get_or_insert_with(|| old.record.clone());
                first_new.get_or_insert_with(|| new.record.clone());
                let case = cases[idx].get_or_insert_with(|| CaseRecord {
                    trials: Vec::new(),
                    summary: None,
                    ..new.case.clone()
                });
                if new.case.status != Status::Ok {
                    case.status = new.case.status.clone();
                    case.reason = new.case.reason.clone();
                }
                if old.case.status != Status::Ok {
                    old_failures.push(SideFailure {
                        case_id: case.id.clone(),
                        status: old.case.status.clone(),
                        reason: old.case.reason.clone().unwrap_or_else(|| "no reason recorded".into()),
                    });
                }
                match (old.case.trials.first(), new.case.trials.first()) {
                    (Some(o), Some(n)) if new.case.status == Status::Ok && old.case.status == Status::Ok => {
                        case.pairs.push(Pair {
                            round,
                            old_first,
                            ratios: ipcbench_gate::pair_ratios(&new.case, o, n),
                            old: o.clone(),
                            new: n.clone(),
                        });
                        case.trials.push(n.clone());
                        case.applied_options = new.case.applied_options.clone();
                        case.cores = new.case.cores.clone();
                    }
                    // A side that failed or could not run this case ends its rounds.
                    _ => done[idx] = true,
                }
            }
            eprintln!("ipcbench ci: round {round} of {} done", self.n_rounds);
        }
        let base = first_new.unwrap_or_else(|| empty_record(self.new));
        let old_environment = first_old.map(|r| r.environment).unwrap_or_default();
        let context = FinishContext {
            clock_overhead_ns: base.clock.overhead_ns,
            calibration: base.calibration.as_ref(),
            link_rate_mbit: None,
        };
        let mut finished: Vec<CaseRecord> = cases.into_iter().flatten().collect();
        for case in &mut finished {
            finish_case(case, &context);
        }
        let record = RunRecord {
            name: self.new.name.clone(),
            config: self.new.config_json.clone(),
            config_source: self.new.source_name.clone(),
            config_sha256: self.new.sha256.clone(),
            interrupted,
            cases: finished,
            finished_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            paired: Some(PairedRun {
                old_binary: self.old_binary.display().to_string(),
                old_environment,
                n_rounds: self.n_rounds,
                order_seed: ORDER_SEED,
                new_side_sets: self.new_side_sets.clone(),
                old_side_failures: old_failures,
            }),
            ..base
        };
        let dir = output.finish(&record)?;
        watcher.dismiss();
        if let Some(e) = fatal {
            return Err(e.context(format!(
                "the completed rounds are in {}",
                dir.join("run.json").display()
            )));
        }
        Ok((record, dir))
    }
}

/// A record with no case yet (a run interrupted before its first pair).
fn empty_record(plan: &Plan) -> RunRecord {
    RunRecord {
        schema: ipcbench_record::SCHEMA.into(),
        name: plan.name.clone(),
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        finished_at: String::new(),
        config: plan.config_json.clone(),
        config_source: plan.source_name.clone(),
        config_sha256: plan.sha256.clone(),
        environment: Default::default(),
        clock: Default::default(),
        calibration: None,
        warnings: Vec::new(),
        interrupted: true,
        cases: Vec::new(),
        paired: None,
        agents: Vec::new(),
    }
}

/// The confirmation re-runs of a paired run: the flagged cases, paired again, round `n` into
/// `<dir>/confirm-<n>`.
pub struct PairedRerun<'a> {
    /// The paired plan of the first run.
    pub plan: &'a PairedPlan<'a>,
    /// That run's results folder.
    pub dir: &'a Path,
}

impl Rerun for PairedRerun<'_> {
    type Error = anyhow::Error;

    fn rerun(&mut self, case_ids: &[String], round: usize, n_rounds: usize) -> Result<RunRecord> {
        eprintln!(
            "ipcbench ci: {} case(s) flagged; paired confirmation re-run {round} of {n_rounds}",
            case_ids.len()
        );
        let indices: Vec<usize> = (0..self.plan.new.cases.len())
            .filter(|&i| case_ids.contains(&self.plan.new.cases[i].id))
            .collect();
        let dir = self.dir.join(format!("confirm-{round}"));
        Ok(self.plan.run(Some(&indices), Some(&dir))?.0)
    }
}
