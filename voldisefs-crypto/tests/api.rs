//! The public API as a downstream crate sees it, in default builds and with the
//! `insecure-test-kdf` feature.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use voldisefs_crypto::{
    ChunkSize, Error, FileOpener, FileSealer, HEADER_LEN, KdfParams, ManifestInfo, Password,
    RecordHeader, chunk_count_for, content_id,
};

/// A record whose header names the insecure test KDF (m = 8, t = 1, p = 1) and whose other
/// fields are zeros: well-formed up to the KDF check, garbage after it.
fn insecure_kdf_record() -> Vec<u8> {
    let mut r = b"VDFS\x00\x02\xFE".to_vec();
    for v in [8u32, 1, 1] {
        r.extend_from_slice(&v.to_be_bytes());
    }
    r.resize(51, 0);
    r.push(16); // chunk size log2
    r.resize(HEADER_LEN + 12 + 16 + 32, 0);
    r
}

#[cfg(not(feature = "insecure-test-kdf"))]
#[test]
fn default_build_refuses_insecure_test_kdf() {
    let record = insecure_kdf_record();
    assert!(matches!(
        RecordHeader::from_record(&record),
        Err(Error::InsecureTestKdf)
    ));
    let res = FileOpener::open(&content_id(&record), &record, &Password::new("pw"));
    assert!(matches!(res, Err(Error::InsecureTestKdf)));
}

#[cfg(feature = "insecure-test-kdf")]
#[test]
fn feature_build_accepts_insecure_test_kdf() {
    let record = insecure_kdf_record();
    let header = RecordHeader::from_record(&record).unwrap();
    assert!(header.kdf_params().is_insecure_test());
    // It gets as far as the key commitment, which garbage fails.
    let res = FileOpener::open(&content_id(&record), &record, &Password::new("pw"));
    assert!(matches!(res, Err(Error::Decrypt)));

    // And the fast parameters seal and open a real file.
    let pw = Password::new("pw");
    let sealer = FileSealer::new(&pw, KdfParams::insecure_test(), ChunkSize::MIN).unwrap();
    let chunk = sealer.seal_chunk(0, true, b"abc").unwrap();
    let info = ManifestInfo {
        name: "a".into(),
        size: 3,
        created: 0,
        chunks: vec![chunk.id],
    };
    let record = sealer.finish(&info).unwrap();
    let opener = FileOpener::open(&record.id, &record.bytes, &pw).unwrap();
    assert_eq!(&opener.open_chunk(0, chunk.bytes).unwrap()[..], b"abc");
}

#[test]
fn default_params_round_trip_and_errors() {
    let pw = Password::new(String::from("s3cret"));
    let cs = ChunkSize::MIN;
    let data: Vec<u8> = (0..cs.bytes() * 2 + 5).map(|i| (i * 31) as u8).collect();
    let sealer = FileSealer::new(&pw, KdfParams::default(), cs).unwrap();
    let count = chunk_count_for(data.len() as u64, cs);
    assert_eq!(count, 3);
    let chunks: Vec<_> = data
        .chunks(cs.bytes())
        .enumerate()
        .map(|(i, p)| {
            sealer
                .seal_chunk(i as u64, i as u64 + 1 == count, p)
                .unwrap()
        })
        .collect();
    assert_eq!(chunks[2].bytes.len(), 5 + voldisefs_crypto::CHUNK_OVERHEAD);
    let record = sealer
        .finish(&ManifestInfo {
            name: "data.bin".into(),
            size: data.len() as u64,
            created: 42,
            chunks: chunks.iter().map(|c| c.id).collect(),
        })
        .unwrap();
    assert_eq!(record.id, content_id(&record.bytes));
    let header = RecordHeader::from_record(&record.bytes).unwrap();
    assert_eq!(header.kdf_params(), KdfParams::default());
    assert_eq!(header.chunk_size(), cs);
    assert_eq!(header.format_version(), 2);

    let opener = FileOpener::open(&record.id, &record.bytes, &pw).unwrap();
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        opener.verify_chunk(i as u64, &c.bytes).unwrap();
        out.extend_from_slice(&opener.open_chunk(i as u64, c.bytes.clone()).unwrap());
    }
    assert_eq!(out, data);

    let wrong = FileOpener::open(&record.id, &record.bytes, &Password::new("S3cret"));
    let err = wrong.err().unwrap();
    assert!(matches!(err, Error::Decrypt));
    assert_eq!(err.to_string(), "wrong password or corrupted data");
    assert!(matches!(
        FileOpener::open(&[0; 32], &record.bytes, &pw),
        Err(Error::IdMismatch)
    ));
    assert!(matches!(
        opener.open_chunk(1, chunks[0].bytes.clone()),
        Err(Error::ChunkIdMismatch { index: 1 })
    ));
}

#[test]
fn secrets_do_not_debug() {
    let pw = Password::new("hunter2");
    assert_eq!(format!("{pw:?}"), "Password(..)");
    let sealer = FileSealer::new(&pw, KdfParams::default(), ChunkSize::default()).unwrap();
    assert!(!format!("{sealer:?}").contains("hunter2"));
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<FileSealer>();
    check::<FileOpener>();
    check::<Password>();
    check::<Error>();
    check::<RecordHeader>();
}
