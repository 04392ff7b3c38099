//! Reader side: [`FileOpener`] checks and opens a record, then opens chunks; [`rewrap`] changes
//! a file's password.

use crate::MAX_RECORD_LEN;
use crate::Plaintext;
use crate::chunk::{ChunkCipher, ChunkSize};
use crate::content_id;
use crate::delete::{
    CHUNK_OVERHEAD, DELETE_CHECK_LEN, DeleteKey, DeleteKeyExt as _, EXPIRY_LEN, TRAILER_LEN,
};
use crate::error::{Error, Result};
use crate::header::{HEADER_LEN, OFF_WRAPPED_DEK, RecordHeader};
use crate::kdf::{ALLOW_INSECURE, KdfParams};
use crate::kek_cache::KekCache;
use crate::keys::{DataKeys, Dek, PasswordKeys, ReadKeys};
use crate::manifest::{self, Manifest};
use crate::password::Password;
use crate::read_key::ReadKey;
use crate::sealer::{FileSealer, PasswordKey, SealedRecord};

/// A record checked against its id and cut into its parts (before any key is involved).
struct Parts<'a> {
    header: RecordHeader,
    header_bytes: &'a [u8],
    sealed_manifest: &'a [u8],
    expiry: [u8; EXPIRY_LEN],
    check: [u8; DELETE_CHECK_LEN],
}

impl<'a> Parts<'a> {
    /// Checks, in order: BLAKE3 against `expected_id`, the length, the header.
    fn of(expected_id: &[u8; 32], record: &'a [u8], allow_insecure: bool) -> Result<Self> {
        if content_id(record) != *expected_id {
            return Err(Error::IdMismatch);
        }
        if record.len() > MAX_RECORD_LEN {
            return Err(Error::InvalidManifest("record too long"));
        }
        if record.len() < HEADER_LEN + TRAILER_LEN {
            return Err(Error::MalformedHeader("record shorter than its header"));
        }
        let (sealed, trailer) = record.split_at(record.len() - TRAILER_LEN);
        let (mut expiry, mut check) = ([0u8; EXPIRY_LEN], [0u8; DELETE_CHECK_LEN]);
        expiry.copy_from_slice(&trailer[..EXPIRY_LEN]);
        check.copy_from_slice(&trailer[EXPIRY_LEN..]);
        let (header_bytes, sealed_manifest) = sealed.split_at(HEADER_LEN);
        let header = RecordHeader::parse_with(header_bytes, allow_insecure)?;
        Ok(Self {
            header,
            header_bytes,
            sealed_manifest,
            expiry,
            check,
        })
    }
}

/// What an open checks a record against.
struct OpenRequest<'a> {
    expected_id: &'a [u8; 32],
    record: &'a [u8],
    password: &'a Password,
    allow_insecure: bool,
    ceiling: Option<&'a KdfParams>,
}

impl<'a> OpenRequest<'a> {
    /// A request of this build's readers, under `ceiling`.
    fn limited(
        expected_id: &'a [u8; 32],
        record: &'a [u8],
        password: &'a Password,
        ceiling: &'a KdfParams,
    ) -> Self {
        Self {
            expected_id,
            record,
            password,
            allow_insecure: ALLOW_INSECURE,
            ceiling: Some(ceiling),
        }
    }
}

/// Where the opener takes the password key (KEK) from.
enum KekSource<'a> {
    /// Argon2id, storing the key in the cache if one is given.
    Derive(Option<&'a KekCache>),
    /// The cache only; a miss ends the open with `None`.
    CachedOnly(&'a KekCache),
}

/// An opened file: the checked manifest and the key to open its chunks.
///
/// `Send + Sync` with `&self` methods: open chunks on as many threads as you like.
pub struct FileOpener {
    header: RecordHeader,
    manifest: Manifest,
    chunks: ChunkCipher,
    read: ReadKey,
    /// The delete key and data key: known when opened with the password, not with a read key.
    delete: Option<DeleteKey>,
    dek: Option<Dek>,
}

impl std::fmt::Debug for FileOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileOpener")
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

impl FileOpener {
    /// Opens the record fetched for `expected_id`, in this order: BLAKE3 of the record against
    /// the id ([`Error::IdMismatch`]); header parse and KDF parameter checks, before anything
    /// expensive; Argon2id (slow: call from a blocking thread); key commitment, compared in
    /// constant time; DEK unwrap; manifest open and consistency checks; the record's trailing
    /// delete check against the one the data key gives. A wrong password and any forgery both
    /// give [`Error::Decrypt`].
    pub fn open(expected_id: &[u8; 32], record: &[u8], password: &Password) -> Result<Self> {
        Self::open_with(expected_id, record, password, ALLOW_INSECURE, None)
    }

    /// Like [`FileOpener::open`], but refuses with [`Error::KdfParamsTooExpensive`], before
    /// running anything, a record whose KDF parameters exceed `ceiling` in memory, passes or
    /// lanes ([`KdfParams::allows`]): a reader's own, lower bound on the work a record (which
    /// any peer can plant) may make it do.
    pub fn open_limited(
        expected_id: &[u8; 32],
        record: &[u8],
        password: &Password,
        ceiling: &KdfParams,
    ) -> Result<Self> {
        Self::open_with(expected_id, record, password, ALLOW_INSECURE, Some(ceiling))
    }

    /// Like [`FileOpener::open_limited`], taking the password key from `cache` when it holds
    /// the one for this record's KDF parameters, salt and `password`, and storing it there
    /// after a successful open otherwise (Argon2id on a miss: call from a blocking thread).
    pub fn open_caching(
        expected_id: &[u8; 32],
        record: &[u8],
        password: &Password,
        ceiling: &KdfParams,
        cache: &KekCache,
    ) -> Result<Self> {
        let request = OpenRequest::limited(expected_id, record, password, ceiling);
        Self::open_from(request, KekSource::Derive(Some(cache)))?
            .ok_or(Error::Internal("a derived key is always there"))
    }

    /// Like [`FileOpener::open_caching`], but never runs Argon2id: `Ok(None)` when `cache`
    /// holds no key for this record and `password` (then open with
    /// [`FileOpener::open_caching`], on a blocking thread). Cheap enough for an async task.
    pub fn open_cached(
        expected_id: &[u8; 32],
        record: &[u8],
        password: &Password,
        ceiling: &KdfParams,
        cache: &KekCache,
    ) -> Result<Option<Self>> {
        let request = OpenRequest::limited(expected_id, record, password, ceiling);
        Self::open_from(request, KekSource::CachedOnly(cache))
    }

    pub(crate) fn open_with(
        expected_id: &[u8; 32],
        record: &[u8],
        password: &Password,
        allow_insecure: bool,
        ceiling: Option<&KdfParams>,
    ) -> Result<Self> {
        let request = OpenRequest {
            expected_id,
            record,
            password,
            allow_insecure,
            ceiling,
        };
        Self::open_from(request, KekSource::Derive(None))?
            .ok_or(Error::Internal("a derived key is always there"))
    }

    fn open_from(request: OpenRequest<'_>, source: KekSource<'_>) -> Result<Option<Self>> {
        let opened = Self::open_unscrubbed(request, source);
        crate::scrub_stack();
        opened
    }

    /// The opening itself, in a frame of its own below `open_with`'s, so the stack scrub that
    /// follows it covers everything it left behind (never inlined into `open_with`).
    #[inline(never)]
    fn open_unscrubbed(request: OpenRequest<'_>, source: KekSource<'_>) -> Result<Option<Self>> {
        let OpenRequest {
            expected_id,
            record,
            password,
            allow_insecure,
            ceiling,
        } = request;
        let Parts {
            header,
            header_bytes,
            sealed_manifest,
            expiry,
            check: stored_check,
        } = Parts::of(expected_id, record, allow_insecure)?;
        if let Some(ceiling) = ceiling {
            let k = &header.kdf;
            if !ceiling.allows(k) {
                return Err(Error::KdfParamsTooExpensive {
                    m_kib: k.m_kib(),
                    t: k.t(),
                    p: k.p(),
                });
            }
        }
        let (kek, store) = match source {
            KekSource::CachedOnly(cache) => {
                match cache.get(&cache.lookup(&header.kdf, &header.salt, password)) {
                    Some(kek) => (kek, None),
                    None => return Ok(None),
                }
            }
            KekSource::Derive(cache) => {
                let kek = header.kdf.derive_kek(password, &header.salt)?;
                let store = cache.map(|c| (c, c.lookup(&header.kdf, &header.salt, password)));
                (kek, store)
            }
        };
        let password_keys = PasswordKeys::derive(&kek[..], &header.file_nonce)?;
        if !password_keys.commitment_matches(&header.commitment) {
            return Err(Error::Decrypt);
        }
        // Only a key the commitment vouches for is cached: a wrong password never is.
        if let Some((cache, lookup)) = store {
            cache.insert(lookup, &kek);
        }
        let dek =
            password_keys.unwrap_dek(&header.wrapped_dek, &header_bytes[..OFF_WRAPPED_DEK])?;
        let keys = DataKeys::derive(&dek, &header.file_nonce)?;
        let plaintext = manifest::open(&keys.manifest, header_bytes, expiry, sealed_manifest)?;
        let manifest = manifest::decode(&plaintext, header.chunk_size)?;
        let check = keys.delete.check();
        // Public data, so no constant time needed: a record with someone else's check would
        // let that someone delete it, or nobody.
        if stored_check != check {
            return Err(Error::Decrypt);
        }
        let expires = u64::from_be_bytes(expiry);
        let chunks = ChunkCipher::new(
            keys.chunk,
            header.file_nonce,
            header.chunk_size,
            expires,
            check,
        );
        Ok(Some(FileOpener {
            header,
            manifest,
            chunks,
            read: keys.read,
            delete: Some(keys.delete),
            dek: Some(dek),
        }))
    }

    /// Opens the record fetched for `expected_id` with the file's read key (what a share link
    /// carries) instead of its password: no Argon2id. Checks, in order: BLAKE3 of the record
    /// against the id, the header, the manifest's tag and consistency. A read key of another
    /// file (or a damaged one) gives [`Error::Decrypt`]. The opener reads chunks like any other
    /// but knows no delete key ([`FileOpener::delete_key`] is `None`) and cannot re-wrap.
    pub fn open_with_read_key(
        expected_id: &[u8; 32],
        record: &[u8],
        read: &ReadKey,
    ) -> Result<Self> {
        let opened = Self::open_with_read_key_unscrubbed(expected_id, record, read);
        crate::scrub_stack();
        opened
    }

    #[inline(never)]
    fn open_with_read_key_unscrubbed(
        expected_id: &[u8; 32],
        record: &[u8],
        read: &ReadKey,
    ) -> Result<Self> {
        let Parts {
            header,
            header_bytes,
            sealed_manifest,
            expiry,
            check,
        } = Parts::of(expected_id, record, ALLOW_INSECURE)?;
        let keys = ReadKeys::derive(read, &header.file_nonce)?;
        let plaintext = manifest::open(&keys.manifest, header_bytes, expiry, sealed_manifest)?;
        let manifest = manifest::decode(&plaintext, header.chunk_size)?;
        // Without the delete key the record's check cannot be recomputed; the chunks must end
        // with the same one (the record and every chunk are covered by their ids).
        let chunks = ChunkCipher::new(
            keys.chunk,
            header.file_nonce,
            header.chunk_size,
            u64::from_be_bytes(expiry),
            check,
        );
        // A "once" file's manifest carries its delete key: the first reader burns it.
        let delete = manifest.once_key().cloned();
        Ok(FileOpener {
            header,
            manifest,
            chunks,
            read: read.clone(),
            delete,
            dek: None,
        })
    }

    /// The file's delete key: what a delete request must present so holders erase its
    /// chunks and record (see [`DeleteKey`]). `None` when opened with a read key, unless the
    /// file is "once" ([`Manifest::once`]): then its manifest carries the key, for the first
    /// reader to burn it.
    pub fn delete_key(&self) -> Option<&DeleteKey> {
        self.delete.as_ref()
    }

    /// When the file's objects expire (unix seconds, 0: never), as its record says (the
    /// manifest's tag covers it). A reader should treat an expired file as gone.
    pub fn expires(&self) -> u64 {
        self.chunks.expires()
    }

    /// The file's chunk schedule for an AES-GCM outside this crate (a page's WebCrypto): see
    /// [`ExternalChunks`](crate::ExternalChunks).
    pub fn external_chunks(&self) -> Result<crate::ExternalChunks> {
        crate::ExternalChunks::new(&self.read, &self.chunks)
    }

    /// The file's read key: with the FileId, what a share link needs to open this file.
    pub fn read_key(&self) -> &ReadKey {
        &self.read
    }

    /// The record's header.
    pub fn header(&self) -> &RecordHeader {
        &self.header
    }

    /// The file's manifest: name, size, creation time, chunk size and ordered chunk ids.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The file's chunk size.
    pub fn chunk_size(&self) -> ChunkSize {
        self.header.chunk_size
    }

    /// Checks a fetched chunk against the manifest without decrypting it: its BLAKE3 must be
    /// the listed id ([`Error::ChunkIdMismatch`]: try another replica; not for an erasure-coded
    /// file, whose list holds stripe ids and whose shards were checked instead), then its length must
    /// be the one the file size implies and it must end with the file's delete check
    /// ([`Error::InvalidChunk`]).
    pub fn verify_chunk(&self, index: u64, ciphertext: &[u8]) -> Result<()> {
        self.check_chunk(index, ciphertext, true)
    }

    fn check_chunk(&self, index: u64, ciphertext: &[u8], hash: bool) -> Result<()> {
        let expected = self.manifest.chunk_id(index).ok_or(Error::InvalidChunk {
            index,
            reason: "index past the final chunk",
        })?;
        // An erasure-coded file lists stripe ids: the shards were checked against the stripe's
        // descriptor, and the AEAD tag checks the joined chunk.
        if hash && !self.manifest.is_striped() && content_id(ciphertext) != *expected {
            return Err(Error::ChunkIdMismatch { index });
        }
        let plain_len = self.manifest.chunk_len(index);
        if plain_len.map(|len| len + CHUNK_OVERHEAD) != Some(ciphertext.len()) {
            return Err(Error::InvalidChunk {
                index,
                reason: "length does not match the file size",
            });
        }
        if !ciphertext.ends_with(&self.chunks.trailer()) {
            return Err(Error::InvalidChunk {
                index,
                reason: "the expiry or delete check is not this file's",
            });
        }
        Ok(())
    }

    /// Verifies ([`verify_chunk`](Self::verify_chunk)) and decrypts chunk `index`, reusing
    /// `ciphertext`'s buffer for the plaintext. The final flag comes from the manifest (the
    /// last index is final), so a chunk moved, reordered or taken from another file fails.
    pub fn open_chunk(&self, index: u64, ciphertext: Vec<u8>) -> Result<Plaintext> {
        self.open_chunk_with(index, ciphertext, true)
    }

    /// Like [`open_chunk`](Self::open_chunk) without hashing the bytes against the chunk's id:
    /// the length, the trailer and the AEAD tag (under this file's chunk key, with the index
    /// and final flag in the nonce) still authenticate them, so only the error differs: a
    /// substituted chunk fails with [`Error::Decrypt`] rather than
    /// [`Error::ChunkIdMismatch`]. For readers that blame the source of any failure alike.
    pub fn open_verified_chunk(&self, index: u64, ciphertext: Vec<u8>) -> Result<Plaintext> {
        self.open_chunk_with(index, ciphertext, false)
    }

    fn open_chunk_with(&self, index: u64, ciphertext: Vec<u8>, hash: bool) -> Result<Plaintext> {
        // Wipe even if verification or decryption fails: the buffer may hold plaintext then.
        let ciphertext = Plaintext::new(ciphertext);
        self.check_chunk(index, &ciphertext, hash)?;
        let is_final = index + 1 == self.manifest.chunk_count();
        self.chunks.open_raw(index, is_final, ciphertext)
    }

    /// Re-seals this file's record under `new_password` (fresh salt, KDF `params`): the data
    /// key and every chunk stay as they are; the new record has a new FileId. Runs Argon2id.
    /// Needs the data key: an opener made from a read key gives [`Error::Decrypt`].
    pub fn rewrap(&self, new_password: &Password, params: KdfParams) -> Result<SealedRecord> {
        let dek = self.dek.as_ref().ok_or(Error::Decrypt)?;
        let key = PasswordKey::derive(new_password, params)?;
        // Same expiry (the chunks carry it) and the same "once".
        let mut sealer = FileSealer::build(
            &key,
            self.header.chunk_size,
            self.header.file_nonce,
            dek,
            None,
        )?
        .with_expiry(self.expires());
        if self.manifest.once() {
            sealer = sealer.once();
        }
        if let Some(redundancy) = self.manifest.redundancy() {
            sealer = sealer.with_redundancy(redundancy);
        }
        sealer.finish(&self.manifest.to_info())
    }
}

/// Changes a file's password: opens `record` (fetched for `expected_id`) with `old_password`
/// and re-seals it under `new_password` with KDF `params`. Chunks are untouched; the returned
/// record has a new FileId. Runs Argon2id twice.
pub fn rewrap(
    expected_id: &[u8; 32],
    record: &[u8],
    old_password: &Password,
    new_password: &Password,
    params: KdfParams,
) -> Result<SealedRecord> {
    FileOpener::open(expected_id, record, old_password)?.rewrap(new_password, params)
}

#[cfg(test)]
impl FileOpener {
    /// The chunk cipher, to try AEAD opens without the id and length checks in front.
    pub(crate) fn chunk_cipher(&self) -> &ChunkCipher {
        &self.chunks
    }
}
