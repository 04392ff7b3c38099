//! Round trips: boundary sizes, random sizes, parallel sealing, password change.

use proptest::prelude::*;

use super::{C, CS, data, open, seal, seal_with};
use crate::{
    CHUNK_OVERHEAD, ChunkSize, FileOpener, FileSealer, KdfParams, MAX_CHUNKS, Password,
    chunk_count_for, content_id, rewrap,
};

fn round_trip(len: usize, seed: u64) {
    let plain = data(len, seed);
    let sealed = seal("pw", &plain);
    let count = chunk_count_for(len as u64, CS);
    assert_eq!(sealed.chunks.len() as u64, count);
    assert_eq!(sealed.record.id, content_id(&sealed.record.bytes));
    for (i, c) in sealed.chunks.iter().enumerate() {
        assert_eq!(c.id, content_id(&c.bytes));
        let expect = if i as u64 + 1 == count {
            len - i * C
        } else {
            C
        };
        assert_eq!(c.bytes.len(), expect + CHUNK_OVERHEAD);
    }
    let opener = FileOpener::open(
        &sealed.record.id,
        &sealed.record.bytes,
        &Password::new("pw"),
    )
    .unwrap();
    let m = opener.manifest();
    assert_eq!(m.name(), "test file.bin");
    assert_eq!(m.size(), len as u64);
    assert_eq!(m.created(), 1_700_000_000);
    assert_eq!(m.chunk_size(), CS);
    assert_eq!(m.chunk_count(), count);
    assert_eq!(
        m.chunks(),
        sealed.chunks.iter().map(|c| c.id).collect::<Vec<_>>()
    );
    let out = open(
        &sealed.record.id,
        &sealed.record.bytes,
        "pw",
        sealed.chunk_bytes(),
    )
    .unwrap();
    assert_eq!(out, plain);
}

#[test]
fn boundary_sizes() {
    for len in [0, 1, C - 1, C, C + 1, 2 * C, 3 * C, 3 * C + 7] {
        round_trip(len, len as u64);
    }
}

#[test]
fn empty_file_is_one_empty_final_chunk() {
    let sealed = seal("pw", &[]);
    assert_eq!(sealed.chunks.len(), 1);
    assert_eq!(sealed.chunks[0].bytes.len(), CHUNK_OVERHEAD);
}

#[test]
fn default_params_and_default_chunk_size() {
    let plain = data((1 << 20) + 3, 42);
    let pw = Password::new("a real password");
    let sealed = seal_with(&pw, KdfParams::default(), ChunkSize::default(), &plain);
    assert_eq!(sealed.chunks.len(), 2);
    let opener = FileOpener::open(&sealed.record.id, &sealed.record.bytes, &pw).unwrap();
    assert_eq!(opener.header().kdf_params(), KdfParams::default());
    assert_eq!(opener.chunk_size(), ChunkSize::default());
    let mut out = Vec::new();
    for (i, c) in sealed.chunks.into_iter().enumerate() {
        out.extend_from_slice(&opener.open_chunk(i as u64, c.bytes).unwrap());
    }
    assert_eq!(out, plain);
}

#[test]
fn owned_sealing_matches_borrowed_sealing() {
    let sealer = FileSealer::new(&Password::new("pw"), KdfParams::insecure_test(), CS).unwrap();
    let plain = data(C, 1);
    let a = sealer.seal_chunk(4, false, &plain).unwrap();
    let mut roomy = Vec::with_capacity(C + CHUNK_OVERHEAD);
    roomy.extend_from_slice(&plain);
    let ptr = roomy.as_ptr();
    let b = sealer.seal_chunk_owned(4, false, roomy).unwrap();
    assert_eq!(b.bytes.as_ptr(), ptr, "sealed in place, no reallocation");
    assert_eq!(a, b);
    assert_eq!(sealer.seal_chunk_owned(4, false, plain).unwrap(), a);
}

#[test]
fn parallel_out_of_order_sealing_and_opening() {
    let plain = data(5 * C + 9, 3);
    let pw = Password::new("pw");
    let sealer = FileSealer::new(&pw, KdfParams::insecure_test(), CS).unwrap();
    let pieces: Vec<&[u8]> = plain.chunks(C).collect();
    let count = pieces.len();
    let mut sealed: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..count)
            .rev()
            .map(|i| {
                let (sealer, piece) = (&sealer, pieces[i]);
                s.spawn(move || {
                    (
                        i,
                        sealer.seal_chunk(i as u64, i + 1 == count, piece).unwrap(),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    sealed.sort_by_key(|(i, _)| *i);
    let record = sealer
        .finish(&crate::ManifestInfo {
            name: String::new(),
            size: plain.len() as u64,
            created: 0,
            kind: crate::FileKind::File,
            chunks: sealed.iter().map(|(_, c)| c.id).collect(),
        })
        .unwrap();
    let opener = FileOpener::open(&record.id, &record.bytes, &pw).unwrap();
    let opened: Vec<crate::Plaintext> = std::thread::scope(|s| {
        let handles: Vec<_> = sealed
            .into_iter()
            .map(|(i, c)| {
                let opener = &opener;
                s.spawn(move || opener.open_chunk(i as u64, c.bytes).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        opened
            .iter()
            .flat_map(|p| p.iter().copied())
            .collect::<Vec<u8>>(),
        plain
    );
}

#[test]
fn rewrap_changes_password_keeps_chunks() {
    let plain = data(2 * C + 5, 9);
    let sealed = seal("old", &plain);
    let (id, record) = (&sealed.record.id, &sealed.record.bytes);
    let new = rewrap(
        id,
        record,
        &Password::new("old"),
        &Password::new("new"),
        KdfParams::insecure_test(),
    )
    .unwrap();
    assert_ne!(new.id, *id);
    assert_eq!(new.id, content_id(&new.bytes));
    // Same chunks, new password.
    assert_eq!(
        open(&new.id, &new.bytes, "new", sealed.chunk_bytes()).unwrap(),
        plain
    );
    assert!(matches!(
        open(&new.id, &new.bytes, "old", sealed.chunk_bytes()),
        Err(crate::Error::Decrypt)
    ));
    // The old record is unchanged and still opens with the old password.
    assert_eq!(
        open(id, record, "old", sealed.chunk_bytes()).unwrap(),
        plain
    );
    // A wrong old password cannot rewrap.
    assert!(matches!(
        rewrap(
            id,
            record,
            &Password::new("x"),
            &Password::new("y"),
            KdfParams::insecure_test()
        ),
        Err(crate::Error::Decrypt)
    ));
}

#[test]
fn same_file_twice_shares_nothing() {
    let plain = data(2 * C + 1, 5);
    let a = seal("pw", &plain);
    let b = seal("pw", &plain);
    assert_ne!(a.record.id, b.record.id);
    for ca in &a.chunks {
        assert!(b.chunks.iter().all(|cb| cb.id != ca.id));
    }
    // Salt, file nonce, commitment, wrapped DEK and sealed manifest all differ.
    let (ra, rb) = (&a.record.bytes, &b.record.bytes);
    for range in [19..35, 35..51, 52..84, 84..132, 132..ra.len()] {
        assert_ne!(ra[range.clone()], rb[range]);
    }
    // Ciphertexts look independent: about 1/256 of bytes agree by chance.
    let same = a.chunks[0]
        .bytes
        .iter()
        .zip(&b.chunks[0].bytes)
        .filter(|(x, y)| x == y)
        .count();
    assert!(same < C / 64, "{same} equal bytes");
}

#[test]
fn types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<FileSealer>();
    check::<FileOpener>();
    check::<Password>();
    check::<crate::Error>();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn whole_files_of_random_size(len in 0usize..=4 * C + 1, seed: u64) {
        round_trip(len, seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn single_chunks(index in 0..MAX_CHUNKS, len in 1usize..=C, full: bool, seed: u64) {
        let sealer =
            FileSealer::new(&Password::new("pw"), KdfParams::insecure_test(), CS).unwrap();
        // A non-final chunk is always full; a final one may be short.
        let (len, is_final) = if full { (C, false) } else { (len, true) };
        let plain = data(len, seed);
        let chunk = sealer.seal_chunk(index, is_final, &plain).unwrap();
        prop_assert_eq!(chunk.id, content_id(&chunk.bytes));
        let opened = sealer
            .chunk_cipher()
            .open_raw(index, is_final, crate::Plaintext::new(chunk.bytes.clone()))
            .unwrap();
        prop_assert_eq!(&*opened, &plain);
        prop_assert!(sealer
            .chunk_cipher()
            .open_raw(index ^ 1, is_final, crate::Plaintext::new(chunk.bytes.clone()))
            .is_err());
        prop_assert!(sealer
            .chunk_cipher()
            .open_raw(index, !is_final, crate::Plaintext::new(chunk.bytes))
            .is_err());
    }
}
