//! [`MemoryStore`]: the RAM-only, capacity-bounded, sharded [`ChunkStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use voldisefs_proto::ChunkId;

use crate::{ChunkStore, PutOutcome, StoreError, StoreStats};

/// What one stored chunk costs beyond its bytes, about: its map entry (id, `Bytes` handle,
/// control byte, with the table's spare room) and its allocation's header and rounding.
pub const ENTRY_OVERHEAD: u64 = 160;

/// Chunks at least this long may be kept without a copy by [`MemoryStore::put_owned`].
const KEEP_AS_IS_MIN: usize = 64 * 1024;

/// Number of independently locked shards (a power of two). Ids are BLAKE3 digests, so their
/// first byte spreads chunks evenly.
const SHARDS: usize = 32;

type Shard = HashMap<ChunkId, Bytes>;

/// A [`ChunkStore`] that keeps chunks in RAM only: nothing is ever written to disk, and
/// everything is gone when the last handle is dropped (or on [`clear`](ChunkStore::clear)).
///
/// `MemoryStore` is a cheap handle: cloning it clones an `Arc`, and all clones share one store.
/// It can equally be used as `Arc<dyn ChunkStore>`.
///
/// # Concurrency
///
/// The map is split into 32 shards, each behind its own `std::sync::Mutex`, so puts and gets
/// of different chunks rarely contend. Locks are held only for a map operation: hashing and
/// copying happen before a lock is taken. Used bytes are tracked in an atomic that is reserved
/// (compare-and-swap) under the chunk's shard lock before the chunk is inserted, so concurrent
/// puts can never take the store above its capacity, and a refused put holds nothing.
///
/// # Memory
///
/// On a successful put the store keeps its own exact-size copy of the data. A `Bytes` handed in
/// may be a slice of a larger buffer (say, a network read buffer); storing it as is would pin
/// that whole buffer while counting only the slice. With the copy, [`StoreStats::bytes`] is
/// what the chunks really occupy (plus a small per-entry overhead for the map).
///
/// Chunks are ciphertext, so they are not zeroized; [`remove`](ChunkStore::remove),
/// [`clear`](ChunkStore::clear) and dropping the last handle release them. A `Bytes` returned
/// by [`get`](ChunkStore::get) shares the stored buffer, so a buffer still being sent to a peer
/// is freed when that last reference goes.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: [Mutex<Shard>; SHARDS],
    capacity: u64,
    max_chunk_len: u64,
    /// Bytes charged per stored chunk on top of its length.
    entry_overhead: u64,
    /// Sum of stored chunk lengths (plus the per-entry charge); only changed under the
    /// affected chunk's shard lock.
    used: AtomicU64,
    /// Number of stored chunks; only changed under the affected chunk's shard lock.
    chunks: AtomicU64,
}

impl MemoryStore {
    /// A store that holds at most `capacity_bytes` bytes of chunk data, with no limit on the
    /// length of one chunk.
    pub fn new(capacity_bytes: u64) -> Self {
        Self::with_limits(capacity_bytes, u64::MAX)
    }

    /// A store without a byte capacity (it reports `u64::MAX`), for tests and tools.
    pub fn unbounded() -> Self {
        Self::new(u64::MAX)
    }

    /// A store that holds at most `capacity_bytes` bytes and refuses any single chunk longer
    /// than `max_chunk_len` bytes with [`StoreError::ChunkTooLarge`].
    pub fn with_limits(capacity_bytes: u64, max_chunk_len: u64) -> Self {
        Self::with_entry_overhead(capacity_bytes, max_chunk_len, 0)
    }

    /// Like [`with_limits`](Self::with_limits), but every stored chunk is charged
    /// `entry_overhead` bytes on top of its length (and [`StoreStats::bytes`] counts them), so
    /// the capacity bounds the memory the store really takes however small the chunks:
    /// the map entry, the allocation and its rounding cost about [`ENTRY_OVERHEAD`] bytes per
    /// chunk, which is what a node passes. With 0 the store counts data bytes only.
    pub fn with_entry_overhead(
        capacity_bytes: u64,
        max_chunk_len: u64,
        entry_overhead: u64,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: std::array::from_fn(|_| Mutex::new(Shard::new())),
                capacity: capacity_bytes,
                max_chunk_len,
                entry_overhead,
                used: AtomicU64::new(0),
                chunks: AtomicU64::new(0),
            }),
        }
    }

    /// The byte capacity.
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// The longest chunk accepted, or `None` if any length is.
    pub fn max_chunk_len(&self) -> Option<u64> {
        let max = self.inner.max_chunk_len;
        (max != u64::MAX).then_some(max)
    }

    /// Locks the shard that holds `id`. A poisoned lock is recovered: the map and the counters
    /// are only changed together by code that cannot panic halfway.
    fn shard(&self, id: &ChunkId) -> MutexGuard<'_, Shard> {
        let index = usize::from(id.as_bytes()[0]) & (SHARDS - 1);
        lock(&self.inner.shards[index])
    }

    /// Reserves `len` bytes of capacity, or says why not. Call with the shard lock held.
    fn reserve(&self, len: u64) -> Result<(), StoreError> {
        let capacity = self.inner.capacity;
        self.inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(len).filter(|&total| total <= capacity)
            })
            .map(|_| ())
            .map_err(|used| StoreError::Full {
                needed: len,
                available: capacity.saturating_sub(used),
                capacity,
            })
    }

    /// Stores a chunk whose id the caller computed itself from exactly these bytes (a
    /// gateway's freshly sealed chunk): skips the hash check (debug builds still make it)
    /// and stores `data` as is, without a copy, so it should own its whole buffer rather than
    /// be a slice of a larger one. Capacity and idempotence rules are those of
    /// [`ChunkStore::put`].
    pub fn put_verified(&self, id: ChunkId, data: Bytes) -> Result<PutOutcome, StoreError> {
        self.check_len(&data)?;
        debug_assert!(id.matches(&data), "put_verified with a wrong id");
        self.insert(id, data)
    }

    /// Like [`ChunkStore::put`] (the BLAKE3 id is checked), but keeps a large `data` as is
    /// instead of copying it: for callers whose buffers hold (nearly) nothing but the chunk,
    /// such as a body the frame codec read into its own exact-size buffer. Chunks under
    /// 64 KiB are still copied, so small slices never pin larger buffers.
    pub fn put_owned(&self, id: ChunkId, data: Bytes) -> Result<PutOutcome, StoreError> {
        self.put_checked(id, data, KEEP_AS_IS_MIN)
    }

    /// Refuses chunks above the length limit.
    fn check_len(&self, data: &[u8]) -> Result<(), StoreError> {
        let (len, max) = (len_u64(data), self.inner.max_chunk_len);
        if len > max {
            return Err(StoreError::ChunkTooLarge { len, max });
        }
        Ok(())
    }

    /// Checks length and BLAKE3 id (before any lock: hashing is the expensive part of a put),
    /// then stores `data`, kept as is when at least `keep_from` bytes long and otherwise
    /// copied into an exact-size buffer (see "Memory" above).
    fn put_checked(
        &self,
        id: ChunkId,
        data: Bytes,
        keep_from: usize,
    ) -> Result<PutOutcome, StoreError> {
        self.check_len(&data)?;
        let actual = ChunkId::digest(&data);
        if actual != id {
            return Err(StoreError::IdMismatch {
                expected: id,
                actual,
            });
        }
        if self.contains(&id) {
            return Ok(PutOutcome::AlreadyPresent);
        }
        let data = if data.len() < keep_from {
            Bytes::copy_from_slice(&data)
        } else {
            data
        };
        self.insert(id, data)
    }

    /// Inserts a verified, owned chunk unless present, within capacity.
    fn insert(&self, id: ChunkId, data: Bytes) -> Result<PutOutcome, StoreError> {
        let mut shard = self.shard(&id);
        if shard.contains_key(&id) {
            // Already stored (possibly by a concurrent put that won the race).
            return Ok(PutOutcome::AlreadyPresent);
        }
        self.reserve(len_u64(&data).saturating_add(self.inner.entry_overhead))?;
        shard.insert(id, data);
        self.inner.chunks.fetch_add(1, Ordering::AcqRel);
        Ok(PutOutcome::Stored)
    }

    /// Accounts for removed chunks holding `bytes` of data. Call with the shard lock held.
    fn release(&self, chunks: u64, bytes: u64) {
        let charged = bytes.saturating_add(chunks.saturating_mul(self.inner.entry_overhead));
        self.inner.used.fetch_sub(charged, Ordering::AcqRel);
        self.inner.chunks.fetch_sub(chunks, Ordering::AcqRel);
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

fn len_u64(data: &[u8]) -> u64 {
    u64::try_from(data.len()).unwrap_or(u64::MAX)
}

impl ChunkStore for MemoryStore {
    fn put(&self, id: ChunkId, data: Bytes) -> Result<PutOutcome, StoreError> {
        // Always copy: the caller's buffer may be a slice of a much larger one.
        self.put_checked(id, data, usize::MAX)
    }

    fn get(&self, id: &ChunkId) -> Option<Bytes> {
        self.shard(id).get(id).cloned()
    }

    fn contains(&self, id: &ChunkId) -> bool {
        self.shard(id).contains_key(id)
    }

    fn remove(&self, id: &ChunkId) -> bool {
        let mut shard = self.shard(id);
        let Some(data) = shard.remove(id) else {
            return false;
        };
        self.release(1, len_u64(&data));
        drop(shard);
        // `data` is dropped here, outside the lock.
        true
    }

    fn ids(&self) -> Vec<ChunkId> {
        let mut ids = Vec::new();
        for shard in &self.inner.shards {
            ids.extend(lock(shard).keys().copied());
        }
        ids
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            chunks: self.inner.chunks.load(Ordering::Acquire),
            bytes: self.inner.used.load(Ordering::Acquire),
            capacity: self.inner.capacity,
        }
    }

    fn clear(&self) {
        for shard in &self.inner.shards {
            let mut guard = lock(shard);
            let taken = std::mem::take(&mut *guard);
            let bytes = taken.values().map(|data| len_u64(data)).sum();
            self.release(u64::try_from(taken.len()).unwrap_or(u64::MAX), bytes);
            drop(guard);
            // The chunks (and the shard's table) are freed here, outside the lock.
            drop(taken);
        }
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stats = self.stats();
        f.debug_struct("MemoryStore")
            .field("chunks", &stats.chunks)
            .field("bytes", &stats.bytes)
            .field("capacity", &stats.capacity)
            .field("max_chunk_len", &self.max_chunk_len())
            .finish()
    }
}

#[cfg(test)]
mod overhead_tests {
    use super::*;

    #[test]
    fn tiny_chunks_are_charged_their_entry_overhead() {
        let store = MemoryStore::with_entry_overhead(10 * ENTRY_OVERHEAD, u64::MAX, ENTRY_OVERHEAD);
        let mut stored = 0u32;
        for i in 0..1000u32 {
            let data = Bytes::from(i.to_be_bytes().to_vec());
            match store.put(ChunkId::digest(&data), data) {
                Ok(_) => stored += 1,
                Err(StoreError::Full { .. }) => break,
                Err(e) => panic!("{e}"),
            }
        }
        // 4-byte chunks: without the charge 400 of them would fit in 1,600 bytes.
        assert_eq!(
            stored, 9,
            "10 entries' worth of capacity, 4 data bytes each on top"
        );
        let stats = store.stats();
        assert_eq!(stats.bytes, 9 * (ENTRY_OVERHEAD + 4));
        let first = Bytes::from(0u32.to_be_bytes().to_vec());
        assert!(store.remove(&ChunkId::digest(&first)));
        assert_eq!(store.stats().bytes, 8 * (ENTRY_OVERHEAD + 4));
        store.clear();
        assert_eq!(store.stats().bytes, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &'static [u8]) -> (ChunkId, Bytes) {
        (ChunkId::digest(data), Bytes::from_static(data))
    }

    #[test]
    fn clones_share_one_store() {
        let a = MemoryStore::new(100);
        let b = a.clone();
        let (id, data) = chunk(b"shared");
        assert_eq!(a.put(id, data.clone()), Ok(PutOutcome::Stored));
        assert_eq!(b.get(&id), Some(data));
        assert_eq!(b.stats().bytes, 6);
    }

    #[test]
    fn put_owned_checks_ids_and_copies_only_small_chunks() {
        let store = MemoryStore::new(1 << 20);
        let big = Bytes::from(vec![3u8; KEEP_AS_IS_MIN]);
        let big_id = ChunkId::digest(&big);
        assert_eq!(store.put_owned(big_id, big.clone()), Ok(PutOutcome::Stored));
        assert_eq!(
            store.get(&big_id).unwrap().as_ptr(),
            big.as_ptr(),
            "kept as is"
        );
        let (id, small) = chunk(b"small");
        assert_eq!(store.put_owned(id, small.clone()), Ok(PutOutcome::Stored));
        assert_ne!(store.get(&id).unwrap().as_ptr(), small.as_ptr(), "copied");
        let (other, _) = chunk(b"other");
        assert!(matches!(
            store.put_owned(other, Bytes::from_static(b"not other")),
            Err(StoreError::IdMismatch { .. })
        ));
        assert_eq!(store.stats().chunks, 2);
    }

    #[test]
    fn put_verified_stores_without_copy_within_capacity() {
        let store = MemoryStore::new(10);
        let (id, data) = chunk(b"sealed");
        assert_eq!(store.put_verified(id, data.clone()), Ok(PutOutcome::Stored));
        assert_eq!(
            store.put_verified(id, data.clone()),
            Ok(PutOutcome::AlreadyPresent)
        );
        assert_eq!(store.put(id, data.clone()), Ok(PutOutcome::AlreadyPresent));
        let stored = store.get(&id).unwrap();
        assert_eq!(stored.as_ptr(), data.as_ptr(), "stored as is, not copied");
        assert_eq!(store.stats().bytes, 6);
        let (other, more) = chunk(b"too much");
        assert!(matches!(
            store.put_verified(other, more),
            Err(StoreError::Full {
                needed: 8,
                available: 4,
                capacity: 10
            })
        ));
        let limited = MemoryStore::with_limits(100, 4);
        assert!(matches!(
            limited.put_verified(id, data),
            Err(StoreError::ChunkTooLarge { len: 6, max: 4 })
        ));
    }

    #[test]
    fn stored_buffer_is_an_exact_copy() {
        // A small slice of a big buffer must not pin the big buffer.
        let big = Bytes::from(vec![7u8; 4096]);
        let slice = big.slice(10..20);
        let id = ChunkId::digest(&slice);
        let store = MemoryStore::new(10);
        assert_eq!(store.put(id, slice.clone()), Ok(PutOutcome::Stored));
        let stored = store.get(&id).unwrap();
        assert_eq!(stored, slice);
        assert_ne!(stored.as_ptr(), slice.as_ptr());
        drop(big);
        drop(slice);
        // Zero-copy get: two gets share the stored buffer.
        assert_eq!(store.get(&id).unwrap().as_ptr(), stored.as_ptr());
    }

    #[test]
    fn max_chunk_len_is_enforced_before_hashing() {
        let store = MemoryStore::with_limits(1000, 4);
        assert_eq!(store.max_chunk_len(), Some(4));
        assert_eq!(MemoryStore::new(1).max_chunk_len(), None);
        let (id, data) = chunk(b"four");
        assert_eq!(store.put(id, data), Ok(PutOutcome::Stored));
        // The id is wrong too, but the length check comes first.
        let err = store.put(id, Bytes::from_static(b"fives")).unwrap_err();
        assert_eq!(err, StoreError::ChunkTooLarge { len: 5, max: 4 });
        assert_eq!(store.stats().bytes, 4);
    }

    #[test]
    fn unbounded_reports_max_capacity() {
        let store = MemoryStore::unbounded();
        assert_eq!(store.capacity(), u64::MAX);
        let (id, data) = chunk(b"x");
        assert_eq!(store.put(id, data), Ok(PutOutcome::Stored));
        assert_eq!(store.stats().available(), u64::MAX - 1);
    }

    #[test]
    fn debug_shows_usage_not_content() {
        let store = MemoryStore::new(64);
        let (id, data) = chunk(b"secret-ish");
        store.put(id, data).unwrap();
        let text = format!("{store:?}");
        assert!(text.contains("chunks: 1"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn poisoned_shard_is_recovered() {
        let store = MemoryStore::new(64);
        let (id, data) = chunk(b"poison");
        let index = usize::from(id.as_bytes()[0]) & (SHARDS - 1);
        let inner = Arc::clone(&store.inner);
        let _ = std::thread::spawn(move || {
            let _guard = inner.shards[index].lock();
            panic!("poison the shard");
        })
        .join();
        assert!(store.inner.shards[index].is_poisoned());
        assert_eq!(store.put(id, data), Ok(PutOutcome::Stored));
        assert!(store.contains(&id));
    }
}
