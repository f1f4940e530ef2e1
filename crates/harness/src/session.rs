//! What a trial and the scenarios share: the trial's context and errors, the outcome types,
//! the control exchange and the derived rates of a trial.
//!
//! This module sits below both the scenarios (which measure) and [`crate::trial`] (which
//! starts the peer and calls a scenario), so neither needs the other to name these types.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ipcbench_core::{Channel, PeerMode, TransportError};
use ipcbench_record::{Rusage, Trial};

use crate::plan::Amount;
use crate::protocol::{self, PeerReport};

/// Set once an interrupt asked every running trial to stop.
static STOP: AtomicBool = AtomicBool::new(false);

/// Asks every running trial of this process to stop at its next check (Ctrl-C). Trials whose
/// peers are processes also end when [`crate::process::kill_all`] kills those peers.
pub fn request_stop() {
    // Relaxed: a flag polled by the timed loops; it publishes no other data.
    STOP.store(true, Ordering::Relaxed);
}

/// True once [`request_stop`] was called.
pub fn stop_requested() -> bool {
    // Relaxed: see `request_stop`.
    STOP.load(Ordering::Relaxed)
}

/// The error of a trial ended by [`request_stop`].
pub fn interrupted() -> TrialError {
    TrialError::Failed(INTERRUPTED.into())
}

/// The reason of a trial ended by an interrupt.
pub const INTERRUPTED: &str = "interrupted";

/// How often (in messages) the timed loops look at [`stop_requested`]: rarely enough to cost
/// nothing measurable, often enough to stop within milliseconds.
pub const STOP_CHECK_EVERY: u64 = 64;

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
    /// The agent that runs the peer side (a case with `peer`); `None` runs it on this machine.
    pub agent: Option<&'a crate::agent_wire::AgentLink>,
    /// The agents that run `load`'s generators (a case with `generators`), in the case's
    /// order; empty runs them on this machine.
    pub generators: &'a [crate::agent_wire::AgentLink],
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

/// Sends a control message and returns the reply (the echo of `MARK`, the peer's `REPORT`).
pub(crate) fn control_exchange<C: Channel>(
    channel: &mut C,
    command: u64,
    buf: &mut [u8],
) -> Result<Option<PeerReport>, TrialError> {
    control_exchange_with(channel, command, None::<&()>, buf)
}

/// [`control_exchange`] with a JSON body (`BARE`'s block length).
pub(crate) fn control_exchange_with<C: Channel>(
    channel: &mut C,
    command: u64,
    body: Option<&impl serde::Serialize>,
    buf: &mut [u8],
) -> Result<Option<PeerReport>, TrialError> {
    channel.send(&protocol::encode(command, body))?;
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

/// How many blocks of each kind a trial with its bare loop alternates (measured, bare,
/// measured, bare, ...), so that drift within the trial hits both alike.
pub const BARE_BLOCKS: u32 = 4;

pub use ipcbench_record::finish::{BARE_BYTES_PER_S_KEY, BARE_P50_KEY, BARE_UNSUPPORTED_KEY};

/// Whether this trial runs the bare loop: asked for, a peer process, and a channel that has
/// one. Returns `Some(false)` when asked for but unavailable (the trial records it).
pub(crate) fn bare_wanted<C: Channel>(channel: &mut C, case: &crate::plan::Case, mode: PeerMode) -> Option<bool> {
    if !case.bare {
        return None;
    }
    Some(mode == PeerMode::Process && case.message_bytes > 0 && channel.bare().is_some())
}

/// The amount of measured block `idx` of [`BARE_BLOCKS`]. A measured phase given as a time is
/// the trial's length: the measured blocks share half of it and the bare blocks (the same
/// number of messages each) take about the other half, so turning the bare loop on does not
/// make a trial longer. A message count is measured in full, an equal share per block (the
/// last block takes the remainder), and the bare blocks add the same count again.
pub(crate) fn block_amount(amount: Amount, idx: u32) -> Amount {
    match amount {
        Amount::Time(d) => Amount::Time(d / (2 * BARE_BLOCKS)),
        Amount::Messages(n) => {
            let share = n / u64::from(BARE_BLOCKS);
            if idx + 1 == BARE_BLOCKS {
                Amount::Messages(n - share * u64::from(BARE_BLOCKS - 1))
            } else {
                Amount::Messages(share)
            }
        }
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
