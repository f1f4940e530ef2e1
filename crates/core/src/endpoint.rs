//! Where a listener creates its endpoint.

use std::path::{Path, PathBuf};

/// The place a [`crate::Transport::bind`] call creates its endpoint.
///
/// `name` is unique per case and trial; `dir` is a private directory owned by the run, where
/// transports that need files (socket paths, FIFOs) create them. Transports that need no
/// files (TCP, shared memory) use only `name`, if anything.
#[derive(Debug, Clone)]
pub struct Endpoint {
    name: String,
    dir: PathBuf,
}

impl Endpoint {
    /// Creates an endpoint description; `dir` must exist.
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Endpoint {
            name: name.into(),
            dir: dir.into(),
        }
    }

    /// The unique name of this endpoint (letters, digits, `-` and `_`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory where file-backed endpoints go.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path in [`Endpoint::dir`] named after the endpoint, with `suffix` appended.
    pub fn path(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}{suffix}", self.name))
    }
}
