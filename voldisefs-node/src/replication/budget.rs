//! What peers may make this node hash for proofs of possession.
//!
//! A `prove_chunks` answer hashes up to 64 KiB of every chunk it names (at most
//! [`MAX_PROVE_BATCH`](super::holder::MAX_PROVE_BATCH) per request, so 16 MiB), and a peer can
//! send one on each of its links: eight links made a node hash about 1 GB/s and slowed its
//! downloads sixfold. So every request is charged 64 KiB per chunk it names against two token
//! buckets, one of the asking peer and one of the node:
//!
//! - a peer may have [`PEER_RATE`] a second hashed for it, in bursts of [`PEER_BURST`] (one
//!   full batch): a repair sweep proving a gigabyte of chunks asks for about 64 MiB a sweep;
//! - all peers together [`NODE_RATE`] a second, in bursts of [`NODE_BURST`];
//! - a request that would have to wait more than [`MAX_WAIT`] for its share is refused with
//!   `unavailable` (the asker tries again in its next sweep); one that waits less waits.
//!
//! At most [`MAX_PEERS`] peers' buckets are kept: beyond, the fullest (idlest) one is
//! forgotten, which costs nobody anything (a fresh bucket starts full, and the node-wide bucket
//! still holds). So proofs cost this node at most [`NODE_RATE`] of hashing a second plus a
//! burst, whoever asks.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use voldisefs_proto::NodeId;

/// Bytes one peer may have hashed a second.
pub(crate) const PEER_RATE: u64 = 8 << 20;
/// The most one peer may have hashed at once: a full batch.
pub(crate) const PEER_BURST: u64 = 16 << 20;
/// Bytes all peers together may have hashed a second.
pub(crate) const NODE_RATE: u64 = 32 << 20;
/// The most all peers together may have hashed at once.
pub(crate) const NODE_BURST: u64 = 64 << 20;
/// The longest a request waits for its share before it is refused.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(2);
/// Most peers' buckets kept.
pub(crate) const MAX_PEERS: usize = 4096;
/// What one chunk named in a request is charged: the most a proof hashes of it.
pub(crate) const PER_CHUNK: u64 = voldisefs_proto::proof::SAMPLE_ALL_UP_TO as u64;

/// A token bucket of bytes.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u64, now: Instant) -> Self {
        Self {
            tokens: burst as f64,
            at: now,
        }
    }

    /// Refills up to `now`.
    fn refill(&mut self, now: Instant, rate: u64, burst: u64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate as f64).min(burst as f64);
        self.at = now;
    }

    /// How long until `cost` is available at `rate` (zero: now).
    fn wait_for(&self, cost: u64, rate: u64) -> Duration {
        let missing = cost as f64 - self.tokens;
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / rate as f64)
        }
    }
}

#[derive(Debug)]
struct Buckets {
    node: Bucket,
    peers: HashMap<NodeId, Bucket>,
}

/// The buckets (see the module docs).
#[derive(Debug)]
pub(crate) struct ProofBudget {
    inner: Mutex<Buckets>,
    granted: std::sync::atomic::AtomicU64,
}

impl Default for ProofBudget {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Buckets {
                node: Bucket::full(NODE_BURST, Instant::now()),
                peers: HashMap::new(),
            }),
            granted: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// A request the budget cannot serve within [`MAX_WAIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this node's proof budget is spent for now (at most {} MiB/s per peer, {} MiB/s in all); ask again later", PEER_RATE >> 20, NODE_RATE >> 20)]
pub(crate) struct Spent;

impl ProofBudget {
    /// Charges `peer` for proofs of `chunks` chunks: waits for its share (at most
    /// [`MAX_WAIT`]) or refuses.
    pub(crate) async fn charge(&self, peer: NodeId, chunks: usize) -> Result<(), Spent> {
        let cost = (chunks as u64).saturating_mul(PER_CHUNK).min(PEER_BURST);
        let wait = self.reserve(peer, cost, Instant::now())?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Takes `cost` from both buckets at `now` (they may go into debt, which later requests
    /// wait out); returns how long the caller must wait before hashing, or refuses when that
    /// would be longer than [`MAX_WAIT`] (nothing is taken then).
    fn reserve(&self, peer: NodeId, cost: u64, now: Instant) -> Result<Duration, Spent> {
        let mut b = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !b.peers.contains_key(&peer) && b.peers.len() >= MAX_PEERS {
            // Forget the idlest peer (the fullest bucket once refilled).
            let idlest = b
                .peers
                .iter_mut()
                .map(|(id, bucket)| {
                    bucket.refill(now, PEER_RATE, PEER_BURST);
                    (*id, bucket.tokens)
                })
                .max_by(|x, y| x.1.total_cmp(&y.1))
                .map(|(id, _)| id);
            if let Some(id) = idlest {
                b.peers.remove(&id);
            }
        }
        b.node.refill(now, NODE_RATE, NODE_BURST);
        let mut bucket = b
            .peers
            .get(&peer)
            .copied()
            .unwrap_or_else(|| Bucket::full(PEER_BURST, now));
        bucket.refill(now, PEER_RATE, PEER_BURST);
        let wait = bucket
            .wait_for(cost, PEER_RATE)
            .max(b.node.wait_for(cost, NODE_RATE));
        if wait > MAX_WAIT {
            b.peers.insert(peer, bucket);
            return Err(Spent);
        }
        bucket.tokens -= cost as f64;
        b.node.tokens -= cost as f64;
        b.peers.insert(peer, bucket);
        self.granted
            .fetch_add(cost, std::sync::atomic::Ordering::Relaxed);
        Ok(wait)
    }

    /// Bytes of hashing granted to peers so far.
    pub(crate) fn granted(&self) -> u64 {
        self.granted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_peer_gets_its_rate_and_the_node_bounds_them_all() {
        let budget = ProofBudget::default();
        let start = Instant::now();
        let one = NodeId::random();
        // A burst, then the rate: a peer asking nonstop for 10 s gets about burst + 10 s of
        // its rate, and its requests are refused once the wait would pass MAX_WAIT.
        let mut refused = 0;
        let mut t = start;
        while t < start + Duration::from_secs(10) {
            match budget.reserve(one, PEER_BURST, t) {
                Ok(_) => {}
                Err(Spent) => refused += 1,
            }
            t += Duration::from_millis(100);
        }
        let granted = budget.granted();
        let bound = PEER_BURST + 10 * PEER_RATE + PEER_BURST;
        assert!(granted <= bound, "{granted} > {bound}");
        assert!(refused > 0);
        // Many peers at once: the node's bucket bounds them together.
        let budget = ProofBudget::default();
        let mut t = start;
        while t < start + Duration::from_secs(10) {
            for _ in 0..20 {
                let _ = budget.reserve(NodeId::random(), PEER_BURST, t);
            }
            t += Duration::from_millis(100);
        }
        let granted = budget.granted();
        let bound = NODE_BURST + 10 * NODE_RATE + (MAX_WAIT.as_secs() + 1) * NODE_RATE;
        assert!(granted <= bound, "{granted} > {bound}");
        assert!(budget.inner.lock().unwrap().peers.len() <= MAX_PEERS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_wait_is_waited_out() {
        let budget = ProofBudget::default();
        let peer = NodeId::random();
        budget.charge(peer, 256).await.unwrap();
        let before = Instant::now();
        // The bucket is empty: 16 chunks (1 MiB) wait 1/8 s at 8 MiB/s.
        budget.charge(peer, 16).await.unwrap();
        assert!(Instant::now() - before >= Duration::from_millis(120));
    }
}
