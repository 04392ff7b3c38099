//! Proof of possession: a holder shows it still has a chunk's bytes by hashing them with a
//! fresh nonce chosen by the verifier.
//!
//! `proof = SHA-256("voldisefs-proof-v1" || nonce || prover node id || chunk id || len ||
//! sample)`, where `sample` is the whole chunk when it is at most [`SAMPLE_ALL_UP_TO`] bytes,
//! and otherwise [`WINDOWS`] windows of [`WINDOW`] bytes at offsets derived from the nonce and
//! the chunk id (SHA-256 of both, read as big-endian `u64`s, modulo `len - WINDOW + 1`).
//!
//! Only a node holding the bytes can answer, and a verifier that holds the bytes itself checks
//! the answer by computing the same digest. Sampling keeps a proof cheap (32 KiB hashed per
//! chunk, whatever its size); a fresh nonce picks other windows every time, so a holder that
//! kept only part of a chunk fails sooner or later, and one that kept nothing fails at once.
//! (Content integrity is not the proof's job: every read checks a chunk against its id.) The
//! prover's own node id is part of the input, so a node cannot pass off another holder's
//! answer (obtained by relaying the challenge) as its own: the other holder hashes its own id.

use crate::{ChunkId, NodeId, ProofDigest, ProofNonce};

/// Domain-separation prefix of every proof.
const DOMAIN: &[u8] = b"voldisefs-proof-v1";

/// Bytes in one sampled window.
pub const WINDOW: usize = 4096;
/// Windows sampled from a chunk longer than [`SAMPLE_ALL_UP_TO`].
pub const WINDOWS: usize = 8;
/// Chunks up to this length are hashed whole.
pub const SAMPLE_ALL_UP_TO: usize = 64 * 1024;

/// Where the sampled windows of a `len`-byte chunk start, for `nonce` and `chunk`.
fn offsets(nonce: &ProofNonce, chunk: &ChunkId, len: usize) -> [usize; WINDOWS] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(DOMAIN);
    ctx.update(nonce.as_bytes());
    ctx.update(chunk.as_bytes());
    let seed = ctx.finish();
    let span = (len - WINDOW + 1) as u64;
    let mut out = [0usize; WINDOWS];
    for (i, slot) in out.iter_mut().enumerate() {
        let mut wide = ring::digest::Context::new(&ring::digest::SHA256);
        wide.update(seed.as_ref());
        wide.update(&(i as u64).to_be_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&wide.finish().as_ref()[..8]);
        // `span` fits in usize, so the remainder does too.
        *slot = (u64::from_be_bytes(first) % span) as usize;
    }
    out
}

/// The proof that node `prover` holds `bytes` (the content of `chunk`) for challenge `nonce`.
pub fn prove(nonce: &ProofNonce, prover: NodeId, chunk: &ChunkId, bytes: &[u8]) -> ProofDigest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(DOMAIN);
    ctx.update(nonce.as_bytes());
    ctx.update(prover.as_bytes());
    ctx.update(chunk.as_bytes());
    ctx.update(&(bytes.len() as u64).to_be_bytes());
    if bytes.len() <= SAMPLE_ALL_UP_TO {
        ctx.update(bytes);
    } else {
        for at in offsets(nonce, chunk, bytes.len()) {
            ctx.update(&bytes[at..at + WINDOW]);
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    ProofDigest::from_bytes(out)
}

/// A fresh random nonce from the operating system's generator.
pub fn fresh_nonce() -> Result<ProofNonce, ring::error::Unspecified> {
    let bytes: [u8; 32] = crate::entropy::bytes().map_err(|_| ring::error::Unspecified)?;
    Ok(ProofNonce::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_depends_on_every_input() {
        let nonce = ProofNonce::from_bytes([1; 32]);
        let (a, b) = (NodeId::random(), NodeId::random());
        let id = ChunkId::digest(b"data");
        let p = prove(&nonce, a, &id, b"data");
        assert_eq!(p, prove(&nonce, a, &id, b"data"));
        assert_ne!(p, prove(&ProofNonce::from_bytes([2; 32]), a, &id, b"data"));
        assert_ne!(p, prove(&nonce, b, &id, b"data"), "bound to the prover");
        assert_ne!(p, prove(&nonce, a, &ChunkId::digest(b"x"), b"data"));
        assert_ne!(p, prove(&nonce, a, &id, b"datA"));
    }

    #[test]
    fn large_chunks_are_sampled_by_the_nonce() {
        let id = ChunkId::digest(b"big");
        let me = NodeId::random();
        let big: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let nonce = ProofNonce::from_bytes([3; 32]);
        let p = prove(&nonce, me, &id, &big);
        // Flipping a sampled byte changes the proof; so does dropping the last byte.
        let at = offsets(&nonce, &id, big.len())[0];
        let mut flipped = big.clone();
        flipped[at] ^= 1;
        assert_ne!(p, prove(&nonce, me, &id, &flipped));
        assert_ne!(p, prove(&nonce, me, &id, &big[..big.len() - 1]));
        // Other nonces sample other places.
        let other = offsets(&ProofNonce::from_bytes([4; 32]), &id, big.len());
        assert_ne!(offsets(&nonce, &id, big.len()), other);
        // Windows stay inside the chunk, including the smallest sampled length.
        for len in [SAMPLE_ALL_UP_TO + 1, 1 << 20, 16 << 20] {
            for n in 0..50u8 {
                let offs = offsets(&ProofNonce::from_bytes([n; 32]), &id, len);
                assert!(offs.iter().all(|o| o + WINDOW <= len));
            }
        }
        // A holder that kept only half the chunk fails most challenges.
        let half: Vec<u8> = big[..big.len() / 2]
            .iter()
            .copied()
            .chain(std::iter::repeat_n(0, big.len() / 2))
            .collect();
        let failed = (0..100u8)
            .filter(|n| {
                let nonce = ProofNonce::from_bytes([*n; 32]);
                prove(&nonce, me, &id, &half) != prove(&nonce, me, &id, &big)
            })
            .count();
        assert!(failed > 90, "{failed} of 100 challenges caught it");
    }

    #[test]
    fn nonces_are_fresh() {
        assert_ne!(fresh_nonce().unwrap(), fresh_nonce().unwrap());
    }
}
