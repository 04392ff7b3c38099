//! Checks the test vector in `FORMAT.md` through the public API: it opens in every build, and
//! with the `insecure-test-kdf` feature (which provides `FileSealer::with_fixed_randomness`)
//! it is rebuilt byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use voldisefs_crypto::{FileOpener, Password, RecordHeader, content_id};

const FORMAT_MD: &str = include_str!("../FORMAT.md");

fn vector(name: &str) -> Vec<u8> {
    let line = FORMAT_MD
        .lines()
        .skip_while(|l| !l.starts_with("```vector"))
        .take_while(|l| !l.starts_with("```") || l.starts_with("```vector"))
        .filter_map(|l| l.split_once(" = "))
        .find(|(k, _)| k.trim() == name)
        .unwrap_or_else(|| panic!("{name} missing from FORMAT.md"));
    hex::decode(line.1.trim()).unwrap()
}

const PASSWORD: &str = "correct horse battery staple";

#[test]
fn documented_vector_opens() {
    let record = vector("record");
    let id: [u8; 32] = vector("file_id").try_into().unwrap();
    assert_eq!(content_id(&record), id);
    assert_eq!(content_id(&vector("chunk0")), &vector("chunk0_id")[..]);
    let header = RecordHeader::from_record(&record).unwrap();
    assert_eq!(header.chunk_size().bytes(), 65536);
    assert_eq!(header.kdf_params().m_kib(), 65536);
    let opener = FileOpener::open(&id, &record, &Password::new(PASSWORD)).unwrap();
    let m = opener.manifest();
    assert_eq!(
        (m.name(), m.size(), m.created()),
        ("hello.txt", 18, 1_700_000_000)
    );
    assert_eq!(
        m.chunks(),
        &[<[u8; 32]>::try_from(vector("chunk0_id")).unwrap()]
    );
    let plain = opener.open_chunk(0, vector("chunk0")).unwrap();
    assert_eq!(&plain[..], &vector("chunk0_plaintext")[..]);
    assert_eq!(&plain[..], b"Hello, Voldisefs!\n");
}

#[cfg(feature = "insecure-test-kdf")]
#[test]
fn documented_vector_is_rebuilt() {
    use voldisefs_crypto::{ChunkSize, FileSealer, FixedRandomness, KdfParams, ManifestInfo};

    let fixed = FixedRandomness {
        salt: vector("salt").try_into().unwrap(),
        file_nonce: vector("file_nonce").try_into().unwrap(),
        dek: vector("dek").try_into().unwrap(),
        manifest_nonce: vector("manifest_nonce").try_into().unwrap(),
    };
    let sealer = FileSealer::with_fixed_randomness(
        &Password::new(PASSWORD),
        KdfParams::default(),
        ChunkSize::MIN,
        &fixed,
    )
    .unwrap();
    let chunk = sealer.seal_chunk(0, true, b"Hello, Voldisefs!\n").unwrap();
    assert_eq!(chunk.bytes, vector("chunk0"));
    assert_eq!(&chunk.id[..], &vector("chunk0_id")[..]);
    let record = sealer
        .finish(&ManifestInfo {
            name: "hello.txt".into(),
            size: 18,
            created: 1_700_000_000,
            kind: voldisefs_crypto::FileKind::File,
            chunks: vec![chunk.id],
        })
        .unwrap();
    assert_eq!(record.bytes, vector("record"));
    assert_eq!(&record.id[..], &vector("file_id")[..]);
}
