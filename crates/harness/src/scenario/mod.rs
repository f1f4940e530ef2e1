//! The scenarios' two sides: the measuring client (in the harness process) and the server
//! (in the peer). Each scenario module has a `client` and a `server` function, both generic
//! over the channel so their timed loops are monomorphic.

use ipcbench_core::{Channel, PeerMode};

use crate::config::{Case, ScenarioKind};
use crate::protocol::PeerReport;
use crate::trial::{ClientOutcome, TrialError};

pub mod pingpong;

/// True when this build can run `kind`.
pub fn supported(kind: ScenarioKind) -> bool {
    matches!(kind, ScenarioKind::Pingpong)
}

/// Runs the client side of `case` on an established channel, after the start barrier.
pub(crate) fn run_client<C: Channel>(
    channel: &mut C,
    case: &Case,
    mode: PeerMode,
) -> Result<ClientOutcome, TrialError> {
    match case.scenario {
        ScenarioKind::Pingpong => pingpong::client(channel, case, mode),
        other => Err(TrialError::Unsupported(format!(
            "scenario `{}` is not implemented yet",
            other.as_str()
        ))),
    }
}

/// Runs the server side of `case` until the client's `END`; returns the report sent.
pub(crate) fn run_server<C: Channel>(channel: &mut C, case: &Case) -> Result<PeerReport, TrialError> {
    match case.scenario {
        ScenarioKind::Pingpong => pingpong::server(channel, case),
        other => Err(TrialError::Unsupported(format!(
            "scenario `{}` is not implemented yet",
            other.as_str()
        ))),
    }
}
