//! Repair: keep every chunk (and manifest record) this node holds on `replicas` proven
//! holders, drop copies that are redundant or deleted, and hand everything off when the node
//! leaves.
//!
//! A sweep goes over the local store in batches. For each chunk it follows [`plan`]: it
//! challenges the chunk's ranked holders to prove possession (one batched `prove_chunks` per
//! peer and wave, with a fresh nonce, checked against the local bytes), pushes the chunk to
//! window nodes that miss it when this node is the best proven holder, drops the local copy
//! only when `replicas` better-ranked holders proved theirs, and drops it as deleted when
//! holders keep tombstones for it. A claim never counts: a peer that fails a proof is demoted
//! and skipped. Asking costs one request per ranked holder and batch, never one per live
//! node. Sweeps run after every membership change (once it settles) and periodically as
//! anti-entropy; pushes are rate-limited, slow down further while users transfer files, and
//! failed sweeps are retried with capped exponential backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voldisefs_net::PeerState;
use voldisefs_proto::{ChunkId, DeleteKey, PeerInfo};
use voldisefs_store::ChunkStore;

use super::cluster::Cluster;
use super::holder::{Holder, HolderError, MAX_PROVE_BATCH};
use super::layer::Layer;
use super::placement;
use super::plan::{Plan, Status, plan, plan_settling};
use super::remote::Proved;
use super::stripe_repair::{STRIPE_BATCH, StripeRepair, classify};
use super::sweep::{
    Hung, Mode, Outcome, Pace, RepairCounters, RepairSnapshot, Throttle, TransferGuard,
};

/// Chunks examined per batch.
const BATCH: usize = MAX_PROVE_BATCH;
/// Quiet time after a membership change before a sweep starts (changes come in bursts).
const SETTLE: Duration = Duration::from_millis(200);
/// Longest wait between retries of a failed sweep.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Runs sweeps for one node. Cheap to clone; clones share the counters and the pace.
#[derive(Debug, Clone)]
pub(crate) struct Repairer {
    layer: Arc<Layer>,
    counters: Arc<RepairCounters>,
    /// Bytes per second repair may send, slowed while users transfer files.
    pace: Pace,
}

impl Repairer {
    /// Repair over `cluster`, pushing at most `bandwidth` bytes a second (a quarter of it
    /// while a user transfer runs, see [`Repairer::user_transfer`]).
    pub(crate) fn new(cluster: &Cluster, bandwidth: u64) -> Self {
        Self {
            layer: cluster.layer().clone(),
            counters: Arc::default(),
            pace: Pace::new(bandwidth),
        }
    }

    /// The repair counters now (status, metrics).
    pub(crate) fn counters(&self) -> RepairSnapshot {
        self.counters.snapshot()
    }

    /// Counts a user upload or download in progress until the guard is dropped: repair
    /// pushes at a quarter of its bandwidth meanwhile.
    pub(crate) fn user_transfer(&self) -> TransferGuard {
        self.pace.user_transfer()
    }

    /// Stripe repair, sharing this repairer's layer and pace.
    fn stripes(&self) -> StripeRepair<'_> {
        StripeRepair::new(&self.layer, &self.pace)
    }

    /// Sweeps until `token` is cancelled: after membership changes, every `interval`, and
    /// with backoff after failures.
    pub(crate) async fn run(self, interval: Duration, token: CancellationToken) {
        let mut changes = self.layer.net.membership().subscribe();
        let mut backoff: Option<Duration> = None;
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep(SETTLE) => {}
                    }
                    changes.borrow_and_update();
                }
                () = tokio::time::sleep(backoff.unwrap_or(interval)) => {}
            }
            let outcome = tokio::select! {
                () = token.cancelled() => return,
                outcome = self.sweep(Mode::Maintain, None) => outcome,
            };
            backoff = if outcome.failed > 0 {
                let next = backoff.map_or(Duration::from_secs(1), |b| (b * 2).min(MAX_BACKOFF));
                tracing::warn!(failed = outcome.failed, retry_in = ?next, "repair incomplete");
                Some(next)
            } else {
                None
            };
        }
    }

    /// Settles freshly uploaded chunks at once, rather than at the next sweep: checks the
    /// holders of every one this node holds (as an extra copy of the gateway or as one of its
    /// ranked holders) by proof, pushes to the next holders where proofs fail, and drops the
    /// extra copies once `replicas` holders proved theirs. So a member that acknowledged a put
    /// and kept nothing is replaced within a proof round, not one repair interval later.
    pub(crate) async fn settle(&self, ids: &[ChunkId]) {
        let nodes = self.layer.nodes();
        let mut throttle = Throttle::new();
        let mut outcome = Outcome::default();
        let mut hung = Hung::new(self.layer.settings.attempt_timeout);
        for batch in ids.chunks(BATCH) {
            let held: Vec<ChunkId> = batch
                .iter()
                .filter(|id| self.layer.local.store.contains(id))
                .copied()
                .collect();
            // Stripes settle in the sweeps: their descriptors are not extra copies.
            let (held, _) = classify(&self.layer, held);
            self.repair_batch(
                &held,
                &nodes,
                None,
                true,
                &mut throttle,
                &mut outcome,
                &mut hung,
            )
            .await;
        }
        self.counters.add(&outcome);
    }

    /// One pass over the local store. With a `deadline`, stops when it passes and reports the
    /// chunks it did not reach.
    pub(crate) async fn sweep(&self, mode: Mode, deadline: Option<Instant>) -> Outcome {
        let local = self.layer.me();
        let nodes = match mode {
            Mode::Maintain => self.layer.nodes(),
            Mode::Handoff => self.layer.net.membership().live_peers(),
        };
        let (ids, stripes) = classify(&self.layer, self.layer.local.store.ids());
        // Health records of peers no longer known go (the table stays bounded by membership).
        let membership = self.layer.net.membership();
        self.layer.health.retain(|id| membership.get(id).is_some());
        let mut outcome = Outcome::default();
        if nodes.iter().all(|n| n.id == local.id) {
            self.counters.backlog.store(0, Ordering::Relaxed);
            return outcome;
        }
        let mut throttle = Throttle::new();
        let mut hung = Hung::new(self.layer.settings.attempt_timeout);
        for (done, batch) in ids.chunks(BATCH).enumerate() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                outcome.unfinished = (ids.len() - done * BATCH) as u64;
                break;
            }
            self.repair_batch(
                batch,
                &nodes,
                deadline,
                false,
                &mut throttle,
                &mut outcome,
                &mut hung,
            )
            .await;
        }
        let mut stripes = stripes.into_iter().peekable();
        while stripes.peek().is_some() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                outcome.unfinished += stripes.count() as u64;
                break;
            }
            let batch: Vec<_> = stripes.by_ref().take(STRIPE_BATCH).collect();
            self.stripes()
                .repair_stripes(batch, &nodes, mode, &mut throttle, &mut outcome, &mut hung)
                .await;
        }
        self.counters
            .backlog
            .store(outcome.failed, Ordering::Relaxed);
        self.counters.sweeps.fetch_add(1, Ordering::Relaxed);
        self.counters.add(&outcome);
        if outcome.pushed + outcome.dropped + outcome.failed > 0 {
            tracing::info!(
                ?mode,
                pushed = outcome.pushed,
                dropped = outcome.dropped,
                failed = outcome.failed,
                "repair sweep done"
            );
        }
        outcome
    }

    /// Plans, asks and pushes for one batch of local chunks until every chunk is settled;
    /// `settling` a fresh upload, with [`plan_settling`] (this node fills the window itself).
    /// Peers that hung earlier in the sweep (`hung`) count as failed from the start.
    #[allow(clippy::too_many_arguments)]
    async fn repair_batch(
        &self,
        batch: &[ChunkId],
        nodes: &[PeerInfo],
        deadline: Option<Instant>,
        settling: bool,
        throttle: &mut Throttle,
        outcome: &mut Outcome,
        hung: &mut Hung,
    ) {
        let layer = &*self.layer;
        let local = layer.me().id;
        let membership = layer.net.membership();
        let mut work: Vec<ChunkWork> = batch
            .iter()
            .map(|id| {
                let ranked = placement::rank(id, nodes);
                let statuses = ranked
                    .iter()
                    .map(|p| {
                        if p.id == local {
                            Status::Local
                        } else if membership.get(&p.id).map(|e| e.state) == Some(PeerState::Suspect)
                            || hung.contains(&p.id)
                        {
                            // Not answering lately, or hung earlier in this sweep: neither
                            // trusted nor waited for. (A demoted peer is still asked, all peers
                            // at once: its tombstones count before anything is pushed. It gets
                            // no pushes.)
                            Status::Failed
                        } else {
                            Status::Unknown
                        }
                    })
                    .collect();
                ChunkWork {
                    id: *id,
                    ranked,
                    statuses,
                    deleted_key: None,
                    settled: false,
                }
            })
            .collect();
        // Each wave asks or pushes at least one node per unsettled chunk, so the ranking's
        // length bounds the waves; the cap is a second guard.
        for _ in 0..nodes.len() + 2 {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let mut asks: HashMap<PeerInfo, Asked> = HashMap::new();
            let mut pushes: Vec<(usize, usize)> = Vec::new();
            for (w, chunk) in work.iter_mut().enumerate().filter(|(_, c)| !c.settled) {
                // A peer that hung in an earlier wave is not asked again in this sweep.
                for (status, peer) in chunk.statuses.iter_mut().zip(&chunk.ranked) {
                    if *status == Status::Unknown && hung.contains(&peer.id) {
                        *status = Status::Failed;
                    }
                }
                let planned = if settling {
                    plan_settling(&chunk.statuses, layer.replicas())
                } else {
                    plan(&chunk.statuses, layer.replicas())
                };
                match planned {
                    Plan::Ask(nodes) => {
                        for n in nodes {
                            asks.entry(chunk.ranked[n]).or_default().push((w, n));
                        }
                    }
                    Plan::Keep { push } if push.is_empty() => chunk.settled = true,
                    Plan::Keep { push } => pushes.extend(push.into_iter().map(|n| (w, n))),
                    Plan::Drop => {
                        chunk.settled = true;
                        if layer.local.store.remove(&chunk.id) {
                            outcome.dropped += 1;
                            tracing::debug!(chunk = %chunk.id, holders = ?chunk.proven(), "dropped an extra copy: better-ranked holders proved theirs");
                        }
                    }
                    Plan::DropDeleted => {
                        chunk.settled = true;
                        // With the key a holder proved the deletion with, this node keeps a
                        // tombstone too; without (a put was refused as deleted), just the drop.
                        match &chunk.deleted_key {
                            Some(key) => {
                                layer.local.delete(key, &[chunk.id]);
                            }
                            None => {
                                layer.local.store.remove(&chunk.id);
                            }
                        }
                        outcome.dropped += 1;
                        tracing::debug!(chunk = %chunk.id, "dropped a copy of a deleted chunk");
                    }
                }
            }
            if asks.is_empty() && pushes.is_empty() {
                break;
            }
            self.ask_proofs(asks, &mut work, hung).await;
            for (w, n) in pushes {
                let chunk = &mut work[w];
                let Some(bytes) = layer.local.store.get(&chunk.id) else {
                    chunk.settled = true; // Deleted meanwhile.
                    continue;
                };
                if hung.contains(&chunk.ranked[n].id) {
                    // A request to it hung earlier in this sweep: one wait for a hung peer
                    // per sweep, not one per chunk.
                    chunk.statuses[n] = Status::Failed;
                    continue;
                }
                throttle.admit(bytes.len(), self.pace.rate()).await;
                let target = Holder::Remote(chunk.ranked[n]);
                let started = Instant::now();
                let pushed = layer.put_on(target, chunk.id, bytes).await;
                if pushed.as_ref().is_err_and(HolderError::is_failure) {
                    let peer = chunk.ranked[n].id;
                    hung.failed(peer, started);
                }
                chunk.statuses[n] = match pushed {
                    Ok(()) => {
                        outcome.pushed += 1;
                        tracing::trace!(peer = %target.id(), chunk = %chunk.id, "pushed a copy");
                        Status::Pushed
                    }
                    Err(HolderError::Deleted) => Status::Deleted,
                    Err(e) => {
                        tracing::debug!(peer = %target.id(), chunk = %chunk.id, error = %e, "push failed");
                        Status::Failed
                    }
                };
            }
        }
        for chunk in &work {
            if chunk.settled {
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                outcome.unfinished += 1;
            } else {
                outcome.failed += 1;
                tracing::debug!(chunk = %chunk.id, "chunk not on enough proven holders yet");
            }
        }
    }

    /// Challenges each peer to prove the chunks asked of it (one request per peer, all peers
    /// at once, each with a fresh nonce) and records the verified answers; a peer that ran
    /// into the timeout without an answer is noted in `hung`.
    async fn ask_proofs(
        &self,
        asks: HashMap<PeerInfo, Asked>,
        work: &mut [ChunkWork],
        hung: &mut Hung,
    ) {
        let layer = &*self.layer;
        let answers: Vec<(PeerInfo, Asked, Vec<Proved>, Instant)> =
            futures_util::future::join_all(asks.into_iter().map(|(peer, asked)| {
                let ids: Vec<ChunkId> = asked.iter().map(|(w, _)| work[*w].id).collect();
                async move {
                    let started = Instant::now();
                    let statuses = layer.prove_on(peer, ids).await;
                    (peer, asked, statuses, started)
                }
            }))
            .await;
        for (peer, asked, statuses, started) in answers {
            if statuses.iter().all(|(s, _)| *s == Status::Failed) {
                hung.failed(peer.id, started);
            }
            let demoted = layer.health.is_demoted(&peer.id);
            for ((w, n), (status, key)) in asked.into_iter().zip(statuses) {
                // A peer that failed lately is not trusted with new copies.
                let status = match status {
                    Status::Missing if demoted => Status::Failed,
                    other => other,
                };
                work[w].statuses[n] = status;
                if key.is_some() {
                    work[w].deleted_key = key;
                }
            }
        }
    }
}

/// What one peer is asked about: (chunk in the batch, the peer's place in its ranking).
type Asked = Vec<(usize, usize)>;

/// Repair state of one chunk within a batch.
struct ChunkWork {
    id: ChunkId,
    ranked: Vec<PeerInfo>,
    statuses: Vec<Status>,
    /// The delete key a holder answered "deleted" with, once checked against the local copy.
    deleted_key: Option<DeleteKey>,
    settled: bool,
}

impl ChunkWork {
    /// The nodes that proved their copy (for the logs).
    fn proven(&self) -> Vec<voldisefs_proto::NodeId> {
        self.ranked
            .iter()
            .zip(&self.statuses)
            .filter(|(_, s)| **s == Status::Proven)
            .map(|(p, _)| p.id)
            .collect()
    }
}
