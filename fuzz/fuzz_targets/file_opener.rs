//! `voldisefs_crypto::FileOpener::open` on arbitrary records (under their real content id, so
//! the id check is passed) with a fixed password, then `open_chunk` on arbitrary chunks; and a
//! structured seal → open round trip through the public API.
//!
//! Built with voldisefs-crypto's `insecure-test-kdf` feature: records under the insecure test
//! KDF id (Argon2id with 8 KiB, 1 pass) are accepted, so one open costs microseconds. Records
//! with real Argon2id parameters (which the fuzzer can write into a header) are opened with
//! `open_limited` under the test parameters as ceiling instead, which must refuse them before
//! running anything (else one execution could run Argon2id with 1 GiB and 10 passes).
//!
//! Input, first byte (see `voldisefs_fuzz`):
//! - 0: `[record_len: u32][record][[index: u64][len: u32][chunk]...]`: open the record; if
//!   that succeeds, check the manifest's consistency, then `open_chunk` each chunk and check a
//!   success against the manifest (id, length);
//! - 1: `SealParams`: seal a file (chunk size 64/128 KiB or 16 MiB, name, size, creation
//!   time, fixed randomness) with `FileSealer`, open it, compare the manifest, open every
//!   chunk back to the original bytes, and check that a flipped byte in the record or a chunk,
//!   a chunk at another index and a wrong password are all refused;
//! - other: the rest is a record, opened as in 0 without chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voldisefs_crypto::{
    ChunkSize, Error, FileOpener, FileSealer, KdfParams, ManifestInfo, Password, RecordHeader,
    chunk_count_for, content_id,
};
use voldisefs_fuzz::{Cursor, PASSWORD, SealParams, file_bytes};

/// Largest file mode 1 seals (a few 64 KiB chunks).
const MAX_SEALED_SIZE: u32 = 200_000;

fn open(record: &[u8], password: &Password) -> Result<FileOpener, Error> {
    let id = content_id(record);
    let real_kdf =
        matches!(RecordHeader::from_record(record), Ok(h) if !h.kdf_params().is_insecure_test());
    if real_kdf {
        let ceiling = KdfParams::insecure_test();
        let result = FileOpener::open_limited(&id, record, password, &ceiling);
        assert!(
            matches!(result, Err(Error::KdfParamsTooExpensive { .. })),
            "open_limited under the test ceiling did not refuse real Argon2id parameters: {result:?}"
        );
        return result;
    }
    let result = FileOpener::open(&id, record, password);
    // One bit off in the id is always refused, before anything else.
    let mut wrong = id;
    wrong[31] ^= 1;
    assert!(matches!(
        FileOpener::open(&wrong, record, password),
        Err(Error::IdMismatch)
    ));
    result
}

fn check_manifest(opener: &FileOpener) {
    let m = opener.manifest();
    assert_eq!(m.chunk_size(), opener.chunk_size());
    assert_eq!(opener.header().chunk_size(), opener.chunk_size());
    let count = m.chunk_count();
    assert_eq!(count, m.chunks().len() as u64);
    assert_eq!(count, chunk_count_for(m.size(), m.chunk_size()));
    let mut total = 0u64;
    for i in 0..count {
        let len = m.chunk_len(i).expect("a listed chunk has a length");
        assert!(len <= m.chunk_size().bytes());
        assert!(len > 0 || m.size() == 0, "empty chunk in a non-empty file");
        assert_eq!(m.chunk_id(i), Some(&m.chunks()[i as usize]));
        total += len as u64;
    }
    assert_eq!(total, m.size());
    assert_eq!(m.chunk_len(count), None);
    assert_eq!(m.chunk_id(count), None);
    assert_eq!(m.chunk_id(u64::MAX), None);
    assert!(m.name().len() <= voldisefs_crypto::MAX_NAME_LEN);
}

fn open_chunk_checked(opener: &FileOpener, index: u64, chunk: &[u8]) {
    let verified = opener.verify_chunk(index, chunk);
    match opener.open_chunk(index, chunk.to_vec()) {
        Ok(plain) => {
            assert!(
                verified.is_ok(),
                "open_chunk accepted what verify_chunk refused"
            );
            let m = opener.manifest();
            assert_eq!(m.chunk_id(index), Some(&content_id(chunk)));
            assert_eq!(Some(plain.len()), m.chunk_len(index));
            assert_eq!(plain.len() + voldisefs_crypto::CHUNK_OVERHEAD, chunk.len());
        }
        Err(_) => {}
    }
}

fn record_mode(record: &[u8], mut chunks: Cursor<'_>) {
    let password = Password::new(PASSWORD);
    let Ok(opener) = open(record, &password) else {
        return;
    };
    check_manifest(&opener);
    while !chunks.is_empty() {
        let index = chunks.u64();
        let len = chunks.u32() as usize;
        open_chunk_checked(&opener, index, chunks.bytes(len));
    }
}

fn seal_mode(p: &SealParams) {
    let password = Password::new(PASSWORD);
    let chunk_size = ChunkSize::from_log2(p.chunk_log2()).expect("chunk size in range");
    let size = p.size % (MAX_SEALED_SIZE + 1);
    let data = file_bytes(size as usize, p.data_seed);
    let sealer = FileSealer::with_fixed_randomness(
        &password,
        KdfParams::insecure_test(),
        chunk_size,
        &p.fixed(),
    )
    .expect("sealer");
    let count = chunk_count_for(u64::from(size), chunk_size);
    let mut sealed = Vec::new();
    if data.is_empty() {
        sealed.push(sealer.seal_chunk(0, true, &[]).expect("empty chunk"));
    }
    for (i, piece) in data.chunks(chunk_size.bytes()).enumerate() {
        let i = i as u64;
        sealed.push(
            sealer
                .seal_chunk(i, i + 1 == count, piece)
                .expect("seal chunk"),
        );
    }
    assert_eq!(sealed.len() as u64, count);
    let name = String::from_utf8_lossy(&p.name).into_owned();
    let info = ManifestInfo {
        name: name.clone(),
        size: u64::from(size),
        created: p.created,
        kind: voldisefs_crypto::FileKind::File,
        chunks: sealed.iter().map(|c| c.id).collect(),
    };
    let record = match sealer.finish(&info) {
        Ok(record) => record,
        Err(Error::InvalidManifest(_)) => {
            assert!(
                name.len() > voldisefs_crypto::MAX_NAME_LEN,
                "finish refused {info:?}"
            );
            return;
        }
        Err(e) => panic!("finish failed: {e:?}"),
    };
    assert_eq!(record.id, content_id(&record.bytes));
    let opener = FileOpener::open(&record.id, &record.bytes, &password).expect("open own record");
    check_manifest(&opener);
    let m = opener.manifest();
    assert_eq!(m.name(), name);
    assert_eq!(m.size(), u64::from(size));
    assert_eq!(m.created(), p.created);
    assert_eq!(m.chunks(), &info.chunks[..]);
    let mut back = Vec::new();
    for (i, chunk) in sealed.iter().enumerate() {
        back.extend_from_slice(
            &opener
                .open_chunk(i as u64, chunk.bytes.clone())
                .expect("open chunk"),
        );
    }
    assert_eq!(back, data, "chunks did not open to the sealed bytes");

    // Tampering: one flipped byte in the record (under its new id, so the id check passes).
    let mut bad = record.bytes.clone();
    let at = p.tamper as usize % bad.len();
    bad[at] ^= 1 << (p.tamper >> 29);
    assert!(
        FileOpener::open(&content_id(&bad), &bad, &password).is_err(),
        "tampered record at {at} opened"
    );
    // A chunk at another index, and a flipped chunk byte (same id check: refused before AEAD).
    let k = (p.tamper as usize / 7) % sealed.len();
    if sealed.len() > 1 {
        let other = (k + 1) % sealed.len();
        assert!(
            opener
                .open_chunk(other as u64, sealed[k].bytes.clone())
                .is_err()
        );
    }
    let mut flipped = sealed[k].bytes.clone();
    if !flipped.is_empty() {
        let at = p.tamper as usize % flipped.len();
        flipped[at] ^= 0x80;
        assert!(opener.open_chunk(k as u64, flipped).is_err());
    }
    // A wrong password is refused (as Decrypt, like any forgery).
    assert!(matches!(
        FileOpener::open(
            &record.id,
            &record.bytes,
            &Password::new("not the password")
        ),
        Err(Error::Decrypt)
    ));
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor(data);
    match c.u8() {
        0 => {
            let len = c.u32() as usize;
            let record = c.bytes(len);
            record_mode(record, c);
        }
        1 => seal_mode(&SealParams::parse(c)),
        _ => record_mode(c.rest(), Cursor(&[])),
    }
});
