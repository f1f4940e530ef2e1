//! How much CPU a receiver burns while nothing arrives, per wait strategy (a benchmark, not a
//! test): one thread blocks in `recv` for `IDLE` while the sender sleeps, then gets one message.
//! CPU time is the receiving thread's on-CPU time from `/proc/thread-self/schedstat` (ns).
//!
//! Run: `cargo run --release -p ipcbench-shm --example idle_cpu`

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ipcbench_core::{Channel, Endpoint, Listener, Transport};
use ipcbench_shm::{ShmTransport, WaitStrategy};

const IDLE: Duration = Duration::from_secs(2);

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    let dir = std::env::temp_dir();
    println!("receiver CPU while idle for {IDLE:?} (then one 64-byte message):");
    for wait in [WaitStrategy::Spin, WaitStrategy::Hybrid, WaitStrategy::Futex] {
        let transport = Arc::new(ShmTransport::new(1 << 16, wait));
        let mut listener = transport
            .bind(&Endpoint::new(format!("idle-{wait}"), &dir))
            .expect("bind");
        let address = listener.address();
        let client_transport = Arc::clone(&transport);
        let receiver = thread::spawn(move || {
            let mut channel = client_transport
                .connect(&address, Duration::from_secs(5))
                .expect("connect");
            let mut buf = [0u8; 64];
            let (cpu_before, started) = (thread_cpu_ns(), Instant::now());
            channel.recv(&mut buf).expect("recv");
            (thread_cpu_ns() - cpu_before, started.elapsed())
        });
        let mut sender = listener.accept(Duration::from_secs(5)).expect("accept");
        thread::sleep(IDLE);
        sender.send(&[7u8; 64]).expect("send");
        let (cpu_ns, waited) = receiver.join().expect("receiver");
        println!(
            "  {:<6} waited {:>6.0} ms, on CPU {:>8.2} ms ({:.2}% of the wait)",
            wait.as_str(),
            waited.as_secs_f64() * 1e3,
            cpu_ns as f64 / 1e6,
            100.0 * cpu_ns as f64 / waited.as_nanos() as f64
        );
    }
}
