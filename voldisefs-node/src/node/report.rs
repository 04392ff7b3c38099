//! What the node reports: its status and the network as it sees it, its metrics, and the
//! index of files uploaded through it.

use std::sync::atomic::Ordering;

use voldisefs_proto::NodeId;

use super::Node;
use crate::status::{IndexEntry, NetworkStatus, PeerStatus, RepairStatus, StoreStatus};

/// Most peers [`Node::network_status`] asks for their store usage.
pub const MAX_STATS_PEERS: usize = 256;

impl Node {
    /// This node's metrics in the OpenMetrics text format (what `GET /metrics` serves).
    pub fn metrics_text(&self) -> String {
        // Writing into a String cannot fail.
        self.inner.metrics.render().unwrap_or_default()
    }

    /// Files uploaded through this node, oldest first.
    pub fn files(&self) -> Vec<IndexEntry> {
        self.lock_index().iter().cloned().collect()
    }

    /// This node, its peers and its store usage.
    pub fn status(&self) -> NetworkStatus {
        let cluster = &self.inner.cluster;
        let net = &self.inner.network;
        let state = if self.inner.stopping.load(Ordering::Relaxed) {
            "stopping"
        } else if self.is_joining() {
            "joining"
        } else {
            "running"
        };
        NetworkStatus {
            node: net.local(),
            state,
            peers: net
                .membership()
                .snapshot()
                .into_iter()
                .map(|e| {
                    let health = cluster.peer_health(&e.info.id);
                    PeerStatus {
                        id: e.info.id,
                        addr: e.info.addr,
                        state: e.state.as_str(),
                        demoted: health.demoted,
                        failures: health.failures,
                        stored_bytes: None,
                        stored_objects: None,
                    }
                })
                .collect(),
            security: if net.is_keyed() { "keyed" } else { "open" },
            store: StoreStatus::new(cluster.store_stats(), cluster.tombstone_count()),
            repair: {
                let c = self.inner.repairer.counters();
                RepairStatus {
                    backlog: c.backlog,
                    pushed: c.pushed,
                    dropped: c.dropped,
                    failed: c.failed,
                    sweeps: c.sweeps,
                }
            },
        }
    }

    /// Like [`Node::status`], with what each live peer says it stores (one `get_stats` to each
    /// of at most [`MAX_STATS_PEERS`] live peers, all at once, each given a second), so the
    /// network's storage overhead shows: the sum over all nodes against the files' sizes.
    pub async fn network_status(&self) -> NetworkStatus {
        let mut status = self.status();
        let answers = self
            .inner
            .cluster
            .peer_stats(MAX_STATS_PEERS, std::time::Duration::from_secs(1))
            .await;
        for peer in &mut status.peers {
            if let Some((objects, bytes, _)) = answers.get(&peer.id) {
                peer.stored_objects = Some(*objects);
                peer.stored_bytes = Some(*bytes);
            }
        }
        status
    }

    /// Ids of the live nodes (this one included) placement currently uses.
    pub fn live_nodes(&self) -> Vec<NodeId> {
        self.inner
            .cluster
            .nodes()
            .into_iter()
            .map(|p| p.id)
            .collect()
    }
}
