//! Chunk sealing and opening (with the BLAKE3 chunk id) beside raw ring AES-256-GCM plus a bare
//! BLAKE3 hash (`blake3::hash`, which is all [`content_id`] is) over the same bytes, so the
//! format's overhead shows as a ratio; the KDF at its default parameters; and a random nonce
//! from `voldisefs_proto::entropy` (every native draw) beside ring's `SystemRandom`.
//!
//! Run with `cargo bench --bench crypto`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use voldisefs::crypto::{
    ChunkSize, FileOpener, FileSealer, KdfParams, ManifestInfo, Password, content_id,
};

const SIZES: [(usize, &str); 3] = [(64 << 10, "64KiB"), (1 << 20, "1MiB"), (4 << 20, "4MiB")];

fn raw_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap())
}

fn sealing(c: &mut Criterion) {
    let password = Password::new("bench");
    for (size, label) in SIZES {
        let chunk_size = ChunkSize::from_bytes(size as u64).unwrap();
        // The real KDF runs once here, outside the measurements.
        let sealer = FileSealer::new(&password, KdfParams::default(), chunk_size).unwrap();
        let plaintext = vec![0x5au8; size];
        let sealed = sealer.seal_chunk(0, true, &plaintext).unwrap();
        let record = sealer
            .finish(&ManifestInfo {
                name: "bench".into(),
                size: size as u64,
                created: 0,
                kind: voldisefs_crypto::FileKind::File,
                chunks: vec![sealed.id],
            })
            .unwrap();
        let opener = FileOpener::open(&record.id, &record.bytes, &password).unwrap();
        let key = raw_key();

        let mut g = c.benchmark_group(format!("chunk_{label}"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function("raw_aes256gcm_seal+blake3", |b| {
            let mut buf = Vec::with_capacity(size + 16);
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(&plaintext);
                let nonce = Nonce::assume_unique_for_key([0u8; 12]);
                key.seal_in_place_append_tag(nonce, Aad::from(&[0u8; 33]), &mut buf)
                    .unwrap();
                black_box(content_id(&buf));
            })
        });
        g.bench_function("voldisefs_seal_chunk", |b| {
            b.iter(|| black_box(sealer.seal_chunk(0, true, black_box(&plaintext)).unwrap()))
        });
        g.bench_function("raw_blake3+aes256gcm_open", |b| {
            let sealed_raw = {
                let mut buf = plaintext.clone();
                let nonce = Nonce::assume_unique_for_key([0u8; 12]);
                key.seal_in_place_append_tag(nonce, Aad::from(&[0u8; 33]), &mut buf)
                    .unwrap();
                buf
            };
            b.iter_batched(
                || sealed_raw.clone(),
                |mut buf| {
                    black_box(content_id(&buf));
                    let nonce = Nonce::assume_unique_for_key([0u8; 12]);
                    let n = key
                        .open_in_place(nonce, Aad::from(&[0u8; 33]), &mut buf)
                        .unwrap()
                        .len();
                    black_box(n);
                    buf
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function("voldisefs_open_chunk", |b| {
            b.iter_batched(
                || sealed.bytes.clone(),
                |buf| black_box(opener.open_chunk(0, buf).unwrap()),
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

fn kdf(c: &mut Criterion) {
    let password = Password::new("bench");
    let mut g = c.benchmark_group("kdf");
    g.sample_size(10);
    g.bench_function("argon2id_default_m64MiB_t3_p1", |b| {
        b.iter(|| {
            black_box(
                FileSealer::new(&password, KdfParams::default(), ChunkSize::default()).unwrap(),
            )
        })
    });
    g.finish();
}

/// One nonce (12 bytes) and one key (32 bytes) from the workspace's source of random bytes
/// (the `getrandom` crate) beside ring's generator, which it replaced.
fn entropy(c: &mut Criterion) {
    use ring::rand::SecureRandom;
    let mut g = c.benchmark_group("entropy");
    let ring = ring::rand::SystemRandom::new();
    for len in [12usize, 32] {
        let mut buf = vec![0u8; len];
        g.bench_function(format!("voldisefs_proto_entropy_{len}B"), |b| {
            b.iter(|| voldisefs::proto::entropy::fill(black_box(&mut buf)).unwrap())
        });
        g.bench_function(format!("ring_system_random_{len}B"), |b| {
            b.iter(|| ring.fill(black_box(&mut buf)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, sealing, kdf, entropy);
criterion_main!(benches);
