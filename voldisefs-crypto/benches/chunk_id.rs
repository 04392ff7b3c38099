//! Chunk ids: BLAKE3 (what the format uses since version 4, the `blake3` crate,
//! single-threaded, through [`voldisefs_crypto::content_id`]) against SHA-256 (what versions up
//! to 3 used, through `ring`), over chunk-sized inputs, side by side in one run. Every node
//! hashes every chunk it stores or serves once, so this was the largest primitive on the data
//! path (issue 15, point 3).
//!
//! ```sh
//! cargo bench -p voldisefs-crypto --bench chunk_id
//! ```
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn ids(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk_id");
    for len in [64 * 1024usize, 1024 * 1024] {
        let chunk = vec![0x5au8; len];
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("sha256", len), &chunk, |b, chunk| {
            b.iter(|| ring::digest::digest(&ring::digest::SHA256, chunk));
        });
        group.bench_with_input(BenchmarkId::new("blake3", len), &chunk, |b, chunk| {
            b.iter(|| voldisefs_crypto::content_id(chunk));
        });
    }
    group.finish();
}

criterion_group!(benches, ids);
criterion_main!(benches);
