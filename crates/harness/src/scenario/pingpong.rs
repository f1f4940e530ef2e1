//! `pingpong`: the client sends `message_bytes`, the server answers `reply_bytes`, one at a
//! time. Every round trip is timed from just before `send` to just after `recv` returns.
//!
//! Stamping the request's header happens before the first clock read and verifying the reply
//! after the second, so neither is inside the sample. The server sends its reply first and
//! verifies the request afterwards, so its checksum work overlaps the client's.

use std::time::{Duration, Instant};

use ipcbench_core::payload::{Payload, verify};
use ipcbench_core::{Channel, PeerMode};

use crate::plan::{Amount, Case};
use crate::protocol::{self, PeerReport};
use crate::rusage::Snapshot;
use crate::session::{
    ClientOutcome, STOP_CHECK_EVERY, TrialError, control_exchange, finish_trial, interrupted, stop_requested,
};
use ipcbench_record::stats;

fn buffer_for(case: &Case) -> Vec<u8> {
    vec![0u8; (case.message_bytes.max(case.reply_bytes) as usize).max(protocol::CONTROL_BUF_BYTES)]
}

/// Runs round trips for `amount`, recording each into `histogram` when given.
/// Returns the number of round trips and the time they took.
pub(crate) fn run_phase<C: Channel>(
    channel: &mut C,
    request: &mut Payload,
    buf: &mut [u8],
    reply_bytes: usize,
    seq: &mut u64,
    amount: Amount,
    mut histogram: Option<&mut hdrhistogram::Histogram<u64>>,
) -> Result<(u64, Duration), TrialError> {
    let (deadline, limit) = match amount {
        Amount::Time(d) => (Some(Instant::now() + d), u64::MAX),
        Amount::Messages(0) => return Ok((0, Duration::ZERO)),
        Amount::Messages(n) => (None, n),
    };
    let started = Instant::now();
    let mut count = 0u64;
    loop {
        let msg = request.stamp(*seq);
        let sent_at = Instant::now();
        channel.send(msg)?;
        let n = channel.recv(buf)?;
        let received_at = Instant::now();
        verify(&buf[..n], reply_bytes, *seq)?;
        if let Some(h) = histogram.as_deref_mut() {
            stats::record(h, received_at.duration_since(sent_at).as_nanos() as u64)?;
        }
        *seq += 1;
        count += 1;
        if count.is_multiple_of(STOP_CHECK_EVERY) && stop_requested() {
            return Err(interrupted());
        }
        if count >= limit || deadline.is_some_and(|d| received_at >= d) {
            return Ok((count, received_at.duration_since(started)));
        }
    }
}

/// The measuring side.
pub(crate) fn client<C: Channel>(channel: &mut C, case: &Case, mode: PeerMode) -> Result<ClientOutcome, TrialError> {
    let mut request = Payload::new(case.message_bytes as usize);
    // Without a peer the channel echoes the request itself.
    let reply_bytes = if mode == PeerMode::None {
        case.message_bytes
    } else {
        case.reply_bytes
    } as usize;
    let mut buf = buffer_for(case);
    let mut seq = 0u64;
    run_phase(
        channel,
        &mut request,
        &mut buf,
        reply_bytes,
        &mut seq,
        case.warmup,
        None,
    )?;
    control_exchange(channel, protocol::MARK, &mut buf)?;
    let usage_start = Snapshot::now();
    let mut histogram = stats::new_histogram();
    let (messages, elapsed) = run_phase(
        channel,
        &mut request,
        &mut buf,
        reply_bytes,
        &mut seq,
        case.measure,
        Some(&mut histogram),
    )?;
    let usage = usage_start.until(&Snapshot::now());
    let report = control_exchange(channel, protocol::END, &mut buf)?;
    let mut outcome = ClientOutcome {
        report,
        ..ClientOutcome::default()
    };
    let trial = &mut outcome.trial;
    trial.messages = messages;
    trial.bytes = messages * (case.message_bytes + reply_bytes as u64);
    trial.latency_ns = stats::percentiles(&histogram);
    trial.histogram_v2 = Some(stats::encode_histogram(&histogram));
    finish_trial(trial, elapsed, usage);
    Ok(outcome)
}

/// The answering side: replies to every request until `END`.
pub(crate) fn server<C: Channel>(channel: &mut C, case: &Case) -> Result<PeerReport, TrialError> {
    let mut reply = Payload::new(case.reply_bytes as usize);
    let request_bytes = case.message_bytes as usize;
    let mut buf = buffer_for(case);
    let mut seq = 0u64;
    let mut usage_start = Snapshot::now();
    let mut measured_from_seq = 0u64;
    loop {
        let n = channel.recv(&mut buf)?;
        if let Some((command, _)) = protocol::decode(&buf[..n]) {
            match command {
                protocol::MARK => {
                    usage_start = Snapshot::now();
                    measured_from_seq = seq;
                    channel.send(&buf[..n])?;
                }
                protocol::END => {
                    let messages = seq - measured_from_seq;
                    let report = PeerReport {
                        rusage: usage_start.until(&Snapshot::now()),
                        messages,
                        bytes: messages * request_bytes as u64,
                        extra: Default::default(),
                    };
                    channel.send(&protocol::encode(protocol::REPORT, Some(&report)))?;
                    return Ok(report);
                }
                other => return Err(TrialError::Failed(format!("unexpected control message {other}"))),
            }
            continue;
        }
        channel.send(reply.stamp(seq))?;
        verify(&buf[..n], request_bytes, seq)?;
        seq += 1;
    }
}
