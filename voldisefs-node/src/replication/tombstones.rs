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
//! Bounds: at most `cap` ids (the oldest is forgotten first when full) and each for at most
//! `ttl`; an entry costs about 120 bytes, so the default 262,144 ids take about 30 MiB at most.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use voldisefs_proto::{ChunkId, DeleteKey};

/// The ids this node must not store again, with their expiry.
#[derive(Debug)]
pub(crate) struct Tombstones {
    inner: Mutex<Table>,
    ttl: Duration,
    cap: usize,
}

/// One tombstone.
#[derive(Debug, Clone, Copy)]
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
    /// Ids in deletion order; an entry whose time differs from `since` is stale (re-deleted).
    order: VecDeque<(Instant, ChunkId)>,
}

impl Table {
    /// Drops expired entries and, while over `cap`, the oldest ones.
    fn trim(&mut self, now: Instant, ttl: Duration, cap: usize) {
        while let Some(&(at, id)) = self.order.front() {
            let stale = self.since.get(&id).map(|e| e.at) != Some(at);
            let expired = now.saturating_duration_since(at) >= ttl;
            if !(stale || expired || self.since.len() > cap) {
                break;
            }
            self.order.pop_front();
            if !stale {
                self.since.remove(&id);
            }
        }
    }
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
    pub(crate) fn insert(&mut self, key: DeleteKey, verified: bool, ids: &[ChunkId]) {
        let now = self.now;
        for id in ids {
            let mut verified = verified;
            if let Some(old) = self.live(id) {
                if old.key != key && (old.verified || !verified) {
                    continue;
                }
                verified |= old.verified;
            }
            self.table.since.insert(
                *id,
                Entry {
                    at: now,
                    key,
                    verified,
                },
            );
            self.table.order.push_back((now, *id));
        }
        self.table.trim(now, self.ttl, self.cap);
    }

    fn live(&self, id: &ChunkId) -> Option<Entry> {
        self.table
            .since
            .get(id)
            .filter(|e| self.now.saturating_duration_since(e.at) < self.ttl)
            .copied()
    }

    /// The key of `id`'s live tombstone, if any.
    pub(crate) fn key(&self, id: &ChunkId) -> Option<DeleteKey> {
        self.live(id).map(|e| e.key)
    }

    /// Forgets `id`'s tombstone (its key turned out not to authorize the real bytes).
    pub(crate) fn remove(&mut self, id: &ChunkId) {
        self.table.since.remove(id);
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
            .insert(DeleteKey::from_bytes([1; 32]), false, ids);
    }

    /// Number of live tombstones.
    pub(crate) fn len(&self) -> usize {
        self.lock().table.since.len()
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
        let t = Tombstones::new(Duration::from_secs(3600), 3);
        for i in 0..5 {
            t.insert(&[id(i)]);
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(t.len(), 3);
        assert!(!t.contains(&id(0)) && !t.contains(&id(1)));
        assert!(t.contains(&id(2)) && t.contains(&id(4)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_key_stays_unless_a_verified_one_comes() {
        let t = Tombstones::new(Duration::from_secs(60), 100);
        let (a, b, c) = (
            DeleteKey::from_bytes([1; 32]),
            DeleteKey::from_bytes([2; 32]),
            DeleteKey::from_bytes([3; 32]),
        );
        t.lock().insert(a, false, &[id(1)]);
        t.lock().insert(b, false, &[id(1)]);
        assert_eq!(t.key(&id(1)), Some(a), "first come");
        t.lock().insert(c, true, &[id(1)]);
        assert_eq!(t.key(&id(1)), Some(c), "a verified key replaces a guess");
        t.lock().insert(a, false, &[id(1)]);
        t.lock().insert(b, true, &[id(1)]);
        assert_eq!(t.key(&id(1)), Some(c), "nothing replaces a verified key");
        t.lock().remove(&id(1));
        assert_eq!(t.key(&id(1)), None);
        assert_eq!(t.len(), 0);
        // The stale order entry of the removed id is trimmed without harm.
        tokio::time::advance(Duration::from_secs(61)).await;
        t.lock().insert(a, false, &[id(2)]);
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
}
