//! Chunk sizes and STREAM-style chunk sealing: AES-256-GCM with counter nonces.

use crate::primitives::{AeadKey, NONCE_LEN};

use crate::delete::{CHUNK_OVERHEAD, DELETE_CHECK_LEN, EXPIRY_LEN, TRAILER_LEN};
use crate::error::{Error, Result};
use crate::plaintext::{Plaintext, wipe};
use crate::{FORMAT_VERSION, MAGIC, content_id};

/// Largest file the format accepts: 256 GiB (AES-GCM data limits per key).
pub const MAX_FILE_SIZE: u64 = 256 << 30;
/// Largest chunk count the format accepts: 2^18 (keeps a manifest at about 8 MiB).
pub const MAX_CHUNKS: u64 = 1 << 18;

/// The error for a file past [`MAX_FILE_SIZE`] or [`MAX_CHUNKS`].
pub(crate) fn too_large() -> Error {
    Error::TooLarge {
        max_bytes: MAX_FILE_SIZE,
        max_chunks: MAX_CHUNKS,
    }
}

/// A chunk size: a power of two from 64 KiB (log2 16) to 16 MiB (log2 24), default 1 MiB.
/// Recorded in the header as its log2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkSize(u8);

impl ChunkSize {
    /// Smallest accepted log2 (64 KiB).
    pub const MIN_LOG2: u8 = 16;
    /// Largest accepted log2 (16 MiB).
    pub const MAX_LOG2: u8 = 24;
    /// Default log2 (1 MiB).
    pub const DEFAULT_LOG2: u8 = 20;
    /// The smallest chunk size (64 KiB).
    pub const MIN: ChunkSize = ChunkSize(Self::MIN_LOG2);
    /// The largest chunk size (16 MiB).
    pub const MAX: ChunkSize = ChunkSize(Self::MAX_LOG2);

    /// The chunk size `2^log2` bytes, if `log2` is in `16..=24`.
    pub fn from_log2(log2: u8) -> Result<Self> {
        if (Self::MIN_LOG2..=Self::MAX_LOG2).contains(&log2) {
            Ok(ChunkSize(log2))
        } else {
            Err(Error::InvalidChunkSize(
                1u64.checked_shl(u32::from(log2)).unwrap_or(0),
            ))
        }
    }

    /// The chunk size of `bytes` bytes, if it is a power of two from 64 KiB to 16 MiB.
    pub fn from_bytes(bytes: u64) -> Result<Self> {
        if !bytes.is_power_of_two() {
            return Err(Error::InvalidChunkSize(bytes));
        }
        u8::try_from(bytes.trailing_zeros())
            .map_err(|_| Error::InvalidChunkSize(bytes))
            .and_then(Self::from_log2)
            .map_err(|_| Error::InvalidChunkSize(bytes))
    }

    /// log2 of the size in bytes.
    pub fn log2(self) -> u8 {
        self.0
    }

    /// The size in bytes.
    pub fn bytes(self) -> usize {
        1usize << self.0
    }

    fn bytes_u64(self) -> u64 {
        1u64 << self.0
    }
}

impl Default for ChunkSize {
    fn default() -> Self {
        ChunkSize(Self::DEFAULT_LOG2)
    }
}

/// Number of chunks a file of `size` bytes has: `ceil(size / chunk_size)`, and 1 for an empty
/// file (one empty final chunk).
pub fn chunk_count_for(size: u64, chunk_size: ChunkSize) -> u64 {
    if size == 0 {
        1
    } else {
        size.div_ceil(chunk_size.bytes_u64())
    }
}

/// Checks the format's caps and returns the chunk count of a file of `size` bytes.
pub(crate) fn checked_chunk_count(size: u64, chunk_size: ChunkSize) -> Result<u64> {
    let count = chunk_count_for(size, chunk_size);
    if size > MAX_FILE_SIZE || count > MAX_CHUNKS {
        return Err(too_large());
    }
    Ok(count)
}

/// Plaintext length of chunk `index` of a file of `size` bytes, if the index exists.
pub(crate) fn chunk_plain_len(size: u64, chunk_size: ChunkSize, index: u64) -> Option<usize> {
    let count = chunk_count_for(size, chunk_size);
    if index >= count {
        return None;
    }
    let start = index.checked_mul(chunk_size.bytes_u64())?;
    let len = size.saturating_sub(start).min(chunk_size.bytes_u64());
    usize::try_from(len).ok()
}

/// One sealed chunk: its content id and its bytes (`ciphertext || tag || expiry || delete
/// check`).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedChunk {
    /// ChunkId: BLAKE3 of `bytes`.
    pub id: [u8; 32],
    /// `ciphertext || 16-byte GCM tag || 8-byte expiry || 32-byte delete check`, to be stored
    /// under `id`.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for SealedChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedChunk")
            .field("id", &crate::HexId(&self.id))
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Nonce of chunk `index`: 3 zero bytes || u64 BE index || final flag (1 or 0).
pub(crate) fn chunk_nonce(index: u64, is_final: bool) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(is_final);
    nonce
}

/// Length of a chunk's associated data.
pub(crate) const CHUNK_AAD_LEN: usize = 4 + 2 + 16 + 8 + 1;

/// AAD of chunk `index`: magic || u16 BE version || file nonce || u64 BE index || final flag.
pub(crate) fn chunk_aad(file_nonce: &[u8; 16], index: u64, is_final: bool) -> [u8; CHUNK_AAD_LEN] {
    let mut aad = [0u8; CHUNK_AAD_LEN];
    aad[0..4].copy_from_slice(&MAGIC);
    aad[4..6].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    aad[6..22].copy_from_slice(file_nonce);
    aad[22..30].copy_from_slice(&index.to_be_bytes());
    aad[30] = u8::from(is_final);
    aad
}

/// The writer-side rules of a chunk's plaintext: index within the caps, non-final chunks full,
/// the final chunk at most full, empty only as the single chunk of an empty file.
pub(crate) fn check_plaintext(
    chunk_size: ChunkSize,
    index: u64,
    is_final: bool,
    len: usize,
) -> Result<()> {
    let full = chunk_size.bytes();
    let end = index
        .checked_mul(chunk_size.bytes_u64())
        .and_then(|start| start.checked_add(len as u64));
    if index >= MAX_CHUNKS || end.is_none_or(|end| end > MAX_FILE_SIZE) {
        return Err(too_large());
    }
    let reason = if len > full {
        "longer than the chunk size"
    } else if !is_final && len != full {
        "a non-final chunk must be exactly one chunk size long"
    } else if len == 0 && index != 0 {
        "an empty chunk is only allowed as the single chunk of an empty file"
    } else {
        return Ok(());
    };
    Err(Error::InvalidChunk { index, reason })
}

/// The chunk key of one file plus what its nonces and AAD are built from, and the delete
/// check every chunk ends with.
pub(crate) struct ChunkCipher {
    key: AeadKey,
    file_nonce: [u8; 16],
    chunk_size: ChunkSize,
    expires: u64,
    check: [u8; DELETE_CHECK_LEN],
}

impl ChunkCipher {
    pub(crate) fn new(
        key: AeadKey,
        file_nonce: [u8; 16],
        chunk_size: ChunkSize,
        expires: u64,
        check: [u8; DELETE_CHECK_LEN],
    ) -> Self {
        ChunkCipher {
            key,
            file_nonce,
            chunk_size,
            expires,
            check,
        }
    }

    /// When this file's objects expire (unix seconds, 0: never).
    pub(crate) fn expires(&self) -> u64 {
        self.expires
    }

    /// Sets the expiry the chunks sealed from now on carry.
    pub(crate) fn set_expires(&mut self, expires: u64) {
        self.expires = expires;
    }

    /// The public trailer this file's objects end with: expiry, then delete check.
    pub(crate) fn trailer(&self) -> [u8; TRAILER_LEN] {
        let mut out = [0u8; TRAILER_LEN];
        out[..EXPIRY_LEN].copy_from_slice(&self.expires.to_be_bytes());
        out[EXPIRY_LEN..].copy_from_slice(&self.check);
        out
    }

    /// Checks the writer-side rules: index within the caps, non-final chunks full, the final
    /// chunk at most full, empty only as the single chunk of an empty file.
    pub(crate) fn check_plaintext(&self, index: u64, is_final: bool, len: usize) -> Result<()> {
        check_plaintext(self.chunk_size, index, is_final, len)
    }

    /// The file's nonce (HKDF salt of its keys, part of every chunk's AAD).
    pub(crate) fn file_nonce(&self) -> &[u8; 16] {
        &self.file_nonce
    }

    /// The file's chunk size.
    pub(crate) fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// Seals a plaintext chunk: one output allocation (`len + 48`), one copy, AES-256-GCM in
    /// place, the delete check appended, BLAKE3 over the result.
    pub(crate) fn seal(&self, index: u64, is_final: bool, plaintext: &[u8]) -> Result<SealedChunk> {
        self.check_plaintext(index, is_final, plaintext.len())?;
        let mut buf = Vec::with_capacity(plaintext.len() + CHUNK_OVERHEAD);
        buf.extend_from_slice(plaintext);
        self.seal_raw(index, is_final, &mut buf)?;
        Ok(SealedChunk {
            id: content_id(&buf),
            bytes: buf,
        })
    }

    /// Seals a plaintext chunk held in `plaintext`, reusing its allocation when it has room for
    /// the tag and the delete check (otherwise moving it once and wiping the old allocation).
    pub(crate) fn seal_owned(
        &self,
        index: u64,
        is_final: bool,
        plaintext: Vec<u8>,
    ) -> Result<SealedChunk> {
        let mut plaintext = Plaintext::new(plaintext);
        self.check_plaintext(index, is_final, plaintext.len())?;
        let mut buf = if plaintext.vec_mut().capacity() - plaintext.len() >= CHUNK_OVERHEAD {
            std::mem::take(plaintext.vec_mut())
        } else {
            let mut bigger = Vec::with_capacity(plaintext.len() + CHUNK_OVERHEAD);
            bigger.extend_from_slice(&plaintext);
            bigger
        };
        if let Err(e) = self.seal_raw(index, is_final, &mut buf) {
            wipe(&mut buf);
            return Err(e);
        }
        Ok(SealedChunk {
            id: content_id(&buf),
            bytes: buf,
        })
    }

    /// AES-256-GCM seal in place and the delete check appended, no policy checks.
    pub(crate) fn seal_raw(&self, index: u64, is_final: bool, buf: &mut Vec<u8>) -> Result<()> {
        let aad = chunk_aad(&self.file_nonce, index, is_final);
        self.key
            .seal_append(chunk_nonce(index, is_final), &aad, buf)?;
        buf.extend_from_slice(&self.trailer());
        Ok(())
    }

    /// Drops the trailing delete check, then AES-256-GCM open in place, reusing the stored
    /// chunk's buffer for the plaintext. No id, length or check policy: the caller
    /// ([`crate::FileOpener::open_chunk`]) checks those first.
    pub(crate) fn open_raw(
        &self,
        index: u64,
        is_final: bool,
        mut buf: Plaintext,
    ) -> Result<Plaintext> {
        let Some(sealed_len) = buf.len().checked_sub(TRAILER_LEN) else {
            return Err(Error::Decrypt);
        };
        buf.vec_mut().truncate(sealed_len);
        let aad = chunk_aad(&self.file_nonce, index, is_final);
        let plain_len = self
            .key
            .open(chunk_nonce(index, is_final), &aad, &mut buf[..])?;
        buf.vec_mut().truncate(plain_len);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(key: u8, file_nonce: u8) -> ChunkCipher {
        let key = AeadKey::new(&[key; 32]).unwrap();
        ChunkCipher::new(key, [file_nonce; 16], ChunkSize::MIN, 0, [0xcc; 32])
    }

    #[test]
    fn chunk_size_bounds() {
        assert_eq!(ChunkSize::default().bytes(), 1 << 20);
        assert_eq!(ChunkSize::from_bytes(65536).unwrap(), ChunkSize::MIN);
        assert_eq!(ChunkSize::from_bytes(16 << 20).unwrap(), ChunkSize::MAX);
        assert_eq!(ChunkSize::from_log2(20).unwrap().bytes(), 1 << 20);
        for bad in [
            0u64,
            1,
            32768,
            65535,
            65537,
            100_000,
            32 << 20,
            u64::MAX,
            1 << 63,
        ] {
            assert!(ChunkSize::from_bytes(bad).is_err(), "{bad}");
        }
        for bad in [0u8, 15, 25, 63, 64, 255] {
            assert!(ChunkSize::from_log2(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chunk_counts() {
        let cs = ChunkSize::MIN;
        let c = cs.bytes() as u64;
        assert_eq!(chunk_count_for(0, cs), 1);
        assert_eq!(chunk_count_for(1, cs), 1);
        assert_eq!(chunk_count_for(c - 1, cs), 1);
        assert_eq!(chunk_count_for(c, cs), 1);
        assert_eq!(chunk_count_for(c + 1, cs), 2);
        assert_eq!(chunk_count_for(5 * c, cs), 5);
        assert_eq!(chunk_count_for(u64::MAX, cs), u64::MAX / c + 1);
        assert_eq!(chunk_plain_len(c + 1, cs, 0), Some(c as usize));
        assert_eq!(chunk_plain_len(c + 1, cs, 1), Some(1));
        assert_eq!(chunk_plain_len(c + 1, cs, 2), None);
        assert_eq!(chunk_plain_len(0, cs, 0), Some(0));
    }

    #[test]
    fn caps() {
        let d = ChunkSize::default();
        assert_eq!(checked_chunk_count(MAX_FILE_SIZE, d).unwrap(), MAX_CHUNKS);
        assert!(matches!(
            checked_chunk_count(MAX_FILE_SIZE + 1, d),
            Err(Error::TooLarge { .. })
        ));
        // 64 KiB chunks hit the chunk-count cap long before 256 GiB.
        let small = ChunkSize::MIN;
        assert!(checked_chunk_count(MAX_CHUNKS << 16, small).is_ok());
        assert!(checked_chunk_count((MAX_CHUNKS << 16) + 1, small).is_err());
        // Large chunks hit the byte cap.
        assert!(checked_chunk_count(MAX_FILE_SIZE + 1, ChunkSize::MAX).is_err());
        let c = cipher(1, 2);
        assert!(matches!(
            c.seal(MAX_CHUNKS, true, b"x"),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            c.seal(u64::MAX, true, b"x"),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn nonce_and_aad_layout() {
        assert_eq!(
            chunk_nonce(0x0102_0304_0506_0708, true),
            [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1]
        );
        assert_eq!(chunk_nonce(0, false), [0; 12]);
        let aad = chunk_aad(&[9; 16], 5, true);
        assert_eq!(&aad[..6], b"VDFS\x00\x04");
        assert_eq!(&aad[6..22], &[9; 16]);
        assert_eq!(&aad[22..30], &5u64.to_be_bytes());
        assert_eq!(aad[30], 1);
    }

    #[test]
    fn seal_open_round_trip_and_owned_path_agree() {
        let c = cipher(1, 2);
        let full = vec![0xAB; ChunkSize::MIN.bytes()];
        let a = c.seal(3, false, &full).unwrap();
        assert_eq!(a.bytes.len(), full.len() + CHUNK_OVERHEAD);
        assert_eq!(
            a.bytes[full.len() + 16..full.len() + 24],
            [0; 8],
            "no expiry"
        );
        assert_eq!(
            a.bytes[full.len() + 24..],
            [0xcc; 32],
            "ends with the delete check"
        );
        assert_eq!(a.id, content_id(&a.bytes));
        let mut roomy = Vec::with_capacity(full.len() + CHUNK_OVERHEAD);
        roomy.extend_from_slice(&full);
        assert_eq!(c.seal_owned(3, false, roomy).unwrap(), a);
        assert_eq!(c.seal_owned(3, false, full.clone()).unwrap(), a);
        assert_eq!(
            *c.open_raw(3, false, Plaintext::new(a.bytes)).unwrap(),
            full
        );
    }

    #[test]
    fn writer_rules() {
        let c = cipher(1, 2);
        let full = ChunkSize::MIN.bytes();
        let reject = |index, is_final, len: usize| {
            assert!(
                matches!(
                    c.seal(index, is_final, &vec![0; len]),
                    Err(Error::InvalidChunk { .. })
                ),
                "{index} {is_final} {len}"
            );
            assert!(c.seal_owned(index, is_final, vec![0; len]).is_err());
        };
        reject(0, false, 0); // empty non-final chunk
        reject(1, true, 0); // empty final chunk after others
        reject(0, false, full - 1); // short non-final chunk
        reject(0, true, full + 1); // over-long chunk
        reject(0, false, full + 1);
        assert!(c.seal(0, true, &[]).is_ok());
        assert!(c.seal(0, true, &vec![0; full]).is_ok());
        assert!(c.seal(7, true, &[1]).is_ok());
    }

    #[test]
    fn nonce_binds_index_final_flag_and_file() {
        let c = cipher(1, 2);
        let sealed = c.seal(1, true, b"last").unwrap();
        for (index, is_final) in [(0, true), (2, true), (1, false)] {
            assert!(matches!(
                c.open_raw(index, is_final, Plaintext::new(sealed.bytes.clone())),
                Err(Error::Decrypt)
            ));
        }
        // Same key, other file nonce (AAD): refused.
        let key = AeadKey::new(&[1; 32]).unwrap();
        let other_file = ChunkCipher::new(key, [3; 16], ChunkSize::MIN, 0, [0xcc; 32]);
        assert!(
            other_file
                .open_raw(1, true, Plaintext::new(sealed.bytes.clone()))
                .is_err()
        );
        // Other key: refused.
        assert!(
            cipher(9, 2)
                .open_raw(1, true, Plaintext::new(sealed.bytes.clone()))
                .is_err()
        );
        // Too short to hold a tag and a check: refused, no panic.
        for len in 0..CHUNK_OVERHEAD {
            assert!(
                c.open_raw(1, true, Plaintext::new(sealed.bytes[..len].to_vec()))
                    .is_err()
            );
        }
        assert_eq!(
            *c.open_raw(1, true, Plaintext::new(sealed.bytes)).unwrap(),
            *b"last"
        );
    }
}
