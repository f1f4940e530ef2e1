//! The relay's response cache: keyed by path, bounded, second-chance (CLOCK) eviction.
//!
//! Eviction walks `order` from the front: an entry used since it was last passed gets a
//! second chance (moved to the back, flag cleared); the first unused one is evicted. This
//! keeps a small hot set resident while a stream of one-time misses flows through, as LRU
//! would, at O(1) amortized cost per insert.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use hyper::HeaderMap;

/// A cached response.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

struct Slot {
    entry: Arc<Entry>,
    used: bool,
}

/// At most `capacity` responses; `capacity` is at least 1.
pub(crate) struct Cache {
    slots: HashMap<String, Slot>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Cache {
        Cache {
            slots: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn get(&mut self, key: &str) -> Option<Arc<Entry>> {
        let slot = self.slots.get_mut(key)?;
        slot.used = true;
        Some(slot.entry.clone())
    }

    pub(crate) fn insert(&mut self, key: String, entry: Entry) {
        if let Some(slot) = self.slots.get_mut(&key) {
            slot.entry = Arc::new(entry);
            return;
        }
        while self.slots.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            let slot = self
                .slots
                .get_mut(&oldest)
                .expect("`order` and `slots` hold the same keys");
            if slot.used {
                slot.used = false;
                self.order.push_back(oldest);
            } else {
                self.slots.remove(&oldest);
            }
        }
        self.order.push_back(key.clone());
        self.slots.insert(
            key,
            Slot {
                entry: Arc::new(entry),
                used: false,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    #[test]
    fn used_entries_survive_a_stream_of_misses() {
        let mut cache = Cache::new(4);
        cache.insert("hot".into(), entry());
        for i in 0..100 {
            assert!(cache.get("hot").is_some(), "evicted after {i} misses");
            cache.insert(format!("miss-{i}"), entry());
            assert!(cache.len() <= 4);
        }
    }
}
