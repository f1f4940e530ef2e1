//! The measuring side of an agent: the handshake ([`contact`]) and a peer process that runs on
//! the agent's machine (`RemotePeer`), which ends the way a local one does.
//!
//! The CLI contacts every agent of a plan before the run ([`contact`]): a version mismatch, a
//! bad token, an unreachable agent or a plan beyond its limits is then one error before
//! anything is measured. Each trial opens a fresh control connection, repeats the handshake and
//! sends one `Launch`; the agent answers `Exited` when its peer is gone. Closing the connection
//! ends the trial on the agent: it kills the peer.

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::agent_wire::{
    self, AgentLink, CONNECT_TIMEOUT, HANDSHAKE_TIMEOUT, Message, PROTOCOL_VERSION, Secret, Welcome, WireError,
};
use crate::protocol::PeerSpec;
use crate::session::TrialError;

/// The ipcbench version both ends of a control connection compare.
pub const IPCBENCH_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why an agent cannot serve this run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Nothing answers at the address.
    #[error("cannot reach the agent at {address}: {reason}")]
    Unreachable {
        /// The agent's address.
        address: SocketAddr,
        /// What connecting said.
        reason: String,
    },
    /// The agent said no (versions, token, limits, busy).
    #[error("the agent at {address} refused: {reason}")]
    Refused {
        /// The agent's address.
        address: SocketAddr,
        /// The agent's reason.
        reason: String,
    },
    /// The agent broke the protocol or the connection broke.
    #[error("the agent at {address}: {reason}")]
    Protocol {
        /// The agent's address.
        address: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// An agent that passed the handshake: how to reach it and what it said about itself.
#[derive(Debug, Clone)]
pub struct Agent {
    /// Address, local route address and token.
    pub link: AgentLink,
    /// Its versions, machine and limits.
    pub welcome: Welcome,
}

/// Connects and runs the handshake; returns the connection and the agent's [`Welcome`].
fn handshake(
    address: SocketAddr,
    token: Option<&Secret>,
    claimed_protocol: u32,
) -> Result<(TcpStream, Welcome), AgentError> {
    let stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).map_err(|e| AgentError::Unreachable {
        address,
        reason: e.to_string(),
    })?;
    let protocol = |reason: String| AgentError::Protocol { address, reason };
    let wire = |e: WireError| match &e {
        WireError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            protocol("it closed the control connection during the handshake".into())
        }
        _ => protocol(e.to_string()),
    };
    let _ = stream.set_nodelay(true);
    agent_wire::detect_dead_peer(&stream).map_err(|e| protocol(format!("cannot set keepalive: {e}")))?;
    stream
        .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT)))
        .map_err(|e| protocol(e.to_string()))?;
    let send = |message: &Message| agent_wire::write_message(&stream, message).map_err(|e| protocol(e.to_string()));
    send(&Message::Hello {
        ipcbench_version: IPCBENCH_VERSION.into(),
        protocol_version: claimed_protocol,
    })?;
    let refused = |reason: String| AgentError::Refused { address, reason };
    let nonce = match agent_wire::read_message(&stream).map_err(wire)? {
        Message::Challenge { nonce, token_required } => {
            if token_required && token.is_none() {
                // Say it here: the agent's own refusal would follow the empty proof.
                return Err(refused(
                    "it requires a token; give `ipcbench run --token-file FILE` with the agent's secret".into(),
                ));
            }
            nonce
        }
        Message::Refused { reason } => return Err(refused(reason)),
        other => return Err(protocol(format!("expected a challenge, got {other:?}"))),
    };
    send(&Message::Proof {
        mac: token.map(|t| t.prove(&nonce)),
    })?;
    match agent_wire::read_message(&stream).map_err(wire)? {
        Message::Welcome(welcome) => Ok((stream, *welcome)),
        Message::Refused { reason } => Err(refused(reason)),
        other => Err(protocol(format!("expected a welcome, got {other:?}"))),
    }
}

/// Contacts the agent at `address` once (the pre-flight check of a run): versions, token, its
/// machine and limits. The connection closes again.
///
/// # Errors
/// [`AgentError`] naming the address and the reason.
pub fn contact(address: SocketAddr, token: Option<&Secret>) -> Result<Agent, AgentError> {
    contact_claiming(address, token, PROTOCOL_VERSION)
}

/// [`contact`] claiming another protocol version (for the version-mismatch test).
///
/// # Errors
/// As [`contact`].
pub fn contact_claiming(address: SocketAddr, token: Option<&Secret>, protocol: u32) -> Result<Agent, AgentError> {
    let (stream, welcome) = handshake(address, token, protocol)?;
    let local_ip = stream
        .local_addr()
        .map_err(|e| AgentError::Protocol {
            address,
            reason: e.to_string(),
        })?
        .ip();
    drop(stream);
    Ok(Agent {
        link: AgentLink {
            address,
            local_ip,
            token: token.cloned(),
        },
        welcome,
    })
}

/// Control connections of live remote peers, so an interrupt can end them all ([`end_all`]).
static LIVE: Mutex<Vec<(u64, TcpStream)>> = Mutex::new(Vec::new());

/// Closes every live remote peer's control connection: each agent then kills its peer, and
/// the trial's channel sees `Disconnected`.
pub fn end_all() {
    for (_, stream) in LIVE.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = stream.shutdown(Shutdown::Both);
    }
}

/// The peer side of a trial, running on an agent.
pub(crate) struct RemotePeer {
    stream: Option<TcpStream>,
    address: SocketAddr,
    pid: u32,
    id: u64,
}

impl RemotePeer {
    /// Asks the agent at `link` to start the peer of `spec`; returns once it runs.
    pub(crate) fn launch(link: &AgentLink, spec: &PeerSpec) -> Result<RemotePeer, TrialError> {
        let address = link.address;
        let (stream, _) =
            handshake(address, link.token.as_ref(), PROTOCOL_VERSION).map_err(|e| TrialError::Failed(e.to_string()))?;
        let failed = |reason: String| TrialError::Failed(format!("the agent at {address}: {reason}"));
        agent_wire::write_message(
            &stream,
            &Message::Launch {
                spec: Box::new(spec.clone()),
            },
        )
        .map_err(|e| failed(e.to_string()))?;
        let pid = match agent_wire::read_message(&stream) {
            Ok(Message::Started { pid }) => pid,
            // A refusal here is about this case (limits, a core the agent lacks): the case fails.
            Ok(Message::Refused { reason }) => return Err(failed(format!("refused the case: {reason}"))),
            Ok(other) => return Err(failed(format!("expected `started`, got {other:?}"))),
            Err(e) => return Err(failed(format!("no answer to the launch: {e}"))),
        };
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        // Relaxed: the counter only hands out distinct ids.
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            LIVE.lock().unwrap_or_else(|e| e.into_inner()).push((id, clone));
        }
        Ok(RemotePeer {
            stream: Some(stream),
            address,
            pid,
            id,
        })
    }

    /// True once the agent spoke (it reports only the peer's exit) or closed the control
    /// connection; false while the connection is quiet.
    pub(crate) fn has_ended(&self) -> bool {
        let Some(stream) = &self.stream else {
            return true;
        };
        if stream.set_nonblocking(true).is_err() {
            return true;
        }
        let ended = match stream.peek(&mut [0u8; 1]) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        let _ = stream.set_nonblocking(false);
        ended
    }

    /// Waits up to `limit` (at least half a second: the report crosses a network) for the
    /// agent's account of the peer's exit, then closes the control connection, which makes the
    /// agent kill a peer still running. Returns why the peer failed, or `None`.
    pub(crate) fn finish(&mut self, limit: Duration) -> Option<String> {
        let stream = self.stream.take()?;
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != self.id);
        let deadline = Instant::now() + limit.max(Duration::from_millis(500));
        let address = self.address;
        let outcome = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Some(format!(
                    "the agent at {address} did not report the exit of its peer (pid {}) in time; it was told to kill it",
                    self.pid
                ));
            }
            if stream.set_read_timeout(Some(left)).is_err() {
                break Some(format!("the control connection to the agent at {address} failed"));
            }
            match agent_wire::read_message(&stream) {
                Ok(Message::Exited { failure }) => break failure.map(|f| format!("on the agent at {address}: {f}")),
                Ok(other) => {
                    break Some(format!(
                        "the agent at {address} sent {other:?} instead of the peer's exit"
                    ));
                }
                Err(WireError::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    continue;
                }
                Err(WireError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    break Some(format!(
                        "the agent at {address} closed the control connection before its peer (pid {}) exited \
                         (was the agent stopped or killed?)",
                        self.pid
                    ));
                }
                Err(e) => break Some(format!("the agent at {address}: {e}")),
            }
        };
        let _ = stream.shutdown(Shutdown::Both);
        outcome
    }
}

impl Drop for RemotePeer {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            LIVE.lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(id, _)| *id != self.id);
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}
