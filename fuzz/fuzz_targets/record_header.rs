//! `voldisefs_crypto::RecordHeader::parse` and `RecordHeader::from_record` on arbitrary bytes.
//!
//! Checked: no panic; `parse` accepts exactly `HEADER_LEN` bytes; `from_record` agrees with
//! `parse` of the first `HEADER_LEN` bytes whenever the record is long enough to hold a sealed
//! manifest and refuses shorter ones; an accepted header reports the fields stored at their
//! documented offsets (magic, version, KDF id and costs, chunk size) and only accepted values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voldisefs_crypto::{
    ChunkSize, FORMAT_VERSION, HEADER_LEN, KDF_ARGON2ID, KDF_ARGON2ID_INSECURE_TEST, MAGIC,
    MAX_M_KIB, MAX_P, MAX_T, MIN_M_KIB, MIN_P, MIN_T, RecordHeader, TAG_LEN, TRAILER_LEN,
};

/// The sealed manifest's nonce (`MANIFEST_NONCE_LEN`, crate-private) in front of its tag.
const MANIFEST_NONCE_LEN: usize = 12;

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn check_accepted(h: &RecordHeader, b: &[u8]) {
    assert_eq!(b.len(), HEADER_LEN);
    assert_eq!(b[..4], MAGIC);
    assert_eq!(u16::from_be_bytes([b[4], b[5]]), FORMAT_VERSION);
    assert_eq!(h.format_version(), FORMAT_VERSION);
    let k = h.kdf_params();
    assert_eq!(k.m_kib(), be_u32(b, 7));
    assert_eq!(k.t(), be_u32(b, 11));
    assert_eq!(k.p(), be_u32(b, 15));
    match b[6] {
        KDF_ARGON2ID => {
            assert!(!k.is_insecure_test());
            assert!((MIN_M_KIB..=MAX_M_KIB).contains(&k.m_kib()), "{k:?}");
            assert!((MIN_T..=MAX_T).contains(&k.t()), "{k:?}");
            assert!((MIN_P..=MAX_P).contains(&k.p()), "{k:?}");
        }
        KDF_ARGON2ID_INSECURE_TEST => assert!(k.is_insecure_test()),
        other => panic!("header with KDF id {other:#x} accepted"),
    }
    let cs = h.chunk_size();
    assert_eq!(cs.log2(), b[51]);
    assert!((ChunkSize::MIN_LOG2..=ChunkSize::MAX_LOG2).contains(&cs.log2()));
    assert_eq!(cs.bytes(), 1usize << cs.log2());
}

fuzz_target!(|data: &[u8]| {
    let parsed = RecordHeader::parse(data);
    match &parsed {
        Ok(h) => check_accepted(h, data),
        Err(_) => {}
    }
    if data.len() != HEADER_LEN {
        assert!(parsed.is_err(), "parse accepted {} bytes", data.len());
    }

    let from_record = RecordHeader::from_record(data);
    if data.len() < HEADER_LEN + MANIFEST_NONCE_LEN + TAG_LEN + TRAILER_LEN {
        assert!(
            from_record.is_err(),
            "from_record accepted {} bytes",
            data.len()
        );
    } else {
        let head = RecordHeader::parse(&data[..HEADER_LEN]);
        match (&from_record, &head) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
            _ => panic!("from_record {from_record:?} but parse of its head {head:?}"),
        }
        if let Ok(h) = &from_record {
            check_accepted(h, &data[..HEADER_LEN]);
        }
    }
});
