//! Key schedule: HKDF-SHA256 subkeys of the KEK and the DEK, key commitment, DEK wrapping.
//!
//! ```text
//! KEK  = Argon2id(password, salt)                                   (kdf.rs)
//! PRK1 = HKDF-Extract(salt = file nonce, IKM = KEK)
//! wrap key   = HKDF-Expand(PRK1, "voldisefs v3 wrap key", 32)
//! commitment = HKDF-Expand(PRK1, "voldisefs v3 key commitment", 32)
//! PRK2 = HKDF-Extract(salt = file nonce, IKM = DEK)
//! read key     = HKDF-Expand(PRK2, "voldisefs v3 read key", 32)
//! delete key   = HKDF-Expand(PRK2, "voldisefs v2 delete key", 32)
//! PRK3 = HKDF-Extract(salt = file nonce, IKM = read key)
//! manifest key = HKDF-Expand(PRK3, "voldisefs v1 manifest key", 32)
//! chunk key    = HKDF-Expand(PRK3, "voldisefs v1 chunk key", 32)
//! ```

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::TAG_LEN;
use crate::delete::DeleteKey;
use crate::error::{Error, Result};
use crate::primitives::{AeadKey, NONCE_LEN, Prk, hkdf_extract};
use crate::read_key::ReadKey;

/// HKDF info label of the DEK-wrapping key (version 3: salted with the file nonce).
pub(crate) const INFO_WRAP: &[u8] = b"voldisefs v3 wrap key";
/// HKDF info label of the key commitment (version 3: salted with the file nonce).
pub(crate) const INFO_COMMITMENT: &[u8] = b"voldisefs v3 key commitment";
/// HKDF info label of the manifest key.
pub(crate) const INFO_MANIFEST: &[u8] = b"voldisefs v1 manifest key";
/// HKDF info label of the chunk key.
pub(crate) const INFO_CHUNK: &[u8] = b"voldisefs v1 chunk key";
/// HKDF info label of the delete key (new in format version 2).
pub(crate) const INFO_DELETE: &[u8] = b"voldisefs v2 delete key";
/// HKDF info label of the read key (new in format version 3).
pub(crate) const INFO_READ: &[u8] = b"voldisefs v3 read key";

/// Length of the data key.
pub(crate) const DEK_LEN: usize = 32;
/// Length of the wrapped data key: ciphertext plus GCM tag.
pub(crate) const WRAPPED_DEK_LEN: usize = DEK_LEN + TAG_LEN;
/// Length of the key commitment.
pub(crate) const COMMITMENT_LEN: usize = 32;

/// The per-file data key.
pub(crate) type Dek = Zeroizing<[u8; DEK_LEN]>;

fn aes_key(prk: &Prk, info: &'static [u8]) -> Result<AeadKey> {
    AeadKey::new(&*prk.expand32(info)?)
}

/// What the password (through the KEK) and one file's nonce give: the wrap key and the key
/// commitment of that file's record. Salting with the file nonce makes both unique per file
/// even when a batch of files shares one KEK (one salt, one Argon2id run).
pub(crate) struct PasswordKeys {
    wrap: AeadKey,
    commitment: Zeroizing<[u8; COMMITMENT_LEN]>,
}

impl PasswordKeys {
    pub(crate) fn derive(kek: &[u8], file_nonce: &[u8; 16]) -> Result<Self> {
        let prk = hkdf_extract(file_nonce, kek);
        let commitment = prk.expand32(INFO_COMMITMENT)?;
        Ok(PasswordKeys {
            wrap: aes_key(&prk, INFO_WRAP)?,
            commitment,
        })
    }

    /// The commitment to write into a header.
    pub(crate) fn commitment(&self) -> &[u8; COMMITMENT_LEN] {
        &self.commitment
    }

    /// Constant-time comparison against the commitment read from a header.
    pub(crate) fn commitment_matches(&self, stored: &[u8; COMMITMENT_LEN]) -> bool {
        bool::from(self.commitment.ct_eq(stored))
    }

    /// Wraps the DEK under the wrap key. The nonce is all zeros: the wrap key is unique to
    /// (password, salt, file nonce), and a writer draws a fresh file nonce for every file (and
    /// a fresh salt for every re-wrap), so each wrap key seals exactly one message. `aad` is the
    /// header up to (excluding) the wrapped DEK.
    pub(crate) fn wrap_dek(&self, dek: &Dek, aad: &[u8]) -> Result<[u8; WRAPPED_DEK_LEN]> {
        let mut out = [0u8; WRAPPED_DEK_LEN];
        out[..DEK_LEN].copy_from_slice(&dek[..]);
        let tag = self
            .wrap
            .seal_detached([0u8; NONCE_LEN], aad, &mut out[..DEK_LEN])?;
        out[DEK_LEN..].copy_from_slice(&tag);
        Ok(out)
    }

    /// Unwraps the DEK; any failure is [`Error::Decrypt`].
    pub(crate) fn unwrap_dek(&self, wrapped: &[u8; WRAPPED_DEK_LEN], aad: &[u8]) -> Result<Dek> {
        let mut buf = Zeroizing::new(*wrapped);
        let len = self.wrap.open([0u8; NONCE_LEN], aad, &mut buf[..])?;
        let mut dek = Zeroizing::new([0u8; DEK_LEN]);
        if len != DEK_LEN {
            return Err(Error::Decrypt);
        }
        dek.copy_from_slice(&buf[..DEK_LEN]);
        Ok(dek)
    }
}

/// What the DEK gives: the read key (and through it the manifest and chunk keys) and the
/// delete key.
pub(crate) struct DataKeys {
    pub(crate) manifest: AeadKey,
    pub(crate) chunk: AeadKey,
    pub(crate) delete: DeleteKey,
    pub(crate) read: ReadKey,
}

impl DataKeys {
    pub(crate) fn derive(dek: &Dek, file_nonce: &[u8; 16]) -> Result<Self> {
        let prk = hkdf_extract(file_nonce, &dek[..]);
        let delete = prk.expand32(INFO_DELETE)?;
        let read = ReadKey::from_bytes(*prk.expand32(INFO_READ)?);
        let ReadKeys { manifest, chunk } = ReadKeys::derive(&read, file_nonce)?;
        Ok(DataKeys {
            manifest,
            chunk,
            delete: DeleteKey::from_bytes(*delete),
            read,
        })
    }
}

/// What a read key gives: the manifest key and the chunk key.
pub(crate) struct ReadKeys {
    pub(crate) manifest: AeadKey,
    pub(crate) chunk: AeadKey,
}

impl ReadKeys {
    pub(crate) fn derive(read: &ReadKey, file_nonce: &[u8; 16]) -> Result<Self> {
        let prk = hkdf_extract(file_nonce, read.as_bytes());
        Ok(ReadKeys {
            manifest: aes_key(&prk, INFO_MANIFEST)?,
            chunk: aes_key(&prk, INFO_CHUNK)?,
        })
    }

    /// The raw chunk key of the file a read key opens, for a reader or writer whose chunk
    /// cipher lives outside this crate ([`crate::ExternalChunks`]).
    pub(crate) fn chunk_key_bytes(
        read: &ReadKey,
        file_nonce: &[u8; 16],
    ) -> Result<Zeroizing<[u8; 32]>> {
        hkdf_extract(file_nonce, read.as_bytes()).expand32(INFO_CHUNK)
    }
}

/// Test helper: the raw bytes of every subkey, for the documented test vector: wrap key,
/// commitment, manifest key, chunk key, delete key, read key.
#[cfg(test)]
pub(crate) fn subkey_bytes(kek: &[u8], dek: &[u8], file_nonce: &[u8; 16]) -> [[u8; 32]; 6] {
    let expand = |prk: &Prk, info: &'static [u8]| *prk.expand32(info).unwrap();
    let prk1 = hkdf_extract(file_nonce, kek);
    let prk2 = hkdf_extract(file_nonce, dek);
    let read = expand(&prk2, INFO_READ);
    let prk3 = hkdf_extract(file_nonce, &read);
    [
        expand(&prk1, INFO_WRAP),
        expand(&prk1, INFO_COMMITMENT),
        expand(&prk3, INFO_MANIFEST),
        expand(&prk3, INFO_CHUNK),
        expand(&prk2, INFO_DELETE),
        read,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitment_and_wrap_depend_on_kek() {
        let a = PasswordKeys::derive(&[1; 32], &[9; 16]).unwrap();
        let b = PasswordKeys::derive(&[2; 32], &[9; 16]).unwrap();
        // One KEK, two files: other nonce, other keys.
        let c = PasswordKeys::derive(&[1; 32], &[8; 16]).unwrap();
        assert_ne!(a.commitment(), c.commitment());
        assert_ne!(a.commitment(), b.commitment());
        assert!(a.commitment_matches(a.commitment()));
        assert!(!a.commitment_matches(b.commitment()));
        let dek: Dek = Zeroizing::new([7; 32]);
        let wrapped = a.wrap_dek(&dek, b"aad").unwrap();
        assert_eq!(*a.unwrap_dek(&wrapped, b"aad").unwrap(), *dek);
        assert!(matches!(
            b.unwrap_dek(&wrapped, b"aad"),
            Err(Error::Decrypt)
        ));
        assert!(matches!(
            c.unwrap_dek(&wrapped, b"aad"),
            Err(Error::Decrypt)
        ));
        assert!(matches!(
            a.unwrap_dek(&wrapped, b"aaD"),
            Err(Error::Decrypt)
        ));
        for bit in 0..WRAPPED_DEK_LEN * 8 {
            let mut bad = wrapped;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(a.unwrap_dek(&bad, b"aad").is_err());
        }
    }

    #[test]
    fn subkeys_are_distinct_and_match_ring_keys() {
        let kek = [3u8; 32];
        let dek: Dek = Zeroizing::new([4; 32]);
        let nonce = [5u8; 16];
        let raw = subkey_bytes(&kek, &dek[..], &nonce);
        for i in 0..raw.len() {
            for j in i + 1..raw.len() {
                assert_ne!(raw[i], raw[j]);
            }
        }
        assert_eq!(
            PasswordKeys::derive(&kek, &nonce).unwrap().commitment(),
            &raw[1]
        );
        // The chunk key is the documented chunk-key bytes.
        let keys = DataKeys::derive(&dek, &nonce).unwrap();
        let reference = AeadKey::new(&raw[3]).unwrap();
        let seal = |k: &AeadKey| {
            let mut buf = b"probe".to_vec();
            k.seal_append([0; 12], b"", &mut buf).unwrap();
            buf
        };
        assert_eq!(
            *ReadKeys::chunk_key_bytes(&keys.read, &nonce).unwrap(),
            raw[3]
        );
        assert_eq!(seal(&keys.chunk), seal(&reference));
        assert_ne!(seal(&keys.manifest), seal(&reference));
        // The file nonce is the HKDF salt: another nonce, other keys.
        let other = DataKeys::derive(&dek, &[6; 16]).unwrap();
        assert_ne!(seal(&other.chunk), seal(&reference));
    }
}
