//! Tombstones: ids of deleted chunks and records, remembered for a while so that a late or
//! repeated put of them is refused and repair never pushes them home again.
//!
//! Bounds: at most `cap` ids (the oldest is forgotten first when full) and each for at most
//! `ttl`; an entry costs about 80 bytes, so the default 262,144 ids take about 20 MiB at most.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use voldisefs_proto::ChunkId;

/// The ids this node must not store again, with their expiry.
#[derive(Debug)]
pub(crate) struct Tombstones {
    inner: Mutex<Table>,
    ttl: Duration,
    cap: usize,
}

#[derive(Debug, Default)]
struct Table {
    /// Id -> when it was (last) deleted.
    since: HashMap<ChunkId, Instant>,
    /// Ids in deletion order; an entry whose time differs from `since` is stale (re-deleted).
    order: VecDeque<(Instant, ChunkId)>,
}

impl Table {
    /// Drops expired entries and, while over `cap`, the oldest ones.
    fn trim(&mut self, now: Instant, ttl: Duration, cap: usize) {
        while let Some(&(at, id)) = self.order.front() {
            let stale = self.since.get(&id) != Some(&at);
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
    /// Records `ids` as deleted now.
    pub(crate) fn insert(&mut self, ids: &[ChunkId]) {
        let now = self.now;
        for id in ids {
            self.table.since.insert(*id, now);
            self.table.order.push_back((now, *id));
        }
        self.table.trim(now, self.ttl, self.cap);
    }

    /// Whether `id` is a live tombstone.
    pub(crate) fn contains(&self, id: &ChunkId) -> bool {
        self.table
            .since
            .get(id)
            .is_some_and(|at| self.now.saturating_duration_since(*at) < self.ttl)
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

    /// Whether `id` was deleted within the last `ttl`.
    pub(crate) fn contains(&self, id: &ChunkId) -> bool {
        self.lock().contains(id)
    }

    /// Records `ids` as deleted now.
    #[cfg(test)]
    pub(crate) fn insert(&self, ids: &[ChunkId]) {
        self.lock().insert(ids);
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
