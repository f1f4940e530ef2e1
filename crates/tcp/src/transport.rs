//! Binding, accepting and dialling: everything up to an established [`TcpChannel`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use ipcbench_core::{Endpoint, Listener, Options, Transport, TransportError};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::channel::TcpChannel;
use ipcbench_core::sockets::{accept_within, apply_buffer_sizes, connect_within, io_error, record_buffer_sizes};

/// Connections the kernel queues before `accept`; one peer is expected, a few spare do no harm.
const BACKLOG: i32 = 16;

/// Loopback TCP with Nagle off by default; see the crate docs.
///
/// Both sides should be built with the same options: each applies them to its own socket, and
/// each records what the kernel applied to that socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpTransport {
    /// Disable Nagle's algorithm (`TCP_NODELAY`) on both ends. Default: true.
    pub nodelay: bool,
    /// `SO_SNDBUF` to ask for, set before `listen`/`connect`. `None` keeps the kernel default,
    /// which Linux then autotunes during the connection.
    pub send_buffer_bytes: Option<usize>,
    /// `SO_RCVBUF` to ask for, set before `listen`/`connect`. `None` keeps the kernel default.
    pub recv_buffer_bytes: Option<usize>,
    /// The address the listener binds. Default: `127.0.0.1`. Set it to an address inside a
    /// network namespace to measure across a veth pair; an unspecified address (`0.0.0.0`,
    /// `::`) is rejected because the peer could not dial it.
    pub listen_ip: IpAddr,
    /// Declare the connection dead when its peer stays silent this long with data
    /// unacknowledged (`TCP_USER_TIMEOUT`), or answers none of 3 keepalive probes sent a second
    /// apart after a second of silence: a peer machine that vanished without closing its
    /// sockets then fails the blocked `send`/`recv` within seconds. Default: `None` (loopback
    /// peers close their sockets when they die). The harness sets it for connections that
    /// leave this machine (a remote agent, a namespace link).
    pub dead_peer_after: Option<Duration>,
}

impl Default for TcpTransport {
    fn default() -> Self {
        TcpTransport {
            nodelay: true,
            send_buffer_bytes: None,
            recv_buffer_bytes: None,
            listen_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            dead_peer_after: None,
        }
    }
}

impl TcpTransport {
    /// A non-blocking socket listening on [`TcpTransport::listen_ip`] (port chosen by the
    /// kernel) with `backlog`, and its `IP:PORT`.
    pub(crate) fn listening_socket(&self, backlog: i32) -> Result<(Socket, String), TransportError> {
        if self.listen_ip.is_unspecified() {
            return Err(TransportError::BadOption {
                option: "listen_ip",
                reason: format!("{} is unspecified; name the address the peer dials", self.listen_ip),
            });
        }
        let addr = SocketAddr::new(self.listen_ip, 0);
        let socket = self.socket_for(&addr)?;
        socket.bind(&SockAddr::from(addr)).map_err(io_error("bind"))?;
        socket.listen(backlog).map_err(io_error("listen"))?;
        socket.set_nonblocking(true).map_err(io_error("set non-blocking"))?;
        let local = socket
            .local_addr()
            .map_err(io_error("getsockname"))?
            .as_socket()
            .ok_or_else(|| TransportError::Io {
                op: "getsockname",
                source: io::Error::other("listener has no IP address"),
            })?;
        Ok((socket, local.to_string()))
    }

    /// A new socket for `addr`'s family with the buffer sizes and `TCP_NODELAY` applied.
    pub(crate) fn socket_for(&self, addr: &SocketAddr) -> Result<Socket, TransportError> {
        let socket =
            Socket::new(Domain::for_address(*addr), Type::STREAM, Some(Protocol::TCP)).map_err(io_error("socket"))?;
        self.apply(&socket)?;
        Ok(socket)
    }

    /// Applies the buffer sizes, `TCP_NODELAY` and [`TcpTransport::dead_peer_after`] to
    /// `socket`.
    pub(crate) fn apply(&self, socket: &Socket) -> Result<(), TransportError> {
        apply_buffer_sizes(socket, self.send_buffer_bytes, self.recv_buffer_bytes)?;
        if let Some(after) = self.dead_peer_after {
            let second = Duration::from_secs(1);
            let probes = socket2::TcpKeepalive::new()
                .with_time(second)
                .with_interval(second)
                .with_retries(3);
            socket.set_tcp_keepalive(&probes).map_err(io_error("set keepalive"))?;
            socket
                .set_tcp_user_timeout(Some(after))
                .map_err(io_error("set TCP_USER_TIMEOUT"))?;
        }
        socket
            .set_tcp_nodelay(self.nodelay)
            .map_err(io_error("set TCP_NODELAY"))
    }

    /// Turns a connected socket into a channel that records the options read back from it.
    fn channel(&self, socket: Socket) -> Result<TcpChannel, TransportError> {
        socket.set_nonblocking(false).map_err(io_error("set blocking"))?;
        let options = self.read_back(&socket)?;
        TcpChannel::new(TcpStream::from(socket), options)
    }

    /// The options as the kernel applied them to `socket`, plus what was asked for.
    fn read_back(&self, socket: &Socket) -> Result<Options, TransportError> {
        let mut options = Options::new();
        let nodelay = socket.tcp_nodelay().map_err(io_error("get TCP_NODELAY"))?;
        options.insert("nodelay".into(), nodelay.into());
        record_buffer_sizes(socket, self.send_buffer_bytes, self.recv_buffer_bytes, &mut options)?;
        Ok(options)
    }
}

/// Parses `IP:PORT` (`[IPv6]:PORT` for IPv6), rejecting what cannot be dialled.
pub(crate) fn parse_address(address: &str) -> Result<SocketAddr, TransportError> {
    let bad = |reason: &str| TransportError::BadAddress {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    let addr: SocketAddr = address
        .parse()
        .map_err(|_| bad("expected IP:PORT, such as 127.0.0.1:40000 or [::1]:40000"))?;
    if addr.port() == 0 {
        return Err(bad("port 0 cannot be dialled"));
    }
    if addr.ip().is_unspecified() {
        return Err(bad("an unspecified IP (0.0.0.0 or ::) cannot be dialled"));
    }
    Ok(addr)
}

/// Errors after which dialling again may succeed: nobody listens yet, or the backlog is full.
fn worth_retrying(err: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | TimedOut
            | WouldBlock
            | Interrupted
            | AddrInUse
            | AddrNotAvailable
            | NetworkUnreachable
            | HostUnreachable
    )
}

/// True when the kernel joined the socket to itself (TCP simultaneous open on one port).
fn is_self_connection(socket: &Socket) -> bool {
    match (socket.local_addr(), socket.peer_addr()) {
        (Ok(local), Ok(peer)) => local.as_socket() == peer.as_socket(),
        _ => false,
    }
}

impl Transport for TcpTransport {
    type Listener = TcpListener;
    type Channel = TcpChannel;

    fn name(&self) -> &'static str {
        "tcp"
    }

    /// Listens on [`TcpTransport::listen_ip`], port chosen by the kernel. TCP needs no files,
    /// so the endpoint is not used.
    fn bind(&self, _endpoint: &Endpoint) -> Result<TcpListener, TransportError> {
        let (socket, address) = self.listening_socket(BACKLOG)?;
        Ok(TcpListener {
            socket,
            address,
            transport: self.clone(),
        })
    }

    fn event_loop(&self) -> Option<&dyn ipcbench_core::event_loop::EventLoopTransport> {
        Some(self)
    }

    fn on_ip(&self, ip: IpAddr) -> Option<TcpTransport> {
        Some(TcpTransport {
            listen_ip: ip,
            ..self.clone()
        })
    }

    fn connect(&self, address: &str, timeout: Duration) -> Result<TcpChannel, TransportError> {
        let addr = parse_address(address)?;
        let target = SockAddr::from(addr);
        let socket = connect_within(address, timeout, |remaining| {
            let socket = self.socket_for(&addr)?;
            match socket.connect_timeout(&target, remaining) {
                Ok(()) if !is_self_connection(&socket) => Ok(Some(socket)),
                // Dropping the socket closes the connection to itself; dial again.
                Ok(()) => Ok(None),
                Err(err) if worth_retrying(&err) => Ok(None),
                Err(source) => Err(TransportError::Io { op: "connect", source }),
            }
        })?;
        self.channel(socket)
    }
}

/// A non-blocking listening TCP socket waiting for its one peer.
#[derive(Debug)]
pub struct TcpListener {
    socket: Socket,
    address: String,
    transport: TcpTransport,
}

impl Listener for TcpListener {
    type Channel = TcpChannel;

    /// `IP:PORT`, for example `127.0.0.1:40000`.
    fn address(&self) -> String {
        self.address.clone()
    }

    fn accept(&mut self, timeout: Duration) -> Result<TcpChannel, TransportError> {
        let (socket, _peer) = accept_within(&self.socket, timeout, || self.socket.accept(), || self.address.clone())?;
        // Linux copies the listener's options to the accepted socket; other systems may not,
        // and applying the same values again changes nothing.
        self.transport.apply(&socket)?;
        self.transport.channel(socket)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use ipcbench_core::Channel;
    use ipcbench_core::conformance::connected_pair;

    fn pair(transport: &TcpTransport) -> (TcpChannel, TcpChannel) {
        connected_pair(&Arc::new(transport.clone()), Path::new("."))
    }

    fn bytes(options: &Options, key: &str) -> u64 {
        options[key].as_u64().unwrap_or_else(|| panic!("{key} is not a number"))
    }

    #[test]
    fn small_buffers_read_back_as_applied_with_the_request() {
        let transport = TcpTransport {
            send_buffer_bytes: Some(1024),
            recv_buffer_bytes: Some(4096),
            ..TcpTransport::default()
        };
        let (server, client) = pair(&transport);
        for channel in [&server, &client] {
            let options = channel.applied_options();
            assert_eq!(bytes(&options, "send_buffer_bytes_requested"), 1024);
            assert_eq!(bytes(&options, "recv_buffer_bytes_requested"), 4096);
            // The kernel rounds up (Linux doubles, then applies a floor); never below the request.
            assert!(bytes(&options, "send_buffer_bytes") >= 1024, "{options:?}");
            assert!(bytes(&options, "recv_buffer_bytes") >= 4096, "{options:?}");
            assert_eq!(options["nodelay"], true);
        }
    }

    #[test]
    fn default_buffers_are_recorded_without_a_request() {
        let (server, _client) = pair(&TcpTransport::default());
        let options = server.applied_options();
        assert!(bytes(&options, "send_buffer_bytes") > 0);
        assert!(bytes(&options, "recv_buffer_bytes") > 0);
        assert!(!options.contains_key("send_buffer_bytes_requested"));
        assert!(!options.contains_key("recv_buffer_bytes_requested"));
    }

    #[test]
    fn nagle_on_is_read_back() {
        let transport = TcpTransport {
            nodelay: false,
            ..TcpTransport::default()
        };
        let (server, client) = pair(&transport);
        assert_eq!(server.applied_options()["nodelay"], false);
        assert_eq!(client.applied_options()["nodelay"], false);
    }

    #[test]
    fn listener_address_is_loopback_ip_and_port() {
        let listener = TcpTransport::default().bind(&Endpoint::new("unit", ".")).unwrap();
        let addr: SocketAddr = listener.address().parse().unwrap();
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_ne!(addr.port(), 0);
    }

    #[test]
    fn malformed_addresses_are_bad_address() {
        for address in [
            "",
            "127.0.0.1",
            "localhost:80",
            "127.0.0.1:http",
            "127.0.0.1:65536",
            "127.0.0.1:0",
            "0.0.0.0:40000",
            "[::]:40000",
            "::1:40000",
            " 127.0.0.1:40000",
        ] {
            let result = TcpTransport::default().connect(address, Duration::from_millis(10));
            assert!(
                matches!(result, Err(TransportError::BadAddress { .. })),
                "{address:?} gave {:?}",
                result.map(|_| ())
            );
        }
    }

    #[test]
    fn zero_or_huge_buffers_are_bad_options() {
        for (send, recv) in [(Some(0), None), (None, Some(0)), (Some(usize::MAX), None)] {
            let transport = TcpTransport {
                send_buffer_bytes: send,
                recv_buffer_bytes: recv,
                ..TcpTransport::default()
            };
            let result = transport.bind(&Endpoint::new("unit", "."));
            assert!(
                matches!(result, Err(TransportError::BadOption { .. })),
                "{send:?} {recv:?}"
            );
        }
    }

    #[test]
    fn unspecified_listen_ip_is_a_bad_option() {
        let transport = TcpTransport {
            listen_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ..TcpTransport::default()
        };
        assert!(matches!(
            transport.bind(&Endpoint::new("unit", ".")),
            Err(TransportError::BadOption {
                option: "listen_ip",
                ..
            })
        ));
    }

    #[test]
    fn huge_timeouts_do_not_overflow() {
        let mut listener = TcpTransport::default().bind(&Endpoint::new("unit", ".")).unwrap();
        let address = listener.address();
        let client = std::thread::spawn(move || TcpTransport::default().connect(&address, Duration::MAX).unwrap());
        let mut server = listener.accept(Duration::MAX).unwrap();
        let mut client = client.join().unwrap();
        client.send(b"ok").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(server.recv(&mut buf).unwrap(), 2);
    }
}
