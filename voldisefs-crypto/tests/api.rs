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
    let mut r = voldisefs_crypto::MAGIC.to_vec();
    r.extend_from_slice(&voldisefs_crypto::FORMAT_VERSION.to_be_bytes());
    r.push(0xFE);
    for v in [8u32, 1, 1] {
        r.extend_from_slice(&v.to_be_bytes());
    }
    r.resize(51, 0);
    r.push(16); // chunk size log2
    r.resize(HEADER_LEN + 12 + 16 + 40, 0);
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
        kind: voldisefs_crypto::FileKind::File,
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
            kind: voldisefs_crypto::FileKind::File,
            chunks: chunks.iter().map(|c| c.id).collect(),
        })
        .unwrap();
    assert_eq!(record.id, content_id(&record.bytes));
    let header = RecordHeader::from_record(&record.bytes).unwrap();
    assert_eq!(header.kdf_params(), KdfParams::default());
    assert_eq!(header.chunk_size(), cs);
    assert_eq!(header.format_version(), voldisefs_crypto::FORMAT_VERSION);

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

/// One Argon2id run for a batch: every file sealed with one `PasswordKey` shares the salt, yet
/// each has its own data key, wrap key and commitment, and each opens on its own.
#[test]
fn a_batch_shares_one_key_derivation() {
    use voldisefs_crypto::{FileKind, PasswordKey};

    let pw = Password::new("batch password");
    let cs = ChunkSize::MIN;
    let key = PasswordKey::derive(&pw, KdfParams::default()).unwrap();
    let seal = |data: &[u8]| {
        let sealer = FileSealer::with_key(&key, cs).unwrap();
        let chunk = sealer.seal_chunk(0, true, data).unwrap();
        let record = sealer
            .finish(&ManifestInfo {
                name: "f".into(),
                size: data.len() as u64,
                created: 0,
                kind: FileKind::File,
                chunks: vec![chunk.id],
            })
            .unwrap();
        (record, chunk)
    };
    let (a, a_chunk) = seal(b"first");
    let (b, b_chunk) = seal(b"second");
    let (ha, hb) = (
        RecordHeader::from_record(&a.bytes).unwrap(),
        RecordHeader::from_record(&b.bytes).unwrap(),
    );
    assert_eq!(ha.salt(), hb.salt());
    assert_eq!(ha.salt(), key.salt());
    assert_ne!(ha.file_nonce(), hb.file_nonce());
    assert_ne!(ha.commitment(), hb.commitment());
    assert_ne!(
        a.bytes[84..132],
        b.bytes[84..132],
        "wrapped data keys differ"
    );
    let oa = FileOpener::open(&a.id, &a.bytes, &pw).unwrap();
    let ob = FileOpener::open(&b.id, &b.bytes, &pw).unwrap();
    assert_eq!(
        &oa.open_chunk(0, a_chunk.bytes.clone()).unwrap()[..],
        b"first"
    );
    assert_eq!(&ob.open_chunk(0, b_chunk.bytes).unwrap()[..], b"second");
    // A chunk of one file of the batch never opens as the other's.
    assert!(ob.open_chunk(0, a_chunk.bytes).is_err());
    assert_ne!(
        oa.delete_key().unwrap().as_bytes(),
        ob.delete_key().unwrap().as_bytes()
    );
    // The wrong password opens neither.
    let wrong = Password::new("batch passwort");
    assert!(matches!(
        FileOpener::open(&a.id, &a.bytes, &wrong),
        Err(Error::Decrypt)
    ));
}

/// A read key opens its own file without the password, and nothing else: not another file
/// (even one of the same batch), not with one bit flipped; it gives no delete key and cannot
/// change the password.
#[test]
fn a_read_key_opens_its_file_only() {
    use voldisefs_crypto::{FileKind, PasswordKey, ReadKey};

    let pw = Password::new("link password");
    let cs = ChunkSize::MIN;
    let key = PasswordKey::derive(&pw, KdfParams::default()).unwrap();
    let seal = |data: &[u8]| {
        let sealer = FileSealer::with_key(&key, cs).unwrap();
        let chunk = sealer.seal_chunk(0, true, data).unwrap();
        let record = sealer
            .finish(&ManifestInfo {
                name: "f".into(),
                size: data.len() as u64,
                created: 0,
                kind: FileKind::File,
                chunks: vec![chunk.id],
            })
            .unwrap();
        (record, chunk, sealer.read_key().clone())
    };
    let (a, a_chunk, a_key) = seal(b"file a");
    let (b, b_chunk, b_key) = seal(b"file b");
    assert_ne!(a_key, b_key);
    // The password's opener knows the same read key.
    let by_password = FileOpener::open(&a.id, &a.bytes, &pw).unwrap();
    assert_eq!(by_password.read_key(), &a_key);

    let linked = FileOpener::open_with_read_key(&a.id, &a.bytes, &a_key).unwrap();
    assert_eq!(
        &linked.open_chunk(0, a_chunk.bytes.clone()).unwrap()[..],
        b"file a"
    );
    assert!(linked.delete_key().is_none());
    assert!(matches!(
        linked.rewrap(&Password::new("new"), KdfParams::default()),
        Err(Error::Decrypt)
    ));
    // Another file's chunk under this opener: refused.
    assert!(linked.open_chunk(0, b_chunk.bytes.clone()).is_err());
    // A's key on B's record, and every one-bit change of the key: refused.
    assert!(matches!(
        FileOpener::open_with_read_key(&b.id, &b.bytes, &a_key),
        Err(Error::Decrypt)
    ));
    for bit in 0..256 {
        let mut bytes = *a_key.as_bytes();
        bytes[bit / 8] ^= 1 << (bit % 8);
        let flipped = ReadKey::from_bytes(bytes);
        assert!(FileOpener::open_with_read_key(&a.id, &a.bytes, &flipped).is_err());
    }
    // The record must be the one the id names.
    assert!(matches!(
        FileOpener::open_with_read_key(&b.id, &a.bytes, &a_key),
        Err(Error::IdMismatch)
    ));
    let by_b = FileOpener::open_with_read_key(&b.id, &b.bytes, &b_key).unwrap();
    assert_eq!(&by_b.open_chunk(0, b_chunk.bytes).unwrap()[..], b"file b");
}

/// A "once" file's manifest carries its delete key, so a reader with only the read key can
/// burn it; a password change keeps "once" and the expiry (which the chunks carry).
#[test]
fn once_and_expiry_survive_a_password_change() {
    use voldisefs_crypto::FileKind;

    let pw = Password::new("burn");
    let sealer = FileSealer::new(&pw, KdfParams::default(), ChunkSize::MIN)
        .unwrap()
        .with_expiry(4_000_000_000)
        .once();
    let chunk = sealer.seal_chunk(0, true, b"once").unwrap();
    let record = sealer
        .finish(&ManifestInfo {
            name: "f".into(),
            size: 4,
            created: 0,
            kind: FileKind::File,
            chunks: vec![chunk.id],
        })
        .unwrap();
    let linked =
        FileOpener::open_with_read_key(&record.id, &record.bytes, sealer.read_key()).unwrap();
    assert!(linked.manifest().once());
    assert_eq!(
        linked.delete_key().unwrap().as_bytes(),
        sealer.delete_key().as_bytes()
    );
    let new_pw = Password::new("burn again");
    let moved = voldisefs_crypto::rewrap(
        &record.id,
        &record.bytes,
        &pw,
        &new_pw,
        KdfParams::default(),
    )
    .unwrap();
    let opened = FileOpener::open(&moved.id, &moved.bytes, &new_pw).unwrap();
    assert!(opened.manifest().once());
    assert_eq!(opened.expires(), 4_000_000_000);
    assert_eq!(&opened.open_chunk(0, chunk.bytes).unwrap()[..], b"once");
}
