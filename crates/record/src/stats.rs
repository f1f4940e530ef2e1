//! Statistics: percentile sets from HdrHistograms, medians over trials, bootstrap intervals,
//! the Mann-Whitney rank test and least-squares fits.
//!
//! Latencies are recorded in nanoseconds into an HdrHistogram with 3 significant digits and a
//! ceiling of [`HISTOGRAM_MAX_NS`]; a value above the ceiling is an error, never dropped. The
//! headline of a case is the median of its trials' figures, with a 95% percentile-bootstrap
//! interval of that median ([`bootstrap_median_ci`], fixed seed, so a record is reproducible).

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use crate::schema::Percentiles;

/// The largest latency a histogram holds: 100 s (the design asks for at least 10 s).
pub const HISTOGRAM_MAX_NS: u64 = 100_000_000_000;
/// Significant digits kept by every histogram.
pub const HISTOGRAM_SIGFIG: u8 = 3;
/// Bootstrap resamples per interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// A latency above [`HISTOGRAM_MAX_NS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("latency of {0} ns is above the histogram's {HISTOGRAM_MAX_NS} ns ceiling")]
pub struct OutOfRange(pub u64);

/// A new, empty latency histogram (ns).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, HISTOGRAM_SIGFIG).expect("static histogram bounds are valid")
}

/// Records one latency; a value of 0 ns is recorded as 1 ns (below the clock's resolution).
///
/// # Errors
/// [`OutOfRange`] above the ceiling.
pub fn record(histogram: &mut Histogram<u64>, latency_ns: u64) -> Result<(), OutOfRange> {
    histogram.record(latency_ns.max(1)).map_err(|_| OutOfRange(latency_ns))
}

/// The percentile set of a histogram, or `None` when it is empty.
pub fn percentiles(histogram: &Histogram<u64>) -> Option<Percentiles> {
    if histogram.is_empty() {
        return None;
    }
    let q = |quantile: f64| histogram.value_at_quantile(quantile) as f64;
    Some(Percentiles {
        min: histogram.min() as f64,
        p50: q(0.50),
        p90: q(0.90),
        p99: q(0.99),
        p999: q(0.999),
        p9999: q(0.9999),
        max: histogram.max() as f64,
        mean: histogram.mean(),
        stdev: histogram.stdev(),
    })
}

/// Encodes a histogram as V2 + DEFLATE, base64 (the form stored in `run.json`).
pub fn encode_histogram(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .expect("serializing into a Vec cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes a histogram written by [`encode_histogram`].
///
/// # Errors
/// A message naming what is wrong with the text.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram is not HdrHistogram V2: {e:?}"))
}

/// The median of `values` (mean of the middle two for an even count), or `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// Per field, the median over several percentile sets.
pub fn median_percentiles(sets: &[Percentiles]) -> Option<Percentiles> {
    let field = |get: fn(&Percentiles) -> f64| median(&sets.iter().map(get).collect::<Vec<_>>());
    Some(Percentiles {
        min: field(|p| p.min)?,
        p50: field(|p| p.p50)?,
        p90: field(|p| p.p90)?,
        p99: field(|p| p.p99)?,
        p999: field(|p| p.p999)?,
        p9999: field(|p| p.p9999)?,
        max: field(|p| p.max)?,
        mean: field(|p| p.mean)?,
        stdev: field(|p| p.stdev)?,
    })
}

/// SplitMix64: a small, seeded generator, so bootstrap intervals are reproducible.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// A uniform float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// 95% percentile-bootstrap interval of the median of `values` (fixed seed), or `None` when
/// empty. With one value the interval is that value.
pub fn bootstrap_median_ci(values: &[f64]) -> Option<[f64; 2]> {
    bootstrap_ci(values, 0.95, BOOTSTRAP_RESAMPLES, 0x1CB3_900D)
}

/// Percentile-bootstrap interval at `level` of the median of `values`.
pub fn bootstrap_ci(values: &[f64], level: f64, resamples: usize, seed: u64) -> Option<[f64; 2]> {
    if values.is_empty() {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut sample = vec![0.0; values.len()];
    let mut medians: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            for slot in &mut sample {
                *slot = values[rng.below(values.len())];
            }
            median(&sample).expect("non-empty")
        })
        .collect();
    medians.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| medians[((q * (medians.len() - 1) as f64).round() as usize).min(medians.len() - 1)];
    Some([at(tail), at(1.0 - tail)])
}

/// Which null distribution a [`MannWhitney`] p-value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankTestMethod {
    /// The exact permutation distribution of the rank sum (ties handled exactly, with midranks).
    Exact,
    /// The normal approximation with tie and continuity corrections.
    Normal,
}

/// The result of a two-sided Mann-Whitney U (Wilcoxon rank-sum) test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample: the pairs `(x, y)` with `x > y`, plus half the tied pairs.
    /// Ranges from 0 (every `x` below every `y`) to `m * n`.
    pub u: f64,
    /// Two-sided p-value: the chance, with both samples from one distribution, of a rank sum at
    /// least as far from its mean as the one observed.
    pub p_two_sided: f64,
    /// Which distribution `p_two_sided` comes from.
    pub method: RankTestMethod,
}

/// Up to this many values per sample, [`mann_whitney_u`] uses the exact distribution.
pub const MANN_WHITNEY_EXACT_MAX: usize = 20;

/// `n` choose `k` as a float (exact below 2^53, which covers every exact test here).
pub fn binomial(n: usize, k: usize) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64).round()
}

/// The smallest two-sided p-value the exact test can give for samples of `m` and `n` values
/// (all values distinct and the samples fully separated): `2 / C(m + n, m)`, at most 1.
/// `None` when a sample is empty. With 3 vs 3 trials it is 0.1, with 5 vs 5 it is 2/252.
pub fn mann_whitney_min_p(m: usize, n: usize) -> Option<f64> {
    if m == 0 || n == 0 {
        return None;
    }
    Some((2.0 / binomial(m + n, m)).min(1.0))
}

/// Midranks (1-based; tied values share the mean of their ranks) of `values`, in their order,
/// and the tie correction term `sum(t^3 - t)` over groups of `t` tied values.
fn midranks(values: &[f64]) -> (Vec<f64>, f64) {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut ties = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]].total_cmp(&values[order[start]]).is_eq() {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end; their mean:
        let rank = (start + 1 + end) as f64 / 2.0;
        for &idx in &order[start..end] {
            ranks[idx] = rank;
        }
        let t = (end - start) as f64;
        ties += t * t * t - t;
        start = end;
    }
    (ranks, ties)
}

/// The standard normal upper tail `P(Z > z)`.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Chebyshev fit, relative error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Two-sided Mann-Whitney U test of `x` against `y`; `None` when either is empty.
///
/// Up to [`MANN_WHITNEY_EXACT_MAX`] values per sample the p-value comes from the exact
/// distribution of the rank sum over every way of choosing `x`'s positions among the pooled
/// values (with midranks, so ties are exact too); above that, from the normal approximation
/// with tie and continuity corrections.
pub fn mann_whitney_u(x: &[f64], y: &[f64]) -> Option<MannWhitney> {
    let (m, n) = (x.len(), y.len());
    if m == 0 || n == 0 {
        return None;
    }
    let pooled: Vec<f64> = x.iter().chain(y).copied().collect();
    let (ranks, ties) = midranks(&pooled);
    let rank_sum_x: f64 = ranks[..m].iter().sum();
    let u = rank_sum_x - (m * (m + 1)) as f64 / 2.0;
    let big_n = m + n;
    if m <= MANN_WHITNEY_EXACT_MAX && n <= MANN_WHITNEY_EXACT_MAX {
        // Doubled midranks are integers; count the subsets of size m by doubled rank sum.
        let doubled: Vec<usize> = ranks.iter().map(|r| (r * 2.0).round() as usize).collect();
        let max_sum: usize = doubled.iter().sum();
        let mut counts = vec![vec![0.0f64; max_sum + 1]; m + 1];
        counts[0][0] = 1.0;
        for (i, &d) in doubled.iter().enumerate() {
            for k in (1..=m.min(i + 1)).rev() {
                let (lower, upper) = counts.split_at_mut(k);
                let (from, to) = (&lower[k - 1], &mut upper[0]);
                for s in (d..=max_sum).rev() {
                    to[s] += from[s - d];
                }
            }
        }
        let mean = m * (big_n + 1); // the mean of the doubled rank sum
        let observed = (rank_sum_x * 2.0).round() as usize;
        let distance = observed.abs_diff(mean);
        let extreme: f64 = counts[m]
            .iter()
            .enumerate()
            .filter(|(s, _)| s.abs_diff(mean) >= distance)
            .map(|(_, c)| c)
            .sum();
        let p = (extreme / binomial(big_n, m)).min(1.0);
        return Some(MannWhitney {
            u,
            p_two_sided: p,
            method: RankTestMethod::Exact,
        });
    }
    let (mf, nf, bn) = (m as f64, n as f64, big_n as f64);
    let mean = mf * nf / 2.0;
    let variance = mf * nf / 12.0 * ((bn + 1.0) - ties / (bn * (bn - 1.0)));
    let p = if variance <= 0.0 {
        1.0
    } else {
        let z = ((u - mean).abs() - 0.5).max(0.0) / variance.sqrt();
        (2.0 * normal_sf(z)).min(1.0)
    };
    Some(MannWhitney {
        u,
        p_two_sided: p,
        method: RankTestMethod::Normal,
    })
}

/// Percentile-bootstrap interval at `level` of `median(new) / median(old)`, resampling the two
/// samples independently (fixed seed); `None` when either is empty. A resample whose `old`
/// median is 0 gives an infinite (or NaN, sorted last) ratio, so check the point estimate first.
pub fn bootstrap_ratio_ci(old: &[f64], new: &[f64], level: f64, resamples: usize, seed: u64) -> Option<[f64; 2]> {
    if old.is_empty() || new.is_empty() {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut old_sample = vec![0.0; old.len()];
    let mut new_sample = vec![0.0; new.len()];
    let mut ratios: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            for slot in &mut old_sample {
                *slot = old[rng.below(old.len())];
            }
            for slot in &mut new_sample {
                *slot = new[rng.below(new.len())];
            }
            median(&new_sample).expect("non-empty") / median(&old_sample).expect("non-empty")
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| ratios[((q * (ratios.len() - 1) as f64).round() as usize).min(ratios.len() - 1)];
    Some([at(tail), at(1.0 - tail)])
}

/// The result of a two-sided Wilcoxon signed-rank test of paired differences.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignedRank {
    /// W+: the sum of the ranks of `|d|` over the positive differences (midranks for ties).
    /// Ranges from 0 (every difference negative) to `n (n + 1) / 2`.
    pub w_plus: f64,
    /// Differences that were not zero (zeros are dropped, as in Wilcoxon's own method).
    pub n: usize,
    /// Two-sided p-value: the chance, with differences symmetric around 0, of a W+ at least as
    /// far from its mean as the one observed (1 when every difference is zero).
    pub p_two_sided: f64,
    /// Which distribution `p_two_sided` comes from.
    pub method: RankTestMethod,
}

/// Up to this many non-zero differences, [`wilcoxon_signed_rank`] uses the exact distribution.
pub const WILCOXON_EXACT_MAX: usize = 25;

/// The smallest two-sided p-value the signed-rank test can give for `n` non-zero differences
/// (all of one sign): `2 / 2^n`, at most 1. With 5 pairs it is 0.0625 (never below 0.05), with
/// 6 pairs 0.031, with 10 pairs 0.002.
pub fn wilcoxon_min_p(n: usize) -> f64 {
    (2.0 / 2f64.powi(n.min(1000) as i32)).min(1.0)
}

/// Two-sided Wilcoxon signed-rank test of the paired differences `differences` against a
/// distribution symmetric around 0; `None` when there are none.
///
/// Zero differences are dropped. Up to [`WILCOXON_EXACT_MAX`] non-zero differences the p-value
/// comes from the exact distribution of W+ over all `2^n` sign assignments (with midranks, so
/// ties are exact too); above that, from the normal approximation with tie and continuity
/// corrections.
pub fn wilcoxon_signed_rank(differences: &[f64]) -> Option<SignedRank> {
    if differences.is_empty() {
        return None;
    }
    let nonzero: Vec<f64> = differences
        .iter()
        .copied()
        .filter(|d| *d != 0.0 && !d.is_nan())
        .collect();
    let n = nonzero.len();
    if n == 0 {
        return Some(SignedRank {
            w_plus: 0.0,
            n: 0,
            p_two_sided: 1.0,
            method: RankTestMethod::Exact,
        });
    }
    let magnitudes: Vec<f64> = nonzero.iter().map(|d| d.abs()).collect();
    let (ranks, ties) = midranks(&magnitudes);
    let w_plus: f64 = nonzero
        .iter()
        .zip(&ranks)
        .filter(|(d, _)| **d > 0.0)
        .map(|(_, r)| r)
        .sum();
    if n <= WILCOXON_EXACT_MAX {
        // Doubled midranks are integers; count the sign assignments by doubled W+.
        let doubled: Vec<usize> = ranks.iter().map(|r| (r * 2.0).round() as usize).collect();
        let total: usize = doubled.iter().sum();
        let mut counts = vec![0.0f64; total + 1];
        counts[0] = 1.0;
        for &d in &doubled {
            for s in (d..=total).rev() {
                counts[s] += counts[s - d];
            }
        }
        // Twice the mean of the doubled W+ is `total`; compare doubled distances to stay in integers.
        let observed = (w_plus * 2.0).round() as usize;
        let distance = (2 * observed).abs_diff(total);
        let extreme: f64 = counts
            .iter()
            .enumerate()
            .filter(|(s, _)| (2 * s).abs_diff(total) >= distance)
            .map(|(_, c)| c)
            .sum();
        let p = (extreme / 2f64.powi(n as i32)).min(1.0);
        return Some(SignedRank {
            w_plus,
            n,
            p_two_sided: p,
            method: RankTestMethod::Exact,
        });
    }
    let nf = n as f64;
    let mean = nf * (nf + 1.0) / 4.0;
    let variance = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - ties / 48.0;
    let p = if variance <= 0.0 {
        1.0
    } else {
        let z = ((w_plus - mean).abs() - 0.5).max(0.0) / variance.sqrt();
        (2.0 * normal_sf(z)).min(1.0)
    };
    Some(SignedRank {
        w_plus,
        n,
        p_two_sided: p,
        method: RankTestMethod::Normal,
    })
}

/// A straight line fitted by least squares: `y = intercept + slope * x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Change of y per unit of x.
    pub slope: f64,
    /// y at x = 0.
    pub intercept: f64,
    /// Root mean square of the residuals, in y's unit.
    pub residual_rms: f64,
    /// Coefficient of determination (1 = every point on the line; 0 when y is constant).
    pub r_squared: f64,
}

/// Fits `points` (x, y) by ordinary least squares; `None` for fewer than two distinct x.
pub fn least_squares(points: &[(f64, f64)]) -> Option<Fit> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let syy: f64 = points.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = mean_y - slope * mean_x;
    let ss_residual: f64 = points.iter().map(|p| (p.1 - (intercept + slope * p.0)).powi(2)).sum();
    Some(Fit {
        slope,
        intercept,
        residual_rms: (ss_residual / n).sqrt(),
        r_squared: if syy > 0.0 { 1.0 - ss_residual / syy } else { 0.0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_line_is_recovered_with_no_residual() {
        let points: Vec<(f64, f64)> = (0..5)
            .map(|i| (i as f64 * 1000.0, 5e6 + 3000.0 * i as f64 * 1000.0))
            .collect();
        let fit = least_squares(&points).unwrap();
        assert!((fit.slope - 3000.0).abs() < 1e-6, "{fit:?}");
        assert!((fit.intercept - 5e6).abs() < 1e-3, "{fit:?}");
        assert!(fit.residual_rms < 1e-3 && (fit.r_squared - 1.0).abs() < 1e-12);
    }

    #[test]
    fn noisy_line_reports_its_residual() {
        let points = [(0.0, 0.0), (1.0, 2.0), (2.0, 2.0), (3.0, 4.0)];
        let fit = least_squares(&points).unwrap();
        assert!((fit.slope - 1.2).abs() < 1e-9 && (fit.intercept - 0.2).abs() < 1e-9);
        assert!(fit.residual_rms > 0.0 && fit.r_squared < 1.0);
        assert_eq!(least_squares(&[(1.0, 1.0)]), None);
        assert_eq!(least_squares(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn histogram_survives_encoding() {
        let mut h = new_histogram();
        for v in [1, 10, 100, 1_000, 1_000_000, 5_000_000_000] {
            record(&mut h, v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), h.len());
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    #[test]
    fn value_above_ceiling_is_an_error() {
        let mut h = new_histogram();
        assert_eq!(
            record(&mut h, HISTOGRAM_MAX_NS * 2),
            Err(OutOfRange(HISTOGRAM_MAX_NS * 2))
        );
        assert!(h.is_empty());
    }

    #[test]
    fn bootstrap_interval_of_a_constant_is_that_constant() {
        assert_eq!(bootstrap_median_ci(&[5.0; 7]), Some([5.0, 5.0]));
        assert_eq!(bootstrap_median_ci(&[9.0]), Some([9.0, 9.0]));
    }

    #[test]
    fn bootstrap_interval_covers_the_true_median_about_95_percent_of_the_time() {
        // Samples from a uniform [0, 1) distribution, true median 0.5; a fixed seed keeps the
        // count the same on every run. 200 experiments of 25 samples each.
        let mut rng = SplitMix64::new(42);
        let covered = (0..200)
            .filter(|&i| {
                let values: Vec<f64> = (0..25).map(|_| rng.unit()).collect();
                let [lo, hi] = bootstrap_ci(&values, 0.95, 500, i).unwrap();
                lo <= 0.5 && 0.5 <= hi
            })
            .count();
        assert!((176..=200).contains(&covered), "coverage {covered}/200 is far from 95%");
    }

    proptest! {
        #[test]
        fn percentiles_are_monotonic(values in proptest::collection::vec(1u64..10_000_000_000, 1..500)) {
            let mut h = new_histogram();
            for v in &values {
                record(&mut h, *v).unwrap();
            }
            let p = percentiles(&h).unwrap();
            let chain = [p.min, p.p50, p.p90, p.p99, p.p999, p.p9999, p.max];
            prop_assert!(chain.windows(2).all(|w| w[0] <= w[1]), "{chain:?}");
        }

        #[test]
        fn merged_histogram_equals_one_histogram_of_all_samples(
            a in proptest::collection::vec(1u64..1_000_000_000, 1..200),
            b in proptest::collection::vec(1u64..1_000_000_000, 1..200),
        ) {
            let (mut ha, mut hb, mut hall) = (new_histogram(), new_histogram(), new_histogram());
            for v in &a { record(&mut ha, *v).unwrap(); record(&mut hall, *v).unwrap(); }
            for v in &b { record(&mut hb, *v).unwrap(); record(&mut hall, *v).unwrap(); }
            ha.add(&hb).unwrap();
            prop_assert_eq!(percentiles(&ha), percentiles(&hall));
        }

        #[test]
        fn bootstrap_interval_contains_the_median(values in proptest::collection::vec(0.0f64..1e9, 1..20)) {
            let [lo, hi] = bootstrap_median_ci(&values).unwrap();
            let m = median(&values).unwrap();
            prop_assert!(lo <= hi);
            let min = values.iter().cloned().fold(f64::INFINITY, f64::min);
            let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            prop_assert!(min <= lo && hi <= max);
            prop_assert!(min <= m && m <= max);
        }
    }
}
