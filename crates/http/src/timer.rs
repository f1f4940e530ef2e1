//! Waking at an intended send time to the microsecond: a `timerfd` per lane, armed at an
//! absolute `CLOCK_MONOTONIC` time and awaited through tokio's reactor.
//!
//! tokio's own timer wheel has millisecond granularity and rounds up, so `sleep_until` would
//! add up to a millisecond to every corrected latency of an open-loop run; the load
//! scenario of the harness uses the same `timerfd` technique for the same reason.

use std::io;
use std::num::NonZeroU64;
use std::os::fd::OwnedFd;
use std::time::Instant;

use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use tokio::io::unix::AsyncFd;

use crate::HttpError;

/// The start of a block on both clocks: `Instant` for arithmetic, `Timespec` for the timer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch {
    pub(crate) instant: Instant,
    monotonic: Timespec,
}

impl Epoch {
    pub(crate) fn now() -> Epoch {
        // `Instant` is CLOCK_MONOTONIC on Linux; the two readings are taken back to back.
        let instant = Instant::now();
        let monotonic = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        Epoch { instant, monotonic }
    }

    /// Nanoseconds since the epoch.
    pub(crate) fn elapsed_ns(&self) -> u64 {
        self.instant.elapsed().as_nanos() as u64
    }

    fn timespec(&self, after_ns: u64) -> Timespec {
        let total_ns = self.monotonic.tv_nsec as u64 + after_ns % 1_000_000_000;
        Timespec {
            tv_sec: self.monotonic.tv_sec + (after_ns / 1_000_000_000) as i64 + (total_ns / 1_000_000_000) as i64,
            tv_nsec: (total_ns % 1_000_000_000) as _,
        }
    }
}

/// A one-shot timer awaited on the current runtime.
pub(crate) struct Timer {
    fd: AsyncFd<OwnedFd>,
    epoch: Epoch,
}

impl Timer {
    pub(crate) fn new(epoch: Epoch) -> Result<Timer, HttpError> {
        let fd = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .map_err(|e| HttpError::Io {
            op: "creating a timer",
            source: e.into(),
        })?;
        // `AsyncFd::new` is deprecated because a `T` that merely borrows its descriptor could
        // close it while registered. `OwnedFd` owns it, and `AsyncFd` deregisters it before
        // dropping `T`, so here the safe constructor is sound (and `register` needs `unsafe`).
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd).map_err(HttpError::io("registering a timer"))?;
        Ok(Timer { fd, epoch })
    }

    /// Returns at `at_ns` after the epoch (at once if that has passed).
    pub(crate) async fn sleep_until(&mut self, at_ns: u64) -> Result<(), HttpError> {
        if self.epoch.elapsed_ns() >= at_ns {
            return Ok(());
        }
        let spec = Itimerspec {
            it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: self.epoch.timespec(at_ns),
        };
        rustix::time::timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::ABSTIME, &spec).map_err(|e| {
            HttpError::Io {
                op: "arming a timer",
                source: e.into(),
            }
        })?;
        loop {
            let mut guard = self.fd.readable().await.map_err(HttpError::io("waiting for a timer"))?;
            let mut expirations = [0u8; 8];
            match guard.try_io(|fd| rustix::io::read(fd.get_ref(), &mut expirations[..]).map_err(io::Error::from)) {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => {
                    return Err(HttpError::Io {
                        op: "reading a timer",
                        source: e,
                    });
                }
                // Not expired yet (a spurious readiness): wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

/// Sets the calling thread's timer slack to 1 ns until dropped, so the kernel does not defer
/// timer wake-ups by its default 50 µs.
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
