//! A peer as a holder ([`RemoteHolder`]): the typed requests of the peer protocol, and the
//! proofs of possession this node asks of a peer and checks against its own copies.

use std::time::Duration;

use bytes::Bytes;
use voldisefs_crypto::DeleteKeyExt as _;
use voldisefs_net::{Network, Payload};
use voldisefs_proto::{
    ChunkId, ChunkProof, DeleteKey, MAX_BATCH, Message, PeerInfo, ProofNonce, proof,
};
use voldisefs_store::ChunkStore;

use super::health::{Failure, Health};
use super::holder::{Holder, HolderError, MAX_PROVE_BATCH};
use super::local::LocalHolder;
use super::plan::Status;

/// A peer as a holder: the typed requests of the peer protocol, each bounded by `timeout`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RemoteHolder<'a> {
    pub(crate) net: &'a Network,
    pub(crate) peer: PeerInfo,
    pub(crate) timeout: Duration,
}

impl RemoteHolder<'_> {
    async fn ask(&self, request: Payload) -> Result<Payload, HolderError> {
        match tokio::time::timeout(self.timeout, self.net.request(self.peer, request)).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(HolderError::Failed(format!(
                "peer {} did not answer within {:?}",
                self.peer.id, self.timeout
            ))),
        }
    }

    fn unexpected(&self, request: &str, got: &Message) -> HolderError {
        HolderError::Failed(format!(
            "peer {} answered {} to {request}",
            self.peer.id,
            got.kind()
        ))
    }

    /// Stores `bytes` under `id` on the peer.
    pub(crate) async fn put(&self, id: ChunkId, bytes: Bytes) -> Result<(), HolderError> {
        let answer = self
            .ask(Payload::with_body(Message::PutChunk { chunk: id }, bytes))
            .await?;
        match answer.message {
            Message::PutOk { chunk } if chunk == id => Ok(()),
            other => Err(self.unexpected("put_chunk", &other)),
        }
    }

    /// Fetches chunk `id` (not verified here).
    pub(crate) async fn get(&self, id: ChunkId) -> Result<Bytes, HolderError> {
        let answer = self
            .ask(Payload::new(Message::GetChunk { chunk: id }))
            .await?;
        match answer {
            Payload {
                message: Message::Chunk { chunk },
                body: Some(body),
            } if chunk == id => Ok(body),
            other => Err(self.unexpected("get_chunk", &other.message)),
        }
    }

    /// Which of `ids` the peer says it holds (a claim, not a proof).
    pub(crate) async fn has(&self, ids: &[ChunkId]) -> Result<Vec<bool>, HolderError> {
        let mut present = Vec::with_capacity(ids.len());
        for batch in ids.chunks(MAX_BATCH) {
            let ask = Payload::new(Message::HasChunks {
                chunks: batch.to_vec(),
            });
            match self.ask(ask).await?.message {
                Message::Have { present: p } if p.len() == batch.len() => present.extend(p),
                other => return Err(self.unexpected("has_chunks", &other)),
            }
        }
        Ok(present)
    }

    /// The peer's proofs of possession of `ids` (at most [`MAX_PROVE_BATCH`]) for `nonce`.
    pub(crate) async fn prove(
        &self,
        nonce: ProofNonce,
        ids: &[ChunkId],
    ) -> Result<Vec<ChunkProof>, HolderError> {
        let ask = Payload::new(Message::ProveChunks {
            nonce,
            chunks: ids.to_vec(),
        });
        match self.ask(ask).await?.message {
            Message::Proofs { proofs } if proofs.len() == ids.len() => Ok(proofs),
            other => Err(self.unexpected("prove_chunks", &other)),
        }
    }

    /// Asks the peer to drop `ids` (chunks of the file whose delete key is `key`) and keep
    /// tombstones for them.
    pub(crate) async fn delete(&self, key: &DeleteKey, ids: &[ChunkId]) -> Result<(), HolderError> {
        for batch in ids.chunks(MAX_BATCH) {
            let ask = Payload::new(Message::DeleteChunks {
                key: key.clone(),
                chunks: batch.to_vec(),
            });
            match self.ask(ask).await?.message {
                Message::Ack => {}
                other => return Err(self.unexpected("delete_chunks", &other)),
            }
        }
        Ok(())
    }
}

/// One answer of a proof round: the status and, for "deleted", the delete key that proved it.
pub(crate) type Proved = (Status, Option<DeleteKey>);

impl RemoteHolder<'_> {
    /// Asks the peer to prove it holds `ids` (checked against `local`'s copies) and returns
    /// one status per id: proven, missing, deleted, or failed (no answer, or a wrong proof,
    /// which demotes the peer in `health`). "Deleted" counts only with a delete key that fits
    /// the local copy (returned beside it); an answer "deleted" with a key that does not fit
    /// means the peer was told to delete by someone who cannot read the file, and counts as
    /// missing.
    pub(crate) async fn prove_checked(
        &self,
        local: &LocalHolder,
        health: &Health,
        ids: &[ChunkId],
    ) -> Vec<Proved> {
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(MAX_PROVE_BATCH) {
            out.extend(self.prove_batch(local, health, batch).await);
        }
        out
    }

    async fn prove_batch(
        &self,
        local: &LocalHolder,
        health: &Health,
        ids: &[ChunkId],
    ) -> Vec<Proved> {
        let peer = self.peer;
        let failed = vec![(Status::Failed, None); ids.len()];
        let Ok(nonce) = proof::fresh_nonce() else {
            tracing::error!("no randomness for a proof challenge");
            return failed;
        };
        let answer = self.prove(nonce, ids).await;
        let proofs = match answer {
            Ok(proofs) => proofs,
            Err(e) => {
                health.note::<()>(Holder::Remote(peer), Failure::Proof, &Err(e));
                return failed;
            }
        };
        let local: Vec<_> = ids.iter().map(|id| local.store.get(id)).collect();
        let ids = ids.to_vec();
        let checked = crate::cpu::run(move || {
            ids.iter()
                .zip(proofs)
                .zip(local)
                .map(|((id, answer), bytes)| match (answer, bytes) {
                    (ChunkProof::Held { proof: p }, Some(bytes)) => {
                        if proof::prove(&nonce, peer.id, id, &bytes) == p {
                            (Status::Proven, None)
                        } else {
                            (Status::Failed, None)
                        }
                    }
                    // Gone locally meanwhile: nothing to check against.
                    (ChunkProof::Held { .. }, None) => (Status::Unknown, None),
                    (ChunkProof::Missing, _) => (Status::Missing, None),
                    (ChunkProof::Deleted { key }, Some(bytes)) => {
                        if key.authorizes(&bytes) {
                            (Status::Deleted, Some(key))
                        } else {
                            tracing::debug!(peer = %peer.id, chunk = %id, "a peer's tombstone has a key that does not fit the chunk");
                            (Status::Missing, None)
                        }
                    }
                    (ChunkProof::Deleted { key }, None) => (Status::Deleted, Some(key)),
                })
                .collect::<Vec<_>>()
        })
        .await;
        match checked {
            Ok(statuses) => {
                if statuses.iter().any(|(s, _)| *s == Status::Failed) {
                    tracing::warn!(peer = %peer.id, "peer failed a proof of possession");
                    health.failure(peer.id, Failure::Proof);
                } else {
                    health.success(peer.id);
                }
                statuses
            }
            Err(e) => {
                tracing::error!(error = %e, "proof check failed");
                failed
            }
        }
    }
}
