//! Bounded waits shared by the socket and pipe transports: deadlines that cannot overflow,
//! and `poll` on one descriptor.

use std::io;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

pub use rustix::event::PollFlags;
use rustix::event::{PollFd, Timespec, poll};

/// The longest single `poll`; callers loop until their deadline, so this only caps one wait.
const MAX_POLL: Duration = Duration::from_secs(3600);

/// A point in time after which a wait gives up. A timeout too large to add to `now` never
/// expires instead of panicking.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// The deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// Time left, or `None` once the deadline has passed.
    pub fn remaining(&self) -> Option<Duration> {
        match self.0 {
            None => Some(MAX_POLL),
            Some(at) => at.checked_duration_since(Instant::now()).filter(|left| !left.is_zero()),
        }
    }
}

/// Waits up to `timeout` for `fd` to become readable and returns the events seen (empty on
/// timeout or signal; callers check their deadline and call again).
pub fn poll_readable(fd: impl AsFd, timeout: Duration) -> io::Result<PollFlags> {
    let timeout =
        Timespec::try_from(timeout.min(MAX_POLL)).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    match poll(&mut fds, Some(&timeout)) {
        Ok(_) => Ok(fds[0].revents()),
        Err(rustix::io::Errno::INTR) => Ok(PollFlags::empty()),
        Err(e) => Err(e.into()),
    }
}

/// Waits up to `timeout` for `fd` to become readable (for a listener: a pending connection).
///
/// Returns early on a signal; callers check their deadline and call again.
pub fn wait_readable(fd: impl AsFd, timeout: Duration) -> io::Result<()> {
    poll_readable(fd, timeout).map(|_| ())
}
