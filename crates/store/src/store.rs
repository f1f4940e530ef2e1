//! The [`Store`] trait: one backend's handle on the records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::StoreKind;
use crate::error::StoreError;

/// What one read-modify-write returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RmwOutcome {
    /// The client's counter after this increment (1 after its first request).
    pub counter: u64,
    /// The time the operation took as seen by the caller, round trip included (what the
    /// harness histograms as `state_*_ns`).
    pub elapsed: Duration,
}

impl RmwOutcome {
    /// The outcome of an operation that started at `started` and returned `counter`.
    pub fn since(started: Instant, counter: u64) -> Self {
        RmwOutcome {
            counter,
            elapsed: started.elapsed(),
        }
    }
}

/// One backend's handle on the client records: a connection to the store, or the store
/// itself for `local`. Blocking; one per backend process (or thread).
///
/// Every operation on a shared store is atomic with respect to every other handle's: two
/// backends incrementing one client never lose an increment.
pub trait Store: Send + std::fmt::Debug {
    /// Which store this is.
    fn kind(&self) -> StoreKind;

    /// Increments `client_id`'s counter and replaces its data with `data`, atomically, and
    /// returns the new counter with the time it took. A client's first call creates its record.
    ///
    /// # Errors
    ///
    /// `Backend` with the store's message; `shm` also refuses data longer than `state_bytes`.
    fn rmw(&mut self, client_id: u64, data: &[u8]) -> Result<RmwOutcome, StoreError>;

    /// `client_id`'s counter: 0 for a client never written.
    ///
    /// # Errors
    ///
    /// `Backend` with the store's message.
    fn read_counter(&mut self, client_id: u64) -> Result<u64, StoreError>;

    /// Every client this handle can see, with its counter (for `local`, this backend's own).
    ///
    /// # Errors
    ///
    /// `Backend` with the store's message.
    fn counters(&mut self) -> Result<BTreeMap<u64, u64>, StoreError>;
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn kind(&self) -> StoreKind {
        (**self).kind()
    }

    fn rmw(&mut self, client_id: u64, data: &[u8]) -> Result<RmwOutcome, StoreError> {
        (**self).rmw(client_id, data)
    }

    fn read_counter(&mut self, client_id: u64) -> Result<u64, StoreError> {
        (**self).read_counter(client_id)
    }

    fn counters(&mut self) -> Result<BTreeMap<u64, u64>, StoreError> {
        (**self).counters()
    }
}

/// A client id as a signed 64-bit database key: the same bits, so every `u64` round-trips.
pub(crate) fn to_sql_id(client_id: u64) -> i64 {
    client_id as i64
}

/// The inverse of [`to_sql_id`].
pub(crate) fn from_sql_id(id: i64) -> u64 {
    id as u64
}

/// A counter read from a database column. Counters start at 1 and only grow, so a negative
/// value means the table was changed behind our back.
pub(crate) fn counter_from_sql(store: &'static str, counter: i64) -> Result<u64, StoreError> {
    u64::try_from(counter).map_err(|_| StoreError::Backend {
        store,
        op: "read",
        message: format!("the table holds a negative counter ({counter})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_id_round_trips_through_sql() {
        for id in [0, 1, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
            assert_eq!(from_sql_id(to_sql_id(id)), id);
        }
    }
}
