//! The small interface the pipelines run over: a store of sealed, content-addressed objects.
//!
//! A store never sees a key. It holds two shapes of object:
//! - **objects**: sealed chunks and records, stored under the BLAKE3 of their bytes and kept as
//!   whole copies;
//! - **stripes**: a sealed chunk of an `rs:K+M` file, handed over as its public descriptor and
//!   its K + M shards ([`EncodedStripe`]) and read back joined.
//!
//! Every read may come from one of several *sources* (nodes): the pipelines verify what each
//! source answers and ask the next one when the bytes are wrong, so a store needs no trust in
//! any one of them. [`MemoryStore`] is a complete store in RAM, for tests and examples.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use super::store_error::{StoreError, StoreErrorKind};
use crate::{
    DeleteKey, DeleteKeyExt as _, EncodedStripe, Stripe, content_id, expired, stored_expiry,
};

/// A boxed future, as the store's methods return (`Send` everywhere but wasm32).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One object to store: its id (the BLAKE3 of `bytes`) and its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Object {
    /// The object's id.
    pub id: [u8; 32],
    /// The sealed bytes.
    pub bytes: bytes::Bytes,
}

impl std::fmt::Debug for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Object")
            .field("id", &crate::HexId(&self.id))
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// What a store says after storing: the copies made of the least-kept object, and the copies
/// that object wanted. Objects of one file may want different counts (an `rs:K+M` file's
/// record is kept as whole copies, its stripes as K + M shards), so "least kept" is the
/// smallest share of what it wanted, never one object's copies against another's count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stored {
    /// Copies (or, for a stripe, shards) confirmed for the least-kept object.
    pub copies: usize,
    /// Copies (or shards) that object wanted.
    pub wanted: usize,
}

impl Stored {
    /// The weaker of two receipts (for a batch or a whole file): the one with the smaller
    /// share of the copies it wanted; of two equal shares, the one that wanted more.
    pub fn min(self, other: Stored) -> Stored {
        // copies / wanted compared without division (a receipt wanting 0 counts as 1).
        let ours = self.copies as u128 * other.wanted.max(1) as u128;
        let theirs = other.copies as u128 * self.wanted.max(1) as u128;
        match ours.cmp(&theirs) {
            std::cmp::Ordering::Less => self,
            std::cmp::Ordering::Greater => other,
            std::cmp::Ordering::Equal if other.wanted > self.wanted => other,
            std::cmp::Ordering::Equal => self,
        }
    }

    /// Whether every object got all the copies it wanted.
    pub fn is_full(&self) -> bool {
        self.copies >= self.wanted
    }
}

#[cfg(test)]
mod stored_tests {
    use super::Stored;
    use proptest::prelude::*;

    fn s(copies: usize, wanted: usize) -> Stored {
        Stored { copies, wanted }
    }

    #[test]
    fn a_full_record_and_full_stripes_make_a_full_file() {
        // rs:2+2 on six nodes: the record on 3 of 3, every stripe on 4 of 4.
        assert!(s(3, 3).min(s(4, 4)).is_full());
        assert!(s(4, 4).min(s(3, 3)).is_full());
        // One stripe short: the file is short, by that stripe.
        assert_eq!(s(3, 3).min(s(3, 4)), s(3, 4));
        assert_eq!(s(2, 3).min(s(4, 4)), s(2, 3));
    }

    proptest! {
        #[test]
        fn the_weaker_receipt_is_full_only_if_both_are(
            a in 0usize..20, aw in 1usize..20, b in 0usize..20, bw in 1usize..20,
        ) {
            let (x, y) = (s(a, aw), s(b, bw));
            let m = x.min(y);
            prop_assert_eq!(m.is_full(), x.is_full() && y.is_full());
            prop_assert!(m == x || m == y);
            prop_assert_eq!(m, y.min(x));
        }
    }
}

/// What one source answered to a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The bytes it holds under the id (not yet verified: the caller checks them).
    Found(bytes::Bytes),
    /// Bytes the store itself checked against the id (a whole object) or against the stripe's
    /// descriptor (a stripe's shards). Only a store running in the reader's own process (a
    /// node serving its gateway) may say so; the reader then skips the id hash and still
    /// checks the length, the trailer and the AEAD tag.
    Verified(bytes::Bytes),
    /// It holds nothing under the id (never stored, expired or deleted).
    Missing,
}

/// Which objects a delete reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteScope {
    /// Every live node keeps a tombstone (a record: once it is gone nobody can start a read).
    Everywhere,
    /// The ranked holders of each id, over `nodes` nodes (K + M for stripes; 0: the copies).
    Holders {
        /// Nodes one object is spread over (0 for whole copies).
        nodes: usize,
    },
}

/// Whether a read asks for an object or a stripe (joined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A whole object; its id is the BLAKE3 of the bytes.
    Object,
    /// A stripe id; the answer is the joined sealed chunk, checked by its AEAD tag.
    Stripe,
}

/// How many chunks a transfer keeps in flight, asked again before each chunk starts (a store
/// that measures its latency can grow it). Dropped when the transfer ends.
pub trait Window: Send {
    /// Chunks in flight at most now (at least 1 is used).
    fn size(&mut self) -> usize;
}

/// A window that never changes.
#[derive(Debug, Clone, Copy)]
pub struct FixedWindow(pub usize);

impl Window for FixedWindow {
    fn size(&mut self) -> usize {
        self.0
    }
}

/// Which way a transfer goes, for [`ObjectStore::window`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Storing.
    Put,
    /// Reading.
    Get,
}

/// A store of sealed objects: what the pipelines run over. Implemented by the CLI (HTTP, one
/// source per node), by a node over its cluster (gateway mode), and by [`MemoryStore`].
///
/// No method sees a key other than a delete key (which only erases the one file it belongs to).
pub trait ObjectStore: Send + Sync {
    /// Stores `objects` (a batch: many small files in one round trip) and reports the copies.
    fn put(&self, objects: Vec<Object>) -> BoxFuture<'_, Result<Stored, StoreError>>;

    /// Stores a stripe: its descriptor (under the stripe id) and its shards.
    fn put_stripe(&self, stripe: EncodedStripe) -> BoxFuture<'_, Result<Stored, StoreError>>;

    /// Reads `id` from source `source` (`0..sources()`).
    fn get(
        &self,
        source: usize,
        id: [u8; 32],
        kind: ObjectKind,
    ) -> BoxFuture<'_, Result<Fetched, StoreError>>;

    /// Erases `ids` where `scope` says, presenting the file's delete key (holders erase only
    /// objects whose delete check the key matches).
    fn delete(
        &self,
        key: DeleteKey,
        ids: Vec<[u8; 32]>,
        scope: DeleteScope,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// How many sources reads can come from (at least 1).
    fn sources(&self) -> usize {
        1
    }

    /// The window of a transfer of `chunk_len`-byte chunks that would keep `base` in flight
    /// by default.
    fn window(&self, base: usize, chunk_len: usize, direction: Direction) -> Box<dyn Window> {
        let _ = (chunk_len, direction);
        Box::new(FixedWindow(base))
    }

    /// A source's name for messages (a node's URL).
    fn source_name(&self, source: usize) -> String {
        format!("source {source}")
    }

    /// Told when `source` answered `id` with bytes that failed verification (the pipeline
    /// has gone on to the next source). A store may warn, or stop asking that source.
    fn report_bad(&self, source: usize, id: [u8; 32]) {
        let _ = (source, id);
    }
}

impl<S: ObjectStore + ?Sized> ObjectStore for Arc<S> {
    fn put(&self, objects: Vec<Object>) -> BoxFuture<'_, Result<Stored, StoreError>> {
        (**self).put(objects)
    }
    fn put_stripe(&self, stripe: EncodedStripe) -> BoxFuture<'_, Result<Stored, StoreError>> {
        (**self).put_stripe(stripe)
    }
    fn get(
        &self,
        source: usize,
        id: [u8; 32],
        kind: ObjectKind,
    ) -> BoxFuture<'_, Result<Fetched, StoreError>> {
        (**self).get(source, id, kind)
    }
    fn delete(
        &self,
        key: DeleteKey,
        ids: Vec<[u8; 32]>,
        scope: DeleteScope,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        (**self).delete(key, ids, scope)
    }
    fn sources(&self) -> usize {
        (**self).sources()
    }
    fn window(&self, base: usize, chunk_len: usize, direction: Direction) -> Box<dyn Window> {
        (**self).window(base, chunk_len, direction)
    }
    fn source_name(&self, source: usize) -> String {
        (**self).source_name(source)
    }
    fn report_bad(&self, source: usize, id: [u8; 32]) {
        (**self).report_bad(source, id)
    }
}

/// A complete [`ObjectStore`] in RAM (one source): checks ids, keeps tombstones so a deleted
/// object is never stored again, and drops expired objects when read. For tests, examples and
/// programs that want the format without a network. Unbounded: give it only what you made.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
    /// The unix time expiry is judged by (`None`: the system clock).
    now: Option<u64>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    objects: HashMap<[u8; 32], bytes::Bytes>,
    stripes: HashMap<[u8; 32], bytes::Bytes>,
    deleted: std::collections::HashSet<[u8; 32]>,
}

impl MemoryStore {
    /// An empty store judging expiry by the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store judging expiry as if it were `now` (unix seconds).
    pub fn at(now: u64) -> Self {
        Self {
            now: Some(now),
            ..Self::default()
        }
    }

    /// Objects and stripes held.
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.objects.len() + inner.stripes.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every object's bytes (stripes as their joined chunk), for tests that look for leaks.
    pub fn contents(&self) -> Vec<bytes::Bytes> {
        let inner = self.lock();
        inner
            .objects
            .values()
            .chain(inner.stripes.values())
            .cloned()
            .collect()
    }

    /// Replaces what is stored under `id` (a test's way to corrupt it).
    pub fn tamper(&self, id: [u8; 32], bytes: bytes::Bytes) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        match inner.objects.get_mut(&id) {
            Some(held) => *held = bytes,
            None => {
                inner.stripes.insert(id, bytes);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        self.now.unwrap_or_else(|| super::Clock::SYSTEM.now())
    }

    fn refuse(message: &str) -> StoreError {
        StoreError::new(StoreErrorKind::Refused, message)
    }
}

impl ObjectStore for MemoryStore {
    fn put(&self, objects: Vec<Object>) -> BoxFuture<'_, Result<Stored, StoreError>> {
        Box::pin(async move {
            let now = self.now();
            let mut inner = self.lock();
            for object in objects {
                if content_id(&object.bytes) != object.id {
                    return Err(Self::refuse("an object does not match its id"));
                }
                match stored_expiry(&object.bytes) {
                    None => return Err(Self::refuse("an object is too short")),
                    Some(at) if expired(at, now) => return Err(Self::refuse("expired")),
                    Some(_) => {}
                }
                if !inner.deleted.contains(&object.id) {
                    inner.objects.insert(object.id, object.bytes);
                }
            }
            Ok(Stored {
                copies: 1,
                wanted: 1,
            })
        })
    }

    fn put_stripe(&self, stripe: EncodedStripe) -> BoxFuture<'_, Result<Stored, StoreError>> {
        Box::pin(async move {
            let parsed = Stripe::parse(&stripe.descriptor)
                .map_err(|e| Self::refuse(&format!("bad stripe: {e}")))?;
            if parsed.id() != stripe.id {
                return Err(Self::refuse("a stripe does not match its id"));
            }
            let shards: Vec<Option<&Vec<u8>>> = stripe.shards.iter().map(Some).collect();
            for (i, shard) in stripe.shards.iter().enumerate() {
                if !parsed.check_shard(i, shard) {
                    return Err(Self::refuse("a shard does not match its descriptor"));
                }
            }
            let joined = parsed
                .join(&shards)
                .map_err(|e| Self::refuse(&format!("bad stripe: {e}")))?;
            let mut inner = self.lock();
            if !inner.deleted.contains(&stripe.id) {
                inner.stripes.insert(stripe.id, joined.into());
            }
            Ok(Stored {
                copies: parsed.redundancy().nodes(),
                wanted: parsed.redundancy().nodes(),
            })
        })
    }

    fn get(
        &self,
        _source: usize,
        id: [u8; 32],
        kind: ObjectKind,
    ) -> BoxFuture<'_, Result<Fetched, StoreError>> {
        Box::pin(async move {
            let now = self.now();
            let inner = self.lock();
            let table = match kind {
                ObjectKind::Object => &inner.objects,
                ObjectKind::Stripe => &inner.stripes,
            };
            Ok(match table.get(&id) {
                Some(bytes) if !stored_expiry(bytes).is_some_and(|at| expired(at, now)) => {
                    Fetched::Found(bytes.clone())
                }
                _ => Fetched::Missing,
            })
        })
    }

    fn delete(
        &self,
        key: DeleteKey,
        ids: Vec<[u8; 32]>,
        _scope: DeleteScope,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut inner = self.lock();
            for id in ids {
                let held = inner.objects.get(&id).or_else(|| inner.stripes.get(&id));
                if held.is_some_and(|bytes| key.authorizes(bytes)) {
                    inner.objects.remove(&id);
                    inner.stripes.remove(&id);
                    inner.deleted.insert(id);
                }
            }
            Ok(())
        })
    }
}
