//! `proxy`: client -> relay process -> server process, with the front and back transports
//! chosen independently, against the direct round trip to the same server in the same trial.
//!
//! Three processes: the measuring client, the relay (a peer process holding a front channel
//! to the client and a back channel to the server) and the server (a peer process holding a
//! back channel to the relay and a second back channel straight to the client). The client
//! alternates blocks of [`BLOCK`] round trips over the two paths, so both see the same
//! machine conditions:
//!
//! - **proxied**: client -front-> relay -back-> server, and back the same way;
//! - **direct**: client -back-> server, the round trip the hop is added to.
//!
//! The hop's cost is the difference of the two distributions' percentiles:
//! `hop_added_p50_ns = proxied p50 - direct p50` (p90, p99, p99.9 likewise), with the proxied
//! percentiles in `latency_ns` and the direct ones in `Trial.extra` (`direct_p50_ns`, ...).
//!
//! With `convert = "text"` the relay re-frames every request from the front's binary message
//! into a textual header-and-body frame for the back (`LEN <n>\r\n<body>`), and every reply
//! back, so the hop prices a protocol conversion (formatting, parsing, one copy each way); the
//! server reads and writes that text framing on the relayed path only. The relay does not
//! check payloads (a proxy would not); the client checks every reply's sequence number and
//! checksum on both paths, and the server every request.
//!
//! The relay reports its own CPU over the measured phase (`relay_user_ns`, `relay_system_ns`,
//! `relay_cpu_ns_per_message`) and its throughput in and out (`relay_in_bytes_per_s` from the
//! front, `relay_out_bytes_per_s` to the back, larger with text framing).
//!
//! **Placement.** The relay is pinned to the *client's* core, like a sidecar next to the
//! application (`relay_core` in the case's `extra`). Then the proxied path crosses between the
//! cores exactly where the direct one does, over the same (back) transport, and the hop's cost
//! is what the proxy adds: the front leg on the client's core and the relay's work. Pinning the
//! relay to the server's core instead made the proxied path's cross-core leg run over the
//! *front* transport: on a 2-core VM, where a cross-core round trip is 60-70 µs and a same-core
//! one 3-5 µs, uds->tcp then came out 17 µs faster than direct tcp (the gap between cross-core
//! uds and cross-core tcp), a comparison of transports rather than the price of a hop.
//!
//! Both transports need a peer process (`inproc` and `null` cannot be a hop), and a transport
//! that busy-polls is refused: the relay shares the client's core.

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use ipcbench_core::payload::{Payload, verify};
use ipcbench_core::{Channel, Endpoint, Listener, PeerMode, Transport};

use crate::affinity;
use crate::dispatch::{Dispatch, PairVisitor};
use crate::plan::{Amount, Case, Convert, TransportSettings};
use crate::protocol::ACCEPT_TIMEOUT;
use crate::protocol::{self, PeerReport, PeerSpec, Ready};
use crate::rusage::Snapshot;
use crate::scenario::fleet::{self, Listening, PeerRole};
use crate::session::{TrialContext, TrialError, TrialOutput, control_exchange, error_chain, finish_trial};
use ipcbench_record::Trial;
use ipcbench_record::stats;

/// Round trips per block; the client alternates blocks over the direct and proxied paths.
pub const BLOCK: u64 = 50;
/// Relay to client: the relay accepted the server on its back end; the path is complete.
pub const PATH_READY: u64 = 103;

/// Runs a proxy trial from the runner's pair dispatch.
pub(crate) struct PairTrial<'a> {
    /// The case.
    pub case: &'a Case,
    /// The trial's context.
    pub ctx: TrialContext<'a>,
}

impl PairVisitor for PairTrial<'_> {
    type Output = Result<TrialOutput, TrialError>;
    fn visit_pair<F: Transport + 'static, B: Transport + 'static>(self, front: F, back: B) -> Self::Output {
        trial(front, back, self.case, &self.ctx)
    }
}

/// Builds both transports of a proxy case and runs one trial (what the runner calls).
pub(crate) fn dispatch_trial<D: Dispatch>(
    dispatch: &D,
    case: &Case,
    back: &TransportSettings,
    ctx: TrialContext<'_>,
) -> Result<Result<TrialOutput, TrialError>, String> {
    dispatch.dispatch_pair(&case.transport, back, PairTrial { case, ctx })
}

/// The single-transport path of [`crate::trial::run_trial`]: a proxy case always has a back
/// transport, so this only explains a plan that lost it.
pub(crate) fn without_back<T: Transport + 'static>(
    _transport: T,
    _case: &Case,
    _ctx: &TrialContext<'_>,
) -> Result<TrialOutput, TrialError> {
    Err(TrialError::Unsupported(
        "a proxy case needs a back transport (`front` and `back` in the plan)".into(),
    ))
}

/// Runs one proxy trial: `front` between client and relay, `back` between relay and server
/// (and for the direct path).
///
/// # Errors
/// [`TrialError::Unsupported`] when a transport cannot be a hop; [`TrialError::Failed`]
/// otherwise. Every process is reaped either way.
pub fn trial<F: Transport + 'static, B: Transport + 'static>(
    front: F,
    back: B,
    case: &Case,
    ctx: &TrialContext<'_>,
) -> Result<TrialOutput, TrialError> {
    for (side, name, mode, busy) in [
        ("front", front.name(), front.peer_mode(), front.busy_polls()),
        ("back", back.name(), back.peer_mode(), back.busy_polls()),
    ] {
        if mode != PeerMode::Process {
            return Err(TrialError::Unsupported(format!(
                "`{name}` ({side}) has no peer process, so it cannot carry a hop between processes"
            )));
        }
        if busy {
            return Err(TrialError::Unsupported(format!(
                "`{name}` ({side}) busy-polls, and the relay shares the client's core; use a hybrid or futex wait"
            )));
        }
    }
    let client_cores = affinity::pin_current_thread(case.placement.client).map_err(TrialError::Failed)?;
    let mut relay = fleet::start_peer(
        &front,
        case,
        ctx,
        "relay",
        &PeerRole::Relay {
            work_dir: ctx.work_dir.to_owned(),
        },
        true,
    )?;
    let relay_address = relay.listening.take().map(|l| l.address).unwrap_or_default();
    let mut server_case = case.clone();
    server_case.transport = case.back_transport.clone().unwrap_or_else(|| case.transport.clone());
    let server = fleet::start_peer(
        &back,
        &server_case,
        ctx,
        "server",
        &PeerRole::ProxyServer { relay_address },
        false,
    );
    let mut server = match server {
        Ok(server) => server,
        Err(e) => {
            drop(relay.control);
            let _ = relay.process.finish(crate::protocol::EXIT_TIMEOUT);
            return Err(e);
        }
    };
    let mut buf = vec![0u8; buffer_bytes(case)];
    let outcome = fleet::expect_control(&mut relay.control, &mut buf, PATH_READY, "PATH_READY")
        .and_then(|_| measure(&mut relay.control, &mut server.control, case));
    let applied_options = relay.ready.applied_options.clone();
    let server_cores = server.ready.cores_applied.clone();
    drop(relay.control);
    drop(server.control);
    let relay_failure = relay
        .process
        .finish(crate::protocol::EXIT_TIMEOUT)
        .map(|f| format!("relay: {f}"));
    let server_failure = server
        .process
        .finish(crate::protocol::EXIT_TIMEOUT)
        .map(|f| format!("server: {f}"));
    let peer_failure = match (relay_failure, server_failure) {
        (Some(r), Some(s)) => Some(format!("{r}; {s}")),
        (r, s) => r.or(s),
    };
    let trial = fleet::merge_failure(outcome, peer_failure)?;
    Ok(TrialOutput {
        trial,
        applied_options,
        client_cores,
        server_cores,
    })
}

fn buffer_bytes(case: &Case) -> usize {
    (case.message_bytes.max(case.reply_bytes) as usize + TEXT_HEADER_MAX).max(protocol::CONTROL_BUF_BYTES)
}

/// One route's state on the client: its request payload, next sequence number and histogram.
struct Route {
    request: Payload,
    seq: u64,
    histogram: hdrhistogram::Histogram<u64>,
    count: u64,
    time: Duration,
}

impl Route {
    fn new(case: &Case) -> Route {
        Route {
            request: Payload::new(case.message_bytes as usize),
            seq: 0,
            histogram: stats::new_histogram(),
            count: 0,
            time: Duration::ZERO,
        }
    }

    /// Runs `n` round trips, recording them when `record`.
    fn block<C: Channel>(
        &mut self,
        channel: &mut C,
        buf: &mut [u8],
        reply_bytes: usize,
        n: u64,
        record: bool,
    ) -> Result<(), TrialError> {
        let started = Instant::now();
        for _ in 0..n {
            let msg = self.request.stamp(self.seq);
            let sent_at = Instant::now();
            channel.send(msg)?;
            let len = channel.recv(buf)?;
            let received_at = Instant::now();
            verify(&buf[..len], reply_bytes, self.seq)?;
            self.seq += 1;
            if record {
                stats::record(
                    &mut self.histogram,
                    received_at.duration_since(sent_at).as_nanos() as u64,
                )?;
            }
        }
        if record {
            self.count += n;
            self.time += started.elapsed();
        }
        Ok(())
    }
}

/// The client's two routes to the server and their channels.
struct Session<'a, R, S> {
    relay: &'a mut R,
    server: &'a mut S,
    proxied: Route,
    direct: Route,
    buf: Vec<u8>,
}

impl<R: Channel, S: Channel> Session<'_, R, S> {
    /// Alternates blocks over both routes for `amount`, recording them when `record`.
    fn alternate(&mut self, case: &Case, amount: Amount, record: bool) -> Result<(), TrialError> {
        let reply_bytes = case.reply_bytes as usize;
        let started = Instant::now();
        let mut done = 0u64;
        loop {
            let n = match amount {
                Amount::Time(d) if started.elapsed() >= d => return Ok(()),
                Amount::Time(_) => BLOCK,
                Amount::Messages(total) if done >= total => return Ok(()),
                Amount::Messages(total) => BLOCK.min(total - done),
            };
            self.direct.block(self.server, &mut self.buf, reply_bytes, n, record)?;
            self.proxied.block(self.relay, &mut self.buf, reply_bytes, n, record)?;
            done += n;
        }
    }
}

/// Warm-up, the measured phase and the reports of both peers.
fn measure<R: Channel, S: Channel>(relay: &mut R, server: &mut S, case: &Case) -> Result<Trial, TrialError> {
    let mut session = Session {
        relay,
        server,
        proxied: Route::new(case),
        direct: Route::new(case),
        buf: vec![0u8; buffer_bytes(case)],
    };
    session.alternate(case, case.warmup, false)?;
    control_exchange(session.relay, protocol::MARK, &mut session.buf)?;
    control_exchange(session.server, protocol::MARK, &mut session.buf)?;
    let usage_start = Snapshot::now();
    session.alternate(case, case.measure, true)?;
    let usage = usage_start.until(&Snapshot::now());
    let Session {
        relay,
        server,
        proxied,
        direct,
        mut buf,
    } = session;
    let relay_report = control_exchange(relay, protocol::END, &mut buf)?
        .ok_or_else(|| TrialError::Failed("the relay sent no REPORT".into()))?;
    let server_report = control_exchange(server, protocol::END, &mut buf)?
        .ok_or_else(|| TrialError::Failed("the server sent no REPORT".into()))?;
    let mut trial = Trial {
        latency_ns: stats::percentiles(&proxied.histogram),
        histogram_v2: Some(stats::encode_histogram(&proxied.histogram)),
        messages: proxied.count,
        bytes: proxied.count * (case.message_bytes + case.reply_bytes),
        server: Some(server_report.rusage),
        ..Trial::default()
    };
    finish_trial(&mut trial, proxied.time, usage);
    let extra = &mut trial.extra;
    if let (Some(p), Some(d)) = (trial.latency_ns, stats::percentiles(&direct.histogram)) {
        for (name, proxied_ns, direct_ns) in [
            ("p50", p.p50, d.p50),
            ("p90", p.p90, d.p90),
            ("p99", p.p99, d.p99),
            ("p999", p.p999, d.p999),
        ] {
            extra.insert(format!("direct_{name}_ns"), direct_ns);
            extra.insert(format!("hop_added_{name}_ns"), proxied_ns - direct_ns);
        }
        extra.insert("direct_mean_ns".into(), d.mean);
        extra.insert("hop_added_mean_ns".into(), p.mean - d.mean);
    }
    let seconds = |d: Duration| d.as_secs_f64().max(1e-9);
    extra.insert("direct_messages".into(), direct.count as f64);
    extra.insert(
        "direct_messages_per_s".into(),
        direct.count as f64 / seconds(direct.time),
    );
    let relay_usage = relay_report.rusage;
    extra.insert("relay_user_ns".into(), relay_usage.user_ns as f64);
    extra.insert("relay_system_ns".into(), relay_usage.system_ns as f64);
    extra.insert("relay_voluntary_csw".into(), relay_usage.voluntary_csw as f64);
    if relay_report.messages > 0 {
        extra.insert(
            "relay_cpu_ns_per_message".into(),
            relay_usage.cpu_ns() as f64 / relay_report.messages as f64,
        );
    }
    extra.insert("relay_messages".into(), relay_report.messages as f64);
    // The relay counts its bytes over the whole measured phase, in which the proxied path
    // took `proxied.time`: its rate while it carried traffic.
    for (key, name) in [
        ("in_bytes", "relay_in_bytes_per_s"),
        ("out_bytes", "relay_out_bytes_per_s"),
    ] {
        if let Some(bytes) = relay_report.extra.get(key) {
            extra.insert(name.into(), bytes / seconds(proxied.time));
        }
    }
    Ok(trial)
}

/// The longest text header: `LEN ` + 20 digits + CRLF.
const TEXT_HEADER_MAX: usize = 4 + 20 + 2;

/// Writes `body` as a text frame (`LEN <n>\r\n<body>`) into `out`.
pub fn encode_text(body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "LEN {}\r\n", body.len());
    out.extend_from_slice(body);
}

/// The body of a text frame, checked against its header.
///
/// # Errors
/// A message naming what is wrong with the frame.
pub fn decode_text(frame: &[u8]) -> Result<&[u8], String> {
    let rest = frame
        .strip_prefix(b"LEN ")
        .ok_or("text frame does not start with `LEN `")?;
    let end = rest
        .iter()
        .position(|&b| b == b'\r')
        .filter(|&i| i <= 20)
        .ok_or("text frame has no CRLF after its length")?;
    if rest.get(end + 1) != Some(&b'\n') {
        return Err("text frame has no CRLF after its length".into());
    }
    let digits = std::str::from_utf8(&rest[..end]).map_err(|_| "text frame length is not ASCII")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("text frame length `{digits}` is not a number"));
    }
    let len: usize = digits
        .parse()
        .map_err(|_| format!("text frame length `{digits}` is too large"))?;
    let body = &rest[end + 2..];
    if body.len() != len {
        return Err(format!("text frame says {len} bytes but carries {}", body.len()));
    }
    Ok(body)
}

/// Serves one trial as the relay: front from the client, back to the server.
///
/// # Errors
/// A message for the parent's record.
pub(crate) fn serve_relay<F: Transport, B: Transport>(
    front: &F,
    back: &B,
    spec: &PeerSpec,
    work_dir: &Path,
) -> Result<(), TrialError> {
    let case = &spec.case;
    // The client's core: the relay is the client's sidecar (module docs, "Placement").
    let cores_applied = affinity::pin_current_thread(case.placement.client).map_err(TrialError::Failed)?;
    let mut upstream = front
        .connect(&spec.address, protocol::CONNECT_TIMEOUT)
        .map_err(|e| TrialError::Failed(format!("relay cannot connect to {}: {}", spec.address, error_chain(&e))))?;
    let endpoint = Endpoint::new(format!("case{}-relay-{}", case.index, std::process::id()), work_dir);
    let mut listener = back.bind(&endpoint)?;
    let ready = Ready {
        pid: std::process::id(),
        cores_applied,
        applied_options: upstream.applied_options().into_iter().collect(),
    };
    upstream.send(&protocol::encode(protocol::READY, Some(&ready)))?;
    upstream.send(&protocol::encode(
        fleet::LISTENING,
        Some(&Listening {
            address: listener.address(),
            all: Vec::new(),
        }),
    ))?;
    let mut downstream = listener
        .accept(ACCEPT_TIMEOUT)
        .map_err(|e| TrialError::Failed(format!("the server never reached the relay: {}", error_chain(&e))))?;
    drop(listener);
    upstream.send(&protocol::encode(PATH_READY, None::<&()>))?;
    relay_loop(&mut upstream, &mut downstream, case)
}

/// Forwards requests and replies until `END`, converting the framing when asked.
fn relay_loop<U: Channel, D: Channel>(upstream: &mut U, downstream: &mut D, case: &Case) -> Result<(), TrialError> {
    let text = case.convert == Convert::Text;
    let mut request = vec![0u8; buffer_bytes(case)];
    let mut reply = vec![0u8; buffer_bytes(case)];
    let mut converted = Vec::with_capacity(buffer_bytes(case));
    let mut usage_start = Snapshot::now();
    let (mut messages, mut in_bytes, mut out_bytes) = (0u64, 0u64, 0u64);
    loop {
        let n = upstream.recv(&mut request)?;
        if let Some((command, _)) = protocol::decode(&request[..n]) {
            match command {
                protocol::MARK => {
                    usage_start = Snapshot::now();
                    (messages, in_bytes, out_bytes) = (0, 0, 0);
                    upstream.send(&request[..n])?;
                }
                protocol::END => {
                    let mut extra = std::collections::BTreeMap::new();
                    extra.insert("in_bytes".to_owned(), in_bytes as f64);
                    extra.insert("out_bytes".to_owned(), out_bytes as f64);
                    let report = PeerReport {
                        rusage: usage_start.until(&Snapshot::now()),
                        messages,
                        bytes: in_bytes,
                        extra,
                    };
                    upstream.send(&protocol::encode(protocol::REPORT, Some(&report)))?;
                    return Ok(());
                }
                other => return Err(TrialError::Failed(format!("relay: unexpected control message {other}"))),
            }
            continue;
        }
        in_bytes += n as u64;
        if text {
            encode_text(&request[..n], &mut converted);
            downstream.send(&converted)?;
            out_bytes += converted.len() as u64;
            let m = downstream.recv(&mut reply)?;
            let body = decode_text(&reply[..m]).map_err(|e| TrialError::Failed(format!("relay: {e}")))?;
            upstream.send(body)?;
        } else {
            downstream.send(&request[..n])?;
            out_bytes += n as u64;
            let m = downstream.recv(&mut reply)?;
            upstream.send(&reply[..m])?;
        }
        messages += 1;
    }
}

/// Serves one trial as the proxy's server: the relayed path on a thread, the direct path
/// (which also carries `MARK`/`END`) on the calling thread.
///
/// # Errors
/// A message for the parent's record.
pub(crate) fn serve_server<B: Transport>(back: &B, spec: &PeerSpec, relay_address: &str) -> Result<(), TrialError> {
    let case = &spec.case;
    let cores_applied = affinity::pin_current_thread(case.placement.server).map_err(TrialError::Failed)?;
    let mut direct = back.connect(&spec.address, protocol::CONNECT_TIMEOUT).map_err(|e| {
        TrialError::Failed(format!(
            "server cannot connect to {}: {}",
            spec.address,
            error_chain(&e)
        ))
    })?;
    let mut relayed = back.connect(relay_address, protocol::CONNECT_TIMEOUT).map_err(|e| {
        TrialError::Failed(format!(
            "server cannot connect to the relay at {relay_address}: {}",
            error_chain(&e)
        ))
    })?;
    let relay_case = case.clone();
    // The thread inherits this thread's affinity (the server core).
    let relay_thread = std::thread::spawn(move || serve_relayed(&mut relayed, &relay_case));
    let ready = Ready {
        pid: std::process::id(),
        cores_applied,
        applied_options: direct.applied_options().into_iter().collect(),
    };
    direct.send(&protocol::encode(protocol::READY, Some(&ready)))?;
    super::pingpong::server(&mut direct, case)?;
    drop(direct);
    // The relay closes its back channel after its report, which ends the relayed thread.
    let deadline = Instant::now() + crate::protocol::EXIT_TIMEOUT;
    while !relay_thread.is_finished() {
        if Instant::now() > deadline {
            return Err(TrialError::Failed("the relayed path did not end after END".into()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    match relay_thread.join() {
        Ok(result) => result,
        Err(_) => Err(TrialError::Failed("the relayed path panicked".into())),
    }
}

/// Answers every relayed request (text framed with `convert = "text"`) until the relay closes.
fn serve_relayed<C: Channel>(channel: &mut C, case: &Case) -> Result<(), TrialError> {
    let text = case.convert == Convert::Text;
    let request_bytes = case.message_bytes as usize;
    let mut reply = Payload::new(case.reply_bytes as usize);
    let mut buf = vec![0u8; buffer_bytes(case)];
    let mut converted = Vec::with_capacity(buffer_bytes(case));
    let mut seq = 0u64;
    loop {
        let n = match channel.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.is_disconnected() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let body = if text {
            decode_text(&buf[..n]).map_err(|e| TrialError::Failed(format!("server: {e}")))?
        } else {
            &buf[..n]
        };
        verify(body, request_bytes, seq)?;
        let msg = reply.stamp(seq);
        if text {
            encode_text(msg, &mut converted);
            channel.send(&converted)?;
        } else {
            channel.send(msg)?;
        }
        seq += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_frames_round_trip() {
        let mut out = Vec::new();
        for body in [&b""[..], b"x", &[0u8, 13, 10, 255][..], &vec![7u8; 70_000][..]] {
            encode_text(body, &mut out);
            assert!(out.starts_with(format!("LEN {}\r\n", body.len()).as_bytes()));
            assert_eq!(decode_text(&out).unwrap(), body);
        }
    }

    #[test]
    fn malformed_text_frames_are_named() {
        for (frame, what) in [
            (&b"LEN 3\r\nab"[..], "says 3 bytes but carries 2"),
            (b"LEN 3\nabc", "no CRLF"),
            (b"SIZE 3\r\nabc", "does not start"),
            (b"LEN x\r\nabc", "not a number"),
            (b"LEN \r\n", "not a number"),
            (b"LEN 99999999999999999999999\r\n", "no CRLF"),
        ] {
            let message = decode_text(frame).unwrap_err();
            assert!(message.contains(what), "{frame:?}: {message}");
        }
    }
}
