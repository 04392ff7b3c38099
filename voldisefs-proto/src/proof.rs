//! Proof of possession: a holder shows it still has a chunk's bytes by hashing them with a
//! fresh nonce chosen by the verifier.
//!
//! `proof = SHA-256("voldisefs-proof-v1" || nonce || prover node id || chunk id || bytes)`.
//!
//! Only a node holding the bytes can answer, and a verifier that holds the bytes itself checks
//! the answer by computing the same digest. The prover's own node id is part of the input, so
//! a node cannot pass off another holder's answer (obtained by relaying the challenge) as its
//! own: the other holder hashes its own id.

use crate::{ChunkId, NodeId, ProofDigest, ProofNonce};

/// Domain-separation prefix of every proof.
const DOMAIN: &[u8] = b"voldisefs-proof-v1";

/// The proof that node `prover` holds `bytes` (the content of `chunk`) for challenge `nonce`.
pub fn prove(nonce: &ProofNonce, prover: NodeId, chunk: &ChunkId, bytes: &[u8]) -> ProofDigest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(DOMAIN);
    ctx.update(nonce.as_bytes());
    ctx.update(prover.as_bytes());
    ctx.update(chunk.as_bytes());
    ctx.update(bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    ProofDigest::from_bytes(out)
}

/// A fresh random nonce from the operating system's generator.
pub fn fresh_nonce() -> Result<ProofNonce, ring::error::Unspecified> {
    let bytes: [u8; 32] = ring::rand::generate(&ring::rand::SystemRandom::new())?.expose();
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
    fn nonces_are_fresh() {
        assert_ne!(fresh_nonce().unwrap(), fresh_nonce().unwrap());
    }
}
