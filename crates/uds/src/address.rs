//! Socket addresses as text: a file path, or `@name` for a Linux abstract address.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use ipcbench_core::TransportError;
use socket2::SockAddr;

/// Bytes available for a path in `sockaddr_un`, less the terminating NUL (or, for an abstract
/// name, less the leading NUL).
pub(crate) const MAX_NAME_BYTES: usize = 107;

/// Where a Unix socket lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UdsAddress {
    /// A socket file.
    Path(PathBuf),
    /// A name in the Linux abstract namespace (no file; vanishes with the last socket).
    Abstract(Vec<u8>),
}

impl UdsAddress {
    /// Parses `@name` (abstract) or a path, rejecting what cannot be a socket address.
    pub(crate) fn parse(address: &str) -> Result<Self, TransportError> {
        let bad = |reason: String| TransportError::BadAddress {
            address: address.to_owned(),
            reason,
        };
        if address.contains('\0') {
            return Err(bad("contains a NUL byte".into()));
        }
        let parsed = match address.strip_prefix('@') {
            Some("") => return Err(bad("an abstract address needs a name after `@`".into())),
            Some(name) => UdsAddress::Abstract(name.as_bytes().to_vec()),
            None if address.is_empty() => return Err(bad("expected a socket path or @name".into())),
            None if address.ends_with('/') => return Err(bad("names a directory, not a socket".into())),
            None => UdsAddress::Path(PathBuf::from(address)),
        };
        parsed.check_len().map_err(bad)?;
        Ok(parsed)
    }

    /// Checks the `sockaddr_un` length limit.
    pub(crate) fn check_len(&self) -> Result<(), String> {
        let len = match self {
            UdsAddress::Path(path) => path.as_os_str().len(),
            UdsAddress::Abstract(name) => name.len(),
        };
        if len > MAX_NAME_BYTES {
            return Err(format!(
                "{len} bytes long; Unix socket addresses allow at most {MAX_NAME_BYTES}"
            ));
        }
        Ok(())
    }

    /// The address in the form the socket calls take.
    pub(crate) fn to_sockaddr(&self) -> std::io::Result<SockAddr> {
        match self {
            UdsAddress::Path(path) => SockAddr::unix(path),
            UdsAddress::Abstract(name) => {
                // socket2 treats a path that starts with NUL as an abstract name.
                let mut bytes = Vec::with_capacity(name.len() + 1);
                bytes.push(0);
                bytes.extend_from_slice(name);
                SockAddr::unix(Path::new(OsStr::from_bytes(&bytes)))
            }
        }
    }
}

impl fmt::Display for UdsAddress {
    /// The text [`UdsAddress::parse`] reads back: the path, or `@name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UdsAddress::Path(path) => write!(f, "{}", path.display()),
            UdsAddress::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_abstract_names_round_trip() {
        for text in ["/tmp/x/run.sock", "relative.sock", "@ipcbench-1-2-name"] {
            assert_eq!(UdsAddress::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            UdsAddress::parse("@abc").unwrap(),
            UdsAddress::Abstract(b"abc".to_vec())
        );
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        let long = format!("/{}", "x".repeat(MAX_NAME_BYTES));
        let long_abstract = format!("@{}", "x".repeat(MAX_NAME_BYTES + 1));
        for text in ["", "@", "/tmp/", "a\0b", long.as_str(), long_abstract.as_str()] {
            assert!(
                matches!(UdsAddress::parse(text), Err(TransportError::BadAddress { .. })),
                "{text:?}"
            );
        }
    }

    #[test]
    fn longest_names_fit_sockaddr() {
        let path = format!("/{}", "x".repeat(MAX_NAME_BYTES - 1));
        UdsAddress::parse(&path).unwrap().to_sockaddr().unwrap();
        let name = format!("@{}", "x".repeat(MAX_NAME_BYTES));
        UdsAddress::parse(&name).unwrap().to_sockaddr().unwrap();
    }
}
