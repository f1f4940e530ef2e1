//! What every memfd of this crate shares: how it is made, and the address other processes
//! open it by.
//!
//! A memfd has no name in `/dev/shm`, so a killed process leaves nothing behind: the memory
//! goes when the last descriptor and mapping go. Its size is sealed right after it is sized,
//! so no one can truncate it under a mapping (which would turn accesses into SIGBUS).
//!
//! Another process opens it through `/proc/<pid>/fd/<fd>#<token>`: opening `/proc/PID/fd/N`
//! of a memfd reopens the same memory, for a process of the same user as well as for the
//! creator itself. The token, a random number also stored in the memfd's header, tells our
//! memfd apart from whatever else may later reuse that descriptor number; [`open_ours`] also
//! checks the memfd's name before it opens anything.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::AsRawFd;

use rustix::fs::{MemfdFlags, SealFlags};

/// Creates a memfd called `name` of `len` bytes and seals its size.
pub(crate) fn create_sealed(name: &str, len: u64) -> io::Result<File> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let file = File::from(fd);
    file.set_len(len)?;
    rustix::fs::fcntl_add_seals(&file, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    Ok(file)
}

/// A random token for a new memfd. `RandomState` is seeded from the OS once per thread and
/// stepped per call; the time and pid add a little more.
pub(crate) fn random_token() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

/// The address of `file` (a memfd of this process) with `token`.
pub(crate) fn address_of(file: &File, token: u64) -> String {
    format!("/proc/{}/fd/{}#{token:016x}", std::process::id(), file.as_raw_fd())
}

/// A parsed `/proc/<pid>/fd/<fd>#<token>` address.
#[derive(Debug)]
pub(crate) struct ProcAddress {
    /// The `/proc/<pid>/fd/<fd>` part.
    pub(crate) path: String,
    /// The token after `#`.
    pub(crate) token: u64,
}

impl ProcAddress {
    /// Parses `text`; the error says what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<ProcAddress, String> {
        let bad = |reason: &str| format!("{reason} (expected /proc/<pid>/fd/<fd>#<16 hex digits>)");
        let (path, token) = text.split_once('#').ok_or_else(|| bad("no `#token`"))?;
        let token = u64::from_str_radix(token, 16).map_err(|_| bad("the token is not hexadecimal"))?;
        let (pid, fd) = path
            .strip_prefix("/proc/")
            .and_then(|rest| rest.split_once("/fd/"))
            .ok_or_else(|| bad("not a /proc descriptor path"))?;
        if pid.parse::<u32>().is_err() || fd.parse::<u32>().is_err() {
            return Err(bad("the pid and descriptor must be numbers"));
        }
        Ok(ProcAddress {
            path: path.to_owned(),
            token,
        })
    }
}

/// Opens `path` read-write if it names a memfd called `name`. `Ok(None)` when there is no such
/// descriptor (yet, or any more) or it names something else: worth retrying, never mapping.
pub(crate) fn open_ours(path: &str, name: &str) -> io::Result<Option<File>> {
    let Ok(target) = rustix::fs::readlink(path, Vec::new()) else {
        return Ok(None);
    };
    if !target.to_bytes().starts_with(format!("/memfd:{name}").as_bytes()) {
        return Ok(None);
    }
    match File::options().read(true).write(true).open(path) {
        Ok(file) => Ok(Some(file)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}
