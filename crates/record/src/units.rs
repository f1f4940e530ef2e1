//! Numbers as people read them: times, sizes and rates with their units.

/// A duration in ns with the unit that keeps it short: `850 ns`, `12.3 µs`, `2.5 ms`.
/// At most `digits` significant digits; trailing zeros are dropped.
pub fn time_ns(ns: f64, digits: usize) -> String {
    let (value, unit) = if ns.abs() < 1e3 {
        (ns, "ns")
    } else if ns.abs() < 1e6 {
        (ns / 1e3, "µs")
    } else if ns.abs() < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", significant(value, digits))
}

/// A byte count with a binary prefix when it divides evenly (`64 KiB`), else in bytes.
pub fn bytes(n: u64) -> String {
    match n {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// A byte count for axis labels: like [`bytes`], but non-exact sizes above 1 KiB are shown
/// with one decimal (`1.5 KiB`).
pub fn bytes_approx(n: f64) -> String {
    let (value, unit) = if n >= (1u64 << 30) as f64 {
        (n / (1u64 << 30) as f64, "GiB")
    } else if n >= (1u64 << 20) as f64 {
        (n / (1u64 << 20) as f64, "MiB")
    } else if n >= 1024.0 {
        (n / 1024.0, "KiB")
    } else {
        (n, "B")
    };
    format!("{} {unit}", significant(value, 3))
}

/// A rate with a decimal SI prefix and the given unit: `1.25 M msg/s`, `3.4 GB/s`.
pub fn rate(value: f64, unit: &str, digits: usize) -> String {
    let (scaled, prefix) = si(value);
    if unit.starts_with('B') {
        // Byte rates take the prefix directly: `GB/s`, not `G B/s`.
        format!("{} {prefix}{unit}", significant(scaled, digits))
    } else if prefix.is_empty() {
        format!("{} {unit}", significant(scaled, digits))
    } else {
        format!("{} {prefix} {unit}", significant(scaled, digits))
    }
}

fn si(value: f64) -> (f64, &'static str) {
    let a = value.abs();
    if a >= 1e12 {
        (value / 1e12, "T")
    } else if a >= 1e9 {
        (value / 1e9, "G")
    } else if a >= 1e6 {
        (value / 1e6, "M")
    } else if a >= 1e3 {
        (value / 1e3, "k")
    } else {
        (value, "")
    }
}

/// `value` with at most `digits` significant digits, no exponent, trailing zeros dropped.
pub fn significant(value: f64, digits: usize) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor() as i64;
    let decimals = (digits as i64 - 1 - magnitude).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A fraction as a whole percentage: `0.41` -> `41%`.
pub fn percent(fraction: f64) -> String {
    format!("{:.0}%", fraction * 100.0)
}

/// A ratio as a signed percentage change: `1.12` -> `+12.0%`, `0.9` -> `-10.0%`.
pub fn change(ratio: f64) -> String {
    if !ratio.is_finite() {
        return "n/a".to_owned();
    }
    format!("{:+.1}%", (ratio - 1.0) * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_pick_their_unit() {
        assert_eq!(time_ns(850.0, 3), "850 ns");
        assert_eq!(time_ns(12_345.0, 3), "12.3 µs");
        assert_eq!(time_ns(2_000_000.0, 3), "2 ms");
        assert_eq!(time_ns(1_500.0, 3), "1.5 µs");
        assert_eq!(time_ns(3.2e9, 3), "3.2 s");
    }

    #[test]
    fn sizes_and_rates_carry_units() {
        assert_eq!(bytes(65536), "64 KiB");
        assert_eq!(bytes(26), "26 B");
        assert_eq!(bytes_approx(1536.0), "1.5 KiB");
        assert_eq!(rate(1.25e9, "B/s", 3), "1.25 GB/s");
        assert_eq!(rate(7400.0, "msg/s", 3), "7.4 k msg/s");
        assert_eq!(rate(12.0, "msg/s", 3), "12 msg/s");
        assert_eq!(change(1.12), "+12.0%");
        assert_eq!(change(0.9), "-10.0%");
        assert_eq!(percent(0.41), "41%");
    }
}
