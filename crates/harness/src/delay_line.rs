//! A link with added delay emulated in user space, for kernels without netem.
//!
//! Two TUN devices stand for the two ends of the link: one in the host namespace, one moved
//! into the peer's namespace. Every IP packet the kernel routes into one device is read by a
//! thread, held for the one-way delay (and, with a rate, for its serialization time behind the
//! packets before it), and written into the other device, which hands it to that namespace's
//! stack as if it had arrived on a wire. TCP runs end to end across it, with its own windows,
//! acknowledgements and congestion control, exactly as across netem; only the timing comes from
//! user-space threads instead of a kernel qdisc.
//!
//! The model per direction, like netem's: a packet arriving at `t` starts transmission at
//! `max(t, end of the previous packet's transmission)`, takes `bytes x 8 / rate` to transmit
//! (nothing without a rate), and is delivered the one-way delay after its transmission ends.
//! The queue is unbounded, so nothing is dropped.
//!
//! Costs, stated rather than hidden: each packet costs the forwarding threads a read, a wake-up
//! and a write (tens of microseconds on top of the delay), and the threads take CPU time from
//! the machine the benchmark runs on. The devices use a 65535-byte MTU so bulk traffic needs few
//! packets. Records mark cases that ran over this link (`link_user_space`), and the runner
//! flags them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use tun_tap::{Iface, Mode};

/// MTU of both devices (the largest an IPv4 packet can be).
pub const MTU_BYTES: usize = 65_535;
/// How long dropping the line waits for each thread.
const JOIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The forwarding threads of one link, in both directions.
///
/// The caller removes the devices (deleting the namespace and the host-side device) before
/// dropping this, which ends the threads' blocked reads; dropping it then joins them.
#[derive(Debug)]
pub struct DelayLine {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DelayLine {
    /// Creates the TUN devices `host_if` and `peer_if` in the calling thread's namespace and
    /// starts forwarding between them with `delay` one way and an optional `rate_mbit` per
    /// direction. The caller moves `peer_if` into the peer's namespace and configures both.
    ///
    /// # Errors
    /// Why a device cannot be created (no `/dev/net/tun`, not allowed, name taken).
    pub fn start(host_if: &str, peer_if: &str, delay: Duration, rate_mbit: Option<f64>) -> Result<DelayLine, String> {
        let open = |name: &str| {
            Iface::without_packet_info(name, Mode::Tun)
                .map(Arc::new)
                .map_err(|e| format!("cannot create TUN device `{name}` for the user-space delay line: {e}"))
        };
        let host = open(host_if)?;
        let peer = open(peer_if)?;
        let stop = Arc::new(AtomicBool::new(false));
        let pacing = Pacing {
            delay,
            bytes_per_s: rate_mbit.map(|r| r * 1e6 / 8.0),
        };
        let mut threads = Vec::with_capacity(4);
        for (from, to) in [(Arc::clone(&host), Arc::clone(&peer)), (peer, host)] {
            let (tx, rx) = unbounded();
            threads.push(spawn_reader(from, tx)?);
            threads.push(spawn_writer(to, rx, pacing, Arc::clone(&stop))?);
        }
        Ok(DelayLine { stop, threads })
    }
}

impl Drop for DelayLine {
    fn drop(&mut self) {
        // Relaxed: a flag the writers poll between packets; it publishes no other data.
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + JOIN_TIMEOUT;
        for handle in self.threads.drain(..) {
            while !handle.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(1));
            }
            if handle.is_finished() {
                let _ = handle.join();
            }
            // A thread still blocked after the timeout is left to end with the process.
        }
    }
}

/// When each packet may leave.
#[derive(Debug, Clone, Copy)]
struct Pacing {
    delay: Duration,
    bytes_per_s: Option<f64>,
}

impl Pacing {
    /// Delivery time of a packet of `bytes` that arrived at `arrived`, given when the previous
    /// packet's transmission ended; returns (delivery, this packet's transmission end).
    fn schedule(&self, arrived: Instant, bytes: usize, previous_end: Instant) -> (Instant, Instant) {
        let start = arrived.max(previous_end);
        let transmit = self
            .bytes_per_s
            .map(|rate| Duration::from_secs_f64(bytes as f64 / rate))
            .unwrap_or(Duration::ZERO);
        let end = start + transmit;
        (end + self.delay, end)
    }
}

/// Lets the forwarding threads run on any core: they are spawned from the runner's thread, which
/// may still be pinned to the client's core from an earlier trial.
fn unpin() {
    let n_cores = crate::affinity::online_cores();
    let mut set = rustix::thread::CpuSet::new();
    for core in 0..n_cores.min(rustix::thread::CpuSet::MAX_CPU) {
        set.set(core);
    }
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn spawn_reader(from: Arc<Iface>, tx: Sender<(Instant, Vec<u8>)>) -> Result<JoinHandle<()>, String> {
    thread::Builder::new()
        .name("delay-line-rx".into())
        .spawn(move || {
            unpin();
            let mut buf = vec![0u8; MTU_BYTES + 64];
            // Ends when the device is removed (the read fails) or the writer is gone.
            while let Ok(n) = from.recv(&mut buf) {
                if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start a delay-line thread: {e}"))
}

fn spawn_writer(
    to: Arc<Iface>,
    rx: Receiver<(Instant, Vec<u8>)>,
    pacing: Pacing,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, String> {
    thread::Builder::new()
        .name("delay-line-tx".into())
        .spawn(move || {
            unpin();
            let mut previous_end = Instant::now();
            // Ends when its reader is gone (the device was removed).
            while let Ok((arrived, packet)) = rx.recv() {
                let (deliver_at, end) = pacing.schedule(arrived, packet.len(), previous_end);
                previous_end = end;
                loop {
                    // Relaxed: a flag polled between sleeps; it publishes no other data.
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let now = Instant::now();
                    if now >= deliver_at {
                        break;
                    }
                    // Sleep in slices so a stop is noticed even during a long delay.
                    thread::sleep((deliver_at - now).min(Duration::from_millis(50)));
                }
                // A packet the kernel refuses is dropped, as a wire would lose it.
                let _ = to.send(&packet);
            }
        })
        .map_err(|e| format!("cannot start a delay-line thread: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `a` and `b` within a microsecond (durations from `f64` seconds round to the nanosecond).
    fn close(a: Instant, b: Instant) -> bool {
        a.max(b) - a.min(b) < Duration::from_micros(1)
    }

    #[test]
    fn delay_alone_shifts_every_packet() {
        let pacing = Pacing {
            delay: Duration::from_millis(10),
            bytes_per_s: None,
        };
        let t0 = Instant::now();
        let (deliver, end) = pacing.schedule(t0, 1500, t0);
        assert_eq!(deliver, t0 + Duration::from_millis(10));
        assert_eq!(end, t0);
    }

    #[test]
    fn rate_queues_packets_behind_each_other() {
        // 8 Mbit/s: 1000 bytes take 1 ms to transmit.
        let pacing = Pacing {
            delay: Duration::from_millis(10),
            bytes_per_s: Some(1e6),
        };
        let t0 = Instant::now();
        let (first, end) = pacing.schedule(t0, 1000, t0);
        let (second, end2) = pacing.schedule(t0, 1000, end);
        assert!(close(first, t0 + Duration::from_millis(11)));
        assert!(close(second, t0 + Duration::from_millis(12)));
        // A packet arriving after the link went idle starts at once.
        let later = t0 + Duration::from_millis(100);
        let (third, _) = pacing.schedule(later, 1000, end2);
        assert!(close(third, later + Duration::from_millis(11)));
    }
}
