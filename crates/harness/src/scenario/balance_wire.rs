//! What the three kinds of process of `balance` say to each other: the request and reply
//! frames on the data path, the control commands added to [`crate::protocol`]'s, and the
//! reports the balancer and the backends send at `END`.
//!
//! Data frames are framed as in `load` (a 4-byte little-endian length, then the body):
//!
//! | frame   | body                                                              |
//! |---------|-------------------------------------------------------------------|
//! | request | client id (u64 LE), sequence number (u64 LE), padding to `message_bytes` |
//! | reply   | sequence number (u64 LE), the client's counter after this request (u64 LE); counter 0 = the store failed |
//!
//! The balancer forwards a request unchanged and a reply unchanged; a backend answers the
//! requests of one link in order, so the balancer matches replies to clients first-in,
//! first-out per backend link.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::protocol::PeerReport;

/// Bytes in a frame header.
pub(crate) const FRAME_HEADER_BYTES: usize = 4;
/// Bytes in a reply body.
pub(crate) const REPLY_BYTES: usize = 16;
/// A reply's counter when the backend's read-modify-write failed.
pub(crate) const STORE_FAILED: u64 = 0;

/// Measuring process to balancer and backends (no body, no answer): the measured phase ends.
pub const WINDOW_END: u64 = 121;
/// Measuring process to balancer (body [`Change`], no answer): a membership change now.
pub const CHANGE: u64 = 122;

/// A membership change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// The spare backend joins.
    Add,
    /// The last member leaves.
    Remove,
}

/// A backend's `REPORT` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackendReport {
    /// CPU between `MARK` and `WINDOW_END`, requests answered in that window.
    pub report: PeerReport,
    /// Time in the store per request of the measured phase (HdrHistogram V2, base64).
    pub state_histogram_v2: String,
    /// Every client this backend's handle can see, with its counter (for `local`, its own).
    pub counters: Vec<(u64, u64)>,
    /// Requests answered since the start.
    pub requests_total: u64,
    /// The store's own message, when an operation failed.
    pub store_error: Option<String>,
}

/// The balancer's `REPORT` body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BalancerReport {
    /// CPU between `MARK` and `WINDOW_END`, requests forwarded in that window.
    pub report: PeerReport,
    /// Requests forwarded per backend in the measured phase.
    pub forwarded: Vec<u64>,
    /// Requests forwarded per backend in each [`BUCKET_NS`] of the measured phase.
    pub buckets: Vec<Vec<u64>>,
    /// The members at the end.
    pub members: Vec<usize>,
    /// When each change took effect, ns after `MARK`.
    pub changes_ns: Vec<u64>,
    /// Client connections the balancer closed because of a membership change.
    pub closed_for_change: u64,
    /// Client connections accepted since the start.
    pub accepted: u64,
    /// Replies that arrived for a client connection already closed (lost to the client).
    pub orphan_replies: u64,
    /// Further counts.
    pub extra: BTreeMap<String, f64>,
}

/// The width of one bucket of [`BalancerReport::buckets`].
pub const BUCKET_NS: u64 = 100_000_000;

/// Splits whole frames off the front of `pending` + `data`, calling `on_frame` with each body;
/// keeps an incomplete tail in `pending`. `expected` is the body length every frame must have.
pub(crate) fn frames<E>(
    pending: &mut Vec<u8>,
    data: &[u8],
    expected: usize,
    mut on_frame: impl FnMut(&[u8]) -> Result<(), E>,
    bad_length: impl Fn(usize) -> E,
) -> Result<(), E> {
    let mut each = |bytes: &[u8]| -> Result<usize, E> {
        let mut used = 0;
        while bytes.len() - used >= FRAME_HEADER_BYTES {
            let len = u32::from_le_bytes(bytes[used..used + FRAME_HEADER_BYTES].try_into().expect("4 bytes")) as usize;
            if len != expected {
                return Err(bad_length(len));
            }
            if bytes.len() - used < FRAME_HEADER_BYTES + len {
                break;
            }
            on_frame(&bytes[used + FRAME_HEADER_BYTES..used + FRAME_HEADER_BYTES + len])?;
            used += FRAME_HEADER_BYTES + len;
        }
        Ok(used)
    };
    if pending.is_empty() {
        let used = each(data)?;
        pending.extend_from_slice(&data[used..]);
    } else {
        pending.extend_from_slice(data);
        let whole = std::mem::take(pending);
        let used = each(&whole)?;
        *pending = whole;
        pending.drain(..used);
    }
    Ok(())
}

/// The two u64 at the start of a body.
pub(crate) fn two_words(body: &[u8]) -> (u64, u64) {
    let a = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    let b = u64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    (a, b)
}

/// A reply frame, header included.
pub(crate) fn reply_frame(seq: u64, counter: u64) -> [u8; FRAME_HEADER_BYTES + REPLY_BYTES] {
    let mut out = [0u8; FRAME_HEADER_BYTES + REPLY_BYTES];
    out[..4].copy_from_slice(&(REPLY_BYTES as u32).to_le_bytes());
    out[4..12].copy_from_slice(&seq.to_le_bytes());
    out[12..20].copy_from_slice(&counter.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_reads_come_out_whole() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&reply_frame(1, 10));
        bytes.extend_from_slice(&reply_frame(2, 11));
        let mut pending = Vec::new();
        let mut seen = Vec::new();
        for piece in [&bytes[..3], &bytes[3..25], &bytes[25..]] {
            frames(
                &mut pending,
                piece,
                REPLY_BYTES,
                |body| {
                    seen.push(two_words(body));
                    Ok::<(), usize>(())
                },
                |len| len,
            )
            .unwrap();
        }
        assert_eq!(seen, [(1, 10), (2, 11)]);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_frame_of_the_wrong_length_is_an_error() {
        let mut pending = Vec::new();
        let err = frames(&mut pending, &reply_frame(1, 1), 24, |_| Ok(()), |len| len).unwrap_err();
        assert_eq!(err, 16);
    }
}
