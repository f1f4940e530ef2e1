//! The event-loop capability: many non-blocking TCP connections on one mio `Poll`.

use std::net::{IpAddr, SocketAddr, TcpStream};

use ipcbench_core::event_loop::{EventListener, EventLoopTransport, EventStream};
use ipcbench_core::sockets::{accept_ready, io_error};
use ipcbench_core::{Endpoint, TransportError};
use socket2::{SockAddr, SockRef};

use crate::transport::{TcpTransport, parse_address};

impl EventLoopTransport for TcpTransport {
    /// Listens on [`TcpTransport::listen_ip`], port chosen by the kernel; the endpoint is not
    /// used (TCP needs no files).
    fn listen_many(&self, _endpoint: &Endpoint, backlog: u32) -> Result<Box<dyn EventListener>, TransportError> {
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        let (socket, address) = self.listening_socket(backlog)?;
        let listener = mio::net::TcpListener::from_std(std::net::TcpListener::from(socket));
        Ok(Box::new(TcpManyListener {
            listener,
            address,
            transport: self.clone(),
        }))
    }

    fn connect_nonblocking(&self, address: &str) -> Result<EventStream, TransportError> {
        self.connect_nonblocking_from(address, None)
    }

    /// Listens on `ip` (default [`TcpTransport::listen_ip`]), port chosen by the kernel.
    fn listen_many_on(
        &self,
        endpoint: &Endpoint,
        backlog: u32,
        ip: Option<IpAddr>,
    ) -> Result<Box<dyn EventListener>, TransportError> {
        match ip {
            None => self.listen_many(endpoint, backlog),
            Some(listen_ip) => TcpTransport {
                listen_ip,
                ..self.clone()
            }
            .listen_many(endpoint, backlog),
        }
    }

    fn connect_nonblocking_from(&self, address: &str, source: Option<IpAddr>) -> Result<EventStream, TransportError> {
        let addr = parse_address(address)?;
        let socket = self.socket_for(&addr)?;
        socket.set_nonblocking(true).map_err(io_error("set non-blocking"))?;
        if let Some(ip) = source {
            if ip.is_ipv4() != addr.is_ipv4() {
                return Err(TransportError::BadOption {
                    option: "source address",
                    reason: format!("{ip} and the destination {addr} are of different IP families"),
                });
            }
            bind_address_no_port(&socket)?;
            socket
                .bind(&SockAddr::from(SocketAddr::new(ip, 0)))
                .map_err(io_error("bind the source address"))?;
        }
        match socket.connect(&SockAddr::from(addr)) {
            Ok(()) => {}
            // The handshake goes on in the background; the first writable event reports it.
            Err(err) if err.raw_os_error() == Some(rustix::io::Errno::INPROGRESS.raw_os_error()) => {}
            Err(source) => return Err(TransportError::Io { op: "connect", source }),
        }
        Ok(EventStream::Tcp(mio::net::TcpStream::from_std(TcpStream::from(socket))))
    }
}

/// Sets `IP_BIND_ADDRESS_NO_PORT`: a `bind` to port 0 then reserves no port; the port is chosen
/// at `connect`, unique per 4-tuple, so many source addresses share the ephemeral range.
fn bind_address_no_port(socket: &socket2::Socket) -> Result<(), TransportError> {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::IpBindAddressNoPort, &true).map_err(|e| {
        TransportError::Io {
            op: "set IP_BIND_ADDRESS_NO_PORT",
            source: std::io::Error::from(e),
        }
    })
}

/// A non-blocking listening TCP socket for many connections.
#[derive(Debug)]
struct TcpManyListener {
    listener: mio::net::TcpListener,
    address: String,
    transport: TcpTransport,
}

impl EventListener for TcpManyListener {
    fn address(&self) -> String {
        self.address.clone()
    }

    fn accept(&mut self) -> Result<Option<EventStream>, TransportError> {
        let Some((stream, _peer)) = accept_ready(|| self.listener.accept())? else {
            return Ok(None);
        };
        // Linux copies the listener's options to the accepted socket; other systems may not,
        // and applying the same values again changes nothing.
        self.transport.apply(&SockRef::from(&stream))?;
        Ok(Some(EventStream::Tcp(stream)))
    }

    fn source(&mut self) -> &mut dyn mio::event::Source {
        &mut self.listener
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read, Write};
    use std::time::{Duration, Instant};

    use ipcbench_core::Transport;
    use mio::{Events, Interest, Poll, Token};

    use super::*;

    /// Polls until `done` says so, failing the test after a few seconds.
    fn poll_until(poll: &mut Poll, mut done: impl FnMut(&mio::event::Event) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut events = Events::with_capacity(64);
        loop {
            assert!(Instant::now() < deadline, "no event in time");
            poll.poll(&mut events, Some(Duration::from_millis(100))).unwrap();
            if events.iter().any(&mut done) {
                return;
            }
        }
    }

    #[test]
    fn many_connections_carry_bytes_both_ways() {
        let transport = TcpTransport::default();
        let capability = transport.event_loop().expect("tcp has the event-loop capability");
        let mut listener = capability.listen_many(&Endpoint::new("unit", "."), 64).unwrap();
        let mut poll = Poll::new().unwrap();
        let mut clients: Vec<EventStream> = (0..20)
            .map(|_| capability.connect_nonblocking(&listener.address()).unwrap())
            .collect();
        for (idx, client) in clients.iter_mut().enumerate() {
            poll.registry()
                .register(client, Token(idx), Interest::READABLE | Interest::WRITABLE)
                .unwrap();
        }
        poll.registry()
            .register(listener.source(), Token(1000), Interest::READABLE)
            .unwrap();
        let mut servers = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while servers.len() < clients.len() {
            assert!(Instant::now() < deadline, "accepted only {}", servers.len());
            match listener.accept().unwrap() {
                Some(stream) => servers.push(stream),
                None => poll_until(&mut poll, |e| e.token() == Token(1000)),
            }
        }
        for client in &clients {
            assert!(client.take_error().unwrap().is_none());
        }
        // Every accepted socket echoes one byte back to its client.
        for (idx, client) in clients.iter_mut().enumerate() {
            while !client.is_connected() {
                poll_until(&mut poll, |e| e.token() == Token(idx));
            }
            client.write_all(&[idx as u8]).unwrap();
        }
        for server in &mut servers {
            let mut byte = [0u8; 1];
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match server.read(&mut byte) {
                    Ok(1) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline);
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    other => panic!("{other:?}"),
                }
            }
            server.write_all(&byte).unwrap();
        }
        for (idx, client) in clients.iter_mut().enumerate() {
            let mut byte = [0u8; 1];
            loop {
                match client.read(&mut byte) {
                    Ok(1) => break,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        poll_until(&mut poll, |e| e.token() == Token(idx) && e.is_readable())
                    }
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(byte[0], idx as u8);
        }
    }

    #[test]
    fn accepted_sockets_get_the_transport_options() {
        let transport = TcpTransport {
            nodelay: false,
            ..TcpTransport::default()
        };
        let mut listener = transport.listen_many(&Endpoint::new("unit", "."), 4).unwrap();
        let _client = transport.connect_nonblocking(&listener.address()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let accepted = loop {
            if let Some(stream) = listener.accept().unwrap() {
                break stream;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        };
        let EventStream::Tcp(stream) = accepted else {
            panic!("a tcp listener hands out tcp streams")
        };
        assert!(!stream.nodelay().unwrap());
    }

    #[test]
    fn refused_connection_reports_its_error() {
        // Bind a port, then close it: nobody listens there any more.
        let address = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        };
        let transport = TcpTransport::default();
        let mut poll = Poll::new().unwrap();
        match transport.connect_nonblocking(&address) {
            Err(TransportError::Io { op: "connect", .. }) => {}
            Ok(mut stream) => {
                poll.registry()
                    .register(&mut stream, Token(0), Interest::WRITABLE)
                    .unwrap();
                poll_until(&mut poll, |_| true);
                assert!(stream.take_error().unwrap().is_some() || !stream.is_connected());
            }
            Err(other) => panic!("{other:?}"),
        }
    }
}
