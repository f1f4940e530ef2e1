//! Open-file limits for the many-connection scenarios.
//!
//! Each side of a `load` or `conn-cost` trial holds one descriptor per connection, in its own
//! process. Before a trial starts, both processes call [`ensure_open_files`]: it raises the
//! soft `RLIMIT_NOFILE` up to what is needed (never above the hard limit, which only root may
//! raise), or refuses with a message naming the limit and the number needed, so a plan that
//! cannot fit is reported before anything is measured instead of failing half-way with
//! `EMFILE`.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Descriptors kept spare beyond the connections and those already open: the listener, the
/// control channel, epoll, wakers, the timer, the peer's stderr pipe.
pub const SPARE_FDS: u64 = 64;

/// The open-file limit as planned for a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// Descriptors the trial needs in this process.
    pub needed: u64,
    /// The soft limit before the call.
    pub soft_before: u64,
    /// The soft limit now.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// Decides what to do for `needed` descriptors under the `soft` and `hard` limits:
/// `Ok(None)` when they fit already, `Ok(Some(new_soft))` when the soft limit must be raised.
///
/// # Errors
/// A message naming the hard limit and the number needed when they cannot fit.
pub fn plan(needed: u64, soft: u64, hard: u64) -> Result<Option<u64>, String> {
    if needed <= soft {
        return Ok(None);
    }
    if needed <= hard {
        return Ok(Some(needed));
    }
    Err(format!(
        "needs {needed} open files per process, but the hard limit RLIMIT_NOFILE (`ulimit -Hn`) is {hard}: \
         raise the hard limit (as root, e.g. `ulimit -Hn {needed}` or LimitNOFILE= for a service) or lower \
         `connections` by {}",
        needed - hard
    ))
}

/// Descriptors this process has open now (from `/proc/self/fd`; a guess where unreadable).
pub fn open_now() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count() as u64)
        .unwrap_or(16)
}

/// Makes room for `connections` more descriptors in this process, raising the soft limit
/// when needed.
///
/// # Errors
/// A message naming the limit, the number needed and how it adds up, when they cannot fit
/// or the kernel refuses the new soft limit.
pub fn ensure_open_files(connections: u64) -> Result<OpenFiles, String> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("cannot read the open-file limit: {e}"))?;
    let in_use = open_now();
    let needed = connections + in_use + SPARE_FDS;
    let explain = |message: String| {
        format!("{connections} connections ({message}; {in_use} descriptors in use and {SPARE_FDS} spare counted)")
    };
    match plan(needed, soft, hard).map_err(explain)? {
        None => Ok(OpenFiles {
            needed,
            soft_before: soft,
            soft,
            hard,
        }),
        Some(new_soft) => {
            setrlimit(Resource::RLIMIT_NOFILE, new_soft, hard).map_err(|e| {
                explain(format!(
                    "needs {needed} open files per process; raising the soft limit from {soft} to {new_soft} \
                     failed: {e}"
                ))
            })?;
            Ok(OpenFiles {
                needed,
                soft_before: soft,
                soft: new_soft,
                hard,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_plans_change_nothing() {
        assert_eq!(plan(100, 1024, 4096), Ok(None));
        assert_eq!(plan(1024, 1024, 4096), Ok(None));
    }

    #[test]
    fn soft_limit_is_raised_only_as_far_as_needed() {
        assert_eq!(plan(10_100, 1024, 20_000), Ok(Some(10_100)));
        assert_eq!(plan(20_000, 1024, 20_000), Ok(Some(20_000)));
    }

    #[test]
    fn plan_beyond_the_hard_limit_names_both_numbers() {
        let message = plan(10_100, 1024, 4096).unwrap_err();
        assert!(message.contains("needs 10100 open files"), "{message}");
        assert!(message.contains("hard limit RLIMIT_NOFILE"), "{message}");
        assert!(message.contains("4096"), "{message}");
        assert!(message.contains("by 6004"), "{message}");
    }

    #[test]
    fn a_few_connections_fit_in_this_process() {
        let limits = ensure_open_files(10).unwrap();
        assert!(limits.soft >= limits.needed);
        assert!(limits.needed > 10);
    }
}
