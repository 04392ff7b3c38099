//! The replication layer: the one module that knows where chunks live and how to reach them.
//!
//! [`Cluster`] owns this node's store (behind [`LocalHolder`]) and its network; the upload and
//! download pipelines, repair, hand-off and status talk only to it. Its rules (DESIGN
//! section 5):
//!
//! * **Placement**: a chunk's holders are the first `replicas` live nodes in rendezvous order
//!   ([`placement`]); reads and writes use that order with demoted peers (recent failures,
//!   [`health`]) and suspect peers moved last, re-evaluated for every chunk.
//! * **Never wait on one peer** ([`hedge`]): every request has a short per-attempt deadline,
//!   and when the best holder has not answered within about the observed p99 latency the next
//!   one is asked as well. A write succeeds once `replicas` holders (or as many as there are
//!   live nodes) confirmed; a failing holder is replaced by the next-ranked node.
//! * **Ranked first, wide only on a miss**: reads ask the ranked holders; only when none of
//!   them has a chunk are all live peers asked.
//! * **Believe nothing unproved**: repair drops a copy only after `replicas` better-ranked
//!   holders proved possession ([`plan`]); a holder that fails a proof, get or put is demoted.
//! * **Deletes stick** ([`tombstones`]): a delete leaves tombstones on the chunk's ranked
//!   holders (the record's on every live node), which refuse later puts of it.

mod budget;
mod expiry;
mod handler;
mod health;
mod hedge;
mod holder;
pub mod placement;
mod plan;
mod repair;
mod stripe_repair;
mod stripes;
mod tombstones;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;
use voldisefs_net::{Network, PeerState};
use voldisefs_proto::{ChunkId, DeleteKey, NodeId, PeerInfo};
use voldisefs_store::{ChunkStore, StoreStats};

pub(crate) use handler::StoreHandler;
pub(crate) use health::{Failure, PeerHealth};
pub(crate) use hedge::AttemptError;
pub(crate) use holder::{Holder, HolderError, LocalHolder};
pub(crate) use repair::{Mode, RepairCounters, Repairer};
pub(crate) use stripes::StripeUpload;

pub(crate) use tombstones::Tombstones;

use crate::NodeError;

/// One transfer's window of chunks in flight: `base`, plus what covers the median latency
/// of this node's recent puts or gets at [`WINDOW_RATE`] bytes a second (the
/// bandwidth-delay product), at most [`WINDOW_MAX_BYTES`] of chunks (or `base`, if more).
/// On a fast link that adds a chunk or two; over 80 ms it keeps the pipe full instead of
/// waiting a round trip per window. The growth beyond `base` is drawn from a node-wide pool
/// (`NodeConfig::transfer_window_budget`, 512 MiB by default) and given back when the window
/// shrinks or is dropped, so many slow transfers at once cannot make a node hold more than
/// that beyond their base windows.
#[derive(Debug)]
pub(crate) struct Window {
    cluster: Cluster,
    base: usize,
    chunk_len: usize,
    what: Failure,
    /// Bytes of growth held from the pool.
    held: usize,
}

impl Window {
    /// Chunks that may be in flight now (asked before each chunk starts).
    pub(crate) fn size(&mut self) -> usize {
        let health = &self.cluster.inner.health;
        let latency = match self.what {
            Failure::Put => health.put_latency(),
            _ => health.get_latency(),
        };
        // The chunks' own latency, or the round trip while they have not been timed enough
        // (one round trip timed is enough: a download times its record's before it starts).
        let median = match (latency.median(), health.rtt().median_of(1)) {
            (Some(chunks), Some(rtt)) => Some(chunks.max(rtt)),
            (chunks, rtt) => chunks.or(rtt),
        };
        let want = (window_for(self.base, self.chunk_len, median) - self.base)
            .saturating_mul(self.chunk_len);
        let pool = &self.cluster.inner.window_pool;
        if want > self.held {
            let asked = want - self.held;
            let took = pool
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                    Some(free - free.min(asked))
                })
                .map_or(0, |free| free.min(asked));
            self.held += took;
        } else if want < self.held {
            pool.fetch_add(self.held - want, Ordering::AcqRel);
            self.held = want;
        }
        self.base + self.held / self.chunk_len
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        self.cluster
            .inner
            .window_pool
            .fetch_add(self.held, Ordering::AcqRel);
    }
}

/// The window for a median latency of `median` (`None`: not measured yet).
fn window_for(base: usize, chunk_len: usize, median: Option<Duration>) -> usize {
    let base = base.max(1);
    let Some(median) = median else {
        return base;
    };
    let chunk_len = chunk_len.max(1);
    let extra = (median.as_secs_f64() * WINDOW_RATE / chunk_len as f64).ceil() as usize;
    let cap = base.max(WINDOW_MAX_BYTES / chunk_len);
    base.saturating_add(extra).min(cap)
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn the_window_covers_the_latency_within_its_cap() {
        const MIB: usize = 1 << 20;
        assert_eq!(
            window_for(4, MIB, None),
            4,
            "nothing measured: the configured window"
        );
        assert_eq!(window_for(4, MIB, Some(Duration::ZERO)), 4);
        // A MiB takes 1/2048 s at 2 GiB/s: a latency of about two of those, two chunks more.
        assert_eq!(
            window_for(4, MIB, Some(Duration::from_nanos(2 * 488_281))),
            6
        );
        assert_eq!(window_for(4, MIB, Some(Duration::from_millis(1))), 7);
        // 20 ms is 41 chunks more; 80 ms would be 164 more: capped at 128 MiB of chunks.
        assert_eq!(window_for(4, MIB, Some(Duration::from_millis(20))), 45);
        assert_eq!(window_for(4, MIB, Some(Duration::from_millis(80))), 128);
        // Small chunks: many more of them, the same bytes at most.
        assert_eq!(window_for(4, 64 << 10, Some(Duration::from_secs(1))), 2048);
        // A configured window above the cap stays as configured.
        assert_eq!(window_for(200, MIB, Some(Duration::from_secs(1))), 200);
        assert_eq!(window_for(0, MIB, None), 1, "never no window at all");
    }
}

/// The rate a transfer window is sized for (bytes a second): see [`Cluster::window`].
pub(crate) const WINDOW_RATE: f64 = 2.0 * 1024.0 * 1024.0 * 1024.0;
/// Objects up to this size are timed as round trips too (see [`Window`]).
const SMALL_OBJECT: usize = 64 * 1024;
/// Most bytes of chunks one transfer keeps in flight when its window grows with latency.
pub(crate) const WINDOW_MAX_BYTES: usize = 128 * 1024 * 1024;

use health::Health;
use holder::RemoteHolder;

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

/// Places, finds, fetches and deletes chunks across the live nodes, this one included.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Cluster {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    net: Network,
    local: Arc<LocalHolder>,
    health: Health,
    settings: Settings,
    /// Bytes of window growth the node's transfers may still take (`window_budget` in all).
    window_pool: Arc<AtomicUsize>,
}

/// A holder's rank class: healthy nodes first, then demoted ones, then suspect ones.
fn class(state: Option<PeerState>, demoted: bool) -> u8 {
    match (state, demoted) {
        (Some(PeerState::Alive) | None, false) => 0,
        (Some(PeerState::Alive) | None, true) => 1,
        _ => 2,
    }
}

impl Cluster {
    /// The replication layer over `net` and this node's `local` holder.
    pub(crate) fn new(net: Network, local: Arc<LocalHolder>, settings: Settings) -> Self {
        Self {
            inner: Arc::new(Shared {
                net,
                local,
                health: Health::default(),
                window_pool: Arc::new(AtomicUsize::new(settings.window_budget)),
                settings,
            }),
        }
    }

    /// Bytes of window growth the node's transfers hold now (at most the budget).
    pub(crate) fn window_growth(&self) -> usize {
        self.inner
            .settings
            .window_budget
            .saturating_sub(self.inner.window_pool.load(Ordering::Acquire))
    }

    /// The network (membership, status, drills).
    pub(crate) fn net(&self) -> &Network {
        &self.inner.net
    }

    /// This node.
    pub(crate) fn local(&self) -> PeerInfo {
        self.inner.net.local()
    }

    /// Copies kept of every chunk.
    pub(crate) fn replicas(&self) -> usize {
        self.inner.settings.replicas
    }

    /// Every node placement may use: the live peers and this node.
    pub(crate) fn nodes(&self) -> Vec<PeerInfo> {
        let mut nodes = self.inner.net.membership().live_peers();
        nodes.push(self.local());
        nodes
    }

    /// This node's store usage.
    pub(crate) fn clock(&self) -> &crate::clock::Clock {
        &self.inner.local.clock
    }

    /// The unix time expiry is judged by on this node (see [`crate::clock`]).
    pub(crate) fn now(&self) -> u64 {
        self.inner.local.clock.now()
    }

    /// This node's own unix time, which stamps expiries and bounds them (never corrected by
    /// peers; see [`crate::clock`]).
    pub(crate) fn own_time(&self) -> u64 {
        self.inner.local.clock.own()
    }

    /// What this node stores.
    pub(crate) fn store_stats(&self) -> StoreStats {
        self.inner.local.store.stats()
    }

    /// Ids this node keeps tombstones for.
    pub(crate) fn tombstone_count(&self) -> usize {
        self.inner.local.tombstones.len()
    }

    /// Bytes of proof hashing granted to peers so far (see `budget`).
    pub(crate) fn proof_bytes_granted(&self) -> u64 {
        self.inner.local.proof_budget.granted()
    }

    /// Bytes the tombstone table holds (its containers, by capacity).
    pub(crate) fn tombstone_bytes(&self) -> usize {
        self.inner.local.tombstones.bytes()
    }

    /// What this node has seen of `peer` as a holder.
    pub(crate) fn peer_health(&self, peer: &NodeId) -> PeerHealth {
        self.inner.health.of(peer)
    }

    /// Holder failures so far, by kind.
    pub(crate) fn failure_counts(&self) -> [(Failure, u64); Failure::ALL.len()] {
        self.inner.health.failure_counts()
    }

    /// What up to `max` live peers say they store, `(objects, bytes, time)` by peer: one
    /// `get_stats` each, all at once, each given `timeout`; silent peers are left out.
    pub(crate) async fn peer_stats(
        &self,
        max: usize,
        timeout: Duration,
    ) -> HashMap<NodeId, (u64, u64, u64)> {
        let mut peers = self.inner.net.membership().live_peers();
        // A different sample each time when there are more peers than asked.
        if peers.len() > max {
            use std::hash::BuildHasher;
            let len = peers.len();
            let start = std::collections::hash_map::RandomState::new().hash_one(len);
            peers.rotate_left((start % len as u64) as usize);
        }
        let asks = peers.into_iter().take(max).map(|peer| async move {
            let ask = self.inner.net.request(
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

    /// Forgets everything held (shutdown, crash).
    pub(crate) fn wipe(&self) {
        self.inner.local.store.clear();
        self.inner.local.tombstones.clear();
    }

    fn holder(&self, peer: PeerInfo) -> Holder {
        if peer.id == self.local().id {
            Holder::Local(peer)
        } else {
            Holder::Remote(peer)
        }
    }

    fn remote(&self, peer: PeerInfo) -> RemoteHolder<'_> {
        RemoteHolder {
            net: &self.inner.net,
            peer,
            timeout: self.inner.settings.attempt_timeout,
        }
    }

    /// `nodes` as holders of `id`, best first: rendezvous order, with demoted and then suspect
    /// peers moved last (stable, so every class keeps rendezvous order).
    fn rank(&self, id: &ChunkId, nodes: &[PeerInfo]) -> Vec<Holder> {
        let mut ranked: Vec<Holder> = placement::rank(id, nodes)
            .into_iter()
            .map(|p| self.holder(p))
            .collect();
        ranked.sort_by_cached_key(|h| self.class_of(h));
        ranked
    }

    /// A holder's rank class now: 0 healthy (or this node), 1 demoted, 2 suspect.
    fn class_of(&self, holder: &Holder) -> u8 {
        match holder {
            Holder::Local(_) => 0,
            Holder::Remote(p) => {
                let state = self.inner.net.membership().get(&p.id).map(|e| e.state);
                class(state, self.inner.health.is_demoted(&p.id))
            }
        }
    }

    fn note<T>(&self, holder: Holder, what: Failure, result: &Result<T, HolderError>) {
        if let Holder::Remote(peer) = holder {
            match result {
                Ok(_) => self.inner.health.success(peer.id),
                Err(e) if e.is_failure() => {
                    tracing::debug!(peer = %peer.id, error = %e, kind = what.as_str(), "holder failed");
                    self.inner.health.failure(peer.id, what);
                }
                Err(_) => {}
            }
        }
    }

    /// Stores `bytes` on `holder`. For this node the bytes must be the gateway's own sealed
    /// chunk (its id computed from them); peers verify them.
    async fn put_on(&self, holder: Holder, id: ChunkId, bytes: Bytes) -> Result<(), HolderError> {
        let started = Instant::now();
        let result = match holder {
            Holder::Local(_) => self.inner.local.put_sealed(id, bytes),
            Holder::Remote(peer) => self.remote(peer).put(id, bytes).await,
        };
        if result.is_ok() && holder.is_remote() {
            self.inner.health.put_latency().record(started.elapsed());
        }
        self.note(holder, Failure::Put, &result);
        result
    }

    /// Fetches chunk `id` from `holder` (not verified here).
    async fn get_from(&self, holder: Holder, id: ChunkId) -> Result<Bytes, HolderError> {
        let started = Instant::now();
        let result = match holder {
            Holder::Local(_) => self.inner.local.get(&id),
            Holder::Remote(peer) => self.remote(peer).get(id).await,
        };
        if let (Ok(bytes), true) = (&result, holder.is_remote()) {
            let took = started.elapsed();
            self.inner.health.get_latency().record(took);
            // A small object (a record, a descriptor) takes about a round trip.
            if bytes.len() <= SMALL_OBJECT {
                self.inner.health.rtt().record(took);
            }
        }
        self.note(holder, Failure::Get, &result);
        result
    }

    /// Which of `ids` `holder` says it holds.
    async fn has_on(&self, holder: Holder, ids: &[ChunkId]) -> Result<Vec<bool>, HolderError> {
        match holder {
            Holder::Local(_) => Ok(self.inner.local.has(ids)),
            Holder::Remote(peer) => {
                let started = Instant::now();
                let answer = self.remote(peer).has(ids).await;
                if answer.is_ok() {
                    self.inner.health.rtt().record(started.elapsed());
                } else {
                    // Silence is a failure too: without it a member that acknowledges puts
                    // and never answers this question would stay ranked among the holders
                    // and be handed the same shards again every sweep.
                    self.note(holder, Failure::Query, &answer);
                }
                answer
            }
        }
    }

    /// Drops `ids` (authorized by `key`) on `holder` and leaves tombstones there.
    async fn delete_on(
        &self,
        holder: Holder,
        key: DeleteKey,
        ids: &[ChunkId],
    ) -> Result<(), HolderError> {
        match holder {
            Holder::Local(_) => {
                self.inner.local.delete(key, ids);
                Ok(())
            }
            Holder::Remote(peer) => self.remote(peer).delete(key, ids).await,
        }
    }

    /// Stores a chunk the gateway sealed on `replicas` holders (as many as there are live
    /// nodes when fewer), hedging past slow holders and replacing failing ones. Returns the
    /// holders that confirmed.
    ///
    /// An acknowledgement is not proof that a holder keeps the chunk, so this node also keeps
    /// a copy when it has room (best effort); repair drops it once `replicas` better-ranked
    /// holders proved theirs (see [`Repairer::settle`]), and pushes it on when they cannot.
    pub(crate) async fn put(&self, id: ChunkId, bytes: Bytes) -> Result<Vec<NodeId>, NodeError> {
        let confirmed = self.place(id, bytes.clone()).await?;
        if !confirmed.contains(&self.local().id) {
            if let Err(e) = self.inner.local.put_sealed(id, bytes) {
                tracing::debug!(chunk = %id, error = %e, "no room for the gateway's own copy");
            }
        }
        Ok(confirmed)
    }

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

    /// A transfer's window of chunks in flight (see [`Window`]): `base` chunks of
    /// `chunk_len` bytes to begin with, growing with the latency of puts (`Failure::Put`)
    /// or gets.
    pub(crate) fn window(&self, base: usize, chunk_len: usize, what: Failure) -> Window {
        Window {
            cluster: self.clone(),
            base: base.max(1),
            chunk_len: chunk_len.max(1),
            what,
            held: 0,
        }
    }

    fn hedge_delay(&self, what: Failure) -> Duration {
        let s = &self.inner.settings;
        let latency = match what {
            Failure::Put => self.inner.health.put_latency(),
            _ => self.inner.health.get_latency(),
        };
        latency.hedge_delay(s.hedge_min, s.hedge_max)
    }

    /// This node's own copy of `id`, if it holds one (checked against the id when it was
    /// stored, so it needs no second hash; an expired one is dropped and not returned).
    pub(crate) fn local_copy(&self, id: &ChunkId) -> Option<Bytes> {
        self.inner.local.get(id).ok()
    }

    /// Fetches chunk `id` and passes the bytes to `open` (run on the blocking pool, which
    /// verifies and decodes them). Asks this node first when it holds the chunk, then the
    /// ranked holders (`claimed` ones first within a class), hedging past slow ones; only
    /// when all of those miss are the other live peers asked. Bytes `open` rejects as corrupt
    /// demote their holder and the next one is tried.
    ///
    /// [`Fetched::Deleted`] when holders answered that the chunk was deleted and none served
    /// it, [`Fetched::Missing`] when no reachable node has it.
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
        let nodes = self.nodes();
        let mut ranked = self.rank(&id, &nodes);
        // Within each class of the ranking, known holders first; this node first of all when
        // it holds the chunk.
        let here = self.inner.local.store.contains(&id);
        ranked.sort_by_cached_key(|h| match h {
            Holder::Local(_) => (0, !here),
            Holder::Remote(p) => (self.class_of(h), !claimed.contains(&p.id)),
        });
        let window = self.replicas() + 2;
        let (first, rest): (Vec<Holder>, Vec<Holder>) = {
            let mut first = ranked;
            let rest = first.split_off(window.min(first.len()));
            (first, rest)
        };
        let mut deleted = 0usize;
        if let Some(found) = self.fetch_from(id, first, &open, &mut deleted).await? {
            return Ok(Fetched::Found(found));
        }
        // A miss on every ranked holder: ask everyone else which has it.
        let wide = self
            .locate_among(&[id], &rest)
            .await
            .pop()
            .unwrap_or_default();
        if let Some(found) = self.fetch_from(id, wide, &open, &mut deleted).await? {
            return Ok(Fetched::Found(found));
        }
        Ok(if deleted > 0 {
            Fetched::Deleted
        } else {
            Fetched::Missing
        })
    }

    async fn fetch_from<T, F>(
        &self,
        id: ChunkId,
        candidates: Vec<Holder>,
        open: &F,
        deleted: &mut usize,
    ) -> Result<Option<T>, NodeError>
    where
        T: Send + 'static,
        F: Fn(Bytes) -> Result<T, AttemptError> + Clone + Send + Sync + 'static,
    {
        if candidates.is_empty() {
            return Ok(None);
        }
        let hedge = self.hedge_delay(Failure::Get);
        let run = hedge::hedged(candidates, 1, hedge, |holder| async move {
            let bytes = self.get_from(holder, id).await?;
            let open = open.clone();
            let opened = crate::transfer::store::scrubbed(move || open(bytes))
                .await
                .map_err(|e| AttemptError::Stop(e.into()))?;
            if let (Err(AttemptError::Next(e)), Holder::Remote(peer)) = (&opened, holder) {
                tracing::warn!(peer = %peer.id, chunk = %id, error = %e, "holder served a corrupt chunk");
                self.inner.health.failure(peer.id, Failure::Get);
            }
            opened
        })
        .await?;
        *deleted += run
            .failed
            .iter()
            .filter(|(_, e)| *e == HolderError::Deleted)
            .count();
        Ok(run.ok.into_iter().next().map(|(_, value)| value))
    }

    /// For each of `ids`, the nodes that say they hold it (empty: no reachable node has it).
    ///
    /// Asks the best-ranked holder of each chunk first (one batched `has_chunks` per node);
    /// a chunk that holder does not confirm, whether it says no, fails, or has not answered
    /// within the hedging delay, is asked of its next-ranked holder, up to `replicas` of them.
    /// So a download costs about one such question per chunk however large the network, and a
    /// hung node costs one hedging delay. Chunks none of their ranked holders confirms are then
    /// looked for on every other live peer.
    pub(crate) async fn locate(&self, ids: &[ChunkId]) -> Vec<Vec<NodeId>> {
        let nodes = self.nodes();
        let r = self.replicas();
        let ranked: Vec<Vec<Holder>> = ids
            .iter()
            .map(|id| {
                let mut ranked = self.rank(id, &nodes);
                ranked.truncate(r);
                ranked
            })
            .collect();
        let mut found: Vec<Vec<NodeId>> = vec![Vec::new(); ids.len()];
        // Per chunk: how many of its ranked holders were asked so far.
        let mut asked = vec![0usize; ids.len()];
        let mut running = FuturesUnordered::new();
        let ask =
            |wanted: Vec<usize>, asked: &mut Vec<usize>, running: &mut FuturesUnordered<_>| {
                let mut batches: HashMap<Holder, Vec<usize>> = HashMap::new();
                for i in wanted {
                    if let Some(holder) = ranked[i].get(asked[i]) {
                        asked[i] += 1;
                        batches.entry(*holder).or_default().push(i);
                    }
                }
                for (holder, indices) in batches {
                    running.push(async move {
                        let batch: Vec<ChunkId> = indices.iter().map(|&i| ids[i]).collect();
                        (holder, indices, self.has_on(holder, &batch).await)
                    });
                }
            };
        // What this node holds needs no question.
        let here = self.inner.local.has(ids);
        let local = self.local().id;
        for (i, held) in here.iter().enumerate() {
            if *held {
                found[i].push(local);
            }
        }
        let wanted = (0..ids.len()).filter(|&i| found[i].is_empty()).collect();
        ask(wanted, &mut asked, &mut running);
        let hedge = self.hedge_delay(Failure::Get);
        let mut next_hedge = Instant::now() + hedge;
        while !running.is_empty() {
            tokio::select! {
                done = running.next() => {
                    let Some((holder, indices, answer)) = done else { break };
                    let present = match answer {
                        Ok(present) => present,
                        Err(e) => {
                            tracing::debug!(peer = %holder.id(), error = %e, "has_chunks failed");
                            vec![false; indices.len()]
                        }
                    };
                    let mut again = Vec::new();
                    for (&i, here) in indices.iter().zip(present) {
                        if here {
                            found[i].push(holder.id());
                        } else if found[i].is_empty() {
                            again.push(i);
                        }
                    }
                    ask(again, &mut asked, &mut running);
                }
                () = tokio::time::sleep_until(next_hedge) => {
                    // Slow answers: ask the next holder of every chunk still unconfirmed.
                    let slow: Vec<usize> = (0..ids.len()).filter(|&i| found[i].is_empty()).collect();
                    ask(slow, &mut asked, &mut running);
                    next_hedge = Instant::now() + hedge;
                }
            }
            if found.iter().all(|f| !f.is_empty()) {
                break;
            }
        }
        drop(running);
        let missing: Vec<usize> = (0..ids.len()).filter(|&i| found[i].is_empty()).collect();
        if !missing.is_empty() {
            let wanted: Vec<ChunkId> = missing.iter().map(|&i| ids[i]).collect();
            let others: Vec<Holder> = nodes
                .iter()
                .map(|p| self.holder(*p))
                .filter(|h| h.is_remote())
                .collect();
            let wide = self.locate_among(&wanted, &others).await;
            for (&i, holders) in missing.iter().zip(wide) {
                found[i] = holders.into_iter().map(|h| h.id()).collect();
            }
        }
        found
    }

    /// For each of `ids`, which of `holders` say they hold it (all asked at once, each with
    /// the per-attempt deadline), in the order of `holders`.
    async fn locate_among(&self, ids: &[ChunkId], holders: &[Holder]) -> Vec<Vec<Holder>> {
        let answers: Vec<(Holder, Vec<bool>)> = holders
            .iter()
            .map(|h| async move { (*h, self.has_on(*h, ids).await) })
            .collect::<FuturesUnordered<_>>()
            .filter_map(|(h, answer)| async move { answer.ok().map(|a| (h, a)) })
            .collect()
            .await;
        let mut found = vec![Vec::new(); ids.len()];
        for holder in holders {
            if let Some((_, present)) = answers.iter().find(|(h, _)| h == holder) {
                for (i, here) in present.iter().enumerate() {
                    if *here {
                        found[i].push(*holder);
                    }
                }
            }
        }
        found
    }

    /// Deletes `ids`, objects of the file whose delete key is `key`, for good: drops them here
    /// and on their ranked holders (the first `2 * replicas` live nodes for each, plus `also`,
    /// plus every live node when `everywhere`), all of which keep tombstones so that a late put
    /// or a repair push of them is refused. Holders drop only objects the key authorizes.
    /// Returns how many nodes confirmed.
    pub(crate) async fn delete(
        &self,
        key: &voldisefs_crypto::DeleteKey,
        ids: &[ChunkId],
        also: &[NodeId],
        everywhere: bool,
    ) -> usize {
        self.delete_spread(key, ids, also, everywhere, self.replicas())
            .await
    }

    /// Like [`delete`](Self::delete) for objects spread over `spread` nodes each (K + M for
    /// the stripe ids of an erasure-coded file): the window is `2 * max(replicas, spread)`
    /// ranked nodes. A holder deleting a stripe descriptor deletes the shards it lists.
    pub(crate) async fn delete_spread(
        &self,
        key: &voldisefs_crypto::DeleteKey,
        ids: &[ChunkId],
        also: &[NodeId],
        everywhere: bool,
        spread: usize,
    ) -> usize {
        let key = DeleteKey::from_bytes(*key.as_bytes());
        let nodes = self.nodes();
        let window = 2 * self.replicas().max(spread);
        let mut targets: HashMap<Holder, Vec<ChunkId>> = HashMap::new();
        for id in ids {
            let ranked = placement::rank(id, &nodes);
            for (rank, peer) in ranked.into_iter().enumerate() {
                if everywhere
                    || rank < window
                    || also.contains(&peer.id)
                    || peer.id == self.local().id
                {
                    targets.entry(self.holder(peer)).or_default().push(*id);
                }
            }
        }
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
        confirmed
    }
}

impl<T> Fetched<T> {
    /// What was found, changed by `f`.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Fetched<U> {
        match self {
            Fetched::Found(found) => Fetched::Found(f(found)),
            Fetched::Deleted => Fetched::Deleted,
            Fetched::Missing => Fetched::Missing,
        }
    }
}

/// What [`Cluster::fetch`] found.
#[derive(Debug)]
pub(crate) enum Fetched<T> {
    /// A holder served bytes that `open` accepted.
    Found(T),
    /// Holders answered that the chunk was deleted.
    Deleted,
    /// No reachable node has it.
    Missing,
}
