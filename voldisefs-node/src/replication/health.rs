//! What this node has seen of each peer as a chunk holder: failures demote a peer in the
//! ranking used for reads, writes and repair; observed latencies set the hedging delay.
//!
//! Bounds: one record per peer, at most [`MAX_RECORDS`] (records of peers no longer known are
//! pruned, and when full the record demoted longest ago is dropped); [`LATENCY_SAMPLES`]
//! latency samples per kind of request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use voldisefs_proto::NodeId;

use super::holder::{Holder, HolderError};

/// Most peers with a health record.
pub(crate) const MAX_RECORDS: usize = 4096;
/// Latency samples kept per kind of request (the most recent ones).
pub(crate) const LATENCY_SAMPLES: usize = 256;
/// Samples needed before the observed p99 is trusted over the configured maximum.
const MIN_SAMPLES: usize = 16;
/// First demotion after a failure; doubles with every further failure in a row.
const DEMOTION_BASE: Duration = Duration::from_secs(10);
/// Longest demotion.
const DEMOTION_MAX: Duration = Duration::from_secs(600);

/// Which promise a holder broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A get timed out, failed or served corrupt bytes.
    Get,
    /// A put timed out or failed (other than a full store).
    Put,
    /// A proof of possession was wrong, missing or late.
    Proof,
    /// A `has_chunks` question went unanswered within the attempt deadline (or got a wrong
    /// answer): a member that never says what it holds is no holder to rank first.
    Query,
}

impl Failure {
    /// Every kind, in counter order.
    pub(crate) const ALL: [Failure; 4] =
        [Failure::Get, Failure::Put, Failure::Proof, Failure::Query];

    /// Stable lowercase name for metrics.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::Get => "get",
            Failure::Put => "put",
            Failure::Proof => "proof",
            Failure::Query => "query",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    /// Failures since the last success.
    strikes: u32,
    /// Failures ever.
    failures: u64,
    demoted_until: Instant,
    /// Until when its store counts as full (see [`Health::note_full`]).
    full_until: Instant,
}

/// How long a peer whose store refused a push as full is given no erasure-coded shard.
pub(crate) const FULL_MEMORY: Duration = Duration::from_secs(30);

/// A peer's health as status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PeerHealth {
    /// Ranked last for now because of recent failures.
    pub(crate) demoted: bool,
    /// Failed gets, puts, proofs and `has_chunks` queries so far.
    pub(crate) failures: u64,
}

/// Health records of the peers and latency samples of requests to them.
#[derive(Debug, Default)]
pub(crate) struct Health {
    records: Mutex<HashMap<NodeId, Record>>,
    get_latency: Latency,
    put_latency: Latency,
    rtt: Latency,
    failures: [std::sync::atomic::AtomicU64; Failure::ALL.len()],
    /// When any peer last kept a promise (see [`Health::note`]).
    last_answer: Mutex<Option<Instant>>,
}

impl Health {
    /// Records how `holder` answered a request of kind `what`: a success clears a peer's
    /// failures, a broken promise ([`HolderError::is_failure`]) demotes it, a plain "cannot
    /// help" changes nothing. This node's own answers are not recorded.
    ///
    /// While no peer at all kept a promise for [`DEMOTION_BASE`], failures count but demote
    /// nobody: a node cut off from the network (partitioned, frozen, its link down) would
    /// otherwise blame every peer for its own isolation, and on its return rank them all last,
    /// for up to [`DEMOTION_MAX`] after repeated rounds. A wrong proof always demotes (it is an
    /// answer, and a lie).
    pub(crate) fn note<T>(&self, holder: Holder, what: Failure, result: &Result<T, HolderError>) {
        if let Holder::Remote(peer) = holder {
            match result {
                Ok(_) => self.success(peer.id),
                Err(e) if e.is_failure() => {
                    tracing::debug!(peer = %peer.id, error = %e, kind = what.as_str(), "holder failed");
                    if self.cut_off() {
                        self.count_only(peer.id, what);
                    } else {
                        self.failure(peer.id, what);
                    }
                }
                Err(_) => {}
            }
        }
    }

    /// Records that `peer` failed; it is demoted for a while (longer after each failure in a
    /// row).
    pub(crate) fn failure(&self, peer: NodeId, what: Failure) {
        let now = Instant::now();
        self.failures[what as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let record = Self::record(&mut records, peer, now);
        record.strikes = record.strikes.saturating_add(1);
        record.failures = record.failures.saturating_add(1);
        let factor = 1u32 << record.strikes.saturating_sub(1).min(6);
        record.demoted_until = now + (DEMOTION_BASE * factor).min(DEMOTION_MAX);
    }

    /// Whether no peer kept a promise for [`DEMOTION_BASE`] (or ever).
    fn cut_off(&self) -> bool {
        let last = *self
            .last_answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.is_none_or(|at| at.elapsed() > DEMOTION_BASE)
    }

    /// Counts a failure of `peer` without demoting it (see [`Health::note`]).
    fn count_only(&self, peer: NodeId, what: Failure) {
        let now = Instant::now();
        self.failures[what as usize].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let record = Self::record(&mut records, peer, now);
        record.failures = record.failures.saturating_add(1);
    }

    /// The record of `peer`, made if it has none (the record demoted longest ago makes room
    /// when the table is full).
    fn record(records: &mut HashMap<NodeId, Record>, peer: NodeId, now: Instant) -> &mut Record {
        if records.len() >= MAX_RECORDS && !records.contains_key(&peer) {
            let oldest = records
                .iter()
                .min_by_key(|(_, r)| r.demoted_until.max(r.full_until))
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                records.remove(&oldest);
            }
        }
        records.entry(peer).or_insert(Record {
            strikes: 0,
            failures: 0,
            demoted_until: now,
            full_until: now,
        })
    }

    /// Records that `peer`'s store refused a push as full: for [`FULL_MEMORY`] it is given no
    /// erasure-coded shard, so a stripe whose ranked nodes include it is completed on the next
    /// ones instead of waiting for room that may never come. A full store breaks no promise:
    /// the peer is not demoted.
    pub(crate) fn note_full(&self, peer: NodeId) {
        let now = Instant::now();
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        Self::record(&mut records, peer, now).full_until = now + FULL_MEMORY;
    }

    /// Whether `peer` refused a push as full within the last [`FULL_MEMORY`].
    pub(crate) fn is_full(&self, peer: &NodeId) -> bool {
        let now = Instant::now();
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.get(peer).is_some_and(|r| r.full_until > now)
    }

    /// Records that `peer` kept a promise (served, stored or proved a chunk): the next failure
    /// starts the demotion over at its shortest. A current demotion runs out on its own.
    pub(crate) fn success(&self, peer: NodeId) {
        *self
            .last_answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(record) = records.get_mut(&peer) {
            record.strikes = 0;
        }
    }

    /// Whether `peer` is demoted now.
    pub(crate) fn is_demoted(&self, peer: &NodeId) -> bool {
        let now = Instant::now();
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.get(peer).is_some_and(|r| r.demoted_until > now)
    }

    /// The health of `peer`.
    pub(crate) fn of(&self, peer: &NodeId) -> PeerHealth {
        let now = Instant::now();
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records
            .get(peer)
            .map_or_else(PeerHealth::default, |r| PeerHealth {
                demoted: r.demoted_until > now,
                failures: r.failures,
            })
    }

    /// Failures so far by kind (`get`, `put`, `proof`).
    pub(crate) fn failure_counts(&self) -> [(Failure, u64); Failure::ALL.len()] {
        Failure::ALL.map(|f| {
            (
                f,
                self.failures[f as usize].load(std::sync::atomic::Ordering::Relaxed),
            )
        })
    }

    /// Forgets peers for which `keep` is false (no longer in the membership table).
    pub(crate) fn retain(&self, keep: impl Fn(&NodeId) -> bool) {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.retain(|id, _| keep(id));
    }

    /// Latencies of successful gets.
    pub(crate) fn get_latency(&self) -> &Latency {
        &self.get_latency
    }

    /// Latencies of successful puts.
    pub(crate) fn put_latency(&self) -> &Latency {
        &self.put_latency
    }

    /// Round trips of small requests (`has_chunks` answers): what a transfer's window starts
    /// from before its own chunks were timed.
    pub(crate) fn rtt(&self) -> &Latency {
        &self.rtt
    }
}

/// The most recent latencies of one kind of request.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    samples: Mutex<VecDeque<Duration>>,
}

impl Latency {
    /// Adds one sample (the oldest is dropped beyond [`LATENCY_SAMPLES`]).
    pub(crate) fn record(&self, took: Duration) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() == LATENCY_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(took);
    }

    /// The 99th percentile of the samples, once there are enough of them.
    pub(crate) fn p99(&self) -> Option<Duration> {
        let mut sorted: Vec<Duration> = {
            let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
            if samples.len() < MIN_SAMPLES {
                return None;
            }
            samples.iter().copied().collect()
        };
        sorted.sort_unstable();
        let index = (sorted.len() * 99).div_ceil(100).saturating_sub(1);
        sorted.get(index).copied()
    }

    /// The median of the samples, once there are at least 3.
    pub(crate) fn median(&self) -> Option<Duration> {
        self.median_of(3)
    }

    /// The median of the samples, once there are at least `min` (and one).
    pub(crate) fn median_of(&self, min: usize) -> Option<Duration> {
        let mut sorted: Vec<Duration> = {
            let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
            if samples.len() < min.max(1) {
                return None;
            }
            samples.iter().copied().collect()
        };
        sorted.sort_unstable();
        sorted.get(sorted.len() / 2).copied()
    }

    /// How long to wait for an answer before asking the next holder as well: about the
    /// observed p99 latency, within `[min, max]` (`max` until enough samples are in).
    pub(crate) fn hedge_delay(&self, min: Duration, max: Duration) -> Duration {
        self.p99().map_or(max, |p| p.clamp(min, max.max(min)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_demote_for_longer_each_time_and_expire() {
        let h = Health::default();
        let p = NodeId::random();
        assert!(!h.is_demoted(&p));
        h.failure(p, Failure::Proof);
        assert!(h.is_demoted(&p));
        tokio::time::advance(DEMOTION_BASE).await;
        assert!(!h.is_demoted(&p), "first demotion lasts the base time");
        h.failure(p, Failure::Get);
        tokio::time::advance(DEMOTION_BASE).await;
        assert!(h.is_demoted(&p), "second failure in a row: twice as long");
        tokio::time::advance(DEMOTION_BASE).await;
        assert!(!h.is_demoted(&p));
        h.success(p);
        h.failure(p, Failure::Put);
        tokio::time::advance(DEMOTION_BASE).await;
        assert!(!h.is_demoted(&p), "a success resets the streak");
        h.failure(p, Failure::Query);
        assert_eq!(h.of(&p).failures, 4);
        let counts = h.failure_counts();
        assert_eq!(counts.map(|(_, n)| n), [1, 1, 1, 1]);
        assert_eq!(
            counts.map(|(k, _)| k.as_str()),
            ["get", "put", "proof", "query"]
        );
    }

    fn peer() -> Holder {
        Holder::Remote(voldisefs_proto::PeerInfo {
            id: NodeId::random(),
            addr: "127.0.0.1:1".parse().unwrap(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_hears_from_nobody_blames_nobody() {
        let h = Health::default();
        let (a, b) = (peer(), peer());
        let timeout: Result<(), HolderError> = Err(HolderError::Failed("no answer".into()));
        // Nobody answered yet (or for DEMOTION_BASE): counted, not demoted.
        h.note(a, Failure::Get, &timeout);
        assert!(!h.is_demoted(&a.id()));
        assert_eq!(h.of(&a.id()).failures, 1);
        // Once some peer answers, one that does not is demoted.
        h.note(b, Failure::Get, &Ok(()));
        h.note(a, Failure::Get, &timeout);
        assert!(h.is_demoted(&a.id()));
        // Cut off for longer than DEMOTION_BASE: everyone fails, nobody new is demoted.
        tokio::time::advance(DEMOTION_BASE * 3).await;
        for _ in 0..5 {
            h.note(b, Failure::Put, &timeout);
        }
        assert!(!h.is_demoted(&b.id()));
        // A wrong proof is an answer, and demotes whatever else happens.
        h.failure(b.id(), Failure::Proof);
        assert!(h.is_demoted(&b.id()));
    }

    #[tokio::test(start_paused = true)]
    async fn demotion_is_capped() {
        let h = Health::default();
        let p = NodeId::random();
        for _ in 0..40 {
            h.failure(p, Failure::Get);
        }
        tokio::time::advance(DEMOTION_MAX).await;
        assert!(!h.is_demoted(&p));
    }

    #[test]
    fn records_are_bounded() {
        let h = Health::default();
        for _ in 0..MAX_RECORDS + 10 {
            h.failure(NodeId::random(), Failure::Get);
        }
        assert_eq!(h.records.lock().unwrap().len(), MAX_RECORDS);
        h.retain(|_| false);
        assert!(h.records.lock().unwrap().is_empty());
    }

    #[test]
    fn hedge_delay_follows_p99_within_bounds() {
        let l = Latency::default();
        let (min, max) = (Duration::from_millis(10), Duration::from_secs(1));
        assert_eq!(l.hedge_delay(min, max), max, "no samples: the maximum");
        for ms in 1..=100u64 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.p99(), Some(Duration::from_millis(99)));
        assert_eq!(l.hedge_delay(min, max), Duration::from_millis(99));
        for _ in 0..LATENCY_SAMPLES {
            l.record(Duration::from_micros(50));
        }
        assert_eq!(l.hedge_delay(min, max), min, "never below the minimum");
        for _ in 0..LATENCY_SAMPLES {
            l.record(Duration::from_secs(30));
        }
        assert_eq!(l.hedge_delay(min, max), max, "never above the maximum");
    }

    #[test]
    fn the_median_needs_three_samples() {
        let l = Latency::default();
        l.record(Duration::from_millis(5));
        l.record(Duration::from_millis(80));
        assert_eq!(l.median(), None);
        l.record(Duration::from_millis(90));
        assert_eq!(l.median(), Some(Duration::from_millis(80)));
    }
}
