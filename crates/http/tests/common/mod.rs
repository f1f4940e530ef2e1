//! Helpers of the integration tests: roles on their own threads, stopped by a guard.
#![allow(dead_code)]

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipcbench_http::{Address, HttpError, Origin, OriginConfig, OriginReport, Relay, RelayConfig, RelayReport, Stop};

/// No test role lives longer than this, even if a test forgets to stop it.
pub const ROLE_LIFETIME: Duration = Duration::from_secs(30);

/// A role running on its own thread; stopped when finished or dropped.
pub struct Running<R: Send + 'static> {
    pub address: Address,
    stop: Stop,
    handle: Option<JoinHandle<Result<R, HttpError>>>,
}

impl<R: Send + 'static> Running<R> {
    /// Stops the role and returns its report.
    pub fn finish(mut self) -> R {
        self.stop.stop();
        let handle = self.handle.take().expect("finished once");
        handle.join().expect("role thread panicked").expect("role failed")
    }
}

impl<R: Send + 'static> Drop for Running<R> {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

pub fn start_origin(config: OriginConfig) -> Running<OriginReport> {
    let origin = Origin::bind(config).expect("origin binds");
    let address = origin.address();
    let stop = Stop::with_deadline(Instant::now() + ROLE_LIFETIME);
    let role_stop = stop.clone();
    let handle = std::thread::spawn(move || origin.run(&role_stop));
    Running {
        address,
        stop,
        handle: Some(handle),
    }
}

pub fn start_relay(config: RelayConfig) -> Running<RelayReport> {
    let relay = Relay::bind(config).expect("relay binds");
    let address = relay.address();
    let stop = Stop::with_deadline(Instant::now() + ROLE_LIFETIME);
    let role_stop = stop.clone();
    let handle = std::thread::spawn(move || relay.run(&role_stop));
    Running {
        address,
        stop,
        handle: Some(handle),
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
