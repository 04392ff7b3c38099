//! Writer side: [`FileSealer`] seals chunks (in parallel, as they stream past) and finally the
//! manifest record.

use zeroize::Zeroizing;

use crate::chunk::{ChunkCipher, ChunkSize, SealedChunk};
use crate::content_id;
use crate::delete::{DeleteKey, DeleteKeyExt as _};
use crate::error::Result;
use crate::header::{HEADER_LEN, OFF_WRAPPED_DEK, RecordHeader};
use crate::kdf::{KEK_LEN, KdfParams};
use crate::keys::{DataKeys, Dek, PasswordKeys, WRAPPED_DEK_LEN};
use crate::manifest::{self, ManifestInfo};
use crate::password::Password;
use crate::primitives::{AeadKey, NONCE_LEN, random};
use crate::read_key::ReadKey;
use crate::redundancy::Redundancy;

/// A sealed manifest record: its [FileId](crate#ids) and its bytes (header, sealed manifest,
/// delete check).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedRecord {
    /// FileId: BLAKE3 of `bytes`.
    pub id: [u8; 32],
    /// The record, to be stored under `id`.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for SealedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRecord")
            .field("id", &crate::HexId(&self.id))
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Fixed "random" values for deterministic output: **tests and test vectors only**.
///
/// Only compiled with the `insecure-test-kdf` feature. Reusing these values for real data
/// breaks every guarantee of the format.
#[cfg(any(test, feature = "insecure-test-kdf"))]
#[derive(Clone, Debug)]
pub struct FixedRandomness {
    /// Argon2id salt.
    pub salt: [u8; 16],
    /// File nonce (HKDF salt of the data keys, part of every chunk's AAD).
    pub file_nonce: [u8; 16],
    /// Data key.
    pub dek: [u8; 32],
    /// Nonce of the sealed manifest (reused by every `finish`: test only).
    pub manifest_nonce: [u8; 12],
}

/// Seals one file: chunk by chunk, then the manifest record.
///
/// All methods take `&self` and the type is `Send + Sync`: share it (e.g. in an `Arc`) and
/// seal chunks on as many threads as you like, in any order.
pub struct FileSealer {
    header: [u8; HEADER_LEN],
    chunk_size: ChunkSize,
    manifest_key: AeadKey,
    chunks: ChunkCipher,
    delete: DeleteKey,
    read: ReadKey,
    once: bool,
    redundancy: Option<Redundancy>,
    fixed_manifest_nonce: Option<[u8; NONCE_LEN]>,
}

impl std::fmt::Debug for FileSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSealer")
            .field("chunk_size", &self.chunk_size.bytes())
            .finish_non_exhaustive()
    }
}

/// A password key: Argon2id of a password under a fresh random salt, derived once and then
/// shared by every file of a batch ([`FileSealer::with_key`]), so a batch pays for one
/// derivation however many files it holds.
///
/// Every file sealed with it records the same salt and KDF parameters, and keeps its own random
/// data key and file nonce; the file nonce salts the wrap key and key commitment
/// (`FORMAT.md`, section 2), so no two files share either. The key is zeroed when dropped.
pub struct PasswordKey {
    kek: Zeroizing<[u8; KEK_LEN]>,
    params: KdfParams,
    salt: [u8; 16],
}

impl std::fmt::Debug for PasswordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordKey")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PasswordKey {
    /// Draws a fresh salt and runs Argon2id with `params` (slow by design: call it from a
    /// blocking thread).
    pub fn derive(password: &Password, params: KdfParams) -> Result<Self> {
        Self::derive_with_salt(password, params, random()?)
    }

    /// Argon2id under a given salt (fixed-randomness vectors and password changes).
    pub(crate) fn derive_with_salt(
        password: &Password,
        params: KdfParams,
        salt: [u8; 16],
    ) -> Result<Self> {
        let kek = params.derive_kek(password, &salt);
        crate::scrub_stack();
        Ok(Self {
            kek: kek?,
            params,
            salt,
        })
    }

    /// The KDF parameters it was derived with.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// The salt every file sealed with it records.
    pub fn salt(&self) -> &[u8; 16] {
        &self.salt
    }
}

impl FileSealer {
    /// Starts sealing a new file: draws a fresh salt, file nonce and data key, and runs
    /// Argon2id (slow by design: call it from a blocking thread). For several files under one
    /// password, derive a [`PasswordKey`] once and use [`FileSealer::with_key`].
    pub fn new(password: &Password, params: KdfParams, chunk_size: ChunkSize) -> Result<Self> {
        Self::with_key(&PasswordKey::derive(password, params)?, chunk_size)
    }

    /// Starts sealing a new file under a password key derived earlier: draws a fresh file
    /// nonce and data key; no Argon2id, so cheap enough for an async task.
    pub fn with_key(key: &PasswordKey, chunk_size: ChunkSize) -> Result<Self> {
        let file_nonce = random()?;
        let dek: Dek = crate::primitives::random_secret()?;
        Self::build(key, chunk_size, file_nonce, &dek, None)
    }

    /// Like [`FileSealer::new`] with every random value fixed, for reproducible test vectors.
    /// Only compiled with the `insecure-test-kdf` feature. **Never use for real data.**
    #[cfg(any(test, feature = "insecure-test-kdf"))]
    pub fn with_fixed_randomness(
        password: &Password,
        params: KdfParams,
        chunk_size: ChunkSize,
        fixed: &FixedRandomness,
    ) -> Result<Self> {
        let key = PasswordKey::derive_with_salt(password, params, fixed.salt)?;
        let dek: Dek = Zeroizing::new(fixed.dek);
        Self::build(
            &key,
            chunk_size,
            fixed.file_nonce,
            &dek,
            Some(fixed.manifest_nonce),
        )
    }

    /// Key schedule and header for the given randomness (shared by `with_key`, the
    /// fixed-randomness constructor and password changes).
    pub(crate) fn build(
        key: &PasswordKey,
        chunk_size: ChunkSize,
        file_nonce: [u8; 16],
        dek: &Dek,
        fixed_manifest_nonce: Option<[u8; NONCE_LEN]>,
    ) -> Result<Self> {
        let sealer = Self::derive(key, chunk_size, file_nonce, dek);
        crate::scrub_stack();
        Ok(Self {
            fixed_manifest_nonce,
            ..sealer?
        })
    }

    /// The key schedule itself, in a frame of its own below `build`'s, so the stack scrub that
    /// follows it covers everything it left behind (never inlined into `build`).
    #[inline(never)]
    fn derive(
        key: &PasswordKey,
        chunk_size: ChunkSize,
        file_nonce: [u8; 16],
        dek: &Dek,
    ) -> Result<Self> {
        let password_keys = PasswordKeys::derive(&key.kek[..], &file_nonce)?;
        let mut header = RecordHeader {
            kdf: key.params,
            salt: key.salt,
            file_nonce,
            chunk_size,
            commitment: *password_keys.commitment(),
            wrapped_dek: [0u8; WRAPPED_DEK_LEN],
        };
        let mut prefix = [0u8; HEADER_LEN];
        header.write_prefix(&mut prefix);
        header.wrapped_dek = password_keys.wrap_dek(dek, &prefix[..OFF_WRAPPED_DEK])?;
        let keys = DataKeys::derive(dek, &file_nonce)?;
        Ok(FileSealer {
            header: header.to_bytes(),
            chunk_size,
            manifest_key: keys.manifest,
            chunks: ChunkCipher::new(keys.chunk, file_nonce, chunk_size, 0, keys.delete.check()),
            delete: keys.delete,
            read: keys.read,
            once: false,
            redundancy: None,
            fixed_manifest_nonce: None,
        })
    }

    /// The file's chunk schedule for an AES-GCM outside this crate (a page's WebCrypto): see
    /// [`ExternalChunks`](crate::ExternalChunks). Set the expiry first: the trailer carries it.
    pub fn external_chunks(&self) -> Result<crate::ExternalChunks> {
        crate::ExternalChunks::new(&self.read, &self.chunks)
    }

    /// The file's delete key: what a delete request must present so holders erase its
    /// chunks and record (see [`DeleteKey`]).
    pub fn delete_key(&self) -> &DeleteKey {
        &self.delete
    }

    /// The file's read key: with the FileId, what a share link needs to open this file (and
    /// nothing else) without the password ([`FileOpener::open_with_read_key`]).
    ///
    /// [`FileOpener::open_with_read_key`]: crate::FileOpener::open_with_read_key
    pub fn read_key(&self) -> &ReadKey {
        &self.read
    }

    /// The file's chunk size.
    pub fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// Makes every object of this file (its chunks and record) expire at `expires` (unix
    /// seconds; 0: never, the default): holders drop them then and refuse them after, and
    /// readers refuse the record. Call it before sealing the first chunk.
    pub fn with_expiry(mut self, expires: u64) -> Self {
        self.chunks.set_expires(expires);
        self
    }

    /// When this file's objects expire (unix seconds, 0: never).
    pub fn expires(&self) -> u64 {
        self.chunks.expires()
    }

    /// Marks the file "burn after reading": its manifest records it, with the delete key, so
    /// whoever completes the first download (password or read key) can delete it everywhere.
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }

    /// Records in the manifest how the file's chunks are kept. With
    /// [`Redundancy::ErasureCoded`] the ids given to [`finish`](Self::finish) are stripe ids
    /// ([`crate::Stripe`]), not chunk ids.
    pub fn with_redundancy(mut self, redundancy: Redundancy) -> Self {
        self.redundancy = Some(redundancy);
        self
    }

    /// The redundancy recorded so far, if any.
    pub fn redundancy(&self) -> Option<Redundancy> {
        self.redundancy
    }

    /// Seals chunk `index` (0-based). Every chunk but the last (`is_final`) must be exactly
    /// [`chunk_size`](Self::chunk_size) bytes; the final one 1..=chunk size bytes, or empty
    /// when it is chunk 0 of an empty file. The result's `bytes` are `plaintext.len() + 48`
    /// ([`CHUNK_OVERHEAD`](crate::CHUNK_OVERHEAD)) long and `id` is their BLAKE3.
    pub fn seal_chunk(&self, index: u64, is_final: bool, plaintext: &[u8]) -> Result<SealedChunk> {
        self.chunks.seal(index, is_final, plaintext)
    }

    /// Like [`seal_chunk`](Self::seal_chunk), but encrypts `plaintext`'s buffer in place and
    /// returns it as the sealed bytes: no copy when it has 48 bytes of spare capacity (e.g.
    /// `Vec::with_capacity(chunk_size + CHUNK_OVERHEAD)`); otherwise one move, and the old
    /// buffer is wiped.
    pub fn seal_chunk_owned(
        &self,
        index: u64,
        is_final: bool,
        plaintext: Vec<u8>,
    ) -> Result<SealedChunk> {
        self.chunks.seal_owned(index, is_final, plaintext)
    }

    /// Seals the manifest into the file's record. `info.chunks` must hold exactly
    /// [`chunk_count_for`](crate::chunk_count_for)`(info.size, chunk_size)` ids, in order.
    /// Each call draws a fresh manifest nonce.
    pub fn finish(&self, info: &ManifestInfo) -> Result<SealedRecord> {
        let once = self.once.then_some(&self.delete);
        let plaintext = manifest::encode_with(info, self.chunk_size, once, self.redundancy)?;
        let nonce = match self.fixed_manifest_nonce {
            Some(nonce) => nonce,
            None => random()?,
        };
        let bytes = manifest::seal_record(
            &self.manifest_key,
            nonce,
            &self.header,
            &plaintext,
            &self.chunks.trailer(),
        )?;
        Ok(SealedRecord {
            id: content_id(&bytes),
            bytes,
        })
    }
}

#[cfg(test)]
impl FileSealer {
    /// Seals an arbitrary manifest plaintext (bypassing the writer checks) into a record.
    pub(crate) fn seal_manifest_plaintext(&self, plaintext: &[u8]) -> Result<SealedRecord> {
        let nonce = random()?;
        let bytes = manifest::seal_record(
            &self.manifest_key,
            nonce,
            &self.header,
            plaintext,
            &self.chunks.trailer(),
        )?;
        Ok(SealedRecord {
            id: content_id(&bytes),
            bytes,
        })
    }

    /// The chunk cipher, to seal chunks the public API would refuse.
    pub(crate) fn chunk_cipher(&self) -> &ChunkCipher {
        &self.chunks
    }
}
