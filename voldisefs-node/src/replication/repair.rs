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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voldisefs_net::PeerState;
use voldisefs_proto::{ChunkId, ChunkProof, DeleteKey, PeerInfo, proof};
use voldisefs_store::ChunkStore;

use super::holder::{Holder, HolderError, MAX_PROVE_BATCH, authorizes};
use super::plan::{Plan, Status, plan};
use super::stripe_repair::{STRIPE_BATCH, classify};
use super::{Cluster, Failure, placement};

/// Chunks examined per batch.
const BATCH: usize = MAX_PROVE_BATCH;
/// Quiet time after a membership change before a sweep starts (changes come in bursts).
const SETTLE: Duration = Duration::from_millis(200);
/// Longest wait between retries of a failed sweep.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Counters shown in the node's status.
#[derive(Debug, Default)]
pub(crate) struct RepairCounters {
    /// Chunks this node must still copy somewhere.
    pub(crate) backlog: AtomicU64,
    /// Copies made by repair or hand-off.
    pub(crate) pushed: AtomicU64,
    /// Extra copies dropped after the holders confirmed theirs.
    pub(crate) dropped: AtomicU64,
    /// Copies that failed (retried later).
    pub(crate) failed: AtomicU64,
    /// Sweeps completed.
    pub(crate) sweeps: AtomicU64,
}

/// Why a sweep runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Normal upkeep: this node is one of the candidates and may drop extra copies.
    Maintain,
    /// This node is leaving: give every chunk to its holders among the others.
    Handoff,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) pushed: u64,
    pub(crate) dropped: u64,
    pub(crate) failed: u64,
    /// Chunks not reached before the deadline.
    pub(crate) unfinished: u64,
}

/// Runs sweeps for one node.
#[derive(Debug, Clone)]
pub(crate) struct Repairer {
    pub(crate) cluster: Cluster,
    pub(crate) counters: Arc<RepairCounters>,
    /// Uploads and downloads in progress through this node (user traffic goes first).
    pub(crate) active_transfers: Arc<AtomicUsize>,
    /// Bytes per second repair may send while no user transfer runs (a quarter of it while
    /// one does).
    pub(crate) bandwidth: u64,
}

/// Paces pushes to a byte rate.
pub(crate) struct Throttle {
    next_free: Instant,
}

impl Throttle {
    pub(crate) async fn admit(&mut self, bytes: usize, rate: u64) {
        let now = Instant::now();
        if self.next_free > now {
            tokio::time::sleep_until(self.next_free).await;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
        self.next_free = self.next_free.max(now) + cost;
    }
}

impl Repairer {
    /// Bytes per second repair may push now: a quarter of its bandwidth while users
    /// transfer files through this node.
    pub(crate) fn rate(&self) -> u64 {
        if self.active_transfers.load(Ordering::Relaxed) > 0 {
            self.bandwidth / 4
        } else {
            self.bandwidth
        }
    }

    /// Sweeps until `token` is cancelled: after membership changes, every `interval`, and
    /// with backoff after failures.
    pub(crate) async fn run(self, interval: Duration, token: CancellationToken) {
        let mut changes = self.cluster.net().membership().subscribe();
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

    /// Settles the gateway's extra copies of freshly uploaded chunks at once, rather than at
    /// the next sweep: checks their holders by proof, pushes to better holders where proofs
    /// fail, and drops the extra copies once `replicas` holders proved theirs.
    pub(crate) async fn settle(&self, ids: &[ChunkId]) {
        let nodes = self.cluster.nodes();
        let mut throttle = Throttle {
            next_free: Instant::now(),
        };
        let mut outcome = Outcome::default();
        for batch in ids.chunks(BATCH) {
            // Only the gateway's extra copies need settling now; chunks this node holds as one
            // of their ranked holders wait for the next sweep like any other.
            let local = self.cluster.local().id;
            let held: Vec<ChunkId> = batch
                .iter()
                .filter(|id| self.cluster.inner.local.store.contains(id))
                .filter(|id| {
                    !placement::holders(id, &nodes, self.cluster.replicas())
                        .iter()
                        .any(|p| p.id == local)
                })
                .copied()
                .collect();
            // Stripes settle in the sweeps: their descriptors are not extra copies.
            let (held, _) = classify(&self.cluster, held);
            self.repair_batch(&held, &nodes, None, &mut throttle, &mut outcome)
                .await;
        }
        let c = &self.counters;
        c.pushed.fetch_add(outcome.pushed, Ordering::Relaxed);
        c.dropped.fetch_add(outcome.dropped, Ordering::Relaxed);
        c.failed.fetch_add(outcome.failed, Ordering::Relaxed);
    }

    /// One pass over the local store. With a `deadline`, stops when it passes and reports the
    /// chunks it did not reach.
    pub(crate) async fn sweep(&self, mode: Mode, deadline: Option<Instant>) -> Outcome {
        let local = self.cluster.local();
        let nodes = match mode {
            Mode::Maintain => self.cluster.nodes(),
            Mode::Handoff => self.cluster.net().membership().live_peers(),
        };
        let (ids, stripes) = classify(&self.cluster, self.cluster.inner.local.store.ids());
        // Health records of peers no longer known go (the table stays bounded by membership).
        let membership = self.cluster.net().membership();
        self.cluster
            .inner
            .health
            .retain(|id| membership.get(id).is_some());
        let mut outcome = Outcome::default();
        if nodes.iter().all(|n| n.id == local.id) {
            self.counters.backlog.store(0, Ordering::Relaxed);
            return outcome;
        }
        let mut throttle = Throttle {
            next_free: Instant::now(),
        };
        for (done, batch) in ids.chunks(BATCH).enumerate() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                outcome.unfinished = (ids.len() - done * BATCH) as u64;
                break;
            }
            self.repair_batch(batch, &nodes, deadline, &mut throttle, &mut outcome)
                .await;
        }
        let mut stripes = stripes.into_iter().peekable();
        while stripes.peek().is_some() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                outcome.unfinished += stripes.count() as u64;
                break;
            }
            let batch: Vec<_> = stripes.by_ref().take(STRIPE_BATCH).collect();
            self.repair_stripes(batch, &nodes, mode, &mut throttle, &mut outcome)
                .await;
        }
        self.counters
            .backlog
            .store(outcome.failed, Ordering::Relaxed);
        self.counters.sweeps.fetch_add(1, Ordering::Relaxed);
        let c = &self.counters;
        c.pushed.fetch_add(outcome.pushed, Ordering::Relaxed);
        c.dropped.fetch_add(outcome.dropped, Ordering::Relaxed);
        c.failed.fetch_add(outcome.failed, Ordering::Relaxed);
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

    /// Plans, asks and pushes for one batch of local chunks until every chunk is settled.
    async fn repair_batch(
        &self,
        batch: &[ChunkId],
        nodes: &[PeerInfo],
        deadline: Option<Instant>,
        throttle: &mut Throttle,
        outcome: &mut Outcome,
    ) {
        let cluster = &self.cluster;
        let local = cluster.local().id;
        let membership = cluster.net().membership();
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
                        {
                            // Not answering lately: neither trusted nor waited for.
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
                match plan(&chunk.statuses, cluster.replicas()) {
                    Plan::Ask(nodes) => {
                        for n in nodes {
                            asks.entry(chunk.ranked[n]).or_default().push((w, n));
                        }
                    }
                    Plan::Keep { push } if push.is_empty() => chunk.settled = true,
                    Plan::Keep { push } => pushes.extend(push.into_iter().map(|n| (w, n))),
                    Plan::Drop => {
                        chunk.settled = true;
                        if cluster.inner.local.store.remove(&chunk.id) {
                            outcome.dropped += 1;
                        }
                    }
                    Plan::DropDeleted => {
                        chunk.settled = true;
                        // With the key a holder proved the deletion with, this node keeps a
                        // tombstone too; without (a put was refused as deleted), just the drop.
                        match chunk.deleted_key {
                            Some(key) => {
                                cluster.inner.local.delete(key, &[chunk.id]);
                            }
                            None => {
                                cluster.inner.local.store.remove(&chunk.id);
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
            self.ask_proofs(asks, &mut work).await;
            for (w, n) in pushes {
                let chunk = &mut work[w];
                let Some(bytes) = cluster.inner.local.store.get(&chunk.id) else {
                    chunk.settled = true; // Deleted meanwhile.
                    continue;
                };
                throttle.admit(bytes.len(), self.rate()).await;
                let target = Holder::Remote(chunk.ranked[n]);
                chunk.statuses[n] = match cluster.put_on(target, chunk.id, bytes).await {
                    Ok(()) => {
                        outcome.pushed += 1;
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
    /// at once, each with a fresh nonce) and records the verified answers.
    async fn ask_proofs(&self, asks: HashMap<PeerInfo, Asked>, work: &mut [ChunkWork]) {
        let cluster = &self.cluster;
        let answers: Vec<(PeerInfo, Asked, Vec<Proved>)> =
            futures_util::future::join_all(asks.into_iter().map(|(peer, asked)| {
                let ids: Vec<ChunkId> = asked.iter().map(|(w, _)| work[*w].id).collect();
                async move {
                    let statuses = cluster.prove_on(peer, ids).await;
                    (peer, asked, statuses)
                }
            }))
            .await;
        for (peer, asked, statuses) in answers {
            let demoted = cluster.inner.health.is_demoted(&peer.id);
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

/// One answer of a proof round: the status and, for "deleted", the delete key that proved it.
pub(crate) type Proved = (Status, Option<DeleteKey>);

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

impl Cluster {
    /// Asks `peer` to prove it holds `ids` (against the local copies) and returns one status
    /// per id: proven, missing, deleted, or failed (no answer, or a wrong proof, which
    /// demotes the peer). "Deleted" counts only with a delete key that fits the local copy
    /// (returned beside it); an answer "deleted" with a key that does not fit means the peer
    /// was told to delete by someone who cannot read the file, and counts as missing.
    pub(crate) async fn prove_on(&self, peer: PeerInfo, ids: Vec<ChunkId>) -> Vec<Proved> {
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(MAX_PROVE_BATCH) {
            out.extend(self.prove_batch(peer, batch).await);
        }
        out
    }

    async fn prove_batch(&self, peer: PeerInfo, ids: &[ChunkId]) -> Vec<Proved> {
        let failed = vec![(Status::Failed, None); ids.len()];
        let Ok(nonce) = proof::fresh_nonce() else {
            tracing::error!("no randomness for a proof challenge");
            return failed;
        };
        let answer = self.remote(peer).prove(nonce, ids).await;
        let proofs = match answer {
            Ok(proofs) => proofs,
            Err(e) => {
                self.note::<()>(Holder::Remote(peer), Failure::Proof, &Err(e));
                return failed;
            }
        };
        let local: Vec<_> = ids
            .iter()
            .map(|id| self.inner.local.store.get(id))
            .collect();
        let ids = ids.to_vec();
        let checked = tokio::task::spawn_blocking(move || {
            ids.iter()
                .zip(proofs)
                .zip(local)
                .map(|((id, answer), bytes)| match (answer, bytes) {
                    (ChunkProof::Held { proof: p }, Some(bytes)) => {
                        if proof::prove(&nonce, peer.id, id, &bytes) == p {
                            (Status::Proven, None)
                        } else {
                            (Status::Failed, None)
                        }
                    }
                    // Gone locally meanwhile: nothing to check against.
                    (ChunkProof::Held { .. }, None) => (Status::Unknown, None),
                    (ChunkProof::Missing, _) => (Status::Missing, None),
                    (ChunkProof::Deleted { key }, Some(bytes)) => {
                        if authorizes(&key, &bytes) {
                            (Status::Deleted, Some(key))
                        } else {
                            tracing::debug!(peer = %peer.id, chunk = %id, "a peer's tombstone has a key that does not fit the chunk");
                            (Status::Missing, None)
                        }
                    }
                    (ChunkProof::Deleted { key }, None) => (Status::Deleted, Some(key)),
                })
                .collect::<Vec<_>>()
        })
        .await;
        match checked {
            Ok(statuses) => {
                if statuses.iter().any(|(s, _)| *s == Status::Failed) {
                    tracing::warn!(peer = %peer.id, "peer failed a proof of possession");
                    self.inner.health.failure(peer.id, Failure::Proof);
                } else {
                    self.inner.health.success(peer.id);
                }
                statuses
            }
            Err(e) => {
                tracing::error!(error = %e, "proof check failed");
                failed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throttle_paces_bytes_to_the_rate() {
        let start = Instant::now();
        let mut throttle = Throttle { next_free: start };
        // 10 pushes of 1 MiB at 4 MiB/s: the first goes at once, the rest every 250 ms.
        for _ in 0..10 {
            throttle.admit(1 << 20, 4 << 20).await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(2250) && elapsed < Duration::from_millis(2300),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_does_not_bank_idle_time() {
        let start = Instant::now();
        let mut throttle = Throttle { next_free: start };
        tokio::time::sleep(Duration::from_secs(10)).await;
        // After a long idle spell the rate still holds: no burst of banked credit.
        for _ in 0..3 {
            throttle.admit(1 << 20, 1 << 20).await;
        }
        assert!(
            start.elapsed() >= Duration::from_secs(12),
            "{:?}",
            start.elapsed()
        );
    }
}
