//! Sequence numbers and checksums carried by every benchmark message.
//!
//! A message of `len` bytes is laid out as
//!
//! ```text
//! [0..8)   sequence number, u64 little-endian
//! [8..12)  checksum, u32 little-endian: low half of xxh3(body) XOR a mix of the sequence number
//! [12..)   body: a fixed byte pattern
//! ```
//!
//! Messages shorter than 12 bytes carry the first `len` bytes of that header, so a 4-byte
//! message still carries the low 32 bits of its sequence number and a 0-byte message carries
//! nothing but its length. The receiver recomputes the whole expected header from the sequence
//! number it expects and the body it got, so a lost, duplicated or reordered message (wrong
//! sequence) and a corrupt one (wrong checksum) are both caught.
//!
//! The body pattern never changes for a given length, so [`Payload::stamp`] only writes the
//! 12-byte header: the sender's cost does not grow with the message size. [`verify`] hashes the
//! whole body with xxh3, which runs at several times memcpy speed.
//!
//! A [`Verifier`] checks with a policy ([`Verify`]). `full` is [`verify`]. `sampled` (the
//! plans' default) checks the length and the whole header (sequence number and checksum word)
//! of every message, every body byte of a message up to [`SAMPLED_FULL_BYTES`], and of a larger
//! one the first and last 64 bytes and one 64-byte window in every 4 KiB, whose place moves with
//! the sequence number so that 64 consecutive messages cover every byte position. It catches
//! every lost, duplicated, reordered, truncated or padded message and every corruption of a
//! header or of a small message; in a large message it catches a corrupt byte only when it falls
//! in that message's windows (1/64 of the body, plus its ends).

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// Bytes of header at the start of a message (fewer in messages shorter than this).
pub const HEADER_BYTES: usize = 12;

/// Why a received message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The message has the wrong length.
    #[error("message {seq}: expected {expected} bytes, got {got}")]
    Length {
        /// The sequence number that was expected.
        seq: u64,
        /// Expected length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// The sequence number is not the next one: a message was lost, duplicated or reordered.
    #[error("expected message {expected}, got message {got} (lost, duplicated or reordered)")]
    Sequence {
        /// The sequence number that was expected.
        expected: u64,
        /// The one that arrived (truncated for messages shorter than 8 bytes).
        got: u64,
    },
    /// The body or header does not match its checksum.
    #[error("message {seq}: checksum mismatch (corrupt payload)")]
    Checksum {
        /// The sequence number of the corrupt message.
        seq: u64,
    },
}

/// A reusable message of one length whose header is restamped for every send.
#[derive(Debug, Clone)]
pub struct Payload {
    bytes: Vec<u8>,
    body_hash: u64,
}

impl Payload {
    /// Builds a message of `len` bytes with the fixed body pattern.
    pub fn new(len: usize) -> Self {
        let mut bytes = vec![0u8; len];
        for (idx, byte) in bytes.iter_mut().enumerate().skip(HEADER_BYTES) {
            *byte = pattern_byte(idx);
        }
        let body_hash = xxh3_64(body(&bytes));
        Payload { bytes, body_hash }
    }

    /// The message length.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for a 0-byte message.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Writes the header for `seq` and returns the whole message.
    pub fn stamp(&mut self, seq: u64) -> &[u8] {
        let header = header(seq, self.body_hash);
        match self.bytes.first_chunk_mut::<HEADER_BYTES>() {
            Some(first) => *first = header,
            None => copy_prefix(&mut self.bytes, &header),
        }
        &self.bytes
    }
}

/// Checks that `msg` is message number `seq` of `expected_len` bytes, intact.
///
/// # Errors
/// [`PayloadError`] naming what is wrong.
pub fn verify(msg: &[u8], expected_len: usize, seq: u64) -> Result<(), PayloadError> {
    if msg.len() != expected_len {
        return Err(PayloadError::Length {
            seq,
            expected: expected_len,
            got: msg.len(),
        });
    }
    let n = msg.len().min(HEADER_BYTES);
    let expected = header(seq, xxh3_64(body(msg)));
    if same_prefix(msg, &expected) {
        return Ok(());
    }
    let seq_bytes = n.min(8);
    if msg[..seq_bytes] != expected[..seq_bytes] {
        let mut got = [0u8; 8];
        got[..seq_bytes].copy_from_slice(&msg[..seq_bytes]);
        return Err(PayloadError::Sequence {
            expected: seq,
            got: u64::from_le_bytes(got),
        });
    }
    Err(PayloadError::Checksum { seq })
}

/// How much of each message the receiver checks (the plans' `verify` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// Hash every body byte ([`verify`]).
    Full,
    /// Every header, every small body, sampled windows of a large body (see the module docs).
    #[default]
    Sampled,
}

impl Verify {
    /// `full` or `sampled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::Full => "full",
            Verify::Sampled => "sampled",
        }
    }
}

/// Bodies up to this size are checked in full under [`Verify::Sampled`] too.
pub const SAMPLED_FULL_BYTES: usize = 4096;
/// The sampled window, and its stride through a large body.
const WINDOW_BYTES: usize = 64;
const STRIDE_BYTES: usize = 4096;

/// Checks messages of one length under one [`Verify`] policy.
#[derive(Debug, Clone)]
pub struct Verifier {
    policy: Verify,
    /// The message as sent, header aside: the expected body and its hash.
    expected: Payload,
}

impl Verifier {
    /// A verifier of `len`-byte messages.
    pub fn new(len: usize, policy: Verify) -> Self {
        Verifier {
            policy,
            expected: Payload::new(len),
        }
    }

    /// Checks that `msg` is message number `seq`, intact as far as the policy looks.
    ///
    /// # Errors
    /// [`PayloadError`] naming what is wrong.
    pub fn check(&self, msg: &[u8], seq: u64) -> Result<(), PayloadError> {
        let len = self.expected.len();
        if self.policy == Verify::Full || len <= HEADER_BYTES + SAMPLED_FULL_BYTES {
            return verify(msg, len, seq);
        }
        if msg.len() != len {
            return Err(PayloadError::Length {
                seq,
                expected: len,
                got: msg.len(),
            });
        }
        let expected = header(seq, self.expected.body_hash);
        if msg[..HEADER_BYTES] != expected {
            if msg[..8] != expected[..8] {
                return Err(PayloadError::Sequence {
                    expected: seq,
                    got: u64::from_le_bytes(msg[..8].try_into().expect("8 bytes")),
                });
            }
            return Err(PayloadError::Checksum { seq });
        }
        let want = &self.expected.bytes;
        let same = |at: usize| {
            let end = (at + WINDOW_BYTES).min(len);
            msg[at..end] == want[at..end]
        };
        // The window's place within each stride, moved by the sequence number.
        let shift = (seq as usize % (STRIDE_BYTES / WINDOW_BYTES)) * WINDOW_BYTES;
        let intact = same(HEADER_BYTES)
            && same(len - WINDOW_BYTES)
            && (HEADER_BYTES..len)
                .step_by(STRIDE_BYTES)
                .all(|block| same((block + shift).min(len - 1)));
        if intact {
            Ok(())
        } else {
            Err(PayloadError::Checksum { seq })
        }
    }
}

/// Reads the sequence number of a message of at least 8 bytes.
pub fn sequence_of(msg: &[u8]) -> Option<u64> {
    msg.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

fn body(msg: &[u8]) -> &[u8] {
    msg.get(HEADER_BYTES..).unwrap_or(&[])
}

/// Copies the first `dst.len()` (under [`HEADER_BYTES`]) bytes of `header` into `dst` with
/// copies of constant sizes, overlapping where needed: a runtime-length copy is a `memcpy`
/// call, on the round trip's critical path for the shortest messages.
fn copy_prefix(dst: &mut [u8], header: &[u8; HEADER_BYTES]) {
    let n = dst.len();
    match n {
        8.. => {
            dst[..8].copy_from_slice(&header[..8]);
            dst[n - 4..].copy_from_slice(&header[n - 4..n]);
        }
        4..8 => {
            dst[..4].copy_from_slice(&header[..4]);
            dst[n - 4..].copy_from_slice(&header[n - 4..n]);
        }
        _ => {
            for (d, h) in dst.iter_mut().zip(header) {
                *d = *h;
            }
        }
    }
}

/// True when `msg` starts with the first `min(len, HEADER_BYTES)` bytes of `header`, compared
/// as constant-size words (overlapping where needed) instead of by a `memcmp` call.
fn same_prefix(msg: &[u8], header: &[u8; HEADER_BYTES]) -> bool {
    let n = msg.len().min(HEADER_BYTES);
    match n {
        8.. => msg[..8] == header[..8] && msg[n - 4..n] == header[n - 4..n],
        4..8 => msg[..4] == header[..4] && msg[n - 4..n] == header[n - 4..n],
        _ => msg.iter().zip(header).all(|(m, h)| m == h),
    }
}

fn header(seq: u64, body_hash: u64) -> [u8; HEADER_BYTES] {
    let checksum = (body_hash ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)) as u32;
    let mut out = [0u8; HEADER_BYTES];
    out[..8].copy_from_slice(&seq.to_le_bytes());
    out[8..].copy_from_slice(&checksum.to_le_bytes());
    out
}

fn pattern_byte(idx: usize) -> u8 {
    (idx.wrapping_mul(131) ^ (idx >> 8)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_messages_verify_at_every_length() {
        for len in [0, 1, 4, 7, 8, 11, 12, 13, 64, 4096, 70_000] {
            let mut payload = Payload::new(len);
            for seq in [0, 1, 255, 1 << 40] {
                assert_eq!(verify(payload.stamp(seq), len, seq), Ok(()), "len {len} seq {seq}");
            }
        }
    }

    #[test]
    fn every_header_byte_of_a_short_message_is_stamped_and_checked() {
        // The short lengths take the overlapping constant-size copies and compares.
        for len in 0..=HEADER_BYTES + 1 {
            let mut payload = Payload::new(len);
            let seq = 0x0102_0304_0506_0708;
            let msg = payload.stamp(seq).to_vec();
            let expected = header(seq, xxh3_64(body(&msg)));
            let n = len.min(HEADER_BYTES);
            assert_eq!(&msg[..n], &expected[..n], "len {len}");
            assert_eq!(verify(&msg, len, seq), Ok(()), "len {len}");
            for at in 0..n {
                let mut bad = msg.clone();
                bad[at] ^= 0x20;
                assert!(
                    verify(&bad, len, seq).is_err(),
                    "len {len}: byte {at} flipped went through"
                );
            }
        }
    }

    #[test]
    fn wrong_sequence_is_caught() {
        let mut payload = Payload::new(64);
        let msg = payload.stamp(5).to_vec();
        assert_eq!(verify(&msg, 64, 6), Err(PayloadError::Sequence { expected: 6, got: 5 }));
    }

    #[test]
    fn flipped_body_bit_is_caught() {
        let mut payload = Payload::new(64);
        let mut msg = payload.stamp(9).to_vec();
        msg[40] ^= 0x10;
        assert_eq!(verify(&msg, 64, 9), Err(PayloadError::Checksum { seq: 9 }));
    }

    #[test]
    fn wrong_length_is_caught() {
        let mut payload = Payload::new(64);
        let msg = payload.stamp(1).to_vec();
        assert!(matches!(verify(&msg[..60], 64, 1), Err(PayloadError::Length { .. })));
    }

    #[test]
    fn sampled_checks_headers_and_small_bodies_in_full() {
        for len in [0, 4, 12, 64, 4096, HEADER_BYTES + SAMPLED_FULL_BYTES] {
            let verifier = Verifier::new(len, Verify::Sampled);
            let mut payload = Payload::new(len);
            assert_eq!(verifier.check(payload.stamp(3), 3), Ok(()), "len {len}");
            if len > HEADER_BYTES {
                // Any body byte of a small message.
                let mut msg = payload.stamp(3).to_vec();
                msg[len - 1] ^= 1;
                assert_eq!(verifier.check(&msg, 3), Err(PayloadError::Checksum { seq: 3 }));
            }
        }
    }

    #[test]
    fn sampled_catches_order_length_header_and_windows_in_large_bodies() {
        let len = 70_000;
        let verifier = Verifier::new(len, Verify::Sampled);
        let mut payload = Payload::new(len);
        for seq in 0..200 {
            assert_eq!(verifier.check(payload.stamp(seq), seq), Ok(()));
        }
        let msg = payload.stamp(7).to_vec();
        assert!(matches!(
            verifier.check(&msg, 8),
            Err(PayloadError::Sequence { expected: 8, got: 7 })
        ));
        assert!(matches!(
            verifier.check(&msg[..len - 1], 7),
            Err(PayloadError::Length { .. })
        ));
        let mut bad = msg.clone();
        bad[9] ^= 1; // the checksum word
        assert_eq!(verifier.check(&bad, 7), Err(PayloadError::Checksum { seq: 7 }));
        for at in [HEADER_BYTES, len - 1] {
            let mut bad = msg.clone();
            bad[at] ^= 1;
            assert_eq!(
                verifier.check(&bad, 7),
                Err(PayloadError::Checksum { seq: 7 }),
                "byte {at}"
            );
        }
        // A corrupt byte anywhere is caught by one of 64 consecutive messages.
        for at in [100, 5_000, 40_001, 65_535] {
            let caught = (0..64u64).any(|seq| {
                let mut bad = payload.stamp(seq).to_vec();
                bad[at] ^= 0x80;
                verifier.check(&bad, seq).is_err()
            });
            assert!(caught, "byte {at} never checked");
        }
        // Full checks every byte of every message.
        let full = Verifier::new(len, Verify::Full);
        let mut bad = payload.stamp(1).to_vec();
        bad[40_001] ^= 0x80;
        assert_eq!(full.check(&bad, 1), Err(PayloadError::Checksum { seq: 1 }));
    }

    #[test]
    fn short_messages_carry_the_low_sequence_bytes() {
        let mut payload = Payload::new(4);
        let msg = payload.stamp(3).to_vec();
        assert!(matches!(
            verify(&msg, 4, 4),
            Err(PayloadError::Sequence { expected: 4, got: 3 })
        ));
    }
}
