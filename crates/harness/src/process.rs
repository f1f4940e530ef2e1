//! A peer process: started from the same binary with its spec, watched by a watchdog that
//! kills it past the case's timeout or once it has been stopped (SIGSTOP, a debugger) for
//! [`STOPPED_LIMIT`], killed and reaped when dropped, its stderr collected so its last line
//! can explain a failure.
//!
//! A peer may also run on an agent (`ipcbench serve` on another machine, [`crate::remote`]):
//! `PeerProcess::launch` picks where from the trial's context, and both kinds end the same
//! way (`PeerProcess::finish`, or dropping it).
//!
//! Every live peer process is listed in a process-wide registry, so an interrupt can kill them
//! all at once ([`kill_all`]): the trial's client then sees `Disconnected` and ends, instead
//! of waiting out its schedule.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};

use crate::protocol::PeerSpec;
use crate::remote::RemotePeer;
use crate::session::{PeerCommand, TrialContext, TrialError};

/// How long a peer may stay stopped before the watchdog kills it.
pub const STOPPED_LIMIT: Duration = Duration::from_secs(1);
/// How often the watchdog looks at the peer.
const WATCH_TICK: Duration = Duration::from_millis(100);

/// The pids of every live peer process of this process.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Kills every live peer process (SIGKILL) and ends every remote one; their trials end with
/// the peer's disconnection.
pub fn kill_all() {
    crate::remote::end_all();
    let pids = LIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for pid in pids {
        if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// True when `/proc/<pid>/stat` says the process is stopped (`T`) or traced (`t`).
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        // The state follows the command name, which is in parentheses and may hold spaces.
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| rest.starts_with(['T', 't'])))
        .unwrap_or(false)
}

/// Why the watchdog killed a peer.
const KILLED_NONE: u8 = 0;
const KILLED_TIMEOUT: u8 = 1;
const KILLED_STOPPED: u8 = 2;

/// The peer side of a trial: a process here, or one on an agent. Killed (or, on an agent,
/// ended) and reaped when dropped.
pub(crate) struct PeerProcess(Where);

enum Where {
    Local(LocalProcess),
    Remote(RemotePeer),
}

impl PeerProcess {
    /// Starts the peer of `spec` where the trial's context says: on its agent, or here with
    /// its peer command; `timeout` bounds its life either way (an agent's own watchdog
    /// enforces it there).
    pub(crate) fn launch(
        ctx: &TrialContext<'_>,
        spec: &PeerSpec,
        timeout: Duration,
    ) -> Result<PeerProcess, TrialError> {
        Ok(PeerProcess(match ctx.agent {
            Some(link) => Where::Remote(RemotePeer::launch(link, spec)?),
            None => Where::Local(LocalProcess::spawn(ctx.peer_command, spec, timeout)?),
        }))
    }

    /// True once the peer is gone before it was asked to end: a local process that exited,
    /// or an agent that reported its peer's exit or closed the control connection (killed).
    /// A phase that waits without reading its channels looks at this to end within a tick.
    pub(crate) fn has_ended(&self) -> bool {
        match &self.0 {
            Where::Local(process) => process.has_exited(),
            Where::Remote(peer) => peer.has_ended(),
        }
    }

    /// Waits up to `limit` for the peer to exit (ending it after that), then returns why it
    /// failed, or `None` when it exited cleanly.
    pub(crate) fn finish(&mut self, limit: Duration) -> Option<String> {
        match &mut self.0 {
            Where::Local(process) => process.finish(limit),
            Where::Remote(peer) => peer.finish(limit),
        }
    }
}

/// A peer process on this machine that is killed and reaped when dropped, with its stderr
/// collected.
pub(crate) struct LocalProcess {
    child: Arc<Mutex<Child>>,
    pid: u32,
    stderr: Option<JoinHandle<String>>,
    watchdog_cancel: Option<Sender<()>>,
    killed: Arc<AtomicU8>,
}

impl LocalProcess {
    /// Starts `command --spec JSON` under a watchdog that kills it after `timeout`.
    pub(crate) fn spawn(command: &PeerCommand, spec: &PeerSpec, timeout: Duration) -> Result<LocalProcess, TrialError> {
        let spec_json = serde_json::to_string(spec).expect("peer specs serialize");
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .arg("--spec")
            .arg(spec_json)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| TrialError::Failed(format!("cannot start peer process {}: {e}", command.program.display())))?;
        let mut pipe = child.stderr.take().expect("stderr is piped");
        // Drain stderr on a thread so a chatty peer never blocks on a full pipe.
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        let pid = child.id();
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
        let child = Arc::new(Mutex::new(child));
        let (cancel, cancelled) = bounded::<()>(1);
        let killed = Arc::new(AtomicU8::new(KILLED_NONE));
        {
            let child = Arc::clone(&child);
            let killed = Arc::clone(&killed);
            thread::spawn(move || {
                let deadline = Instant::now() + timeout;
                let mut stopped_since: Option<Instant> = None;
                let why = loop {
                    match cancelled.recv_timeout(WATCH_TICK) {
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                        _ => return, // finished, or the process handle is gone
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        break KILLED_TIMEOUT;
                    }
                    // A stopped peer never answers: end its case now, not at the deadline.
                    stopped_since = if is_stopped(pid) {
                        stopped_since.or(Some(now))
                    } else {
                        None
                    };
                    if stopped_since.is_some_and(|since| now - since >= STOPPED_LIMIT) {
                        break KILLED_STOPPED;
                    }
                };
                // Relaxed: read after the child is reaped, which joins through the mutex.
                killed.store(why, Ordering::Relaxed);
                let _ = child.lock().unwrap_or_else(|e| e.into_inner()).kill();
            });
        }
        Ok(LocalProcess {
            child,
            pid,
            stderr: Some(stderr),
            watchdog_cancel: Some(cancel),
            killed,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// True once the process has exited (it is reaped then; [`LocalProcess::finish`] still
    /// reports how).
    pub(crate) fn has_exited(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        !matches!(child.try_wait(), Ok(None))
    }

    /// Waits up to `limit` for the peer to exit (killing it after that), then returns why it
    /// failed, or `None` when it exited cleanly.
    pub(crate) fn finish(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let status = loop {
            let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {}
                _ => {
                    let _ = child.kill();
                    break child.wait().ok();
                }
            }
            drop(child);
            thread::sleep(Duration::from_millis(2));
        };
        if let Some(cancel) = self.watchdog_cancel.take() {
            let _ = cancel.send(());
        }
        let stderr = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let last_line = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_owned();
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != self.pid);
        match self.killed.load(Ordering::Relaxed) {
            KILLED_TIMEOUT => return Some("the trial ran past its timeout; the peer was killed".into()),
            KILLED_STOPPED => {
                return Some(format!(
                    "the peer process (pid {}) was stopped (SIGSTOP or a debugger) for {} s; it was killed",
                    self.pid,
                    STOPPED_LIMIT.as_secs()
                ));
            }
            _ => {}
        }
        match status {
            Some(s) if s.success() => None,
            Some(s) if last_line.is_empty() => Some(format!("peer process exited with {s}")),
            Some(s) => Some(format!("peer process exited with {s}: {last_line}")),
            None => Some("peer process could not be reaped".into()),
        }
    }
}

impl Drop for LocalProcess {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            let _ = self.finish(Duration::ZERO);
        }
    }
}
