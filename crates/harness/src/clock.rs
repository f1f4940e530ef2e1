//! The clock every sample is taken with, and its measured cost and resolution.
//!
//! Samples use `std::time::Instant` (CLOCK_MONOTONIC through the vDSO on Linux). At start-up
//! [`calibrate`] measures what one reading costs and the smallest step between readings; a
//! latency within 10x of that cost is mostly the clock, and the case is flagged.

use std::time::Instant;

use ipcbench_record::ClockInfo;

/// Readings taken to estimate the clock's cost.
const N_READINGS: u32 = 200_000;

/// Measures the clock's cost per reading and its resolution (`null_floor_ns` is left 0).
pub fn calibrate() -> ClockInfo {
    let mut best_mean = f64::INFINITY;
    let mut resolution = u64::MAX;
    // Three rounds; the cheapest is the least disturbed by the rest of the machine.
    for _ in 0..3 {
        let start = Instant::now();
        let mut previous = start;
        for _ in 0..N_READINGS {
            let now = Instant::now();
            let step = now.duration_since(previous).as_nanos() as u64;
            if step > 0 {
                resolution = resolution.min(step);
            }
            previous = now;
        }
        let mean = previous.duration_since(start).as_nanos() as f64 / f64::from(N_READINGS);
        best_mean = best_mean.min(mean);
    }
    ClockInfo {
        source: "CLOCK_MONOTONIC via std::time::Instant".into(),
        overhead_ns: best_mean,
        resolution_ns: if resolution == u64::MAX { 0.0 } else { resolution as f64 },
        null_floor_ns: 0.0,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_costs_something_and_steps_forward() {
        let clock = super::calibrate();
        assert!(clock.overhead_ns > 0.0);
        assert!(clock.resolution_ns > 0.0);
    }
}
