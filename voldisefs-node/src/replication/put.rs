//! Storing a sealed chunk on its ranked holders (replicas), hedging past slow ones.

use bytes::Bytes;
use voldisefs_proto::{ChunkId, NodeId};

use super::health::Failure;
use super::hedge;
use super::holder::HolderError;
use super::layer::Layer;
use crate::NodeError;

impl Layer {
    /// Stores a chunk the gateway sealed on `replicas` holders (as many as there are live
    /// nodes when fewer), hedging past slow holders and replacing failing ones. Returns the
    /// holders that confirmed.
    ///
    /// An acknowledgement is not proof that a holder keeps the chunk, so this node also keeps
    /// a copy when it has room (best effort); repair drops it once `replicas` better-ranked
    /// holders proved theirs (see `Repairer::settle` in `repair.rs`), and pushes it on when
    /// they cannot.
    pub(super) async fn put(&self, id: ChunkId, bytes: Bytes) -> Result<Vec<NodeId>, NodeError> {
        let confirmed = self.place(id, bytes.clone()).await?;
        if !confirmed.contains(&self.me().id) {
            if let Err(e) = self.local.put_sealed(id, bytes) {
                tracing::debug!(chunk = %id, error = %e, "no room for the gateway's own copy");
            }
        }
        Ok(confirmed)
    }

    /// Places `bytes` on the best-ranked holders of `id`, hedged; the holders that confirmed.
    async fn place(&self, id: ChunkId, bytes: Bytes) -> Result<Vec<NodeId>, NodeError> {
        let candidates = self.rank(&id, &self.nodes());
        let want = self.replicas().clamp(1, candidates.len().max(1));
        let hedge = self.hedge_delay(Failure::Put);
        let run = hedge::hedged(candidates, want, hedge, |holder| {
            let bytes = bytes.clone();
            async move { Ok(self.put_on(holder, id, bytes).await?) }
        })
        .await?;
        if run.ok.is_empty() {
            let full = !run.failed.is_empty()
                && run
                    .failed
                    .iter()
                    .all(|(_, e)| matches!(e, HolderError::Full(_)));
            let reason = run
                .failed
                .last()
                .map_or_else(|| "no node".to_string(), |(_, e)| e.to_string());
            let deleted = !run.failed.is_empty()
                && run
                    .failed
                    .iter()
                    .all(|(_, e)| matches!(e, HolderError::Deleted));
            return Err(if full {
                NodeError::Full(reason)
            } else if deleted {
                NodeError::ObjectDeleted(id)
            } else {
                NodeError::NoHolder { chunk: id, reason }
            });
        }
        if run.ok.len() < want {
            tracing::warn!(chunk = %id, stored = run.ok.len(), want, "chunk stored with fewer copies than wanted");
        }
        Ok(run.ok.into_iter().map(|(h, ())| h.id()).collect())
    }
}
