//! [`StoreError`]: what a store reports, named so the harness can act on it.

use std::io;
use std::time::Duration;

/// Why a store could not start or answer.
///
/// `Unavailable` means the store cannot run on this machine at all (mark the case
/// unsupported); every other variant is a failure of this trial. `Backend` carries the
/// store's own message (Redis's, PostgreSQL's, SQLite's or the shared map's).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot run here: its binary is missing, or a user or permission it needs.
    #[error("{store} is unavailable here: {reason}")]
    Unavailable {
        /// The store's config name (`redis`, `postgres`, ...).
        store: &'static str,
        /// What is missing, and what would provide it.
        reason: String,
    },
    /// The server was there but did not come up.
    #[error("{store} did not start: {reason}")]
    Start {
        /// The store's config name.
        store: &'static str,
        /// What went wrong, with the server's last log lines where it wrote any.
        reason: String,
    },
    /// The server did not answer within the start timeout.
    #[error("{store} did not answer within {waited:?}: {last_error}")]
    StartTimeout {
        /// The store's config name.
        store: &'static str,
        /// How long we waited.
        waited: Duration,
        /// The last connection error seen.
        last_error: String,
    },
    /// An operation failed mid-run; `message` is the store's own.
    #[error("{store} {op} failed: {message}")]
    Backend {
        /// The store's config name.
        store: &'static str,
        /// What we asked for (`rmw`, `connect`, ...).
        op: &'static str,
        /// The store's message, with its causes.
        message: String,
    },
    /// An option has a value the store cannot use.
    #[error("bad {store} option `{option}`: {reason}")]
    BadOption {
        /// The store's config name.
        store: &'static str,
        /// The option's config key.
        option: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// A file or process operation of ours failed.
    #[error("{op} failed")]
    Io {
        /// What we tried, with the path where there is one.
        op: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// `Backend` with `err` and its causes as the message.
    pub(crate) fn backend(store: &'static str, op: &'static str, err: &dyn std::error::Error) -> Self {
        StoreError::Backend {
            store,
            op,
            message: chain(err),
        }
    }

    /// `Io` for `op`.
    pub(crate) fn io(op: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
        let op = op.into();
        move |source| StoreError::Io { op, source }
    }

    /// Whether the store cannot run here (the case is unsupported rather than failed).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

/// `err` and its sources, joined by `: ` (each only once, even where a `Display` repeats its
/// source).
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
