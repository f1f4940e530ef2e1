//! Telling whether the peer process is still alive, without a socket to report its death.
//!
//! A peer that drops its channel sets its `closed` flag; a peer that is killed cannot. For
//! that case we hold a pidfd of the peer process (Linux 5.3+), which becomes readable when the
//! process exits, zombie or not; a plain `kill(pid, 0)` would report a killed but not yet
//! reaped child as alive. Where pidfds are missing, we fall back to `kill(pid, 0)` plus the
//! state letter in `/proc/PID/stat`. A peer in our own process (the conformance suite runs
//! both sides as threads) is alive as long as we are, so only its `closed` flag counts.

use std::os::fd::OwnedFd;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};

/// How we watch the peer process.
#[derive(Debug)]
pub(crate) enum PeerWatch {
    /// The peer is a thread of this process.
    SameProcess,
    /// A pidfd of the peer process, and its pid.
    Pidfd(OwnedFd, Pid),
    /// Only the pid (kernels without pidfds).
    Pid(Pid),
    /// The process was already gone when we looked.
    Gone,
}

impl PeerWatch {
    /// Starts watching process `pid`.
    pub(crate) fn new(pid: u32) -> PeerWatch {
        let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return PeerWatch::Gone;
        };
        if pid == rustix::process::getpid() {
            return PeerWatch::SameProcess;
        }
        match rustix::process::pidfd_open(pid, PidfdFlags::empty()) {
            Ok(fd) => PeerWatch::Pidfd(fd, pid),
            Err(Errno::SRCH) => PeerWatch::Gone,
            Err(_) => PeerWatch::Pid(pid),
        }
    }

    /// True when this thread and the peer process (its main thread) are both confined to the
    /// same single core, so neither can run while the other spins.
    pub(crate) fn shares_our_only_core(&self) -> bool {
        let pid = match self {
            PeerWatch::Pid(pid) | PeerWatch::Pidfd(_, pid) => *pid,
            PeerWatch::SameProcess | PeerWatch::Gone => return false,
        };
        let only_core = |set: &rustix::thread::CpuSet| {
            let mut cores = (0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| set.is_set(c));
            match (cores.next(), cores.next()) {
                (Some(core), None) => Some(core),
                _ => None,
            }
        };
        let ours = rustix::thread::sched_getaffinity(None).ok();
        let theirs = rustix::thread::sched_getaffinity(Some(pid)).ok();
        match (ours.as_ref().and_then(only_core), theirs.as_ref().and_then(only_core)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    /// False once the peer process has exited (or was killed), reaped or not.
    pub(crate) fn alive(&self) -> bool {
        match self {
            PeerWatch::SameProcess => true,
            PeerWatch::Gone => false,
            PeerWatch::Pidfd(fd, _) => {
                let mut fds = [PollFd::new(fd, PollFlags::IN)];
                let zero = rustix::time::Timespec { tv_sec: 0, tv_nsec: 0 };
                match rustix::event::poll(&mut fds, Some(&zero)) {
                    // Readable means exited; an error (EINTR, ENOMEM) says nothing, so we look
                    // again at the next check.
                    Ok(ready) => ready == 0,
                    Err(_) => true,
                }
            }
            PeerWatch::Pid(pid) => pid_alive(*pid),
        }
    }
}

fn pid_alive(pid: Pid) -> bool {
    if rustix::process::test_kill_process(pid) == Err(Errno::SRCH) {
        return false;
    }
    // A zombie still answers kill(pid, 0); its state letter follows the last ')' of `stat`.
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_counts_as_alive() {
        assert!(PeerWatch::new(std::process::id()).alive());
    }

    #[test]
    fn exited_child_is_seen_dead_before_it_is_reaped() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let watch = PeerWatch::new(child.id());
        let started = std::time::Instant::now();
        while watch.alive() {
            assert!(started.elapsed().as_secs() < 10, "child never seen dead");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().expect("reap");
    }

    #[test]
    fn pid_fallback_sees_a_zombie_as_dead() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = Pid::from_raw(child.id() as i32).expect("nonzero pid");
        let started = std::time::Instant::now();
        while pid_alive(pid) {
            assert!(started.elapsed().as_secs() < 10, "zombie never seen dead");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().expect("reap");
    }

    #[test]
    fn nonexistent_pid_is_gone() {
        assert!(!PeerWatch::new(0).alive());
    }
}
