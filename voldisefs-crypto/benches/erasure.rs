//! Reed-Solomon throughput on one sealed 1 MiB chunk (FORMAT.md section 8): `reed-solomon-simd`
//! (Leopard-RS, GF(2^16)), which [`Stripe`] uses, beside `reed-solomon-erasure` (GF(2^8),
//! built with its `simd-accel` C kernels), for the shard counts a file may ask for; then
//! [`Stripe::encode`] and [`Stripe::join`] (with one data shard missing) themselves: cutting,
//! padding, BLAKE3 of every shard and of the descriptor, copies.
//!
//! The chunk is `1 MiB + 16` bytes of body (ciphertext and tag) and its 40-byte trailer; every
//! throughput is counted in bytes of body. The codec rows use the same payloads (the body cut
//! into K zero-padded, even-length pieces) and reuse their encoder, decoder or matrix across
//! iterations; "decode" restores two lost data shards from two parity shards. Run with
//! `cargo bench -p voldisefs-crypto --bench erasure` (about 70 seconds on 2 cores).
// `criterion_group!` defines an undocumented `pub fn`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use reed_solomon_erasure::galois_8;
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};
use voldisefs_crypto::Stripe;

/// Sealed chunk body: a 1 MiB chunk's ciphertext and its 16-byte tag.
const BODY_LEN: usize = (1 << 20) + 16;
/// Expiry and delete check.
const TRAILER_LEN: usize = 40;
/// (K, M) pairs measured.
const SHAPES: [(u8, u8); 4] = [(4, 2), (8, 4), (10, 4), (16, 16)];

/// A sealed chunk: `BODY_LEN` bytes that look random, then a trailer.
fn sealed_chunk() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out: Vec<u8> = (0..BODY_LEN)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    out.extend_from_slice(&[0xd7; TRAILER_LEN]);
    out
}

/// The body cut into `k` payloads of the stripe's length (even, at least 16, the last ones
/// zero-padded), as `Stripe::encode` cuts it.
fn payloads(body: &[u8], k: usize) -> Vec<Vec<u8>> {
    let len = body.len().div_ceil(k);
    let len = (len + (len & 1)).max(16);
    (0..k)
        .map(|i| {
            let start = (i * len).min(body.len());
            let end = ((i + 1) * len).min(body.len());
            let mut p = body[start..end].to_vec();
            p.resize(len, 0);
            p
        })
        .collect()
}

fn erasure(c: &mut Criterion) {
    let sealed = sealed_chunk();
    let body = &sealed[..BODY_LEN];
    for (k8, m8) in SHAPES {
        let (k, m) = (usize::from(k8), usize::from(m8));
        let data = payloads(body, k);
        let len = data[0].len();
        let mut g = c.benchmark_group(format!("rs_{k}+{m}"));
        g.throughput(Throughput::Bytes(BODY_LEN as u64));

        // reed-solomon-simd: one encoder and one decoder, reset per run (as `encode` and
        // `decode` do, minus their allocation).
        let mut encoder = ReedSolomonEncoder::new(k, m, len).unwrap();
        let simd_parity: Vec<Vec<u8>> = {
            for p in &data {
                encoder.add_original_shard(p).unwrap();
            }
            let result = encoder.encode().unwrap();
            result.recovery_iter().map(<[u8]>::to_vec).collect()
        };
        g.bench_function("encode/simd", |b| {
            b.iter(|| {
                encoder.reset(k, m, len).unwrap();
                for p in &data {
                    encoder.add_original_shard(black_box(p)).unwrap();
                }
                let result = encoder.encode().unwrap();
                black_box(result.recovery(0));
            })
        });
        let mut decoder = ReedSolomonDecoder::new(k, m, len).unwrap();
        let simd_decode = |decoder: &mut ReedSolomonDecoder| {
            decoder.reset(k, m, len).unwrap();
            for (i, p) in data.iter().enumerate().skip(2) {
                decoder.add_original_shard(i, black_box(p)).unwrap();
            }
            for (i, p) in simd_parity.iter().enumerate().take(2) {
                decoder.add_recovery_shard(i, black_box(p)).unwrap();
            }
        };
        simd_decode(&mut decoder);
        {
            let result = decoder.decode().unwrap();
            assert_eq!(result.restored_original(0), Some(&data[0][..]));
            assert_eq!(result.restored_original(1), Some(&data[1][..]));
        }
        g.bench_function("decode/simd", |b| {
            b.iter(|| {
                simd_decode(&mut decoder);
                let result = decoder.decode().unwrap();
                black_box(result.restored_original(1));
            })
        });

        // reed-solomon-erasure: one codec (matrix and its decode-matrix cache) for all runs.
        let codec = galois_8::ReedSolomon::new(k, m).unwrap();
        let mut parity = vec![vec![0u8; len]; m];
        codec.encode_sep(&data, &mut parity).unwrap();
        g.bench_function("encode/erasure", |b| {
            b.iter(|| {
                codec.encode_sep(black_box(&data), &mut parity).unwrap();
                black_box(&parity);
            })
        });
        let mut shards: Vec<Option<Vec<u8>>> =
            data.iter().chain(&parity).cloned().map(Some).collect();
        shards[0] = None;
        shards[1] = None;
        {
            let mut s = shards.clone();
            codec.reconstruct_data(&mut s).unwrap();
            assert_eq!(s[0].as_deref(), Some(&data[0][..]));
            assert_eq!(s[1].as_deref(), Some(&data[1][..]));
        }
        g.bench_function("decode/erasure", |b| {
            b.iter_batched_ref(
                || shards.clone(),
                |s| codec.reconstruct_data(black_box(s)).unwrap(),
                BatchSize::LargeInput,
            )
        });

        // The crate's own path: cut, pad, encode, append trailers, BLAKE3 every shard and the
        // descriptor; join with one data shard missing (decode, then concatenate).
        g.bench_function("Stripe::encode", |b| {
            b.iter(|| black_box(Stripe::encode(k8, m8, black_box(&sealed)).unwrap()))
        });
        let encoded = Stripe::encode(k8, m8, &sealed).unwrap();
        let stripe = Stripe::parse(&encoded.descriptor).unwrap();
        let mut present: Vec<Option<Vec<u8>>> = encoded.shards.into_iter().map(Some).collect();
        present[0] = None;
        assert_eq!(stripe.join(&present).unwrap(), sealed);
        g.bench_function("Stripe::join", |b| {
            b.iter(|| black_box(stripe.join(black_box(&present)).unwrap()))
        });
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = erasure
}
criterion_main!(benches);
