//! Read-only views of this node and its peers, as the replication layer sees them: the live
//! nodes, each peer's health, failure counts, what this node and its peers store, and the
//! clock expiry is judged by.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use voldisefs_proto::{NodeId, PeerInfo};
use voldisefs_store::{ChunkStore, StoreStats};

use super::cluster::Cluster;
use super::health::{Failure, PeerHealth};

impl Cluster {
    /// This node.
    pub(crate) fn local(&self) -> PeerInfo {
        self.layer.me()
    }

    /// Copies kept of every chunk.
    pub(crate) fn replicas(&self) -> usize {
        self.layer.replicas()
    }

    /// Every node placement may use: the live peers and this node.
    pub(crate) fn nodes(&self) -> Vec<PeerInfo> {
        self.layer.nodes()
    }

    /// The clock expiry is judged by on this node (see [`crate::clock`]).
    pub(crate) fn clock(&self) -> &crate::clock::Clock {
        &self.layer.local.clock
    }

    /// The unix time expiry is judged by on this node (see [`crate::clock`]).
    pub(crate) fn now(&self) -> u64 {
        self.layer.local.clock.now()
    }

    /// This node's own unix time, which stamps expiries and bounds them (never corrected by
    /// peers; see [`crate::clock`]).
    pub(crate) fn own_time(&self) -> u64 {
        self.layer.local.clock.own()
    }

    /// What this node stores.
    pub(crate) fn store_stats(&self) -> StoreStats {
        self.layer.local.store.stats()
    }

    /// Ids this node keeps tombstones for.
    pub(crate) fn tombstone_count(&self) -> usize {
        self.layer.local.tombstones.len()
    }

    /// Bytes of proof hashing granted to peers so far (see `budget`).
    pub(crate) fn proof_bytes_granted(&self) -> u64 {
        self.layer.local.proof_budget.granted()
    }

    /// Bytes the tombstone table holds (its containers, by capacity).
    pub(crate) fn tombstone_bytes(&self) -> usize {
        self.layer.local.tombstones.bytes()
    }

    /// What this node has seen of `peer` as a holder.
    pub(crate) fn peer_health(&self, peer: &NodeId) -> PeerHealth {
        self.layer.health.of(peer)
    }

    /// Holder failures so far, by kind.
    pub(crate) fn failure_counts(&self) -> [(Failure, u64); Failure::ALL.len()] {
        self.layer.health.failure_counts()
    }

    /// Bytes of window growth the node's transfers hold now (at most the budget).
    pub(crate) fn window_growth(&self) -> usize {
        self.layer
            .settings
            .window_budget
            .saturating_sub(self.layer.window_pool.load(Ordering::Acquire))
    }

    /// What up to `max` live peers say they store, `(objects, bytes, time)` by peer: one
    /// `get_stats` each, all at once, each given `timeout`; silent peers are left out.
    pub(crate) async fn peer_stats(
        &self,
        max: usize,
        timeout: Duration,
    ) -> HashMap<NodeId, (u64, u64, u64)> {
        let mut peers = self.layer.net.membership().live_peers();
        // A different sample each time when there are more peers than asked.
        if peers.len() > max {
            use std::hash::BuildHasher;
            let len = peers.len();
            let start = std::collections::hash_map::RandomState::new().hash_one(len);
            peers.rotate_left((start % len as u64) as usize);
        }
        let asks = peers.into_iter().take(max).map(|peer| async move {
            let ask = self.layer.net.request(
                peer,
                voldisefs_net::Payload::new(voldisefs_proto::Message::GetStats),
            );
            match tokio::time::timeout(timeout, ask).await {
                Ok(Ok(answer)) => match answer.message {
                    voldisefs_proto::Message::Stats {
                        objects,
                        bytes,
                        time,
                    } => Some((peer.id, (objects, bytes, time))),
                    _ => None,
                },
                _ => None,
            }
        });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}
