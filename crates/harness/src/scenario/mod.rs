//! The scenarios' two sides: the measuring client (in the harness process) and the server
//! (in the peer). Each scenario module has a `client` and a `server` function, both generic
//! over the channel so their timed loops are monomorphic.

use ipcbench_core::{Channel, PeerMode, Transport};

use crate::plan::{Case, ScenarioKind};
use crate::protocol::{PeerReport, PeerSpec};
use crate::session::{ClientOutcome, TrialContext, TrialError, TrialOutput};

pub(crate) mod backend;
pub mod balance;
pub mod balance_wire;
pub(crate) mod balancer;
pub mod conn_cost;
pub(crate) mod echo_server;
pub mod fleet;
pub(crate) mod generator;
pub mod http;
pub mod load;
pub(crate) mod pacing;
pub mod pingpong;
pub mod processes;
pub mod proxy;
pub mod rpc;
pub mod stream;

/// True when this build can run `kind`.
pub fn supported(kind: ScenarioKind) -> bool {
    matches!(
        kind,
        ScenarioKind::Pingpong
            | ScenarioKind::Stream
            | ScenarioKind::Rpc
            | ScenarioKind::Load
            | ScenarioKind::Proxy
            | ScenarioKind::ConnCost
            | ScenarioKind::Balance
            | ScenarioKind::Http
    )
}

/// Runs the client side of `case` on an established channel, after the start barrier.
pub(crate) fn run_client<C: Channel>(
    channel: &mut C,
    case: &Case,
    mode: PeerMode,
) -> Result<ClientOutcome, TrialError> {
    match case.scenario {
        ScenarioKind::Pingpong => pingpong::client(channel, case, mode),
        ScenarioKind::Stream => stream::client(channel, case, mode),
        ScenarioKind::Rpc => rpc::client(channel, case, mode),
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
        ScenarioKind::Stream => stream::server(channel, case),
        // The rpc server answers each request in order, exactly as pingpong's does.
        ScenarioKind::Rpc => pingpong::server(channel, case),
        other => Err(TrialError::Unsupported(format!(
            "scenario `{}` is not implemented yet",
            other.as_str()
        ))),
    }
}

/// A single-transport trial that runs its own process structure instead of the one-channel
/// trial of [`crate::trial::run_trial`] (the many-connection scenarios; see [`fleet`]).
pub(crate) type OwnTrial<T> = fn(T, &Case, &TrialContext<'_>) -> Result<TrialOutput, TrialError>;

/// The scenario's own trial function, when it has one.
pub(crate) fn own_trial<T: Transport + 'static>(kind: ScenarioKind) -> Option<OwnTrial<T>> {
    match kind {
        ScenarioKind::Load => Some(load::trial::<T>),
        ScenarioKind::ConnCost => Some(conn_cost::trial::<T>),
        ScenarioKind::Proxy => Some(proxy::without_back::<T>),
        ScenarioKind::Balance => Some(balance::trial::<T>),
        ScenarioKind::Http => Some(http::trial::<T>),
        _ => None,
    }
}

/// Serves a peer process of `load`, `conn-cost`, `proxy` (server side) or `http` over `transport`.
pub(crate) fn serve_role<T: Transport>(
    transport: &T,
    spec: &PeerSpec,
    role: fleet::PeerRole,
) -> Result<(), TrialError> {
    match role {
        fleet::PeerRole::EventServer {
            work_dir,
            stall,
            connections,
            listen_ips,
            model,
        } => echo_server::serve(
            transport,
            spec,
            &echo_server::ServerSetup {
                work_dir: &work_dir,
                stall,
                connections,
                listen_ips: &listen_ips,
                model,
            },
        ),
        fleet::PeerRole::LoadGenerator {
            servers,
            first,
            connections,
            sources,
        } => generator::serve(
            transport,
            spec,
            generator::Addressing { servers, sources },
            first,
            connections,
        ),
        fleet::PeerRole::ProxyServer { relay_address } => proxy::serve_server(transport, spec, &relay_address),
        fleet::PeerRole::BalanceBackend {
            work_dir,
            backend_idx,
            store,
        } => backend::serve(transport, spec, &work_dir, backend_idx, &store),
        fleet::PeerRole::Balancer {
            work_dir,
            backends,
            n_members,
        } => balancer::serve(transport, spec, &work_dir, &backends, n_members),
        fleet::PeerRole::HttpOrigin { work_dir, tls } => http::serve_origin(transport, spec, &work_dir, tls.as_ref()),
        fleet::PeerRole::HttpRelay { origin, tls } => http::serve_relay(transport, spec, &origin, tls.as_ref()),
        fleet::PeerRole::Relay { .. } => Err(TrialError::Failed(
            "the relay needs both transports; start it through peer::serve_pair".into(),
        )),
    }
}
