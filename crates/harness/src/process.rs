//! A peer process: started from the same binary with its spec, watched by a watchdog that
//! kills it past the case's timeout, killed and reaped when dropped, its stderr collected so
//! its last line can explain a failure.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};

use crate::protocol::PeerSpec;
use crate::session::{PeerCommand, TrialError};

/// A peer process that is killed and reaped when dropped, with its stderr collected.
pub(crate) struct PeerProcess {
    child: Arc<Mutex<Child>>,
    stderr: Option<JoinHandle<String>>,
    watchdog_cancel: Option<Sender<()>>,
    timed_out: Arc<AtomicBool>,
}

impl PeerProcess {
    pub(crate) fn spawn(command: &PeerCommand, spec: &PeerSpec, timeout: Duration) -> Result<PeerProcess, TrialError> {
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
        let child = Arc::new(Mutex::new(child));
        let (cancel, cancelled) = bounded::<()>(1);
        let timed_out = Arc::new(AtomicBool::new(false));
        {
            let child = Arc::clone(&child);
            let timed_out = Arc::clone(&timed_out);
            thread::spawn(move || {
                if cancelled.recv_timeout(timeout).is_err() {
                    // Relaxed: read after the child is reaped, which joins through the mutex.
                    timed_out.store(true, Ordering::Relaxed);
                    let _ = child.lock().unwrap_or_else(|e| e.into_inner()).kill();
                }
            });
        }
        Ok(PeerProcess {
            child,
            stderr: Some(stderr),
            watchdog_cancel: Some(cancel),
            timed_out,
        })
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
        if self.timed_out.load(Ordering::Relaxed) {
            return Some("the trial ran past its timeout; the peer was killed".into());
        }
        match status {
            Some(s) if s.success() => None,
            Some(s) if last_line.is_empty() => Some(format!("peer process exited with {s}")),
            Some(s) => Some(format!("peer process exited with {s}: {last_line}")),
            None => Some("peer process could not be reaped".into()),
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            let _ = self.finish(Duration::ZERO);
        }
    }
}
