//! `pingpong`: the client sends `message_bytes`, the server answers `reply_bytes`, one at a
//! time. Every round trip is timed from just before `send` to just after `recv` returns.
//!
//! Stamping the request's header happens before the first clock read and verifying the reply
//! after the second, so neither is inside the sample. The server sends its reply first and
//! verifies the request afterwards, so its checksum work overlaps the client's.
//!
//! With the bare loop on (`Case::bare`, the default), the measured phase is cut into
//! [`BARE_BLOCKS`] blocks, each followed by a block of the transport's bare loop of the same
//! number of round trips (raw writes and reads of the same sizes, no frame, no stamp, no
//! check) over the same channel: the trial's `bare_p50_ns`. A `duration` is the trial's length,
//! shared half and half between the measured and the bare blocks (`block_amount`). The CPU
//! counters of both sides cover the measured blocks only.

use std::time::{Duration, Instant};

use ipcbench_core::payload::{Payload, Verifier};
use ipcbench_core::{BareIo, Channel, PeerMode};

use crate::plan::{Amount, Case};
use crate::protocol::{self, BareBlock, PeerReport};
use crate::rusage::{self, Snapshot};
use crate::session::{
    BARE_BLOCKS, BARE_P50_KEY, BARE_UNSUPPORTED_KEY, ClientOutcome, STOP_CHECK_EVERY, TrialError, bare_wanted,
    block_amount, control_exchange, control_exchange_with, finish_trial, interrupted, stop_requested,
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
    replies: &Verifier,
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
        replies.check(&buf[..n], *seq)?;
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
    let bare = bare_wanted(channel, case, mode).map(|on| on && reply_bytes > 0);
    let replies = Verifier::new(reply_bytes, case.verify);
    let (n_warmup, _) = run_phase(channel, &mut request, &mut buf, &replies, &mut seq, case.warmup, None)?;
    if bare == Some(true) {
        bare_block(channel, case, reply_bytes, n_warmup.max(1), &mut buf, None)?;
    }
    control_exchange(channel, protocol::MARK, &mut buf)?;
    let mut histogram = stats::new_histogram();
    let mut bare_histogram = stats::new_histogram();
    let (messages, elapsed, usage) = if bare == Some(true) {
        let (mut messages, mut elapsed, mut usage) = (0, Duration::ZERO, ipcbench_record::Rusage::default());
        for idx in 0..BARE_BLOCKS {
            let usage_start = Snapshot::now();
            let (n, block_elapsed) = run_phase(
                channel,
                &mut request,
                &mut buf,
                &replies,
                &mut seq,
                block_amount(case.measure, idx),
                Some(&mut histogram),
            )?;
            usage = rusage::add(usage, usage_start.until(&Snapshot::now()));
            messages += n;
            elapsed += block_elapsed;
            bare_block(
                channel,
                case,
                reply_bytes,
                n.max(1),
                &mut buf,
                Some(&mut bare_histogram),
            )?;
        }
        (messages, elapsed, usage)
    } else {
        let usage_start = Snapshot::now();
        let (messages, elapsed) = run_phase(
            channel,
            &mut request,
            &mut buf,
            &replies,
            &mut seq,
            case.measure,
            Some(&mut histogram),
        )?;
        (messages, elapsed, usage_start.until(&Snapshot::now()))
    };
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
    match bare {
        Some(true) => {
            if let Some(p) = stats::percentiles(&bare_histogram) {
                trial.extra.insert(BARE_P50_KEY.into(), p.p50);
                trial.extra.insert("bare_messages".into(), bare_histogram.len() as f64);
            }
        }
        Some(false) => {
            trial.extra.insert(BARE_UNSUPPORTED_KEY.into(), 1.0);
        }
        None => {}
    }
    finish_trial(trial, elapsed, usage);
    Ok(outcome)
}

/// Announces a block of `n` bare round trips and runs it, timing each into `histogram`.
fn bare_block<C: Channel>(
    channel: &mut C,
    case: &Case,
    reply_bytes: usize,
    n: u64,
    buf: &mut [u8],
    mut histogram: Option<&mut hdrhistogram::Histogram<u64>>,
) -> Result<(), TrialError> {
    control_exchange_with(channel, protocol::BARE, Some(&BareBlock { messages: n }), buf)?;
    let request = vec![0x5au8; case.message_bytes as usize];
    let mut bare = channel
        .bare()
        .ok_or_else(|| TrialError::Failed("the bare loop went away".into()))?;
    let reply = &mut buf[..reply_bytes];
    for count in 1..=n {
        let sent_at = Instant::now();
        bare.write_all(&request)?;
        bare.read_exact(reply)?;
        let received_at = Instant::now();
        if let Some(h) = histogram.as_deref_mut() {
            stats::record(h, received_at.duration_since(sent_at).as_nanos() as u64)?;
        }
        if count.is_multiple_of(STOP_CHECK_EVERY) && stop_requested() {
            return Err(interrupted());
        }
    }
    Ok(())
}

/// The peer's half of a bare block: `n` raw requests, each answered by a raw reply.
pub(crate) fn serve_bare_block(
    bare: &mut dyn BareIo,
    n: u64,
    request: &mut [u8],
    reply: &[u8],
) -> Result<(), TrialError> {
    for _ in 0..n {
        bare.read_exact(request)?;
        bare.write_all(reply)?;
    }
    Ok(())
}

/// Reads the block length of a `BARE` control message.
pub(crate) fn bare_block_of(body: &[u8]) -> Result<u64, TrialError> {
    serde_json::from_slice::<BareBlock>(body)
        .map(|b| b.messages)
        .map_err(|e| TrialError::Failed(format!("malformed BARE control message: {e}")))
}

/// The answering side: replies to every request until `END`.
pub(crate) fn server<C: Channel>(channel: &mut C, case: &Case) -> Result<PeerReport, TrialError> {
    let mut reply = Payload::new(case.reply_bytes as usize);
    let request_bytes = case.message_bytes as usize;
    let requests = Verifier::new(request_bytes, case.verify);
    let mut buf = buffer_for(case);
    let mut seq = 0u64;
    let mut usage_start = Snapshot::now();
    let mut measured_from_seq = 0u64;
    // What the bare blocks of the measured phase cost, taken out of the report.
    let mut bare_usage = ipcbench_record::Rusage::default();
    loop {
        // Stamped before the request arrives, off the round trip's critical path (a control
        // message instead leaves it unsent, and the next turn stamps the same number again).
        let stamped = reply.stamp(seq);
        let n = channel.recv(&mut buf)?;
        if let Some((command, body)) = protocol::decode(&buf[..n]) {
            match command {
                protocol::MARK => {
                    usage_start = Snapshot::now();
                    bare_usage = ipcbench_record::Rusage::default();
                    measured_from_seq = seq;
                    channel.send(&buf[..n])?;
                }
                protocol::BARE => {
                    let block = bare_block_of(body)?;
                    channel.send(&buf[..n])?;
                    let started = Snapshot::now();
                    let bare_reply = vec![0xa5u8; case.reply_bytes as usize];
                    let mut bare = channel
                        .bare()
                        .ok_or_else(|| TrialError::Failed("BARE on a channel without a bare loop".into()))?;
                    serve_bare_block(&mut *bare, block, &mut buf[..request_bytes], &bare_reply)?;
                    bare_usage = rusage::add(bare_usage, started.until(&Snapshot::now()));
                }
                protocol::END => {
                    let messages = seq - measured_from_seq;
                    let report = PeerReport {
                        rusage: rusage::subtract(usage_start.until(&Snapshot::now()), bare_usage),
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
        channel.send(stamped)?;
        requests.check(&buf[..n], seq)?;
        seq += 1;
    }
}
