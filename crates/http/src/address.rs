//! Where the roles listen and connect: loopback TCP or a Unix socket, nothing else.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::HttpError;
use crate::wire::Socket;

/// A loopback TCP address or a Unix socket path.
///
/// Written as `127.0.0.1:8080`, `[::1]:8080` or `unix:/path/to/socket` (one [`fmt::Display`]
/// and one [`FromStr`], so configs and records agree). Port 0 asks for a free port at bind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// TCP; must be a loopback address.
    Tcp(SocketAddr),
    /// A Unix domain stream socket at this path.
    Unix(PathBuf),
}

impl Address {
    /// `127.0.0.1:port`.
    pub fn localhost(port: u16) -> Address {
        Address::Tcp(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// The value of a `Host` header or `:authority` for this address.
    pub fn authority(&self) -> String {
        match self {
            Address::Tcp(addr) => addr.to_string(),
            Address::Unix(_) => "localhost".to_owned(),
        }
    }

    /// Refuses anything but loopback TCP and Unix sockets.
    ///
    /// # Errors
    /// [`HttpError::NotLoopback`].
    pub fn check_local(&self) -> Result<(), HttpError> {
        match self {
            Address::Tcp(addr) if !addr.ip().is_loopback() => Err(HttpError::NotLoopback {
                address: self.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(addr) => write!(f, "{addr}"),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl FromStr for Address {
    type Err = HttpError;

    fn from_str(text: &str) -> Result<Address, HttpError> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(HttpError::InvalidConfig("`unix:` needs a socket path".into()));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let addr: SocketAddr = text.parse().map_err(|_| {
            HttpError::InvalidConfig(format!(
                "`{text}` is not an address; expected `127.0.0.1:PORT`, `[::1]:PORT` or `unix:PATH`"
            ))
        })?;
        let address = Address::Tcp(addr);
        address.check_local()?;
        Ok(address)
    }
}

/// A bound listener that has not yet joined a runtime (binding happens before the runtime
/// exists, so the caller learns the port before the role starts).
#[derive(Debug)]
pub(crate) enum BoundListener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener, SocketFile),
}

/// Removes the socket file it names when dropped.
#[derive(Debug)]
pub(crate) struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl BoundListener {
    /// Binds `address` (non-blocking, ready for tokio).
    pub(crate) fn bind(address: &Address) -> Result<BoundListener, HttpError> {
        address.check_local()?;
        let bind_error = |source| HttpError::Bind {
            address: address.to_string(),
            source,
        };
        match address {
            Address::Tcp(addr) => {
                let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
                listener.set_nonblocking(true).map_err(bind_error)?;
                Ok(BoundListener::Tcp(listener))
            }
            Address::Unix(path) => {
                let listener = std::os::unix::net::UnixListener::bind(path).map_err(bind_error)?;
                let file = SocketFile(path.clone());
                listener.set_nonblocking(true).map_err(bind_error)?;
                Ok(BoundListener::Unix(listener, file))
            }
        }
    }

    /// The address actually bound (the port filled in).
    pub(crate) fn address(&self) -> Address {
        match self {
            BoundListener::Tcp(listener) => {
                Address::Tcp(listener.local_addr().expect("a bound TCP listener has a local address"))
            }
            BoundListener::Unix(_, file) => Address::Unix(file.0.clone()),
        }
    }

    /// Moves the listener onto the current tokio runtime.
    pub(crate) fn into_tokio(self) -> Result<Listener, HttpError> {
        match self {
            BoundListener::Tcp(listener) => tokio::net::TcpListener::from_std(listener)
                .map(Listener::Tcp)
                .map_err(HttpError::io("registering the TCP listener")),
            BoundListener::Unix(listener, file) => tokio::net::UnixListener::from_std(listener)
                .map(|l| Listener::Unix(l, file))
                .map_err(HttpError::io("registering the Unix listener")),
        }
    }
}

/// A listener on a tokio runtime.
pub(crate) enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, #[allow(dead_code)] SocketFile),
}

impl Listener {
    /// Accepts one connection; TCP connections get `TCP_NODELAY` (we time small exchanges).
    pub(crate) async fn accept(&self) -> std::io::Result<Socket> {
        match self {
            Listener::Tcp(listener) => {
                let (stream, _) = listener.accept().await?;
                stream.set_nodelay(true)?;
                Ok(Socket::Tcp(stream))
            }
            Listener::Unix(listener, _) => {
                let (stream, _) = listener.accept().await?;
                Ok(Socket::Unix(stream))
            }
        }
    }
}

/// Connects to `address` within `limit`, with `TCP_NODELAY` on TCP.
pub(crate) async fn connect(address: &Address, limit: Duration) -> Result<Socket, HttpError> {
    address.check_local()?;
    let connect_error = |source| HttpError::Connect {
        address: address.to_string(),
        source,
    };
    let attempt = async {
        match address {
            Address::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                Ok(Socket::Tcp(stream))
            }
            Address::Unix(path) => Ok(Socket::Unix(tokio::net::UnixStream::connect(path).await?)),
        }
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result.map_err(connect_error),
        Err(_) => Err(HttpError::Timeout {
            what: "connect",
            address: address.to_string(),
            waited: limit,
        }),
    }
}
