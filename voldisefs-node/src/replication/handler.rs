//! What a node answers to its peers: storing, serving, proving and deleting chunks, all
//! through the node's [`LocalHolder`].

use std::sync::Arc;

use voldisefs_net::{Handler, Payload};
use voldisefs_proto::{ErrorCode, MAX_BATCH, Message, NodeId};
use voldisefs_store::ChunkStore;

use super::holder::{HolderError, MAX_PROVE_BATCH};
use super::local::LocalHolder;

/// Serves this node's store to peers. Every put is verified against its id and refused when
/// the id is tombstoned; batches are capped ([`MAX_BATCH`] ids, [`MAX_PROVE_BATCH`] proofs),
/// and the hashing proofs cost is rate-limited per peer and for the node (see `budget`).
#[derive(Debug, Clone)]
pub(crate) struct StoreHandler {
    pub(crate) local: Arc<LocalHolder>,
}

fn error(e: &HolderError) -> Message {
    let code = match e {
        HolderError::NotFound => ErrorCode::NotFound,
        HolderError::Deleted => ErrorCode::Deleted,
        HolderError::Full(_) => ErrorCode::Full,
        HolderError::Busy(_) => ErrorCode::Unavailable,
        HolderError::Refused(_) => ErrorCode::IntegrityMismatch,
        HolderError::TooShort(_) => ErrorCode::BadRequest,
        HolderError::Failed(_) => ErrorCode::Internal,
    };
    Message::error(code, e.to_string())
}

fn too_many(kind: &str, len: usize, max: usize) -> Message {
    Message::error(
        ErrorCode::BadRequest,
        format!("{kind} with {len} ids; at most {max} per request"),
    )
}

impl Handler for StoreHandler {
    async fn handle(&self, from: NodeId, request: Payload) -> Payload {
        let local = &self.local;
        let message = match request.message {
            Message::PutChunk { chunk } => {
                let body = request.body.unwrap_or_default();
                match local.put_received(chunk, body).await {
                    Ok(()) => Message::PutOk { chunk },
                    Err(e) => {
                        if matches!(e, HolderError::Refused(_)) {
                            tracing::warn!(peer = %from, %chunk, "peer sent a chunk that does not match its id");
                        }
                        error(&e)
                    }
                }
            }
            Message::GetChunk { chunk } => match local.get(&chunk) {
                Ok(bytes) => return Payload::with_body(Message::Chunk { chunk }, bytes),
                Err(e) => error(&e),
            },
            Message::HasChunks { chunks } if chunks.len() > MAX_BATCH => {
                too_many("has_chunks", chunks.len(), MAX_BATCH)
            }
            Message::HasChunks { chunks } => Message::Have {
                present: local.has(&chunks),
            },
            Message::ProveChunks { chunks, .. } if chunks.len() > MAX_PROVE_BATCH => {
                too_many("prove_chunks", chunks.len(), MAX_PROVE_BATCH)
            }
            Message::ProveChunks { nonce, chunks } => {
                match local.proof_budget.charge(from, chunks.len()).await {
                    Err(spent) => {
                        tracing::debug!(peer = %from, "prove_chunks refused: {spent}");
                        Message::error(ErrorCode::Unavailable, spent.to_string())
                    }
                    Ok(()) => match local.prove(nonce, chunks).await {
                        Ok(proofs) => Message::Proofs { proofs },
                        Err(e) => error(&e),
                    },
                }
            }
            Message::DeleteChunks { chunks, .. } if chunks.len() > MAX_BATCH => {
                too_many("delete_chunks", chunks.len(), MAX_BATCH)
            }
            Message::DeleteChunks { key, chunks } => {
                let done = local.delete(&key, &chunks);
                if done.refused > 0 {
                    tracing::warn!(peer = %from, refused = done.refused, "refused to delete chunks: the delete key does not fit them");
                }
                tracing::debug!(peer = %from, asked = chunks.len(), dropped = done.dropped, "chunks deleted");
                Message::Ack
            }
            Message::GetStats => {
                let stats = local.store.stats();
                Message::Stats {
                    objects: stats.chunks,
                    bytes: stats.bytes,
                    time: local.clock.own(),
                }
            }
            other => Message::error(
                ErrorCode::UnexpectedMessage,
                format!("{} is not a request this node serves", other.kind()),
            ),
        };
        Payload::new(message)
    }
}
