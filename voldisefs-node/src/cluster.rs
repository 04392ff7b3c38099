//! The node's view of the whole network as one chunk store: placing chunks on their holders,
//! finding who holds what, fetching with fallback, deleting.
//!
//! This is the seam behind which the redundancy scheme lives: today every chunk is replicated
//! to its `replicas` rendezvous holders.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use voldisefs_net::{NetError, Network, Payload};
use voldisefs_proto::{ChunkId, ErrorCode, Message, PeerInfo};
use voldisefs_store::{ChunkStore, MemoryStore, StoreError};

use crate::NodeError;
use crate::placement;

/// Chunk ids asked about in one `has_chunks` request (keeps the JSON well under its cap).
const HAS_BATCH: usize = 4096;

/// Places and finds chunks across the live nodes, this one included.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    pub(crate) net: Network,
    pub(crate) store: MemoryStore,
    pub(crate) replicas: usize,
}

impl Cluster {
    /// This node.
    pub(crate) fn local(&self) -> PeerInfo {
        self.net.local()
    }

    /// Every node placement may use: the live peers and this node.
    pub(crate) fn nodes(&self) -> Vec<PeerInfo> {
        let mut nodes = self.net.membership().live_peers();
        nodes.push(self.local());
        nodes
    }

    /// Stores `bytes` (whose SHA-256 is `id`) on its holders, in parallel. A holder that fails
    /// is replaced by the next node in rendezvous order. Returns how many copies were made;
    /// fails only if none could be.
    pub(crate) async fn put(&self, id: ChunkId, bytes: Bytes) -> Result<usize, NodeError> {
        let ranked = placement::rank(&id, &self.nodes());
        let want = self.replicas.clamp(1, ranked.len().max(1));
        let mut candidates = ranked.into_iter();
        let mut running = FuturesUnordered::new();
        for peer in candidates.by_ref().take(want) {
            running.push(self.put_on(peer, id, bytes.clone()));
        }
        let (mut stored, mut full, mut failed) = (0usize, 0usize, 0usize);
        let mut last_error = None;
        while let Some(result) = running.next().await {
            match result {
                Ok(()) => stored += 1,
                Err(e) => {
                    if matches!(e, NodeError::Full(_)) {
                        full += 1;
                    }
                    failed += 1;
                    tracing::debug!(chunk = %id, error = %e, "holder refused chunk; trying the next");
                    last_error = Some(e);
                    if let Some(next) = candidates.next() {
                        running.push(self.put_on(next, id, bytes.clone()));
                    }
                }
            }
        }
        if stored == 0 {
            let reason = last_error.map_or_else(|| "no node".to_string(), |e| e.to_string());
            return Err(if full == failed && full > 0 {
                NodeError::Full(reason)
            } else {
                NodeError::NoHolder { chunk: id, reason }
            });
        }
        if stored < want {
            tracing::warn!(chunk = %id, stored, want, "chunk stored with fewer copies than wanted");
        }
        Ok(stored)
    }

    /// Stores `bytes` under `id` on one node (this one or a peer).
    pub(crate) async fn put_on(
        &self,
        peer: PeerInfo,
        id: ChunkId,
        bytes: Bytes,
    ) -> Result<(), NodeError> {
        if peer.id == self.local().id {
            // The gateway sealed these bytes and computed `id` from them itself: no need to
            // hash them again, nor to copy them.
            return match self.store.put_verified(id, bytes) {
                Ok(_) => Ok(()),
                Err(e @ StoreError::Full { .. }) => Err(NodeError::Full(e.to_string())),
                Err(e) => Err(NodeError::Internal(e.to_string())),
            };
        }
        let answer = self
            .net
            .request(
                peer,
                Payload::with_body(Message::PutChunk { chunk: id }, bytes),
            )
            .await;
        match answer {
            Ok(Payload {
                message: Message::PutOk { chunk },
                ..
            }) if chunk == id => Ok(()),
            Ok(other) => Err(NodeError::Internal(format!(
                "peer {} answered {} to put_chunk",
                peer.id,
                other.message.kind()
            ))),
            Err(NetError::Remote {
                code: ErrorCode::Full,
                message,
                ..
            }) => Err(NodeError::Full(message)),
            Err(e) => Err(e.into()),
        }
    }

    /// For each id, the nodes that hold it: this node first, then the others in rendezvous
    /// order. Peers that do not answer count as holding nothing.
    pub(crate) async fn locate(&self, ids: &[ChunkId]) -> Vec<Vec<PeerInfo>> {
        let local = self.local();
        let mut found: Vec<Vec<PeerInfo>> = self
            .store
            .contains_many(ids)
            .into_iter()
            .map(|here| if here { vec![local] } else { Vec::new() })
            .collect();
        let peers = self.net.membership().live_peers();
        let mut asks: FuturesUnordered<_> = peers
            .iter()
            .map(|peer| async move { (*peer, self.has_chunks(*peer, ids).await) })
            .collect();
        let mut answers: HashMap<PeerInfo, Vec<bool>> = HashMap::new();
        while let Some((peer, answer)) = asks.next().await {
            match answer {
                Ok(present) => {
                    answers.insert(peer, present);
                }
                Err(e) => tracing::debug!(peer = %peer.id, error = %e, "has_chunks failed"),
            }
        }
        for (i, id) in ids.iter().enumerate() {
            for peer in placement::rank(id, &peers) {
                if answers.get(&peer).is_some_and(|p| p[i]) {
                    found[i].push(peer);
                }
            }
        }
        found
    }

    /// Asks `peer` which of `ids` it holds, in batches.
    async fn has_chunks(&self, peer: PeerInfo, ids: &[ChunkId]) -> Result<Vec<bool>, NodeError> {
        let mut present = Vec::with_capacity(ids.len());
        for batch in ids.chunks(HAS_BATCH) {
            let ask = Payload::new(Message::HasChunks {
                chunks: batch.to_vec(),
            });
            match self.net.request(peer, ask).await?.message {
                Message::Have { present: p } if p.len() == batch.len() => present.extend(p),
                other => {
                    return Err(NodeError::Internal(format!(
                        "peer {} answered {} to has_chunks",
                        peer.id,
                        other.kind()
                    )));
                }
            }
        }
        Ok(present)
    }

    /// Fetches chunk `id` from `peer` (this node's store when it is the local node). The bytes
    /// are not verified here: callers check them against the id and try another holder.
    pub(crate) async fn get_from(&self, peer: PeerInfo, id: ChunkId) -> Result<Bytes, NodeError> {
        if peer.id == self.local().id {
            return self
                .store
                .get(&id)
                .ok_or_else(|| NodeError::Internal(format!("chunk {id} vanished from the store")));
        }
        let answer = self
            .net
            .request(peer, Payload::new(Message::GetChunk { chunk: id }))
            .await?;
        match answer {
            Payload {
                message: Message::Chunk { chunk },
                body: Some(body),
            } if chunk == id => Ok(body),
            other => Err(NodeError::Internal(format!(
                "peer {} answered {} to get_chunk",
                peer.id,
                other.message.kind()
            ))),
        }
    }

    /// Drops chunk `id` from every node in `holders`; returns how many confirmed.
    pub(crate) async fn delete(&self, id: ChunkId, holders: &[PeerInfo]) -> usize {
        let local = self.local().id;
        let mut running: FuturesUnordered<_> = holders
            .iter()
            .map(|peer| async move {
                if peer.id == local {
                    self.store.remove(&id);
                    return true;
                }
                let ask = Payload::new(Message::DeleteChunks { chunks: vec![id] });
                matches!(
                    self.net.request(*peer, ask).await,
                    Ok(Payload {
                        message: Message::Ack,
                        ..
                    })
                )
            })
            .collect();
        let mut confirmed = 0;
        while let Some(ok) = running.next().await {
            confirmed += usize::from(ok);
        }
        confirmed
    }
}
