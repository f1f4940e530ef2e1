//! The paired comparison on synthetic pairs with fixed seeds: an A/A run never flags, a 20%
//! shift over 10 rounds is caught, drift common to both sides of a round cancels (where the
//! unpaired gate, comparing a calm baseline with a drifted run, flags it), too few rounds are
//! inconclusive, and confirmation re-runs pool their pairs.

mod common;

use common::{run, unfinished_case};
use ipcbench_gate::{
    CompareOptions, ConfirmOutcome, Metric, Rerun, Verdict, compare, compare_paired, confirm_paired, pair_ratios,
    verdict,
};
use ipcbench_record::finish::{FinishContext, finish_case};
use ipcbench_record::stats::SplitMix64;
use ipcbench_record::{CaseRecord, Pair, PairedRun, Percentiles, RunRecord, Trial};

/// A trial with the given p50 (p99 = 3 x p50) and 1e9/p50 round trips per second.
fn trial(p50_ns: f64) -> Trial {
    let messages = 100_000u64;
    let elapsed_ns = (p50_ns * messages as f64) as u64;
    Trial {
        latency_ns: Some(Percentiles {
            p50: p50_ns,
            p99: p50_ns * 3.0,
            ..Percentiles::default()
        }),
        messages,
        bytes: messages * 128,
        elapsed_ns,
        messages_per_s: messages as f64 / (elapsed_ns as f64 / 1e9),
        bytes_per_s: (messages * 128) as f64 / (elapsed_ns as f64 / 1e9),
        ..Trial::default()
    }
}

const NULL: &str = "pingpong/null/64B/c0";

/// Noise of one trial: a factor in `1 +- spread`, uniform.
fn noise(rng: &mut SplitMix64, spread: f64) -> f64 {
    1.0 + spread * (2.0 * rng.unit() - 1.0)
}

/// A paired case over `rounds` rounds: round `r` has old p50 `base * drift(r) * noise` and new
/// p50 `base * drift(r) * shift * noise` (independent noise per trial).
fn paired_case(
    rng: &mut SplitMix64,
    rounds: usize,
    spread: f64,
    shift: f64,
    drift: impl Fn(usize) -> f64,
) -> CaseRecord {
    let mut case = unfinished_case(NULL, Vec::new());
    for round in 1..=rounds {
        let old = trial(1000.0 * drift(round) * noise(rng, spread));
        let new = trial(1000.0 * drift(round) * shift * noise(rng, spread));
        case.pairs.push(Pair {
            round,
            old_first: round % 2 == 0,
            ratios: pair_ratios(&case, &old, &new),
            old,
            new: new.clone(),
        });
        case.trials.push(new);
    }
    finish_case(&mut case, &FinishContext::default());
    case
}

fn paired_run(cases: Vec<CaseRecord>) -> RunRecord {
    let mut record = run(cases);
    record.paired = Some(PairedRun {
        old_binary: "/tmp/ipcbench-old".into(),
        old_environment: record.environment.clone(),
        n_rounds: record.cases.first().map_or(0, |c| c.pairs.len()),
        order_seed: 1,
        ..PairedRun::default()
    });
    record
}

fn p50(record: &RunRecord) -> ipcbench_gate::MetricComparison {
    let comparison = compare_paired(record, &CompareOptions::default()).unwrap();
    comparison.cases[0]
        .metrics
        .iter()
        .find(|m| m.metric == Metric::LatencyP50)
        .unwrap()
        .clone()
}

#[test]
fn a_a_pairs_never_flag() {
    // 60 A/A runs of 10 rounds with +-15% noise per trial: none regresses (nor improves).
    let mut rng = SplitMix64::new(18);
    for seed in 0..60 {
        let record = paired_run(vec![paired_case(&mut rng, 10, 0.15, 1.0, |_| 1.0)]);
        let comparison = compare_paired(&record, &CompareOptions::default()).unwrap();
        assert!(comparison.passed(), "seed {seed}: {}", verdict::terminal(&comparison));
        assert_eq!(comparison.cases[0].verdict, Verdict::Unchanged, "seed {seed}");
    }
}

#[test]
fn a_twenty_percent_shift_over_ten_rounds_is_caught_every_time() {
    // +-5% noise per trial: the ratios spread about +-7%, the interval of their median stays
    // above the 10% threshold, and all 10 rounds point the same way (p = 2/1024).
    let mut rng = SplitMix64::new(20);
    for seed in 0..60 {
        let record = paired_run(vec![paired_case(&mut rng, 10, 0.05, 1.2, |_| 1.0)]);
        let m = p50(&record);
        assert_eq!(m.verdict, Verdict::Regressed, "seed {seed}: {m:?}");
        assert!((1.1..1.33).contains(&m.ratio), "{m:?}");
        assert_eq!(m.test, "wilcoxon-exact");
    }
}

#[test]
fn ten_identical_positive_ratios_give_the_exact_signed_rank_p_value() {
    let mut rng = SplitMix64::new(1);
    let m = p50(&paired_run(vec![paired_case(&mut rng, 10, 0.0, 1.3, |_| 1.0)]));
    assert!((m.ratio - 1.3).abs() < 1e-9, "{m:?}");
    assert!((m.p_value - 2.0 / 1024.0).abs() < 1e-12, "{m:?}");
    assert_eq!(m.verdict, Verdict::Regressed);
    // Throughput fell to 1/1.3 = 0.77: a regression in the bigger-is-better direction.
    let record = paired_run(vec![paired_case(&mut rng, 10, 0.0, 1.3, |_| 1.0)]);
    let comparison = compare_paired(&record, &CompareOptions::default()).unwrap();
    let throughput = comparison.cases[0]
        .metrics
        .iter()
        .find(|m| m.metric == Metric::MessagesPerS)
        .unwrap();
    assert_eq!(throughput.verdict, Verdict::Regressed, "{throughput:?}");
}

#[test]
fn drift_common_to_both_sides_cancels_where_the_unpaired_gate_flags_it() {
    // Both sides x1.5 in rounds 6-10 (the machine got slower for half the run). Paired, every
    // ratio stays near 1: clean. Unpaired, a baseline recorded in the calm half against a run in
    // the slow half (what two runs minutes apart see) is a +50% "regression".
    let slow_half = |round: usize| if round > 5 { 1.5 } else { 1.0 };
    let mut rng = SplitMix64::new(15);
    for seed in 0..40 {
        let case = paired_case(&mut rng, 10, 0.05, 1.0, slow_half);
        let record = paired_run(vec![case.clone()]);
        let comparison = compare_paired(&record, &CompareOptions::default()).unwrap();
        assert!(comparison.passed(), "seed {seed}: {}", verdict::terminal(&comparison));

        let side = |pick: fn(&Pair) -> &Trial, rounds: std::ops::RangeInclusive<usize>| {
            let trials = case
                .pairs
                .iter()
                .filter(|p| rounds.contains(&p.round))
                .map(|p| pick(p).clone())
                .collect();
            let mut c = unfinished_case(NULL, trials);
            finish_case(&mut c, &FinishContext::default());
            run(vec![c])
        };
        let calm_baseline = side(|p| &p.old, 1..=5);
        let drifted_run = side(|p| &p.new, 6..=10);
        let unpaired = compare(&calm_baseline, &drifted_run, &CompareOptions::default()).unwrap();
        assert!(
            !unpaired.passed(),
            "seed {seed}: the unpaired gate should see the drift"
        );
    }
}

#[test]
fn the_paired_gate_detects_smaller_changes_than_the_unpaired_on_drifting_data() {
    // Drift of up to +-30% from round to round, common to both sides, and 3% noise per trial.
    let mut rng = SplitMix64::new(7);
    let drifts: Vec<f64> = (0..10).map(|_| noise(&mut rng, 0.3)).collect();
    let record = paired_run(vec![paired_case(&mut rng, 10, 0.03, 1.0, |r| drifts[r - 1])]);
    let m = p50(&record);
    let (paired, unpaired) = (m.detectable.unwrap(), m.unpaired_detectable.unwrap());
    assert!(paired < 0.2, "{m:?}");
    assert!(unpaired > 2.0 * paired, "paired {paired}, unpaired {unpaired}");
    let text = verdict::terminal(&compare_paired(&record, &CompareOptions::default()).unwrap());
    assert!(text.contains("Smallest detectable change"), "{text}");
    assert!(text.contains("unpaired on the same trials"), "{text}");
}

#[test]
fn five_rounds_are_inconclusive_and_say_so() {
    // The smallest two-sided signed-rank p-value with 5 rounds is 2/32 = 0.0625.
    let mut rng = SplitMix64::new(5);
    let record = paired_run(vec![paired_case(&mut rng, 5, 0.0, 2.0, |_| 1.0)]);
    let comparison = compare_paired(&record, &CompareOptions::default()).unwrap();
    assert_eq!(comparison.cases[0].verdict, Verdict::Inconclusive);
    assert!(
        comparison.cases[0].notes[0].contains("use at least 6 rounds"),
        "{:?}",
        comparison.cases[0].notes
    );
}

#[test]
fn the_summary_says_the_comparison_is_paired_and_how_many_rounds() {
    let mut rng = SplitMix64::new(3);
    let record = paired_run(vec![paired_case(&mut rng, 10, 0.05, 1.0, |_| 1.0)]);
    let comparison = compare_paired(&record, &CompareOptions::default()).unwrap();
    let markdown = verdict::markdown(&comparison, &[]);
    assert!(
        markdown.contains("**Paired comparison**, 10 rounds per case"),
        "{markdown}"
    );
    assert!(markdown.contains("Rule: paired comparison: "), "{markdown}");
    assert!(markdown.contains("Wilcoxon signed-rank"), "{markdown}");
    let terminal = verdict::terminal(&comparison);
    assert!(terminal.contains("paired comparison, 10 rounds per case"), "{terminal}");
}

#[test]
fn a_record_without_pairs_is_refused() {
    let record = run(vec![unfinished_case(NULL, vec![trial(1000.0)])]);
    assert!(compare_paired(&record, &CompareOptions::default()).is_err());
}

struct Again {
    shift: f64,
    rng: SplitMix64,
    calls: usize,
}

impl Rerun for Again {
    type Error = String;
    fn rerun(&mut self, case_ids: &[String], _round: usize, _n_rounds: usize) -> Result<RunRecord, String> {
        assert_eq!(case_ids, [NULL]);
        self.calls += 1;
        Ok(paired_run(vec![paired_case(
            &mut self.rng,
            10,
            0.05,
            self.shift,
            |_| 1.0,
        )]))
    }
}

#[test]
fn confirmation_pools_the_reruns_pairs_and_keeps_only_what_shows_again() {
    let mut rng = SplitMix64::new(9);
    let first = paired_run(vec![paired_case(&mut rng, 10, 0.05, 1.3, |_| 1.0)]);
    let flagged = compare_paired(&first, &CompareOptions::default()).unwrap();
    assert!(!flagged.passed());
    for (shift, confirmed) in [(1.3, true), (1.0, false)] {
        let mut rerun = Again {
            shift,
            rng: SplitMix64::new(10),
            calls: 0,
        };
        let outcome = confirm_paired(flagged.clone(), &CompareOptions::default(), 2, &mut rerun).unwrap();
        let ConfirmOutcome::Decided(decided) = outcome else {
            panic!("interrupted")
        };
        assert_eq!(rerun.calls, 2);
        let confirmation = decided.cases[0].confirmation.as_ref().unwrap();
        assert_eq!(confirmation.n_trials, 20, "two re-runs of 10 rounds pooled");
        assert_eq!((confirmation.confirmed, decided.passed()), (confirmed, !confirmed));
    }
}

#[test]
fn a_case_the_new_side_fails_is_newly_failing_and_one_the_old_side_fails_is_listed() {
    let mut rng = SplitMix64::new(4);
    let mut broken = unfinished_case("pingpong/tcp/64B/c0s1", Vec::new());
    broken.status = ipcbench_record::Status::Failed;
    broken.reason = Some("peer died".into());
    let old_only = unfinished_case("pingpong/uds/64B/c0s1", Vec::new());
    let mut record = paired_run(vec![paired_case(&mut rng, 10, 0.05, 1.0, |_| 1.0), broken, old_only]);
    record
        .paired
        .as_mut()
        .unwrap()
        .old_side_failures
        .push(ipcbench_record::SideFailure {
            case_id: "pingpong/uds/64B/c0s1".into(),
            status: ipcbench_record::Status::Failed,
            reason: "the old binary has no uds".into(),
        });
    let comparison = compare_paired(&record, &CompareOptions::default()).unwrap();
    assert!(!comparison.passed());
    assert_eq!(comparison.cases.len(), 1);
    let tcp = comparison.not_compared.iter().find(|n| n.key.contains("tcp")).unwrap();
    assert!(tcp.newly_failed && tcp.reason.contains("new: peer died"), "{tcp:?}");
    let uds = comparison.not_compared.iter().find(|n| n.key.contains("uds")).unwrap();
    assert!(
        !uds.newly_failed && uds.reason.contains("old: the old binary has no uds"),
        "{uds:?}"
    );
}
