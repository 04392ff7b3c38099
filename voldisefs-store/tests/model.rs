//! Property test: random operation sequences on `MemoryStore` behave exactly like a simple
//! `HashMap` model with a byte budget.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use bytes::Bytes;
use proptest::prelude::*;
use voldisefs_proto::ChunkId;
use voldisefs_store::{ChunkStore, MemoryStore, PutOutcome, StoreError, StoreStats};

#[derive(Debug, Clone)]
enum Op {
    /// Put pool chunk `i` under its own id.
    Put(usize),
    /// Put pool chunk `i`'s data under chunk `j`'s id.
    PutUnder(usize, usize),
    Get(usize),
    ContainsMany(Vec<usize>),
    Remove(usize),
    Ids,
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<usize>().prop_map(Op::Put),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Op::PutUnder(i, j)),
        3 => any::<usize>().prop_map(Op::Get),
        1 => prop::collection::vec(any::<usize>(), 0..6).prop_map(Op::ContainsMany),
        3 => any::<usize>().prop_map(Op::Remove),
        1 => Just(Op::Ids),
        1 => Just(Op::Clear),
    ]
}

#[derive(Default)]
struct Model {
    chunks: HashMap<ChunkId, Bytes>,
    capacity: u64,
}

impl Model {
    fn used(&self) -> u64 {
        self.chunks.values().map(|d| d.len() as u64).sum()
    }

    fn put(&mut self, id: ChunkId, data: Bytes) -> Result<PutOutcome, StoreError> {
        let actual = ChunkId::digest(&data);
        if actual != id {
            return Err(StoreError::IdMismatch {
                expected: id,
                actual,
            });
        }
        if self.chunks.contains_key(&id) {
            return Ok(PutOutcome::AlreadyPresent);
        }
        let (needed, used) = (data.len() as u64, self.used());
        if used + needed > self.capacity {
            return Err(StoreError::Full {
                needed,
                available: self.capacity - used,
                capacity: self.capacity,
            });
        }
        self.chunks.insert(id, data);
        Ok(PutOutcome::Stored)
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            chunks: self.chunks.len() as u64,
            bytes: self.used(),
            capacity: self.capacity,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn store_matches_model(
        pool in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 1..10),
        capacity in 0u64..200,
        ops in prop::collection::vec(op(), 0..60),
    ) {
        let pool: Vec<(ChunkId, Bytes)> = pool
            .into_iter()
            .map(|d| (ChunkId::digest(&d), Bytes::from(d)))
            .collect();
        let pick = |i: usize| &pool[i % pool.len()];
        let store = MemoryStore::new(capacity);
        let mut model = Model { capacity, ..Model::default() };

        for op in ops {
            match op {
                Op::Put(i) => {
                    let (id, data) = pick(i);
                    prop_assert_eq!(store.put(*id, data.clone()), model.put(*id, data.clone()));
                }
                Op::PutUnder(i, j) => {
                    let (_, data) = pick(i);
                    let (id, _) = pick(j);
                    prop_assert_eq!(store.put(*id, data.clone()), model.put(*id, data.clone()));
                }
                Op::Get(i) => {
                    let (id, _) = pick(i);
                    prop_assert_eq!(store.get(id), model.chunks.get(id).cloned());
                    prop_assert_eq!(store.contains(id), model.chunks.contains_key(id));
                }
                Op::ContainsMany(is) => {
                    let ids: Vec<ChunkId> = is.into_iter().map(|i| pick(i).0).collect();
                    let want: Vec<bool> =
                        ids.iter().map(|id| model.chunks.contains_key(id)).collect();
                    prop_assert_eq!(store.contains_many(&ids), want);
                }
                Op::Remove(i) => {
                    let (id, _) = pick(i);
                    prop_assert_eq!(store.remove(id), model.chunks.remove(id).is_some());
                }
                Op::Ids => {
                    let mut got = store.ids();
                    got.sort();
                    let mut want: Vec<ChunkId> = model.chunks.keys().copied().collect();
                    want.sort();
                    prop_assert_eq!(got, want);
                }
                Op::Clear => {
                    store.clear();
                    model.chunks.clear();
                }
            }
            prop_assert_eq!(store.stats(), model.stats());
        }
    }
}
