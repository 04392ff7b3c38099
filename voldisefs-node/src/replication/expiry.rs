//! The expiry index: which held objects expire when, in time order, so the once-a-second
//! expiry sweep costs what expires rather than what is stored.
//!
//! [`LocalHolder`](super::local::LocalHolder) adds an entry `(expiry, id)` for every object
//! with an expiry it newly stores; objects that never expire get none and cost the sweep
//! nothing. A sweep takes the entries due at its time (and only those), and the holder checks
//! each against its store, since the object may have been deleted or dropped meanwhile.
//!
//! **Bound.** An object removed before it expires (deleted, dropped by repair, read after its
//! expiry) leaves a stale entry. Every add and every sweep therefore checks the index against
//! the store: when it holds more than twice the stored object count plus [`SLACK`] entries, it
//! is compacted to the entries of objects still held (at most one per object). So the index
//! never holds more than `2 × stored objects + SLACK` entries after a put of an expiring
//! object or a sweep (so at most a second after a removal), about 40 bytes plus the tree's
//! own overhead per entry. Compacting (under the index's lock) costs one store lookup per
//! entry and runs only when more than half the entries are stale: each stale entry, made by
//! one put, pays for at most two lookups (amortised constant time per put).

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use voldisefs_proto::ChunkId;

/// Entries the index may hold beyond twice the stored object count before it is compacted.
pub(crate) const SLACK: usize = 1024;

/// Ids of held objects in the order they expire (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct ExpiryIndex {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// `(expiry in unix seconds, id)`, never with expiry 0 (never expires).
    entries: BTreeSet<(u64, ChunkId)>,
    /// Entries sweeps and compactions looked at, ever.
    visited: u64,
}

impl ExpiryIndex {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that object `id` expires at `at` (unix seconds; 0, never, records nothing),
    /// then compacts the index if it outgrew its bound for `stored` objects, keeping the
    /// entries whose id `held` says is still stored.
    pub(crate) fn add(&self, at: u64, id: ChunkId, stored: u64, held: impl Fn(&ChunkId) -> bool) {
        if at == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.entries.insert((at, id));
        inner.compact_if_over(stored, held);
    }

    /// Takes the entries due at `now` (expiry at or before it), earliest first.
    pub(crate) fn take_due(&self, now: u64) -> Vec<(u64, ChunkId)> {
        let mut inner = self.lock();
        let mut due = Vec::new();
        while let Some(&(at, id)) = inner.entries.first() {
            if at > now {
                break;
            }
            inner.entries.pop_first();
            due.push((at, id));
        }
        inner.visited = inner
            .visited
            .saturating_add(u64::try_from(due.len()).unwrap_or(u64::MAX));
        due
    }

    /// Compacts the index if it outgrew its bound for `stored` objects (see [`add`](Self::add)).
    pub(crate) fn keep_bounded(&self, stored: u64, held: impl Fn(&ChunkId) -> bool) {
        self.lock().compact_if_over(stored, held);
    }

    /// Entries held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Entries sweeps and compactions have looked at since the index was made.
    #[cfg(test)]
    pub(crate) fn visited(&self) -> u64 {
        self.lock().visited
    }
}

impl Inner {
    /// Drops the entries of objects no longer held if there are more than
    /// `2 × stored + SLACK` entries.
    fn compact_if_over(&mut self, stored: u64, held: impl Fn(&ChunkId) -> bool) {
        let stored = usize::try_from(stored).unwrap_or(usize::MAX);
        if self.entries.len() <= stored.saturating_mul(2).saturating_add(SLACK) {
            return;
        }
        let before = self.entries.len();
        self.entries.retain(|(_, id)| held(id));
        self.visited = self
            .visited
            .saturating_add(u64::try_from(before).unwrap_or(u64::MAX));
        tracing::debug!(before, after = self.entries.len(), "expiry index compacted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ChunkId {
        ChunkId::digest(&n.to_be_bytes())
    }

    #[test]
    fn due_entries_come_out_in_order_and_alone() {
        let index = ExpiryIndex::default();
        for (at, n) in [(30, 1), (10, 2), (20, 3), (0, 4)] {
            index.add(at, id(n), 4, |_| true);
        }
        assert_eq!(index.len(), 3, "an object that never expires has no entry");
        assert!(index.take_due(9).is_empty());
        assert_eq!(index.take_due(20), vec![(10, id(2)), (20, id(3))]);
        assert_eq!(index.visited(), 2);
        assert_eq!(index.take_due(u64::MAX), vec![(30, id(1))]);
        assert_eq!(index.len(), 0);
    }

    #[test]
    fn stale_entries_are_compacted_past_the_bound() {
        let index = ExpiryIndex::default();
        // Nothing stays held: every entry is stale once added.
        for n in 0..10 * SLACK as u64 {
            index.add(1_000 + n, id(n), 0, |_| false);
            assert!(index.len() <= SLACK);
        }
        // With objects held, the bound grows with them.
        let index = ExpiryIndex::default();
        for n in 0..3 * SLACK as u64 {
            index.add(1_000 + n, id(n), n + 1, |_| true);
        }
        assert_eq!(index.len(), 3 * SLACK);
        // They all go (no sweep touches them); the next sweep compacts.
        index.keep_bounded(0, |_| false);
        assert_eq!(index.len(), 0);
    }

    mod through_the_holder {
        use std::time::Duration;

        use bytes::Bytes;
        use voldisefs_proto::{ChunkId, DeleteKey, NodeId};
        use voldisefs_store::ChunkStore;

        use super::super::SLACK;
        use crate::replication::holder::HolderError;
        use crate::replication::local::LocalHolder;

        const KEY: DeleteKey = DeleteKey::from_bytes([5; 32]);
        /// Far in the future, unix seconds; the tests pass their own "now".
        const NOW: u64 = 4_000_000_000;

        fn local() -> LocalHolder {
            let h = LocalHolder::new(
                1 << 30,
                crate::replication::Tombstones::new(Duration::from_secs(3600), 100_000),
            );
            h.id.set(NodeId::random()).unwrap();
            h
        }

        /// Object number `n` (distinct bytes), expiring at `expires` (0: never).
        fn object(n: u64, expires: u64) -> (ChunkId, Bytes) {
            let mut bytes = n.to_be_bytes().repeat(2);
            bytes.extend_from_slice(&expires.to_be_bytes());
            bytes.extend_from_slice(&voldisefs_crypto::delete_check(KEY.as_bytes()));
            let bytes = Bytes::from(bytes);
            (ChunkId::digest(&bytes), bytes)
        }

        fn put(h: &LocalHolder, n: u64, expires: u64) -> ChunkId {
            let (id, bytes) = object(n, expires);
            h.put_sealed(id, bytes).unwrap();
            id
        }

        /// Issue 25, point 7: the sweep looks at what is due, not at everything stored.
        #[test]
        fn a_sweep_visits_only_the_objects_due() {
            let h = local();
            for n in 0..20_000 {
                put(&h, n, 0);
            }
            for n in 20_000..25_000 {
                put(&h, n, NOW + 3600);
            }
            let due: Vec<ChunkId> = (25_000..25_003).map(|n| put(&h, n, NOW + 10)).collect();
            assert_eq!(h.store.stats().chunks, 25_003);

            let visited = h.expiry.visited();
            assert_eq!(h.expire(NOW), 0);
            assert_eq!(h.expiry.visited() - visited, 0, "nothing was due");
            assert_eq!(h.expire(NOW + 10), 3);
            assert_eq!(
                h.expiry.visited() - visited,
                3,
                "the sweep looked at objects not due"
            );
            for id in &due {
                assert!(matches!(h.get(id), Err(HolderError::NotFound)));
            }
            assert_eq!(h.store.stats().chunks, 25_000);
        }

        #[test]
        fn an_object_is_dropped_at_its_expiry_and_not_before() {
            let h = local();
            let never = put(&h, 1, 0);
            let id = put(&h, 2, NOW + 60);
            // Stored twice (a repair's copy arriving again): still one entry, dropped once.
            let (_, bytes) = object(2, NOW + 60);
            h.put_sealed(id, bytes).unwrap();
            assert_eq!(h.expire(NOW + 59), 0);
            assert!(h.get(&id).is_ok());
            assert_eq!(h.expire(NOW + 60), 1);
            assert!(matches!(h.get(&id), Err(HolderError::NotFound)));
            assert_eq!(h.expire(u64::MAX), 0);
            assert!(h.get(&never).is_ok());
            assert_eq!(h.expiry.len(), 0);
        }

        #[test]
        fn deleted_objects_do_not_grow_the_index_past_its_bound() {
            let h = local();
            let live: Vec<ChunkId> = (0..500).map(|n| put(&h, n, NOW + 3600)).collect();
            let bound =
                |h: &LocalHolder| 2 * usize::try_from(h.store.stats().chunks).unwrap() + SLACK;
            let mut most = 0;
            for n in 1_000..21_000 {
                let id = put(&h, n, NOW + 3600 + n);
                assert_eq!(h.delete(&KEY, &[id]).dropped, 1);
                // (The put saw one more object than the delete left.)
                assert!(h.expiry.len() <= bound(&h) + 2, "{}", h.expiry.len());
                most = most.max(h.expiry.len());
            }
            assert!(most <= 2 * 501 + SLACK, "the index grew to {most} entries");
            // The 20,000 stale entries cost a handful of compactions, not one per delete.
            let visits = h.expiry.visited();
            assert!(
                visits < 4 * 20_000,
                "compactions looked at {visits} entries"
            );
            // Every live object is still indexed: all expire on time.
            assert_eq!(h.expire(NOW + 3600), live.len());
            // A sweep compacts too: here the store empties behind the index's back.
            for n in 100_000..102_000 {
                put(&h, n, NOW + 7200);
            }
            h.store.clear();
            assert_eq!(h.expire(NOW + 3600), 0);
            assert_eq!(h.expiry.len(), 0);
        }
    }
}
