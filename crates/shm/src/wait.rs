//! How a side waits for data or space: the three wait strategies and the liveness checks.
//!
//! Every wait is a loop around a `ready` check (the ring has what we need) that also watches
//! the peer. [`WaitStrategy`] picks how the loop spends its time:
//!
//! - `spin`: check, `spin_loop` hint, check again, forever. Lowest latency; burns a core, so
//!   the harness refuses it with both sides on one core (`Transport::busy_polls`). After
//!   [`SPIN_YIELD_AFTER`] without progress it also calls `sched_yield` between checks (still
//!   never sleeping): a peer that has waited that long is not on a core of its own, and on an
//!   oversubscribed machine handing over the core is what lets it run (in a test with three
//!   spinning threads on two busy cores this took a run from 29 s to 1.6 s). On a dedicated
//!   core the yield returns at once, and a side that answers within a millisecond never
//!   meets it.
//! - `hybrid`: spin for [`HYBRID_SPIN`], then sleep on the ring's doorbell futex.
//! - `futex`: sleep on the doorbell at once.
//!
//! Sleeping follows the doorbell handshake (`doorbell` module docs): announce, re-check,
//! `FUTEX_WAIT`. The futex is the shared kind (no `FUTEX_PRIVATE_FLAG`): the waker is another
//! process, and a private futex is keyed on this process's address space, so a wake from the
//! peer would never arrive. Every `FUTEX_WAIT` has a [`SLEEP_TIMEOUT`], so a sleeper regularly
//! wakes up to check on the peer.
//!
//! Liveness: at least every [`LIVENESS_EVERY`] of waiting (and after every futex wake-up), the
//! loop checks the peer's `closed` flag and whether its process still runs (`peer` module).
//! So a peer that vanishes is noticed within about `SLEEP_TIMEOUT + LIVENESS_EVERY`, well under
//! a second, whichever strategy is waiting. When it has gone, `ready` is checked once more,
//! so data it published before it went is still delivered.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ipcbench_core::TransportError;
use rustix::io::Errno;
use rustix::thread::futex;

use crate::doorbell::Doorbell;
use crate::peer::PeerWatch;
use crate::region::SideState;
use crate::sync::{AtomicU32, Ordering};

/// How long `hybrid` spins before it sleeps.
pub const HYBRID_SPIN: Duration = Duration::from_micros(50);
/// The longest single `FUTEX_WAIT`; the sleeper then checks on the peer.
pub const SLEEP_TIMEOUT: Duration = Duration::from_millis(50);
/// How often a waiting side checks that the peer is still there.
pub const LIVENESS_EVERY: Duration = Duration::from_millis(10);
/// After spinning this long in vain, a spinning side also yields its core between checks.
pub const SPIN_YIELD_AFTER: Duration = Duration::from_millis(1);
/// Spin iterations between two reads of the clock.
const SPINS_PER_CLOCK_READ: u32 = 128;

/// How a side waits when the ring has no data (receiver) or no space (sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WaitStrategy {
    /// Busy-poll with a pause hint; never sleeps. Needs a core per side. Yields the core
    /// between polls once a wait has lasted [`SPIN_YIELD_AFTER`].
    #[default]
    Spin,
    /// Spin for [`HYBRID_SPIN`], then sleep on a futex until woken.
    Hybrid,
    /// Sleep on a futex at once.
    Futex,
}

impl WaitStrategy {
    /// Every strategy, in config order.
    pub const ALL: [WaitStrategy; 3] = [WaitStrategy::Spin, WaitStrategy::Hybrid, WaitStrategy::Futex];

    /// The config spelling: `spin`, `hybrid` or `futex`.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitStrategy::Spin => "spin",
            WaitStrategy::Hybrid => "hybrid",
            WaitStrategy::Futex => "futex",
        }
    }

    /// The number this strategy is published as in the shared header.
    pub(crate) fn code(self) -> u32 {
        match self {
            WaitStrategy::Spin => 1,
            WaitStrategy::Hybrid => 2,
            WaitStrategy::Futex => 3,
        }
    }

    /// Whether a peer that published `code` may sleep. Unknown codes count as sleepers: a
    /// needless doorbell costs a fence, a missing one a stall.
    pub(crate) fn code_may_sleep(code: u32) -> bool {
        code != WaitStrategy::Spin.code()
    }
}

impl fmt::Display for WaitStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `wait` value that is not `spin`, `hybrid` or `futex`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown wait strategy `{0}` (expected spin, hybrid or futex)")]
pub struct ParseWaitStrategyError(String);

impl FromStr for WaitStrategy {
    type Err = ParseWaitStrategyError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        WaitStrategy::ALL
            .into_iter()
            .find(|w| w.as_str() == text)
            .ok_or_else(|| ParseWaitStrategyError(text.to_owned()))
    }
}

/// The peer as a waiting side sees it.
#[derive(Debug)]
pub(crate) struct Peer<'a> {
    /// The peer's published state (its `closed` flag).
    pub(crate) state: &'a SideState,
    /// Its process.
    pub(crate) watch: &'a PeerWatch,
}

impl Peer<'_> {
    /// True once the peer has closed its end.
    fn closed(&self) -> bool {
        // Acquire pairs with the Release store in the peer's `Drop`: everything it published
        // before closing is visible to the `ready` check that follows.
        self.state.closed.load(Ordering::Acquire) != 0
    }

    /// True once the peer has closed its end or its process is gone.
    fn gone(&self) -> bool {
        self.closed() || !self.watch.alive()
    }
}

/// Waits until `ready` returns true, sleeping on `bell` as `strategy` allows.
///
/// # Errors
///
/// `Disconnected` once the peer is gone and `ready` still fails.
pub(crate) fn wait_until(
    strategy: WaitStrategy,
    bell: &Doorbell,
    peer: &Peer<'_>,
    mut ready: impl FnMut() -> bool,
) -> Result<(), TransportError> {
    // The clock is first read after a batch of spins, not on entry: a round trip of a few
    // hundred nanoseconds is usually over by then, and a clock read on entry would sit on
    // the critical path of every message (`perf` put 8% of a pingpong server's cycles there).
    let mut started: Option<Instant> = None;
    let mut next_check: Option<Instant> = None;
    let spin_for = match strategy {
        WaitStrategy::Spin => None,
        WaitStrategy::Hybrid => Some(HYBRID_SPIN),
        WaitStrategy::Futex => Some(Duration::ZERO),
    };
    let gone = |ready: &mut dyn FnMut() -> bool| {
        if ready() {
            Ok(())
        } else {
            Err(TransportError::Disconnected)
        }
    };

    if spin_for != Some(Duration::ZERO) {
        loop {
            for _ in 0..SPINS_PER_CLOCK_READ {
                if ready() {
                    return Ok(());
                }
                std::hint::spin_loop();
            }
            let now = Instant::now();
            let started = *started.get_or_insert(now);
            if liveness_due(&mut next_check, now) && peer.gone() {
                return gone(&mut ready);
            }
            if spin_for.is_some_and(|limit| now - started >= limit) {
                break;
            }
            if now - started >= SPIN_YIELD_AFTER {
                std::thread::yield_now(); // See the module docs: a descheduled peer.
            }
        }
    }

    // A sleeper's first check on the peer comes LIVENESS_EVERY after it stopped spinning.
    next_check.get_or_insert_with(|| Instant::now() + LIVENESS_EVERY);
    loop {
        bell.announce();
        // The re-check after announcing (S3 in the doorbell docs). The peer's `closed` flag is
        // checked here too: `Drop` stores it before ringing, the same handshake.
        if ready() {
            bell.cancel();
            return Ok(());
        }
        if peer.closed() {
            bell.cancel();
            return gone(&mut ready);
        }
        sleep(bell);
        bell.cancel();
        if ready() {
            return Ok(());
        }
        if liveness_due(&mut next_check, Instant::now()) && peer.gone() {
            return gone(&mut ready);
        }
    }
}

/// True when a liveness check is due at `now` (and the next one is then scheduled); the
/// first call only schedules one.
fn liveness_due(next_check: &mut Option<Instant>, now: Instant) -> bool {
    let due = next_check.is_some_and(|at| now >= at);
    if due || next_check.is_none() {
        *next_check = Some(now + LIVENESS_EVERY);
    }
    due
}

/// One `FUTEX_WAIT` on `bell`, for at most [`SLEEP_TIMEOUT`].
fn sleep(bell: &Doorbell) {
    futex_wait(bell.word(), Doorbell::ASLEEP, SLEEP_TIMEOUT);
}

/// Wakes whoever sleeps on `bell`, if anyone announced itself.
pub(crate) fn ring(bell: &Doorbell) {
    if bell.ring() {
        futex_wake(bell.word());
    }
}

/// Sleeps while `word` reads `expected`, for at most `timeout`.
///
/// Returns on a wake, on EAGAIN (the word no longer reads `expected`: a wake came first), on
/// timeout or on a signal; the caller re-checks its condition in every case.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let timeout = rustix::time::Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // Shared futex (no PRIVATE flag): the waker is usually the peer process.
    match futex::wait(word, futex::Flags::empty(), expected, Some(&timeout)) {
        Ok(()) | Err(Errno::AGAIN | Errno::TIMEDOUT | Errno::INTR) => {}
        // Futexes unavailable (a seccomp filter, say): degrade to a short sleep, never a spin.
        Err(_) => std::thread::sleep(Duration::from_millis(1)),
    }
}

/// Wakes every sleeper on `word`.
pub(crate) fn futex_wake(word: &AtomicU32) {
    // Shared futex, as in `futex_wait`. At most one side sleeps on a word, but waking all costs
    // the same and is robust (the kernel reads the count as an `int`, so "all" is `i32::MAX`).
    // A failure can only mean futexes are unavailable, and then `futex_wait` does not sleep on
    // them either.
    let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_round_trip_through_their_names() {
        for wait in WaitStrategy::ALL {
            assert_eq!(wait.as_str().parse::<WaitStrategy>(), Ok(wait));
            assert_eq!(wait.to_string(), wait.as_str());
        }
        let err = "yield".parse::<WaitStrategy>().expect_err("unknown name");
        assert_eq!(
            err.to_string(),
            "unknown wait strategy `yield` (expected spin, hybrid or futex)"
        );
    }

    #[test]
    fn only_spin_never_sleeps() {
        for wait in WaitStrategy::ALL {
            assert_eq!(WaitStrategy::code_may_sleep(wait.code()), wait != WaitStrategy::Spin);
        }
        assert!(WaitStrategy::code_may_sleep(0), "unknown codes count as sleepers");
    }
}
