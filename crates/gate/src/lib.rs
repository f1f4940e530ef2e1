//! The regression gate: two run records in, per-case verdicts out.
//!
//! [`compare`] matches the cases of two [`RunRecord`](ipcbench_record::RunRecord)s and judges
//! every metric into a [`Comparison`]. [`confirm`] re-runs the flagged cases through a
//! [`Rerun`] the caller implements (the gate never runs a plan itself), pools them with
//! [`pool_runs`] and keeps only the regressions that show again. [`verdict`] renders the
//! terminal and Markdown texts, and [`export`] writes the new run's figures for
//! github-action-benchmark and Bencher.
//!
//! Modules use each other in one direction, bottom to top: `metric`; `settings`; `comparison`;
//! `matching`, `judge`, `machine_shift`; `compare`, `paired`, `pool`; `confirm`; `verdict` (its `rule`
//! and `parts` below `terminal` and `markdown`), `export` (`exporter` and `figures` below the
//! formats). No module uses one that uses it back; the crate root only re-exports.
//!
//! # Method
//!
//! Cases are matched by id (see [`match_key`]: an injected `delay_ns` does not change the
//! match, so a run with a slowdown injected on purpose compares against a clean one). For each
//! case present and `ok` in both runs, and for each metric ([`Metric`]: p50 and p99 latency,
//! throughput, CPU per message), the gate looks at the per-trial values of both runs:
//!
//! - the change: `ratio = median(new trials) / median(old trials)`;
//! - its 95% interval: a percentile bootstrap of that ratio, resampling the old and the new
//!   trials independently ([`ipcbench_record::stats::bootstrap_ratio_ci`], fixed seed);
//! - a two-sided Mann-Whitney U rank test of the new trials against the old
//!   ([`ipcbench_record::stats::mann_whitney_u`]: exact distribution up to 20 trials per side).
//!
//! **The rule** that turns these into a verdict is stated once, in [`verdict::RULE`]: the text every
//! verdict prints, terminal and Markdown alike ([`verdict::rule_text`]). The limit it names is
//! the metric's threshold ([`GateSettings`]) or, when larger, the baseline's own noise
//! ([`relative_spread`]).
//!
//! It *improves* under the mirror-image conditions. A case regresses when any of its metrics
//! does. The two statistical conditions guard each other: the rank test has an exact
//! false-alarm rate whatever the trials' distribution, and one wild trial moves it by one rank
//! only, but it says nothing about size; the interval says how large the change is and in which
//! direction, but a percentile bootstrap over five values has no exact guarantee. Requiring both
//! costs little (on simulated A/A pairs of 5 trials the rank test alone fires 3.2% of the time,
//! both together 2.5%). With 5 trials per side the exact test reaches `p < 0.05` only when at
//! most two of the 25 (old, new) pairs are out of order, so scattered noise cannot pass it; the
//! threshold then keeps real but negligible shifts (a busy neighbour, a warmer cache) from
//! failing a build.
//!
//! Why the interval and not the point must clear the threshold: a run-to-run shift can be
//! "significant" (every new trial above every old one) without being a regression. On the
//! 2-vCPU build machine the p99 of same-core ping-pong is bimodal between runs: the reference
//! run of `ci.toml` had pipe 64 B p99 trials of 2.8-6.7 us (median 4.8), five later unchanged
//! runs 6.3-8.0 us. With the point rule every one of five A/A comparisons failed (p99 +44% to
//! +59%, intervals from 1.04 or 1.14 up); with the interval rule none did, while an injected 30%
//! slowdown still clears it (interval 1.30-1.36 against the 1.10 needed). The price is
//! sensitivity on noisy metrics, and that is the honest answer: trials that scatter over 2x
//! cannot tell a 25% change from none.
//!
//! Why the baseline's noise as well: some metrics are bimodal from trial to trial. Cross-core
//! `inproc` at 4 KiB, for one, has trials at ~3 µs or ~60 µs p50 as its threads happen to spin
//! or sleep, and its baseline's throughput trials ranged 30-60 k/s. A later unchanged run that
//! drew the slow mode four times out of five had a throughput interval of 0.34-0.82, clear of
//! the 10% threshold: a "regression" made of the mode lottery. A change no larger than the
//! baseline's own scatter between trials cannot be told from that scatter, so such a metric
//! only fails for a change beyond it, and the comparison shows its noise so the reader knows.
//!
//! **p99 against the machine.** The tails of a VM move with its host: in one of five unchanged
//! runs of `ci.toml` on the build machine the p99 of every same-core case rose 1.5-2.2x (median
//! 1.95x) with p50 unchanged, all five trials of each case alike, so neither the rank test nor
//! the baseline's scatter could call it noise. So p99 is judged against its placement's
//! machine-wide change ([`MACHINE_SHIFT_MIN_CASES`] or more cases): when the median p99 ratio
//! of, say, the same-core cases is above 1, each of their p99 intervals is divided by it first,
//! and a comparison note reports the shift when it exceeds the p99 threshold. One case whose
//! tail grew beyond what the whole machine's did still regresses. The price: a change that
//! worsens *every* case's p99 alike shows as that note, not as a regression.
//!
//! With too few trials no change can be significant: the smallest exact two-sided p-value for
//! `m` vs `n` trials is `2 / C(m + n, m)` (0.1 for 3 vs 3), and such cases are reported as
//! [`Verdict::Inconclusive`] instead of silently passing.
//!
//! Runs from different machines (CPU model, core count, kernel; the agents' machines too) are refused unless the caller
//! allows it, and then the comparison says so.
//!
//! **Paired comparisons.** [`compare_paired`] judges one record in which each round of each
//! case ran the old and the new binary back to back (`ipcbench ci --against`): the median of
//! the per-round ratios, its bootstrap interval, and a Wilcoxon signed-rank test across rounds,
//! under the same thresholds and confirmation ([`confirm_paired`]); see the `paired` module.
//! Every metric comparison also says the smallest change it could have detected
//! ([`detectable_change`]).
#![forbid(unsafe_code)]

mod compare;
mod comparison;
mod confirm;
pub mod export;
mod judge;
mod machine_shift;
mod matching;
mod metric;
mod paired;
mod pool;
mod settings;
pub mod verdict;

pub use compare::{CompareError, compare, compare_common};
pub use comparison::{
    COMPARE_SCHEMA, CaseComparison, ChartRow, Comparison, Confirmation, MetricComparison, NotCompared, PairedInfo,
    RunInfo, Verdict,
};
pub use confirm::{ConfirmError, ConfirmOutcome, Rerun, confirm, confirm_paired};
pub use judge::{INTERVAL_LEVEL, RATIO_RESAMPLES, RATIO_SEED, compare_metric, detectable_change, relative_spread};
pub use machine_shift::MACHINE_SHIFT_MIN_CASES;
pub use matching::{machine_differences, match_key, run_machine_differences};
pub use metric::{Metric, ThresholdKey};
pub use paired::{compare_paired, compare_paired_metric, pair_ratios};
pub use pool::pool_runs;
pub use settings::{CompareOptions, DEFAULT_ALPHA, GATE_KEYS, GateSettings, GateTable, SettingsError};
