//! What the open-loop generators share (`load`, `balance`): intended send times, the
//! `timerfd` that wakes an event loop at one, and the limits of the drain after a phase.

use std::num::NonZeroU64;
use std::os::fd::OwnedFd;
use std::time::Duration;

use ipcbench_record::stats::SplitMix64;

use crate::plan::Schedule;
use crate::session::TrialError;

/// How long requests owed or in flight at the end of the measured phase may take.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// How long requests in flight when the drain ends may take to be answered.
pub const CLOSE_LIMIT: Duration = Duration::from_secs(5);
/// A send that leaves this much after its intended time counts as late.
pub const LATE_NS: u64 = 1_000_000;
/// An intended time that never comes.
pub(crate) const NEVER: u64 = u64::MAX;

/// The gap between two intended sends of one connection, ns.
pub(crate) fn gap_ns(schedule: Schedule, rate_hz: f64, rng: &mut SplitMix64) -> u64 {
    let mean_ns = 1e9 / rate_hz;
    match schedule {
        Schedule::Uniform => mean_ns as u64,
        // Inverse-CDF sampling of the exponential distribution; 1 - u is in (0, 1].
        Schedule::Poisson => (-(1.0 - rng.unit()).ln() * mean_ns) as u64,
    }
}

/// A `timerfd` that wakes the event loop at an absolute time of the schedule.
pub(crate) struct Timer {
    pub(crate) fd: OwnedFd,
    epoch: rustix::time::Timespec,
    pub(crate) armed: u64,
}

impl Timer {
    pub(crate) fn new(epoch: rustix::time::Timespec) -> Result<Timer, TrialError> {
        use rustix::time::{TimerfdClockId, TimerfdFlags, timerfd_create};
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .map_err(|e| TrialError::Failed(format!("cannot create a timer: {e}")))?;
        Ok(Timer {
            fd,
            epoch,
            armed: NEVER,
        })
    }

    /// Arms the timer for `at` ns after the epoch (or disarms it for [`NEVER`]).
    pub(crate) fn arm(&mut self, at: u64) -> Result<(), TrialError> {
        use rustix::time::{Itimerspec, TimerfdTimerFlags, Timespec, timerfd_settime};
        if at == self.armed {
            return Ok(());
        }
        let value = if at == NEVER {
            Timespec { tv_sec: 0, tv_nsec: 0 }
        } else {
            let total = self.epoch.tv_nsec as u64 + at % 1_000_000_000;
            Timespec {
                tv_sec: self.epoch.tv_sec + (at / 1_000_000_000) as i64 + (total / 1_000_000_000) as i64,
                tv_nsec: (total % 1_000_000_000) as _,
            }
        };
        let spec = Itimerspec {
            it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: value,
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::ABSTIME, &spec)
            .map_err(|e| TrialError::Failed(format!("cannot arm the timer: {e}")))?;
        self.armed = at;
        Ok(())
    }

    /// Clears the expiry count after a wake-up.
    pub(crate) fn clear(&mut self) {
        let mut count = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut count);
        self.armed = NEVER;
    }
}

/// Sets the calling thread's timer slack to 1 ns until dropped.
pub(crate) struct TimerSlack(Option<u64>);

impl TimerSlack {
    pub(crate) fn tight() -> TimerSlack {
        let before = rustix::thread::current_timer_slack().ok();
        let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1));
        TimerSlack(before)
    }
}

impl Drop for TimerSlack {
    fn drop(&mut self) {
        if let Some(before) = self.0 {
            let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(before));
        }
    }
}
