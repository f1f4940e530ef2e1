//! The setup the socket transports (`tcp`, `uds`) share: buffer sizes checked, applied and read
//! back, the accept loops (blocking with a deadline, and the event loop's non-blocking one) and
//! the connect retry loop.
//!
//! What differs by transport (socket types, addresses, which connect errors are worth another
//! try, the options only one transport has) stays with the transport and comes in as a closure.
#![cfg(unix)]

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use rustix::net::sockopt;

use crate::wait::{Deadline, wait_readable};
use crate::{Options, TransportError};

/// How long [`connect_within`] pauses between attempts while nobody listens yet.
const RETRY_PAUSE: Duration = Duration::from_millis(5);
/// The largest buffer size accepted: the kernel takes an `int` and doubles it.
const MAX_BUFFER_BYTES: usize = i32::MAX as usize / 2;

/// A `map_err` adapter: an `io::Error` from `op` becomes [`TransportError::Io`].
pub fn io_error(op: &'static str) -> impl Fn(io::Error) -> TransportError {
    move |source| TransportError::Io { op, source }
}

/// [`io_error`] for the rustix calls, which fail with an `Errno`.
fn errno_error(op: &'static str) -> impl Fn(rustix::io::Errno) -> TransportError {
    move |errno| TransportError::Io {
        op,
        source: errno.into(),
    }
}

/// Sets `SO_SNDBUF` and `SO_RCVBUF` on `socket` to the sizes asked for; `None` keeps the
/// kernel default.
///
/// # Errors
/// `BadOption` (naming `send_buffer_bytes` or `recv_buffer_bytes`) for a size the kernel cannot
/// take: zero, or too large to double into an `int`. `Io` when the kernel refuses it.
pub fn apply_buffer_sizes(
    socket: impl AsFd,
    send_buffer_bytes: Option<usize>,
    recv_buffer_bytes: Option<usize>,
) -> Result<(), TransportError> {
    if let Some(bytes) = checked_buffer("send_buffer_bytes", send_buffer_bytes)? {
        sockopt::set_socket_send_buffer_size(&socket, bytes).map_err(errno_error("set SO_SNDBUF"))?;
    }
    if let Some(bytes) = checked_buffer("recv_buffer_bytes", recv_buffer_bytes)? {
        sockopt::set_socket_recv_buffer_size(&socket, bytes).map_err(errno_error("set SO_RCVBUF"))?;
    }
    Ok(())
}

/// Reads `SO_SNDBUF` and `SO_RCVBUF` back from `socket` into `options`
/// (`send_buffer_bytes`, `recv_buffer_bytes`), next to the sizes that were asked for
/// (`*_requested`, only when one was), and returns them as `(send, recv)`.
///
/// # Errors
/// `Io` when a size cannot be read.
pub fn record_buffer_sizes(
    socket: impl AsFd,
    send_requested: Option<usize>,
    recv_requested: Option<usize>,
    options: &mut Options,
) -> Result<(usize, usize), TransportError> {
    let send = sockopt::socket_send_buffer_size(&socket).map_err(errno_error("get SO_SNDBUF"))?;
    let recv = sockopt::socket_recv_buffer_size(&socket).map_err(errno_error("get SO_RCVBUF"))?;
    options.insert("send_buffer_bytes".into(), send.into());
    options.insert("recv_buffer_bytes".into(), recv.into());
    if let Some(requested) = send_requested {
        options.insert("send_buffer_bytes_requested".into(), requested.into());
    }
    if let Some(requested) = recv_requested {
        options.insert("recv_buffer_bytes_requested".into(), requested.into());
    }
    Ok((send, recv))
}

/// Rejects buffer sizes the kernel cannot take (zero, or too large to double into an `int`).
fn checked_buffer(option: &'static str, bytes: Option<usize>) -> Result<Option<usize>, TransportError> {
    match bytes {
        Some(0) => Err(TransportError::BadOption {
            option,
            reason: "must be at least 1 byte".into(),
        }),
        Some(n) if n > MAX_BUFFER_BYTES => Err(TransportError::BadOption {
            option,
            reason: format!("{n} bytes is above the {MAX_BUFFER_BYTES}-byte limit"),
        }),
        other => Ok(other),
    }
}

/// What one `accept` on a non-blocking listener came to.
enum Attempt<S> {
    /// A connection.
    Ready(S),
    /// Nothing waiting: wait until the listener is readable.
    Empty,
    /// A peer that gave up before we got to it, or a signal: there may be another one.
    Skipped,
}

fn attempt<S>(result: io::Result<S>) -> Result<Attempt<S>, TransportError> {
    match result {
        Ok(stream) => Ok(Attempt::Ready(stream)),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(Attempt::Empty),
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
            ) =>
        {
            Ok(Attempt::Skipped)
        }
        Err(source) => Err(TransportError::Io { op: "accept", source }),
    }
}

/// Accepts one connection on the non-blocking `listener` with `accept`, waiting up to
/// `timeout` with `poll` between attempts.
///
/// # Errors
/// `ConnectTimeout` naming `endpoint()` once `timeout` has passed; `Io` (`accept` or `poll`)
/// for any other failure.
pub fn accept_within<S>(
    listener: impl AsFd,
    timeout: Duration,
    mut accept: impl FnMut() -> io::Result<S>,
    endpoint: impl Fn() -> String,
) -> Result<S, TransportError> {
    let deadline = Deadline::after(timeout);
    loop {
        if let Attempt::Ready(stream) = attempt(accept())? {
            return Ok(stream);
        }
        let remaining = deadline.remaining().ok_or_else(|| TransportError::ConnectTimeout {
            endpoint: endpoint(),
            waited: timeout,
        })?;
        wait_readable(&listener, remaining).map_err(io_error("poll"))?;
    }
}

/// Accepts one waiting connection with `accept` on a non-blocking listener, without waiting:
/// `Ok(None)` when none is waiting. It skips peers that gave up and signals, so that an
/// edge-triggered event loop is not left with connections it will hear no more events about.
///
/// # Errors
/// `Io` (`accept`) for a failure that accepting again will not cure.
pub fn accept_ready<S>(mut accept: impl FnMut() -> io::Result<S>) -> Result<Option<S>, TransportError> {
    loop {
        match attempt(accept())? {
            Attempt::Ready(stream) => return Ok(Some(stream)),
            Attempt::Empty => return Ok(None),
            Attempt::Skipped => {}
        }
    }
}

/// Dials `address` with `dial` until it connects or `timeout` has passed, pausing a few
/// milliseconds between attempts.
///
/// `dial` gets the time left and returns the connected socket, `Ok(None)` for a failure after
/// which dialling again may succeed (nobody listens yet), or an error that ends the loop.
///
/// # Errors
/// `ConnectTimeout` naming `address` once `timeout` has passed; whatever `dial` returns.
pub fn connect_within<S>(
    address: &str,
    timeout: Duration,
    mut dial: impl FnMut(Duration) -> Result<Option<S>, TransportError>,
) -> Result<S, TransportError> {
    let deadline = Deadline::after(timeout);
    let timed_out = || TransportError::ConnectTimeout {
        endpoint: address.to_owned(),
        waited: timeout,
    };
    loop {
        let remaining = deadline.remaining().ok_or_else(timed_out)?;
        if let Some(socket) = dial(remaining)? {
            return Ok(socket);
        }
        let remaining = deadline.remaining().ok_or_else(timed_out)?;
        std::thread::sleep(remaining.min(RETRY_PAUSE));
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn accept_ready_skips_aborted_peers_and_signals() {
        let mut results = vec![
            Ok(7),
            Err(io::Error::from(io::ErrorKind::Interrupted)),
            Err(io::Error::from(io::ErrorKind::ConnectionAborted)),
        ];
        assert_eq!(accept_ready(|| results.pop().unwrap()).unwrap(), Some(7));
        let mut results = vec![Err::<u8, _>(io::Error::from(io::ErrorKind::WouldBlock))];
        assert_eq!(accept_ready(|| results.pop().unwrap()).unwrap(), None);
    }

    #[test]
    fn accept_failures_other_than_waiting_are_io_accept() {
        let result = accept_ready(|| Err::<u8, _>(io::Error::from(io::ErrorKind::PermissionDenied)));
        assert!(matches!(result, Err(TransportError::Io { op: "accept", .. })));
    }

    #[test]
    fn accept_within_times_out_naming_the_endpoint() {
        let (listener, _other) = UnixStream::pair().unwrap();
        let result = accept_within(
            &listener,
            Duration::from_millis(20),
            || Err::<u8, _>(io::Error::from(io::ErrorKind::WouldBlock)),
            || "here".to_owned(),
        );
        assert!(matches!(result, Err(TransportError::ConnectTimeout { endpoint, .. }) if endpoint == "here"));
    }

    #[test]
    fn connect_within_retries_then_times_out_naming_the_address() {
        let mut n_attempts = 0;
        let result = connect_within::<u8>("there", Duration::from_millis(30), |_| {
            n_attempts += 1;
            Ok(None)
        });
        assert!(matches!(result, Err(TransportError::ConnectTimeout { endpoint, .. }) if endpoint == "there"));
        assert!(n_attempts > 1, "{n_attempts} attempts");
    }

    #[test]
    fn zero_or_huge_buffer_sizes_are_bad_options() {
        let (socket, _other) = UnixStream::pair().unwrap();
        for (send, recv, option) in [
            (Some(0), None, "send_buffer_bytes"),
            (None, Some(0), "recv_buffer_bytes"),
            (Some(usize::MAX), None, "send_buffer_bytes"),
        ] {
            let result = apply_buffer_sizes(&socket, send, recv);
            assert!(
                matches!(result, Err(TransportError::BadOption { option: named, .. }) if named == option),
                "{send:?} {recv:?}"
            );
        }
    }

    #[test]
    fn buffer_sizes_read_back_next_to_the_request() {
        let (socket, _other) = UnixStream::pair().unwrap();
        apply_buffer_sizes(&socket, Some(8192), None).unwrap();
        let mut options = Options::new();
        let (send, recv) = record_buffer_sizes(&socket, Some(8192), None, &mut options).unwrap();
        assert!(send >= 8192 && recv > 0);
        assert_eq!(options["send_buffer_bytes"], send);
        assert_eq!(options["send_buffer_bytes_requested"], 8192);
        assert!(!options.contains_key("recv_buffer_bytes_requested"));
    }
}
