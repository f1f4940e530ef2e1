//! [`LocalStore`]: the records in this process's own map, the cost of *not* sharing state.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::config::StoreKind;
use crate::error::StoreError;
use crate::store::{RmwOutcome, Store};

/// Each backend's own `HashMap` of records. Correct only when every request of a client
/// reaches the same backend; under other policies its counters fall behind (stale reads).
#[derive(Debug, Default)]
pub struct LocalStore {
    records: HashMap<u64, Record>,
}

#[derive(Debug, Default)]
struct Record {
    counter: u64,
    data: Vec<u8>,
}

impl LocalStore {
    /// An empty map.
    pub fn new() -> Self {
        LocalStore::default()
    }
}

impl Store for LocalStore {
    fn kind(&self) -> StoreKind {
        StoreKind::Local
    }

    fn rmw(&mut self, client_id: u64, data: &[u8]) -> Result<RmwOutcome, StoreError> {
        let started = Instant::now();
        let record = self.records.entry(client_id).or_default();
        record.counter += 1;
        record.data.clear();
        record.data.extend_from_slice(data);
        Ok(RmwOutcome::since(started, record.counter))
    }

    fn read_counter(&mut self, client_id: u64) -> Result<u64, StoreError> {
        Ok(self.records.get(&client_id).map_or(0, |r| r.counter))
    }

    fn counters(&mut self) -> Result<BTreeMap<u64, u64>, StoreError> {
        Ok(self.records.iter().map(|(id, r)| (*id, r.counter)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rmw_counts_per_client() {
        let mut store = LocalStore::new();
        assert_eq!(store.rmw(1, b"a").expect("rmw").counter, 1);
        assert_eq!(store.rmw(1, b"b").expect("rmw").counter, 2);
        assert_eq!(store.rmw(2, b"").expect("rmw").counter, 1);
        assert_eq!(store.read_counter(1).expect("read"), 2);
        assert_eq!(store.read_counter(3).expect("read"), 0);
        assert_eq!(store.counters().expect("counters"), BTreeMap::from([(1, 2), (2, 1)]));
    }
}
