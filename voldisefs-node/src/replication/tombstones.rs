//! Tombstones: ids of deleted chunks and records, with the delete key the deletion presented,
//! remembered for a while so that a late or repeated put of them is refused and repair never
//! pushes them home again.
//!
//! A tombstone refuses only bytes its key authorizes (their last 32 bytes are the key's
//! check), so a tombstone planted with a made-up key refuses nothing. One made by a node that
//! held the chunk and checked the key against it is *verified*: nothing replaces it. One made
//! for a chunk this node does not hold keeps the first key presented (a later, different key
//! is ignored until it expires).
//!
//! Bounds: at most `cap` ids, of which at most a quarter unverified, each for at most `ttl`.
//! Anyone may plant unverified tombstones by the thousand (a delete with a made-up key costs
//! the sender nothing), so they live in a pool of their own: when it is full, the oldest
//! unverified tombstone is forgotten, never a verified one. A verified tombstone costs its
//! planter an object stored on this node first (charged against the capacity like any other),
//! and only another verified one, or its `ttl`, pushes it out. So a flood of deletes cannot
//! evict the tombstones of a real delete, which would let its objects be stored again.
//!
//! Memory: [`Tombstones::bytes`] counts what the table holds, from its containers' capacities
//! (hash table buckets, queues); with the default 262,144 ids that is at most about
//! 64 MiB (checked by a test that fills both pools and floods them).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use voldisefs_proto::{ChunkId, DeleteKey};

/// The most [`Tombstones::bytes`] reports for the default cap of 262,144 ids (see the module
/// docs): 64 MiB.
#[cfg(test)]
pub(crate) const DEFAULT_BYTES_BOUND: usize = 64 << 20;

/// The ids this node must not store again, with their expiry.
#[derive(Debug)]
pub(crate) struct Tombstones {
    inner: Mutex<Table>,
    ttl: Duration,
    cap: usize,
}

/// One tombstone.
#[derive(Debug, Clone)]
struct Entry {
    /// When it was (last) recorded.
    at: Instant,
    /// The key the deletion presented.
    key: DeleteKey,
    /// Whether this node checked the key against its copy of the chunk.
    verified: bool,
}

#[derive(Debug, Default)]
struct Table {
    /// Id -> its tombstone.
    since: HashMap<ChunkId, Entry>,
    /// Verified ids in deletion order; a record whose time (or verified flag) differs from
    /// `since` is stale (re-deleted, or removed).
    order: VecDeque<(Instant, ChunkId)>,
    /// Unverified ids in deletion order, likewise.
    loose: VecDeque<(Instant, ChunkId)>,
    /// Unverified entries in `since`.
    loose_count: usize,
}

/// Pops `queue`'s front record; forgets its tombstone when the record is current (not stale)
/// and `forget(entry)` says so. Returns whether a record was popped.
fn pop_front(
    since: &mut HashMap<ChunkId, Entry>,
    queue: &mut VecDeque<(Instant, ChunkId)>,
    verified: bool,
    forget: impl Fn(&Entry) -> bool,
) -> Option<bool> {
    let &(at, id) = queue.front()?;
    let current = since
        .get(&id)
        .filter(|e| e.at == at && e.verified == verified);
    match current {
        None => {
            queue.pop_front();
            Some(false)
        }
        Some(entry) if forget(entry) => {
            queue.pop_front();
            since.remove(&id);
            Some(true)
        }
        Some(_) => None,
    }
}

impl Table {
    /// Drops expired entries, the oldest unverified ones while they are over a quarter of
    /// `cap`, and while over `cap` the oldest unverified ones, then (only if none is left) the
    /// oldest verified ones. Queues holding many stale records are rebuilt.
    fn trim(&mut self, now: Instant, ttl: Duration, cap: usize) {
        let expired = |e: &Entry| now.saturating_duration_since(e.at) >= ttl;
        for verified in [false, true] {
            loop {
                let queue = if verified {
                    &mut self.order
                } else {
                    &mut self.loose
                };
                match pop_front(&mut self.since, queue, verified, expired) {
                    Some(true) if !verified => self.loose_count -= 1,
                    Some(_) => {}
                    None => break,
                }
            }
        }
        while self.loose_count > loose_cap(cap) {
            match pop_front(&mut self.since, &mut self.loose, false, |_| true) {
                Some(true) => self.loose_count -= 1,
                Some(false) => {}
                None => break,
            }
        }
        while self.since.len() > cap {
            let popped = match pop_front(&mut self.since, &mut self.loose, false, |_| true) {
                Some(true) => {
                    self.loose_count -= 1;
                    Some(true)
                }
                Some(false) => Some(false),
                None => pop_front(&mut self.since, &mut self.order, true, |_| true),
            };
            if popped.is_none() {
                break;
            }
        }
        let verified_count = self.since.len() - self.loose_count;
        if self.order.len() > 2 * verified_count + 1024 {
            Self::rebuild(&self.since, &mut self.order, true);
        }
        if self.loose.len() > 2 * self.loose_count + 1024 {
            Self::rebuild(&self.since, &mut self.loose, false);
        }
    }

    /// Rebuilds `queue` from the current entries of its kind (drops stale records: renewals
    /// and removals leave them behind), oldest first, and frees the room it no longer needs.
    fn rebuild(
        since: &HashMap<ChunkId, Entry>,
        queue: &mut VecDeque<(Instant, ChunkId)>,
        verified: bool,
    ) {
        let mut records: Vec<(Instant, ChunkId)> = since
            .iter()
            .filter(|(_, e)| e.verified == verified)
            .map(|(id, e)| (e.at, *id))
            .collect();
        records.sort_unstable_by_key(|(at, _)| *at);
        *queue = records.into();
        queue.shrink_to_fit();
    }
}

/// The most unverified tombstones kept: a quarter of `cap` (at least one).
fn loose_cap(cap: usize) -> usize {
    (cap / 4).max(1)
}

/// A guard over the table: checks and changes under it are atomic with respect to other
/// tombstone operations (used so a put and a delete of the same id cannot interleave).
pub(crate) struct Locked<'a> {
    table: MutexGuard<'a, Table>,
    now: Instant,
    ttl: Duration,
    cap: usize,
}

impl Locked<'_> {
    /// Records `ids` as deleted now with `key`; `verified` when this node checked the key
    /// against its copy. The same key again renews a tombstone; another key replaces a live
    /// one only when it is verified and the old one is not.
    pub(crate) fn insert(&mut self, key: &DeleteKey, verified: bool, ids: &[ChunkId]) {
        let now = self.now;
        for id in ids {
            let mut verified = verified;
            if let Some(old) = self.live(id) {
                if old.key != *key && (old.verified || !verified) {
                    continue;
                }
                verified |= old.verified;
            }
            let replaced = self.table.since.insert(
                *id,
                Entry {
                    at: now,
                    key: key.clone(),
                    verified,
                },
            );
            if replaced.is_some_and(|e| !e.verified) {
                self.table.loose_count -= 1;
            }
            if !verified {
                self.table.loose_count += 1;
            }
            if verified {
                self.table.order.push_back((now, *id));
            } else {
                self.table.loose.push_back((now, *id));
            }
        }
        self.table.trim(now, self.ttl, self.cap);
    }

    fn live(&self, id: &ChunkId) -> Option<&Entry> {
        self.table
            .since
            .get(id)
            .filter(|e| self.now.saturating_duration_since(e.at) < self.ttl)
    }

    /// The key of `id`'s live tombstone, if any.
    pub(crate) fn key(&self, id: &ChunkId) -> Option<DeleteKey> {
        self.live(id).map(|e| e.key.clone())
    }

    /// Forgets `id`'s tombstone (its key turned out not to authorize the real bytes).
    pub(crate) fn remove(&mut self, id: &ChunkId) {
        if self.table.since.remove(id).is_some_and(|e| !e.verified) {
            self.table.loose_count -= 1;
        }
    }
}

impl Tombstones {
    /// An empty set keeping ids for `ttl`, at most `cap` of them.
    pub(crate) fn new(ttl: Duration, cap: usize) -> Self {
        Self {
            inner: Mutex::new(Table::default()),
            ttl,
            cap: cap.max(1),
        }
    }

    /// Locks the table (expired entries are dropped first).
    pub(crate) fn lock(&self) -> Locked<'_> {
        let now = Instant::now();
        let mut table = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        table.trim(now, self.ttl, self.cap);
        Locked {
            table,
            now,
            ttl: self.ttl,
            cap: self.cap,
        }
    }

    /// The key of `id`'s live tombstone (deleted within the last `ttl`), if any.
    pub(crate) fn key(&self, id: &ChunkId) -> Option<DeleteKey> {
        self.lock().key(id)
    }

    /// Whether `id` has a live tombstone.
    #[cfg(test)]
    pub(crate) fn contains(&self, id: &ChunkId) -> bool {
        self.key(id).is_some()
    }

    /// Records `ids` as deleted now (unverified, with a fixed test key).
    #[cfg(test)]
    pub(crate) fn insert(&self, ids: &[ChunkId]) {
        self.lock()
            .insert(&DeleteKey::from_bytes([1; 32]), false, ids);
    }

    /// Number of live tombstones.
    pub(crate) fn len(&self) -> usize {
        self.lock().table.since.len()
    }

    /// Bytes the table holds, counted from its containers' capacities: every hash table
    /// bucket (entry and control byte) and every queue slot, whether used or not.
    pub(crate) fn bytes(&self) -> usize {
        let table = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // hashbrown keeps its buckets at most 7/8 full, in a power of two.
        let buckets = if table.since.capacity() == 0 {
            0
        } else {
            (table.since.capacity() * 8 / 7).next_power_of_two()
        };
        let entry = std::mem::size_of::<(ChunkId, Entry)>() + 1;
        let record = std::mem::size_of::<(Instant, ChunkId)>();
        buckets * entry + (table.order.capacity() + table.loose.capacity()) * record
    }

    /// Forgets everything (node shutdown).
    pub(crate) fn clear(&self) {
        let mut table = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *table = Table::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u32) -> ChunkId {
        ChunkId::digest(&i.to_be_bytes())
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_ttl() {
        let t = Tombstones::new(Duration::from_secs(60), 100);
        t.insert(&[id(1)]);
        assert!(t.contains(&id(1)));
        assert!(!t.contains(&id(2)));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(t.contains(&id(1)));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!t.contains(&id(1)));
        assert_eq!(t.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn oldest_is_forgotten_when_full() {
        // A cap of 12 keeps at most 3 unverified tombstones.
        let t = Tombstones::new(Duration::from_secs(3600), 12);
        for i in 0..5 {
            t.insert(&[id(i)]);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(t.len(), 3);
        assert!(!t.contains(&id(0)) && !t.contains(&id(1)));
        assert!(t.contains(&id(2)) && t.contains(&id(4)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_unverified_tombstones_never_pushes_out_a_verified_one() {
        let t = Tombstones::new(Duration::from_secs(3600), 10);
        let real = DeleteKey::from_bytes([7; 32]);
        t.lock().insert(&real, true, &[id(0), id(1)]);
        // Anyone can plant unverified tombstones with made-up keys, far more than fit.
        for i in 100..10_000 {
            t.lock()
                .insert(&DeleteKey::from_bytes([9; 32]), false, &[id(i)]);
            tokio::time::advance(Duration::from_micros(1)).await;
        }
        // The two verified ones, and the newest unverified ones up to a quarter of the cap.
        assert_eq!(t.len(), 2 + 2);
        assert_eq!(t.lock().key(&id(0)), Some(real.clone()));
        assert_eq!(t.lock().key(&id(1)), Some(real.clone()));
        assert!(t.contains(&id(9_999)) && !t.contains(&id(100)));
        // An id first planted unverified, then verified, counts as verified.
        t.lock().insert(&real, true, &[id(9_999)]);
        for i in 20_000..20_100 {
            t.lock()
                .insert(&DeleteKey::from_bytes([9; 32]), false, &[id(i)]);
        }
        assert_eq!(t.lock().key(&id(9_999)), Some(real.clone()));
        // With only verified ones left, the oldest of them goes.
        let t = Tombstones::new(Duration::from_secs(3600), 2);
        for i in 0..3 {
            t.lock().insert(&real, true, &[id(i)]);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(!t.contains(&id(0)) && t.contains(&id(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_key_stays_unless_a_verified_one_comes() {
        let t = Tombstones::new(Duration::from_secs(60), 100);
        let (a, b, c) = (
            DeleteKey::from_bytes([1; 32]),
            DeleteKey::from_bytes([2; 32]),
            DeleteKey::from_bytes([3; 32]),
        );
        t.lock().insert(&a, false, &[id(1)]);
        t.lock().insert(&b, false, &[id(1)]);
        assert_eq!(t.key(&id(1)), Some(a.clone()), "first come");
        t.lock().insert(&c, true, &[id(1)]);
        assert_eq!(
            t.key(&id(1)),
            Some(c.clone()),
            "a verified key replaces a guess"
        );
        t.lock().insert(&a, false, &[id(1)]);
        t.lock().insert(&b, true, &[id(1)]);
        assert_eq!(
            t.key(&id(1)),
            Some(c.clone()),
            "nothing replaces a verified key"
        );
        t.lock().remove(&id(1));
        assert_eq!(t.key(&id(1)), None);
        assert_eq!(t.len(), 0);
        // The stale order entry of the removed id is trimmed without harm.
        tokio::time::advance(Duration::from_secs(61)).await;
        t.lock().insert(&a, false, &[id(2)]);
        assert_eq!(t.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn deleting_again_renews_the_entry() {
        let t = Tombstones::new(Duration::from_secs(10), 10);
        t.insert(&[id(1)]);
        tokio::time::advance(Duration::from_secs(8)).await;
        t.insert(&[id(1)]);
        tokio::time::advance(Duration::from_secs(8)).await;
        assert!(t.contains(&id(1)), "renewed at 8 s, so alive until 18 s");
        assert_eq!(t.len(), 1);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!t.contains(&id(1)));
    }

    /// The measured attack (issue 25, point 3): 65 deletes of 4,096 made-up ids each, and far
    /// more, plus renewals of the same ids, against a full table of verified tombstones at the
    /// default cap. Every verified tombstone stays, and the table's memory stays within its
    /// documented bound.
    #[tokio::test(start_paused = true)]
    async fn a_delete_flood_at_the_default_cap_evicts_nothing_real_and_stays_in_bounds() {
        let cap = 262_144;
        let t = Tombstones::new(Duration::from_secs(86_400), cap);
        let real = DeleteKey::from_bytes([7; 32]);
        let verified: Vec<ChunkId> = (0..cap as u32).map(id).collect();
        for batch in verified.chunks(4096) {
            t.lock().insert(&real, true, batch);
        }
        let mut n = 10_000_000u32;
        for round in 0..300u32 {
            let ids: Vec<ChunkId> = (0..4096).map(|i| id(n + i)).collect();
            // Every third round renews the previous batch instead of naming new ids.
            if round % 3 != 2 {
                n += 4096;
            }
            t.lock()
                .insert(&DeleteKey::from_bytes([round as u8; 32]), false, &ids);
            tokio::time::advance(Duration::from_millis(5)).await;
        }
        let bytes = t.bytes();
        eprintln!(
            "{} tombstones in {bytes} bytes ({} per id)",
            t.len(),
            bytes / t.len()
        );
        assert!(bytes <= DEFAULT_BYTES_BOUND, "{bytes} bytes");
        let locked = t.lock();
        assert!(verified.iter().all(|v| locked.key(v) == Some(real.clone())));
        assert_eq!(locked.table.loose_count, 0, "a full table keeps no guesses");
    }
}
