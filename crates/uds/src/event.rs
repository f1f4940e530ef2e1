//! The event-loop capability: many non-blocking Unix stream connections on one mio `Poll`.

use std::os::unix::net::UnixStream;

use ipcbench_core::event_loop::{EventListener, EventLoopTransport, EventStream};
use ipcbench_core::sockets::{accept_ready, io_error};
use ipcbench_core::{Endpoint, TransportError};
use socket2::{SockAddr, SockRef};

use crate::address::UdsAddress;
use crate::transport::{SocketFile, UdsKind, UdsTransport};

impl EventLoopTransport for UdsTransport {
    /// Listens on a socket file in [`Endpoint::dir`] (or an abstract address); dropping the
    /// listener unlinks the file.
    fn listen_many(&self, endpoint: &Endpoint, backlog: u32) -> Result<Box<dyn EventListener>, TransportError> {
        self.check_stream()?;
        let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
        let (socket, address, file) = self.listening_socket(endpoint, backlog)?;
        let listener = mio::net::UnixListener::from_std(std::os::unix::net::UnixListener::from(socket));
        Ok(Box::new(UdsManyListener {
            listener,
            address,
            transport: self.clone(),
            _file: file,
        }))
    }

    fn connect_nonblocking(&self, address: &str) -> Result<EventStream, TransportError> {
        self.check_stream()?;
        let parsed = UdsAddress::parse(address)?;
        let target: SockAddr = parsed.to_sockaddr().map_err(|e| TransportError::BadAddress {
            address: address.to_owned(),
            reason: e.to_string(),
        })?;
        let socket = self.socket()?;
        socket.set_nonblocking(true).map_err(io_error("set non-blocking"))?;
        // A Unix connect completes at once, or fails with EAGAIN when the backlog is full
        // (`ipcbench_core::event_loop::is_backlog_full`).
        socket.connect(&target).map_err(io_error("connect"))?;
        Ok(EventStream::Unix(mio::net::UnixStream::from_std(UnixStream::from(
            socket,
        ))))
    }
}

impl UdsTransport {
    /// Refuses seqpacket sockets, which the event loop cannot treat as a byte stream.
    fn check_stream(&self) -> Result<(), TransportError> {
        if self.kind == UdsKind::Stream {
            Ok(())
        } else {
            Err(TransportError::BadOption {
                option: "kind",
                reason: "the event-loop capability needs stream sockets, not seqpacket".into(),
            })
        }
    }
}

/// A non-blocking listening Unix socket for many connections; dropping it unlinks its file.
#[derive(Debug)]
struct UdsManyListener {
    listener: mio::net::UnixListener,
    address: UdsAddress,
    transport: UdsTransport,
    _file: Option<SocketFile>,
}

impl EventListener for UdsManyListener {
    fn address(&self) -> String {
        self.address.to_string()
    }

    fn accept(&mut self) -> Result<Option<EventStream>, TransportError> {
        let Some((stream, _peer)) = accept_ready(|| self.listener.accept())? else {
            return Ok(None);
        };
        // An accepted Unix socket starts with default buffer sizes on Linux.
        self.transport.apply(&SockRef::from(&stream))?;
        Ok(Some(EventStream::Unix(stream)))
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
    use ipcbench_core::event_loop::is_backlog_full;

    use super::*;

    fn accept_one(listener: &mut Box<dyn EventListener>) -> EventStream {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(stream) = listener.accept().unwrap() {
                return stream;
            }
            assert!(Instant::now() < deadline, "nothing to accept");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn read_byte(stream: &mut EventStream) -> u8 {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut byte = [0u8; 1];
        loop {
            match stream.read(&mut byte) {
                Ok(1) => return byte[0],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "nothing to read");
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn many_connections_carry_bytes_and_the_file_goes_with_the_listener() {
        let dir = tempfile::tempdir().unwrap();
        let transport = UdsTransport::default();
        let capability = transport
            .event_loop()
            .expect("uds stream has the event-loop capability");
        let mut listener = capability.listen_many(&Endpoint::new("many", dir.path()), 64).unwrap();
        let path = std::path::PathBuf::from(listener.address());
        assert!(path.exists());
        let mut pairs = Vec::new();
        for idx in 0..20u8 {
            let mut client = capability.connect_nonblocking(&listener.address()).unwrap();
            assert!(client.is_connected());
            let mut server = accept_one(&mut listener);
            client.write_all(&[idx]).unwrap();
            assert_eq!(read_byte(&mut server), idx);
            server.write_all(&[idx]).unwrap();
            assert_eq!(read_byte(&mut client), idx);
            pairs.push((client, server));
        }
        drop(listener);
        assert!(!path.exists(), "dropping the listener removes its socket file");
    }

    #[test]
    fn full_backlog_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let transport = UdsTransport::default();
        let listener = transport.listen_many(&Endpoint::new("full", dir.path()), 1).unwrap();
        let mut held = Vec::new();
        let mut saw_full = false;
        // Nobody accepts: after a backlog's worth of connections, connecting must say so.
        for _ in 0..64 {
            match transport.connect_nonblocking(&listener.address()) {
                Ok(stream) => held.push(stream),
                Err(e) if is_backlog_full(&e) => {
                    saw_full = true;
                    break;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(saw_full, "{} connections queued without a full backlog", held.len());
    }

    #[test]
    fn seqpacket_has_no_event_loop() {
        let transport = UdsTransport {
            kind: UdsKind::Seqpacket,
            ..UdsTransport::default()
        };
        assert!(transport.event_loop().is_none());
        assert!(matches!(
            transport.connect_nonblocking("/nonexistent.sock"),
            Err(TransportError::BadOption { option: "kind", .. })
        ));
    }
}
