//! `compare` on hand-built run records with known answers: identical runs, a 30% slowdown, noise
//! without a change, different machines, missing and failed cases, too few trials.

mod common;

use common::{run, unfinished_case};
use ipcbench_gate::{
    CompareError, CompareOptions, ConfirmOutcome, GateSettings, GateTable, Metric, Rerun, Verdict, compare,
    compare_common, confirm, match_key, pool_runs, verdict,
};
use ipcbench_record::finish::{FinishContext, finish_case};
use ipcbench_record::{CaseRecord, Percentiles, RunRecord, Status, Trial};

/// A trial with the given p50 (p99 = 3 x p50), 1e9/p50 round trips per second, and CPU time
/// equal to the elapsed time (one busy side).
fn trial(p50_ns: f64) -> Trial {
    let messages = 100_000u64;
    let elapsed_ns = (p50_ns * messages as f64) as u64;
    Trial {
        latency_ns: Some(Percentiles {
            min: p50_ns * 0.8,
            p50: p50_ns,
            p90: p50_ns * 1.5,
            p99: p50_ns * 3.0,
            p999: p50_ns * 5.0,
            p9999: p50_ns * 8.0,
            max: p50_ns * 20.0,
            mean: p50_ns * 1.1,
            stdev: p50_ns * 0.3,
        }),
        messages,
        bytes: messages * 128,
        elapsed_ns,
        messages_per_s: messages as f64 / (elapsed_ns as f64 / 1e9),
        bytes_per_s: (messages * 128) as f64 / (elapsed_ns as f64 / 1e9),
        client: Some(ipcbench_record::Rusage {
            user_ns: elapsed_ns / 2,
            system_ns: elapsed_ns / 2,
            ..Default::default()
        }),
        ..Trial::default()
    }
}

fn case(id: &str, p50s: &[f64]) -> CaseRecord {
    let mut record = unfinished_case(id, p50s.iter().map(|&p| trial(p)).collect());
    finish_case(
        &mut record,
        &FinishContext {
            clock_overhead_ns: 20.0,
            ..Default::default()
        },
    );
    record
}

const TCP: &str = "pingpong/tcp/64B/c0s1";
const UDS: &str = "pingpong/uds/64B/c0s1";
const BASE_TCP: [f64; 5] = [10_000.0, 10_200.0, 9_900.0, 10_100.0, 10_050.0];
const BASE_UDS: [f64; 5] = [7_000.0, 7_100.0, 6_950.0, 7_050.0, 7_020.0];

fn baseline() -> RunRecord {
    run(vec![case(TCP, &BASE_TCP), case(UDS, &BASE_UDS)])
}

#[test]
fn identical_runs_do_not_regress() {
    let old = baseline();
    let result = compare(&old, &old, &CompareOptions::default()).unwrap();
    assert!(result.passed());
    assert_eq!(result.cases.len(), 2);
    for case in &result.cases {
        assert_eq!(case.verdict, Verdict::Unchanged, "{case:?}");
        for m in &case.metrics {
            assert_eq!(m.ratio, 1.0);
            assert!(m.ratio_ci95[0] < 1.0 && 1.0 < m.ratio_ci95[1], "{m:?}");
            assert!(!m.significant);
            assert!((m.p_value - 1.0).abs() < 1e-12);
        }
    }
    assert!(result.only_in_old.is_empty() && result.only_in_new.is_empty() && result.not_compared.is_empty());
}

#[test]
fn thirty_percent_slower_p50_in_every_trial_regresses_that_case_with_its_size() {
    let old = baseline();
    let slower: Vec<f64> = BASE_TCP.iter().map(|v| v * 1.3).collect();
    let new = run(vec![case(TCP, &slower), case(UDS, &BASE_UDS)]);
    let result = compare(&old, &new, &CompareOptions::default()).unwrap();
    assert!(!result.passed());
    let regressed: Vec<_> = result.regressions().map(|c| c.key.as_str()).collect();
    assert_eq!(regressed, [TCP]);
    let tcp = &result.cases[0];
    let p50 = tcp.metrics.iter().find(|m| m.metric == Metric::LatencyP50).unwrap();
    assert_eq!(p50.verdict, Verdict::Regressed);
    assert!((p50.change() - 0.3).abs() < 1e-9, "change {}", p50.change());
    // Fully separated 5 vs 5: the exact p-value is 2/252.
    assert!((p50.p_value - 2.0 / 252.0).abs() < 1e-12);
    assert!(p50.ratio_ci95[0] > 1.0 && p50.ratio_ci95[0] <= 1.3 && p50.ratio_ci95[1] >= 1.3);
    // Throughput fell by 1 - 1/1.3 = 23%, beyond its 10% threshold; CPU per message rose 30%.
    let throughput = tcp.metrics.iter().find(|m| m.metric == Metric::MessagesPerS).unwrap();
    assert_eq!(throughput.verdict, Verdict::Regressed);
    assert!(throughput.ratio < 0.78);
    let metrics: Vec<Metric> = tcp.regressed_metrics().iter().map(|m| m.metric).collect();
    assert!(metrics.contains(&Metric::LatencyP50) && metrics.contains(&Metric::CpuPerMessage));
    assert_eq!(result.cases[1].verdict, Verdict::Unchanged);
}

#[test]
fn a_faster_run_is_reported_as_an_improvement_and_passes() {
    let old = baseline();
    let faster: Vec<f64> = BASE_UDS.iter().map(|v| v * 0.7).collect();
    let new = run(vec![case(TCP, &BASE_TCP), case(UDS, &faster)]);
    let result = compare(&old, &new, &CompareOptions::default()).unwrap();
    assert!(result.passed());
    let improved: Vec<_> = result.improvements().map(|c| c.key.as_str()).collect();
    assert_eq!(improved, [UDS]);
}

#[test]
fn a_shift_within_the_baselines_own_scatter_is_not_a_regression_but_one_beyond_it_is() {
    // A bimodal metric: baseline trials at ~3 and ~5 (the largest deviation from the median,
    // 5.0, is 40%), then a run at ~6 every time: +21%, clear of the 10% threshold across the
    // whole interval, fully separated, yet inside the baseline's own scatter.
    let old_values = [3_000.0, 5_100.0, 5_000.0, 5_200.0, 3_100.0];
    let noise = ipcbench_gate::relative_spread(&old_values);
    assert!((noise - 0.4).abs() < 1e-12, "{noise}");
    let old = run(vec![case(TCP, &old_values)]);
    let within = run(vec![case(TCP, &[6_000.0, 6_100.0, 6_050.0, 6_200.0, 5_900.0])]);
    let result = compare(&old, &within, &CompareOptions::default()).unwrap();
    let p50 = &result.cases[0].metrics[0];
    assert!(p50.significant && p50.ratio_ci95[0] > 1.1, "{p50:?}");
    assert_eq!(p50.verdict, Verdict::Unchanged, "{p50:?}");
    assert!((p50.limit() - 0.4).abs() < 1e-12);
    // Three times slower is beyond both.
    let beyond = run(vec![case(TCP, &[15_000.0, 15_300.0, 14_900.0, 15_100.0, 15_050.0])]);
    let result = compare(&old, &beyond, &CompareOptions::default()).unwrap();
    assert_eq!(result.cases[0].metrics[0].verdict, Verdict::Regressed);
}

#[test]
fn noisy_but_unchanged_runs_do_not_regress() {
    // Both runs scatter widely around the same level, with one wild trial each.
    let old = run(vec![case(TCP, &[10_000.0, 13_000.0, 8_500.0, 11_500.0, 30_000.0])]);
    let new = run(vec![case(TCP, &[12_500.0, 9_000.0, 45_000.0, 10_500.0, 8_800.0])]);
    let result = compare(&old, &new, &CompareOptions::default()).unwrap();
    assert!(result.passed(), "{:#?}", result.cases);
    assert!(result.cases[0].metrics.iter().all(|m| !m.significant));
}

#[test]
fn a_consistent_shift_below_the_threshold_is_significant_but_not_a_regression() {
    let old = baseline();
    let slightly: Vec<f64> = BASE_TCP.iter().map(|v| v * 1.05).collect();
    let new = run(vec![case(TCP, &slightly), case(UDS, &BASE_UDS)]);
    let result = compare(&old, &new, &CompareOptions::default()).unwrap();
    assert!(result.passed());
    let p50 = &result.cases[0].metrics[0];
    assert!(p50.significant && p50.verdict == Verdict::Unchanged, "{p50:?}");
    // With a threshold under the interval's lower end, the same change regresses; with one
    // inside the interval (the point is past it, the interval is not), it does not.
    let [low, _] = p50.ratio_ci95;
    assert!(low > 1.0 && low < 1.05, "{p50:?}");
    let with_p50_threshold = |threshold: f64| {
        let mut settings = GateSettings::default();
        settings.set("p50", threshold).unwrap();
        CompareOptions {
            settings,
            ..CompareOptions::default()
        }
    };
    let below = with_p50_threshold((low - 1.0) * 0.9);
    assert!(!compare(&old, &new, &below).unwrap().passed());
    let inside = with_p50_threshold((low - 1.0 + 0.05) / 2.0);
    let result = compare(&old, &new, &inside).unwrap();
    assert!(result.passed(), "{:?}", result.cases[0].metrics[0]);
    assert_eq!(result.cases[0].metrics[0].verdict, Verdict::Unchanged);
}

#[test]
fn runs_from_different_machines_are_refused_unless_allowed() {
    let old = baseline();
    let mut new = baseline();
    new.environment.cpu_model = "Other CPU".into();
    new.environment.cores = 8;
    let err = compare(&old, &new, &CompareOptions::default()).unwrap_err();
    let CompareError::DifferentMachine(differences) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(differences.len(), 2);
    assert!(err.to_string().contains("--allow-different-machine"), "{err}");
    let allowed = CompareOptions {
        allow_different_machine: true,
        ..CompareOptions::default()
    };
    let result = compare(&old, &new, &allowed).unwrap();
    assert_eq!(result.machine_differences.len(), 2);
    assert!(result.notes.iter().any(|n| n.contains("different machines")));
}

#[test]
fn runs_whose_agents_machines_differ_are_refused_like_local_ones() {
    let agent = |cpu: &str| ipcbench_record::AgentRecord {
        address: "198.18.0.2:7100".into(),
        role: "peer".into(),
        version: "0.1.0".into(),
        protocol_version: 1,
        environment: ipcbench_record::Environment {
            cpu_model: cpu.into(),
            cores: 4,
            kernel: "6.1".into(),
            ..Default::default()
        },
        case_ids: Vec::new(),
    };
    let mut old = baseline();
    old.agents.push(agent("Agent CPU"));
    let mut same = baseline();
    // Another port on the same machine is the same machine.
    same.agents.push(ipcbench_record::AgentRecord {
        address: "198.18.0.2:7200".into(),
        ..agent("Agent CPU")
    });
    assert!(compare(&old, &same, &CompareOptions::default()).is_ok());
    let mut other = baseline();
    other.agents.push(agent("Other agent CPU"));
    let err = compare(&old, &other, &CompareOptions::default()).unwrap_err();
    let CompareError::DifferentMachine(differences) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(differences.len(), 1, "{differences:?}");
    assert!(
        differences[0].contains("agent") && differences[0].contains("Other agent CPU"),
        "{err}"
    );
    // A run without the agent is not comparable either.
    let err = compare(&old, &baseline(), &CompareOptions::default()).unwrap_err();
    assert!(err.to_string().contains("1 vs 0 agent machines"), "{err}");
}

#[test]
fn a_record_of_another_schema_is_refused() {
    let mut old = baseline();
    old.schema = "something/2".into();
    assert!(matches!(
        compare(&old, &baseline(), &CompareOptions::default()),
        Err(CompareError::Schema { which: "old", .. })
    ));
}

#[test]
fn cases_in_one_run_only_are_listed_and_failed_cases_are_not_compared() {
    let old = run(vec![case(TCP, &BASE_TCP), case(UDS, &BASE_UDS)]);
    let mut failed = case(UDS, &BASE_UDS[..2]);
    failed.status = Status::Failed;
    failed.reason = Some("trial 3 of 5: peer exited".into());
    let pipe = "pingpong/pipe/64B/c0s1";
    let new = run(vec![failed, case(pipe, &BASE_UDS)]);
    let result = compare(&old, &new, &CompareOptions::default()).unwrap();
    assert_eq!(result.only_in_old, [TCP]);
    assert_eq!(result.only_in_new, [pipe]);
    assert_eq!(result.not_compared.len(), 1);
    assert!(result.not_compared[0].newly_failed);
    assert!(result.not_compared[0].reason.contains("peer exited"));
    // A case that newly fails fails the gate.
    assert!(!result.passed());
    let mut unsupported = case(UDS, &[]);
    unsupported.status = Status::Unsupported;
    let new = run(vec![case(TCP, &BASE_TCP), unsupported]);
    let result = compare(&old, &new, &CompareOptions::default()).unwrap();
    assert!(result.passed());
    assert!(!result.not_compared[0].newly_failed);
}

#[test]
fn three_trials_per_side_can_never_be_significant_and_say_so() {
    let old = run(vec![case(TCP, &BASE_TCP[..3])]);
    let much_slower: Vec<f64> = BASE_TCP[..3].iter().map(|v| v * 2.0).collect();
    let new = run(vec![case(TCP, &much_slower)]);
    let result = compare(&old, &new, &CompareOptions::default()).unwrap();
    let tcp = &result.cases[0];
    assert_eq!(tcp.verdict, Verdict::Inconclusive);
    assert!((tcp.min_p_value.unwrap() - 0.1).abs() < 1e-12);
    assert!(
        tcp.notes.iter().any(|n| n.contains("too few trials")),
        "{:?}",
        tcp.notes
    );
    assert!(result.passed());
}

#[test]
fn an_injected_delay_matches_the_clean_case_and_is_noted() {
    assert_eq!(match_key("pingpong/null[delay=300ns]/64B/c0"), "pingpong/null/64B/c0");
    assert_eq!(
        match_key("pingpong/uds[seqpacket,sndbuf=1024]/64B/c0s1"),
        "pingpong/uds[seqpacket,sndbuf=1024]/64B/c0s1"
    );
    assert_eq!(
        match_key("pingpong/inproc[delay=5ns]/4096B/c0s0"),
        "pingpong/inproc/4096B/c0s0"
    );
    let null = "pingpong/null/64B/c0";
    let old = run(vec![case(null, &[25.0, 24.0, 26.0, 25.0, 24.0])]);
    let new = run(vec![case(
        "pingpong/null[delay=10ns]/64B/c0",
        &[35.0, 34.0, 36.0, 35.0, 34.0],
    )]);
    let result = compare(&old, &new, &CompareOptions::default()).unwrap();
    assert_eq!(result.regressions().count(), 1);
    assert!(result.cases[0].notes.iter().any(|n| n.contains("delay_ns differs")));
}

#[test]
fn a_plan_that_sweeps_delay_itself_matches_by_full_id() {
    let clean = "pingpong/null/64B/c0";
    let delayed = "pingpong/null[delay=10ns]/64B/c0";
    let both = run(vec![case(clean, &[25.0; 5]), case(delayed, &[35.0; 5])]);
    let result = compare(&both, &both, &CompareOptions::default()).unwrap();
    let keys: Vec<_> = result.cases.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, [clean, delayed]);
    assert!(result.passed());
}

#[test]
fn confirmation_keeps_only_regressions_that_show_again() {
    let old = baseline();
    let slower_tcp: Vec<f64> = BASE_TCP.iter().map(|v| v * 1.3).collect();
    let slower_uds: Vec<f64> = BASE_UDS.iter().map(|v| v * 1.3).collect();
    let new = run(vec![case(TCP, &slower_tcp), case(UDS, &slower_uds)]);
    let mut result = compare(&old, &new, &CompareOptions::default()).unwrap();
    assert_eq!(result.regressions().count(), 2);
    // Two re-runs: tcp stays slow in both, uds is back to normal.
    let rerun = || run(vec![case(TCP, &slower_tcp), case(UDS, &BASE_UDS)]);
    let pooled = pool_runs(&[rerun(), rerun()]).unwrap();
    assert_eq!(pooled.cases[0].trials.len(), 10);
    assert_eq!(pooled.cases[0].summary.as_ref().unwrap().n_trials, 10);
    let confirmation = compare(&old, &pooled, &CompareOptions::default()).unwrap();
    result.apply_confirmation(&confirmation, 2);
    let regressed: Vec<_> = result.regressions().map(|c| c.key.as_str()).collect();
    assert_eq!(regressed, [TCP]);
    assert_eq!(result.cases[1].verdict, Verdict::Unconfirmed);
    let tcp = result.cases[0].confirmation.as_ref().unwrap();
    assert!(tcp.confirmed && tcp.n_trials == 10);
    assert_eq!(result.confirmation_runs, Some(2));
}

#[test]
fn gate_table_overrides_defaults_and_rejects_bad_values() {
    let table: GateTable = toml::from_str("alpha = 0.01\np50 = 0.2\nthroughput = 0.3").unwrap();
    let settings = GateSettings::default().with_table(&table).unwrap();
    assert_eq!(
        (settings.alpha, settings.p50, settings.p99, settings.throughput),
        (0.01, 0.2, 0.25, 0.3)
    );
    assert!(
        toml::from_str::<GateTable>("p95 = 0.1").is_err(),
        "unknown keys are errors"
    );
    let bad: GateTable = toml::from_str("throughput = 1.5").unwrap();
    assert!(bad.validate().unwrap_err().contains("below 1"));
    let mut s = GateSettings::default();
    assert!(s.set("alpha", 0.0).is_err());
    assert!(s.set("latency", 0.1).unwrap_err().contains("p50, p99"));
    assert!(s.set("p99", f64::NAN).is_err());
}

/// A case whose trials have the given p50s and p99s, at `placement` (`cross-core` or `same-core`).
fn tail_case(id: &str, p50s: &[f64], p99s: &[f64], placement: &str) -> CaseRecord {
    let mut record = case(id, p50s);
    for (trial, &p99) in record.trials.iter_mut().zip(p99s) {
        if let Some(latency) = trial.latency_ns.as_mut() {
            latency.p99 = p99;
        }
    }
    record.cores.label = placement.into();
    finish_case(
        &mut record,
        &FinishContext {
            clock_overhead_ns: 20.0,
            ..Default::default()
        },
    );
    record
}

#[test]
fn a_p99_shift_of_the_whole_machine_is_discounted_but_a_case_beyond_it_regresses() {
    let p50s = [3_000.0, 3_010.0, 2_990.0, 3_005.0, 2_995.0];
    let calm = [6_000.0, 6_050.0, 5_950.0, 6_020.0, 5_990.0];
    let ids: Vec<String> = ["tcp", "uds", "pipe", "shm", "inproc"]
        .iter()
        .map(|t| format!("pingpong/{t}/64B/c0s0"))
        .collect();
    let old = run(ids.iter().map(|id| tail_case(id, &p50s, &calm, "same-core")).collect());
    // Every same-core p99 doubles (host noise on a VM), p50 stays: not a regression of any case.
    let doubled: Vec<f64> = calm.iter().map(|v| v * 2.0).collect();
    let new = run(ids
        .iter()
        .map(|id| tail_case(id, &p50s, &doubled, "same-core"))
        .collect());
    let result = compare(&old, &new, &CompareOptions::default()).unwrap();
    assert!(result.passed(), "{:#?}", result.cases[0].metrics);
    assert!(
        result.notes.iter().any(|n| n.contains("rose 2.00x")),
        "{:?}",
        result.notes
    );
    let p99 = result.cases[0]
        .metrics
        .iter()
        .find(|m| m.metric == Metric::LatencyP99)
        .unwrap();
    assert_eq!(p99.machine_shift, Some(2.0));
    // The same, but one case's p99 grew sixfold: three times the machine's shift.
    let mut cases: Vec<CaseRecord> = ids
        .iter()
        .map(|id| tail_case(id, &p50s, &doubled, "same-core"))
        .collect();
    let sixfold: Vec<f64> = calm.iter().map(|v| v * 6.0).collect();
    cases[2] = tail_case(&ids[2], &p50s, &sixfold, "same-core");
    let result = compare(&old, &run(cases), &CompareOptions::default()).unwrap();
    let regressed: Vec<&str> = result.regressions().map(|c| c.key.as_str()).collect();
    assert_eq!(regressed, [ids[2].as_str()]);
    // A calmer machine is not held against an unchanged case: only worsening is discounted.
    let halved: Vec<f64> = calm.iter().map(|v| v * 0.5).collect();
    let mut cases: Vec<CaseRecord> = ids
        .iter()
        .map(|id| tail_case(id, &p50s, &halved, "same-core"))
        .collect();
    cases[0] = tail_case(&ids[0], &p50s, &calm, "same-core");
    let result = compare(&old, &run(cases), &CompareOptions::default()).unwrap();
    assert!(result.passed());
    assert_eq!(result.cases[0].verdict, Verdict::Unchanged);
}

/// A [`Rerun`] that hands out prepared records in order and notes what it was asked.
struct Prepared {
    records: Vec<RunRecord>,
    asked: Vec<(Vec<String>, usize, usize)>,
}

impl Rerun for Prepared {
    type Error = std::convert::Infallible;

    fn rerun(&mut self, case_ids: &[String], round: usize, n_rounds: usize) -> Result<RunRecord, Self::Error> {
        self.asked.push((case_ids.to_vec(), round, n_rounds));
        Ok(self.records.remove(0))
    }
}

fn prepared(records: Vec<RunRecord>) -> Prepared {
    Prepared {
        records,
        asked: Vec::new(),
    }
}

#[test]
fn confirm_reruns_the_flagged_cases_and_keeps_only_regressions_that_show_again() {
    let old = baseline();
    let slower_tcp: Vec<f64> = BASE_TCP.iter().map(|v| v * 1.3).collect();
    let slower_uds: Vec<f64> = BASE_UDS.iter().map(|v| v * 1.3).collect();
    let new = run(vec![case(TCP, &slower_tcp), case(UDS, &slower_uds)]);
    let options = CompareOptions::default();
    let first = compare_common(&old, &new, &options).unwrap();
    // Two re-runs: tcp stays slow in both, uds is back to normal.
    let rerun = || run(vec![case(TCP, &slower_tcp), case(UDS, &BASE_UDS)]);
    let mut reruns = prepared(vec![rerun(), rerun()]);
    let ConfirmOutcome::Decided(result) = confirm(&old, first, &options, 2, &mut reruns).unwrap() else {
        panic!("not interrupted")
    };
    let flagged = vec![TCP.to_owned(), UDS.to_owned()];
    assert_eq!(reruns.asked, [(flagged.clone(), 1, 2), (flagged, 2, 2)]);
    let regressed: Vec<_> = result.regressions().map(|c| c.key.as_str()).collect();
    assert_eq!(regressed, [TCP]);
    assert_eq!(result.cases[1].verdict, Verdict::Unconfirmed);
    assert_eq!(result.cases[0].confirmation.as_ref().unwrap().n_trials, 10);
    assert_eq!(result.confirmation_runs, Some(2));
}

#[test]
fn confirm_reruns_nothing_when_nothing_is_flagged_or_no_rounds_are_asked() {
    let old = baseline();
    let options = CompareOptions::default();
    let same = compare(&old, &old, &options).unwrap();
    let mut reruns = prepared(Vec::new());
    let outcome = confirm(&old, same.clone(), &options, 2, &mut reruns).unwrap();
    assert_eq!(outcome, ConfirmOutcome::Decided(Box::new(same)));
    let slower: Vec<f64> = BASE_TCP.iter().map(|v| v * 1.3).collect();
    let flagged = compare(&old, &run(vec![case(TCP, &slower), case(UDS, &BASE_UDS)]), &options).unwrap();
    let outcome = confirm(&old, flagged.clone(), &options, 0, &mut reruns).unwrap();
    assert_eq!(outcome, ConfirmOutcome::Decided(Box::new(flagged)));
    assert!(reruns.asked.is_empty());
}

#[test]
fn an_interrupted_rerun_decides_nothing() {
    let old = baseline();
    let slower: Vec<f64> = BASE_TCP.iter().map(|v| v * 1.3).collect();
    let options = CompareOptions::default();
    let flagged = compare(&old, &run(vec![case(TCP, &slower), case(UDS, &BASE_UDS)]), &options).unwrap();
    let mut interrupted = run(vec![case(TCP, &slower)]);
    interrupted.interrupted = true;
    let mut reruns = prepared(vec![interrupted, run(vec![case(TCP, &slower)])]);
    let outcome = confirm(&old, flagged, &options, 2, &mut reruns).unwrap();
    assert_eq!(outcome, ConfirmOutcome::Interrupted);
    assert_eq!(reruns.asked.len(), 1, "stops at the interrupted round");
}

#[test]
fn two_runs_without_a_common_case_are_refused() {
    let old = run(vec![case(TCP, &BASE_TCP)]);
    let new = run(vec![case(UDS, &BASE_UDS)]);
    let err = compare_common(&old, &new, &CompareOptions::default()).unwrap_err();
    assert_eq!(err, CompareError::NoCaseInCommon { n_old: 1, n_new: 1 });
    assert!(err.to_string().contains("no case in common"));
}

#[test]
fn both_verdict_texts_end_with_the_one_rule_text() {
    let old = baseline();
    let slower: Vec<f64> = BASE_TCP.iter().map(|v| v * 1.3).collect();
    let result = compare(
        &old,
        &run(vec![case(TCP, &slower), case(UDS, &BASE_UDS)]),
        &CompareOptions::default(),
    )
    .unwrap();
    let rule = verdict::rule_text(&result.settings, None);
    let terminal = verdict::terminal(&result);
    assert!(
        terminal.ends_with(&format!(
            "\nrule: {rule}\nverdict: FAIL: 1 regressed case(s) of 2 compared\n"
        )),
        "{terminal}"
    );
    assert!(
        terminal.contains(&format!("\nREGRESSED {TCP}\n  p50 10.1 µs -> 13.1 µs (+30.0%")),
        "{terminal}"
    );
    let markdown = verdict::markdown(&result, &[]);
    assert!(markdown.starts_with("## ❌ ipcbench regression gate: FAIL: 1 regressed case(s) of 2 compared\n"));
    assert!(markdown.ends_with(&format!("Rule: {rule}.\n")), "{markdown}");
}

#[test]
fn a_record_the_gate_cannot_judge_is_refused_not_passed() {
    // A case that says ok but has no trials.
    let empty = run(vec![case(TCP, &[]), case(UDS, &BASE_UDS)]);
    match compare(&empty, &baseline(), &CompareOptions::default()) {
        Err(CompareError::CannotJudge { which: "old", problems }) => {
            assert!(
                problems[0].contains(TCP) && problems[0].contains("no trials"),
                "{problems:?}"
            );
        }
        other => panic!("expected CannotJudge, got {other:?}"),
    }
    // Figures that are all zero.
    let mut zero = baseline();
    for case in &mut zero.cases {
        for trial in &mut case.trials {
            trial.latency_ns = None;
            trial.messages_per_s = 0.0;
            trial.bytes_per_s = 0.0;
        }
    }
    assert!(matches!(
        compare(&baseline(), &zero, &CompareOptions::default()),
        Err(CompareError::CannotJudge { which: "new", .. })
    ));
}

#[test]
fn a_case_the_baseline_lacks_fails_the_gate() {
    let old = run(vec![case(TCP, &BASE_TCP)]);
    let new = run(vec![case(TCP, &BASE_TCP), case(UDS, &BASE_UDS)]);
    let result = compare(&old, &new, &CompareOptions::default()).unwrap();
    assert_eq!(result.only_in_new, [UDS]);
    assert!(!result.passed());
    assert!(
        verdict::terminal(&result).contains("the baseline lacks (cannot judge)"),
        "{}",
        verdict::terminal(&result)
    );
}
