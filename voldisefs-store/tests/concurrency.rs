//! `MemoryStore` under concurrent use from many std threads: the accounting invariants must hold
//! and the capacity must never be exceeded, whatever the interleaving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use bytes::Bytes;
use voldisefs_proto::ChunkId;
use voldisefs_store::{ChunkStore, MemoryStore, PutOutcome, StoreError};

const THREADS: usize = 8;

/// A tiny deterministic PRNG (xorshift64*), so the test needs no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `count` distinct chunks; sizes cycle through boundary-ish lengths.
fn pool(count: usize) -> Vec<(ChunkId, Bytes)> {
    const LENS: [usize; 8] = [0, 1, 100, 1024, 4095, 4096, 4097, 16 * 1024];
    (0..count)
        .map(|i| {
            let len = LENS[i % LENS.len()];
            let mut data = vec![i as u8; len];
            // Make equal-length chunks distinct (the empty chunk is necessarily unique).
            if let Some(first) = data.first_mut() {
                *first = (i / LENS.len()) as u8;
            }
            if let Some(last) = data.last_mut() {
                *last = i as u8;
            }
            (ChunkId::digest(&data), Bytes::from(data))
        })
        .collect()
}

/// With writers quiet: stats match the contents exactly and every chunk matches its id.
fn check_invariants(store: &MemoryStore) {
    let stats = store.stats();
    let ids = store.ids();
    let mut bytes = 0u64;
    for id in &ids {
        let data = store.get(id).expect("listed id must be readable");
        assert!(id.matches(&data), "stored data must match its id");
        bytes += data.len() as u64;
    }
    assert_eq!(stats.chunks, ids.len() as u64);
    assert_eq!(stats.bytes, bytes);
    assert!(stats.bytes <= stats.capacity);
}

#[test]
fn random_operations_keep_invariants() {
    let chunks = Arc::new(pool(64));
    let total: u64 = chunks.iter().map(|(_, d)| d.len() as u64).sum();
    // Room for roughly half the pool, so puts are refused regularly.
    let capacity = total / 2;
    let store = MemoryStore::new(capacity);
    let full_refusals = Arc::new(AtomicU64::new(0));

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let chunks = Arc::clone(&chunks);
            let full_refusals = Arc::clone(&full_refusals);
            thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                for _ in 0..2_000 {
                    let (id, data) = &chunks[rng.below(chunks.len())];
                    match rng.below(20) {
                        0..=8 => match store.put(*id, data.clone()) {
                            Ok(PutOutcome::Stored | PutOutcome::AlreadyPresent) => {}
                            Err(StoreError::Full {
                                needed,
                                available,
                                capacity: cap,
                            }) => {
                                assert_eq!(needed, data.len() as u64);
                                assert!(available < needed);
                                assert_eq!(cap, capacity);
                                full_refusals.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("unexpected error: {e}"),
                        },
                        9..=13 => {
                            if let Some(got) = store.get(id) {
                                assert_eq!(&got, data);
                            }
                        }
                        14..=16 => {
                            store.remove(id);
                        }
                        17 => {
                            let (other, _) = &chunks[rng.below(chunks.len())];
                            let have = store.contains_many(&[*id, *other]);
                            assert_eq!(have.len(), 2);
                        }
                        _ => {
                            let stats = store.stats();
                            assert!(stats.bytes <= stats.capacity);
                            assert!(stats.chunks <= chunks.len() as u64);
                        }
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    check_invariants(&store);
    assert!(
        full_refusals.load(Ordering::Relaxed) > 0,
        "the test should exercise the full path"
    );
    store.clear();
    check_invariants(&store);
    assert_eq!(store.stats().bytes, 0);
}

#[test]
fn racing_puts_never_exceed_capacity() {
    const LEN: usize = 1000;
    const FIT: u64 = 10;
    for round in 0..20u8 {
        let store = MemoryStore::new(FIT * LEN as u64);
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    // Each thread offers 10 distinct chunks; 80 compete for 10 places.
                    let chunks: Vec<_> = (0..10u8)
                        .map(|i| {
                            let mut data = vec![round; LEN];
                            data[0] = t as u8;
                            data[1] = i;
                            let data = Bytes::from(data);
                            (ChunkId::digest(&data), data)
                        })
                        .collect();
                    barrier.wait();
                    let mut stored = 0u64;
                    for (id, data) in chunks {
                        match store.put(id, data) {
                            Ok(PutOutcome::Stored) => stored += 1,
                            Err(StoreError::Full { .. }) => {}
                            other => panic!("unexpected: {other:?}"),
                        }
                    }
                    stored
                })
            })
            .collect();
        let stored: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(stored, FIT);
        assert_eq!(store.stats().bytes, FIT * LEN as u64);
        check_invariants(&store);
    }
}

#[test]
fn racing_puts_of_one_chunk_store_it_once() {
    let data = Bytes::from(vec![0x5A; 4096]);
    let id = ChunkId::digest(&data);
    for _ in 0..20 {
        let store = MemoryStore::new(4096);
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (store, barrier, data) = (store.clone(), Arc::clone(&barrier), data.clone());
                thread::spawn(move || {
                    barrier.wait();
                    store.put(id, data).unwrap()
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let stored = outcomes
            .iter()
            .filter(|o| **o == PutOutcome::Stored)
            .count();
        assert_eq!(stored, 1, "{outcomes:?}");
        assert_eq!(store.stats().bytes, 4096);
        assert_eq!(store.stats().chunks, 1);
    }
}

#[test]
fn clear_racing_writers_keeps_accounting_exact() {
    let chunks = Arc::new(pool(48));
    let store = MemoryStore::unbounded();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..THREADS - 1)
        .map(|t| {
            let (store, chunks, stop) = (store.clone(), Arc::clone(&chunks), Arc::clone(&stop));
            thread::spawn(move || {
                let mut rng = Rng(t as u64 + 7);
                while !stop.load(Ordering::Relaxed) {
                    let (id, data) = &chunks[rng.below(chunks.len())];
                    if rng.below(4) == 0 {
                        store.remove(id);
                    } else {
                        store.put(*id, data.clone()).unwrap();
                    }
                }
            })
        })
        .collect();
    for _ in 0..200 {
        store.clear();
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    check_invariants(&store);
    store.clear();
    assert_eq!(store.stats().chunks, 0);
    assert_eq!(store.stats().bytes, 0);
}
