//! The gate's statistics against hand-computed answers: Mann-Whitney U and its exact and
//! approximate p-values, the Wilcoxon signed-rank test of paired differences, and the coverage of the bootstrap interval of a ratio of medians.

use ipcbench_record::stats::{
    RankTestMethod, SplitMix64, binomial, bootstrap_ratio_ci, mann_whitney_min_p, mann_whitney_u, normal_sf,
    wilcoxon_min_p, wilcoxon_signed_rank,
};

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

#[test]
fn fully_separated_three_vs_three_gives_u_zero_and_p_one_tenth() {
    // Of the C(6,3) = 20 ways to place x among the pooled values, one puts all of x lowest and
    // one puts all of x highest: p = 2/20.
    let r = mann_whitney_u(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]).unwrap();
    assert_eq!(r.u, 0.0);
    assert_eq!(r.method, RankTestMethod::Exact);
    assert!(close(r.p_two_sided, 0.1, 1e-12), "{}", r.p_two_sided);
    let flipped = mann_whitney_u(&[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(flipped.u, 9.0);
    assert!(close(flipped.p_two_sided, 0.1, 1e-12));
}

#[test]
fn fully_separated_five_vs_five_gives_p_two_in_252() {
    let old = [10.0, 11.0, 12.0, 13.0, 14.0];
    let new = [15.0, 16.0, 17.0, 18.0, 19.0];
    let r = mann_whitney_u(&new, &old).unwrap();
    assert_eq!(r.u, 25.0);
    assert!(close(r.p_two_sided, 2.0 / 252.0, 1e-12), "{}", r.p_two_sided);
    assert!(close(mann_whitney_min_p(5, 5).unwrap(), 2.0 / 252.0, 1e-15));
}

#[test]
fn interleaved_three_vs_three_gives_u_three_and_p_seven_tenths() {
    // x = {1, 3, 5}, y = {2, 4, 6}: the pairs with x > y are (3,2), (5,2), (5,4), so U = 3.
    // U for 3 vs 3 takes 0..=9 with counts 1,1,2,3,3,3,3,2,1,1; |U - 4.5| >= 1.5 covers
    // 1+1+2+3 + 3+2+1+1 = 14 of 20.
    let r = mann_whitney_u(&[1.0, 3.0, 5.0], &[2.0, 4.0, 6.0]).unwrap();
    assert_eq!(r.u, 3.0);
    assert!(close(r.p_two_sided, 0.7, 1e-12), "{}", r.p_two_sided);
}

#[test]
fn ties_use_midranks_and_the_exact_tied_distribution() {
    // Pooled 1,2,2,2,3,4 has midranks 1,3,3,3,5,6. x = {1,2,2} has rank sum 7, so U = 7 - 6 = 1
    // (no pair with x > y, two tied pairs count one half each). Doubled rank sums of the 20
    // subsets: 14 (3 ways), 18 (4), 20 (3), 22 (3), 24 (4), 28 (3); the mean is 21, and
    // |S - 21| >= 7 holds for 14 and 28: p = 6/20.
    let r = mann_whitney_u(&[1.0, 2.0, 2.0], &[2.0, 3.0, 4.0]).unwrap();
    assert_eq!(r.u, 1.0);
    assert!(close(r.p_two_sided, 0.3, 1e-12), "{}", r.p_two_sided);
}

#[test]
fn ties_across_unequal_samples_match_a_brute_force_count() {
    // x = {3,1,4,1}, y = {5,9,2,6,5,3}: counted by enumerating all C(10,4) = 210 subsets of the
    // midranks: 18 are at least as extreme as the observed rank sum. U = 3.5.
    let r = mann_whitney_u(&[3.0, 1.0, 4.0, 1.0], &[5.0, 9.0, 2.0, 6.0, 5.0, 3.0]).unwrap();
    assert_eq!(r.u, 3.5);
    assert!(close(r.p_two_sided, 18.0 / 210.0, 1e-12), "{}", r.p_two_sided);
}

#[test]
fn identical_samples_give_p_one() {
    let values = [5.0, 1.0, 4.0, 2.0, 3.0];
    let r = mann_whitney_u(&values, &values).unwrap();
    assert_eq!(r.u, 12.5);
    assert!(close(r.p_two_sided, 1.0, 1e-12));
    let constant = mann_whitney_u(&[7.0; 5], &[7.0; 5]).unwrap();
    assert!(close(constant.p_two_sided, 1.0, 1e-12));
}

#[test]
fn large_samples_use_the_tie_corrected_normal_approximation() {
    // x = 1..=21, y = 11..=31: 11 tied pairs of values. By hand: midrank sum of x gives
    // U = 60.5; mean 220.5; variance 441/12 * (43 - 110/1722) = 1578.84; with the continuity
    // correction z = (160 - 0.5) / 39.734 = 4.01413, and p = erfc(z / sqrt 2) = 5.9665e-5.
    let x: Vec<f64> = (1..=21).map(f64::from).collect();
    let y: Vec<f64> = (11..=31).map(f64::from).collect();
    let r = mann_whitney_u(&x, &y).unwrap();
    assert_eq!(r.method, RankTestMethod::Normal);
    assert_eq!(r.u, 60.5);
    assert!(close(r.p_two_sided, 5.9665e-5, 1e-8), "{}", r.p_two_sided);
}

#[test]
fn normal_tail_matches_tables() {
    assert!(close(normal_sf(0.0), 0.5, 1e-7));
    assert!(close(normal_sf(1.959_964), 0.025, 1e-6));
    assert!(close(normal_sf(-1.0), 0.841_344_7, 1e-6));
}

#[test]
fn smallest_p_value_says_when_trials_are_too_few() {
    assert_eq!(binomial(10, 5), 252.0);
    assert!(close(mann_whitney_min_p(3, 3).unwrap(), 0.1, 1e-15));
    assert!(close(mann_whitney_min_p(3, 5).unwrap(), 2.0 / 56.0, 1e-15));
    assert!(close(mann_whitney_min_p(4, 4).unwrap(), 2.0 / 70.0, 1e-15));
    assert_eq!(mann_whitney_min_p(1, 1), Some(1.0));
    assert_eq!(mann_whitney_min_p(0, 5), None);
    assert!(mann_whitney_u(&[], &[1.0]).is_none());
}

#[test]
fn ratio_interval_of_constants_is_the_ratio() {
    assert_eq!(
        bootstrap_ratio_ci(&[100.0; 5], &[130.0; 5], 0.95, 1000, 1),
        Some([1.3, 1.3])
    );
    assert_eq!(bootstrap_ratio_ci(&[], &[1.0], 0.95, 1000, 1), None);
}

/// `n` draws from a population whose median is `median`: uniform on [0.8, 1.2] x median.
fn draw(rng: &mut SplitMix64, n: usize, median: f64) -> Vec<f64> {
    (0..n).map(|_| median * (0.8 + 0.4 * rng.unit())).collect()
}

#[test]
fn ratio_interval_covers_the_true_ratio_about_95_percent_of_the_time() {
    // 400 experiments with a true ratio of medians of 1.3 and 25 values per side; the seeds are
    // fixed, so the count is the same on every run (here 387 of 400, 97%).
    let mut rng = SplitMix64::new(7);
    let covered = (0..400)
        .filter(|&i| {
            let old = draw(&mut rng, 25, 1000.0);
            let new = draw(&mut rng, 25, 1300.0);
            let [lo, hi] = bootstrap_ratio_ci(&old, &new, 0.95, 1000, i).unwrap();
            lo <= 1.3 && 1.3 <= hi
        })
        .count();
    assert!((360..=400).contains(&covered), "coverage {covered}/400 is far from 95%");
}

#[test]
fn on_a_a_pairs_of_five_trials_the_combined_rule_fires_less_often_than_alpha() {
    // Same population on both sides (true ratio 1), 5 trials per side, 1000 pairs with fixed
    // seeds. The exact rank test alone fires with probability 8/252 = 3.2% at alpha = 0.05 (its
    // p-values below 0.05 are 2/252, 4/252 and 8/252); the interval alone fires 27 times here;
    // both together 25 times.
    let mut rng = SplitMix64::new(11);
    let (mut rank_only, mut interval_only, mut both) = (0, 0, 0);
    for i in 0..1000 {
        let old = draw(&mut rng, 5, 1000.0);
        let new = draw(&mut rng, 5, 1000.0);
        let [lo, hi] = bootstrap_ratio_ci(&old, &new, 0.95, 500, i).unwrap();
        let excludes = lo > 1.0 || hi < 1.0;
        let significant = mann_whitney_u(&new, &old).unwrap().p_two_sided < 0.05;
        rank_only += usize::from(significant);
        interval_only += usize::from(excludes);
        both += usize::from(excludes && significant);
    }
    assert!(
        (15..=50).contains(&rank_only),
        "the rank test fired {rank_only}/1000 times"
    );
    assert!(
        both <= 50,
        "the combined rule fired {both}/1000 times, above alpha (interval alone: {interval_only})"
    );
    assert!(both <= rank_only.min(interval_only));
}

#[test]
fn five_positive_differences_give_w_fifteen_and_p_one_sixteenth() {
    // Of the 2^5 = 32 sign assignments one makes every difference positive (W+ = 15) and one
    // every difference negative (W+ = 0): p = 2/32. Five pairs can never reach p < 0.05.
    let r = wilcoxon_signed_rank(&[0.1, 0.2, 0.3, 0.4, 0.5]).unwrap();
    assert_eq!((r.w_plus, r.n, r.method), (15.0, 5, RankTestMethod::Exact));
    assert!(close(r.p_two_sided, 2.0 / 32.0, 1e-12), "{}", r.p_two_sided);
    assert!(close(wilcoxon_min_p(5), 0.0625, 1e-15));
    assert!(close(wilcoxon_min_p(6), 2.0 / 64.0, 1e-15));
    assert!(close(wilcoxon_min_p(10), 2.0 / 1024.0, 1e-15));
}

#[test]
fn one_negative_smallest_difference_of_five_gives_p_one_eighth() {
    // d = -1, 2, 3, 4, 5: W+ = 14, the mean is 7.5. At least as extreme: W+ = 15, 14 (one
    // assignment each) and W+ = 0, 1 (one each): 4/32.
    let r = wilcoxon_signed_rank(&[-1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    assert_eq!(r.w_plus, 14.0);
    assert!(close(r.p_two_sided, 0.125, 1e-12), "{}", r.p_two_sided);
}

#[test]
fn alternating_signs_of_four_give_p_seven_eighths() {
    // d = 1, -2, 3, -4: W+ = 1 + 3 = 4, the mean is 5. W+ over the 16 subsets of {1,2,3,4}
    // takes 0..=10 with counts 1,1,1,2,2,2,2,2,1,1,1; only W+ = 5 (2 ways) is closer: 14/16.
    let r = wilcoxon_signed_rank(&[1.0, -2.0, 3.0, -4.0]).unwrap();
    assert_eq!(r.w_plus, 4.0);
    assert!(close(r.p_two_sided, 0.875, 1e-12), "{}", r.p_two_sided);
}

#[test]
fn tied_magnitudes_use_midranks_and_the_exact_tied_distribution() {
    // |d| = 1, 1, 1, 2 have midranks 2, 2, 2, 4 (doubled 4, 4, 4, 8, total 20). W+ = 2 + 2 + 4
    // = 8, doubled 16, mean doubled 10. Doubled sums of the 16 subsets: 0 (1 way), 4 (3), 8 (4),
    // 12 (4), 16 (3), 20 (1); |S - 10| >= 6 holds for 0, 4, 16, 20: 8/16.
    let r = wilcoxon_signed_rank(&[1.0, 1.0, -1.0, 2.0]).unwrap();
    assert_eq!(r.w_plus, 8.0);
    assert!(close(r.p_two_sided, 0.5, 1e-12), "{}", r.p_two_sided);
}

#[test]
fn zero_differences_are_dropped() {
    let r = wilcoxon_signed_rank(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    assert_eq!((r.n, r.w_plus), (6, 21.0));
    assert!(close(r.p_two_sided, 2.0 / 64.0, 1e-12), "{}", r.p_two_sided);
    let none = wilcoxon_signed_rank(&[0.0, 0.0]).unwrap();
    assert_eq!((none.n, none.p_two_sided), (0, 1.0));
    assert!(wilcoxon_signed_rank(&[]).is_none());
}

#[test]
fn thirty_positive_differences_use_the_normal_approximation() {
    // W+ = 465, mean 232.5, variance 30 * 31 * 61 / 24 = 2363.75; z = (232.5 - 0.5) / 48.618
    // = 4.772, two-sided p = 1.82e-6.
    let d: Vec<f64> = (1..=30).map(f64::from).collect();
    let r = wilcoxon_signed_rank(&d).unwrap();
    assert_eq!((r.w_plus, r.method), (465.0, RankTestMethod::Normal));
    assert!(close(r.p_two_sided, 1.82e-6, 0.02e-6), "{}", r.p_two_sided);
}

#[test]
fn the_exact_and_the_normal_distribution_agree_near_the_switch() {
    // 25 differences, the exact limit, with a mixed sign pattern: the normal approximation with
    // continuity correction is within 0.01 of the exact p-value.
    let d: Vec<f64> = (1..=25)
        .map(|i| if i % 3 == 0 { -f64::from(i) } else { f64::from(i) })
        .collect();
    let exact = wilcoxon_signed_rank(&d).unwrap();
    assert_eq!(exact.method, RankTestMethod::Exact);
    let nf = 25.0f64;
    let z = ((exact.w_plus - nf * (nf + 1.0) / 4.0).abs() - 0.5) / (nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0).sqrt();
    assert!(
        close(exact.p_two_sided, 2.0 * normal_sf(z), 0.01),
        "{} vs {}",
        exact.p_two_sided,
        2.0 * normal_sf(z)
    );
}
