//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/` from the public
//! API only, so the seeds follow any change of the wire or record format:
//!
//! ```text
//! cd fuzz && cargo run --release --bin gen_corpus
//! ```
//!
//! Deterministic (fixed randomness, insecure test KDF): rerunning it rewrites identical files
//! unless a format changed. Seeds are named `seed-<what>`; files libFuzzer adds are not touched.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Encoder;
use voldisefs_crypto::{
    ChunkSize, Collection, CollectionEntry, FileSealer, FixedRandomness, KdfParams, ManifestInfo,
    Password, ReadKey, chunk_count_for,
};
use voldisefs_fuzz::{
    NoiseOp, PASSWORD, SealParams, file_bytes, frame_codec_input, opener_record_input,
    push_noise_op,
};
use voldisefs_proto::{
    ChunkId, ChunkProof, DeleteKey, ErrorCode, Frame, FrameCodec, Message, NodeId,
    PROTOCOL_VERSION, PeerInfo, ProofDigest, ProofNonce,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn corpus_dir(target: &str) -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir)?;
    // Replace our own seeds; leave anything else (inputs found by fuzzing) alone.
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("seed-"))
        {
            fs::remove_file(path)?;
        }
    }
    Ok(dir)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    fs::write(dir.join(format!("seed-{name}")), bytes)?;
    Ok(())
}

fn encode(frame: Frame) -> Result<Vec<u8>> {
    let mut out = BytesMut::new();
    FrameCodec::new().encode(frame, &mut out)?;
    Ok(out.to_vec())
}

/// One frame of every message kind (with a body where the message carries one).
fn sample_frames() -> Result<Vec<(&'static str, Vec<u8>)>> {
    let body = Bytes::from_static(b"sealed chunk bytes: AES-GCM ciphertext and tag");
    let chunk = ChunkId::digest(&body);
    let node: NodeId = "42424242-4242-4242-4242-424242424242".parse()?;
    let peer = PeerInfo {
        id: node,
        addr: "[::1]:7000".parse()?,
    };
    let frames = vec![
        (
            "hello",
            Frame::new(
                1,
                Message::Hello {
                    version: PROTOCOL_VERSION,
                    node_id: node,
                    listen_addr: "127.0.0.1:7000".parse()?,
                },
            ),
        ),
        ("get_peers", Frame::new(2, Message::GetPeers)),
        ("peers", Frame::new(2, Message::Peers { peers: vec![peer] })),
        ("ping", Frame::new(3, Message::Ping)),
        ("pong", Frame::new(3, Message::Pong)),
        (
            "put_chunk",
            Frame::with_body(4, Message::PutChunk { chunk }, body.clone()),
        ),
        ("put_ok", Frame::new(4, Message::PutOk { chunk })),
        ("get_chunk", Frame::new(5, Message::GetChunk { chunk })),
        (
            "chunk",
            Frame::with_body(5, Message::Chunk { chunk }, body.clone()),
        ),
        (
            "has_chunks",
            Frame::new(
                6,
                Message::HasChunks {
                    chunks: vec![chunk, chunk],
                },
            ),
        ),
        (
            "have",
            Frame::new(
                6,
                Message::Have {
                    present: vec![true, false],
                },
            ),
        ),
        (
            "prove_chunks",
            Frame::new(
                7,
                Message::ProveChunks {
                    nonce: ProofNonce::from_bytes([7; 32]),
                    chunks: vec![chunk],
                },
            ),
        ),
        (
            "proofs",
            Frame::new(
                7,
                Message::Proofs {
                    proofs: vec![
                        ChunkProof::Held {
                            proof: ProofDigest::from_bytes([9; 32]),
                        },
                        ChunkProof::Missing,
                        ChunkProof::Deleted {
                            key: DeleteKey::from_bytes([10; 32]),
                        },
                    ],
                },
            ),
        ),
        (
            "delete_chunks",
            Frame::new(
                8,
                Message::DeleteChunks {
                    key: DeleteKey::from_bytes([11; 32]),
                    chunks: vec![chunk],
                },
            ),
        ),
        ("leave", Frame::new(9, Message::Leave { node_id: node })),
        ("ack", Frame::new(9, Message::Ack)),
        (
            "error",
            Frame::new(
                u64::MAX,
                Message::error(
                    ErrorCode::BadRequest,
                    "non-ASCII \u{e9}\u{1F600} \"quoted\"\n",
                ),
            ),
        ),
    ];
    frames
        .into_iter()
        .map(|(name, frame)| Ok((name, encode(frame)?)))
        .collect()
}

fn frame_codec(frames: &[(&str, Vec<u8>)]) -> Result<()> {
    let dir = corpus_dir("frame_codec")?;
    let mut all = Vec::new();
    for (name, wire) in frames {
        write(&dir, name, &frame_codec_input(0, 0, wire))?;
        all.extend_from_slice(wire);
    }
    // Every frame back to back, in one read and in reads of 1..=7 and 1..=200 bytes.
    write(&dir, "all", &frame_codec_input(0, 0, &all))?;
    write(&dir, "all-split7", &frame_codec_input(0, 7, &all))?;
    write(&dir, "all-split200", &frame_codec_input(0, 200, &all))?;
    // Under a 100-byte cap (index 4): some frames fit, the peers list does not.
    write(&dir, "all-cap100", &frame_codec_input(4, 13, &all))?;
    // A frame that announces 16 MiB and sends a few bytes; one announcing more than the cap.
    let mut big = (16u32 << 20).to_be_bytes().to_vec();
    big.extend_from_slice(&[0, 0, 0, 2, b'{', b'}']);
    write(&dir, "announce-16MiB", &frame_codec_input(0, 3, &big))?;
    write(&dir, "announce-4GiB", &frame_codec_input(0, 0, &[0xff; 8]))?;
    // A truncated frame (stream ends in the middle).
    let (_, hello) = &frames[0];
    write(
        &dir,
        "truncated",
        &frame_codec_input(0, 5, &hello[..hello.len() - 3]),
    )?;
    Ok(())
}

fn noise_framing(frames: &[(&str, Vec<u8>)]) -> Result<()> {
    let dir = corpus_dir("noise_framing")?;
    let find = |name: &str| {
        frames
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, w)| w.clone())
            .ok_or("missing sample frame")
    };
    // Mode 3 (handshake + hello done by the harness): one request per message.
    for name in [
        "ping",
        "get_peers",
        "get_chunk",
        "put_chunk",
        "has_chunks",
        "leave",
    ] {
        let mut input = vec![3u8];
        push_noise_op(&mut input, NoiseOp::Encrypt, &find(name)?);
        write(&dir, &format!("hello-then-{name}"), &input)?;
    }
    // A put_chunk frame cut across three messages, then a ping in one.
    let put = find("put_chunk")?;
    let mut input = vec![3u8];
    for piece in put.chunks(put.len() / 3 + 1) {
        push_noise_op(&mut input, NoiseOp::Encrypt, piece);
    }
    push_noise_op(&mut input, NoiseOp::Encrypt, &find("ping")?);
    write(&dir, "hello-then-split-put", &input)?;
    // Two frames in one message; a tampered message; a skipped nonce; a forged length.
    let mut two = find("ping")?;
    two.extend_from_slice(&find("get_peers")?);
    let mut input = vec![3u8];
    push_noise_op(&mut input, NoiseOp::Encrypt, &two);
    write(&dir, "hello-then-two-in-one", &input)?;
    let mut input = vec![3u8];
    let mut tampered = vec![5u8];
    tampered.extend_from_slice(&find("ping")?);
    push_noise_op(&mut input, NoiseOp::Tamper, &tampered);
    write(&dir, "hello-then-tampered", &input)?;
    let mut input = vec![3u8];
    push_noise_op(&mut input, NoiseOp::SkipNonce, &find("ping")?);
    write(&dir, "hello-then-skipped-nonce", &input)?;
    let mut input = vec![3u8];
    push_noise_op(&mut input, NoiseOp::Raw, &[0x00, 0x05, 1, 2, 3, 4, 5]);
    write(&dir, "hello-then-short-message", &input)?;
    // Mode 2 (no hello): a request before hello, and a hello for another node's id.
    let mut input = vec![2u8];
    push_noise_op(&mut input, NoiseOp::Encrypt, &find("ping")?);
    write(&dir, "no-hello-ping", &input)?;
    let mut input = vec![2u8];
    push_noise_op(&mut input, NoiseOp::Encrypt, &find("hello")?);
    write(&dir, "hello-for-another-id", &input)?;
    // Mode 1: a forged third handshake message; mode 0: raw bytes before any handshake.
    write(
        &dir,
        "forged-handshake-3",
        &[&[1u8, 0, 64][..], &[0xab; 64]].concat(),
    )?;
    write(
        &dir,
        "raw-handshake-32",
        &[&[0u8, 0, 32][..], &[0x11; 32]].concat(),
    )?;
    write(&dir, "raw-handshake-too-long", &[0u8, 0xff, 0xff, 1, 2, 3])?;
    Ok(())
}

fn fixed(seed: u8) -> FixedRandomness {
    FixedRandomness {
        salt: [seed; 16],
        file_nonce: [seed.wrapping_add(1); 16],
        dek: [seed.wrapping_add(2); 32],
        manifest_nonce: [seed.wrapping_add(3); 12],
    }
}

/// A sealed file (insecure test KDF): its record and chunks.
fn seal(
    size: usize,
    chunk_size: ChunkSize,
    name: &str,
    seed: u8,
) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let password = Password::new(PASSWORD);
    let sealer = FileSealer::with_fixed_randomness(
        &password,
        KdfParams::insecure_test(),
        chunk_size,
        &fixed(seed),
    )?;
    let data = file_bytes(size, seed);
    let count = chunk_count_for(size as u64, chunk_size);
    let mut chunks = Vec::new();
    if data.is_empty() {
        chunks.push(sealer.seal_chunk(0, true, &[])?);
    }
    for (i, piece) in data.chunks(chunk_size.bytes()).enumerate() {
        let i = i as u64;
        chunks.push(sealer.seal_chunk(i, i + 1 == count, piece)?);
    }
    let record = sealer.finish(&ManifestInfo {
        name: name.into(),
        size: size as u64,
        created: 1_700_000_000,
        kind: voldisefs_crypto::FileKind::File,
        chunks: chunks.iter().map(|c| c.id).collect(),
    })?;
    Ok((record.bytes, chunks.into_iter().map(|c| c.bytes).collect()))
}

fn crypto() -> Result<()> {
    let small = ChunkSize::MIN;
    let (record_small, chunks_small) = seal(1000, small, "notes.txt", 1)?;
    let (record_empty, chunks_empty) = seal(0, small, "", 2)?;
    let (record_two, chunks_two) = seal(70_000, small, "two chunks \u{e9}.bin", 3)?;

    let dir = corpus_dir("record_header")?;
    write(
        &dir,
        "header-insecure-kdf",
        &record_small[..voldisefs_crypto::HEADER_LEN],
    )?;
    write(&dir, "record-insecure-kdf", &record_empty)?;
    // A header with the real default Argon2id parameters (runs Argon2id once, ~64 MiB).
    let real = FileSealer::with_fixed_randomness(
        &Password::new(PASSWORD),
        KdfParams::default(),
        ChunkSize::default(),
        &fixed(9),
    )?
    .finish(&ManifestInfo {
        name: "real".into(),
        size: 0,
        created: 0,
        kind: voldisefs_crypto::FileKind::File,
        chunks: vec![[0u8; 32]],
    })?;
    write(
        &dir,
        "header-argon2id-default",
        &real.bytes[..voldisefs_crypto::HEADER_LEN],
    )?;
    write(&dir, "record-argon2id-default", &real.bytes)?;

    let dir = corpus_dir("file_opener")?;
    let refs = |chunks: &[Vec<u8>]| -> Vec<(u64, Vec<u8>)> {
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| (i as u64, c.clone()))
            .collect()
    };
    for (name, record, chunks) in [
        ("record-1000B", &record_small, refs(&chunks_small)),
        ("record-empty", &record_empty, refs(&chunks_empty)),
        ("record-70000B-2-chunks", &record_two, refs(&chunks_two)),
    ] {
        let chunks: Vec<(u64, &[u8])> = chunks.iter().map(|(i, c)| (*i, &c[..])).collect();
        write(&dir, name, &opener_record_input(record, &chunks))?;
    }
    // The two chunks swapped (must be refused), and a record alone (mode 2).
    let swapped = [(0u64, &chunks_two[1][..]), (1, &chunks_two[0][..])];
    write(
        &dir,
        "record-70000B-swapped",
        &opener_record_input(&record_two, &swapped),
    )?;
    write(&dir, "record-only", &[&[2u8][..], &record_small].concat())?;
    write(
        &dir,
        "record-argon2id-default",
        &[&[2u8][..], &real.bytes].concat(),
    )?;
    // Mode 1: structured seal → open round trips.
    for (name, p) in [
        (
            "seal-small",
            SealParams {
                size: 1000,
                name: b"a.txt".to_vec(),
                ..Default::default()
            },
        ),
        (
            "seal-empty",
            SealParams {
                size: 0,
                log2: 1,
                ..Default::default()
            },
        ),
        (
            "seal-3-chunks",
            SealParams {
                size: 150_000,
                created: u64::MAX,
                name: "\u{1F600}".repeat(10).into_bytes(),
                data_seed: 7,
                tamper: 0xdead_beef,
                randomness: [0x5a; 76],
                ..Default::default()
            },
        ),
        (
            "seal-long-name",
            SealParams {
                size: 65_536,
                name: vec![b'n'; 4097],
                ..Default::default()
            },
        ),
    ] {
        write(&dir, name, &p.to_input())?;
    }
    Ok(())
}

/// Collection listings: valid ones (empty, nested, unicode) and ones a reader must refuse.
fn collection() -> Result<()> {
    let dir = corpus_dir("collection")?;
    let entry = |path: &str, size: u64, n: u8| CollectionEntry {
        path: path.into(),
        size,
        file: [n; 32],
        read: ReadKey::from_bytes([n ^ 0xff; 32]),
    };
    let valid = [
        ("empty", Vec::new()),
        ("one", vec![entry("a.txt", 5, 1)]),
        (
            "nested",
            vec![
                entry("album/cover.jpg", 70_000, 2),
                entry("album/sub dir/\u{e9}t\u{e9}.txt", 0, 3),
                entry("album/sub dir/deep/x", u64::from(u32::MAX), 4),
            ],
        ),
    ];
    for (name, entries) in valid {
        write(&dir, name, &Collection::new(entries)?.encode())?;
    }
    // Hand-encoded (a hostile writer's): traversal, absolute, duplicate, clash, disorder.
    let raw = |paths: &[&str]| {
        let mut out = (paths.len() as u32).to_be_bytes().to_vec();
        for path in paths {
            out.extend_from_slice(&(path.len() as u16).to_be_bytes());
            out.extend_from_slice(path.as_bytes());
            out.extend_from_slice(&1u64.to_be_bytes());
            out.extend_from_slice(&[9; 32]);
            out.extend_from_slice(&[10; 32]);
        }
        out
    };
    for (name, paths) in [
        ("traversal", &["../x"][..]),
        ("absolute", &["/etc/passwd"]),
        ("duplicate", &["a", "a"]),
        ("clash", &["a", "a/b"]),
        ("disorder", &["b", "a"]),
    ] {
        write(&dir, name, &raw(paths))?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let frames = sample_frames()?;
    frame_codec(&frames)?;
    noise_framing(&frames)?;
    crypto()?;
    collection()?;
    println!(
        "seed corpus written under {}/corpus",
        env!("CARGO_MANIFEST_DIR")
    );
    Ok(())
}
