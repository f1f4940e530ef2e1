//! The two reference transports: `inproc` and `null`.
//!
//! - [`InprocTransport`]: two threads of one process joined by a pair of bounded crossbeam
//!   channels. It prices what *not* leaving the process costs; records label it as thread mode
//!   ([`PeerMode::Thread`]).
//! - [`NullTransport`]: no peer at all. Its channel echoes each message back to the sender, so
//!   the timed loop runs unchanged and measures only the harness's own work per sample.
//!
//! Both take an optional busy-wait per sent message ([`InprocTransport::with_delay`]), the
//! documented way to inject a known slowdown when testing the regression gate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::{Channel, Endpoint, Halves, Listener, Options, PeerMode, RecvHalf, SendHalf, Transport, TransportError};

/// Messages an `inproc` channel buffers per direction before `send` blocks.
const INPROC_QUEUE_MESSAGES: usize = 64;

fn busy_wait(delay: Duration) {
    if delay.is_zero() {
        return;
    }
    let start = Instant::now();
    while start.elapsed() < delay {
        std::hint::spin_loop();
    }
}

fn delay_options(delay: Duration) -> Options {
    let mut options = Options::new();
    options.insert("delay_ns".into(), (delay.as_nanos() as u64).into());
    options
}

/// Two threads of one process over crossbeam channels.
#[derive(Debug, Clone, Default)]
pub struct InprocTransport {
    delay: Duration,
}

impl InprocTransport {
    /// Adds a busy-wait of `delay` to every message sent (for testing the regression gate).
    pub fn with_delay(delay: Duration) -> Self {
        InprocTransport { delay }
    }
}

/// The client halves waiting for [`InprocTransport::connect`], by address.
type Waiting = Mutex<HashMap<String, InprocChannel>>;

fn waiting() -> &'static Waiting {
    static WAITING: OnceLock<Waiting> = OnceLock::new();
    WAITING.get_or_init(Waiting::default)
}

/// One end of an `inproc` connection.
#[derive(Debug)]
pub struct InprocChannel {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    delay: Duration,
}

impl Channel for InprocChannel {
    fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        busy_wait(self.delay);
        self.tx.send(msg.to_vec()).map_err(|_| TransportError::Disconnected)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        receive_into(&self.rx, buf)
    }

    fn applied_options(&self) -> Options {
        delay_options(self.delay)
    }

    fn split(&mut self) -> Option<Halves<'_>> {
        Some((
            Box::new(InprocSender {
                tx: &self.tx,
                delay: self.delay,
            }),
            Box::new(InprocReceiver { rx: &self.rx }),
        ))
    }
}

/// The sending half of a split [`InprocChannel`].
struct InprocSender<'a> {
    tx: &'a Sender<Vec<u8>>,
    delay: Duration,
}

impl SendHalf for InprocSender<'_> {
    fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        busy_wait(self.delay);
        self.tx.send(msg.to_vec()).map_err(|_| TransportError::Disconnected)
    }
}

/// The receiving half of a split [`InprocChannel`].
struct InprocReceiver<'a> {
    rx: &'a Receiver<Vec<u8>>,
}

impl RecvHalf for InprocReceiver<'_> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        receive_into(self.rx, buf)
    }
}

/// Takes the next message off `rx` and copies it into `buf`.
fn receive_into(rx: &Receiver<Vec<u8>>, buf: &mut [u8]) -> Result<usize, TransportError> {
    let msg = rx.recv().map_err(|_| TransportError::Disconnected)?;
    let max = buf.len();
    let dest = buf
        .get_mut(..msg.len())
        .ok_or(TransportError::MessageTooLarge { len: msg.len(), max })?;
    dest.copy_from_slice(&msg);
    Ok(msg.len())
}

/// The listening half of an `inproc` connection.
#[derive(Debug)]
pub struct InprocListener {
    address: String,
    server: Option<InprocChannel>,
}

impl Drop for InprocListener {
    fn drop(&mut self) {
        waiting()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.address);
    }
}

impl Listener for InprocListener {
    type Channel = InprocChannel;

    fn address(&self) -> String {
        self.address.clone()
    }

    fn accept(&mut self, timeout: Duration) -> Result<InprocChannel, TransportError> {
        let deadline = Instant::now() + timeout;
        loop {
            let taken = !waiting()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(&self.address);
            if taken {
                return self.server.take().ok_or(TransportError::ConnectTimeout {
                    endpoint: self.address.clone(),
                    waited: timeout,
                });
            }
            if Instant::now() >= deadline {
                return Err(TransportError::ConnectTimeout {
                    endpoint: self.address.clone(),
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Transport for InprocTransport {
    type Listener = InprocListener;
    type Channel = InprocChannel;

    fn name(&self) -> &'static str {
        "inproc"
    }

    fn peer_mode(&self) -> PeerMode {
        PeerMode::Thread
    }

    fn bind(&self, endpoint: &Endpoint) -> Result<InprocListener, TransportError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        // Relaxed: the counter only has to hand out distinct numbers; it orders nothing.
        let address = format!("{}#{}", endpoint.name(), NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let (to_server, server_rx) = bounded(INPROC_QUEUE_MESSAGES);
        let (to_client, client_rx) = bounded(INPROC_QUEUE_MESSAGES);
        let client = InprocChannel {
            tx: to_server,
            rx: client_rx,
            delay: self.delay,
        };
        let server = InprocChannel {
            tx: to_client,
            rx: server_rx,
            delay: self.delay,
        };
        waiting()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(address.clone(), client);
        Ok(InprocListener {
            address,
            server: Some(server),
        })
    }

    fn connect(&self, address: &str, timeout: Duration) -> Result<InprocChannel, TransportError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(channel) = waiting().lock().unwrap_or_else(|e| e.into_inner()).remove(address) {
                return Ok(channel);
            }
            if Instant::now() >= deadline {
                return Err(TransportError::ConnectTimeout {
                    endpoint: address.to_owned(),
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// No peer: the channel answers each message itself. The harness's own floor.
#[derive(Debug, Clone, Default)]
pub struct NullTransport {
    delay: Duration,
}

impl NullTransport {
    /// Adds a busy-wait of `delay` to every message sent (for testing the regression gate).
    pub fn with_delay(delay: Duration) -> Self {
        NullTransport { delay }
    }
}

/// The `null` listener: there is nothing to wait for.
#[derive(Debug)]
pub struct NullListener {
    delay: Duration,
}

impl Listener for NullListener {
    type Channel = NullChannel;

    fn address(&self) -> String {
        "null".into()
    }

    fn accept(&mut self, _timeout: Duration) -> Result<NullChannel, TransportError> {
        Ok(NullChannel {
            echo: Vec::new(),
            pending: false,
            delay: self.delay,
        })
    }
}

/// A channel that hands each sent message back to the next `recv`.
#[derive(Debug)]
pub struct NullChannel {
    echo: Vec<u8>,
    pending: bool,
    delay: Duration,
}

impl Channel for NullChannel {
    fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        busy_wait(self.delay);
        self.echo.clear();
        self.echo.extend_from_slice(msg);
        self.pending = true;
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        if !std::mem::take(&mut self.pending) {
            // Nothing was sent: with no peer, nothing will ever arrive.
            return Err(TransportError::Disconnected);
        }
        let len = self.echo.len();
        let max = buf.len();
        let dest = buf.get_mut(..len).ok_or(TransportError::MessageTooLarge { len, max })?;
        dest.copy_from_slice(&self.echo);
        Ok(len)
    }

    fn applied_options(&self) -> Options {
        delay_options(self.delay)
    }
}

impl Transport for NullTransport {
    type Listener = NullListener;
    type Channel = NullChannel;

    fn name(&self) -> &'static str {
        "null"
    }

    fn peer_mode(&self) -> PeerMode {
        PeerMode::None
    }

    fn bind(&self, _endpoint: &Endpoint) -> Result<NullListener, TransportError> {
        Ok(NullListener { delay: self.delay })
    }

    fn connect(&self, address: &str, _timeout: Duration) -> Result<NullChannel, TransportError> {
        Err(TransportError::BadAddress {
            address: address.to_owned(),
            reason: "the null transport has no peer".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_echoes_what_was_sent() {
        let mut listener = NullTransport::default().bind(&Endpoint::new("n", ".")).unwrap();
        let mut channel = listener.accept(Duration::ZERO).unwrap();
        channel.send(b"hello").unwrap();
        let mut buf = [0; 8];
        assert_eq!(channel.recv(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        assert!(channel.recv(&mut buf).unwrap_err().is_disconnected());
    }
}
