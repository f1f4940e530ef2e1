//! The peer process's side: connect, pin, announce `READY`, serve the scenario.
//!
//! The CLI's hidden `ipcbench peer --spec JSON` subcommand parses a [`PeerSpec`], builds the
//! transport through its dispatch, and calls [`serve`]. The peer also asks the kernel to kill
//! it if its parent dies ([`die_with_parent`]), so a killed harness leaves no orphans.

use ipcbench_core::{Channel, Transport};

use crate::dispatch::{Dispatch, PairVisitor};
use crate::protocol::{self, CONNECT_TIMEOUT, PeerSpec, Ready};
use crate::scenario::fleet::PeerRole;
use crate::session::{TrialError, error_chain};
use crate::{affinity, scenario};

/// Serves one trial as the peer: returns once the client said `END` and got the report.
///
/// # Errors
/// A message for the parent's record (the CLI prints it on stderr, where the parent reads it).
pub fn serve<T: Transport>(transport: &T, spec: &PeerSpec) -> Result<(), TrialError> {
    // The many-connection and proxy scenarios have peers of their own (scenario/fleet.rs).
    if let Some(role) = PeerRole::of(spec) {
        return scenario::serve_role(transport, spec, role);
    }
    let cores_applied = affinity::pin_current_thread(spec.case.placement.server).map_err(TrialError::Failed)?;
    let mut channel = transport
        .connect(&spec.address, CONNECT_TIMEOUT)
        .map_err(|e| TrialError::Failed(format!("peer cannot connect to {}: {}", spec.address, error_chain(&e))))?;
    let ready = Ready {
        pid: std::process::id(),
        cores_applied,
        applied_options: channel.applied_options().into_iter().collect(),
    };
    channel.send(&protocol::encode(protocol::READY, Some(&ready)))?;
    scenario::run_server(&mut channel, &spec.case)?;
    Ok(())
}

/// Asks the kernel to SIGKILL this process when its parent exits.
///
/// A parent that died before this call (between its fork and here) sends no signal: this
/// process was already handed to init, so it exits at once instead of lingering until its
/// connect times out (where a subreaper adopts orphans instead, the connect timeout ends it).
pub fn die_with_parent() {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let adopted_by_init = rustix::process::getppid().is_none_or(|ppid| ppid.as_raw_nonzero().get() == 1);
    // Unless the runner itself is pid 1 (ipcbench as a container's entry point).
    let runner_is_init =
        std::fs::read("/proc/1/cmdline").is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("ipcbench"));
    if adopted_by_init && !runner_is_init {
        std::process::exit(1);
    }
}

/// True when the peer needs two transports (the proxy's relay): serve it with [`serve_pair`].
pub fn needs_pair(spec: &PeerSpec) -> bool {
    matches!(PeerRole::of(spec), Some(PeerRole::Relay { .. }))
}

/// Serves a peer that needs two transports (the proxy's relay: `case.transport` in front,
/// `case.back_transport` behind), building both through `dispatch`.
///
/// # Errors
/// A message for the parent's record; `Unsupported` when a transport cannot be built.
pub fn serve_pair<D: Dispatch>(dispatch: &D, spec: &PeerSpec) -> Result<(), TrialError> {
    struct Relay<'a>(&'a PeerSpec, std::path::PathBuf);
    impl PairVisitor for Relay<'_> {
        type Output = Result<(), TrialError>;
        fn visit_pair<F: Transport + 'static, B: Transport + 'static>(self, front: F, back: B) -> Self::Output {
            scenario::proxy::serve_relay(&front, &back, self.0, &self.1)
        }
    }
    let Some(PeerRole::Relay { work_dir }) = PeerRole::of(spec) else {
        return Err(TrialError::Failed("not a relay's spec".into()));
    };
    let back = spec
        .case
        .back_transport
        .as_ref()
        .ok_or_else(|| TrialError::Failed("the relay's case has no back transport".into()))?;
    dispatch
        .dispatch_pair(&spec.case.transport, back, Relay(spec, work_dir))
        .map_err(TrialError::Unsupported)?
}
