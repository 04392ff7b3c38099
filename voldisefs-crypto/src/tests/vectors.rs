//! Rebuilds the test vector of `FORMAT.md` (including intermediate keys) and checks that the
//! document and the code agree byte for byte.

use zeroize::Zeroizing;

use crate::chunk::{chunk_aad, chunk_nonce};
use crate::keys::subkey_bytes;
use crate::manifest::encode;
use crate::{
    ChunkSize, FileOpener, FileSealer, FixedRandomness, HEADER_LEN, KdfParams, ManifestInfo,
    Password,
};

const FORMAT_MD: &str = include_str!("../../FORMAT.md");

/// The vector's inputs (also spelled out in FORMAT.md).
pub(crate) const PASSWORD: &str = "correct horse battery staple";
pub(crate) const NAME: &str = "hello.txt";
pub(crate) const CREATED: u64 = 1_700_000_000;
pub(crate) const PLAINTEXT: &[u8] = b"Hello, Voldisefs!\n";
/// The collection vector's expiry: a day after it was created.
const EXPIRES: u64 = 1_700_086_400;

/// `start, start + 1, ...`
fn seq<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start + i as u8)
}

fn fixed() -> FixedRandomness {
    FixedRandomness {
        salt: seq(0x00),
        file_nonce: seq(0x10),
        dek: seq(0x20),
        manifest_nonce: seq(0x40),
    }
}

/// Every value of the vector, in the order FORMAT.md lists them.
fn compute() -> Vec<(&'static str, Vec<u8>)> {
    let f = fixed();
    let password = Password::new(PASSWORD);
    let params = KdfParams::default();
    let chunk_size = ChunkSize::MIN;
    let sealer = FileSealer::with_fixed_randomness(&password, params, chunk_size, &f).unwrap();
    let chunk = sealer.seal_chunk(0, true, PLAINTEXT).unwrap();
    let info = ManifestInfo {
        name: NAME.into(),
        size: PLAINTEXT.len() as u64,
        created: CREATED,
        kind: crate::FileKind::File,
        chunks: vec![chunk.id],
    };
    let record = sealer.finish(&info).unwrap();
    let kek = params.derive_kek(&password, &f.salt).unwrap();
    let [
        wrap,
        commitment,
        manifest_key,
        chunk_key,
        delete_key,
        read_key,
    ] = subkey_bytes(&kek[..], &f.dek, &f.file_nonce);
    assert_eq!(sealer.delete_key().as_bytes(), &delete_key);
    assert_eq!(sealer.read_key().as_bytes(), &read_key);
    let manifest: Zeroizing<Vec<u8>> = encode(&info, chunk_size).unwrap();
    vec![
        ("salt", f.salt.to_vec()),
        ("file_nonce", f.file_nonce.to_vec()),
        ("dek", f.dek.to_vec()),
        ("manifest_nonce", f.manifest_nonce.to_vec()),
        ("kek", kek.to_vec()),
        ("wrap_key", wrap.to_vec()),
        ("commitment", commitment.to_vec()),
        ("manifest_key", manifest_key.to_vec()),
        ("chunk_key", chunk_key.to_vec()),
        ("delete_key", delete_key.to_vec()),
        ("delete_check", crate::delete_check(&delete_key).to_vec()),
        ("read_key", read_key.to_vec()),
        ("chunk0_plaintext", PLAINTEXT.to_vec()),
        ("chunk0_nonce", chunk_nonce(0, true).to_vec()),
        ("chunk0_aad", chunk_aad(&f.file_nonce, 0, true).to_vec()),
        ("chunk0", chunk.bytes.clone()),
        ("chunk0_id", chunk.id.to_vec()),
        ("manifest_plaintext", manifest.to_vec()),
        ("header", record.bytes[..HEADER_LEN].to_vec()),
        ("record", record.bytes.clone()),
        ("file_id", record.id.to_vec()),
    ]
}

/// The collection vector: a batch sharing the first vector's salt (one Argon2id run), listing
/// that file and an empty one.
fn compute_collection() -> Vec<(&'static str, Vec<u8>)> {
    let f = FixedRandomness {
        salt: seq(0x00),
        file_nonce: seq(0x50),
        dek: seq(0x60),
        manifest_nonce: seq(0x80),
    };
    let first = compute();
    let first_id: [u8; 32] = first
        .iter()
        .find(|(k, _)| *k == "file_id")
        .and_then(|(_, v)| v.clone().try_into().ok())
        .unwrap();
    let first_key: [u8; 32] = first
        .iter()
        .find(|(k, _)| *k == "read_key")
        .and_then(|(_, v)| v.clone().try_into().ok())
        .unwrap();
    let collection = crate::Collection::new(vec![
        crate::CollectionEntry {
            path: "sub dir/\u{e9}t\u{e9}.txt".into(),
            size: 0,
            file: [0xaa; 32],
            read: crate::ReadKey::from_bytes([0xbb; 32]),
        },
        crate::CollectionEntry {
            path: NAME.into(),
            size: PLAINTEXT.len() as u64,
            file: first_id,
            read: crate::ReadKey::from_bytes(first_key),
        },
    ])
    .unwrap();
    let listing = collection.encode();
    let password = Password::new(PASSWORD);
    let params = KdfParams::default();
    let chunk_size = ChunkSize::MIN;
    let sealer = FileSealer::with_fixed_randomness(&password, params, chunk_size, &f)
        .unwrap()
        .with_expiry(EXPIRES);
    let chunk = sealer.seal_chunk(0, true, &listing).unwrap();
    let info = ManifestInfo {
        name: "photos".into(),
        size: listing.len() as u64,
        created: CREATED,
        kind: crate::FileKind::Collection,
        chunks: vec![chunk.id],
    };
    let record = sealer.finish(&info).unwrap();
    let kek = params.derive_kek(&password, &f.salt).unwrap();
    let [wrap, commitment, ..] = subkey_bytes(&kek[..], &f.dek, &f.file_nonce);
    vec![
        ("file_nonce", f.file_nonce.to_vec()),
        ("dek", f.dek.to_vec()),
        ("manifest_nonce", f.manifest_nonce.to_vec()),
        ("wrap_key", wrap.to_vec()),
        ("commitment", commitment.to_vec()),
        ("listing", listing.to_vec()),
        ("chunk0", chunk.bytes.clone()),
        ("chunk0_id", chunk.id.to_vec()),
        (
            "manifest_plaintext",
            encode(&info, chunk_size).unwrap().to_vec(),
        ),
        ("record", record.bytes.clone()),
        ("collection_id", record.id.to_vec()),
    ]
}

/// `name = hex` lines of FORMAT.md's vector block.
pub(crate) fn documented() -> Vec<(String, String)> {
    block("```vector")
}

/// `name = hex` lines of the FORMAT.md block opened by `fence`.
fn block(fence: &str) -> Vec<(String, String)> {
    FORMAT_MD
        .lines()
        .skip_while(|l| *l != fence)
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn as_hex(values: Vec<(&'static str, Vec<u8>)>) -> Vec<(String, String)> {
    let computed: Vec<(String, String)> = values
        .into_iter()
        .map(|(k, v)| (k.to_owned(), hex::encode(v)))
        .collect();
    if std::env::var_os("VOLDISEFS_PRINT_VECTORS").is_some() {
        for (k, v) in &computed {
            println!("{k:<18} = {v}");
        }
    }
    computed
}

#[test]
fn format_md_vector_matches_the_code() {
    assert_eq!(documented(), as_hex(compute()));
}

#[test]
fn format_md_collection_vector_matches_the_code() {
    assert_eq!(block("```collection-vector"), as_hex(compute_collection()));
}

#[test]
fn format_md_collection_vector_opens() {
    let doc = block("```collection-vector");
    let get = |name: &str| {
        let hex = &doc.iter().find(|(k, _)| k == name).unwrap().1;
        hex::decode(hex).unwrap()
    };
    let id: [u8; 32] = get("collection_id").try_into().unwrap();
    let opener = FileOpener::open(&id, &get("record"), &Password::new(PASSWORD)).unwrap();
    assert_eq!(opener.manifest().kind(), crate::FileKind::Collection);
    let listing = opener.open_chunk(0, get("chunk0")).unwrap();
    let collection = crate::Collection::decode(&listing).unwrap();
    let paths: Vec<&str> = collection
        .entries()
        .iter()
        .map(|e| e.path.as_str())
        .collect();
    assert_eq!(paths, [NAME, "sub dir/\u{e9}t\u{e9}.txt"]);
}

#[test]
fn format_md_vector_opens() {
    let doc = documented();
    let get = |name: &str| {
        let hex = &doc.iter().find(|(k, _)| k == name).unwrap().1;
        hex::decode(hex).unwrap()
    };
    let id: [u8; 32] = get("file_id").try_into().unwrap();
    let opener = FileOpener::open(&id, &get("record"), &Password::new(PASSWORD)).unwrap();
    assert_eq!(opener.manifest().name(), NAME);
    assert_eq!(opener.manifest().created(), CREATED);
    assert_eq!(&*opener.open_chunk(0, get("chunk0")).unwrap(), PLAINTEXT);
    // The read key opens it too, without the password.
    let read = crate::ReadKey::from_bytes(get("read_key").try_into().unwrap());
    let linked = FileOpener::open_with_read_key(&id, &get("record"), &read).unwrap();
    assert_eq!(linked.manifest().name(), NAME);
    assert_eq!(&*linked.open_chunk(0, get("chunk0")).unwrap(), PLAINTEXT);
    assert!(linked.delete_key().is_none());
}
