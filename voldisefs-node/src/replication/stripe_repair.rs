//! Repair of erasure-coded chunks: keep every stripe this node holds a descriptor of on K + M
//! distinct nodes, one shard each, rebuilding lost shards from any K survivors.
//!
//! For a stripe, the *target set* is the first K + M live, non-suspect nodes in rendezvous
//! order of the stripe id. Each sweep asks the target set and two more nodes which shards and
//! whether the descriptor they hold (one batched `has_chunks` per peer for a batch of
//! stripes). Then:
//! * The **leader**, the best-ranked node holding the descriptor and a shard (a descriptor
//!   planted alone starts no work), gives every target node that
//!   holds no shard one of the shards no target node holds: copied from a holder outside the
//!   set when there is one, else rebuilt from any K shards (each checked against its id, and
//!   the rebuilt one too), and pushes the descriptor to target nodes that miss it.
//! * A node **outside** the target set drops its shard only when every shard is on a distinct
//!   target node and the one holding its own shard *proved* possession to it (it can check the
//!   proof: it holds the same bytes). A claim never makes it drop anything.
//! * A node **leaving** hands each shard no target node holds to a target node that holds
//!   none, with the descriptor.
//!
//! Every peer's claims count only if it proves the descriptors it claims (the checker holds
//! them); a peer that cannot is demoted. Suspect peers are not asked; demoted ones (a failed
//! request lately: a lie, or a partition or freeze they came back from) receive no shards and
//! never lead, but when they rank among the first K + M + 2 they are asked what they hold, and
//! their proven claims count: a shard they keep is one to rebuild from, not a shard lost (with
//! it out of sight a stripe could look unrebuildable to every holder at once, and be lost to
//! the next crash). Repair looks for shards among the ranked nodes only, never
//! network-wide, so what a planted stripe can cost is one batched question per sweep (and, while
//! fewer than K of its shards are in sight, a place in one batched proof request per pool node,
//! which finds the tombstones of a stripe deleted while this node was cut off).
//!
//! A node whose store refused a push as full is left out of target sets for a while
//! (`Health::note_full`), so the stripe is completed on the next-ranked nodes, as uploads do.
//! Known limit: a target node left holding two shards of a stripe (after a race between two
//! nodes that each thought they led) keeps both; the stripe then has one distinct node fewer
//! than shards until that node leaves.
//!
//! Whether a shard is lost is judged from `has_chunks` claims: a proof of possession of shard
//! `j` can only be checked by a node holding shard `j`. A holder that lies about a shard is
//! caught when a read or a rebuild fetches it (it is demoted); until then the stripe counts
//! one shard more than it has, which is why M is the loss tolerance and not M + 1.

use std::collections::HashMap;
use std::sync::Arc;

use voldisefs_crypto::Stripe;
use voldisefs_net::PeerState;
use voldisefs_proto::{ChunkId, PeerInfo};
use voldisefs_store::ChunkStore;

use super::descriptor::{descriptor, shard_ids};
use super::holder::{Holder, HolderError};
use super::layer::Layer;
use super::placement;
use super::plan::Status;
use super::stripes::Stripes;
use super::sweep::{Hung, Mode, Outcome, Pace, Throttle};

/// Stripes examined per batch (each asks about K + M + 1 ids per peer).
pub(super) const STRIPE_BATCH: usize = 64;

/// What one stripe looks like from here: who claims which shard, who has the descriptor.
struct StripeView {
    id: ChunkId,
    stripe: Arc<Stripe>,
    shards: Vec<ChunkId>,
    /// Candidate nodes in rendezvous order (target set first, then two more).
    pool: Vec<PeerInfo>,
    /// How many of `pool` form the target set.
    targets: usize,
    /// How many of `pool` are usable (the target set and two more); the rest are demoted or
    /// full nodes ranked among the first K + M + 2: asked what they hold (a shard a demoted
    /// node keeps still counts, and can be fetched for a rebuild), never given a shard, never
    /// followed as leader.
    usable: usize,
    /// Per pool node: which shards it claims.
    claims: Vec<Vec<bool>>,
    /// Per pool node: whether it claims the descriptor.
    has_descriptor: Vec<bool>,
}

impl StripeView {
    fn holders_of(&self, j: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.pool.len()).filter(move |&p| self.claims[p][j])
    }

    fn target_holds(&self, j: usize) -> bool {
        self.holders_of(j).any(|p| p < self.targets)
    }

    fn holds_any(&self, p: usize) -> bool {
        self.claims[p].iter().any(|c| *c)
    }

    /// How many distinct shards some node of the pool holds (by claims that count).
    fn shards_held(&self) -> usize {
        (0..self.shards.len())
            .filter(|&j| self.holders_of(j).next().is_some())
            .count()
    }
}

/// Repairs stripes for one sweep: what repair (`repair.rs`) calls for the stripe descriptors
/// this node holds.
pub(super) struct StripeRepair<'a> {
    layer: &'a Layer,
    pace: &'a Pace,
}

impl<'a> StripeRepair<'a> {
    /// Stripe repair over `layer`, pushing at `pace`.
    pub(super) fn new(layer: &'a Layer, pace: &'a Pace) -> Self {
        Self { layer, pace }
    }

    /// Repairs a batch of stripes whose descriptors this node holds.
    pub(super) async fn repair_stripes(
        &self,
        batch: Vec<(ChunkId, Stripe)>,
        nodes: &[PeerInfo],
        mode: Mode,
        throttle: &mut Throttle,
        outcome: &mut Outcome,
        hung: &mut Hung,
    ) {
        let layer = self.layer;
        let local = layer.me().id;
        let membership = layer.net.membership();
        // Suspect peers (not answering lately) and hung ones (a request ran into the timeout
        // earlier in this sweep) are left out altogether. Demoted ones (failed a get, put or
        // proof) are neither trusted as holders nor given shards; nor are full ones (a store
        // that refused a push as full lately): the target set moves past them, as uploads do.
        let answering: Vec<PeerInfo> = nodes
            .iter()
            .filter(|p| {
                p.id == local
                    || (membership.get(&p.id).map(|e| e.state) != Some(PeerState::Suspect)
                        && !hung.contains(&p.id))
            })
            .copied()
            .collect();
        let usable: Vec<PeerInfo> = answering
            .iter()
            .filter(|p| {
                p.id == local || (!layer.health.is_demoted(&p.id) && !layer.health.is_full(&p.id))
            })
            .copied()
            .collect();
        let mut views: Vec<StripeView> = batch
            .into_iter()
            .map(|(id, stripe)| {
                let n = stripe.shard_ids().len();
                let mut pool = placement::rank(&id, &usable);
                pool.truncate(n + 2);
                let targets = n.min(pool.len());
                let usable = pool.len();
                // A demoted node (it failed a request lately: a partition, a freeze) may still
                // keep its shard: unasked, the stripe would look short of shards, and with
                // fewer than K in sight nobody would rebuild it.
                let extras: Vec<PeerInfo> = placement::rank(&id, &answering)
                    .into_iter()
                    .take(n + 2)
                    .filter(|p| p.id != local && !pool.contains(p))
                    .collect();
                pool.extend(extras);
                let shards = shard_ids(&stripe);
                StripeView {
                    id,
                    claims: vec![vec![false; n]; pool.len()],
                    has_descriptor: vec![false; pool.len()],
                    stripe: Arc::new(stripe),
                    shards,
                    pool,
                    targets,
                    usable,
                }
            })
            .collect();
        self.learn_claims(&mut views, hung).await;
        let deleted = match mode {
            Mode::Maintain => self.find_tombstones(&views).await,
            Mode::Handoff => Vec::new(),
        };
        for (v, view) in views.iter().enumerate() {
            if deleted.contains(&v) {
                outcome.dropped += 1;
                continue;
            }
            let result = match mode {
                Mode::Handoff => self.hand_off_stripe(view, throttle, outcome).await,
                Mode::Maintain => self.maintain_stripe(view, throttle, outcome).await,
            };
            if let Err(e) = result {
                // A full target is no failure: the next sweep's target set moves past it.
                if !matches!(e, HolderError::Full(_)) {
                    outcome.failed += 1;
                }
                tracing::debug!(stripe = %view.id, error = %e, "stripe not repaired yet");
            }
        }
    }

    /// Fills in every view's claims: this node's from its store, peers' by one `has_chunks`
    /// per peer for the whole batch.
    async fn learn_claims(&self, views: &mut [StripeView], hung: &mut Hung) {
        let layer = self.layer;
        let local = layer.me().id;
        let mut asks: HashMap<PeerInfo, Vec<(usize, usize)>> = HashMap::new();
        for (v, view) in views.iter_mut().enumerate() {
            for p in 0..view.pool.len() {
                if view.pool[p].id == local {
                    let held = layer.local.has(&view.shards);
                    view.claims[p] = held;
                    view.has_descriptor[p] = layer.local.store.contains(&view.id);
                } else {
                    asks.entry(view.pool[p]).or_default().push((v, p));
                }
            }
        }
        let answers = futures_util::future::join_all(asks.into_iter().map(|(peer, asked)| {
            let ids: Vec<ChunkId> = asked
                .iter()
                .flat_map(|&(v, _)| {
                    std::iter::once(views[v].id).chain(views[v].shards.iter().copied())
                })
                .collect();
            async move {
                let started = tokio::time::Instant::now();
                let answer = layer.has_on(Holder::Remote(peer), &ids).await;
                (peer, started, asked, answer)
            }
        }))
        .await;
        for (peer, started, asked, answer) in answers {
            let present = match answer {
                Ok(present) => present,
                Err(e) => {
                    if e.is_failure() {
                        hung.failed(peer.id, started);
                    }
                    continue; // No answer: claims nothing, so nothing is believed of it.
                }
            };
            let mut at = 0;
            for (v, p) in asked {
                let n = views[v].shards.len();
                let Some(slice) = present.get(at..at + 1 + n) else {
                    break;
                };
                views[v].has_descriptor[p] = slice[0];
                views[v].claims[p] = slice[1..].to_vec();
                at += 1 + n;
            }
        }
        self.check_descriptor_claims(views).await;
    }

    /// Every peer that claims a descriptor proves it (one `prove_chunks` per peer for the
    /// batch, checked against the local copy). A peer that cannot is demoted and none of its
    /// claims for the batch count: a member that acknowledges shards and keeps nothing is
    /// caught here, its shards rebuilt elsewhere.
    async fn check_descriptor_claims(&self, views: &mut [StripeView]) {
        let layer = self.layer;
        let local = layer.me().id;
        let mut asks: HashMap<PeerInfo, Vec<(usize, usize)>> = HashMap::new();
        for (v, view) in views.iter().enumerate() {
            for p in 0..view.pool.len() {
                if view.pool[p].id != local && view.has_descriptor[p] {
                    asks.entry(view.pool[p]).or_default().push((v, p));
                }
            }
        }
        let answers = futures_util::future::join_all(asks.into_iter().map(|(peer, asked)| {
            let ids: Vec<ChunkId> = asked.iter().map(|&(v, _)| views[v].id).collect();
            async move { (asked, layer.prove_on(peer, ids).await) }
        }))
        .await;
        for (asked, proved) in answers {
            let liar = proved.iter().any(|(s, _)| *s == Status::Failed);
            for ((v, p), (status, _)) in asked.into_iter().zip(proved) {
                if liar || status != Status::Proven {
                    let n = views[v].shards.len();
                    views[v].has_descriptor[p] = false;
                    views[v].claims[p] = vec![false; n];
                }
            }
        }
    }

    /// Upkeep of one stripe (see the module docs).
    async fn maintain_stripe(
        &self,
        view: &StripeView,
        throttle: &mut Throttle,
        outcome: &mut Outcome,
    ) -> Result<(), HolderError> {
        let local = self.layer.me().id;
        tracing::trace!(
            stripe = %view.id,
            pool = ?view.pool.iter().map(|p| p.addr).collect::<Vec<_>>(),
            targets = view.targets,
            usable = view.usable,
            claims = ?view.claims,
            descriptors = ?view.has_descriptor,
            "stripe view"
        );
        if view.shards_held() < view.stripe.data_shards() {
            return self.unrebuildable(view);
        }
        let Some(me) = view.pool[..view.usable].iter().position(|p| p.id == local) else {
            // Ranked below the pool: an outsider.
            return self.maybe_drop(view, outcome).await;
        };
        // Only a holder of the descriptor *and* a shard leads: a descriptor planted alone (any
        // peer can store one) starts no work anywhere.
        let leader = (0..view.usable).find(|&p| view.has_descriptor[p] && view.holds_any(p));
        if leader != Some(me) {
            if me >= view.targets {
                return self.maybe_drop(view, outcome).await;
            }
            return Ok(());
        }
        let n = view.shards.len();
        let missing: Vec<usize> = (0..n).filter(|&j| !view.target_holds(j)).collect();
        let free: Vec<usize> = (0..view.targets).filter(|&p| !view.holds_any(p)).collect();
        // Target nodes with a shard but no descriptor get the descriptor.
        for p in 0..view.targets {
            if p != me && view.holds_any(p) && !view.has_descriptor[p] {
                self.push(view, p, view.id, throttle, outcome).await?;
            }
        }
        let moves: Vec<(usize, usize)> = missing.into_iter().zip(free).collect();
        if moves.is_empty() {
            return Ok(());
        }
        let bytes = self.shard_bytes(view, &moves).await?;
        for (&(j, p), shard) in moves.iter().zip(bytes) {
            if p != me {
                if !view.has_descriptor[p] {
                    self.push(view, p, view.id, throttle, outcome).await?;
                }
                self.push_bytes(view, p, view.shards[j], shard, throttle, outcome)
                    .await?;
            } else {
                self.layer.local.put_sealed(view.shards[j], shard)?;
                outcome.pushed += 1;
            }
        }
        Ok(())
    }

    /// The shard objects for `moves` (shard, target): local copies, copies from holders
    /// outside the target set, and shards rebuilt from any K others.
    async fn shard_bytes(
        &self,
        view: &StripeView,
        moves: &[(usize, usize)],
    ) -> Result<Vec<bytes::Bytes>, HolderError> {
        let local = &self.layer.local;
        let mut out: Vec<Option<bytes::Bytes>> = moves
            .iter()
            .map(|(j, _)| local.store.get(&view.shards[*j]))
            .collect();
        let lost: Vec<usize> = moves
            .iter()
            .zip(&out)
            .filter(|(_, b)| b.is_none())
            .map(|((j, _), _)| *j)
            .collect();
        if lost.is_empty() {
            return Ok(out.into_iter().flatten().collect());
        }
        let stripe = view.stripe.clone();
        let shards = Stripes::new(self.layer)
            .fetch_shards(view.id, &stripe, stripe.data_shards(), false)
            .await;
        if shards.iter().flatten().count() < stripe.data_shards() {
            return Err(HolderError::Failed(format!(
                "fewer than {} shards of stripe {} reachable",
                stripe.data_shards(),
                view.id
            )));
        }
        let wanted = lost.clone();
        let rebuilt = crate::cpu::run(move || stripe.rebuild(&shards, &wanted))
            .await
            .map_err(|e| HolderError::Failed(e.to_string()))?
            .map_err(|e| HolderError::Failed(e.to_string()))?;
        let mut rebuilt = lost.into_iter().zip(rebuilt).collect::<HashMap<_, _>>();
        for ((j, _), slot) in moves.iter().zip(out.iter_mut()) {
            if slot.is_none() {
                *slot = rebuilt.remove(j).map(bytes::Bytes::from);
            }
        }
        out.into_iter()
            .map(|b| b.ok_or_else(|| HolderError::Failed("a shard was not rebuilt".into())))
            .collect()
    }

    /// An outsider's shards go once every shard is on a distinct target node and the one with
    /// this node's shard proved it; the descriptor goes with the last of them.
    async fn maybe_drop(
        &self,
        view: &StripeView,
        outcome: &mut Outcome,
    ) -> Result<(), HolderError> {
        let n = view.shards.len();
        let complete = view.targets == n
            && (0..view.targets).all(|p| view.claims[p].iter().filter(|c| **c).count() == 1)
            && (0..n).all(|j| view.target_holds(j));
        if !complete {
            return Ok(());
        }
        let local = &self.layer.local;
        for j in 0..n {
            if !local.store.contains(&view.shards[j]) {
                continue;
            }
            let Some(p) = view.holders_of(j).find(|&p| p < view.targets) else {
                return Ok(());
            };
            let proved = self
                .layer
                .prove_on(view.pool[p], vec![view.shards[j]])
                .await;
            if proved.first().map(|(s, _)| *s) != Some(Status::Proven) {
                return Ok(());
            }
            if local.store.remove(&view.shards[j]) {
                outcome.dropped += 1;
            }
        }
        if !local.has(&view.shards).iter().any(|h| *h) {
            local.store.remove(&view.id);
        }
        Ok(())
    }

    /// Hand-off of one stripe by a leaving node (see the module docs).
    async fn hand_off_stripe(
        &self,
        view: &StripeView,
        throttle: &mut Throttle,
        outcome: &mut Outcome,
    ) -> Result<(), HolderError> {
        let local = &self.layer.local;
        let mut taken: Vec<bool> = (0..view.usable).map(|p| view.holds_any(p)).collect();
        for j in 0..view.shards.len() {
            let Some(bytes) = local.store.get(&view.shards[j]) else {
                continue;
            };
            if view.target_holds(j) {
                continue;
            }
            // A target node without a shard, else any pool node without one.
            let Some(p) = (0..view.usable).find(|&p| !taken[p]) else {
                return Err(HolderError::Failed("no node free for a shard".into()));
            };
            taken[p] = true;
            if !view.has_descriptor[p] {
                self.push(view, p, view.id, throttle, outcome).await?;
            }
            self.push_bytes(view, p, view.shards[j], bytes, throttle, outcome)
                .await?;
        }
        Ok(())
    }

    /// Pushes the local object `id` to pool node `p`.
    async fn push(
        &self,
        view: &StripeView,
        p: usize,
        id: ChunkId,
        throttle: &mut Throttle,
        outcome: &mut Outcome,
    ) -> Result<(), HolderError> {
        let bytes = self
            .layer
            .local
            .store
            .get(&id)
            .ok_or(HolderError::NotFound)?;
        self.push_bytes(view, p, id, bytes, throttle, outcome).await
    }

    async fn push_bytes(
        &self,
        view: &StripeView,
        p: usize,
        id: ChunkId,
        bytes: bytes::Bytes,
        throttle: &mut Throttle,
        outcome: &mut Outcome,
    ) -> Result<(), HolderError> {
        throttle.admit(bytes.len(), self.pace.rate()).await;
        let peer = view.pool[p];
        match self.layer.put_on(Holder::Remote(peer), id, bytes).await {
            Ok(()) => {
                if id != view.id {
                    outcome.pushed += 1;
                }
                Ok(())
            }
            Err(HolderError::Deleted) => {
                self.check_deleted(view, peer).await;
                Err(HolderError::Deleted)
            }
            Err(HolderError::Full(reason)) => {
                self.layer.health.note_full(peer.id);
                Err(HolderError::Full(reason))
            }
            Err(e) => Err(e),
        }
    }

    /// A stripe with fewer than K shards anywhere the pool can see (a planted stripe, one
    /// lost for good, or what is left of one deleted while this node was cut off): nothing to
    /// rebuild from. Nothing is fetched (a hung holder would hold the sweep up for its attempt
    /// deadline), and it is no failure to retry sooner: a planted stripe must not put this
    /// node's repair into back-off. Each sweep looks again (and for tombstones:
    /// [`find_tombstones`](Self::find_tombstones)), in case the holders come back.
    fn unrebuildable(&self, view: &StripeView) -> Result<(), HolderError> {
        tracing::debug!(
            stripe = %view.id,
            held = view.shards_held(),
            needed = view.stripe.data_shards(),
            "stripe cannot be rebuilt: too few shards are held"
        );
        Ok(())
    }

    /// Deletes here the stripes of `views` with fewer than K shards in sight that a pool node
    /// keeps a tombstone of, with a key that fits the local descriptor: what is left of a
    /// stripe deleted while this node was cut off. One batched proof request per pool node
    /// (as `has_chunks` is one per node), whatever the number of such stripes. Returns the
    /// indices of the stripes deleted.
    async fn find_tombstones(&self, views: &[StripeView]) -> Vec<usize> {
        let local = self.layer.me().id;
        let mut asks: HashMap<PeerInfo, Vec<usize>> = HashMap::new();
        for (v, view) in views.iter().enumerate() {
            if view.shards_held() < view.stripe.data_shards() {
                for peer in view.pool.iter().filter(|p| p.id != local) {
                    asks.entry(*peer).or_default().push(v);
                }
            }
        }
        let mut deleted = Vec::new();
        for (peer, wanted) in asks {
            let wanted: Vec<usize> = wanted
                .into_iter()
                .filter(|v| !deleted.contains(v))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let ids = wanted.iter().map(|&v| views[v].id).collect();
            let proved = self.layer.prove_on(peer, ids).await;
            for (&v, answer) in wanted.iter().zip(proved) {
                if let (Status::Deleted, Some(key)) = answer {
                    self.layer.local.delete(&key, &[views[v].id]);
                    tracing::debug!(stripe = %views[v].id, "dropped a deleted stripe");
                    deleted.push(v);
                }
            }
        }
        deleted
    }

    /// A push was refused as deleted: if the peer proves the stripe's deletion with a key
    /// that fits the local descriptor, delete it here too (shards included).
    async fn check_deleted(&self, view: &StripeView, peer: PeerInfo) {
        let proved = self.layer.prove_on(peer, vec![view.id]).await;
        if let Some((Status::Deleted, Some(key))) = proved.first() {
            self.layer.local.delete(key, &[view.id]);
            tracing::debug!(stripe = %view.id, "dropped a deleted stripe");
        }
    }
}

/// Splits the local store into plain objects and stripe descriptors (with their shards,
/// which generic repair must leave alone: they have one copy each by design).
pub(super) fn classify(layer: &Layer, ids: Vec<ChunkId>) -> (Vec<ChunkId>, Vec<(ChunkId, Stripe)>) {
    let store = &layer.local.store;
    let mut descriptors = Vec::new();
    let mut shards: std::collections::HashSet<ChunkId> = std::collections::HashSet::new();
    for id in &ids {
        if let Some(stripe) = store.get(id).and_then(|b| descriptor(&b)) {
            shards.extend(shard_ids(&stripe));
            descriptors.push((*id, stripe));
        }
    }
    let described: std::collections::HashSet<ChunkId> =
        descriptors.iter().map(|(id, _)| *id).collect();
    let plain = ids
        .into_iter()
        .filter(|id| !described.contains(id) && !shards.contains(id))
        .collect();
    (plain, descriptors)
}
