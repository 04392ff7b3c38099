//! The primitives the format is built from, behind one small interface: AES-256-GCM,
//! HKDF-SHA256, SHA-256, HMAC-SHA256 and the system's random generator.
//!
//! Native builds use ring (AES-NI and CLMUL where the CPU has them). A browser build
//! (`wasm32-unknown-unknown`) uses the RustCrypto crates instead: pure Rust, so building the
//! page's WebAssembly needs no C compiler, and randomness comes from the browser's
//! `crypto.getRandomValues`. Both give the same bytes: FORMAT.md's vectors are checked on both
//! (natively by `cargo test`, in the browser by the page's own check). The page hands bulk
//! chunk sealing to WebCrypto anyway (see [`crate::ExternalChunks`]), so the software AES here
//! only ever seals keys and manifests there.

use zeroize::Zeroizing;

use crate::error::Result;

pub(crate) use backend::{AeadKey, MacKey, Prk, fill_random, hkdf_extract, sha256};

/// Length of an AES-GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;

/// `N` random bytes from the system's generator.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    fill_random(&mut out)?;
    Ok(out)
}

/// A 32-byte secret drawn from the system's generator, wiped when dropped.
pub(crate) fn random_secret() -> Result<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    fill_random(&mut out[..])?;
    Ok(out)
}

#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
mod backend {
    use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use ring::hkdf::{HKDF_SHA256, KeyType, Salt};
    use ring::hmac;
    use zeroize::Zeroizing;

    use super::NONCE_LEN;
    use crate::TAG_LEN;
    use crate::error::{Error, Result};

    /// An AES-256-GCM key.
    pub(crate) struct AeadKey(LessSafeKey);

    impl AeadKey {
        /// The key of these 32 bytes.
        pub(crate) fn new(key: &[u8; 32]) -> Result<Self> {
            UnboundKey::new(&AES_256_GCM, key)
                .map(|k| Self(LessSafeKey::new(k)))
                .map_err(|_| Error::Internal("AES-GCM key"))
        }

        /// Seals `buf` in place and appends the tag.
        pub(crate) fn seal_append(
            &self,
            nonce: [u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut Vec<u8>,
        ) -> Result<()> {
            self.0
                .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
                .map_err(|_| Error::Internal("AES-GCM seal"))
        }

        /// Seals `buf` in place and returns the tag.
        pub(crate) fn seal_detached(
            &self,
            nonce: [u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
        ) -> Result<[u8; TAG_LEN]> {
            let tag = self
                .0
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(aad),
                    buf,
                )
                .map_err(|_| Error::Internal("AES-GCM seal"))?;
            let mut out = [0u8; TAG_LEN];
            out.copy_from_slice(tag.as_ref());
            Ok(out)
        }

        /// Opens `ciphertext || tag` in place; returns the plaintext's length (the plaintext is
        /// `buf[..len]`). Any failure is [`Error::Decrypt`].
        pub(crate) fn open(
            &self,
            nonce: [u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
        ) -> Result<usize> {
            self.0
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
                .map(|plain| plain.len())
                .map_err(|_| Error::Decrypt)
        }
    }

    /// HKDF output length: 32 bytes.
    struct Len32;

    impl KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }

    /// An HKDF-SHA256 pseudorandom key.
    pub(crate) struct Prk(ring::hkdf::Prk);

    /// HKDF-Extract with `salt` over `ikm`.
    pub(crate) fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> Prk {
        Prk(Salt::new(HKDF_SHA256, salt).extract(ikm))
    }

    impl Prk {
        /// HKDF-Expand to 32 bytes under `info`.
        pub(crate) fn expand32(&self, info: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
            let mut out = Zeroizing::new([0u8; 32]);
            self.0
                .expand(&[info], Len32)
                .and_then(|okm| okm.fill(&mut out[..]))
                .map_err(|_| Error::Internal("HKDF expand"))?;
            Ok(out)
        }
    }

    /// SHA-256 of the concatenation of `parts`.
    pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in parts {
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// An HMAC-SHA256 key drawn at random.
    pub(crate) struct MacKey(hmac::Key);

    impl MacKey {
        /// A fresh random key.
        pub(crate) fn generate() -> Result<Self> {
            let raw =
                Zeroizing::new(voldisefs_proto::entropy::bytes::<32>().map_err(|_| Error::Rng)?);
            Ok(Self(hmac::Key::new(hmac::HMAC_SHA256, &raw[..])))
        }

        /// HMAC of the concatenation of `parts`.
        pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
            let mut ctx = hmac::Context::with_key(&self.0);
            for part in parts {
                ctx.update(part);
            }
            let mut out = [0u8; 32];
            out.copy_from_slice(ctx.sign().as_ref());
            out
        }
    }

    /// Fills `out` from the system's random generator (`voldisefs_proto::entropy`, the one
    /// source of every native draw).
    pub(crate) fn fill_random(out: &mut [u8]) -> Result<()> {
        voldisefs_proto::entropy::fill(out).map_err(|_| Error::Rng)
    }
}

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod backend {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce, Tag};
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    use zeroize::Zeroizing;

    use super::NONCE_LEN;
    use crate::TAG_LEN;
    use crate::error::{Error, Result};

    /// An AES-256-GCM key (its key schedule is wiped when dropped).
    pub(crate) struct AeadKey(Aes256Gcm);

    impl AeadKey {
        /// The key of these 32 bytes.
        pub(crate) fn new(key: &[u8; 32]) -> Result<Self> {
            Aes256Gcm::new_from_slice(key)
                .map(Self)
                .map_err(|_| Error::Internal("AES-GCM key"))
        }

        /// Seals `buf` in place and appends the tag.
        pub(crate) fn seal_append(
            &self,
            nonce: [u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut Vec<u8>,
        ) -> Result<()> {
            let tag = self.seal_detached(nonce, aad, buf)?;
            buf.extend_from_slice(&tag);
            Ok(())
        }

        /// Seals `buf` in place and returns the tag.
        pub(crate) fn seal_detached(
            &self,
            nonce: [u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
        ) -> Result<[u8; TAG_LEN]> {
            let tag = self
                .0
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, buf)
                .map_err(|_| Error::Internal("AES-GCM seal"))?;
            let mut out = [0u8; TAG_LEN];
            out.copy_from_slice(&tag);
            Ok(out)
        }

        /// Opens `ciphertext || tag` in place; returns the plaintext's length (the plaintext is
        /// `buf[..len]`). Any failure is [`Error::Decrypt`].
        pub(crate) fn open(
            &self,
            nonce: [u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
        ) -> Result<usize> {
            let len = buf.len().checked_sub(TAG_LEN).ok_or(Error::Decrypt)?;
            let (body, tag) = buf.split_at_mut(len);
            let tag = Tag::clone_from_slice(tag);
            self.0
                .decrypt_in_place_detached(Nonce::from_slice(&nonce), aad, body, &tag)
                .map_err(|_| Error::Decrypt)?;
            Ok(len)
        }
    }

    /// An HKDF-SHA256 pseudorandom key.
    pub(crate) struct Prk(Zeroizing<[u8; 32]>);

    /// HKDF-Extract with `salt` over `ikm`.
    pub(crate) fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> Prk {
        let (prk, _) = hkdf::Hkdf::<Sha256>::extract(Some(salt), ikm);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&prk);
        Prk(out)
    }

    impl Prk {
        /// HKDF-Expand to 32 bytes under `info`.
        pub(crate) fn expand32(&self, info: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
            let hk = hkdf::Hkdf::<Sha256>::from_prk(&self.0[..])
                .map_err(|_| Error::Internal("HKDF expand"))?;
            let mut out = Zeroizing::new([0u8; 32]);
            hk.expand(info, &mut out[..])
                .map_err(|_| Error::Internal("HKDF expand"))?;
            Ok(out)
        }
    }

    /// SHA-256 of the concatenation of `parts`.
    pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
        let mut ctx = Sha256::new();
        for part in parts {
            ctx.update(part);
        }
        ctx.finalize().into()
    }

    /// An HMAC-SHA256 key drawn at random.
    pub(crate) struct MacKey(Zeroizing<[u8; 32]>);

    impl MacKey {
        /// A fresh random key.
        pub(crate) fn generate() -> Result<Self> {
            super::random_secret().map(Self)
        }

        /// HMAC of the concatenation of `parts`.
        pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
            // HMAC takes keys of any length: this cannot fail.
            let Ok(mut ctx) = <Hmac<Sha256> as Mac>::new_from_slice(&self.0[..]) else {
                return [0u8; 32];
            };
            for part in parts {
                ctx.update(part);
            }
            ctx.finalize().into_bytes().into()
        }
    }

    /// Fills `out` from the browser's `crypto.getRandomValues`.
    pub(crate) fn fill_random(out: &mut [u8]) -> Result<()> {
        getrandom::getrandom(out).map_err(|_| Error::Rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn aead_round_trip_and_tamper() {
        let key = AeadKey::new(&[7; 32]).unwrap();
        let mut buf = b"hello".to_vec();
        key.seal_append([1; NONCE_LEN], b"aad", &mut buf).unwrap();
        assert_eq!(buf.len(), 5 + crate::TAG_LEN);
        let mut copy = buf.clone();
        let len = key.open([1; NONCE_LEN], b"aad", &mut copy).unwrap();
        assert_eq!(&copy[..len], b"hello");
        let mut other_aad = buf.clone();
        assert!(matches!(
            key.open([1; NONCE_LEN], b"aaD", &mut other_aad),
            Err(Error::Decrypt)
        ));
        let mut short = vec![0u8; 3];
        assert!(key.open([1; NONCE_LEN], b"", &mut short).is_err());
        let mut detached = b"hello".to_vec();
        let tag = key
            .seal_detached([1; NONCE_LEN], b"aad", &mut detached)
            .unwrap();
        detached.extend_from_slice(&tag);
        assert_eq!(detached, buf);
    }

    #[test]
    fn hkdf_matches_rfc5869_case_1() {
        // RFC 5869, A.1 (first 32 bytes of the 42-byte OKM).
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let okm = hkdf_extract(&salt, &ikm).expand32(&info).unwrap();
        assert_eq!(
            hex::encode(&okm[..]),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    #[test]
    fn sha256_and_mac_hash_the_concatenation() {
        assert_eq!(
            hex::encode(sha256(&[b"a", b"bc"])),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let key = MacKey::generate().unwrap();
        assert_eq!(key.mac(&[b"ab", b"c"]), key.mac(&[b"abc"]));
        assert_ne!(
            key.mac(&[b"abc"]),
            MacKey::generate().unwrap().mac(&[b"abc"])
        );
        assert_ne!(random::<16>().unwrap(), random::<16>().unwrap());
        assert_eq!(random_secret().unwrap().len(), 32);
    }
}
