//! Deleting objects for good: on this node and their ranked holders, all of which keep
//! tombstones (see `tombstones.rs`).

use std::collections::HashMap;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use voldisefs_proto::{ChunkId, DeleteKey, NodeId};

use super::holder::Holder;
use super::layer::Layer;
use super::placement;

impl Layer {
    /// Deletes `ids`, objects of the file whose delete key is `key`, for good: drops them here
    /// and on their ranked holders (the first `2 * max(replicas, spread)` live nodes for each,
    /// plus `also`, plus every live node when `everywhere`), all of which keep tombstones so
    /// that a late put or a repair push of them is refused. Holders drop only objects the key
    /// authorizes. `spread` is how many nodes each object is spread over (`replicas`, or K + M
    /// for the stripe ids of an erasure-coded file); a holder deleting a stripe descriptor
    /// deletes the shards it lists. Says how many nodes confirmed, of how many asked.
    pub(super) async fn delete_spread(
        &self,
        key: &DeleteKey,
        ids: &[ChunkId],
        also: &[NodeId],
        everywhere: bool,
        spread: usize,
    ) -> Deleted {
        let nodes = self.nodes();
        let window = 2 * self.replicas().max(spread);
        let mut targets: HashMap<Holder, Vec<ChunkId>> = HashMap::new();
        for id in ids {
            let ranked = placement::rank(id, &nodes);
            for (rank, peer) in ranked.into_iter().enumerate() {
                if everywhere || rank < window || also.contains(&peer.id) || peer.id == self.me().id
                {
                    targets.entry(self.holder(peer)).or_default().push(*id);
                }
            }
        }
        let asked = targets.len();
        let mut running: FuturesUnordered<_> =
            targets
                .into_iter()
                .map(|(holder, batch)| async move {
                    (holder, self.delete_on(holder, key, &batch).await)
                })
                .collect();
        let mut confirmed = 0;
        while let Some((holder, result)) = running.next().await {
            match result {
                Ok(()) => confirmed += 1,
                Err(e) => tracing::debug!(peer = %holder.id(), error = %e, "delete not confirmed"),
            }
        }
        Deleted { confirmed, asked }
    }
}

/// How a delete went: how many nodes confirmed it, of how many asked (this node included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Deleted {
    pub(super) confirmed: usize,
    pub(super) asked: usize,
}
