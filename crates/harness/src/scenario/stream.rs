//! `stream`: one-way bulk. The client sends `total_bytes` (or, without it, for the measured
//! phase's length) in messages of `message_bytes`; the server verifies every message and, when
//! the client's `END` arrives behind the last one, confirms what it received.
//!
//! The timed span runs from just before the first measured send to the arrival of the server's
//! `REPORT`. The server answers `END` only after it has read and verified every message before
//! it, so the span covers delivery, not just handing bytes to a kernel buffer. Warm-up data is
//! sent first and drained the same way (`MARK` is echoed only after every warm-up message was
//! read), so the measured phase starts with empty buffers.
//!
//! Nothing is counted that did not arrive intact: every message's sequence number and checksum
//! are checked on arrival ([`ipcbench_core::payload::Verifier`], as `verify` says), and the `REPORT` carries the
//! server's message and byte counts and a running digest of every header it received (sequence
//! number plus body checksum, so it covers every body). The client computes the same digest over
//! what it sent; any difference fails the trial.
//!
//! With the bare loop on (`Case::bare`, the default), the measured phase is cut into
//! [`BARE_BLOCKS`] blocks, each followed by a block of the transport's bare loop moving the same
//! number of messages' bytes raw (no frame, no stamp, no check): the trial's
//! `bare_bytes_per_s`. A measured block is timed from its first send to the echo of the `BARE`
//! that announces the next bare block (the peer echoes it only after reading every message
//! before it); a bare block from its first write to the one raw byte the peer writes once it
//! read them all. Both end with one small message back, so the two figures are alike. The CPU
//! counters of both sides cover the measured blocks only.
//!
//! Without a peer (`null`) the channel just takes each message, so the figures are the client's
//! own cost of stamping and handing over a message: the floor of this loop.

use std::time::{Duration, Instant};

use ipcbench_core::payload::{HEADER_BYTES, Payload, Verifier};
use ipcbench_core::{Channel, PeerMode};

use crate::plan::{Amount, Case};
use crate::protocol::{self, BareBlock, PeerReport};
use crate::rusage::{self, Snapshot};
use crate::scenario::pingpong::bare_block_of;
use crate::session::{
    BARE_BLOCKS, BARE_BYTES_PER_S_KEY, BARE_UNSUPPORTED_KEY, ClientOutcome, STOP_CHECK_EVERY, TrialError, bare_wanted,
    block_amount, control_exchange, control_exchange_with, finish_trial, interrupted, stop_requested,
};

/// Key of the digest in the server's `REPORT` (removed before the trial is recorded).
const DIGEST_KEY: &str = "stream_digest";
/// Below this size the client reads the clock only every [`CLOCK_STRIDE`] messages.
const SMALL_MESSAGE_BYTES: u64 = 4096;
/// How many small messages go between two clock reads in a time-bounded phase.
const CLOCK_STRIDE: u64 = 32;

/// A running digest of message headers, identical on both sides when the same messages went
/// through in the same order. It is 48 bits wide so that it travels exactly in a JSON number
/// (an `f64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest(u64);

impl Default for Digest {
    fn default() -> Self {
        Digest(0x6970_6362_656e_6368) // "ipcbench"
    }
}

impl Digest {
    /// Folds one message in: its length and its header (sequence number and body checksum,
    /// or the whole message when it is shorter than a header).
    pub fn add(&mut self, msg: &[u8]) {
        let mut header = [0u8; 16];
        let n = msg.len().min(HEADER_BYTES);
        header[..n].copy_from_slice(&msg[..n]);
        let low = u64::from_le_bytes(header[..8].try_into().expect("8 bytes"));
        let high = u64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
        let mixed =
            low.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ high.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ msg.len() as u64;
        self.0 = (self.0 ^ mixed).rotate_left(23).wrapping_mul(0x1656_67B1_9E37_79F9);
    }

    /// The digest as the exact `f64` the report carries.
    pub fn value(self) -> f64 {
        (self.0 >> 16) as f64
    }
}

/// How many messages the measured phase sends: enough for `total_bytes` when given.
fn measured_amount(case: &Case) -> Amount {
    match case.total_bytes {
        Some(total) => Amount::Messages(total.div_ceil(case.message_bytes.max(1))),
        None => case.measure,
    }
}

/// Sends messages for `amount`; returns how many were sent.
fn send_phase<C: Channel>(
    channel: &mut C,
    payload: &mut Payload,
    seq: &mut u64,
    amount: Amount,
    mut digest: Option<&mut Digest>,
) -> Result<u64, TrialError> {
    let (deadline, limit) = match amount {
        Amount::Time(d) => (Some(Instant::now() + d), u64::MAX),
        Amount::Messages(n) => (None, n),
    };
    let stride = if (payload.len() as u64) < SMALL_MESSAGE_BYTES {
        CLOCK_STRIDE
    } else {
        1
    };
    let mut count = 0u64;
    while count < limit {
        if let Some(deadline) = deadline
            && count.is_multiple_of(stride)
            && Instant::now() >= deadline
        {
            break;
        }
        let msg = payload.stamp(*seq);
        channel.send(msg)?;
        if let Some(d) = digest.as_deref_mut() {
            d.add(msg);
        }
        *seq += 1;
        count += 1;
        if count.is_multiple_of(STOP_CHECK_EVERY) && stop_requested() {
            return Err(interrupted());
        }
    }
    Ok(count)
}

/// The sending (measuring) side.
pub(crate) fn client<C: Channel>(channel: &mut C, case: &Case, mode: PeerMode) -> Result<ClientOutcome, TrialError> {
    if case.message_bytes == 0 {
        return Err(TrialError::Unsupported(
            "stream needs message_bytes of at least 1: 0-byte messages move no data".into(),
        ));
    }
    let mut payload = Payload::new(case.message_bytes as usize);
    let mut buf = vec![0u8; protocol::CONTROL_BUF_BYTES];
    let mut seq = 0u64;
    let bare = bare_wanted(channel, case, mode);
    let n_warmup = send_phase(channel, &mut payload, &mut seq, case.warmup, None)?;
    if bare == Some(true) {
        bare_block(channel, case, n_warmup.max(1), &mut buf)?;
    }
    // The echo of MARK comes back only after the server drained every warm-up message.
    control_exchange(channel, protocol::MARK, &mut buf)?;
    let mut digest = Digest::default();
    let (messages, report, elapsed, usage) = if bare == Some(true) {
        let (mut messages, mut elapsed, mut usage) = (0, Duration::ZERO, ipcbench_record::Rusage::default());
        let (mut bare_bytes, mut bare_elapsed) = (0u64, Duration::ZERO);
        for idx in 0..BARE_BLOCKS {
            let usage_start = Snapshot::now();
            let started = Instant::now();
            let n = send_phase(
                channel,
                &mut payload,
                &mut seq,
                block_amount(measured_amount(case), idx),
                Some(&mut digest),
            )?;
            let block = BareBlock { messages: n.max(1) };
            // The echo confirms every message of the block arrived; the bare block follows.
            control_exchange_with(channel, protocol::BARE, Some(&block), &mut buf)?;
            elapsed += started.elapsed();
            usage = rusage::add(usage, usage_start.until(&Snapshot::now()));
            messages += n;
            bare_elapsed += bare_writes(channel, case, block.messages)?;
            bare_bytes += block.messages * case.message_bytes;
        }
        let report = control_exchange(channel, protocol::END, &mut buf)?;
        let bare_bytes_per_s = bare_bytes as f64 / bare_elapsed.as_secs_f64().max(1e-9);
        (messages, report, elapsed, (usage, Some(bare_bytes_per_s)))
    } else {
        let usage_start = Snapshot::now();
        let started = Instant::now();
        let messages = send_phase(
            channel,
            &mut payload,
            &mut seq,
            measured_amount(case),
            Some(&mut digest),
        )?;
        let report = control_exchange(channel, protocol::END, &mut buf)?;
        let elapsed = started.elapsed();
        (messages, report, elapsed, (usage_start.until(&Snapshot::now()), None))
    };
    let (usage, bare_bytes_per_s) = usage;
    let bytes = messages * case.message_bytes;
    let report = match report {
        Some(report) => Some(confirm(report, messages, bytes, digest)?),
        None if mode == PeerMode::None => None,
        None => {
            return Err(TrialError::Failed(
                "the peer echoed END instead of sending its REPORT".into(),
            ));
        }
    };
    let mut outcome = ClientOutcome {
        report,
        ..ClientOutcome::default()
    };
    let trial = &mut outcome.trial;
    trial.messages = messages;
    trial.bytes = bytes;
    match (bare, bare_bytes_per_s) {
        (Some(true), Some(rate)) => {
            trial.extra.insert(BARE_BYTES_PER_S_KEY.into(), rate);
        }
        (Some(false), _) => {
            trial.extra.insert(BARE_UNSUPPORTED_KEY.into(), 1.0);
        }
        _ => {}
    }
    finish_trial(trial, elapsed.max(Duration::from_nanos(1)), usage);
    Ok(outcome)
}

/// Announces a bare block of `n` raw messages and runs it, untimed (the warm-up's).
fn bare_block<C: Channel>(channel: &mut C, case: &Case, n: u64, buf: &mut [u8]) -> Result<(), TrialError> {
    control_exchange_with(channel, protocol::BARE, Some(&BareBlock { messages: n }), buf)?;
    bare_writes(channel, case, n)?;
    Ok(())
}

/// The client's half of a bare block already announced: `n` raw writes of `message_bytes`,
/// then the peer's one-byte confirmation. Returns the time from the first write to it.
fn bare_writes<C: Channel>(channel: &mut C, case: &Case, n: u64) -> Result<Duration, TrialError> {
    let message = vec![0x5au8; case.message_bytes as usize];
    let mut bare = channel
        .bare()
        .ok_or_else(|| TrialError::Failed("the bare loop went away".into()))?;
    let started = Instant::now();
    for count in 1..=n {
        bare.write_all(&message)?;
        if count.is_multiple_of(STOP_CHECK_EVERY) && stop_requested() {
            return Err(interrupted());
        }
    }
    let mut confirmation = [0u8; 1];
    bare.read_exact(&mut confirmation)?;
    Ok(started.elapsed())
}

/// Checks the server's counts and digest against what was sent; strips the digest.
fn confirm(mut report: PeerReport, messages: u64, bytes: u64, digest: Digest) -> Result<PeerReport, TrialError> {
    if report.messages != messages || report.bytes != bytes {
        return Err(TrialError::Failed(format!(
            "the server confirmed {} messages ({} bytes); {messages} messages ({bytes} bytes) were sent",
            report.messages, report.bytes
        )));
    }
    match report.extra.remove(DIGEST_KEY) {
        Some(value) if value == digest.value() => Ok(report),
        Some(value) => Err(TrialError::Failed(format!(
            "the server's digest of what it received ({value}) differs from the digest of what was sent ({})",
            digest.value()
        ))),
        None => Err(TrialError::Failed("the server's REPORT has no digest".into())),
    }
}

/// The receiving side: verifies every message until `END`, then reports.
pub(crate) fn server<C: Channel>(channel: &mut C, case: &Case) -> Result<PeerReport, TrialError> {
    let message_bytes = case.message_bytes as usize;
    let messages = Verifier::new(message_bytes, case.verify);
    let mut buf = vec![0u8; message_bytes.max(protocol::CONTROL_BUF_BYTES)];
    let mut seq = 0u64;
    let mut usage_start = Snapshot::now();
    let mut measured_from_seq = 0u64;
    let mut digest = Digest::default();
    // What the bare blocks of the measured phase cost, taken out of the report.
    let mut bare_usage = ipcbench_record::Rusage::default();
    loop {
        let n = channel.recv(&mut buf)?;
        if let Some((command, body)) = protocol::decode(&buf[..n]) {
            match command {
                protocol::MARK => {
                    usage_start = Snapshot::now();
                    bare_usage = ipcbench_record::Rusage::default();
                    measured_from_seq = seq;
                    digest = Digest::default();
                    channel.send(&buf[..n])?;
                }
                protocol::BARE => {
                    let block = bare_block_of(body)?;
                    // Every framed message before this one has been read: the echo says so.
                    channel.send(&buf[..n])?;
                    let started = Snapshot::now();
                    let mut bare = channel
                        .bare()
                        .ok_or_else(|| TrialError::Failed("BARE on a channel without a bare loop".into()))?;
                    for _ in 0..block {
                        bare.read_exact(&mut buf[..message_bytes])?;
                    }
                    bare.write_all(&[1])?;
                    bare_usage = rusage::add(bare_usage, started.until(&Snapshot::now()));
                }
                protocol::END => {
                    let messages = seq - measured_from_seq;
                    let mut report = PeerReport {
                        rusage: rusage::subtract(usage_start.until(&Snapshot::now()), bare_usage),
                        messages,
                        bytes: messages * message_bytes as u64,
                        extra: Default::default(),
                    };
                    report.extra.insert(DIGEST_KEY.into(), digest.value());
                    channel.send(&protocol::encode(protocol::REPORT, Some(&report)))?;
                    return Ok(report);
                }
                other => return Err(TrialError::Failed(format!("unexpected control message {other}"))),
            }
            continue;
        }
        messages.check(&buf[..n], seq)?;
        digest.add(&buf[..n]);
        seq += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_order_and_content() {
        let mut payload = Payload::new(100);
        let messages: Vec<Vec<u8>> = (0..3).map(|s| payload.stamp(s).to_vec()).collect();
        let digest_of = |order: &[usize]| {
            let mut d = Digest::default();
            for &i in order {
                d.add(&messages[i]);
            }
            d.value()
        };
        assert_eq!(digest_of(&[0, 1, 2]), digest_of(&[0, 1, 2]));
        assert_ne!(digest_of(&[0, 1, 2]), digest_of(&[0, 2, 1]));
        assert_ne!(digest_of(&[0, 1, 2]), digest_of(&[0, 1]));
        let mut d = Digest::default();
        d.add(&[1, 2, 3]);
        let mut e = Digest::default();
        e.add(&[1, 2, 4]);
        assert_ne!(d.value(), e.value());
    }

    #[test]
    fn digest_travels_exactly_as_a_json_number() {
        let mut d = Digest::default();
        for s in 0..1000u64 {
            d.add(&s.to_le_bytes());
        }
        let json = serde_json::to_string(&d.value()).unwrap();
        assert_eq!(serde_json::from_str::<f64>(&json).unwrap(), d.value());
        assert!(d.value() < (1u64 << 53) as f64);
    }
}
