//! Erasure-coded chunks: a sealed chunk as K data and M parity Reed-Solomon shards, and the
//! public **stripe descriptor** that names them (FORMAT.md section 8).
//!
//! A file stored with redundancy `rs:K+M` keeps no whole copy of its chunks. Each sealed chunk
//! `body || trailer` (ciphertext and tag, then the 40-byte public trailer) becomes K + M shard
//! objects: the body cut into K equal payloads (zero-padded to an even
//! length), and M parity payloads computed with Reed-Solomon over GF(2^16)
//! (`reed-solomon-simd`, Leopard-RS). Any K of them give the body back. A shard object is
//! `index(1) || payload || trailer`: the index byte keeps the ids of a stripe distinct even
//! where payloads are equal (the zero padding of a tiny chunk). Every shard object is
//! content addressed like a chunk (its id is its BLAKE3) and ends with the chunk's trailer, so
//! holders apply expiry and deletes to shards exactly as to chunks.
//!
//! The descriptor lists the shard ids in order; its own BLAKE3 is the **stripe id**, which the
//! sealed manifest lists in place of the chunk id. The descriptor reveals nothing but sizes and
//! ids, so holders keep it beside their shard and can rebuild a lost sibling without any key:
//! every shard they fetch is checked against its id here, and every rebuilt one too.
//!
//! ```
//! use voldisefs_crypto::{Redundancy, Stripe};
//!
//! let spec: Redundancy = "rs:4+2".parse()?;
//! let Redundancy::ErasureCoded { data, parity } = spec else { unreachable!() };
//! // A sealed chunk: body, then the 40-byte trailer.
//! let sealed: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
//! let encoded = Stripe::encode(data, parity, &sealed)?;
//! let stripe = Stripe::parse(&encoded.descriptor)?;
//! assert_eq!(stripe.id(), encoded.id);
//! // Lose any two shards: the chunk comes back.
//! let mut shards: Vec<Option<Vec<u8>>> = encoded.shards.into_iter().map(Some).collect();
//! shards[0] = None;
//! shards[3] = None;
//! assert_eq!(stripe.join(&shards)?, sealed);
//! # Ok::<(), voldisefs_crypto::Error>(())
//! ```

use std::collections::BTreeMap;

use crate::delete::TRAILER_LEN;
use crate::redundancy::{MAX_SHARDS, Redundancy};
use crate::{ChunkSize, Error, Result, TAG_LEN, content_id};

/// Magic at the start of a stripe descriptor.
const MAGIC: [u8; 4] = *b"VDST";
/// Descriptor layout version.
const VERSION: u8 = 1;
/// Fixed part of a descriptor: magic, version, K, M, reserved byte, body length.
const FIXED_LEN: usize = 4 + 1 + 1 + 1 + 1 + 4;
/// Longest sealed chunk body (ciphertext and tag) a stripe can carry.
const MAX_BODY_LEN: usize = (1 << ChunkSize::MAX_LOG2) + TAG_LEN;
/// Longest descriptor: [`MAX_SHARDS`] ids.
pub const MAX_DESCRIPTOR_LEN: usize = FIXED_LEN + 32 * MAX_SHARDS + TRAILER_LEN;

/// A parsed stripe descriptor: the shape of one erasure-coded chunk and its shard ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripe {
    data: u8,
    parity: u8,
    body_len: u32,
    shards: Vec<[u8; 32]>,
    trailer: [u8; TRAILER_LEN],
    id: [u8; 32],
}

/// What [`Stripe::encode`] makes of one sealed chunk.
#[derive(Debug, Clone)]
pub struct EncodedStripe {
    /// The descriptor object (stored like a chunk, under [`id`](Self::id)).
    pub descriptor: Vec<u8>,
    /// The stripe id: BLAKE3 of the descriptor.
    pub id: [u8; 32],
    /// The K + M shard objects, data shards first.
    pub shards: Vec<Vec<u8>>,
}

/// Payload length of each shard of a `body_len`-byte body cut into `data` pieces: rounded up
/// to an even number of bytes (Reed-Solomon works on 16-bit symbols), and at least
/// [`MIN_PAYLOAD_LEN`] so that every shard object is as long as the shortest chunk
/// ([`crate::MIN_STORED_LEN`]).
fn shard_len(body_len: usize, data: usize) -> usize {
    let len = body_len.div_ceil(data.max(1));
    (len + (len & 1)).max(MIN_PAYLOAD_LEN)
}

/// Shortest shard payload: the length of an empty chunk's body (its GCM tag).
const MIN_PAYLOAD_LEN: usize = TAG_LEN;

/// Reed-Solomon failures here mean inconsistent input (counts, lengths), never a secret.
fn rs_error(_e: reed_solomon_simd::Error) -> Error {
    Error::InvalidStripe("Reed-Solomon coding failed")
}

impl Stripe {
    /// Cuts a sealed chunk (`body || trailer`) into `data` + `parity` shard objects and builds
    /// their descriptor.
    pub fn encode(data: u8, parity: u8, sealed_chunk: &[u8]) -> Result<EncodedStripe> {
        Redundancy::ErasureCoded { data, parity }.validate()?;
        let body_len = sealed_chunk
            .len()
            .checked_sub(TRAILER_LEN)
            .filter(|len| (1..=MAX_BODY_LEN).contains(len))
            .ok_or(Error::InvalidStripe("not a sealed chunk"))?;
        let (body, trailer) = sealed_chunk.split_at(body_len);
        let (k, m) = (usize::from(data), usize::from(parity));
        let len = shard_len(body_len, k);
        let mut payloads: Vec<Vec<u8>> = (0..k)
            .map(|i| {
                let mut shard = Vec::with_capacity(len + TRAILER_LEN);
                let start = (i * len).min(body_len);
                let end = ((i + 1) * len).min(body_len);
                shard.extend_from_slice(&body[start..end]);
                shard.resize(len, 0);
                shard
            })
            .collect();
        let recovery = reed_solomon_simd::encode(k, m, payloads.iter()).map_err(rs_error)?;
        payloads.extend(recovery);
        let shards: Vec<Vec<u8>> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let mut shard = Vec::with_capacity(1 + payload.len() + TRAILER_LEN);
                shard.push(i as u8);
                shard.extend_from_slice(&payload);
                shard.extend_from_slice(trailer);
                shard
            })
            .collect();
        let mut stripe = Stripe {
            data,
            parity,
            body_len: u32::try_from(body_len).map_err(|_| Error::InvalidStripe("body too long"))?,
            shards: shards.iter().map(|s| content_id(s)).collect(),
            trailer: trailer
                .try_into()
                .map_err(|_| Error::InvalidStripe("not a sealed chunk"))?,
            id: [0; 32],
        };
        let descriptor = stripe.to_bytes();
        stripe.id = content_id(&descriptor);
        Ok(EncodedStripe {
            id: stripe.id,
            descriptor,
            shards,
        })
    }

    /// Parses and checks a descriptor: magic, version, bounds, exact length.
    pub fn parse(descriptor: &[u8]) -> Result<Self> {
        if descriptor.len() < FIXED_LEN + TRAILER_LEN || descriptor.len() > MAX_DESCRIPTOR_LEN {
            return Err(Error::InvalidStripe("descriptor length out of bounds"));
        }
        let (fixed, rest) = descriptor.split_at(FIXED_LEN);
        if fixed[..4] != MAGIC {
            return Err(Error::InvalidStripe("not a stripe descriptor"));
        }
        if fixed[4] != VERSION || fixed[7] != 0 {
            return Err(Error::InvalidStripe("unknown descriptor version"));
        }
        let (data, parity) = (fixed[5], fixed[6]);
        Redundancy::ErasureCoded { data, parity }
            .validate()
            .map_err(|_| Error::InvalidStripe("shard counts out of bounds"))?;
        let body_len = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
        if body_len == 0 || body_len as usize > MAX_BODY_LEN {
            return Err(Error::InvalidStripe("body length out of bounds"));
        }
        let n = usize::from(data) + usize::from(parity);
        if rest.len() != 32 * n + TRAILER_LEN {
            return Err(Error::InvalidStripe(
                "descriptor length does not match its shards",
            ));
        }
        let (ids, trailer) = rest.split_at(32 * n);
        let shards: Vec<[u8; 32]> = ids
            .chunks_exact(32)
            .map(|c| c.try_into().unwrap_or([0; 32]))
            .collect();
        Ok(Stripe {
            data,
            parity,
            body_len,
            shards,
            trailer: trailer
                .try_into()
                .map_err(|_| Error::InvalidStripe("descriptor trailer"))?,
            id: content_id(descriptor),
        })
    }

    /// The descriptor's bytes (what [`parse`](Self::parse) reads).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_LEN + 32 * self.shards.len() + TRAILER_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[VERSION, self.data, self.parity, 0]);
        out.extend_from_slice(&self.body_len.to_be_bytes());
        for id in &self.shards {
            out.extend_from_slice(id);
        }
        out.extend_from_slice(&self.trailer);
        out
    }

    /// The stripe id: BLAKE3 of the descriptor.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    /// K: data shards.
    pub fn data_shards(&self) -> usize {
        usize::from(self.data)
    }

    /// M: parity shards.
    pub fn parity_shards(&self) -> usize {
        usize::from(self.parity)
    }

    /// The redundancy this stripe gives.
    pub fn redundancy(&self) -> Redundancy {
        Redundancy::ErasureCoded {
            data: self.data,
            parity: self.parity,
        }
    }

    /// The shard ids, data shards first.
    pub fn shard_ids(&self) -> &[[u8; 32]] {
        &self.shards
    }

    /// Where `id` sits in the stripe, if it is one of its shards.
    pub fn shard_index(&self, id: &[u8; 32]) -> Option<usize> {
        self.shards.iter().position(|s| s == id)
    }

    /// Length of every shard object (payload and trailer).
    pub fn shard_object_len(&self) -> usize {
        1 + shard_len(self.body_len as usize, self.data_shards()) + TRAILER_LEN
    }

    /// Length of the sealed chunk the stripe carries (body and trailer).
    pub fn chunk_len(&self) -> usize {
        self.body_len as usize + TRAILER_LEN
    }

    /// The public trailer (expiry, delete check) of the chunk, its shards and the descriptor.
    pub fn trailer(&self) -> &[u8; TRAILER_LEN] {
        &self.trailer
    }

    /// Whether `object` is shard `index` of this stripe (its BLAKE3 is the listed id).
    pub fn check_shard(&self, index: usize, object: &[u8]) -> bool {
        self.shards.get(index) == Some(&content_id(object))
    }

    /// Restores the payloads of the data shards missing from `shards` (indexed like
    /// [`shard_ids`](Self::shard_ids); each present one already checked against its id).
    fn data_payloads<'a, T: AsRef<[u8]>>(
        &self,
        shards: &'a [Option<T>],
    ) -> Result<Vec<PayloadRef<'a>>> {
        let (k, n) = (self.data_shards(), self.shards.len());
        if shards.len() != n {
            return Err(Error::InvalidStripe("wrong number of shard slots"));
        }
        let object_len = self.shard_object_len();
        let payload_len = object_len - TRAILER_LEN - 1;
        for shard in shards.iter().flatten() {
            if shard.as_ref().len() != object_len {
                return Err(Error::InvalidStripe("shard of the wrong length"));
            }
        }
        let payload = |i: usize| shards[i].as_ref().map(|s| &s.as_ref()[1..1 + payload_len]);
        if (0..k).all(|i| shards[i].is_some()) {
            return Ok((0..k)
                .filter_map(|i| payload(i).map(PayloadRef::Borrowed))
                .collect());
        }
        if shards.iter().flatten().count() < k {
            return Err(Error::InvalidStripe(
                "fewer shards than the data shard count",
            ));
        }
        let originals = (0..k).filter_map(|i| payload(i).map(|p| (i, p)));
        let recovery = (k..n).filter_map(|i| payload(i).map(|p| (i - k, p)));
        let mut restored: BTreeMap<usize, Vec<u8>> =
            reed_solomon_simd::decode(k, n - k, originals, recovery).map_err(rs_error)?;
        (0..k)
            .map(|i| match payload(i) {
                Some(p) => Ok(PayloadRef::Borrowed(p)),
                None => restored
                    .remove(&i)
                    .map(PayloadRef::Owned)
                    .ok_or(Error::InvalidStripe("a data shard was not restored")),
            })
            .collect()
    }

    /// The sealed chunk (`body || trailer`) from any K of its shards (`None` for the missing
    /// ones, indexed like [`shard_ids`](Self::shard_ids)). Callers check each shard against
    /// its id first ([`check_shard`](Self::check_shard)); Reed-Solomon decoding runs only when
    /// a data shard is missing. The chunk's own AEAD tag is what proves the result.
    pub fn join<T: AsRef<[u8]>>(&self, shards: &[Option<T>]) -> Result<Vec<u8>> {
        let payloads = self.data_payloads(shards)?;
        let body_len = self.body_len as usize;
        let mut out = Vec::with_capacity(body_len + TRAILER_LEN);
        for p in &payloads {
            let take = (body_len - out.len()).min(p.as_ref().len());
            out.extend_from_slice(&p.as_ref()[..take]);
        }
        if out.len() != body_len {
            return Err(Error::InvalidStripe("shards shorter than the body"));
        }
        out.extend_from_slice(&self.trailer);
        Ok(out)
    }

    /// Rebuilds the shard objects `wanted` (indices) from any K present ones, each checked
    /// against its listed id: a wrong input shard gives an error, never a wrong shard.
    pub fn rebuild<T: AsRef<[u8]>>(
        &self,
        shards: &[Option<T>],
        wanted: &[usize],
    ) -> Result<Vec<Vec<u8>>> {
        let k = self.data_shards();
        let payloads = self.data_payloads(shards)?;
        let needs_parity = wanted.iter().any(|&i| i >= k);
        let parity = if needs_parity {
            reed_solomon_simd::encode(k, self.parity_shards(), payloads.iter().map(|p| p.as_ref()))
                .map_err(rs_error)?
        } else {
            Vec::new()
        };
        wanted
            .iter()
            .map(|&i| {
                let payload: &[u8] = if i < k {
                    payloads[i].as_ref()
                } else {
                    parity
                        .get(i - k)
                        .map(Vec::as_slice)
                        .ok_or(Error::InvalidStripe("shard index out of range"))?
                };
                let mut object = Vec::with_capacity(1 + payload.len() + TRAILER_LEN);
                object.push(i as u8);
                object.extend_from_slice(payload);
                object.extend_from_slice(&self.trailer);
                if self.check_shard(i, &object) {
                    Ok(object)
                } else {
                    Err(Error::InvalidStripe(
                        "a rebuilt shard does not match its id",
                    ))
                }
            })
            .collect()
    }
}

/// A data shard's payload: borrowed from a fetched shard or restored by decoding.
enum PayloadRef<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for PayloadRef<'_> {
    fn as_ref(&self) -> &[u8] {
        match self {
            PayloadRef::Borrowed(p) => p,
            PayloadRef::Owned(p) => p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk(body_len: usize, seed: u8) -> Vec<u8> {
        let mut out: Vec<u8> = (0..body_len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        out.extend_from_slice(&[seed; TRAILER_LEN]);
        out
    }

    /// Every subset of `n` indices with at most `max` members.
    fn loss_patterns(n: usize, max: usize) -> Vec<Vec<usize>> {
        (0u32..1 << n)
            .filter(|mask| mask.count_ones() as usize <= max)
            .map(|mask| (0..n).filter(|i| mask & (1 << i) != 0).collect())
            .collect()
    }

    #[test]
    fn boundary_sizes_survive_every_loss_of_up_to_m_shards() {
        let (k, m) = (4u8, 2u8);
        // 1 byte, one short of a shard, a shard, an odd size, a 64 KiB chunk.
        for body_len in [
            1usize,
            2,
            3,
            7,
            8,
            9,
            1023,
            1024,
            1025,
            (64 << 10) + TAG_LEN,
        ] {
            let sealed = chunk(body_len, body_len as u8);
            let encoded = Stripe::encode(k, m, &sealed).unwrap();
            let stripe = Stripe::parse(&encoded.descriptor).unwrap();
            assert_eq!(stripe.id(), encoded.id);
            assert_eq!(stripe.chunk_len(), sealed.len());
            for (i, shard) in encoded.shards.iter().enumerate() {
                assert!(stripe.check_shard(i, shard));
                assert_eq!(shard.len(), stripe.shard_object_len());
                assert!(
                    shard.ends_with(&sealed[body_len..]),
                    "shards carry the trailer"
                );
            }
            for lost in loss_patterns(6, 2) {
                let mut shards: Vec<Option<Vec<u8>>> =
                    encoded.shards.iter().cloned().map(Some).collect();
                for &i in &lost {
                    shards[i] = None;
                }
                assert_eq!(stripe.join(&shards).unwrap(), sealed, "{body_len} {lost:?}");
                let rebuilt = stripe.rebuild(&shards, &lost).unwrap();
                for (&i, shard) in lost.iter().zip(&rebuilt) {
                    assert_eq!(shard, &encoded.shards[i], "{body_len} {lost:?}");
                }
            }
            // M + 1 losses: refused, not guessed.
            let mut shards: Vec<Option<Vec<u8>>> = encoded.shards.into_iter().map(Some).collect();
            for i in [0, 2, 5] {
                shards[i] = None;
            }
            assert!(stripe.join(&shards).is_err());
        }
    }

    #[test]
    fn a_wrong_input_shard_never_yields_a_wrong_shard() {
        let sealed = chunk(5000, 9);
        let encoded = Stripe::encode(4, 2, &sealed).unwrap();
        let stripe = Stripe::parse(&encoded.descriptor).unwrap();
        let mut shards: Vec<Option<Vec<u8>>> = encoded.shards.iter().cloned().map(Some).collect();
        shards[1] = None;
        if let Some(s) = shards[4].as_mut() {
            s[1] ^= 1; // A payload byte (byte 0 is the index).
        }
        shards[0] = None;
        assert!(stripe.rebuild(&shards, &[0, 1]).is_err());
        assert!(!stripe.check_shard(4, shards[4].as_deref().unwrap()));
        // A shard checked at another index is refused.
        assert!(!stripe.check_shard(3, &encoded.shards[2]));
        assert!(!stripe.check_shard(9, &encoded.shards[2]));
    }

    #[test]
    fn hostile_descriptors_are_refused() {
        let encoded = Stripe::encode(4, 2, &chunk(100, 1)).unwrap();
        let good = encoded.descriptor;
        assert!(Stripe::parse(&good).is_ok());
        let mut bad = good.clone();
        bad[0] ^= 1;
        assert!(Stripe::parse(&bad).is_err(), "magic");
        let mut bad = good.clone();
        bad[4] = 2;
        assert!(Stripe::parse(&bad).is_err(), "version");
        let mut bad = good.clone();
        bad[5] = 5;
        assert!(Stripe::parse(&bad).is_err(), "K does not match the ids");
        let mut bad = good.clone();
        bad[6] = 0;
        assert!(Stripe::parse(&bad).is_err(), "M = 0");
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&0u32.to_be_bytes());
        assert!(Stripe::parse(&bad).is_err(), "empty body");
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Stripe::parse(&bad).is_err(), "huge body");
        assert!(Stripe::parse(&good[..good.len() - 1]).is_err(), "truncated");
        assert!(Stripe::parse(&[]).is_err());
        assert!(Stripe::parse(&vec![0; MAX_DESCRIPTOR_LEN + 1]).is_err());
        assert!(Stripe::encode(4, 2, &[0; TRAILER_LEN]).is_err(), "no body");
        assert!(Stripe::encode(0, 2, &chunk(10, 0)).is_err());
        assert!(Stripe::encode(30, 3, &chunk(10, 0)).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn any_k_of_n_shards_give_the_chunk_back(
            k in 1u8..=8,
            m in 1u8..=4,
            body_len in 1usize..4096,
            seed: u8,
            lost_mask: u32,
        ) {
            let sealed = chunk(body_len, seed);
            let encoded = Stripe::encode(k, m, &sealed).unwrap();
            let stripe = Stripe::parse(&encoded.descriptor).unwrap();
            prop_assert_eq!(&stripe.to_bytes(), &encoded.descriptor);
            let n = usize::from(k) + usize::from(m);
            // Lose up to M shards chosen by the mask.
            let lost: Vec<usize> = (0..n)
                .filter(|i| lost_mask & (1 << i) != 0)
                .take(usize::from(m))
                .collect();
            let mut shards: Vec<Option<Vec<u8>>> = encoded.shards.iter().cloned().map(Some).collect();
            for &i in &lost {
                shards[i] = None;
            }
            prop_assert_eq!(stripe.join(&shards).unwrap(), sealed);
            let rebuilt = stripe.rebuild(&shards, &lost).unwrap();
            for (&i, shard) in lost.iter().zip(&rebuilt) {
                prop_assert_eq!(shard, &encoded.shards[i]);
            }
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let _ = Stripe::parse(&bytes);
        }
    }
}
