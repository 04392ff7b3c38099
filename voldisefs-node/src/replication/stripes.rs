//! Erasure-coded chunks (`rs:K+M`) in the replication layer: a stripe's K + M shards go to
//! distinct nodes, reads fetch any K of them, and holders recognise stripes by their
//! descriptors (`voldisefs-crypto/FORMAT.md`, section 8). [`Stripes`] is their facade: what
//! the upload and download pipelines and repair call.
//!
//! * **Placement**: the descriptor's id (the stripe id) is the rendezvous key. Shard `j` goes
//!   to the `j`-th node of the ranking (healthy nodes first), and every shard holder also keeps
//!   the descriptor, so any of them can rebuild a lost sibling without a key. A holder that
//!   fails is replaced by the next-ranked node not yet used (a hung one after the per-attempt
//!   deadline; it is then demoted, so later stripes rank it last: unlike replica puts, shard
//!   puts are not hedged, since a second copy of a shard would sit on a node that holds
//!   another shard of the stripe). With fewer live nodes than K + M
//!   the upload is refused ([`NodeError::TooFewNodes`]): two shards on one node would make
//!   one lost node cost two shards, and the promised tolerance of M lost nodes would not hold.
//! * **Reads**: the descriptor is fetched like any object (it is on K + M nodes), then the
//!   data shards from the nodes placement put them on, each checked against its id. A shard
//!   that is missing, corrupt or slow (past the hedging delay) brings in the next parity shard;
//!   shards not where placement put them are located with one batched `has_chunks` over the
//!   ranked nodes, then over every live peer. Decoding runs only when a data shard is missing.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use voldisefs_crypto::{Redundancy, Stripe};
use voldisefs_proto::{ChunkId, NodeId, PeerInfo};
use voldisefs_store::ChunkStore;

use super::descriptor::{descriptor, shard_ids};
use super::fetch::Fetched;
use super::health::Failure;
use super::hedge::AttemptError;
use super::holder::{Holder, HolderError};
use super::layer::Layer;
use super::placement;
use crate::NodeError;

/// One sealed chunk as a stripe, ready to place.
#[derive(Debug, Clone)]
pub(crate) struct StripeUpload {
    /// The redundancy it gives.
    pub(crate) redundancy: Redundancy,
    /// The stripe id (BLAKE3 of the descriptor).
    pub(crate) id: ChunkId,
    /// The descriptor object.
    pub(crate) descriptor: Bytes,
    /// Shard ids, in order.
    pub(crate) ids: Vec<ChunkId>,
    /// Shard objects, in order.
    pub(crate) shards: Vec<Bytes>,
}

/// Erasure-coded objects across the live nodes: placing stripes, reading them back, and
/// fetching shards for repair. Borrowed from [`Cluster::stripes`](super::Cluster::stripes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stripes<'a> {
    layer: &'a Layer,
}

impl<'a> Stripes<'a> {
    /// The stripes of `layer`.
    pub(super) fn new(layer: &'a Layer) -> Self {
        Self { layer }
    }
}

impl Stripes<'_> {
    /// Places a stripe: shard `j` and the descriptor on the `j`-th ranked node, replacing
    /// nodes that fail by the next-ranked unused one. Returns the nodes that confirmed.
    pub(crate) async fn put(&self, stripe: StripeUpload) -> Result<Vec<NodeId>, NodeError> {
        let nodes = self.layer.nodes();
        let n = stripe.shards.len();
        if nodes.len() < n {
            return Err(NodeError::TooFewNodes {
                redundancy: stripe.redundancy,
                needed: n,
                live: nodes.len(),
            });
        }
        let stripe = Arc::new(stripe);
        let mut ranked = self.layer.rank(&stripe.id, &nodes).into_iter();
        let put_pair = |holder: Holder, j: usize| {
            let stripe = stripe.clone();
            async move {
                let result = async {
                    self.layer
                        .put_on(holder, stripe.id, stripe.descriptor.clone())
                        .await?;
                    self.layer
                        .put_on(holder, stripe.ids[j], stripe.shards[j].clone())
                        .await
                }
                .await;
                (j, holder, result)
            }
        };
        let mut running = FuturesUnordered::new();
        for j in 0..n {
            if let Some(holder) = ranked.next() {
                running.push(put_pair(holder, j));
            }
        }
        let mut confirmed = Vec::with_capacity(n);
        let mut failures: Vec<HolderError> = Vec::new();
        while let Some((j, holder, result)) = running.next().await {
            match result {
                Ok(()) => confirmed.push(holder.id()),
                Err(e) => {
                    tracing::debug!(peer = %holder.id(), shard = j, error = %e, "shard put failed");
                    failures.push(e);
                    match ranked.next() {
                        Some(next) => running.push(put_pair(next, j)),
                        None => {
                            let full = failures.iter().all(|e| matches!(e, HolderError::Full(_)));
                            let reason = failures
                                .last()
                                .map_or_else(|| "no node".into(), ToString::to_string);
                            return Err(if full {
                                NodeError::Full(reason)
                            } else {
                                NodeError::NoHolder {
                                    chunk: stripe.ids[j],
                                    reason,
                                }
                            });
                        }
                    }
                }
            }
        }
        Ok(confirmed)
    }

    /// Fetches a stripe's descriptor (checked against `id`), then any K of its shards, and
    /// joins them into the sealed chunk.
    pub(crate) async fn fetch(
        &self,
        id: ChunkId,
        claimed: &[NodeId],
    ) -> Result<Fetched<Vec<u8>>, NodeError> {
        let stripe = match self.fetch_descriptor(id, claimed).await? {
            Fetched::Found(stripe) => Arc::new(stripe),
            Fetched::Deleted => return Ok(Fetched::Deleted),
            Fetched::Missing => return Ok(Fetched::Missing),
        };
        let shards = self
            .fetch_shards(id, &stripe, stripe.data_shards(), true)
            .await;
        if shards.iter().flatten().count() < stripe.data_shards() {
            return Ok(Fetched::Missing);
        }
        let joined = crate::cpu::run(move || stripe.join(&shards))
            .await
            .map_err(|e| NodeError::Internal(e.to_string()))?
            .map_err(NodeError::Crypto)?;
        Ok(Fetched::Found(joined))
    }

    /// Fetches and parses the descriptor of stripe `id`.
    pub(super) async fn fetch_descriptor(
        &self,
        id: ChunkId,
        claimed: &[NodeId],
    ) -> Result<Fetched<Stripe>, NodeError> {
        self.layer
            .fetch(id, claimed, move |bytes: Bytes| {
                if !id.matches(&bytes) {
                    return Err(AttemptError::Next(HolderError::Failed(
                        "served a forged stripe descriptor".into(),
                    )));
                }
                descriptor(&bytes).ok_or_else(|| {
                    AttemptError::Next(HolderError::Failed(
                        "served something that is not a stripe descriptor".into(),
                    ))
                })
            })
            .await
    }

    /// Fetches at least `want` verified shards of `stripe` (id `id`), data shards first: from
    /// this node, then from where placement put them, then from wherever `has_chunks` finds
    /// them (the ranked nodes first, then, if `wide`, every live peer). Slots of shards not
    /// fetched are `None`; fewer than `want` means no reachable set. Repair does not search
    /// wide: a stripe it cannot rebuild from its ranked nodes waits for the next sweep, so a
    /// planted stripe costs the network a bounded, batched question per sweep and no more.
    ///
    /// Every (shard, holder) pair is an attempt. Attempts start in order of the holders'
    /// place (every shard's first holder, data shards first, then every shard's second
    /// holder, ...): as many as shards are still needed, one more for each failure and one
    /// more for each hedging delay without progress. When no attempt is left to start, the
    /// missing shards are looked for further afield while the attempts in flight go on, so a
    /// hung holder costs a hedging delay, never its deadline.
    pub(crate) async fn fetch_shards(
        &self,
        id: ChunkId,
        stripe: &Arc<Stripe>,
        want: usize,
        wide: bool,
    ) -> Vec<Option<Bytes>> {
        let ids = shard_ids(stripe);
        let n = ids.len();
        let mut shards: Vec<Option<Bytes>> =
            ids.iter().map(|s| self.layer.local.store.get(s)).collect();
        let mut have = shards.iter().flatten().count();
        if have >= want {
            return shards;
        }
        let nodes = self.layer.nodes();
        let local = self.layer.me().id;
        let ranked: Vec<Holder> = placement::rank(&id, &nodes)
            .into_iter()
            .map(|p| self.layer.holder(p))
            .filter(|h| h.id() != local)
            .collect();
        let mut tried: HashSet<(usize, NodeId)> = HashSet::new();
        // First guess: where placement put each shard (the full ranking has this node too).
        let full: Vec<PeerInfo> = placement::rank(&id, &nodes);
        let mut pending: VecDeque<(usize, Holder)> = (0..n)
            .filter(|&j| shards[j].is_none())
            .filter_map(|j| {
                full.get(j)
                    .filter(|p| p.id != local)
                    .map(|p| (j, self.layer.holder(*p)))
            })
            .collect();
        let attempt = |j: usize, holder: Holder| {
            let (stripe, id) = (stripe.clone(), ids[j]);
            async move {
                let Ok(bytes) = self.layer.get_from(holder, id).await else {
                    return (j, None);
                };
                let checked =
                    crate::cpu::run(move || stripe.check_shard(j, &bytes).then_some(bytes))
                        .await
                        .ok()
                        .flatten();
                if checked.is_none() {
                    if let Holder::Remote(peer) = holder {
                        tracing::warn!(peer = %peer.id, shard = %id, "holder served a corrupt shard");
                        self.layer.health.failure(peer.id, Failure::Get);
                    }
                }
                (j, checked)
            }
        };
        // Asks the holders of one search stage which of the missing shards they have; each
        // answer is used as it arrives, so a holder that hangs on the question holds up nothing.
        let locate = |stage: usize, missing: Vec<usize>| {
            let pool: Vec<Holder> = if stage == 0 {
                ranked.iter().take(n + 2).copied().collect()
            } else {
                ranked.iter().skip(n + 2).copied().collect()
            };
            let missing = Arc::new(missing);
            pool.into_iter()
                .map(|holder| {
                    let missing = missing.clone();
                    let wanted: Vec<ChunkId> = missing.iter().map(|&j| ids[j]).collect();
                    async move {
                        let present = self.layer.has_on(holder, &wanted).await.unwrap_or_default();
                        missing
                            .iter()
                            .zip(present)
                            .filter(|(_, here)| *here)
                            .map(|(&j, _)| (j, holder))
                            .collect::<Vec<_>>()
                    }
                })
                .collect::<FuturesUnordered<_>>()
        };
        let mut running = FuturesUnordered::new();
        let mut in_flight: HashSet<usize> = HashSet::new();
        let mut stage = 0;
        let mut locating = FuturesUnordered::new();
        let hedge = self.layer.hedge_delay(Failure::Get);
        let tick = tokio::time::sleep(hedge);
        tokio::pin!(tick);
        // The next attempt at a shard not in hand, preferring shards nobody is asked for yet.
        let next = |pending: &mut VecDeque<(usize, Holder)>,
                    shards: &[Option<Bytes>],
                    in_flight: &HashSet<usize>,
                    tried: &mut HashSet<(usize, NodeId)>| {
            pending.retain(|(j, h)| shards[*j].is_none() && !tried.contains(&(*j, h.id())));
            let at = pending
                .iter()
                .position(|(j, _)| !in_flight.contains(j))
                .or(if pending.is_empty() { None } else { Some(0) })?;
            let (j, holder) = pending.remove(at)?;
            tried.insert((j, holder.id()));
            Some((j, holder))
        };
        for _ in 0..want - have {
            if let Some((j, h)) = next(&mut pending, &shards, &in_flight, &mut tried) {
                in_flight.insert(j);
                running.push(attempt(j, h));
            }
        }
        loop {
            if have >= want {
                break;
            }
            let stages = if wide { 2 } else { 1 };
            if running.is_empty() && pending.is_empty() && locating.is_empty() {
                if stage >= stages {
                    break;
                }
                let missing: Vec<usize> = (0..n).filter(|&j| shards[j].is_none()).collect();
                locating = locate(stage, missing);
                stage += 1;
            }
            tokio::select! {
                done = running.next(), if !running.is_empty() => {
                    let Some((j, got)) = done else { continue };
                    in_flight.remove(&j);
                    match got {
                        Some(bytes) if shards[j].is_none() => {
                            shards[j] = Some(bytes);
                            have += 1;
                        }
                        Some(_) => {}
                        None => {
                            if let Some((j, h)) = next(&mut pending, &shards, &in_flight, &mut tried) {
                                in_flight.insert(j);
                                running.push(attempt(j, h));
                            }
                        }
                    }
                }
                found = locating.next(), if !locating.is_empty() => {
                    pending.extend(found.into_iter().flatten());
                    let needed = want.saturating_sub(have + in_flight.len()).max(usize::from(running.is_empty()));
                    for _ in 0..needed {
                        if let Some((j, h)) = next(&mut pending, &shards, &in_flight, &mut tried) {
                            in_flight.insert(j);
                            running.push(attempt(j, h));
                        }
                    }
                }
                () = &mut tick => {
                    match next(&mut pending, &shards, &in_flight, &mut tried) {
                        Some((j, h)) => {
                            in_flight.insert(j);
                            running.push(attempt(j, h));
                        }
                        None if locating.is_empty() && stage < stages => {
                            let missing: Vec<usize> = (0..n).filter(|&j| shards[j].is_none()).collect();
                            locating = locate(stage, missing);
                            stage += 1;
                        }
                        None => {}
                    }
                    tick.as_mut().reset(tokio::time::Instant::now() + hedge);
                }
            }
        }
        shards
    }
}
