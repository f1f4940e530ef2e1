//! `rpc`: requests of `message_bytes`, replies of `reply_bytes`, with up to `window` requests
//! in flight. Throughput (requests/s, bytes/s) and the round trip of every request.
//!
//! - **Window 1 (stop-and-wait)** is one thread: send, wait for the reply, repeat. It cannot
//!   deadlock and needs nothing from the transport.
//! - **Window above 1** uses two threads on the client's core over the two halves of the channel
//!   ([`Channel::split`]): a sender that writes a request whenever the window has room, and a
//!   receiver that reads replies and frees a slot for each. One thread could not do this with
//!   blocking calls: once the requests in flight exceed the buffers of both directions, it
//!   blocks writing a request while the server blocks writing a reply nobody reads, a deadlock.
//!   With a reader always reading, the server can always finish its reply, so no buffer size
//!   (not even 1024 bytes) can deadlock it. A transport that cannot split reports such cases as
//!   unsupported.
//!
//! A request's round trip runs from just before its `send` to just after its reply's `recv`;
//! with a window, that includes time queued behind earlier requests, as a real client sees it.
//! The server is `pingpong`'s: it answers each request in order until `END`.
//!
//! Over a delayed link (`delay_ms`, see [`crate::netns`]), the round trip is at least twice the
//! one-way delay, so a window of W requests moves at most W x (request + reply) bytes per round
//! trip: the bandwidth-delay product. The runner stores that bound beside the figures
//! (`ipcbench_record::finish`).

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use hdrhistogram::Histogram;
use ipcbench_core::payload::{Payload, Verifier};
use ipcbench_core::{Channel, PeerMode};

use crate::plan::{Amount, Case};
use crate::protocol;
use crate::rusage::Snapshot;
use crate::session::{
    ClientOutcome, STOP_CHECK_EVERY, TrialError, control_exchange, finish_trial, interrupted, stop_requested,
};
use ipcbench_record::Rusage;
use ipcbench_record::stats;

/// What one phase did: replies received, the time from the first send to the last reply, and
/// the CPU of the sender thread when there was one.
struct PhaseResult {
    count: u64,
    elapsed: Duration,
    sender_usage: Option<Rusage>,
}

/// One phase's settings.
struct Phase<'a> {
    replies: &'a Verifier,
    window: u64,
    amount: Amount,
    histogram: Option<&'a mut Histogram<u64>>,
}

fn limits(amount: Amount) -> (Option<Instant>, u64) {
    match amount {
        Amount::Time(d) => (Some(Instant::now() + d), u64::MAX),
        Amount::Messages(n) => (None, n),
    }
}

/// Stop-and-wait: one request at a time on one thread, which is `pingpong`'s timed loop.
fn stop_and_wait<C: Channel>(
    channel: &mut C,
    request: &mut Payload,
    buf: &mut [u8],
    seq: &mut u64,
    phase: Phase<'_>,
) -> Result<PhaseResult, TrialError> {
    let (count, elapsed) =
        super::pingpong::run_phase(channel, request, buf, phase.replies, seq, phase.amount, phase.histogram)?;
    Ok(PhaseResult {
        count,
        elapsed,
        sender_usage: None,
    })
}

/// A window of requests in flight: a sender thread and this thread as the receiver.
fn windowed<C: Channel>(
    channel: &mut C,
    request: &mut Payload,
    buf: &mut [u8],
    seq: &mut u64,
    phase: Phase<'_>,
) -> Result<PhaseResult, TrialError> {
    let window = phase.window as usize;
    let replies = phase.replies;
    let mut histogram = phase.histogram;
    let (mut tx, mut rx) = channel
        .split()
        .ok_or_else(|| TrialError::Failed("the channel could not be split a second time".into()))?;
    // One credit per free slot of the window; the receiver returns one per reply.
    let (credit_tx, credit_rx) = bounded::<()>(window);
    for _ in 0..window {
        credit_tx.send(()).expect("the credit queue holds a whole window");
    }
    // Sequence number and send time of every request in flight, in order.
    let (sent_tx, sent_rx) = bounded::<(u64, Instant)>(window);
    let (deadline, limit) = limits(phase.amount);
    let first_seq = *seq;
    let started = Instant::now();
    thread::scope(|scope| {
        // The spawned thread inherits this thread's affinity: both stay on the client's core.
        let sender = scope.spawn(move || -> Result<(u64, Rusage), TrialError> {
            let usage_start = Snapshot::now();
            let mut next = first_seq;
            while next - first_seq < limit {
                if credit_rx.recv().is_err() {
                    break; // The receiver stopped (it failed); it reports why.
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if (next - first_seq).is_multiple_of(STOP_CHECK_EVERY) && stop_requested() {
                    return Err(interrupted());
                }
                let msg = request.stamp(next);
                let sent_at = Instant::now();
                tx.send(msg)?;
                if sent_tx.send((next, sent_at)).is_err() {
                    break;
                }
                next += 1;
            }
            // Dropping `sent_tx` here tells the receiver that no more requests follow.
            Ok((next, usage_start.until(&Snapshot::now())))
        });
        let received = (|| -> Result<(u64, Instant), TrialError> {
            let mut count = 0u64;
            let mut last = started;
            // Ends once the sender is done and every request it sent has its reply.
            while let Ok((request_seq, sent_at)) = sent_rx.recv() {
                let n = rx.recv(buf)?;
                last = Instant::now();
                replies.check(&buf[..n], request_seq)?;
                if let Some(h) = histogram.as_deref_mut() {
                    stats::record(h, last.duration_since(sent_at).as_nanos() as u64)?;
                }
                count += 1;
                let _ = credit_tx.send(());
            }
            Ok((count, last))
        })();
        // On failure, free the sender: it sees the credit queue closed (or its own error).
        drop(credit_tx);
        drop(sent_rx);
        let sent = sender
            .join()
            .map_err(|_| TrialError::Failed("the rpc sender thread panicked".into()))?;
        let (count, last) = received?;
        let (next, sender_usage) = sent?;
        if next - first_seq != count {
            return Err(TrialError::Failed(format!(
                "{} requests sent but {count} replies received",
                next - first_seq
            )));
        }
        *seq = next;
        Ok(PhaseResult {
            count,
            elapsed: last.duration_since(started),
            sender_usage: Some(sender_usage),
        })
    })
}

fn run_phase<C: Channel>(
    channel: &mut C,
    request: &mut Payload,
    buf: &mut [u8],
    seq: &mut u64,
    phase: Phase<'_>,
) -> Result<PhaseResult, TrialError> {
    if phase.amount == Amount::Messages(0) {
        return Ok(PhaseResult {
            count: 0,
            elapsed: Duration::ZERO,
            sender_usage: None,
        });
    }
    if phase.window <= 1 {
        stop_and_wait(channel, request, buf, seq, phase)
    } else {
        windowed(channel, request, buf, seq, phase)
    }
}

/// The measuring side.
pub(crate) fn client<C: Channel>(channel: &mut C, case: &Case, mode: PeerMode) -> Result<ClientOutcome, TrialError> {
    let window = case.window.unwrap_or(1);
    if window > 1 && channel.split().is_none() {
        return Err(TrialError::Unsupported(format!(
            "a window of {window} needs a channel split into send and receive halves (one blocking thread \
             would deadlock once the requests in flight exceed the buffers), and `{}` cannot split",
            case.transport.kind()
        )));
    }
    // Without a peer the channel echoes the request itself.
    let reply_bytes = if mode == PeerMode::None {
        case.message_bytes
    } else {
        case.reply_bytes
    } as usize;
    let mut request = Payload::new(case.message_bytes as usize);
    let mut buf = vec![
        0u8;
        (case.message_bytes as usize)
            .max(reply_bytes)
            .max(protocol::CONTROL_BUF_BYTES)
    ];
    let mut seq = 0u64;
    let replies = Verifier::new(reply_bytes, case.verify);
    let warmup = Phase {
        replies: &replies,
        window,
        amount: case.warmup,
        histogram: None,
    };
    run_phase(channel, &mut request, &mut buf, &mut seq, warmup)?;
    control_exchange(channel, protocol::MARK, &mut buf)?;
    let usage_start = Snapshot::now();
    let mut histogram = stats::new_histogram();
    let measured = Phase {
        replies: &replies,
        window,
        amount: case.measure,
        histogram: Some(&mut histogram),
    };
    let result = run_phase(channel, &mut request, &mut buf, &mut seq, measured)?;
    let mut usage = usage_start.until(&Snapshot::now());
    // Counters are per thread: add the sender thread's, when the window had one.
    if let Some(sender) = result.sender_usage {
        usage.user_ns += sender.user_ns;
        usage.system_ns += sender.system_ns;
        usage.voluntary_csw += sender.voluntary_csw;
        usage.involuntary_csw += sender.involuntary_csw;
    }
    let report = control_exchange(channel, protocol::END, &mut buf)?;
    let mut outcome = ClientOutcome {
        report,
        ..ClientOutcome::default()
    };
    let trial = &mut outcome.trial;
    trial.messages = result.count;
    trial.bytes = result.count * (case.message_bytes + reply_bytes as u64);
    trial.latency_ns = stats::percentiles(&histogram);
    trial.histogram_v2 = Some(stats::encode_histogram(&histogram));
    finish_trial(trial, result.elapsed.max(Duration::from_nanos(1)), usage);
    Ok(outcome)
}
