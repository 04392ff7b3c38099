//! [`Cluster`]: the replication layer's facade. The upload and download pipelines, repair,
//! hand-off and status talk only to it: put, fetch, locate and delete objects, stripes (behind
//! [`Stripes`]), a transfer's window, and read-only views of this node and its peers
//! (`peers.rs`). The network stays inside the layer.

use std::sync::Arc;

use bytes::Bytes;
use voldisefs_net::{Network, PeerState};
use voldisefs_proto::{ChunkId, DeleteKey, NodeId};
use voldisefs_store::ChunkStore;

use super::fetch::Fetched;
use super::health::Failure;
use super::hedge::AttemptError;
use super::layer::{Layer, Settings};
use super::local::LocalHolder;
use super::stripes::Stripes;
use super::window::Window;
use crate::NodeError;

/// How long a member that died still counts towards the majority a delete needs: a partition
/// shorter than this cannot let the smaller side delete what the larger side keeps.
pub const DELETE_MEMORY: std::time::Duration = std::time::Duration::from_secs(300);

/// Places, finds, fetches and deletes chunks across the live nodes, this one included.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    pub(super) layer: Arc<Layer>,
}

impl Cluster {
    /// The replication layer over `net` and this node's `local` holder. The layer keeps `net`
    /// to itself: whoever else needs the network keeps a clone of its own.
    pub(crate) fn new(net: Network, local: Arc<LocalHolder>, settings: Settings) -> Self {
        Self {
            layer: Arc::new(Layer::new(net, local, settings)),
        }
    }

    /// The layer behind the facade (for repair, in this module).
    pub(super) fn layer(&self) -> &Arc<Layer> {
        &self.layer
    }

    /// Stores a chunk the gateway sealed on `replicas` holders (as many as there are live
    /// nodes when fewer), hedging past slow holders and replacing failing ones; this node keeps
    /// a copy too when it has room, until repair settles it. Returns the holders that
    /// confirmed.
    pub(crate) async fn put(&self, id: ChunkId, bytes: Bytes) -> Result<Vec<NodeId>, NodeError> {
        self.layer.put(id, bytes).await
    }

    /// Fetches chunk `id` and passes the bytes to `open` (run on the blocking pool, which
    /// verifies and decodes them): this node first when it holds the chunk, then the ranked
    /// holders (`claimed` ones first within a class), then the other live peers. Bytes `open`
    /// rejects as corrupt demote their holder and the next one is tried (see `fetch.rs`).
    pub(crate) async fn fetch<T, F>(
        &self,
        id: ChunkId,
        claimed: &[NodeId],
        open: F,
    ) -> Result<Fetched<T>, NodeError>
    where
        T: Send + 'static,
        F: Fn(Bytes) -> Result<T, AttemptError> + Clone + Send + Sync + 'static,
    {
        self.layer.fetch(id, claimed, open).await
    }

    /// This node's own copy of `id`, if it holds one (checked against the id when it was
    /// stored, so it needs no second hash; an expired one is dropped and not returned).
    pub(crate) fn local_copy(&self, id: &ChunkId) -> Option<Bytes> {
        self.layer.local_copy(id)
    }

    /// For each of `ids`, the nodes that say they hold it (empty: no reachable node has it);
    /// about one batched question per chunk however large the network (see `locate.rs`).
    pub(crate) async fn locate(&self, ids: &[ChunkId]) -> Vec<Vec<NodeId>> {
        self.layer.locate(ids).await
    }

    /// Deletes `ids`, objects of the file whose delete key is `key`, for good: drops them here
    /// and on their ranked holders (the first `2 * replicas` live nodes for each, plus `also`,
    /// plus every live node when `everywhere`), all of which keep tombstones so that a late put
    /// or a repair push of them is refused. Holders drop only objects the key authorizes.
    /// Returns how many nodes confirmed.
    pub(crate) async fn delete(
        &self,
        key: &DeleteKey,
        ids: &[ChunkId],
        also: &[NodeId],
        everywhere: bool,
    ) -> usize {
        self.layer
            .delete_spread(key, ids, also, everywhere, self.layer.replicas())
            .await
            .confirmed
    }

    /// A delete a client asked for: [`delete_spread`](Self::delete_spread), but only while
    /// this node reaches a majority of the members it saw in the last [`DELETE_MEMORY`]
    /// (itself, live members, and members that died since, unless a live member took over
    /// their address: a restarted node is one member), and only if a majority confirmed:
    /// `everywhere`, of those members; otherwise of the ranked holders it was sent to. A
    /// delete made from the small side of a partition reaches neither the copies nor the
    /// tombstones of the other side, and repair there would bring the file back; a delete
    /// that reached only a minority of the holders (a frozen link, a node that hangs) leaves
    /// copies with no tombstone beside them. Refused, the client learns it and tries again
    /// later. Returns the confirmations.
    pub(crate) async fn delete_confirmed(
        &self,
        key: &DeleteKey,
        ids: &[ChunkId],
        everywhere: bool,
        spread: usize,
    ) -> Result<usize, NodeError> {
        // Nothing to delete is done at once: no node is asked, so none could confirm.
        if ids.is_empty() {
            return Ok(0);
        }
        let (reached, members) = self.delete_quorum();
        let needed = members / 2 + 1;
        let refuse = |reached: usize| NodeError::NoDeleteQuorum {
            reached,
            members,
            needed,
            memory_secs: DELETE_MEMORY.as_secs(),
        };
        if reached < needed {
            return Err(refuse(reached));
        }
        let deleted = self
            .layer
            .delete_spread(key, ids, &[], everywhere, spread)
            .await;
        if everywhere && deleted.confirmed < needed {
            return Err(refuse(deleted.confirmed));
        }
        if !everywhere && deleted.confirmed * 2 <= deleted.asked {
            return Err(NodeError::NoHolderQuorum {
                confirmed: deleted.confirmed,
                asked: deleted.asked,
            });
        }
        Ok(deleted.confirmed)
    }

    /// The nodes a delete counts ([`delete_quorum`]).
    fn delete_quorum(&self) -> (usize, usize) {
        delete_quorum(
            &self.layer.net.membership().snapshot(),
            self.layer.me().addr,
            tokio::time::Instant::now(),
        )
    }

    /// Like [`delete`](Self::delete) for objects spread over `spread` nodes each (K + M for
    /// the stripe ids of an erasure-coded file): the window is `2 * max(replicas, spread)`
    /// ranked nodes. A holder deleting a stripe descriptor deletes the shards it lists.
    pub(crate) async fn delete_spread(
        &self,
        key: &DeleteKey,
        ids: &[ChunkId],
        also: &[NodeId],
        everywhere: bool,
        spread: usize,
    ) -> usize {
        self.layer
            .delete_spread(key, ids, also, everywhere, spread)
            .await
            .confirmed
    }

    /// Erasure-coded objects (`rs:K+M`): placing, reading and fetching shards of stripes.
    pub(crate) fn stripes(&self) -> Stripes<'_> {
        Stripes::new(&self.layer)
    }

    /// A transfer's window of chunks in flight (see [`Window`]): `base` chunks of
    /// `chunk_len` bytes to begin with, growing with the latency of puts (`Failure::Put`)
    /// or gets.
    pub(crate) fn window(&self, base: usize, chunk_len: usize, what: Failure) -> Window {
        Window::new(self.layer.clone(), base, chunk_len, what)
    }

    /// Forgets everything held (shutdown, crash).
    pub(crate) fn wipe(&self) {
        self.layer.local.store.clear();
        self.layer.local.tombstones.clear();
    }
}

/// The nodes a delete counts, as `(reached, members)`: this node (at `me`) and its live
/// members; and those plus the addresses of members that died within [`DELETE_MEMORY`]
/// before `now` where no live member is now (one per address: a node that restarted there
/// several times is one machine).
fn delete_quorum(
    entries: &[voldisefs_net::PeerEntry],
    me: std::net::SocketAddr,
    now: tokio::time::Instant,
) -> (usize, usize) {
    let live: std::collections::HashSet<std::net::SocketAddr> = entries
        .iter()
        .filter(|e| e.state.is_live())
        .map(|e| e.info.addr)
        .chain([me])
        .collect();
    let reached = 1 + entries.iter().filter(|e| e.state.is_live()).count();
    let recently_dead: std::collections::HashSet<std::net::SocketAddr> = entries
        .iter()
        .filter(|e| {
            e.state == PeerState::Dead
                && now.saturating_duration_since(e.since) < DELETE_MEMORY
                && !live.contains(&e.info.addr)
        })
        .map(|e| e.info.addr)
        .collect();
    (reached, reached + recently_dead.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use voldisefs_net::PeerEntry;
    use voldisefs_proto::PeerInfo;

    fn entry(port: u16, state: PeerState, since: tokio::time::Instant) -> PeerEntry {
        PeerEntry {
            info: PeerInfo {
                id: NodeId::random(),
                addr: ([10, 0, 0, 1], port).into(),
            },
            state,
            last_seen: since,
            since,
            failures: 0,
        }
    }

    #[test]
    fn a_delete_counts_recent_deaths_once_per_address_and_not_restarted_nodes() {
        let long_ago = tokio::time::Instant::now();
        let now = long_ago + DELETE_MEMORY + std::time::Duration::from_secs(1);
        let me = ([10, 0, 0, 1], 1).into();
        let entries = vec![
            entry(2, PeerState::Alive, now),
            entry(3, PeerState::Suspect, now),
            // Port 4 died twice lately (two incarnations): one member.
            entry(4, PeerState::Dead, now),
            entry(4, PeerState::Dead, now),
            // Port 5 died, and restarted there under a new id: counted live only.
            entry(5, PeerState::Dead, now),
            entry(5, PeerState::Alive, now),
            // Died long ago; left; unverified: not counted.
            entry(6, PeerState::Dead, long_ago),
            entry(7, PeerState::Left, now),
            entry(8, PeerState::Unverified, now),
        ];
        // Reached: me, 2, 3, 5. Members: those and port 4.
        assert_eq!(delete_quorum(&entries, me, now), (4, 5));
        // Cut off: only this node is reached, of the four it saw lately.
        let cut: Vec<PeerEntry> = (20..23)
            .map(|port| entry(port, PeerState::Dead, now))
            .collect();
        assert_eq!(delete_quorum(&cut, me, now), (1, 4));
    }
}
