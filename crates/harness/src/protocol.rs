//! The in-band control messages between the measuring side and its peer.
//!
//! Data messages start with their sequence number (see `ipcbench_core::payload`); control
//! messages start with [`MAGIC`], which no sequence number below 2^54 can match, followed by a
//! command word and an optional JSON body:
//!
//! | command  | sent by | body            | meaning                                              |
//! |----------|---------|-----------------|------------------------------------------------------|
//! | `READY`  | peer    | [`Ready`]       | connected and pinned: the start barrier              |
//! | `MARK`   | client  | none (echoed)   | warm-up is over; snapshot CPU counters now           |
//! | `END`    | client  | none            | the measured phase is over; send your report         |
//! | `REPORT` | peer    | [`PeerReport`]  | the peer's counters over the measured phase          |
//! | `BARE`   | client  | [`BareBlock`] (echoed) | a block of the bare loop follows, then framing resumes |
//!
//! `BARE` (pingpong and stream only) is echoed before the peer switches to the transport's bare
//! loop (`Channel::bare`): `messages` raw requests of `message_bytes`, each answered by a raw
//! reply of `reply_bytes` (pingpong), or `messages` raw writes of `message_bytes` confirmed by
//! one raw byte at the end (stream). Then both sides go back to framed messages. The stream
//! peer reads its framed messages in order, so its echo of `BARE` also confirms that every
//! framed message before it arrived.
//!
//! With no peer (`null`), the channel echoes `MARK` and `END` unchanged, so the client sees its
//! own `END` instead of a `REPORT` and records no server side.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::plan::Case;
use ipcbench_record::Rusage;

/// First 8 bytes of every control message.
pub const MAGIC: [u8; 8] = *b"IPCBCTL\0";
/// Peer to client: connected and pinned.
pub const READY: u64 = 1;
/// Client to peer: the measured phase starts now (echoed back as the acknowledgement).
pub const MARK: u64 = 2;
/// Client to peer: the measured phase is over.
pub const END: u64 = 3;
/// Peer to client: counters over the measured phase.
pub const REPORT: u64 = 4;
/// Client to peer: a block of the bare loop follows (echoed back before it starts).
pub const BARE: u64 = 5;
/// Receive buffer large enough for any control message.
pub const CONTROL_BUF_BYTES: usize = 64 * 1024;

/// How long the peer may take to connect.
pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a peer may take to exit once its work is done.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the peer keeps trying to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a control message with an optional JSON body.
pub fn encode(command: u64, body: Option<&impl Serialize>) -> Vec<u8> {
    let mut msg = Vec::with_capacity(64);
    msg.extend_from_slice(&MAGIC);
    msg.extend_from_slice(&command.to_le_bytes());
    if let Some(body) = body {
        serde_json::to_writer(&mut msg, body).expect("control bodies serialize");
    }
    msg
}

/// Splits a control message into its command and body; `None` for a data message.
pub fn decode(msg: &[u8]) -> Option<(u64, &[u8])> {
    // One 8-byte comparison rather than a slice comparison (a `memcmp` call): every message
    // of a pingpong server passes through here on the round trip's critical path.
    let (Some(magic), Some(command)) = (msg.first_chunk::<8>(), msg.get(8..16)) else {
        return None;
    };
    if u64::from_ne_bytes(*magic) != u64::from_ne_bytes(MAGIC) {
        return None;
    }
    let command = u64::from_le_bytes(command.try_into().expect("8 bytes"));
    Some((command, &msg[16..]))
}

/// The body of `BARE`: how long the bare block is.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct BareBlock {
    /// Round trips (pingpong) or raw writes of `message_bytes` (stream) in the block.
    pub messages: u64,
}

/// What the peer process is told on its command line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerSpec {
    /// The case to serve.
    pub case: Case,
    /// Where to connect (from `Listener::address`).
    pub address: String,
    /// Extra addresses (e.g. the relay's back end for `proxy`).
    #[serde(default)]
    pub extra: serde_json::Value,
}

/// The peer's start-barrier message.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ready {
    /// The peer's process id.
    pub pid: u32,
    /// The peer's affinity as read back after pinning.
    pub cores_applied: Vec<usize>,
    /// The peer's transport options as read back.
    pub applied_options: serde_json::Map<String, serde_json::Value>,
}

/// The peer's counters over the measured phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PeerReport {
    /// CPU and context switches.
    pub rusage: Rusage,
    /// Data messages received in the measured phase.
    pub messages: u64,
    /// Payload bytes received in the measured phase.
    pub bytes: u64,
    /// Scenario-specific figures.
    #[serde(default)]
    pub extra: std::collections::BTreeMap<String, f64>,
}
