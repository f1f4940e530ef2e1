//! The control protocol between `ipcbench run` and an agent (`ipcbench serve`): its messages,
//! their framing, the shared-secret proof and the limits an agent puts on plans.
//!
//! Both ends use this module; it depends on nothing above [`crate::protocol`], so the client
//! side ([`crate::remote`]) and the agent ([`crate::agent`]) sit on either side of
//! [`crate::process`].
//!
//! Every message is a 4-byte big-endian length and that many bytes of JSON ([`Message`]).
//! A length above [`MAX_MESSAGE_BYTES`], a body that is not one of the messages, or a message
//! out of turn closes the connection.
//!
//! ```text
//! client                                   agent
//!   Hello {ipcbench_version, protocol}  ──►
//!                                       ◄──  Challenge {nonce, token_required}   (or Refused)
//!   Proof {mac}                         ──►
//!                                       ◄──  Welcome {environment, limits}       (or Refused)
//!   Launch {spec}                       ──►   (a pre-flight check closes here instead)
//!                                       ◄──  Started {pid}                        (or Refused)
//!                                       ◄──  Exited {failure}
//! ```
//!
//! `mac` is HMAC-SHA256 keyed with the shared secret over [`PROOF_CONTEXT`] and the nonce,
//! hex: the secret itself never crosses the wire, and a recorded proof is worthless against
//! the next nonce. One connection carries at most one launch; the runner opens a new one per
//! trial, so an agent holds nothing between trials, and a client that goes away (its
//! connection closes) ends its trial on the agent at once.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

use crate::plan::{Amount, Case};
use crate::protocol::PeerSpec;
use ipcbench_record::Environment;

/// The version of this control protocol; both ends must speak the same one.
pub const PROTOCOL_VERSION: u32 = 1;
/// The largest control message either end accepts (a peer spec is a few KiB).
pub const MAX_MESSAGE_BYTES: u32 = 1 << 20;
/// How long each step of the handshake, and the request after it, may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to an agent may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// What the proof's MAC covers besides the nonce, so it cannot be replayed elsewhere.
pub const PROOF_CONTEXT: &[u8] = b"ipcbench-agent-proof-v1:";
/// Bytes of the agent's random nonce.
pub const NONCE_BYTES: usize = 32;
/// The largest token file either end reads.
pub const MAX_TOKEN_BYTES: u64 = 4096;
/// A control connection whose other end stays silent this long while data is unacknowledged,
/// or that answers none of [`KEEPALIVE_PROBES`] keepalive probes, is dead: a machine that
/// vanished without closing its sockets (power, cable, a cut link) ends its trials within
/// seconds instead of at the case's timeout.
pub const DEAD_PEER_AFTER: Duration = Duration::from_secs(5);
/// Keepalive probes, one a second after a second of silence, before the connection is dead.
pub const KEEPALIVE_PROBES: u32 = 3;

/// A shared secret; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<Vec<u8>>);

impl Secret {
    /// Wraps the secret's bytes (surrounding white space is not part of it).
    ///
    /// # Errors
    /// An empty secret.
    pub fn new(bytes: &[u8]) -> Result<Secret, String> {
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() {
            return Err("the token is empty".into());
        }
        Ok(Secret(Arc::new(trimmed.to_vec())))
    }

    /// The proof for `nonce`: HMAC-SHA256 over [`PROOF_CONTEXT`] and the nonce, hex.
    pub fn prove(&self, nonce: &str) -> String {
        hex(&self.mac(nonce).finalize().into_bytes())
    }

    /// True when `proof` is the proof for `nonce` (compared in constant time).
    pub fn verify(&self, nonce: &str, proof: &str) -> bool {
        match unhex(proof) {
            Some(bytes) => self.mac(nonce).verify_slice(&bytes).is_ok(),
            None => false,
        }
    }

    fn mac(&self, nonce: &str) -> hmac::Hmac<sha2::Sha256> {
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(PROOF_CONTEXT);
        mac.update(nonce.as_bytes());
        mac
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 256 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What an agent lets a plan ask of it; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentLimits {
    /// The most connections one case may open to it (`--max-connections`).
    pub max_connections: Option<u64>,
    /// The longest measured phase plus warm-up of one trial (`--max-duration`), ns.
    pub max_duration_ns: Option<u64>,
    /// The highest offered rate of one case, messages/s over all its connections (`--max-rate`).
    pub max_rate_hz: Option<f64>,
}

impl AgentLimits {
    /// Why `case` asks more than these limits allow, naming the limit; `None` when it fits.
    pub fn refusal(&self, case: &Case) -> Option<String> {
        self.refusal_of_share(case, case.connections.unwrap_or(1), "")
    }

    /// [`AgentLimits::refusal`] for the `connections` of `case` one agent holds (a generator
    /// agent's share of the fleet); `whose` says whose they are in the reason (" as a
    /// generator" or "").
    pub fn refusal_of_share(&self, case: &Case, connections: u64, whose: &str) -> Option<String> {
        if let Some(max) = self.max_connections
            && connections > max
        {
            return Some(format!(
                "case {} asks for {connections} connections{whose}; the agent allows at most {max} \
                 (--max-connections)",
                case.id
            ));
        }
        if let Some(max_ns) = self.max_duration_ns {
            let phase = |amount: Amount| match amount {
                Amount::Time(d) => Some(d),
                Amount::Messages(_) => None,
            };
            // A count of messages has no length of its own: the case's timeout bounds it.
            let asked = match (phase(case.warmup), phase(case.measure)) {
                (Some(w), Some(m)) => w + m,
                _ => case.timeout,
            };
            if asked.as_nanos() > u128::from(max_ns) {
                return Some(format!(
                    "case {} runs for up to {:?}; the agent allows at most {:?} per trial (--max-duration)",
                    case.id,
                    asked,
                    Duration::from_nanos(max_ns)
                ));
            }
        }
        if let Some(max) = self.max_rate_hz
            && let Some(rate) = case.rate_per_connection_hz
        {
            let offered = rate * connections as f64;
            if offered > max {
                return Some(format!(
                    "case {} offers {offered} messages/s{whose}; the agent allows at most {max} (--max-rate)",
                    case.id
                ));
            }
        }
        None
    }
}

/// Everything that crosses a control connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Message {
    /// Client: who is asking.
    Hello {
        /// The client's ipcbench version.
        ipcbench_version: String,
        /// The client's [`PROTOCOL_VERSION`].
        protocol_version: u32,
    },
    /// Agent: prove you know the secret (when `token_required`).
    Challenge {
        /// Random, hex, fresh per connection.
        nonce: String,
        /// True when the agent was started with `--token-file`.
        token_required: bool,
    },
    /// Client: the proof for the nonce, when the client has a token.
    Proof {
        /// [`Secret::prove`] of the nonce.
        mac: Option<String>,
    },
    /// Agent: the handshake is done.
    Welcome(Box<Welcome>),
    /// Client: start the peer side of one trial.
    Launch {
        /// The peer's spec, as a local peer would get it on its command line.
        spec: Box<PeerSpec>,
    },
    /// Agent: the peer process runs.
    Started {
        /// Its pid on the agent's machine.
        pid: u32,
    },
    /// Agent: the peer process is gone.
    Exited {
        /// Why it failed (its last stderr line when it has one); `None` for a clean exit.
        failure: Option<String>,
    },
    /// Agent: the request is refused; the connection closes after it.
    Refused {
        /// What is wrong and what is allowed.
        reason: String,
    },
}

/// The agent's side of a finished handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Welcome {
    /// The agent's ipcbench version.
    pub ipcbench_version: String,
    /// The agent's [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// The agent machine's manifest, as a local run records its own.
    pub environment: Environment,
    /// What the agent lets a plan ask.
    pub limits: AgentLimits,
}

/// Why a control message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection closed or failed.
    #[error("control connection: {0}")]
    Io(#[from] io::Error),
    /// The length prefix is above [`MAX_MESSAGE_BYTES`].
    #[error("control message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(u32),
    /// The body is not a control message.
    #[error("malformed control message: {0}")]
    Malformed(String),
}

/// Makes a control connection notice a peer machine that vanished (see [`DEAD_PEER_AFTER`]):
/// keepalive probes while it is quiet, and `TCP_USER_TIMEOUT` while data waits for an ack.
/// A read on it then fails instead of blocking forever.
///
/// # Errors
/// The socket option that could not be set.
pub fn detect_dead_peer(stream: &std::net::TcpStream) -> io::Result<()> {
    use rustix::net::sockopt;
    sockopt::set_socket_keepalive(stream, true)?;
    sockopt::set_tcp_keepidle(stream, Duration::from_secs(1))?;
    sockopt::set_tcp_keepintvl(stream, Duration::from_secs(1))?;
    sockopt::set_tcp_keepcnt(stream, KEEPALIVE_PROBES)?;
    sockopt::set_tcp_user_timeout(stream, DEAD_PEER_AFTER.as_millis() as u32)?;
    Ok(())
}

/// Writes one message.
///
/// # Errors
/// The socket's error.
pub fn write_message(mut stream: impl Write, message: &Message) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(|_| io::Error::other("control message too large"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame)?;
    stream.flush()
}

/// Reads one message, refusing one longer than [`MAX_MESSAGE_BYTES`] before reading its body.
///
/// # Errors
/// [`WireError`]; end of stream is `Io` with `UnexpectedEof`.
pub fn read_message(mut stream: impl Read) -> Result<Message, WireError> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(len));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body)?;
    serde_json::from_slice(&body).map_err(|e| WireError::Malformed(e.to_string()))
}

/// How the measuring side reaches one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLink {
    /// The agent's control address.
    pub address: SocketAddr,
    /// This machine's address on the route to the agent (the control connection's local
    /// address): the measuring listener binds it, so the agent's peer can dial it.
    pub local_ip: IpAddr,
    /// The shared secret, when the agent wants one.
    pub token: Option<Secret>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_only_with_the_same_secret_and_nonce() {
        let secret = Secret::new(b"  s3cret\n").unwrap();
        let proof = secret.prove("abcd");
        assert!(secret.verify("abcd", &proof));
        assert!(!secret.verify("abce", &proof));
        assert!(!Secret::new(b"other").unwrap().verify("abcd", &proof));
        assert!(!secret.verify("abcd", "zz"));
        assert!(!proof.contains("s3cret"));
        assert!(Secret::new(b" \n").is_err());
        assert_eq!(format!("{secret:?}"), "Secret(..)");
    }

    #[test]
    fn oversized_and_malformed_messages_are_errors() {
        let mut huge = u32::MAX.to_be_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(matches!(read_message(&huge[..]), Err(WireError::TooLarge(_))));
        let mut bad = 5u32.to_be_bytes().to_vec();
        bad.extend_from_slice(b"hello");
        assert!(matches!(read_message(&bad[..]), Err(WireError::Malformed(_))));
        assert!(matches!(read_message(&[0u8, 0][..]), Err(WireError::Io(_))));
        let mut frame = Vec::new();
        write_message(&mut frame, &Message::Started { pid: 7 }).unwrap();
        assert!(matches!(read_message(&frame[..]), Ok(Message::Started { pid: 7 })));
    }
}
