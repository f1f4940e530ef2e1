//! CPU time and context switches of the calling thread, from `getrusage(RUSAGE_THREAD)`.
//!
//! Both sides take a snapshot when the measured phase starts and another when it ends; the
//! difference is their cost over exactly the measured phase. Peak RSS is the whole process's.

use nix::sys::resource::{UsageWho, getrusage};

use ipcbench_record::Rusage;

/// A snapshot of the calling thread's resource use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot(Rusage);

/// `VmHWM` of this process (its own peak resident set), from `/proc/self/status`.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kib| kib * 1024)
}

fn timeval_ns(tv: nix::sys::time::TimeVal) -> u64 {
    (tv.tv_sec() as u64) * 1_000_000_000 + (tv.tv_usec() as u64) * 1_000
}

impl Snapshot {
    /// Reads the calling thread's counters now.
    pub fn now() -> Snapshot {
        let thread = getrusage(UsageWho::RUSAGE_THREAD).ok();
        let process = getrusage(UsageWho::RUSAGE_SELF).ok();
        match thread {
            Some(t) => Snapshot(Rusage {
                user_ns: timeval_ns(t.user_time()),
                system_ns: timeval_ns(t.system_time()),
                voluntary_csw: t.voluntary_context_switches() as u64,
                involuntary_csw: t.involuntary_context_switches() as u64,
                // Peak RSS from VmHWM: ru_maxrss survives fork and exec, so a peer would report
                // its parent's peak; VmHWM belongs to this process's own address space.
                max_rss_bytes: peak_rss_bytes()
                    .or(process.map(|p| p.max_rss() as u64 * 1024))
                    .unwrap_or(0),
            }),
            None => Snapshot::default(),
        }
    }

    /// Reads the whole process's counters now (every thread: a serving role whose runtime
    /// runs on threads of its own).
    pub fn process_now() -> Snapshot {
        match getrusage(UsageWho::RUSAGE_SELF).ok() {
            Some(p) => Snapshot(Rusage {
                user_ns: timeval_ns(p.user_time()),
                system_ns: timeval_ns(p.system_time()),
                voluntary_csw: p.voluntary_context_switches() as u64,
                involuntary_csw: p.involuntary_context_switches() as u64,
                max_rss_bytes: peak_rss_bytes().unwrap_or(p.max_rss() as u64 * 1024),
            }),
            None => Snapshot::default(),
        }
    }

    /// What was used between `self` (earlier) and `later`.
    pub fn until(&self, later: &Snapshot) -> Rusage {
        Rusage {
            user_ns: later.0.user_ns.saturating_sub(self.0.user_ns),
            system_ns: later.0.system_ns.saturating_sub(self.0.system_ns),
            voluntary_csw: later.0.voluntary_csw.saturating_sub(self.0.voluntary_csw),
            involuntary_csw: later.0.involuntary_csw.saturating_sub(self.0.involuntary_csw),
            max_rss_bytes: later.0.max_rss_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_thread_accumulates_cpu_time() {
        let start = Snapshot::now();
        let begun = std::time::Instant::now();
        let mut x = 0u64;
        while begun.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let used = start.until(&Snapshot::now());
        assert!(used.cpu_ns() > 0, "{used:?}");
        assert!(used.max_rss_bytes > 0);
    }
}
