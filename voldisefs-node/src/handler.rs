//! What a node answers to its peers: storing, serving, checking and dropping chunks.

use voldisefs_net::{Handler, Payload};
use voldisefs_proto::{ErrorCode, Message, NodeId};
use voldisefs_store::{ChunkStore, MemoryStore, StoreError};

/// Serves this node's [`MemoryStore`] to peers. Chunks are verified against their id by the
/// store on every put, so a peer can never plant bytes under a wrong id.
#[derive(Debug, Clone)]
pub(crate) struct StoreHandler {
    pub(crate) store: MemoryStore,
}

impl Handler for StoreHandler {
    async fn handle(&self, from: NodeId, request: Payload) -> Payload {
        let message = match request.message {
            Message::PutChunk { chunk } => {
                let body = request.body.unwrap_or_default();
                let store = self.store.clone();
                // Hashing a chunk is CPU work: keep it off the reactor. The codec read a large
                // body into its own buffer, so the store can keep it without a copy.
                let put = tokio::task::spawn_blocking(move || store.put_owned(chunk, body)).await;
                match put {
                    Ok(Ok(_)) => Message::PutOk { chunk },
                    Ok(Err(e @ StoreError::Full { .. })) => {
                        Message::error(ErrorCode::Full, e.to_string())
                    }
                    Ok(Err(e @ StoreError::IdMismatch { .. })) => {
                        tracing::warn!(peer = %from, %chunk, "peer sent a chunk that does not match its id");
                        Message::error(ErrorCode::IntegrityMismatch, e.to_string())
                    }
                    Ok(Err(e)) => Message::error(ErrorCode::BadRequest, e.to_string()),
                    Err(e) => Message::error(ErrorCode::Internal, e.to_string()),
                }
            }
            Message::GetChunk { chunk } => match self.store.get(&chunk) {
                Some(bytes) => return Payload::with_body(Message::Chunk { chunk }, bytes),
                None => Message::error(ErrorCode::NotFound, format!("chunk {chunk} not held")),
            },
            Message::HasChunks { chunks } => Message::Have {
                present: self.store.contains_many(&chunks),
            },
            Message::DeleteChunks { chunks } => {
                for chunk in &chunks {
                    self.store.remove(chunk);
                }
                Message::Ack
            }
            other => Message::error(
                ErrorCode::UnexpectedMessage,
                format!("{} is not a request this node serves", other.kind()),
            ),
        };
        Payload::new(message)
    }
}
