//! One trial: a fresh peer, a handshake, the scenario's timed loop, and a clean teardown.
//!
//! [`run_trial`] binds the endpoint, starts the peer (a separate process running the same
//! binary's hidden `peer` subcommand, a thread for `inproc`, nothing for `null`), accepts it,
//! waits for its `READY` (the start barrier), pins itself, runs the scenario's client side and
//! reaps the peer. A watchdog kills a peer process that outlives the case's timeout, which
//! turns any stall into `Disconnected` on the client side; every other wait has its own
//! timeout, so a trial always ends.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ipcbench_core::{Channel, Endpoint, Listener, PeerMode, Transport};

use crate::plan::Case;
use crate::process::PeerProcess;
use crate::protocol::{self, ACCEPT_TIMEOUT, EXIT_TIMEOUT, PeerSpec, Ready};
use crate::session::{ClientOutcome, TrialContext, TrialError, TrialOutput, error_chain};
use crate::{affinity, peer, scenario};

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
        PeerMode::Process => Peer::Process(PeerProcess::launch(ctx, &spec, case.timeout)?),
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
