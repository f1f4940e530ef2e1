//! Loom models of the shared map's slot protocol (`map`): claiming a slot, and the per-record
//! lock that serializes read-modify-writes.
//!
//! Run with `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p ipcbench-shm --release
//! --lib loom`. The tables live on the heap with one loom cell per data byte, so a data access
//! the lock did not order is reported as a race, a lost increment fails an assertion, and a
//! protocol that could deadlock shows up as a model that never ends. The tables are tiny (one
//! or two slots of two bytes) so that every thread races for the same words.

use loom::sync::Arc;
use loom::thread;

use crate::map::{HeapSlots, Table};

type SharedTable = Arc<Table<Arc<HeapSlots>>>;

/// A table of `n_slots` slots of two data bytes, shared by the model's threads.
fn table(n_slots: usize) -> SharedTable {
    Arc::new(Table::new(Arc::new(HeapSlots::new(n_slots, 2)), 1))
}

/// One read-modify-write as `SharedMap::rmw` does it, yielding while the record is locked.
fn rmw(table: &SharedTable, client_id: u64, data: [u8; 2]) -> u64 {
    let idx = table.find_or_claim(client_id).expect("room");
    let mut locked = table
        .lock(idx, |_| {
            thread::yield_now();
            Ok::<(), ()>(())
        })
        .expect("the wait never gives up");
    let counter = locked.counter() + 1;
    locked.write(counter, &data);
    counter
}

/// The counter and data of `client_id`, read under the lock.
fn read(table: &SharedTable, client_id: u64) -> Option<(u64, [u8; 2])> {
    let idx = table.find(client_id).expect("not reserved")?;
    let locked = table
        .lock(idx, |_| {
            thread::yield_now();
            Ok::<(), ()>(())
        })
        .expect("the wait never gives up");
    let mut data = [0u8; 2];
    let len = locked.read_data(&mut data);
    Some((locked.counter(), if len == 2 { data } else { [0, 0] }))
}

#[test]
fn loom_map_two_writers_of_a_new_client_lose_no_update() {
    loom::model(|| {
        // Both threads find the slot empty, race to claim it for the same client, then race for
        // its lock: exactly one claim wins and the counter ends at 2.
        let table = table(1);
        let other = Arc::clone(&table);
        let writer = thread::spawn(move || rmw(&other, 7, [1, 1]));
        let mine = rmw(&table, 7, [2, 2]);
        let theirs = writer.join().expect("writer");
        let mut counters = [mine, theirs];
        counters.sort_unstable();
        assert_eq!(counters, [1, 2]);
        let (counter, data) = read(&table, 7).expect("present");
        assert_eq!(counter, 2);
        // The data is the last writer's, whole.
        assert_eq!(data, if mine == 2 { [2, 2] } else { [1, 1] });
    });
}

#[test]
fn loom_map_two_clients_racing_for_one_home_slot_get_one_slot_each() {
    loom::model(|| {
        // Two slots and two clients: whichever claims a slot first, the other probes on and
        // claims the remaining one; neither overwrites the other's record.
        let table = table(2);
        let other = Arc::clone(&table);
        let writer = thread::spawn(move || rmw(&other, 1, [1, 1]));
        assert_eq!(rmw(&table, 2, [2, 2]), 1);
        assert_eq!(writer.join().expect("writer"), 1);
        assert_eq!(read(&table, 1), Some((1, [1, 1])));
        assert_eq!(read(&table, 2), Some((1, [2, 2])));
        let mut keys: Vec<u64> = table.claimed().map(|(_, key)| key).collect();
        keys.sort_unstable();
        assert_eq!(keys, [1, 2]);
    });
}

#[test]
fn loom_map_a_reader_never_sees_a_torn_record() {
    loom::model(|| {
        // Each write stores the counter's value in both data bytes; a reader racing with two
        // writes must see counter and data from one and the same write.
        let table = table(1);
        let other = Arc::clone(&table);
        let writer = thread::spawn(move || {
            for _ in 0..2 {
                let idx = other.find_or_claim(3).expect("room");
                let mut locked = other
                    .lock(idx, |_| {
                        thread::yield_now();
                        Ok::<(), ()>(())
                    })
                    .expect("the wait never gives up");
                let counter = locked.counter() + 1;
                locked.write(counter, &[counter as u8; 2]);
            }
        });
        if let Some((counter, data)) = read(&table, 3) {
            assert!(counter <= 2);
            assert_eq!(data, [counter as u8; 2]);
        }
        writer.join().expect("writer");
        assert_eq!(read(&table, 3), Some((2, [2, 2])));
    });
}
