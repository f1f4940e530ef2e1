//! One trial: a fresh peer, a handshake, the scenario's timed loop, and a clean teardown.
//!
//! [`run_trial`] binds the endpoint, starts the peer (a separate process running the same
//! binary's hidden `peer` subcommand, a thread for `inproc`, nothing for `null`), accepts it,
//! waits for its `READY` (the start barrier), pins itself, runs the scenario's client side and
//! reaps the peer. A watchdog kills a peer process that outlives the case's timeout, which
//! turns any stall into `Disconnected` on the client side; every other wait has its own
//! timeout, so a trial always ends.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use ipcbench_core::{Channel, Endpoint, Listener, PeerMode, Transport, TransportError};

use crate::config::Case;
use crate::protocol::{self, PeerReport, PeerSpec, Ready};
use crate::{affinity, peer, scenario};
use ipcbench_record::{Rusage, Trial};

/// How long the peer may take to connect.
pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a peer may take to exit once its work is done.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to start a peer process: the program and the arguments before `--spec JSON`.
#[derive(Debug, Clone)]
pub struct PeerCommand {
    /// The program (normally the running binary).
    pub program: PathBuf,
    /// Arguments that select the peer role (normally `["peer"]`).
    pub args: Vec<String>,
}

/// What a trial needs besides its case.
#[derive(Debug, Clone, Copy)]
pub struct TrialContext<'a> {
    /// A private directory for socket files and FIFOs.
    pub work_dir: &'a Path,
    /// How to start a peer process.
    pub peer_command: &'a PeerCommand,
    /// Which repetition this is (for unique endpoint names).
    pub trial_idx: usize,
}

/// Why a trial produced no figures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrialError {
    /// The case cannot run here; nothing was measured.
    #[error("{0}")]
    Unsupported(String),
    /// The case ran and failed.
    #[error("{0}")]
    Failed(String),
}

impl From<TransportError> for TrialError {
    fn from(e: TransportError) -> Self {
        TrialError::Failed(error_chain(&e))
    }
}

impl From<ipcbench_core::payload::PayloadError> for TrialError {
    fn from(e: ipcbench_core::payload::PayloadError) -> Self {
        TrialError::Failed(format!("payload check failed: {e}"))
    }
}

impl From<ipcbench_record::stats::OutOfRange> for TrialError {
    fn from(e: ipcbench_record::stats::OutOfRange) -> Self {
        TrialError::Failed(e.to_string())
    }
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What the client side of a scenario measured.
#[derive(Debug, Clone, Default)]
pub struct ClientOutcome {
    /// The trial's figures (the server side is filled in from the peer's report).
    pub trial: Trial,
    /// The peer's report, when there is a peer.
    pub report: Option<PeerReport>,
}

/// The result of a successful trial.
#[derive(Debug, Clone)]
pub struct TrialOutput {
    /// The figures.
    pub trial: Trial,
    /// Options as applied by the listening side.
    pub applied_options: serde_json::Map<String, serde_json::Value>,
    /// The client's affinity as read back.
    pub client_cores: Vec<usize>,
    /// The server's affinity as read back (empty without a peer).
    pub server_cores: Vec<usize>,
}

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

/// The peer side of a trial, whatever form it takes.
enum Peer {
    Process(PeerProcess),
    Thread(JoinHandle<Result<(), String>>),
    None,
}

impl Peer {
    /// Reaps the peer; returns its failure, if any.
    fn finish(self) -> Option<String> {
        match self {
            Peer::Process(mut p) => p.finish(EXIT_TIMEOUT),
            Peer::Thread(handle) => {
                let deadline = Instant::now() + EXIT_TIMEOUT;
                while !handle.is_finished() {
                    if Instant::now() > deadline {
                        return Some("peer thread did not finish".into());
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                match handle.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("peer thread failed: {e}")),
                    Err(_) => Some("peer thread panicked".into()),
                }
            }
            Peer::None => None,
        }
    }
}

/// Runs one trial of `case` over `transport`.
///
/// # Errors
/// [`TrialError::Unsupported`] when the combination cannot run here, [`TrialError::Failed`]
/// with the reason when anything goes wrong; the peer is reaped either way.
pub fn run_trial<T: Transport + 'static>(
    transport: T,
    case: &Case,
    ctx: &TrialContext<'_>,
) -> Result<TrialOutput, TrialError> {
    // The many-connection scenarios have their own process structure (scenario/fleet.rs).
    if let Some(run) = scenario::own_trial::<T>(case.scenario) {
        return run(transport, case, ctx);
    }
    if transport.busy_polls() && case.same_core() && transport.peer_mode() != PeerMode::None {
        return Err(TrialError::Unsupported(format!(
            "`{}` busy-polls; with client and server on core {} it would measure the scheduler, not the transport \
             (use a hybrid or futex wait, or two cores)",
            transport.name(),
            case.placement.client
        )));
    }
    if !scenario::supported(case.scenario) {
        return Err(TrialError::Unsupported(format!(
            "scenario `{}` is not implemented yet",
            case.scenario.as_str()
        )));
    }
    // Pin before the endpoint exists, so a transport can see both sides' placement when the
    // channel is set up (shm's hybrid wait skips spinning when both share one core).
    affinity::pin_current_thread(case.placement.client).map_err(TrialError::Failed)?;
    let transport = Arc::new(transport);
    let endpoint = Endpoint::new(format!("case{}-trial{}", case.index, ctx.trial_idx), ctx.work_dir);
    let mut listener = transport.bind(&endpoint)?;
    let spec = PeerSpec {
        case: case.clone(),
        address: listener.address(),
        extra: serde_json::Value::Null,
    };
    let mode = transport.peer_mode();
    let peer = match mode {
        PeerMode::Process => Peer::Process(PeerProcess::spawn(ctx.peer_command, &spec, case.timeout)?),
        PeerMode::Thread => {
            let transport = Arc::clone(&transport);
            Peer::Thread(thread::spawn(move || {
                peer::serve(&*transport, &spec).map_err(|e| e.to_string())
            }))
        }
        PeerMode::None => Peer::None,
    };
    let accepted = listener.accept(ACCEPT_TIMEOUT);
    drop(listener);
    let mut channel = match accepted {
        Ok(channel) => channel,
        Err(e) => {
            let peer_failure = peer.finish();
            return Err(TrialError::Failed(
                peer_failure.unwrap_or_else(|| format!("peer never connected: {}", error_chain(&e))),
            ));
        }
    };
    let outcome = client_side(&mut channel, case, mode);
    let applied_options = channel.applied_options().into_iter().collect();
    drop(channel);
    let peer_failure = peer.finish();
    let (outcome, ready) = match (outcome, peer_failure) {
        (Ok(result), None) => result,
        // The peer's own account of a failure is more telling than the client's "disconnected".
        (Err(TrialError::Failed(client)), Some(peer)) => {
            return Err(TrialError::Failed(format!("{peer} (client: {client})")));
        }
        (Err(e), _) => return Err(e),
        (Ok(_), Some(peer)) => return Err(TrialError::Failed(peer)),
    };
    let mut trial = outcome.trial;
    if let Some(report) = outcome.report {
        trial.server = Some(report.rusage);
        trial
            .extra
            .extend(report.extra.into_iter().map(|(k, v)| (format!("server_{k}"), v)));
    }
    Ok(TrialOutput {
        trial,
        applied_options,
        client_cores: affinity::current_affinity(),
        server_cores: ready.map(|r| r.cores_applied).unwrap_or_default(),
    })
}

/// Pins the client, waits at the start barrier, and runs the scenario's client loop.
fn client_side<C: Channel>(
    channel: &mut C,
    case: &Case,
    mode: PeerMode,
) -> Result<(ClientOutcome, Option<Ready>), TrialError> {
    affinity::pin_current_thread(case.placement.client).map_err(TrialError::Failed)?;
    let ready = if mode == PeerMode::None {
        None
    } else {
        let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
        let n = channel.recv(&mut buf)?;
        match protocol::decode(&buf[..n]) {
            Some((protocol::READY, body)) => Some(
                serde_json::from_slice::<Ready>(body)
                    .map_err(|e| TrialError::Failed(format!("peer sent a malformed READY: {e}")))?,
            ),
            _ => return Err(TrialError::Failed("peer did not start with READY".into())),
        }
    };
    let outcome = scenario::run_client(channel, case, mode)?;
    Ok((outcome, ready))
}

/// Sends a control message and returns the reply (the echo of `MARK`, the peer's `REPORT`).
pub(crate) fn control_exchange<C: Channel>(
    channel: &mut C,
    command: u64,
    buf: &mut [u8],
) -> Result<Option<PeerReport>, TrialError> {
    channel.send(&protocol::encode(command, None::<&()>))?;
    // Data still in flight (rpc windows, streams) is the scenario's to drain first.
    let n = channel.recv(buf)?;
    match protocol::decode(&buf[..n]) {
        Some((protocol::REPORT, body)) => serde_json::from_slice(body)
            .map(Some)
            .map_err(|e| TrialError::Failed(format!("peer sent a malformed REPORT: {e}"))),
        Some((c, _)) if c == command => Ok(None),
        _ => Err(TrialError::Failed(format!(
            "expected the answer to control message {command}, got a data message"
        ))),
    }
}

/// Fills in the derived rates of a trial.
pub(crate) fn finish_trial(trial: &mut Trial, elapsed: Duration, client: Rusage) {
    trial.elapsed_ns = elapsed.as_nanos() as u64;
    let seconds = elapsed.as_secs_f64().max(1e-9);
    trial.messages_per_s = trial.messages as f64 / seconds;
    trial.bytes_per_s = trial.bytes as f64 / seconds;
    trial.client = Some(client);
}
