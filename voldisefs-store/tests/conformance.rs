//! One behaviour suite written against the `ChunkStore` trait, run against every store flavour
//! over interesting chunk sizes (0, 1, 1024, 16K-1, 16K, 16K+1, 1 MiB).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use voldisefs_proto::ChunkId;
use voldisefs_store::{ChunkStore, MemoryStore, PutOutcome, StoreError, StoreStats};

const SIZES: [usize; 7] = [
    0,
    1,
    1024,
    16 * 1024 - 1,
    16 * 1024,
    16 * 1024 + 1,
    1024 * 1024,
];

/// Deterministic pseudo-random data of `len` bytes; different seeds give different data. The
/// first byte is `0xC0 + seed`, so one-byte blobs never collide with [`byte`] chunks below 0xC0.
fn blob(len: usize, seed: u8) -> (ChunkId, Bytes) {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(0xC0 + seed) ^ (i >> 8) as u8)
        .collect();
    (ChunkId::digest(&data), Bytes::from(data))
}

/// A one-byte chunk, distinct for each `b`.
fn byte(b: u8) -> (ChunkId, Bytes) {
    (ChunkId::digest(&[b]), Bytes::copy_from_slice(&[b]))
}

fn stats(chunks: u64, bytes: u64, capacity: u64) -> StoreStats {
    StoreStats {
        chunks,
        bytes,
        capacity,
    }
}

/// The whole suite for one chunk size. `make(capacity)` builds an empty store.
fn conformance<S: ChunkStore>(make: &impl Fn(u64) -> S, len: usize) {
    let n = len as u64;
    basic_operations(make, n, len);
    idempotent_put(make, n, len);
    id_mismatch_is_refused(make, n, len);
    capacity_boundaries(make, n, len);
    remove_and_clear(make, n, len);
}

fn basic_operations<S: ChunkStore>(make: &impl Fn(u64) -> S, n: u64, len: usize) {
    let cap = n + 10;
    let store = make(cap);
    let (id, data) = blob(len, 1);
    let (absent, _) = byte(0xAA);

    assert_eq!(store.stats(), stats(0, 0, cap));
    assert_eq!(store.stats().available(), cap);
    assert_eq!(store.get(&id), None);
    assert!(!store.contains(&id));
    assert!(store.ids().is_empty());
    assert!(!store.remove(&id));
    assert_eq!(store.contains_many(&[]), Vec::<bool>::new());

    assert_eq!(store.put(id, data.clone()), Ok(PutOutcome::Stored));
    assert_eq!(store.get(&id), Some(data.clone()));
    assert!(store.contains(&id));
    assert!(!store.contains(&absent));
    assert_eq!(
        store.contains_many(&[id, absent, id]),
        vec![true, false, true]
    );
    assert_eq!(store.ids(), vec![id]);
    assert_eq!(store.stats(), stats(1, n, cap));
    assert_eq!(store.stats().available(), 10);

    let (id2, data2) = byte(0x01);
    assert_eq!(store.put(id2, data2.clone()), Ok(PutOutcome::Stored));
    let mut ids = store.ids();
    ids.sort();
    let mut want = vec![id, id2];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(store.stats(), stats(2, n + 1, cap));
    assert_eq!(store.get(&id2), Some(data2));
}

fn idempotent_put<S: ChunkStore>(make: &impl Fn(u64) -> S, n: u64, len: usize) {
    let store = make(n);
    let (id, data) = blob(len, 2);
    assert_eq!(store.put(id, data.clone()), Ok(PutOutcome::Stored));
    // Same content in a fresh buffer, and the same buffer again: no double accounting, and it
    // succeeds although the store is now exactly full.
    let copy = Bytes::copy_from_slice(&data);
    assert_eq!(store.put(id, copy), Ok(PutOutcome::AlreadyPresent));
    assert_eq!(store.put(id, data.clone()), Ok(PutOutcome::AlreadyPresent));
    assert_eq!(store.stats(), stats(1, n, n));
    assert_eq!(store.get(&id), Some(data));
}

fn id_mismatch_is_refused<S: ChunkStore>(make: &impl Fn(u64) -> S, n: u64, len: usize) {
    let cap = n + 10;
    let store = make(cap);
    let (id, data) = blob(len, 3);
    let (other, _) = byte(0x42);

    // Wrong id for the data: refused, and neither id nor capacity is touched.
    let err = store.put(other, data.clone()).unwrap_err();
    assert_eq!(
        err,
        StoreError::IdMismatch {
            expected: other,
            actual: id,
        }
    );
    assert!(!store.contains(&other));
    assert!(!store.contains(&id));
    assert_eq!(store.stats(), stats(0, 0, cap));

    // Tampered data under a stored id is refused too and the original survives.
    assert_eq!(store.put(id, data.clone()), Ok(PutOutcome::Stored));
    let mut tampered = data.to_vec();
    tampered.push(0);
    let err = store.put(id, Bytes::from(tampered)).unwrap_err();
    assert!(matches!(err, StoreError::IdMismatch { expected, .. } if expected == id));
    assert_eq!(store.get(&id), Some(data));
    assert_eq!(store.stats(), stats(1, n, cap));
}

fn capacity_boundaries<S: ChunkStore>(make: &impl Fn(u64) -> S, n: u64, len: usize) {
    // A chunk exactly the size of an empty store fits; one byte more does not.
    let (id, data) = blob(len, 4);
    let (big_id, big) = blob(len + 1, 4);
    let store = make(n);
    assert_eq!(
        store.put(big_id, big.clone()),
        Err(StoreError::Full {
            needed: n + 1,
            available: n,
            capacity: n,
        })
    );
    assert_eq!(store.stats(), stats(0, 0, n));
    assert_eq!(store.put(id, data.clone()), Ok(PutOutcome::Stored));
    assert_eq!(store.stats(), stats(1, n, n));

    // Fill to exactly capacity with two chunks; the next byte is refused, nothing evicted.
    let cap = n + 1;
    let store = make(cap);
    let (b_id, b) = byte(0x10);
    let (c_id, c) = byte(0x11);
    assert_eq!(store.put(id, data.clone()), Ok(PutOutcome::Stored));
    assert_eq!(store.put(b_id, b.clone()), Ok(PutOutcome::Stored));
    assert_eq!(store.stats(), stats(2, cap, cap));
    let full = store.put(c_id, c.clone()).unwrap_err();
    assert_eq!(
        full,
        StoreError::Full {
            needed: 1,
            available: 0,
            capacity: cap,
        }
    );
    assert_eq!(
        full.to_string(),
        format!("store full: need 1 bytes, 0 available of {cap}")
    );
    assert!(!store.contains(&c_id));
    assert_eq!(store.get(&id), Some(data.clone()));
    assert_eq!(store.get(&b_id), Some(b));
    // Re-putting a present chunk into a full store still succeeds.
    assert_eq!(store.put(id, data), Ok(PutOutcome::AlreadyPresent));
    assert_eq!(store.stats(), stats(2, cap, cap));

    // Removing frees exactly the chunk's bytes.
    assert!(store.remove(&b_id));
    assert_eq!(store.stats(), stats(1, n, cap));
    assert_eq!(store.put(c_id, c), Ok(PutOutcome::Stored));
    assert_eq!(store.stats(), stats(2, cap, cap));
    assert!(store.remove(&id));
    assert_eq!(store.stats(), stats(1, 1, cap));
    if n >= 1 {
        let err = store.put(big_id, big).unwrap_err();
        assert_eq!(
            err,
            StoreError::Full {
                needed: n + 1,
                available: n,
                capacity: cap,
            }
        );
    }
}

fn remove_and_clear<S: ChunkStore>(make: &impl Fn(u64) -> S, n: u64, len: usize) {
    let cap = n + 100;
    let store = make(cap);
    let (id, data) = blob(len, 5);
    assert_eq!(store.put(id, data.clone()), Ok(PutOutcome::Stored));
    let held = store.get(&id).unwrap();
    assert!(store.remove(&id));
    assert!(!store.remove(&id));
    assert_eq!(store.get(&id), None);
    assert!(!store.contains(&id));
    // A buffer handed out before the remove stays valid.
    assert_eq!(held, data);
    assert_eq!(store.stats(), stats(0, 0, cap));

    let mut ids = vec![id];
    store.put(id, data.clone()).unwrap();
    for b in 0..50u8 {
        let (bid, bdata) = byte(b);
        assert_eq!(store.put(bid, bdata), Ok(PutOutcome::Stored));
        ids.push(bid);
    }
    assert_eq!(store.stats(), stats(51, n + 50, cap));
    store.clear();
    assert_eq!(store.stats(), stats(0, 0, cap));
    assert!(store.ids().is_empty());
    assert_eq!(store.contains_many(&ids), vec![false; ids.len()]);
    assert!(ids.iter().all(|id| store.get(id).is_none()));
    // The store is usable after clearing, with all capacity back.
    assert_eq!(store.put(id, data), Ok(PutOutcome::Stored));
    assert_eq!(store.stats(), stats(1, n, cap));
    store.clear();
    store.clear();
    assert_eq!(store.stats(), stats(0, 0, cap));
}

#[test]
fn memory_store() {
    for len in SIZES {
        conformance(&MemoryStore::new, len);
    }
}

#[test]
fn memory_store_with_chunk_limit() {
    for len in SIZES {
        conformance(&|cap| MemoryStore::with_limits(cap, 2 * 1024 * 1024), len);
    }
}

#[test]
fn arc_of_memory_store() {
    for len in SIZES {
        conformance(&|cap| Arc::new(MemoryStore::new(cap)), len);
    }
}

#[test]
fn trait_object() {
    for len in SIZES {
        conformance(
            &|cap| -> Arc<dyn ChunkStore> { Arc::new(MemoryStore::new(cap)) },
            len,
        );
    }
}
