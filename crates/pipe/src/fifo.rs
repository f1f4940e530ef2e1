//! FIFO files and their ends: creation, non-blocking opens, blocking mode, pipe sizes.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ipcbench_core::TransportError;
use rustix::fs::{CWD, FileType, Mode, OFlags, fcntl_getfl, fcntl_setfl, fstat, mkfifoat, open};
use rustix::io::Errno;

/// The largest size `F_SETPIPE_SZ` takes (an `int`).
const MAX_PIPE_BYTES: usize = i32::MAX as usize;

/// A FIFO this process created, removed again on drop.
///
/// It remembers the file's device and inode, so it never removes a file that someone else
/// put at the same path after ours was gone.
#[derive(Debug)]
pub(crate) struct FifoFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl FifoFile {
    /// Makes a FIFO at `path`, readable and writable by this user only.
    pub(crate) fn create(path: PathBuf) -> Result<Self, TransportError> {
        mkfifoat(CWD, &path, Mode::RUSR | Mode::WUSR).map_err(|errno| TransportError::Io {
            op: "mkfifo",
            source: errno.into(),
        })?;
        match std::fs::symlink_metadata(&path) {
            Ok(meta) => Ok(FifoFile {
                path,
                dev: meta.dev(),
                ino: meta.ino(),
            }),
            Err(source) => {
                let _ = std::fs::remove_file(&path);
                Err(TransportError::Io {
                    op: "stat fifo",
                    source,
                })
            }
        }
    }

    /// Where the FIFO is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FifoFile {
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

/// Which end of a FIFO to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// `O_RDONLY`: always opens at once with `O_NONBLOCK`.
    Read,
    /// `O_WRONLY`: with `O_NONBLOCK`, fails with `ENXIO` until a reader has the FIFO open.
    Write,
}

/// Opens one end of the FIFO at `path` without blocking.
///
/// `Ok(None)` means "not yet": the file does not exist yet, or (for [`End::Write`]) nobody
/// reads it yet. A file that is not a FIFO is an `InvalidInput` error.
pub(crate) fn open_end(path: &Path, end: End) -> io::Result<Option<File>> {
    let access = match end {
        End::Read => OFlags::RDONLY,
        End::Write => OFlags::WRONLY,
    };
    let fd: OwnedFd = match open(path, access | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NXIO | Errno::INTR) => return Ok(None),
        Err(errno) => return Err(errno.into()),
    };
    if FileType::from_raw_mode(fstat(&fd)?.st_mode) != FileType::Fifo {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a FIFO", path.display()),
        ));
    }
    Ok(Some(File::from(fd)))
}

/// Clears `O_NONBLOCK`, so that reads and writes wait for the peer.
pub(crate) fn set_blocking(fd: impl AsFd) -> io::Result<()> {
    let flags = fcntl_getfl(&fd)?;
    fcntl_setfl(&fd, flags - OFlags::NONBLOCK)?;
    Ok(())
}

/// Rejects pipe sizes `F_SETPIPE_SZ` cannot take, before anything is created.
pub(crate) fn check_pipe_bytes(bytes: Option<usize>) -> Result<(), TransportError> {
    let reason = match bytes {
        None => return Ok(()),
        Some(0) => "must be at least 1 byte".to_owned(),
        Some(n) if n > MAX_PIPE_BYTES => format!("{n} bytes is above the {MAX_PIPE_BYTES}-byte limit"),
        Some(_) if !cfg!(any(target_os = "linux", target_os = "android")) => {
            "pipe sizes can be set only on Linux and Android".to_owned()
        }
        Some(_) => return Ok(()),
    };
    Err(TransportError::BadOption {
        option: "pipe_buffer_bytes",
        reason,
    })
}

/// Applies `bytes` to the pipe behind `fd` with `F_SETPIPE_SZ` (the kernel rounds it up).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn set_pipe_bytes(fd: impl AsFd, bytes: usize) -> Result<(), TransportError> {
    match rustix::pipe::fcntl_setpipe_size(fd, bytes) {
        Ok(_) => Ok(()),
        Err(Errno::PERM) => Err(TransportError::BadOption {
            option: "pipe_buffer_bytes",
            reason: format!(
                "{bytes} bytes is above this user's limit (fs.pipe-max-size, or fs.pipe-user-pages-hard when many pipes are open)"
            ),
        }),
        Err(errno) => Err(TransportError::Io {
            op: "F_SETPIPE_SZ",
            source: errno.into(),
        }),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn set_pipe_bytes(_fd: impl AsFd, _bytes: usize) -> Result<(), TransportError> {
    // `check_pipe_bytes` refuses the option on these systems before anything is created.
    Ok(())
}

/// The pipe's capacity as `F_GETPIPE_SZ` reports it, where the system can tell.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn pipe_bytes(fd: impl AsFd) -> Result<Option<usize>, TransportError> {
    rustix::pipe::fcntl_getpipe_size(fd)
        .map(Some)
        .map_err(|errno| TransportError::Io {
            op: "F_GETPIPE_SZ",
            source: errno.into(),
        })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn pipe_bytes(_fd: impl AsFd) -> Result<Option<usize>, TransportError> {
    Ok(None)
}
