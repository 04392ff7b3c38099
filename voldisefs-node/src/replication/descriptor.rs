//! Stripe descriptors as stored objects: how a holder recognises one and the shards it lists
//! (`voldisefs-crypto/FORMAT.md`, section 8).

use voldisefs_crypto::{MAX_DESCRIPTOR_LEN, Stripe};
use voldisefs_proto::ChunkId;

/// Whether a stored object is a stripe descriptor (a cheap check of length and magic, then a
/// full parse). Sealed chunks are ciphertext and records start with `VDFS`, so nothing else a
/// writer of this format stores parses as one.
pub(crate) fn descriptor(bytes: &[u8]) -> Option<Stripe> {
    if bytes.len() > MAX_DESCRIPTOR_LEN || !bytes.starts_with(b"VDST") {
        return None;
    }
    Stripe::parse(bytes).ok()
}

/// The shard ids of `stripe` as chunk ids.
pub(crate) fn shard_ids(stripe: &Stripe) -> Vec<ChunkId> {
    stripe
        .shard_ids()
        .iter()
        .map(|id| ChunkId::from_bytes(*id))
        .collect()
}
