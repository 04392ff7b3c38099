//! Every way a reader must fail closed on bad input (FORMAT.md): each yields no plaintext and
//! never panics.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::{C, CS, data, open, seal};
use crate::DeleteKeyExt as _;
use crate::kdf::{KDF_ARGON2ID, KDF_ARGON2ID_INSECURE_TEST};
use crate::{
    Error, FileOpener, FileSealer, HEADER_LEN, KdfParams, ManifestInfo, Password, RecordHeader,
    content_id,
};

fn open_record(record: &[u8], password: &str) -> crate::Result<FileOpener> {
    FileOpener::open(&content_id(record), record, &Password::new(password))
}

#[test]
fn wrong_password() {
    let s = seal("right", &data(C + 1, 1));
    for wrong in ["wrong", "", "Right", "right "] {
        assert!(matches!(
            open(&s.record.id, &s.record.bytes, wrong, s.chunk_bytes()),
            Err(Error::Decrypt)
        ));
    }
}

/// Which error a flipped header bit must give, by header field.
fn expected_for_bit(byte: usize) -> fn(&Error) -> bool {
    match byte {
        0..=5 => |e| matches!(e, Error::Unsupported { .. }), // magic, version
        6 => |e| matches!(e, Error::Unsupported { field: "kdf", .. }),
        7..=18 => |e| matches!(e, Error::MalformedHeader(_)), // test-KDF params are exact
        51 => |e| matches!(e, Error::MalformedHeader(_) | Error::Decrypt), // chunk log2
        _ => |e| matches!(e, Error::Decrypt), // salt, file nonce, commitment, wrapped DEK
    }
}

#[test]
fn every_header_bit_flip() {
    let s = seal("pw", &data(10, 2));
    let original = &s.record.bytes;
    for bit in 0..HEADER_LEN * 8 {
        let mut bad = original.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        // Under the original id the hash check refuses first.
        assert!(
            matches!(
                FileOpener::open(&s.record.id, &bad, &Password::new("pw")),
                Err(Error::IdMismatch)
            ),
            "bit {bit}"
        );
        // Under the recomputed id, the header checks, the key commitment and the AEAD tags
        // are what refuse it.
        let err = open_record(&bad, "pw").err();
        assert!(
            err.as_ref().is_some_and(expected_for_bit(bit / 8)),
            "bit {bit}: {err:?}"
        );
    }
}

#[test]
fn every_sealed_manifest_bit_flip() {
    let s = seal("pw", &data(3, 3));
    for bit in HEADER_LEN * 8..s.record.bytes.len() * 8 {
        let mut bad = s.record.bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            matches!(open_record(&bad, "pw"), Err(Error::Decrypt)),
            "bit {bit}"
        );
    }
}

#[test]
fn truncated_or_extended_record_and_header() {
    let s = seal("pw", &data(3, 4));
    let rec = &s.record.bytes;
    for len in 0..rec.len() {
        let err = open_record(&rec[..len], "pw").err();
        assert!(
            matches!(err, Some(Error::MalformedHeader(_) | Error::Decrypt)),
            "{len}: {err:?}"
        );
    }
    // A byte inserted anywhere in the header (an over-long header), or appended to the record.
    for at in (0..=HEADER_LEN).chain([rec.len()]) {
        let mut long = rec.clone();
        long.insert(at, 0);
        assert!(open_record(&long, "pw").is_err(), "{at}");
    }
    // The header parser itself takes exactly HEADER_LEN bytes.
    assert!(RecordHeader::parse(&rec[..HEADER_LEN]).is_ok());
    assert!(RecordHeader::parse(&rec[..HEADER_LEN - 1]).is_err());
    assert!(RecordHeader::parse(&rec[..HEADER_LEN + 1]).is_err());
}

/// A record whose header claims real Argon2id with the given parameters.
fn with_params(record: &[u8], m: u32, t: u32, p: u32) -> Vec<u8> {
    let mut bad = record.to_vec();
    bad[6] = KDF_ARGON2ID;
    bad[7..11].copy_from_slice(&m.to_be_bytes());
    bad[11..15].copy_from_slice(&t.to_be_bytes());
    bad[15..19].copy_from_slice(&p.to_be_bytes());
    bad
}

#[test]
fn params_below_floor_are_refused() {
    let s = seal("pw", &data(3, 5));
    for (m, t, p) in [(8, 1, 1), (19455, 3, 1), (65536, 1, 1), (65536, 3, 0)] {
        let bad = with_params(&s.record.bytes, m, t, p);
        assert!(matches!(
            open_record(&bad, "pw"),
            Err(Error::KdfParamsTooWeak { .. })
        ));
    }
}

#[test]
fn params_above_ceiling_are_refused_without_running() {
    let s = seal("pw", &data(3, 6));
    for (m, t, p) in [
        (u32::MAX, 3, 1),
        ((1 << 20) + 1, 3, 1),
        (19456, u32::MAX, 1),
        (19456, 11, 1),
        (19456, 3, 5),
        (u32::MAX, u32::MAX, u32::MAX),
    ] {
        let bad = with_params(&s.record.bytes, m, t, p);
        let start = Instant::now();
        let res = open_record(&bad, "pw");
        // Running (or even allocating for) any of these would take seconds to hours.
        assert!(start.elapsed() < Duration::from_millis(200));
        assert!(matches!(res, Err(Error::KdfParamsTooExpensive { .. })));
    }
}

#[test]
fn insecure_test_kdf_refused_by_default_builds() {
    let s = seal("pw", &data(3, 7));
    let (id, rec, pw) = (&s.record.id, &s.record.bytes, Password::new("pw"));
    assert_eq!(rec[6], KDF_ARGON2ID_INSECURE_TEST);
    assert!(matches!(
        FileOpener::open_with(id, rec, &pw, false, None),
        Err(Error::InsecureTestKdf)
    ));
    assert!(matches!(
        RecordHeader::parse_with(&rec[..HEADER_LEN], false),
        Err(Error::InsecureTestKdf)
    ));
    assert!(FileOpener::open_with(id, rec, &pw, true, None).is_ok());
}

#[test]
fn flipped_chunk_ciphertext_and_tag() {
    let s = seal("pw", &data(C + 100, 8));
    let opener = open_record(&s.record.bytes, "pw").unwrap();
    for (index, chunk) in s.chunks.iter().enumerate() {
        let index = index as u64;
        let is_final = index == 1;
        let len = chunk.bytes.len();
        // First, middle and last ciphertext bytes, and every tag bit (the expiry and delete
        // check follow the tag; see `flipped_delete_check`).
        let bits = [0, len / 2 * 8, (len - 57) * 8 + 7]
            .into_iter()
            .chain((len - 56) * 8..(len - 40) * 8);
        for bit in bits {
            let mut bad = chunk.bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(matches!(
                opener.open_chunk(index, bad.clone()),
                Err(Error::ChunkIdMismatch { .. })
            ));
            // Behind the id check, the tag refuses it too.
            assert!(matches!(
                opener
                    .chunk_cipher()
                    .open_raw(index, is_final, crate::Plaintext::new(bad)),
                Err(Error::Decrypt)
            ));
        }
    }
}

#[test]
fn flipped_delete_check() {
    let s = seal("pw", &data(100, 3));
    let opener = open_record(&s.record.bytes, "pw").unwrap();
    let chunk = &s.chunks[0].bytes;
    assert!(opener.delete_key().unwrap().authorizes(chunk));
    assert!(opener.delete_key().unwrap().authorizes(&s.record.bytes));
    for bit in (chunk.len() - 32) * 8..chunk.len() * 8 {
        let mut bad = chunk.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(!opener.delete_key().unwrap().authorizes(&bad));
        assert!(matches!(
            opener.open_chunk(0, bad),
            Err(Error::ChunkIdMismatch { .. })
        ));
    }
    // A record whose check is not its file's does not open, even under its own id.
    let mut record = s.record.bytes.clone();
    let last = record.len() - 1;
    record[last] ^= 1;
    let id = crate::content_id(&record);
    assert!(matches!(
        FileOpener::open(&id, &record, &Password::new("pw")),
        Err(Error::Decrypt)
    ));
    // Another file's key authorizes nothing of this one.
    let other = seal("pw", &data(100, 3));
    let other = open_record(&other.record.bytes, "pw").unwrap();
    assert!(!other.delete_key().unwrap().authorizes(chunk));
    assert!(!other.delete_key().unwrap().authorizes(&s.record.bytes));
}

#[test]
fn chunks_swapped_reordered_dropped_duplicated_appended() {
    let s = seal("pw", &data(3 * C + 1, 9));
    let opener = open_record(&s.record.bytes, "pw").unwrap();
    let c = s.chunk_bytes();
    let raw = |index: u64, is_final: bool, bytes: &Vec<u8>| {
        opener
            .chunk_cipher()
            .open_raw(index, is_final, crate::Plaintext::new(bytes.clone()))
    };
    // Any chunk at any other position (swap, reorder, duplicate): id check and AEAD both refuse.
    for (i, chunk) in c.iter().enumerate() {
        for j in (0..c.len()).filter(|&j| j != i) {
            assert!(matches!(
                opener.open_chunk(j as u64, chunk.clone()),
                Err(Error::ChunkIdMismatch { .. })
            ));
            assert!(matches!(raw(j as u64, j == 3, chunk), Err(Error::Decrypt)));
        }
    }
    // Dropped tail: a non-final chunk presented as the final one.
    for (i, chunk) in c.iter().enumerate().take(3) {
        assert!(matches!(raw(i as u64, true, chunk), Err(Error::Decrypt)));
    }
    // Appended after the final chunk: no such index in the manifest, and the final chunk
    // cannot pose as a later (final or non-final) one, nor as non-final in its own place.
    assert!(matches!(
        opener.open_chunk(4, c[3].clone()),
        Err(Error::InvalidChunk { .. })
    ));
    assert!(matches!(
        opener.open_chunk(u64::MAX, c[3].clone()),
        Err(Error::InvalidChunk { .. })
    ));
    assert!(raw(4, true, &c[3]).is_err());
    assert!(raw(4, false, &c[3]).is_err());
    assert!(raw(3, false, &c[3]).is_err());
    // The writer cannot list more (or fewer) chunks than the size implies.
    let sealer = FileSealer::new(&Password::new("pw"), KdfParams::insecure_test(), CS).unwrap();
    for n in [3, 5] {
        let info = ManifestInfo {
            name: String::new(),
            size: 3 * C as u64 + 1,
            created: 0,
            kind: crate::FileKind::File,
            chunks: vec![[0; 32]; n],
        };
        assert!(matches!(
            sealer.finish(&info),
            Err(Error::InvalidManifest(_))
        ));
    }
}

#[test]
fn chunk_transplanted_from_another_file_same_password() {
    let plain = data(C + 1, 10);
    let a = seal("pw", &plain);
    let b = seal("pw", &plain);
    let opener_a = open_record(&a.record.bytes, "pw").unwrap();
    for (i, chunk) in b.chunks.iter().enumerate() {
        let i = i as u64;
        assert!(matches!(
            opener_a.open_chunk(i, chunk.bytes.clone()),
            Err(Error::ChunkIdMismatch { .. })
        ));
        assert!(matches!(
            opener_a
                .chunk_cipher()
                .open_raw(i, i == 1, crate::Plaintext::new(chunk.bytes.clone())),
            Err(Error::Decrypt)
        ));
    }
}

#[test]
fn record_for_file_a_presented_as_file_b() {
    let a = seal("pw", &data(5, 11));
    let b = seal("pw", &data(5, 12));
    let pw = Password::new("pw");
    assert!(matches!(
        FileOpener::open(&b.record.id, &a.record.bytes, &pw),
        Err(Error::IdMismatch)
    ));
}

/// Hand-encodes a manifest plaintext, so inconsistent ones can be sealed validly.
fn manifest_bytes(size: u64, count: u32, ids: usize) -> Vec<u8> {
    let mut out = vec![0, 1, b'x'];
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&0u64.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // kind: file; no flags
    out.extend_from_slice(&count.to_be_bytes());
    out.extend(std::iter::repeat_n(7u8, 32 * ids));
    out
}

#[test]
fn chunk_count_inconsistent_with_size() {
    let sealer = FileSealer::new(&Password::new("pw"), KdfParams::insecure_test(), CS).unwrap();
    let c = C as u64;
    let ok = sealer
        .seal_manifest_plaintext(&manifest_bytes(c + 1, 2, 2))
        .unwrap();
    assert!(open_record(&ok.bytes, "pw").is_ok());
    for (size, count, ids) in [
        (c + 1, 1, 1),
        (c + 1, 3, 3),
        (c, 2, 2),
        (0, 0, 0),
        (0, 2, 2),
        (c + 1, 2, 3), // trailing id
        (c + 1, 2, 1), // missing id
        (u64::MAX, 1, 1),
    ] {
        let bad = sealer
            .seal_manifest_plaintext(&manifest_bytes(size, count, ids))
            .unwrap();
        assert!(
            matches!(
                open_record(&bad.bytes, "pw"),
                Err(Error::InvalidManifest(_) | Error::TooLarge { .. })
            ),
            "{size} {count} {ids}"
        );
    }
}

#[test]
fn empty_non_final_chunk() {
    let sealer = FileSealer::new(&Password::new("pw"), KdfParams::insecure_test(), CS).unwrap();
    assert!(matches!(
        sealer.seal_chunk(0, false, &[]),
        Err(Error::InvalidChunk { .. })
    ));
    assert!(sealer.seal_chunk_owned(0, false, Vec::new()).is_err());
    // Forge one anyway (bypassing the writer rules) and list it as the only chunk of an empty
    // file: the reader treats index 0 of a 1-chunk file as final, so the tag fails.
    let mut forged = Vec::new();
    sealer
        .chunk_cipher()
        .seal_raw(0, false, &mut forged)
        .unwrap();
    let mut manifest = manifest_bytes(0, 1, 0);
    manifest.extend_from_slice(&content_id(&forged));
    let record = sealer.seal_manifest_plaintext(&manifest).unwrap();
    let opener = open_record(&record.bytes, "pw").unwrap();
    assert!(matches!(opener.open_chunk(0, forged), Err(Error::Decrypt)));
    // An empty chunk in the middle of a file has the wrong length for its index.
    let s = seal("pw", &data(2 * C, 13));
    let opener = open_record(&s.record.bytes, "pw").unwrap();
    let mut empty = Vec::new();
    sealer
        .chunk_cipher()
        .seal_raw(0, false, &mut empty)
        .unwrap();
    assert!(opener.open_chunk(0, empty).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_records_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(open_record(&bytes, "pw").is_err());
        let _ = RecordHeader::from_record(&bytes);
    }

    #[test]
    fn random_header_tails_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
        // A valid-looking prefix (magic, version, test KDF) followed by noise.
        let mut bytes = crate::MAGIC.to_vec();
        bytes.extend_from_slice(&crate::FORMAT_VERSION.to_be_bytes());
        bytes.extend_from_slice(b"\xFE\x00\x00\x00\x08\x00\x00\x00\x01\x00\x00\x00\x01");
        bytes.extend_from_slice(&tail);
        prop_assert!(open_record(&bytes, "pw").is_err());
    }

    #[test]
    fn random_chunks_never_panic(
        index in 0u64..4,
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let s = seal("pw", &data(3, 14));
        let opener = open_record(&s.record.bytes, "pw").unwrap();
        prop_assert!(opener.open_chunk(index, bytes.clone()).is_err());
        prop_assert!(opener.chunk_cipher().open_raw(index, true, crate::Plaintext::new(bytes)).is_err());
    }
}

#[test]
fn a_reader_ceiling_refuses_costlier_records_before_any_kdf_run() {
    // A record at the floor's memory but one pass more than the reader allows.
    let params = KdfParams::new(crate::kdf::MIN_M_KIB, 3, 1).unwrap();
    let s = super::seal_with(&Password::new("pw"), params, CS, &data(10, 3));
    let (id, rec, pw) = (&s.record.id, &s.record.bytes, Password::new("pw"));
    let low = KdfParams::new(crate::kdf::MIN_M_KIB, 2, 1).unwrap();
    let started = Instant::now();
    let refused = FileOpener::open_limited(id, rec, &pw, &low);
    assert!(
        matches!(refused, Err(Error::KdfParamsTooExpensive { t: 3, .. })),
        "{refused:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1), "no KDF ran");
    assert!(!low.allows(&params) && params.allows(&low));
    assert!(low.max(&params).allows(&params));
    // The default ceiling (what this version writes) and a raised one both open it.
    assert!(FileOpener::open_limited(id, rec, &pw, &KdfParams::default()).is_ok());
    assert!(FileOpener::open_limited(id, rec, &pw, &low.max(&params)).is_ok());
}

#[test]
fn the_expiry_is_public_bound_and_unforgeable() {
    let sealer = FileSealer::new(&Password::new("pw"), KdfParams::insecure_test(), CS)
        .unwrap()
        .with_expiry(1_800_000_000);
    assert_eq!(sealer.expires(), 1_800_000_000);
    let chunk = sealer.seal_chunk(0, true, b"soon gone").unwrap();
    let record = sealer
        .finish(&crate::ManifestInfo {
            name: "x".into(),
            size: 9,
            created: 0,
            kind: crate::FileKind::File,
            chunks: vec![chunk.id],
        })
        .unwrap();
    // Holders read it from the bytes alone.
    assert_eq!(crate::stored_expiry(&chunk.bytes), Some(1_800_000_000));
    assert_eq!(crate::stored_expiry(&record.bytes), Some(1_800_000_000));
    assert_eq!(crate::stored_expiry(&[0; 10]), None);
    assert!(crate::expired(1_800_000_000, 1_800_000_000));
    assert!(!crate::expired(1_800_000_000, 1_799_999_999));
    assert!(!crate::expired(0, u64::MAX));
    let opener = open_record(&record.bytes, "pw").unwrap();
    assert_eq!(opener.expires(), 1_800_000_000);
    assert_eq!(
        &opener.open_chunk(0, chunk.bytes.clone()).unwrap()[..],
        b"soon gone"
    );
    // A record re-stamped with another expiry (under its new id) does not open: the manifest's
    // tag covers the expiry.
    let at = record.bytes.len() - crate::TRAILER_LEN;
    let mut later = record.bytes.clone();
    later[at..at + 8].copy_from_slice(&0u64.to_be_bytes());
    let id = crate::content_id(&later);
    assert!(matches!(
        FileOpener::open(&id, &later, &Password::new("pw")),
        Err(Error::Decrypt)
    ));
    // A chunk with another expiry is another chunk: refused against the manifest.
    let mut stamped = chunk.bytes.clone();
    let at = stamped.len() - crate::TRAILER_LEN;
    stamped[at..at + 8].copy_from_slice(&0u64.to_be_bytes());
    assert!(opener.open_chunk(0, stamped).is_err());
}
