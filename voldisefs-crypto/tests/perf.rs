//! Throughput target: sealing a 1 MiB chunk *including* its BLAKE3 id runs at >= 80% of raw
//! ring AES-256-GCM + BLAKE3 over the same bytes (and opening likewise). Timing-dependent, so
//! ignored by default; run it optimised:
//! `cargo test -p voldisefs-crypto --release --test perf -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use voldisefs_crypto::{ChunkSize, FileOpener, FileSealer, KdfParams, ManifestInfo, Password};

const MIB: usize = 1 << 20;
const ROUNDS: usize = 9;
const ITERS: usize = 20;

/// Median over `ROUNDS` of the time `ITERS` calls of `f` take.
fn median(mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ITERS {
                f();
            }
            start.elapsed()
        })
        .collect();
    times.sort();
    times[ROUNDS / 2]
}

#[test]
#[ignore = "timing; run with --release -- --ignored"]
fn sealing_and_opening_keep_up_with_raw_ring() {
    let plain = vec![0x5Au8; MIB];
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap());
    let mut raw_buf = Vec::with_capacity(MIB + 16);
    raw_buf.extend_from_slice(&plain);
    let raw = median(|| {
        raw_buf.truncate(MIB);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from([0u8; 31]),
            &mut raw_buf,
        )
        .unwrap();
        std::hint::black_box(blake3::hash(&raw_buf));
    });

    let pw = Password::new("pw");
    let sealer = FileSealer::new(&pw, KdfParams::default(), ChunkSize::default()).unwrap();
    let ours = median(|| {
        std::hint::black_box(sealer.seal_chunk(0, true, &plain).unwrap());
    });
    let seal_ratio = raw.as_secs_f64() / ours.as_secs_f64();

    let chunk = sealer.seal_chunk(0, true, &plain).unwrap();
    let info = ManifestInfo {
        name: String::new(),
        size: MIB as u64,
        created: 0,
        kind: voldisefs_crypto::FileKind::File,
        chunks: vec![chunk.id],
    };
    let record = sealer.finish(&info).unwrap();
    let opener = FileOpener::open(&record.id, &record.bytes, &pw).unwrap();
    // Opening consumes its buffer: give both sides one fresh copy per call.
    let raw_open = median(|| {
        let mut buf = chunk.bytes.clone();
        std::hint::black_box(blake3::hash(&buf));
        let _ = key.open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from([0u8; 31]),
            &mut buf,
        );
    });
    let ours_open = median(|| {
        std::hint::black_box(opener.open_chunk(0, chunk.bytes.clone()).unwrap());
    });
    let open_ratio = raw_open.as_secs_f64() / ours_open.as_secs_f64();
    let mibps = |d: Duration| (ITERS as f64) / d.as_secs_f64();
    println!(
        "seal: raw {:.0} MiB/s, ours {:.0} MiB/s, ratio {seal_ratio:.2}; \
         open: raw {:.0} MiB/s, ours {:.0} MiB/s, ratio {open_ratio:.2}",
        mibps(raw),
        mibps(ours),
        mibps(raw_open),
        mibps(ours_open)
    );
    assert!(seal_ratio >= 0.8, "sealing too slow: {seal_ratio:.2}");
    assert!(open_ratio >= 0.8, "opening too slow: {open_ratio:.2}");
}
