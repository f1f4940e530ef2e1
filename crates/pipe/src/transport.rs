//! Binding, the open handshake and dialling: everything up to an established [`PipeChannel`].
//!
//! Every wait in the handshake is bounded by the caller's timeout:
//!
//! 1. `bind` makes both FIFOs and opens the read end of `to-server` with `O_NONBLOCK`. From
//!    then on a client can open the write end of `to-server` without blocking.
//! 2. `connect` opens the read end of `to-client`, then the write end of `to-server`
//!    (retrying while the files do not exist yet or nobody reads them), sets the pipe size of
//!    `to-server` and writes [`HELLO`].
//! 3. `accept` polls `to-server` until `HELLO` arrives, opens the write end of `to-client`
//!    (the client's reader is already there), sets the pipe size of `to-client`, writes
//!    [`ACK`] and unlinks both FIFO files: both ends are open, nobody else should find them.
//! 4. `connect` polls `to-client` until `ACK` arrives.
//!
//! Neither side reads before `poll` reports data, because a read end whose writer has not
//! opened yet reports end of file. After the handshake each read end has its writer, so a
//! later end of file really means the peer closed. Both sides clear `O_NONBLOCK` at the end.
//!
//! An endpoint serves exactly one client; a second client dialling the same endpoint before
//! the first is accepted would corrupt the handshake.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipcbench_core::{Endpoint, Listener, Options, Transport, TransportError};
use rustix::event::PollFlags;

use crate::channel::PipeChannel;
use crate::fifo::{End, FifoFile, check_pipe_bytes, open_end, pipe_bytes, set_blocking, set_pipe_bytes};
use ipcbench_core::wait::{Deadline, poll_readable};

/// Suffix of the FIFO the client writes and the server reads.
const TO_SERVER: &str = ".to-server.fifo";
/// Suffix of the FIFO the server writes and the client reads.
const TO_CLIENT: &str = ".to-client.fifo";
/// What the client writes once both of its ends are open. Shorter than `PIPE_BUF`, so it
/// arrives in one piece.
const HELLO: &[u8] = b"ipcbench-pipe/1 hello\n";
/// What the server answers once both of its ends are open.
const ACK: &[u8] = b"ipcbench-pipe/1 ready\n";
/// How long an open pauses before trying again while the other side is not there yet.
const RETRY_PAUSE: Duration = Duration::from_millis(2);

/// A pair of FIFOs; see the crate docs.
///
/// Both sides should be built with the same options: each applies `pipe_buffer_bytes` to the
/// FIFO it writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipeTransport {
    /// Pipe capacity to ask for with `F_SETPIPE_SZ`; `None` keeps the kernel default (64 KiB
    /// on Linux).
    ///
    /// # Platform-specific behavior
    /// Only Linux and Android can set it; elsewhere `bind` and `connect` fail with `BadOption`.
    pub pipe_buffer_bytes: Option<usize>,
}

impl PipeTransport {
    /// Turns the two opened, handshaken ends into a blocking channel with its read-back options.
    fn channel(&self, inbound: File, outbound: File) -> Result<PipeChannel, TransportError> {
        set_blocking(&inbound)
            .and_then(|()| set_blocking(&outbound))
            .map_err(|source| TransportError::Io {
                op: "clear O_NONBLOCK",
                source,
            })?;
        let mut options = Options::new();
        // Each side sized the FIFO it writes; report the smaller, which bounds a round trip.
        if let (Some(inbound_bytes), Some(outbound_bytes)) = (pipe_bytes(&inbound)?, pipe_bytes(&outbound)?) {
            options.insert("pipe_buffer_bytes".into(), inbound_bytes.min(outbound_bytes).into());
        }
        if let Some(requested) = self.pipe_buffer_bytes {
            options.insert("pipe_buffer_bytes_requested".into(), requested.into());
        }
        Ok(PipeChannel::new(inbound, outbound, options))
    }
}

/// Parses an address: the common prefix of the two FIFO paths, `<dir>/<name>`.
fn parse_address(address: &str) -> Result<PathBuf, TransportError> {
    let bad = |reason: &str| TransportError::BadAddress {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    if address.is_empty() {
        return Err(bad("expected the path prefix of a FIFO pair, such as /tmp/run/case-1"));
    }
    if address.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    if address.ends_with('/') {
        return Err(bad("names a directory, not a FIFO prefix"));
    }
    Ok(PathBuf::from(address))
}

/// `base` with `suffix` appended to its last component.
fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut path = OsString::from(base.as_os_str());
    path.push(suffix);
    PathBuf::from(path)
}

/// Opens one end of a FIFO, retrying while it is not there yet, until `deadline`.
fn open_until(
    path: &Path,
    end: End,
    deadline: Deadline,
    timed_out: &dyn Fn() -> TransportError,
) -> Result<File, TransportError> {
    loop {
        match open_end(path, end) {
            Ok(Some(file)) => return Ok(file),
            Ok(None) => {}
            Err(err) if err.kind() == io::ErrorKind::InvalidInput => {
                return Err(TransportError::BadAddress {
                    address: path.display().to_string(),
                    reason: err.to_string(),
                });
            }
            Err(source) => {
                return Err(TransportError::Io {
                    op: "open fifo",
                    source,
                });
            }
        }
        let remaining = deadline.remaining().ok_or_else(timed_out)?;
        std::thread::sleep(remaining.min(RETRY_PAUSE));
    }
}

/// Waits until `file` (a non-blocking read end) has data, then reads exactly `expected`.
///
/// A hang-up without data means the peer opened its end and closed it again.
fn await_token(
    mut file: &File,
    expected: &[u8],
    deadline: Deadline,
    timed_out: &dyn Fn() -> TransportError,
) -> Result<(), TransportError> {
    loop {
        let remaining = deadline.remaining().ok_or_else(timed_out)?;
        let events = poll_readable(file, remaining).map_err(|source| TransportError::Io { op: "poll", source })?;
        if events.contains(PollFlags::IN) {
            let mut got = vec![0u8; expected.len()];
            match file.read(&mut got) {
                Ok(n) if got[..n] == *expected => return Ok(()),
                Ok(0) => return Err(TransportError::Disconnected),
                Ok(_) => {
                    return Err(TransportError::Io {
                        op: "pipe handshake",
                        source: io::Error::new(io::ErrorKind::InvalidData, "unexpected bytes from the peer"),
                    });
                }
                Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(err) => return Err(TransportError::io("read", err)),
            }
        } else if events.intersects(PollFlags::HUP | PollFlags::ERR) {
            return Err(TransportError::Disconnected);
        }
    }
}

/// Writes a handshake token to a non-blocking write end; it fits the empty pipe whole.
fn send_token(mut file: &File, token: &[u8]) -> Result<(), TransportError> {
    match file.write(token) {
        Ok(n) if n == token.len() => Ok(()),
        Ok(_) => Err(TransportError::Io {
            op: "pipe handshake",
            source: io::Error::new(io::ErrorKind::WriteZero, "handshake token did not fit the pipe"),
        }),
        Err(err) => Err(TransportError::io("write", err)),
    }
}

impl Transport for PipeTransport {
    type Listener = PipeListener;
    type Channel = PipeChannel;

    fn name(&self) -> &'static str {
        "pipe"
    }

    fn bind(&self, endpoint: &Endpoint) -> Result<PipeListener, TransportError> {
        check_pipe_bytes(self.pipe_buffer_bytes)?;
        let base = endpoint.path("");
        let address = base
            .to_str()
            .ok_or_else(|| TransportError::BadAddress {
                address: base.display().to_string(),
                reason: "the FIFO path is not valid UTF-8".into(),
            })?
            .to_owned();
        parse_address(&address)?;
        let to_server = FifoFile::create(with_suffix(&base, TO_SERVER))?;
        let to_client = FifoFile::create(with_suffix(&base, TO_CLIENT))?;
        let inbound = open_end(to_server.path(), End::Read)
            .and_then(|file| file.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound)))
            .map_err(|source| TransportError::Io {
                op: "open fifo",
                source,
            })?;
        Ok(PipeListener {
            inbound: Some(inbound),
            files: Some((to_server, to_client)),
            address,
            transport: self.clone(),
        })
    }

    fn connect(&self, address: &str, timeout: Duration) -> Result<PipeChannel, TransportError> {
        check_pipe_bytes(self.pipe_buffer_bytes)?;
        let base = parse_address(address)?;
        let deadline = Deadline::after(timeout);
        let timed_out = || TransportError::ConnectTimeout {
            endpoint: address.to_owned(),
            waited: timeout,
        };
        let inbound = open_until(&with_suffix(&base, TO_CLIENT), End::Read, deadline, &timed_out)?;
        let outbound = open_until(&with_suffix(&base, TO_SERVER), End::Write, deadline, &timed_out)?;
        if let Some(bytes) = self.pipe_buffer_bytes {
            set_pipe_bytes(&outbound, bytes)?;
        }
        send_token(&outbound, HELLO)?;
        await_token(&inbound, ACK, deadline, &timed_out)?;
        self.channel(inbound, outbound)
    }
}

/// Two FIFOs and the read end of one of them, waiting for the one client.
///
/// Dropping it closes that end and unlinks both FIFO files (contract item 5); `accept`
/// unlinks them as soon as the client is connected.
#[derive(Debug)]
pub struct PipeListener {
    /// The read end of `to-server`, held from `bind` on so that the client can open its
    /// write end; `None` once accepted.
    inbound: Option<File>,
    /// `to-server` and `to-client`; `None` (unlinked) once accepted.
    files: Option<(FifoFile, FifoFile)>,
    address: String,
    transport: PipeTransport,
}

impl Listener for PipeListener {
    type Channel = PipeChannel;

    /// The common prefix of the two FIFO paths: `<dir>/<name>`.
    fn address(&self) -> String {
        self.address.clone()
    }

    fn accept(&mut self, timeout: Duration) -> Result<PipeChannel, TransportError> {
        let already = || TransportError::Io {
            op: "accept",
            source: io::Error::other("this pipe listener already accepted its one peer"),
        };
        let deadline = Deadline::after(timeout);
        let address = self.address.clone();
        let timed_out = move || TransportError::ConnectTimeout {
            endpoint: address.clone(),
            waited: timeout,
        };
        let to_client = match (&self.inbound, &self.files) {
            (Some(inbound), Some((_, to_client))) => {
                await_token(inbound, HELLO, deadline, &timed_out)?;
                to_client.path().to_owned()
            }
            _ => return Err(already()),
        };
        let outbound = open_until(&to_client, End::Write, deadline, &timed_out)?;
        if let Some(bytes) = self.transport.pipe_buffer_bytes {
            set_pipe_bytes(&outbound, bytes)?;
        }
        send_token(&outbound, ACK)?;
        let inbound = self.inbound.take().ok_or_else(already)?;
        // Both ends are open on both sides: the files have done their job.
        self.files = None;
        self.transport.channel(inbound, outbound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipcbench_core::Channel;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn pair(transport: &PipeTransport, dir: &Path) -> (PipeChannel, PipeChannel, PipeListener) {
        let mut listener = transport.bind(&Endpoint::new("unit", dir)).unwrap();
        let address = listener.address();
        let client_transport = transport.clone();
        let client = std::thread::spawn(move || client_transport.connect(&address, TIMEOUT).unwrap());
        let server = listener.accept(TIMEOUT).unwrap();
        (server, client.join().unwrap(), listener)
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn requested_size_is_applied_and_read_back_on_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        for (requested, applied) in [(1 << 20, 1 << 20), (5000, 8192), (1, 4096)] {
            let transport = PipeTransport {
                pipe_buffer_bytes: Some(requested),
            };
            let (server, client, _listener) = pair(&transport, dir.path());
            for channel in [&server, &client] {
                let options = channel.applied_options();
                assert_eq!(options["pipe_buffer_bytes_requested"], requested);
                assert_eq!(options["pipe_buffer_bytes"], applied, "asked for {requested}");
            }
        }
    }

    #[test]
    fn default_size_is_recorded_without_a_request() {
        let dir = tempfile::tempdir().unwrap();
        let (server, _client, _listener) = pair(&PipeTransport::default(), dir.path());
        let options = server.applied_options();
        assert_eq!(options["pipe_buffer_bytes"], 65536);
        assert!(!options.contains_key("pipe_buffer_bytes_requested"));
    }

    #[test]
    fn fifos_are_unlinked_once_connected() {
        let dir = tempfile::tempdir().unwrap();
        let listener = PipeTransport::default()
            .bind(&Endpoint::new("unit", dir.path()))
            .unwrap();
        assert_eq!(files_in(dir.path()), 2);
        drop(listener);
        assert_eq!(files_in(dir.path()), 0);
        let (mut server, mut client, listener) = pair(&PipeTransport::default(), dir.path());
        assert_eq!(files_in(dir.path()), 0, "files left while the listener is alive");
        client.send(b"still talking").unwrap();
        let mut buf = [0u8; 32];
        assert_eq!(server.recv(&mut buf).unwrap(), 13);
        drop(listener);
    }

    #[test]
    fn writing_to_a_closed_reader_is_disconnected_not_a_signal() {
        let dir = tempfile::tempdir().unwrap();
        let (server, mut client, _listener) = pair(&PipeTransport::default(), dir.path());
        drop(server);
        assert!(client.send(b"anyone?").unwrap_err().is_disconnected());
    }

    #[test]
    fn second_accept_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (_server, _client, mut listener) = pair(&PipeTransport::default(), dir.path());
        assert!(matches!(
            listener.accept(Duration::from_millis(10)),
            Err(TransportError::Io { op: "accept", .. })
        ));
    }

    #[test]
    fn client_that_gives_up_does_not_hang_accept() {
        let dir = tempfile::tempdir().unwrap();
        let mut listener = PipeTransport::default()
            .bind(&Endpoint::new("unit", dir.path()))
            .unwrap();
        let result = PipeTransport::default().connect(&listener.address(), Duration::from_millis(50));
        assert!(matches!(result, Err(TransportError::ConnectTimeout { .. })));
        // Its hello is in the pipe, but its read end is gone: accept must still return.
        assert!(listener.accept(Duration::from_millis(200)).is_err());
    }

    #[test]
    fn bad_sizes_are_refused_before_any_file_is_made() {
        let dir = tempfile::tempdir().unwrap();
        for bytes in [0, usize::MAX] {
            let transport = PipeTransport {
                pipe_buffer_bytes: Some(bytes),
            };
            let result = transport.bind(&Endpoint::new("unit", dir.path()));
            assert!(matches!(
                result,
                Err(TransportError::BadOption {
                    option: "pipe_buffer_bytes",
                    ..
                })
            ));
        }
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn malformed_or_non_fifo_addresses_are_bad_address() {
        let dir = tempfile::tempdir().unwrap();
        for address in ["", "/tmp/", "a\0b"] {
            let result = PipeTransport::default().connect(address, Duration::from_millis(10));
            assert!(matches!(result, Err(TransportError::BadAddress { .. })), "{address:?}");
        }
        let base = dir.path().join("plain");
        std::fs::write(with_suffix(&base, TO_CLIENT), b"not a fifo").unwrap();
        let result = PipeTransport::default().connect(base.to_str().unwrap(), TIMEOUT);
        assert!(matches!(result, Err(TransportError::BadAddress { .. })));
    }
}
