//! Voldisefs crypto: password KDF, key schedule, chunk and manifest sealing, delete keys,
//! collections (format v4).
//!
//! Argon2id turns a password into a key-encryption key (KEK); HKDF-SHA256 derives from it a
//! wrap key and a key commitment. A random per-file data key (DEK), wrapped under the wrap key,
//! feeds HKDF-SHA256 subkeys for the manifest and the chunks. Chunks are sealed with
//! AES-256-GCM under STREAM-style counter nonces (index and final flag), so they cannot be
//! reordered, dropped, truncated, extended or moved between files undetected. The manifest
//! record starts with a fixed-size versioned header; the key commitment is checked in constant
//! time before any decryption. The exact byte layout is in this crate's `FORMAT.md`.
//!
//! # Ids
//!
//! Every id is a raw BLAKE3 digest (`[u8; 32]`) of stored bytes: a ChunkId is the BLAKE3 of a
//! sealed chunk, a FileId the BLAKE3 of a sealed record ([`content_id`]). Anyone can verify
//! them without keys; [`FileOpener::open`] and [`FileOpener::open_chunk`] always do.
//!
//! # Streaming and threads
//!
//! [`FileSealer`] and [`FileOpener`] are `Send + Sync` and work through `&self`: seal or open
//! chunks as they stream past, on any number of threads, never holding the whole file. Argon2id
//! (in [`FileSealer::new`], [`FileOpener::open`] and [`rewrap`]) is synchronous and slow by
//! design: run it on a blocking thread.
//!
//! # Example
//!
//! ```
//! use voldisefs_crypto::{
//!     ChunkSize, FileKind, FileOpener, FileSealer, KdfParams, ManifestInfo, Password,
//!     chunk_count_for,
//! };
//!
//! # fn main() -> Result<(), voldisefs_crypto::Error> {
//! let password = Password::new("correct horse battery staple");
//! let data = vec![7u8; 100_000];
//! let chunk_size = ChunkSize::from_bytes(64 * 1024)?;
//!
//! // Writer: seal chunk by chunk (possibly in parallel), then the manifest record.
//! let sealer = FileSealer::new(&password, KdfParams::default(), chunk_size)?;
//! let count = chunk_count_for(data.len() as u64, chunk_size);
//! let mut stored = Vec::new();
//! for (i, piece) in data.chunks(chunk_size.bytes()).enumerate() {
//!     let i = i as u64;
//!     stored.push(sealer.seal_chunk(i, i + 1 == count, piece)?);
//! }
//! let record = sealer.finish(&ManifestInfo {
//!     name: "notes.txt".into(),
//!     size: data.len() as u64,
//!     created: 1_700_000_000,
//!     kind: FileKind::File,
//!     chunks: stored.iter().map(|c| c.id).collect(),
//! })?;
//!
//! // Reader: the file id and the password are all it needs.
//! let opener = FileOpener::open(&record.id, &record.bytes, &password)?;
//! assert_eq!(opener.manifest().name(), "notes.txt");
//! let mut out = Vec::new();
//! for (i, chunk) in stored.into_iter().enumerate() {
//!     out.extend_from_slice(&opener.open_chunk(i as u64, chunk.bytes)?);
//! }
//! assert_eq!(out, data);
//!
//! // Every stored object ends with the file's delete check: only the file's delete key (which
//! // a reader derives) lets a holder erase it.
//! use voldisefs_crypto::DeleteKeyExt as _;
//! assert!(opener.delete_key().is_some_and(|key| key.authorizes(&record.bytes)));
//! assert!(!voldisefs_crypto::DeleteKey::from_bytes([0; 32]).authorizes(&record.bytes));
//!
//! // A wrong password is indistinguishable from tampering.
//! let wrong = FileOpener::open(&record.id, &record.bytes, &Password::new("guess"));
//! assert!(matches!(wrong, Err(voldisefs_crypto::Error::Decrypt)));
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `insecure-test-kdf`: enables `KdfParams::insecure_test` (Argon2id with tiny costs,
//!   recorded under its own KDF id) and accepts records that use it, plus
//!   `FileSealer::with_fixed_randomness` for test vectors. Default builds refuse such records
//!   with [`Error::InsecureTestKdf`]. Enable it only from `[dev-dependencies]`.

#[cfg(all(target_arch = "wasm32", feature = "browser"))]
pub mod browser;
mod chunk;
pub mod client;
mod collection;
mod delete;
mod error;
mod external;
mod header;
mod kdf;
mod kek_cache;
mod keys;
mod manifest;
mod opener;
mod password;
mod plaintext;
mod primitives;
mod read_key;
mod redundancy;
mod sealer;
mod stripe;
#[cfg(test)]
mod tests;

pub use chunk::{ChunkSize, MAX_CHUNKS, MAX_FILE_SIZE, SealedChunk, chunk_count_for};
pub use collection::{
    Collection, CollectionEntry, MAX_COLLECTION_LEN, MAX_ENTRIES as MAX_COLLECTION_ENTRIES,
    MAX_PATH_LEN, check_path,
};
pub use delete::{
    CHUNK_OVERHEAD, DELETE_CHECK_LEN, DeleteKey, DeleteKeyExt, EXPIRY_LEN, MIN_STORED_LEN,
    TRAILER_LEN, delete_check, expired, stored_delete_check, stored_expiry,
};
pub use error::{Error, Result};
pub use external::ExternalChunks;
pub use header::{HEADER_LEN, RecordHeader};
pub use kdf::{
    KDF_ARGON2ID, KDF_ARGON2ID_INSECURE_TEST, KdfParams, MAX_M_KIB, MAX_P, MAX_T, MIN_M_KIB, MIN_P,
    MIN_T,
};
pub use kek_cache::KekCache;
pub use manifest::{FileKind, MAX_NAME_LEN, Manifest, ManifestInfo};
pub use opener::{FileOpener, rewrap};
pub use password::Password;
pub use plaintext::Plaintext;
pub use read_key::{READ_KEY_LEN, ReadKey};
pub use redundancy::{MAX_SHARDS, Redundancy};
#[cfg(any(test, feature = "insecure-test-kdf"))]
pub use sealer::FixedRandomness;
pub use sealer::{FileSealer, PasswordKey, SealedRecord};
pub use stripe::{EncodedStripe, MAX_DESCRIPTOR_LEN, Stripe};

/// Magic bytes at the start of every record (also the format tag in chunk AAD).
pub const MAGIC: [u8; 4] = *b"VDFS";
/// Format version written and accepted by this build (2: every stored object ends with the
/// file's delete check; 3: the wrap key and commitment are salted with the file nonce, so a
/// batch of files can share one Argon2id derivation, and the manifest records a kind; 4: every
/// content id is BLAKE3 instead of SHA-256).
pub const FORMAT_VERSION: u16 = 4;
/// Bytes a sealed chunk is longer than its plaintext (the AES-GCM tag).
pub const TAG_LEN: usize = 16;
/// Length of the sealed manifest's random nonce.
pub(crate) const MANIFEST_NONCE_LEN: usize = 12;
/// Longest record [`FileOpener::open`] accepts: a header, a manifest with a maximal name and
/// [`MAX_CHUNKS`] ids, and the delete check (about 8 MiB).
pub const MAX_RECORD_LEN: usize =
    HEADER_LEN + MANIFEST_NONCE_LEN + manifest::MAX_MANIFEST_LEN + TAG_LEN + TRAILER_LEN;

/// Overwrites the 32 KiB of stack below the caller's frame with zeros: where the key schedule
/// functions that just returned (HKDF states, AES and GHASH key tables built before they were
/// moved into place) left copies of key material. Called at the end of every constructor that
/// derives keys, and by worker threads after every job ([`client::Threads`]); heap copies are
/// the allocator's business (the `voldisefs` binary zeroes every block it frees).
#[inline(never)]
pub fn scrub_stack() {
    use zeroize::Zeroize;
    let mut scratch = [0u8; 32 << 10];
    scratch.zeroize();
    std::hint::black_box(&scratch);
}

/// Overwrites the 256 KiB of stack below the caller's frame with zeros: for a thread that
/// goes idle after running deep call chains that handled keys (an async runtime's worker,
/// parking after polling tasks). Costs a few microseconds.
#[inline(never)]
pub fn scrub_stack_deep() {
    use zeroize::Zeroize;
    let mut scratch = [0u8; 256 << 10];
    scratch.zeroize();
    std::hint::black_box(&scratch);
}

/// BLAKE3 of `bytes`: the id of a sealed chunk (ChunkId), a sealed record (FileId), a stripe
/// descriptor or a shard object (format version 4; versions up to 3 used SHA-256).
pub fn content_id(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// Formats an id as lowercase hex in `Debug` output.
pub(crate) struct HexId<'a>(&'a [u8; 32]);

impl std::fmt::Debug for HexId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}
