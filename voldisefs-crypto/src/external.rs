//! Chunks sealed and opened by an AES-256-GCM outside this crate: a page hands the bulk of a
//! file to the browser's WebCrypto, which runs AES in the CPU's instructions where WebAssembly
//! cannot (BENCHMARKS.md, "Sealing in the browser"), while everything else of the format (key
//! schedule, nonces, associated data, trailer, ids, manifests) stays here, written once.
//!
//! [`ExternalChunks`] gives what the outside cipher needs for chunk `index`: the chunk key,
//! [`nonce`](ExternalChunks::nonce) and [`aad`](ExternalChunks::aad). Sealing, the cipher
//! returns `ciphertext || tag` and [`finish`](ExternalChunks::finish) appends the file's
//! trailer and names the object by its BLAKE3, exactly as [`FileSealer::seal_chunk`] does.
//! Opening, [`FileOpener::verify_chunk`] checks a fetched object first (id, length, trailer);
//! the cipher then opens [`sealed_part`](ExternalChunks::sealed_part) and its tag decides.
//!
//! [`FileSealer::seal_chunk`]: crate::FileSealer::seal_chunk
//! [`FileOpener::verify_chunk`]: crate::FileOpener::verify_chunk

use zeroize::Zeroizing;

use crate::chunk::{
    CHUNK_AAD_LEN, ChunkCipher, SealedChunk, check_plaintext, chunk_aad, chunk_nonce,
};
use crate::delete::TRAILER_LEN;
use crate::error::{Error, Result};
use crate::keys::ReadKeys;
use crate::read_key::ReadKey;
use crate::{ChunkSize, TAG_LEN, content_id};

/// One file's chunk key, nonces, associated data and trailer, for a cipher outside this crate.
/// The key is wiped when dropped; whoever takes a copy of [`key`](Self::key) must do the same
/// (a page imports it into WebCrypto as a non-extractable key and zeroes its copy).
pub struct ExternalChunks {
    key: Zeroizing<[u8; 32]>,
    file_nonce: [u8; 16],
    trailer: [u8; TRAILER_LEN],
    chunk_size: ChunkSize,
}

impl std::fmt::Debug for ExternalChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalChunks")
            .field("chunk_size", &self.chunk_size.bytes())
            .finish_non_exhaustive()
    }
}

impl ExternalChunks {
    /// The chunk schedule of the file `read` opens, whose chunks use `cipher`.
    pub(crate) fn new(read: &ReadKey, cipher: &ChunkCipher) -> Result<Self> {
        Ok(Self {
            key: ReadKeys::chunk_key_bytes(read, cipher.file_nonce())?,
            file_nonce: *cipher.file_nonce(),
            trailer: cipher.trailer(),
            chunk_size: cipher.chunk_size(),
        })
    }

    /// The AES-256-GCM key of every chunk of the file.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The nonce of chunk `index` (`is_final`: the file's last chunk).
    pub fn nonce(&self, index: u64, is_final: bool) -> [u8; 12] {
        chunk_nonce(index, is_final)
    }

    /// The associated data of chunk `index`.
    pub fn aad(&self, index: u64, is_final: bool) -> [u8; CHUNK_AAD_LEN] {
        chunk_aad(&self.file_nonce, index, is_final)
    }

    /// The public trailer every object of the file ends with: expiry, then delete check.
    pub fn trailer(&self) -> &[u8; TRAILER_LEN] {
        &self.trailer
    }

    /// The file's chunk size.
    pub fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// Checks that chunk `index` may hold `len` plaintext bytes (the writer's rules that
    /// [`FileSealer::seal_chunk`](crate::FileSealer::seal_chunk) applies): call before sealing.
    pub fn check(&self, index: u64, is_final: bool, len: usize) -> Result<()> {
        check_plaintext(self.chunk_size, index, is_final, len)
    }

    /// Completes chunk `index` from the outside cipher's `ciphertext || tag`: checks its
    /// length against the writer's rules, appends the trailer and names it.
    pub fn finish(&self, index: u64, is_final: bool, mut sealed: Vec<u8>) -> Result<SealedChunk> {
        let len = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(Error::InvalidChunk {
                index,
                reason: "shorter than a GCM tag",
            })?;
        self.check(index, is_final, len)?;
        sealed.extend_from_slice(&self.trailer);
        Ok(SealedChunk {
            id: content_id(&sealed),
            bytes: sealed,
        })
    }

    /// The `ciphertext || tag` of a stored chunk (without its trailer), for the outside cipher
    /// to open once [`FileOpener::verify_chunk`](crate::FileOpener::verify_chunk) accepted it.
    pub fn sealed_part<'a>(&self, object: &'a [u8]) -> Result<&'a [u8]> {
        object
            .len()
            .checked_sub(TRAILER_LEN)
            .filter(|&len| len >= TAG_LEN && object.ends_with(&self.trailer))
            .map(|len| &object[..len])
            .ok_or(Error::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::primitives::AeadKey;
    use crate::{ChunkSize, FileKind, FileOpener, FileSealer, KdfParams, ManifestInfo, Password};

    fn sealer() -> FileSealer {
        let chunk_size = ChunkSize::from_log2(16).unwrap();
        FileSealer::new(&Password::new("pw"), KdfParams::insecure_test(), chunk_size)
            .unwrap()
            .with_expiry(4_000_000_000)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A chunk sealed through the seam (here with this crate's own AES-GCM standing in for
        /// WebCrypto) is byte for byte the one `seal_chunk` gives, and opens both ways.
        #[test]
        fn the_seam_seals_what_seal_chunk_seals(
            index in 0u64..1_000,
            last_len in 1usize..=65536,
            is_final: bool,
            tamper in 0usize..65536 + 16,
        ) {
            let sealer = sealer();
            let external = sealer.external_chunks().unwrap();
            let len = if is_final { last_len } else { 65536 };
            let plaintext: Vec<u8> = (0..len).map(|i| (i as u64 * 31 + index) as u8).collect();
            let reference = sealer.seal_chunk(index, is_final, &plaintext).unwrap();

            let cipher = AeadKey::new(external.key()).unwrap();
            let mut sealed = plaintext.clone();
            external.check(index, is_final, sealed.len()).unwrap();
            cipher
                .seal_append(external.nonce(index, is_final), &external.aad(index, is_final), &mut sealed)
                .unwrap();
            let chunk = external.finish(index, is_final, sealed).unwrap();
            prop_assert_eq!(&chunk, &reference);

            // Opened through the seam.
            let mut part = external.sealed_part(&reference.bytes).unwrap().to_vec();
            let n = cipher
                .open(external.nonce(index, is_final), &external.aad(index, is_final), &mut part)
                .unwrap();
            prop_assert_eq!(&part[..n], &plaintext[..]);
            // Another index, another final flag or one flipped bit: the tag refuses.
            let mut flipped = external.sealed_part(&reference.bytes).unwrap().to_vec();
            let at = tamper % flipped.len();
            flipped[at] ^= 1;
            prop_assert!(cipher
                .open(external.nonce(index, is_final), &external.aad(index, is_final), &mut flipped)
                .is_err());
            let mut moved = external.sealed_part(&reference.bytes).unwrap().to_vec();
            prop_assert!(cipher
                .open(external.nonce(index + 1, is_final), &external.aad(index + 1, is_final), &mut moved)
                .is_err());
            let mut refinaled = external.sealed_part(&reference.bytes).unwrap().to_vec();
            prop_assert!(cipher
                .open(external.nonce(index, !is_final), &external.aad(index, !is_final), &mut refinaled)
                .is_err());
        }
    }

    #[test]
    fn the_seam_keeps_the_writer_rules_and_the_reader_gets_the_same_schedule() {
        let sealer = sealer();
        let external = sealer.external_chunks().unwrap();
        // A short non-final chunk, an over-long one, a bare tag's worth too short.
        assert!(external.finish(0, false, vec![0; 100 + 16]).is_err());
        assert!(external.finish(0, true, vec![0; 65537 + 16]).is_err());
        assert!(external.finish(0, true, vec![0; 15]).is_err());
        assert!(external.sealed_part(&[0; 10]).is_err());

        let chunk = sealer.seal_chunk(0, true, b"hello").unwrap();
        let record = sealer
            .finish(&ManifestInfo {
                name: "a".into(),
                size: 5,
                created: 0,
                kind: FileKind::File,
                chunks: vec![chunk.id],
            })
            .unwrap();
        for opener in [
            FileOpener::open(&record.id, &record.bytes, &Password::new("pw")).unwrap(),
            FileOpener::open_with_read_key(&record.id, &record.bytes, sealer.read_key()).unwrap(),
        ] {
            let reader = opener.external_chunks().unwrap();
            assert_eq!(reader.key(), external.key());
            assert_eq!(reader.aad(0, true), external.aad(0, true));
            assert_eq!(reader.trailer(), external.trailer());
            opener.verify_chunk(0, &chunk.bytes).unwrap();
            assert_eq!(reader.sealed_part(&chunk.bytes).unwrap().len(), 5 + 16);
        }
        // Another file's trailer is refused.
        let other = FileSealer::new(
            &Password::new("pw"),
            KdfParams::insecure_test(),
            ChunkSize::from_log2(16).unwrap(),
        )
        .unwrap();
        assert!(
            other
                .external_chunks()
                .unwrap()
                .sealed_part(&chunk.bytes)
                .is_err()
        );
    }
}
