//! The replication layer's shared state ([`Layer`]) and what every operation builds on: the
//! live nodes, the ranking of holders, and one request to one holder (timed, and noted in the
//! holder's health). The operations themselves are in `put.rs`, `fetch.rs`, `locate.rs`,
//! `delete.rs` and `stripes.rs`; `cluster.rs` is their facade.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use voldisefs_net::{Network, PeerState};
use voldisefs_proto::{ChunkId, DeleteKey, PeerInfo};

use super::health::{Failure, Health};
use super::holder::{Holder, HolderError};
use super::local::LocalHolder;
use super::placement;
use super::remote::{Proved, RemoteHolder};

/// Objects up to this size are timed as round trips too (see `window.rs`).
const SMALL_OBJECT: usize = 64 * 1024;

/// How the replication layer behaves (from [`crate::NodeConfig`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    /// Copies of every chunk.
    pub(crate) replicas: usize,
    /// Longest wait for one holder's answer to one request.
    pub(crate) attempt_timeout: Duration,
    /// Shortest hedging delay.
    pub(crate) hedge_min: Duration,
    /// Longest hedging delay (used until enough latencies are observed).
    pub(crate) hedge_max: Duration,
    /// Bytes of window growth all transfers may hold at once.
    pub(crate) window_budget: usize,
}

/// What the replication layer works with: the network (kept here, private to the layer),
/// this node as a holder, what it has seen of its peers, and its settings.
#[derive(Debug)]
pub(super) struct Layer {
    /// The peer network: membership and requests to peers.
    pub(super) net: Network,
    /// This node as a holder.
    pub(super) local: Arc<LocalHolder>,
    /// What this node has seen of its peers as holders.
    pub(super) health: Health,
    /// How the layer behaves.
    pub(super) settings: Settings,
    /// Bytes of window growth the node's transfers may still take (`window_budget` in all).
    pub(super) window_pool: Arc<AtomicUsize>,
}

/// A holder's rank class: healthy nodes first, then demoted ones, then suspect ones.
fn class(state: Option<PeerState>, demoted: bool) -> u8 {
    match (state, demoted) {
        (Some(PeerState::Alive) | None, false) => 0,
        (Some(PeerState::Alive) | None, true) => 1,
        _ => 2,
    }
}

impl Layer {
    /// The layer over `net` and this node's `local` holder.
    pub(super) fn new(net: Network, local: Arc<LocalHolder>, settings: Settings) -> Self {
        Self {
            net,
            local,
            health: Health::default(),
            window_pool: Arc::new(AtomicUsize::new(settings.window_budget)),
            settings,
        }
    }

    /// This node.
    pub(super) fn me(&self) -> PeerInfo {
        self.net.local()
    }

    /// Copies kept of every chunk.
    pub(super) fn replicas(&self) -> usize {
        self.settings.replicas
    }

    /// Every node placement may use: the live peers and this node.
    pub(super) fn nodes(&self) -> Vec<PeerInfo> {
        let mut nodes = self.net.membership().live_peers();
        nodes.push(self.me());
        nodes
    }

    /// `peer` as a holder: this node or a remote one.
    pub(super) fn holder(&self, peer: PeerInfo) -> Holder {
        if peer.id == self.me().id {
            Holder::Local(peer)
        } else {
            Holder::Remote(peer)
        }
    }

    /// `peer` as a remote holder, each request bounded by the per-attempt deadline.
    pub(super) fn remote(&self, peer: PeerInfo) -> RemoteHolder<'_> {
        RemoteHolder {
            net: &self.net,
            peer,
            timeout: self.settings.attempt_timeout,
        }
    }

    /// `nodes` as holders of `id`, best first: rendezvous order, with demoted and then suspect
    /// peers moved last (stable, so every class keeps rendezvous order).
    pub(super) fn rank(&self, id: &ChunkId, nodes: &[PeerInfo]) -> Vec<Holder> {
        let mut ranked: Vec<Holder> = placement::rank(id, nodes)
            .into_iter()
            .map(|p| self.holder(p))
            .collect();
        ranked.sort_by_cached_key(|h| self.class_of(h));
        ranked
    }

    /// A holder's rank class now: 0 healthy (or this node), 1 demoted, 2 suspect.
    pub(super) fn class_of(&self, holder: &Holder) -> u8 {
        match holder {
            Holder::Local(_) => 0,
            Holder::Remote(p) => {
                let state = self.net.membership().get(&p.id).map(|e| e.state);
                class(state, self.health.is_demoted(&p.id))
            }
        }
    }

    /// Stores `bytes` on `holder`. For this node the bytes must be the gateway's own sealed
    /// chunk (its id computed from them); peers verify them.
    pub(super) async fn put_on(
        &self,
        holder: Holder,
        id: ChunkId,
        bytes: Bytes,
    ) -> Result<(), HolderError> {
        let started = Instant::now();
        let result = match holder {
            Holder::Local(_) => self.local.put_sealed(id, bytes),
            Holder::Remote(peer) => self.remote(peer).put(id, bytes).await,
        };
        if result.is_ok() && holder.is_remote() {
            self.health.put_latency().record(started.elapsed());
        }
        self.health.note(holder, Failure::Put, &result);
        result
    }

    /// Fetches chunk `id` from `holder` (not verified here).
    pub(super) async fn get_from(&self, holder: Holder, id: ChunkId) -> Result<Bytes, HolderError> {
        let started = Instant::now();
        let result = match holder {
            Holder::Local(_) => self.local.get(&id),
            Holder::Remote(peer) => self.remote(peer).get(id).await,
        };
        if let (Ok(bytes), true) = (&result, holder.is_remote()) {
            let took = started.elapsed();
            self.health.get_latency().record(took);
            // A small object (a record, a descriptor) takes about a round trip.
            if bytes.len() <= SMALL_OBJECT {
                self.health.rtt().record(took);
            }
        }
        self.health.note(holder, Failure::Get, &result);
        result
    }

    /// Which of `ids` `holder` says it holds.
    pub(super) async fn has_on(
        &self,
        holder: Holder,
        ids: &[ChunkId],
    ) -> Result<Vec<bool>, HolderError> {
        match holder {
            Holder::Local(_) => Ok(self.local.has(ids)),
            Holder::Remote(peer) => {
                let started = Instant::now();
                let answer = self.remote(peer).has(ids).await;
                if answer.is_ok() {
                    self.health.rtt().record(started.elapsed());
                } else {
                    // Silence is a failure too: without it a member that acknowledges puts
                    // and never answers this question would stay ranked among the holders
                    // and be handed the same shards again every sweep.
                    self.health.note(holder, Failure::Query, &answer);
                }
                answer
            }
        }
    }

    /// Drops `ids` (authorized by `key`) on `holder` and leaves tombstones there.
    pub(super) async fn delete_on(
        &self,
        holder: Holder,
        key: &DeleteKey,
        ids: &[ChunkId],
    ) -> Result<(), HolderError> {
        match holder {
            Holder::Local(_) => {
                self.local.delete(key, ids);
                Ok(())
            }
            Holder::Remote(peer) => self.remote(peer).delete(key, ids).await,
        }
    }

    /// How long a read (`Failure::Get`) or a write waits for a holder before asking the next
    /// one as well: about the observed p99 latency, within the configured bounds.
    pub(super) fn hedge_delay(&self, what: Failure) -> Duration {
        let s = &self.settings;
        let latency = match what {
            Failure::Put => self.health.put_latency(),
            _ => self.health.get_latency(),
        };
        latency.hedge_delay(s.hedge_min, s.hedge_max)
    }

    /// `peer`'s proofs of possession of `ids`, checked against this node's copies (see
    /// [`RemoteHolder::prove_checked`]).
    pub(super) async fn prove_on(&self, peer: PeerInfo, ids: Vec<ChunkId>) -> Vec<Proved> {
        self.remote(peer)
            .prove_checked(&self.local, &self.health, &ids)
            .await
    }
}
