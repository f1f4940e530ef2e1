//! [`ShmStore`]: the records in one [`SharedMap`] that every backend process maps.

use std::collections::BTreeMap;
use std::time::Instant;

use ipcbench_shm::SharedMap;

use crate::config::StoreKind;
use crate::error::StoreError;
use crate::store::{RmwOutcome, Store};

const STORE: &str = "shm";

/// A backend's mapping of the shared map made by [`StoreHost::start`](crate::StoreHost::start).
///
/// Records hold at most `state_bytes` of data, and the map at most its slot count of clients
/// (twice the trial's `n_clients`); more is a `Backend` error, never a silent drop.
#[derive(Debug)]
pub struct ShmStore {
    map: SharedMap,
}

impl ShmStore {
    /// Maps the shared map at `address` ([`SharedMap::address`]).
    ///
    /// # Errors
    ///
    /// `Backend` when the address names no map (its creator has gone, say).
    pub fn open(address: &str) -> Result<Self, StoreError> {
        let map = SharedMap::open(address).map_err(|e| StoreError::backend(STORE, "open", &e))?;
        Ok(ShmStore { map })
    }

    /// The mapping itself.
    pub fn map(&self) -> &SharedMap {
        &self.map
    }
}

impl Store for ShmStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Shm
    }

    fn rmw(&mut self, client_id: u64, data: &[u8]) -> Result<RmwOutcome, StoreError> {
        let started = Instant::now();
        let counter = self
            .map
            .rmw(client_id, data)
            .map_err(|e| StoreError::backend(STORE, "rmw", &e))?;
        Ok(RmwOutcome::since(started, counter))
    }

    fn read_counter(&mut self, client_id: u64) -> Result<u64, StoreError> {
        self.map
            .counter(client_id)
            .map_err(|e| StoreError::backend(STORE, "read", &e))
    }

    fn counters(&mut self) -> Result<BTreeMap<u64, u64>, StoreError> {
        Ok(self
            .map
            .counters()
            .map_err(|e| StoreError::backend(STORE, "list", &e))?
            .into_iter()
            .collect())
    }
}
