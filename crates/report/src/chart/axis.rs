//! Axes: which scale, which ticks, which labels.
//!
//! Every chart plots in *transformed* coordinates (log10 or log2 of the value, or the value
//! itself), so plotters only ever sees a linear f64 range; an [`Axis`] maps values in and
//! carries the ticks and their labels. That keeps tick choice under our control: decades (or
//! 1-2-5 steps) on log axes, powers of two on size axes, the HdrHistogram percentile ticks.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;

/// How values map onto the axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scale {
    /// `log10(value)`.
    Log10,
    /// `log2(value)`.
    Log2,
    /// The value itself.
    Linear,
    /// `log10(1 / (1 - p))` of a quantile `p` (the percentile spectrum).
    Percentile,
}

/// One axis: scale, range and ticks, all in transformed coordinates.
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    pub scale: Scale,
    /// Lower end (transformed).
    pub lo: f64,
    /// Upper end (transformed).
    pub hi: f64,
    /// Labelled ticks (transformed) and their labels.
    pub major: Vec<(f64, String)>,
    /// Unlabelled grid lines (transformed).
    pub minor: Vec<f64>,
}

impl Axis {
    /// A value in axis coordinates.
    pub fn t(&self, value: f64) -> f64 {
        match self.scale {
            Scale::Log10 => value.max(f64::MIN_POSITIVE).log10(),
            Scale::Log2 => value.max(f64::MIN_POSITIVE).log2(),
            Scale::Linear => value,
            Scale::Percentile => (1.0 / (1.0 - value.min(1.0 - 1e-12))).log10(),
        }
    }

    /// A value clamped into the axis range, in axis coordinates.
    pub fn t_clamped(&self, value: f64) -> f64 {
        self.t(value).clamp(self.lo, self.hi)
    }

    /// True when the axis shows a log scale (the axis title says so).
    pub fn is_log(&self) -> bool {
        self.scale != Scale::Linear
    }

    /// The plotters coordinate: the range with our ticks bound to it.
    pub fn coord(&self) -> Ticks {
        // plotters draws grid lines even outside the range; keep only those inside.
        let slack = (self.hi - self.lo).abs() * 1e-9;
        let inside = |t: &f64| *t >= self.lo - slack && *t <= self.hi + slack;
        Ticks {
            range: (self.lo..self.hi).into(),
            bold: self.major.iter().map(|(t, _)| *t).filter(inside).collect(),
            light: self.minor.iter().copied().filter(inside).collect(),
        }
    }

    /// The label of the tick at `t` (empty for an unknown position).
    pub fn label(&self, t: f64) -> String {
        self.major
            .iter()
            .find(|(tick, _)| (tick - t).abs() < 1e-9)
            .map(|(_, label)| label.clone())
            .unwrap_or_default()
    }

    /// Keeps every k-th labelled tick so that at most `n` remain (for narrow panels); the
    /// dropped ones stay as light grid lines.
    pub fn thin(mut self, n: usize) -> Axis {
        let len = self.major.len();
        if n > 0 && len > n {
            let step = len.div_ceil(n);
            let (keep, drop): (Vec<_>, Vec<_>) = self.major.into_iter().enumerate().partition(|(i, _)| i % step == 0);
            self.major = keep.into_iter().map(|(_, m)| m).collect();
            self.minor.extend(drop.into_iter().map(|(_, (t, _))| t));
        }
        self
    }

    /// A log10 axis over values in `[min, max]` (both > 0): decades when the data spans
    /// several, else 1-2-5 steps, else every integer mantissa, and linear steps in the last
    /// resort; the ends are rounded out to the nearest 1-2-5 (or integer) mantissa.
    pub fn log10(min: f64, max: f64, format: impl Fn(f64) -> String) -> Axis {
        let (min, max) = positive_range(min, max);
        let span = max.log10() - min.log10();
        // Keep points and lines off the plot's edges.
        let margin = 10f64.powf((span * 0.03).max(0.02));
        let (min, max) = (min / margin, max * margin);
        let fine: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let one_two_five: &[f64] = &[1.0, 2.0, 5.0];
        let (labelled, edges): (&[f64], &[f64]) = if span >= 2.5 {
            (&[1.0], one_two_five)
        } else if span >= 0.7 {
            (one_two_five, one_two_five)
        } else {
            (fine, fine)
        };
        let lo = step_below(min, edges);
        let hi = step_above(max, edges);
        let grid = mantissa_steps(lo, hi, fine);
        let mut major: Vec<f64> = mantissa_steps(lo, hi, labelled);
        let mut minor: Vec<f64> = grid.iter().copied().filter(|v| !major.contains(v)).collect();
        if major.len() < 3 {
            major = linear_steps(lo, hi, 5)
                .into_iter()
                .filter(|v| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9) && *v > 0.0)
                .collect();
            minor.clear();
        }
        Axis {
            scale: Scale::Log10,
            lo: lo.log10(),
            hi: hi.log10(),
            major: major.iter().map(|v| (v.log10(), format(*v))).collect(),
            minor: minor.iter().map(|v| v.log10()).collect(),
        }
    }

    /// A log10 axis for ratios around 1 (new / old): ticks at round ratios such as 0.8×,
    /// 0.9×, 1×, 1.1×, 1.25×, 1.5×, 2×, thinned so that labels keep apart; 1× is always shown.
    pub fn ratio(min: f64, max: f64, format: impl Fn(f64) -> String) -> Axis {
        let (min, max) = positive_range(min.min(1.0), max.max(1.0));
        let span = max.log10() - min.log10();
        let margin = 10f64.powf((span * 0.08).max(0.01));
        let (lo, hi) = ((min / margin).log10(), (max * margin).log10());
        // Over more than a decade, 1-2-5 steps read best; closer in, percent-like steps.
        let (above, below): (&[f64], &[f64]) = if hi - lo > 1.0 {
            // 1-2-5 steps lie at least log10(2) apart; when that is too tight, decades.
            if 2f64.log10() >= (hi - lo) / 12.0 {
                (&[1.0, 2.0, 5.0], &[0.5, 0.2, 0.1])
            } else {
                (&[1.0], &[0.1])
            }
        } else {
            (
                &[1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0],
                &[0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15],
            )
        };
        let mut candidates: Vec<f64> = Vec::new();
        for d in 0..=4 {
            let decade = 10f64.powi(d);
            candidates.extend(above.iter().map(|m| m * decade));
            candidates.extend(below.iter().map(|m| m / decade));
        }
        candidates.retain(|v| v.log10() >= lo && v.log10() <= hi);
        candidates.sort_by(f64::total_cmp);
        candidates.dedup_by(|a, b| (*a / *b - 1.0).abs() < 1e-9);
        // Walk outwards from 1x, keeping ticks at least a twelfth of the axis apart.
        let min_gap = (hi - lo) / 12.0;
        let mut ticks = vec![1.0f64];
        for v in candidates.iter().copied().filter(|v| *v > 1.0) {
            if v.log10() - ticks.last().copied().unwrap_or(1.0).log10() >= min_gap {
                ticks.push(v);
            }
        }
        let mut below = vec![1.0f64];
        for v in candidates.iter().rev().copied().filter(|v| *v < 1.0) {
            if below.last().copied().unwrap_or(1.0).log10() - v.log10() >= min_gap {
                below.push(v);
            }
        }
        ticks.extend(below.into_iter().skip(1));
        ticks.sort_by(f64::total_cmp);
        // Light lines at the 1-2-5 steps that did not get a label.
        let minor = (-4..=4)
            .flat_map(|d| [1.0, 2.0, 5.0].map(|m: f64| (m * 10f64.powi(d)).log10()))
            .filter(|t| *t >= lo && *t <= hi && !ticks.iter().any(|v| (v.log10() - t).abs() < 1e-9))
            .collect();
        Axis {
            scale: Scale::Log10,
            lo,
            hi,
            major: ticks.iter().map(|v| (v.log10(), format(*v))).collect(),
            minor,
        }
    }

    /// A linear axis from 0 (or `min` when it is negative) to a round number above `max`.
    pub fn linear_from_zero(min: f64, max: f64, format: impl Fn(f64) -> String) -> Axis {
        Axis::linear_in_units(min, max, 1.0, format)
    }

    /// A linear axis of byte counts from 0 (or below, for negative values), with ticks at
    /// round numbers of B, KiB, MiB or GiB.
    pub fn linear_bytes(min: f64, max: f64) -> Axis {
        let top = max.abs().max(min.abs());
        let (unit, name) = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
            .into_iter()
            .map(|(u, name)| (u as f64, name))
            .find(|(u, _)| top >= *u)
            .unwrap_or((1.0, "B"));
        let label = move |v: f64| {
            if v == 0.0 {
                "0 B".to_owned()
            } else {
                format!("{} {name}", crate::format::significant(v / unit, 3))
            }
        };
        Axis::linear_in_units(min, max, unit, label)
    }

    /// A linear axis whose ticks are round multiples of `unit`.
    fn linear_in_units(min: f64, max: f64, unit: f64, format: impl Fn(f64) -> String) -> Axis {
        // A dip of a few percent below zero (noise in a growth figure) does not earn a tick.
        let min = if min < 0.0 && -min < 0.02 * max.abs() { 0.0 } else { min };
        let lo = min.min(0.0);
        let hi = if max > lo { max } else { lo + unit };
        let ticks: Vec<f64> = linear_steps(lo / unit, hi / unit, 6)
            .into_iter()
            .map(|t| t * unit)
            .collect();
        let lo = ticks.first().copied().unwrap_or(lo).min(lo);
        let hi = ticks.last().copied().unwrap_or(hi).max(hi);
        Axis {
            scale: Scale::Linear,
            lo,
            hi,
            major: ticks.iter().map(|v| (*v, format(*v))).collect(),
            minor: Vec::new(),
        }
    }

    /// A log10 axis when the values span a factor of 10 or more, else linear from zero.
    pub fn auto(min: f64, max: f64, format: impl Fn(f64) -> String) -> Axis {
        if min > 0.0 && max / min >= 10.0 {
            Axis::log10(min, max, format)
        } else {
            Axis::linear_from_zero(min.min(0.0), max, format)
        }
    }

    /// A log2 axis for sizes or windows: ticks at the values themselves when there are few,
    /// else at every k-th power of two; half a step of padding on each side.
    pub fn log2(values: &[f64], format: impl Fn(f64) -> String) -> Axis {
        let mut distinct: Vec<f64> = values.iter().copied().filter(|v| *v > 0.0).collect();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        if distinct.is_empty() {
            distinct.push(1.0);
        }
        let (a, b) = (distinct[0].log2(), distinct[distinct.len() - 1].log2());
        let span = b - a;
        let pad = if span < 1.0 { 1.0 } else { (span * 0.04).max(0.5) };
        let (lo, hi) = (a - pad, b + pad);
        let major: Vec<f64> = if distinct.len() <= 10 {
            // Ticks at the measured values, dropping any that would crowd its neighbour.
            let min_gap = (span / 16.0).max(0.0);
            let mut ticks: Vec<f64> = Vec::new();
            for v in &distinct {
                if ticks.last().is_none_or(|last: &f64| v.log2() - last.log2() > min_gap) {
                    ticks.push(*v);
                }
            }
            ticks
        } else {
            let first = lo.ceil() as i64;
            let last = hi.floor() as i64;
            let step = (((last - first + 1) as f64) / 11.0).ceil().max(1.0) as i64;
            (first..=last)
                .filter(|e| e.rem_euclid(step) == 0)
                .map(|e| 2f64.powi(e as i32))
                .collect()
        };
        // Light lines at powers of two only help when the labels are powers of two too.
        let powers_of_two = major.iter().all(|v| v.log2().fract().abs() < 1e-9);
        let minor: Vec<f64> = if span >= 2.0 && powers_of_two {
            (lo.ceil() as i64..=hi.floor() as i64)
                .map(|e| e as f64)
                .filter(|e| !major.iter().any(|m| (m.log2() - e).abs() < 1e-9))
                .collect()
        } else {
            Vec::new()
        };
        Axis {
            scale: Scale::Log2,
            lo,
            hi,
            major: major.iter().map(|v| (v.log2(), format(*v))).collect(),
            minor,
        }
    }

    /// The percentile axis of a spectrum: 0% to `10^-decades` short of 100%, ticks at 0%, 90%,
    /// 99%, ... and light lines at 50% and 75%.
    pub fn percentile(decades: u32) -> Axis {
        let decades = decades.clamp(1, 6);
        let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"];
        Axis {
            scale: Scale::Percentile,
            lo: 0.0,
            hi: f64::from(decades),
            major: (0..=decades as usize)
                .map(|d| (d as f64, labels[d].to_owned()))
                .collect(),
            minor: [2.0f64, 4.0, 20.0, 40.0, 200.0, 2000.0]
                .iter()
                .map(|x| x.log10())
                .filter(|x| *x < f64::from(decades))
                .collect(),
        }
    }
}

/// A linear f64 range with fixed grid lines: ours instead of plotters' automatic ones.
///
/// (plotters' own `WithKeyPoints<RangedCoordf64>` cannot draw a mesh: f64 ranges opt out of
/// the default label formatting, and the wrapper inherits that.)
pub(crate) struct Ticks {
    range: RangedCoordf64,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Ranged for Ticks {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.range.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.range()
    }
}

/// `(min, max)` made positive and non-degenerate for a log axis.
fn positive_range(min: f64, max: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let min = if min.is_finite() && min > 0.0 {
        min.min(max)
    } else {
        max / 10.0
    };
    if max / min < 1.05 {
        (min / 1.25, max * 1.25)
    } else {
        (min, max)
    }
}

fn decade(v: f64) -> f64 {
    10f64.powf(v.log10().floor())
}

/// The largest `m * 10^k` (m in `mantissas`) at or below `v`.
fn step_below(v: f64, mantissas: &[f64]) -> f64 {
    let d = decade(v);
    let mut best = d;
    for m in mantissas {
        let candidate = m * d;
        if candidate <= v * (1.0 + 1e-9) {
            best = candidate;
        }
    }
    best
}

/// The smallest `m * 10^k` (m in `mantissas`) at or above `v`.
fn step_above(v: f64, mantissas: &[f64]) -> f64 {
    let d = decade(v);
    for m in mantissas {
        let candidate = m * d;
        if candidate >= v * (1.0 - 1e-9) {
            return candidate;
        }
    }
    10.0 * d
}

/// Every `m * 10^k` with m in `mantissas` between `lo` and `hi` inclusive.
fn mantissa_steps(lo: f64, hi: f64, mantissas: &[f64]) -> Vec<f64> {
    let mut out = Vec::new();
    let mut d = decade(lo);
    while d <= hi * (1.0 + 1e-9) {
        for m in mantissas {
            let v = m * d;
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                out.push(v);
            }
        }
        d *= 10.0;
    }
    out
}

/// Round linear steps (1, 2 or 5 times a power of ten) covering `[lo, hi]`, about `n` of them.
pub(crate) fn linear_steps(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi - lo) / n.max(1) as f64;
    if raw.is_nan() || raw <= 0.0 {
        return vec![lo];
    }
    let d = decade(raw);
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * d)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * d);
    let first = (lo / step).floor() as i64;
    let last = (hi / step - 1e-9).ceil() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(axis: &Axis) -> Vec<String> {
        axis.major.iter().map(|(_, l)| l.clone()).collect()
    }

    #[test]
    fn log_axis_over_decades_labels_decades() {
        let axis = Axis::log10(23.0, 3.2e6, |v| format!("{v}"));
        assert_eq!(labels(&axis), ["10", "100", "1000", "10000", "100000", "1000000"]);
        assert!(axis.lo <= 23f64.log10() && axis.hi >= 3.2e6f64.log10());
    }

    #[test]
    fn narrow_log_axis_still_has_three_labels() {
        for (min, max) in [(4.1, 4.3), (2.0, 7.0), (5.0, 5.0), (1000.0, 1900.0)] {
            let axis = Axis::log10(min, max, |v| format!("{v}"));
            assert!(axis.major.len() >= 3, "{min}..{max}: {:?}", axis.major);
            assert!(axis.lo <= axis.t(min) && axis.hi >= axis.t(max));
        }
    }

    #[test]
    fn size_axis_labels_the_measured_sizes_or_powers_of_two() {
        let axis = Axis::log2(&[64.0, 4096.0], |v| format!("{v}"));
        assert_eq!(labels(&axis), ["64", "4096"]);
        let sweep: Vec<f64> = (0..=22).map(|e| 2f64.powi(e)).collect();
        let axis = Axis::log2(&sweep, |v| format!("{v}"));
        assert!(axis.major.len() <= 12 && axis.major.len() >= 6, "{:?}", axis.major);
        let single = Axis::log2(&[64.0], |v| format!("{v}"));
        assert!(single.lo < 6.0 && single.hi > 6.0);
    }

    #[test]
    fn ratio_axis_has_round_ratios_around_one() {
        let axis = Axis::ratio(0.69, 1.39, |v| format!("{v}"));
        let values: Vec<f64> = axis.major.iter().map(|(t, _)| 10f64.powf(*t)).collect();
        for expected in [0.8, 0.9, 1.0, 1.1, 1.25] {
            assert!(
                values.iter().any(|v| (v - expected).abs() < 1e-9),
                "{expected} missing: {values:?}"
            );
        }
        let wide = Axis::ratio(0.1, 30.0, |v| format!("{v}"));
        assert!(wide.major.len() <= 13, "{:?}", wide.major);
        for (t, _) in &wide.major {
            let mantissa = 10f64.powf(t - t.floor());
            assert!(
                [1.0, 2.0, 5.0].iter().any(|m| (m - mantissa).abs() < 1e-6),
                "{mantissa} is not a 1-2-5 step"
            );
        }
        assert!(wide.major.iter().any(|(t, _)| t.abs() < 1e-12), "1x is always labelled");
    }

    #[test]
    fn percentile_axis_has_the_hdrhistogram_ticks() {
        let axis = Axis::percentile(5);
        assert_eq!(labels(&axis), ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]);
        assert!((axis.t(0.999) - 3.0).abs() < 1e-9);
    }
}
