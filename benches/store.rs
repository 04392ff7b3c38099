//! Volatile store throughput: putting (which verifies the BLAKE3 id) and getting 1 MiB chunks.
//!
//! Run with `cargo bench --bench store`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use voldisefs::proto::ChunkId;
use voldisefs::store::{ChunkStore, MemoryStore};

fn store(c: &mut Criterion) {
    let chunks: Vec<(ChunkId, Bytes)> = (0..64u32)
        .map(|i| {
            let mut data = vec![0u8; 1 << 20];
            data[..4].copy_from_slice(&i.to_be_bytes());
            let data = Bytes::from(data);
            (ChunkId::digest(&data), data)
        })
        .collect();
    let mut g = c.benchmark_group("store_1MiB");
    g.throughput(Throughput::Bytes(1 << 20));
    g.bench_function("put_new_verified", |b| {
        let store = MemoryStore::new(1 << 40);
        let mut i = 0;
        b.iter(|| {
            let (id, data) = &chunks[i % chunks.len()];
            if i % chunks.len() == 0 {
                store.clear();
            }
            i += 1;
            black_box(store.put(*id, data.clone()).unwrap())
        })
    });
    g.bench_function("get", |b| {
        let store = MemoryStore::new(1 << 40);
        for (id, data) in &chunks {
            store.put(*id, data.clone()).unwrap();
        }
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(store.get(&chunks[i % chunks.len()].0).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
