//! Checks the test vectors in `FORMAT.md` through the public API: they open in every build,
//! and with the `insecure-test-kdf` feature (which provides `FileSealer::with_fixed_randomness`)
//! the records are rebuilt byte for byte. The stripe vector (section 8) is rebuilt in every
//! build; `--nocapture` prints it in FORMAT.md's layout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use voldisefs_crypto::{
    FileOpener, Password, ReadKey, RecordHeader, Redundancy, Stripe, content_id,
};

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

/// The `name = hex` lines of the FORMAT.md block opened by `fence`, in order (any other line
/// in the block fails the test).
fn block(fence: &str) -> Vec<(String, String)> {
    FORMAT_MD
        .lines()
        .skip_while(|l| *l != fence)
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| {
            let (k, v) = l
                .split_once(" = ")
                .unwrap_or_else(|| panic!("not a `name = hex` line in {fence}: {l:?}"));
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

/// One value of the block opened by `fence`.
fn block_value(fence: &str, name: &str) -> Vec<u8> {
    let doc = block(fence);
    let (_, hex) = doc
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("{name} missing from {fence}"));
    hex::decode(hex).unwrap()
}

/// Prints `values` in FORMAT.md's layout (shown with `--nocapture`) and returns them as hex.
fn as_hex(fence: &str, values: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    println!("{fence}");
    let computed: Vec<(String, String)> = values
        .iter()
        .map(|(k, v)| (k.clone(), hex::encode(v)))
        .collect();
    for (k, v) in &computed {
        println!("{k:<18} = {v}");
    }
    println!("```");
    computed
}

const STRIPE_FENCE: &str = "```stripe-vector";
const RS_FILE_FENCE: &str = "```rs-file-vector";
const RS: Redundancy = Redundancy::ErasureCoded { data: 4, parity: 2 };

/// Section 8's stripe: section 6's chunk cut as `rs:4+2`. Every shard's payload and id, then
/// the descriptor and the stripe id.
fn stripe_vector() -> Vec<(String, Vec<u8>)> {
    let Redundancy::ErasureCoded { data, parity } = RS else {
        unreachable!()
    };
    let encoded = Stripe::encode(data, parity, &vector("chunk0")).unwrap();
    let mut out = Vec::new();
    for (i, shard) in encoded.shards.iter().enumerate() {
        // index (1) || payload || trailer (40)
        let (payload, trailer) = shard[1..].split_at(shard.len() - 41);
        assert_eq!(
            usize::from(shard[0]),
            i,
            "every shard starts with its index"
        );
        assert_eq!(
            trailer,
            &vector("chunk0")[34..],
            "every shard ends with the chunk's trailer"
        );
        out.push((format!("shard{i}_payload"), payload.to_vec()));
        out.push((format!("shard{i}_id"), content_id(shard).to_vec()));
    }
    out.push(("descriptor".into(), encoded.descriptor.clone()));
    out.push(("stripe_id".into(), encoded.id.to_vec()));
    out
}

/// Section 8's erasure-coded file: the manifest plaintext of section 6's file with redundancy
/// `rs:4+2`, built here by hand from the layout of section 4.
fn rs_manifest_plaintext(stripe_id: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&9u16.to_be_bytes());
    m.extend_from_slice(b"hello.txt");
    m.extend_from_slice(&18u64.to_be_bytes());
    m.extend_from_slice(&1_700_000_000u64.to_be_bytes());
    m.push(0); // kind: file
    m.push(0x02); // flags: redundancy
    m.extend_from_slice(&[1, 4, 2]); // rs:4+2
    m.extend_from_slice(&1u32.to_be_bytes());
    m.extend_from_slice(stripe_id);
    m
}

/// Shard object `i` of the stripe vector as FORMAT.md builds it: `i || payload || trailer`.
fn documented_shard(stripe: &Stripe, i: usize) -> Vec<u8> {
    let mut object = vec![u8::try_from(i).unwrap()];
    object.extend_from_slice(&block_value(STRIPE_FENCE, &format!("shard{i}_payload")));
    object.extend_from_slice(stripe.trailer());
    object
}

#[test]
fn documented_stripe_is_rebuilt() {
    let computed = stripe_vector();
    assert_eq!(block(STRIPE_FENCE), as_hex(STRIPE_FENCE, &computed));

    // The documented objects fit together: parse, check each shard, and lose any two.
    let descriptor = block_value(STRIPE_FENCE, "descriptor");
    let stripe = Stripe::parse(&descriptor).unwrap();
    assert_eq!(
        &stripe.id()[..],
        &block_value(STRIPE_FENCE, "stripe_id")[..]
    );
    assert_eq!(stripe.redundancy(), RS);
    assert_eq!(stripe.to_bytes(), descriptor);
    let chunk = vector("chunk0");
    assert_eq!(stripe.chunk_len(), chunk.len());
    assert_eq!(&stripe.trailer()[..], &chunk[34..]);
    let shards: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let object = documented_shard(&stripe, i);
            // ceil(34 / 4) = 9, rounded up to even: 10, raised to the 16-byte minimum.
            assert_eq!(object.len(), 1 + 16 + 40);
            assert_eq!(object.len(), stripe.shard_object_len());
            assert!(stripe.check_shard(i, &object));
            object
        })
        .collect();
    // Data shards: the body in order, the last ones zero-padded.
    let body: Vec<u8> = shards[..4].iter().flat_map(|s| s[1..17].to_vec()).collect();
    assert_eq!(&body[..34], &chunk[..34]);
    assert_eq!(&body[34..], &[0; 30]);
    for a in 0..6 {
        for b in a..6 {
            let mut present: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
            present[a] = None;
            present[b] = None;
            assert_eq!(stripe.join(&present).unwrap(), chunk, "lost {a} and {b}");
        }
    }
}

#[test]
fn documented_rs_file_opens() {
    let stripe_id = block_value(STRIPE_FENCE, "stripe_id");
    assert_eq!(
        block_value(RS_FILE_FENCE, "manifest_plaintext"),
        rs_manifest_plaintext(&stripe_id)
    );
    let record = block_value(RS_FILE_FENCE, "record");
    let id: [u8; 32] = block_value(RS_FILE_FENCE, "file_id").try_into().unwrap();
    assert_eq!(content_id(&record), id);
    // Same DEK and file nonce as section 6: its read key opens this record too.
    let read = ReadKey::from_bytes(vector("read_key").try_into().unwrap());
    let opener = FileOpener::open_with_read_key(&id, &record, &read).unwrap();
    let m = opener.manifest();
    assert_eq!((m.name(), m.size()), ("hello.txt", 18));
    assert_eq!(m.redundancy(), Some(RS));
    assert!(m.is_striped());
    assert_eq!(m.chunks(), &[<[u8; 32]>::try_from(stripe_id).unwrap()]);
    // The chunk joined from its shards is section 6's chunk; its id is not the listed one (a
    // stripe id), so only the AEAD tag vouches for it.
    let descriptor = block_value(STRIPE_FENCE, "descriptor");
    let stripe = Stripe::parse(&descriptor).unwrap();
    let mut present: Vec<Option<Vec<u8>>> =
        (0..6).map(|i| Some(documented_shard(&stripe, i))).collect();
    present[1] = None;
    present[2] = None;
    let chunk = stripe.join(&present).unwrap();
    assert_eq!(chunk, vector("chunk0"));
    opener.verify_chunk(0, &chunk).unwrap();
    assert_eq!(
        &opener.open_chunk(0, chunk).unwrap()[..],
        b"Hello, Voldisefs!\n"
    );
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

#[cfg(feature = "insecure-test-kdf")]
#[test]
fn documented_rs_file_is_rebuilt() {
    use voldisefs_crypto::{ChunkSize, FileSealer, FixedRandomness, KdfParams, ManifestInfo};

    // Section 6's randomness but a manifest nonce of its own: the manifest key is the same.
    let fixed = FixedRandomness {
        salt: vector("salt").try_into().unwrap(),
        file_nonce: vector("file_nonce").try_into().unwrap(),
        dek: vector("dek").try_into().unwrap(),
        manifest_nonce: block_value(RS_FILE_FENCE, "manifest_nonce")
            .try_into()
            .unwrap(),
    };
    let sealer = FileSealer::with_fixed_randomness(
        &Password::new(PASSWORD),
        KdfParams::default(),
        ChunkSize::MIN,
        &fixed,
    )
    .unwrap()
    .with_redundancy(RS);
    let chunk = sealer.seal_chunk(0, true, b"Hello, Voldisefs!\n").unwrap();
    assert_eq!(
        chunk.bytes,
        vector("chunk0"),
        "redundancy does not change the chunk"
    );
    let Redundancy::ErasureCoded { data, parity } = RS else {
        unreachable!()
    };
    let stripe = Stripe::encode(data, parity, &chunk.bytes).unwrap();
    let record = sealer
        .finish(&ManifestInfo {
            name: "hello.txt".into(),
            size: 18,
            created: 1_700_000_000,
            kind: voldisefs_crypto::FileKind::File,
            chunks: vec![stripe.id],
        })
        .unwrap();
    let computed = vec![
        ("manifest_nonce".to_owned(), fixed.manifest_nonce.to_vec()),
        (
            "manifest_plaintext".to_owned(),
            rs_manifest_plaintext(&stripe.id),
        ),
        ("record".to_owned(), record.bytes.clone()),
        ("file_id".to_owned(), record.id.to_vec()),
    ];
    assert_eq!(block(RS_FILE_FENCE), as_hex(RS_FILE_FENCE, &computed));
    // With the password too.
    let opener = FileOpener::open(&record.id, &record.bytes, &Password::new(PASSWORD)).unwrap();
    assert_eq!(opener.manifest().redundancy(), Some(RS));
}
