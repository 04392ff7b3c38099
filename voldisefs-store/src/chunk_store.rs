//! The [`ChunkStore`] trait and its result types.

use std::sync::Arc;

use bytes::Bytes;
use voldisefs_proto::ChunkId;

use crate::StoreError;

/// What a successful [`ChunkStore::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PutOutcome {
    /// The chunk was new and is now stored; its bytes count against the capacity.
    Stored,
    /// A chunk with this id was already stored; nothing changed (puts are idempotent).
    AlreadyPresent,
}

/// A snapshot of a store's usage.
///
/// Taken while other threads may be writing, the fields are each exact at some instant but not
/// necessarily at the same one; once writers are quiet, `bytes` is exactly the sum of the stored
/// chunks' lengths and `chunks` their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StoreStats {
    /// Number of stored chunks.
    pub chunks: u64,
    /// Total length of the stored chunks in bytes. Never above `capacity`.
    pub bytes: u64,
    /// Byte capacity of the store (`u64::MAX` for an unbounded store).
    pub capacity: u64,
}

impl StoreStats {
    /// Bytes still free: `capacity - bytes`.
    pub const fn available(&self) -> u64 {
        self.capacity.saturating_sub(self.bytes)
    }
}

/// A content-addressed store of opaque (encrypted) chunks.
///
/// Every stored chunk's BLAKE3 digest equals its [`ChunkId`]: implementations verify data on
/// [`put`](Self::put) and refuse mismatches, so whatever [`get`](Self::get) returns can be served
/// to peers as is (receivers still verify: see the design's "verify at every hop").
///
/// # Use from async code
///
/// The node calls these methods directly from async tasks. The trait is synchronous, so an
/// implementation cannot hold a lock across an `.await`; it must also never block for long:
/// locks are held only for map operations, never for I/O or hashing. The one CPU cost that
/// grows with data size is the BLAKE3 check in `put` (about 0.1 ms per MiB in a release build); callers
/// storing many large chunks at once may run puts on a blocking pool.
///
/// The trait is object safe: `Arc<dyn ChunkStore>` is the usual way to share a store, and
/// `Arc<S>` is itself a `ChunkStore`.
pub trait ChunkStore: Send + Sync + 'static {
    /// Stores `data` under `id`.
    ///
    /// Storing an id that is already present returns [`PutOutcome::AlreadyPresent`] without
    /// touching the accounting, even when the store is full.
    ///
    /// # Errors
    ///
    /// [`StoreError::IdMismatch`] if `data` does not hash to `id`, [`StoreError::Full`] if the
    /// chunk does not fit in the remaining capacity (nothing is evicted), or
    /// [`StoreError::ChunkTooLarge`] if the store has a maximum chunk length and `data` exceeds
    /// it. A refused put changes nothing.
    fn put(&self, id: ChunkId, data: Bytes) -> Result<PutOutcome, StoreError>;

    /// The chunk stored under `id`, if any. Cheap: the returned [`Bytes`] shares the stored
    /// buffer rather than copying it.
    fn get(&self, id: &ChunkId) -> Option<Bytes>;

    /// Whether a chunk is stored under `id`.
    fn contains(&self, id: &ChunkId) -> bool;

    /// For each id in `ids`, in order, whether it is stored (the batched `has_chunks` query).
    fn contains_many(&self, ids: &[ChunkId]) -> Vec<bool> {
        ids.iter().map(|id| self.contains(id)).collect()
    }

    /// Removes the chunk stored under `id`, freeing its capacity. Returns whether it was present.
    ///
    /// [`Bytes`] handed out earlier by [`get`](Self::get) stay valid; the memory is released
    /// when the last of them is dropped.
    fn remove(&self, id: &ChunkId) -> bool;

    /// The ids of all stored chunks, in no particular order.
    fn ids(&self) -> Vec<ChunkId>;

    /// Current usage and capacity.
    fn stats(&self) -> StoreStats;

    /// Removes every chunk (used on shutdown). Afterwards the store is empty and all capacity
    /// is free; like [`remove`](Self::remove), buffers still shared elsewhere are released when
    /// their last holder drops them.
    fn clear(&self);
}

impl<S: ChunkStore + ?Sized> ChunkStore for Arc<S> {
    fn put(&self, id: ChunkId, data: Bytes) -> Result<PutOutcome, StoreError> {
        (**self).put(id, data)
    }

    fn get(&self, id: &ChunkId) -> Option<Bytes> {
        (**self).get(id)
    }

    fn contains(&self, id: &ChunkId) -> bool {
        (**self).contains(id)
    }

    fn contains_many(&self, ids: &[ChunkId]) -> Vec<bool> {
        (**self).contains_many(ids)
    }

    fn remove(&self, id: &ChunkId) -> bool {
        (**self).remove(id)
    }

    fn ids(&self) -> Vec<ChunkId> {
        (**self).ids()
    }

    fn stats(&self) -> StoreStats {
        (**self).stats()
    }

    fn clear(&self) {
        (**self).clear();
    }
}
