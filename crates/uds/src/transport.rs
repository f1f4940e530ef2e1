//! Binding, accepting and dialling: everything up to an established [`UdsChannel`].

use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use ipcbench_core::{Endpoint, Listener, Options, Transport, TransportError};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::address::UdsAddress;
use crate::channel::UdsChannel;
use crate::seqpacket::SeqpacketChannel;
use ipcbench_core::sockets::{accept_within, apply_buffer_sizes, connect_within, io_error, record_buffer_sizes};

/// Connections the kernel queues before `accept`; one peer is expected, a few spare do no harm.
const BACKLOG: i32 = 16;

/// The socket type a [`UdsTransport`] uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum UdsKind {
    /// `SOCK_STREAM`: a byte stream carrying length-prefixed frames.
    #[default]
    Stream,
    /// `SOCK_SEQPACKET`: the kernel keeps message boundaries; see the crate docs.
    Seqpacket,
}

impl UdsKind {
    /// The config value: `stream` or `seqpacket`.
    pub fn as_str(self) -> &'static str {
        match self {
            UdsKind::Stream => "stream",
            UdsKind::Seqpacket => "seqpacket",
        }
    }

    fn socket_type(self) -> Type {
        match self {
            UdsKind::Stream => Type::STREAM,
            UdsKind::Seqpacket => Type::SEQPACKET,
        }
    }
}

impl fmt::Display for UdsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UdsKind {
    type Err = TransportError;

    /// Parses the config value `stream` or `seqpacket`.
    fn from_str(text: &str) -> Result<Self, TransportError> {
        match text {
            "stream" => Ok(UdsKind::Stream),
            "seqpacket" => Ok(UdsKind::Seqpacket),
            other => Err(TransportError::BadOption {
                option: "kind",
                reason: format!("expected `stream` or `seqpacket`, got `{other}`"),
            }),
        }
    }
}

/// Unix domain sockets; see the crate docs.
///
/// Both sides should be built with the same options: each applies the buffer sizes to its own
/// socket and records what the kernel applied there. The client takes the address kind (path
/// or abstract) from the address it dials, not from `abstract_address`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UdsTransport {
    /// Stream or seqpacket. Default: stream.
    pub kind: UdsKind,
    /// `SO_SNDBUF` to ask for; `None` keeps the kernel default. For seqpacket it also bounds
    /// the packet size.
    pub send_buffer_bytes: Option<usize>,
    /// `SO_RCVBUF` to ask for; `None` keeps the kernel default.
    pub recv_buffer_bytes: Option<usize>,
    /// Listen on a Linux abstract address (`@name`, no file) instead of a socket file in
    /// [`Endpoint::dir`]. Default: false.
    ///
    /// # Platform-specific behavior
    /// Only Linux and Android have abstract addresses; elsewhere `bind` fails with `BadOption`.
    pub abstract_address: bool,
}

impl UdsTransport {
    /// A new socket of this transport's kind with the buffer sizes applied.
    pub(crate) fn socket(&self) -> Result<Socket, TransportError> {
        let socket = Socket::new(Domain::UNIX, self.kind.socket_type(), None).map_err(io_error("socket"))?;
        self.apply(&socket)?;
        Ok(socket)
    }

    /// Applies the buffer sizes to `socket`.
    pub(crate) fn apply(&self, socket: &Socket) -> Result<(), TransportError> {
        apply_buffer_sizes(socket, self.send_buffer_bytes, self.recv_buffer_bytes)
    }

    /// Turns a connected socket into a channel that records the options read back from it.
    fn channel(&self, socket: Socket, abstract_address: bool) -> Result<UdsChannel, TransportError> {
        socket.set_nonblocking(false).map_err(io_error("set blocking"))?;
        let mut options = Options::new();
        let (send, _recv) = record_buffer_sizes(&socket, self.send_buffer_bytes, self.recv_buffer_bytes, &mut options)?;
        options.insert("kind".into(), self.kind.as_str().into());
        options.insert("abstract_address".into(), abstract_address.into());
        match self.kind {
            UdsKind::Stream => UdsChannel::stream(UnixStream::from(socket), options),
            UdsKind::Seqpacket => Ok(UdsChannel::seqpacket(SeqpacketChannel::new(socket, send), options)),
        }
    }

    /// A non-blocking socket listening on the address for `endpoint` with `backlog`, its
    /// address, and the socket file it made (removed again when dropped).
    pub(crate) fn listening_socket(
        &self,
        endpoint: &Endpoint,
        backlog: i32,
    ) -> Result<(Socket, UdsAddress, Option<SocketFile>), TransportError> {
        let address = self.listen_address(endpoint)?;
        let sockaddr = address.to_sockaddr().map_err(|e| TransportError::BadAddress {
            address: address.to_string(),
            reason: e.to_string(),
        })?;
        let socket = self.socket()?;
        socket.bind(&sockaddr).map_err(io_error("bind"))?;
        // From here on the file exists; `SocketFile` removes it again if a later step fails.
        let file = match &address {
            UdsAddress::Path(path) => Some(SocketFile::created(path.clone())?),
            UdsAddress::Abstract(_) => None,
        };
        socket.listen(backlog).map_err(io_error("listen"))?;
        socket.set_nonblocking(true).map_err(io_error("set non-blocking"))?;
        Ok((socket, address, file))
    }

    /// The address to listen on for `endpoint`.
    fn listen_address(&self, endpoint: &Endpoint) -> Result<UdsAddress, TransportError> {
        if self.abstract_address {
            return abstract_address(endpoint);
        }
        let path = endpoint.path(".sock");
        let text = path.to_str().ok_or_else(|| TransportError::BadAddress {
            address: path.display().to_string(),
            reason: "the socket path is not valid UTF-8".into(),
        })?;
        UdsAddress::parse(text)
    }
}

/// A name in the abstract namespace, unique on this machine: it carries the process id and a
/// counter, since the namespace is shared by every process in the network namespace.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(endpoint: &Endpoint) -> Result<UdsAddress, TransportError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    // Relaxed: the counter only has to hand out distinct numbers; it orders nothing.
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut name = format!("ipcbench-{}-{id}-{}", std::process::id(), endpoint.name());
    let mut cut = name.len().min(crate::address::MAX_NAME_BYTES);
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    name.truncate(cut);
    Ok(UdsAddress::Abstract(name.into_bytes()))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_endpoint: &Endpoint) -> Result<UdsAddress, TransportError> {
    Err(TransportError::BadOption {
        option: "abstract_address",
        reason: "abstract socket addresses exist only on Linux and Android".into(),
    })
}

/// Errors after which dialling again may succeed: no socket file yet, nobody listening yet,
/// or a full backlog.
fn worth_retrying(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        err.kind(),
        NotFound | ConnectionRefused | ConnectionReset | ConnectionAborted | TimedOut | WouldBlock | Interrupted
    )
}

impl Transport for UdsTransport {
    type Listener = UdsListener;
    type Channel = UdsChannel;

    fn name(&self) -> &'static str {
        "uds"
    }

    fn bind(&self, endpoint: &Endpoint) -> Result<UdsListener, TransportError> {
        let (socket, address, file) = self.listening_socket(endpoint, BACKLOG)?;
        Ok(UdsListener {
            socket,
            address,
            file,
            transport: self.clone(),
        })
    }

    fn event_loop(&self) -> Option<&dyn ipcbench_core::event_loop::EventLoopTransport> {
        // The event loop treats a connection as a byte stream; seqpacket keeps boundaries
        // that a partial read would cut, so only stream sockets have the capability.
        (self.kind == UdsKind::Stream).then_some(self as &dyn ipcbench_core::event_loop::EventLoopTransport)
    }

    fn connect(&self, address: &str, timeout: Duration) -> Result<UdsChannel, TransportError> {
        let parsed = UdsAddress::parse(address)?;
        let target: SockAddr = parsed.to_sockaddr().map_err(|e| TransportError::BadAddress {
            address: address.to_owned(),
            reason: e.to_string(),
        })?;
        let socket = connect_within(address, timeout, |remaining| {
            let socket = self.socket()?;
            match socket.connect_timeout(&target, remaining) {
                Ok(()) => Ok(Some(socket)),
                Err(err) if worth_retrying(&err) => Ok(None),
                Err(source) => Err(TransportError::Io { op: "connect", source }),
            }
        })?;
        self.channel(socket, matches!(parsed, UdsAddress::Abstract(_)))
    }
}

/// A socket file this process created, removed again on drop.
///
/// It remembers the file's device and inode, so it never removes a file that someone else
/// put at the same path after ours was gone.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// Takes charge of the socket file `bind` just made at `path`.
    fn created(path: PathBuf) -> Result<Self, TransportError> {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) => Ok(SocketFile {
                path,
                dev: meta.dev(),
                ino: meta.ino(),
            }),
            Err(source) => {
                let _ = std::fs::remove_file(&path);
                Err(TransportError::Io {
                    op: "stat socket file",
                    source,
                })
            }
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path)
            && meta.dev() == self.dev
            && meta.ino() == self.ino
        {
            // Nothing useful can be done about a failure here; the run's directory
            // cleanup is the last line of defence.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A non-blocking listening Unix socket waiting for its one peer.
///
/// Dropping it closes the socket and unlinks its socket file (contract item 5); an abstract
/// address has no file and vanishes with the socket.
#[derive(Debug)]
pub struct UdsListener {
    socket: Socket,
    address: UdsAddress,
    file: Option<SocketFile>,
    transport: UdsTransport,
}

impl Listener for UdsListener {
    type Channel = UdsChannel;

    /// The socket path, or `@name` for an abstract address.
    fn address(&self) -> String {
        self.address.to_string()
    }

    fn accept(&mut self, timeout: Duration) -> Result<UdsChannel, TransportError> {
        let (socket, _peer) = accept_within(
            &self.socket,
            timeout,
            || self.socket.accept(),
            || self.address.to_string(),
        )?;
        // An accepted Unix socket starts with default buffer sizes on Linux.
        self.transport.apply(&socket)?;
        self.transport.channel(socket, self.file.is_none())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use ipcbench_core::Channel;
    use ipcbench_core::conformance::connected_pair;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn pair(transport: &UdsTransport, dir: &std::path::Path) -> (UdsChannel, UdsChannel) {
        connected_pair(&Arc::new(transport.clone()), dir)
    }

    fn bytes(options: &Options, key: &str) -> u64 {
        options[key].as_u64().unwrap_or_else(|| panic!("{key} is not a number"))
    }

    #[test]
    fn buffers_read_back_on_both_sides_with_the_request() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [UdsKind::Stream, UdsKind::Seqpacket] {
            let transport = UdsTransport {
                kind,
                send_buffer_bytes: Some(1024),
                recv_buffer_bytes: Some(8192),
                ..UdsTransport::default()
            };
            let (server, client) = pair(&transport, dir.path());
            for channel in [&server, &client] {
                let options = channel.applied_options();
                assert_eq!(options["kind"], kind.as_str());
                assert_eq!(options["abstract_address"], false);
                assert_eq!(bytes(&options, "send_buffer_bytes_requested"), 1024);
                assert_eq!(bytes(&options, "recv_buffer_bytes_requested"), 8192);
                // The kernel rounds up (Linux doubles, then applies a floor).
                assert!(bytes(&options, "send_buffer_bytes") >= 1024, "{options:?}");
                assert!(bytes(&options, "recv_buffer_bytes") >= 8192, "{options:?}");
            }
        }
    }

    #[test]
    fn seqpacket_with_tiny_buffers_still_carries_large_messages() {
        let dir = tempfile::tempdir().unwrap();
        let transport = UdsTransport {
            kind: UdsKind::Seqpacket,
            send_buffer_bytes: Some(1),
            ..UdsTransport::default()
        };
        let (mut server, mut client) = pair(&transport, dir.path());
        let msg: Vec<u8> = (0..300_000).map(|i| (i % 253) as u8).collect();
        let expected = msg.clone();
        let sender = std::thread::spawn(move || {
            client.send(&msg).unwrap();
            client
        });
        let mut buf = vec![0u8; 300_000];
        assert_eq!(server.recv(&mut buf).unwrap(), 300_000);
        assert_eq!(buf, expected);
        sender.join().unwrap();
    }

    #[test]
    fn abstract_address_is_at_name_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let transport = UdsTransport {
            abstract_address: true,
            ..UdsTransport::default()
        };
        let listener = transport.bind(&Endpoint::new("unit", dir.path())).unwrap();
        assert!(listener.address().starts_with("@ipcbench-"), "{}", listener.address());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        drop(listener);
        let (server, _client) = pair(&transport, dir.path());
        assert_eq!(server.applied_options()["abstract_address"], true);
    }

    #[test]
    fn listener_removes_only_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let listener = UdsTransport::default()
            .bind(&Endpoint::new("unit", dir.path()))
            .unwrap();
        let path = PathBuf::from(listener.address());
        assert!(path.exists());
        // Someone replaced our socket file: the listener must leave theirs alone.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not ours").unwrap();
        drop(listener);
        assert!(path.exists());
    }

    #[test]
    fn kind_mismatch_fails_fast() {
        let dir = tempfile::tempdir().unwrap();
        let listener = UdsTransport::default()
            .bind(&Endpoint::new("unit", dir.path()))
            .unwrap();
        let seqpacket = UdsTransport {
            kind: UdsKind::Seqpacket,
            ..UdsTransport::default()
        };
        let result = seqpacket.connect(&listener.address(), TIMEOUT);
        assert!(matches!(result, Err(TransportError::Io { op: "connect", .. })));
    }

    #[test]
    fn too_long_path_is_bad_address() {
        let dir = tempfile::tempdir().unwrap();
        let name = "n".repeat(120);
        let result = UdsTransport::default().bind(&Endpoint::new(name, dir.path()));
        assert!(matches!(result, Err(TransportError::BadAddress { .. })));
    }

    #[test]
    fn kinds_parse_from_config_values() {
        assert_eq!("stream".parse::<UdsKind>().unwrap(), UdsKind::Stream);
        assert_eq!("seqpacket".parse::<UdsKind>().unwrap(), UdsKind::Seqpacket);
        assert!(matches!(
            "dgram".parse::<UdsKind>(),
            Err(TransportError::BadOption { option: "kind", .. })
        ));
    }

    #[test]
    fn zero_buffer_is_a_bad_option() {
        let dir = tempfile::tempdir().unwrap();
        let transport = UdsTransport {
            send_buffer_bytes: Some(0),
            ..UdsTransport::default()
        };
        let result = transport.bind(&Endpoint::new("unit", dir.path()));
        assert!(matches!(result, Err(TransportError::BadOption { .. })));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
