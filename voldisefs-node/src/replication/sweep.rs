//! What repair's parts share: why a sweep runs ([`Mode`]), what it did ([`Outcome`]), the
//! node's repair counters, and its pace: repair pushes at a byte rate ([`Throttle`]) that
//! drops to a quarter while users transfer files ([`Pace`], [`TransferGuard`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use voldisefs_proto::NodeId;

/// Counters shown in the node's status (read through [`RepairCounters::snapshot`]).
#[derive(Debug, Default)]
pub(crate) struct RepairCounters {
    /// Chunks this node must still copy somewhere.
    pub(super) backlog: AtomicU64,
    /// Copies made by repair or hand-off.
    pub(super) pushed: AtomicU64,
    /// Extra copies dropped after the holders confirmed theirs.
    pub(super) dropped: AtomicU64,
    /// Copies that failed (retried later).
    pub(super) failed: AtomicU64,
    /// Sweeps completed.
    pub(super) sweeps: AtomicU64,
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
    /// Copies made.
    pub(crate) pushed: u64,
    /// Copies dropped (extra, or deleted).
    pub(crate) dropped: u64,
    /// Chunks not yet on enough proven holders, or copies that failed.
    pub(crate) failed: u64,
    /// Chunks not reached before the deadline.
    pub(crate) unfinished: u64,
}

/// A copy of the repair counters at one moment (status, metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RepairSnapshot {
    /// Chunks this node must still copy somewhere.
    pub(crate) backlog: u64,
    /// Copies made by repair or hand-off.
    pub(crate) pushed: u64,
    /// Extra copies dropped after the holders confirmed theirs.
    pub(crate) dropped: u64,
    /// Copies that failed (retried later).
    pub(crate) failed: u64,
    /// Sweeps completed.
    pub(crate) sweeps: u64,
}

impl RepairCounters {
    /// The counters now.
    pub(crate) fn snapshot(&self) -> RepairSnapshot {
        RepairSnapshot {
            backlog: self.backlog.load(Ordering::Relaxed),
            pushed: self.pushed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            sweeps: self.sweeps.load(Ordering::Relaxed),
        }
    }

    /// Adds what a sweep or a settle did to the totals.
    pub(crate) fn add(&self, outcome: &Outcome) {
        self.pushed.fetch_add(outcome.pushed, Ordering::Relaxed);
        self.dropped.fetch_add(outcome.dropped, Ordering::Relaxed);
        self.failed.fetch_add(outcome.failed, Ordering::Relaxed);
    }
}

/// How fast repair may push: its bandwidth, or a quarter of it while users transfer files
/// through this node (user traffic goes first). Cheap to clone; clones share the count.
#[derive(Debug, Clone)]
pub(crate) struct Pace {
    /// Bytes per second repair may send while no user transfer runs.
    bandwidth: u64,
    /// Uploads and downloads in progress through this node.
    active_transfers: Arc<AtomicUsize>,
}

impl Pace {
    /// A pace of `bandwidth` bytes a second, no user transfer running.
    pub(crate) fn new(bandwidth: u64) -> Self {
        Self {
            bandwidth,
            active_transfers: Arc::default(),
        }
    }

    /// Bytes per second repair may push now: a quarter of its bandwidth while users
    /// transfer files through this node.
    pub(crate) fn rate(&self) -> u64 {
        if self.active_transfers.load(Ordering::Relaxed) > 0 {
            self.bandwidth / 4
        } else {
            self.bandwidth
        }
    }

    /// Counts a user transfer in progress until the guard is dropped.
    pub(crate) fn user_transfer(&self) -> TransferGuard {
        self.active_transfers.fetch_add(1, Ordering::Relaxed);
        TransferGuard(self.active_transfers.clone())
    }
}

/// Counts a user transfer in progress for as long as it lives (repair yields to them).
#[derive(Debug)]
pub(crate) struct TransferGuard(Arc<AtomicUsize>);

impl Drop for TransferGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Paces pushes to a byte rate.
pub(crate) struct Throttle {
    next_free: Instant,
}

impl Throttle {
    /// A throttle with nothing sent yet.
    pub(crate) fn new() -> Self {
        Self {
            next_free: Instant::now(),
        }
    }

    /// Waits until `bytes` more may go at `rate` bytes a second (no credit is banked for
    /// idle time).
    pub(crate) async fn admit(&mut self, bytes: usize, rate: u64) {
        let now = Instant::now();
        if self.next_free > now {
            tokio::time::sleep_until(self.next_free).await;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
        self.next_free = self.next_free.max(now) + cost;
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

/// Peers a request to which ran into the attempt timeout during one sweep: a hung process, a
/// frozen link. For the rest of the sweep they are treated as suspect peers are, neither asked,
/// pushed to, nor waited for, so a sweep waits for a hung peer once, not once per batch, wave,
/// chunk and stripe (a sweep behind a frozen peer took as long as the freeze, and copies lost
/// meanwhile elsewhere went unreplaced). Bounded by the membership: one entry per peer.
pub(crate) struct Hung {
    peers: HashSet<NodeId>,
    timeout: Duration,
}

impl Hung {
    /// No peer hung yet; requests time out after `timeout`.
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            peers: HashSet::new(),
            timeout,
        }
    }

    /// Whether `peer` hung earlier in this sweep.
    pub(crate) fn contains(&self, peer: &NodeId) -> bool {
        self.peers.contains(peer)
    }

    /// A request to `peer`, started at `started`, failed (it broke a promise: no answer, a
    /// refused connection, nonsense). The peer counts as hung when the request ran into the
    /// timeout (90 % of it or more: a quicker failure says less, and may be passing). A
    /// newcomer still starting may hang too: it is tried again next sweep, a few seconds on.
    pub(crate) fn failed(&mut self, peer: NodeId, started: Instant) {
        if started.elapsed() >= self.timeout * 9 / 10 {
            self.peers.insert(peer);
        }
    }
}

#[cfg(test)]
mod hung_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_a_peer_that_ran_into_the_timeout_counts_as_hung() {
        let mut hung = Hung::new(Duration::from_secs(3));
        let (slow, quick) = (NodeId::random(), NodeId::random());
        let started = Instant::now();
        tokio::time::advance(Duration::from_millis(500)).await;
        hung.failed(quick, started);
        tokio::time::advance(Duration::from_millis(2300)).await;
        hung.failed(slow, started);
        assert!(hung.contains(&slow));
        assert!(!hung.contains(&quick));
    }
}
