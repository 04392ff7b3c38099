//! Repair: keep every chunk (and manifest record) this node holds on all of its current
//! holders, and hand everything off when the node leaves.
//!
//! A sweep goes over the local store in batches: it asks every live node which of the batch's
//! chunks it holds, then, for each chunk, walks the rendezvous order of the live nodes and makes
//! sure the first `replicas` of them that can take it (full nodes are skipped) have a copy.
//! Only the best-ranked node holding a chunk pushes it, so survivors do not all send the same
//! bytes. A copy on a node that is no longer a holder is dropped only after every holder has
//! confirmed its own. Sweeps run after every membership change (once it settles) and
//! periodically as anti-entropy; pushes are rate-limited, slow down further while users
//! transfer files, and failed sweeps are retried with capped exponential backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use voldisefs_proto::{ChunkId, PeerInfo};
use voldisefs_store::ChunkStore;

use crate::NodeError;
use crate::cluster::Cluster;
use crate::placement;

/// Chunks examined per `has_chunks` round.
const BATCH: usize = 512;
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
struct Throttle {
    next_free: Instant,
}

impl Throttle {
    async fn admit(&mut self, bytes: usize, rate: u64) {
        let now = Instant::now();
        if self.next_free > now {
            tokio::time::sleep_until(self.next_free).await;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
        self.next_free = self.next_free.max(now) + cost;
    }
}

impl Repairer {
    /// Sweeps until `token` is cancelled: after membership changes, every `interval`, and
    /// with backoff after failures.
    pub(crate) async fn run(self, interval: Duration, token: CancellationToken) {
        let mut changes = self.cluster.net.membership().subscribe();
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

    /// One pass over the local store. With a `deadline`, stops when it passes and reports the
    /// chunks it did not reach.
    pub(crate) async fn sweep(&self, mode: Mode, deadline: Option<Instant>) -> Outcome {
        let local = self.cluster.local();
        let nodes = match mode {
            Mode::Maintain => self.cluster.nodes(),
            Mode::Handoff => self.cluster.net.membership().live_peers(),
        };
        let ids = self.cluster.store.ids();
        let mut outcome = Outcome::default();
        if nodes.iter().all(|n| n.id == local.id) {
            self.counters.backlog.store(0, Ordering::Relaxed);
            return outcome;
        }
        let mut throttle = Throttle {
            next_free: Instant::now(),
        };
        let mut backlog = 0u64;
        for (done, batch) in ids.chunks(BATCH).enumerate() {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                outcome.unfinished = (ids.len() - done * BATCH) as u64;
                break;
            }
            let found = self.cluster.locate(batch).await;
            for (id, holding) in batch.iter().zip(found) {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    outcome.unfinished += 1;
                    continue;
                }
                let result = self
                    .repair_chunk(mode, *id, &nodes, &holding, &mut throttle, &mut outcome)
                    .await;
                if let Err(e) = result {
                    outcome.failed += 1;
                    backlog += 1;
                    tracing::debug!(chunk = %id, error = %e, "repair of chunk failed");
                }
            }
        }
        self.counters.backlog.store(backlog, Ordering::Relaxed);
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

    /// Makes sure `id` is on its holders among `nodes`; `holding` lists who has it now.
    async fn repair_chunk(
        &self,
        mode: Mode,
        id: ChunkId,
        nodes: &[PeerInfo],
        holding: &[PeerInfo],
        throttle: &mut Throttle,
        outcome: &mut Outcome,
    ) -> Result<(), NodeError> {
        let local = self.cluster.local();
        let ranked = placement::rank(&id, nodes);
        let has = |n: &PeerInfo| holding.iter().any(|h| h.id == n.id);
        let want = self.cluster.replicas.min(ranked.len());
        if mode == Mode::Maintain {
            // Only the best-ranked node holding the chunk pushes it. Another holder just
            // drops its copy once it is no holder itself and every holder has one.
            let pusher = ranked.iter().find(|n| has(n));
            if pusher.is_some_and(|p| p.id != local.id) {
                let holders = &ranked[..want];
                if holders.iter().all(|n| n.id != local.id && has(n)) {
                    self.cluster.store.remove(&id);
                    outcome.dropped += 1;
                }
                return Ok(());
            }
        }
        let mut confirmed: Vec<PeerInfo> = Vec::with_capacity(want);
        let mut last_error = None;
        for node in ranked {
            if confirmed.len() == want {
                break;
            }
            if has(&node) {
                confirmed.push(node);
                continue;
            }
            let Some(bytes) = self.cluster.store.get(&id) else {
                return Ok(()); // Deleted meanwhile.
            };
            let busy = self.active_transfers.load(Ordering::Relaxed) > 0;
            let rate = if busy {
                self.bandwidth / 4
            } else {
                self.bandwidth
            };
            throttle.admit(bytes.len(), rate).await;
            match self.cluster.put_on(node, id, bytes).await {
                Ok(()) => {
                    outcome.pushed += 1;
                    confirmed.push(node);
                }
                // A full or unreachable node is skipped for the next one in order.
                Err(e) => last_error = Some(e),
            }
        }
        if confirmed.len() < want {
            return Err(last_error.unwrap_or_else(|| {
                NodeError::Internal(format!("only {} of {want} holders", confirmed.len()))
            }));
        }
        if mode == Mode::Maintain && !confirmed.iter().any(|n| n.id == local.id) {
            self.cluster.store.remove(&id);
            outcome.dropped += 1;
        }
        Ok(())
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
