//! This node as a holder ([`LocalHolder`]): its store, tombstones and expiry index. Serves the
//! gateway's own requests and those of peers alike (see `handler.rs`).

use bytes::Bytes;
use voldisefs_crypto::DeleteKeyExt as _;
use voldisefs_proto::{ChunkId, ChunkProof, DeleteKey, MAX_BATCH, NodeId, ProofNonce, proof};
use voldisefs_store::{ChunkStore, MemoryStore, StoreError};

use super::budget::ProofBudget;
use super::descriptor::{descriptor, shard_ids};
use super::expiry::ExpiryIndex;
use super::holder::HolderError;
use super::tombstones::Tombstones;

/// Bodies shorter than this are copied out of the frame buffer they arrived in, so a small
/// chunk never pins a larger buffer (longer ones arrive in buffers of their own).
const KEEP_AS_IS_MIN: usize = 64 << 10;

/// What a delete did on one holder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Deleted {
    /// Held chunks the key authorized, now dropped.
    pub(crate) dropped: usize,
    /// Held chunks the key did not authorize, kept.
    pub(crate) refused: usize,
}

/// This node as a holder: its store and its tombstones. Serves the gateway's own requests and
/// those of peers alike.
#[derive(Debug)]
pub(crate) struct LocalHolder {
    /// This node's id, known once the network started (proofs are bound to it).
    pub(crate) id: std::sync::OnceLock<NodeId>,
    pub(crate) store: MemoryStore,
    pub(crate) tombstones: Tombstones,
    /// The time expiry is judged by.
    pub(crate) clock: crate::clock::Clock,
    /// Held objects with an expiry, in time order: what [`expire`](Self::expire) looks at.
    pub(super) expiry: ExpiryIndex,
    /// What peers may make this node hash for proofs.
    pub(crate) proof_budget: ProofBudget,
}

impl LocalHolder {
    /// A holder with an empty store of `capacity` bytes and no tombstones.
    pub(crate) fn new(capacity: u64, tombstones: Tombstones) -> Self {
        Self {
            id: std::sync::OnceLock::new(),
            // Small chunks are charged what their entries cost, so `capacity` bounds the
            // memory of any mix of chunk sizes, not just their bytes.
            store: MemoryStore::with_entry_overhead(
                capacity,
                u64::MAX,
                voldisefs_store::ENTRY_OVERHEAD,
            ),
            tombstones,
            clock: crate::clock::Clock::new(0, crate::clock::WallClock::system()),
            expiry: ExpiryIndex::default(),
            proof_budget: ProofBudget::default(),
        }
    }

    /// The same holder, judging expiry by `clock`.
    pub(crate) fn with_clock(self, clock: crate::clock::Clock) -> Self {
        Self { clock, ..self }
    }

    /// Stores bytes whose id the caller computed from them (the gateway sealed them). Bytes
    /// shorter than any object of the format are refused, so are expired objects (as if
    /// deleted: nothing brings them back), and so are bytes a tombstone's key authorizes (a
    /// tombstone whose key does not is forgotten: whoever made it could not read the file).
    pub(crate) fn put_sealed(&self, id: ChunkId, bytes: Bytes) -> Result<(), HolderError> {
        if bytes.len() < voldisefs_crypto::MIN_STORED_LEN {
            return Err(HolderError::TooShort(bytes.len()));
        }
        if is_expired(&bytes, self.clock.now()) {
            return Err(HolderError::Deleted);
        }
        let mut tombstones = self.tombstones.lock();
        if let Some(key) = tombstones.key(&id) {
            if key.authorizes(&bytes) {
                return Err(HolderError::Deleted);
            }
            tracing::debug!(chunk = %id, "forgetting a tombstone whose key does not fit the chunk");
            tombstones.remove(&id);
        }
        let expires = voldisefs_crypto::stored_expiry(&bytes).unwrap_or(0);
        let outcome = self.store.put_verified(id, bytes).map_err(store_error)?;
        // Every object that enters the store with an expiry is indexed (ids are content
        // addresses: one already present has the same expiry and its entry).
        if outcome == voldisefs_store::PutOutcome::Stored {
            self.index_expiry(expires, id);
        }
        Ok(())
    }

    /// Adds object `id`, just stored, to the expiry index if it expires (`expires`, unix
    /// seconds, not 0).
    fn index_expiry(&self, expires: u64, id: ChunkId) {
        self.expiry
            .add(expires, id, self.store.stats().chunks, |id| {
                self.store.contains(id)
            });
    }

    /// Stores bytes received from a peer: checks them against `id` on the blocking pool, then
    /// stores them unless the id is tombstoned.
    pub(crate) async fn put_received(&self, id: ChunkId, bytes: Bytes) -> Result<(), HolderError> {
        if is_expired(&bytes, self.clock.now())
            || self
                .tombstones
                .key(&id)
                .is_some_and(|key| key.authorizes(&bytes))
        {
            return Err(HolderError::Deleted);
        }
        let (matches, bytes) = crate::cpu::run(move || (id.matches(&bytes), bytes))
            .await
            .map_err(|e| HolderError::Failed(e.to_string()))?;
        if !matches {
            return Err(HolderError::Refused(format!(
                "the body does not hash to chunk {id}"
            )));
        }
        let bytes = if bytes.len() < KEEP_AS_IS_MIN {
            Bytes::copy_from_slice(&bytes)
        } else {
            bytes
        };
        // Checked again under the lock a delete takes, so a put racing a delete cannot win.
        self.put_sealed(id, bytes)
    }

    /// The chunk's bytes (an object that expired since the last sweep is dropped now).
    pub(crate) fn get(&self, id: &ChunkId) -> Result<Bytes, HolderError> {
        match self.store.get(id) {
            Some(bytes) if is_expired(&bytes, self.clock.now()) => {
                self.store.remove(id);
                Err(HolderError::Deleted)
            }
            Some(bytes) => Ok(bytes),
            None if self.tombstones.key(id).is_some() => Err(HolderError::Deleted),
            None => Err(HolderError::NotFound),
        }
    }

    /// Drops every held object whose expiry is at or before `now` (unix seconds); returns how
    /// many. Costs one look at each entry of the expiry index due by `now` (objects that
    /// expire, or expired objects already removed), not a pass over the store; then keeps the
    /// index within its bound (see [`expiry`](super::expiry)).
    pub(crate) fn expire(&self, now: u64) -> usize {
        let mut dropped = 0;
        for (_, id) in self.expiry.take_due(now) {
            // The object may be gone already (deleted, dropped by repair or a read).
            let Some(bytes) = self.store.get(&id) else {
                continue;
            };
            match voldisefs_crypto::stored_expiry(&bytes) {
                // Not due after all (it cannot be, the id fixing the bytes): index it again.
                Some(at) if !voldisefs_crypto::expired(at, now) => self.index_expiry(at, id),
                Some(_) => dropped += usize::from(self.store.remove(&id)),
                None => {}
            }
        }
        self.expiry
            .keep_bounded(self.store.stats().chunks, |id| self.store.contains(id));
        dropped
    }

    /// Which of `ids` are held.
    pub(crate) fn has(&self, ids: &[ChunkId]) -> Vec<bool> {
        self.store.contains_many(ids)
    }

    /// Proofs of possession of `ids` for `nonce` (hashing on the blocking pool).
    pub(crate) async fn prove(
        &self,
        nonce: ProofNonce,
        ids: Vec<ChunkId>,
    ) -> Result<Vec<ChunkProof>, HolderError> {
        let held: Vec<(ChunkId, Option<Bytes>, Option<DeleteKey>)> = ids
            .into_iter()
            .map(|id| {
                let bytes = self.store.get(&id);
                let deleted = bytes
                    .as_ref()
                    .map_or_else(|| self.tombstones.key(&id), |_| None);
                (id, bytes, deleted)
            })
            .collect();
        let Some(me) = self.id.get().copied() else {
            return Err(HolderError::Failed("node id not known yet".into()));
        };
        crate::cpu::run(move || {
            held.into_iter()
                .map(|(id, bytes, deleted)| match bytes {
                    Some(bytes) => ChunkProof::Held {
                        proof: proof::prove(&nonce, me, &id, &bytes),
                    },
                    None => match deleted {
                        Some(key) => ChunkProof::Deleted { key },
                        None => ChunkProof::Missing,
                    },
                })
                .collect()
        })
        .await
        .map_err(|e| HolderError::Failed(e.to_string()))
    }

    /// Drops the held chunks of `ids` that `key` authorizes and keeps verified tombstones for
    /// them; a held chunk the key does not authorize is kept (and gets no tombstone). Ids not
    /// held get unverified tombstones, which refuse only bytes the key authorizes.
    pub(crate) fn delete(&self, key: &DeleteKey, ids: &[ChunkId]) -> Deleted {
        let mut tombstones = self.tombstones.lock();
        let mut done = Deleted::default();
        // Deleting a stripe descriptor deletes the shards it lists too (the same key covers
        // them): a delete names stripes, and every shard holder keeps the descriptor.
        let mut ids = ids.to_vec();
        let mut expanded = 0;
        while expanded < ids.len() {
            let id = ids[expanded];
            expanded += 1;
            if let Some(bytes) = self.store.get(&id) {
                if key.authorizes(&bytes) {
                    if let Some(stripe) = descriptor(&bytes) {
                        ids.extend(shard_ids(&stripe));
                    }
                }
            }
            if expanded > MAX_BATCH * (voldisefs_crypto::MAX_SHARDS + 1) {
                break;
            }
        }
        for id in &ids {
            match self.store.get(id) {
                Some(bytes) if key.authorizes(&bytes) => {
                    self.store.remove(id);
                    tombstones.insert(key, true, &[*id]);
                    done.dropped += 1;
                }
                Some(_) => done.refused += 1,
                None => tombstones.insert(key, false, &[*id]),
            }
        }
        done
    }
}

/// The system clock in unix seconds (0 if the clock is before 1970).
#[cfg(test)]
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether a stored object's public expiry is at or before `now`.
fn is_expired(object: &[u8], now: u64) -> bool {
    voldisefs_crypto::stored_expiry(object).is_some_and(|at| voldisefs_crypto::expired(at, now))
}

fn store_error(e: StoreError) -> HolderError {
    match e {
        StoreError::Full { .. } => HolderError::Full(e.to_string()),
        other => HolderError::Refused(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn local() -> LocalHolder {
        let h = LocalHolder::new(1 << 20, Tombstones::new(Duration::from_secs(3600), 1000));
        h.id.set(NodeId::random()).unwrap();
        h
    }

    /// A stored object of the file with delete key `key`: `body`, no expiry, the key's check.
    fn object(key: &DeleteKey, body: &[u8]) -> Bytes {
        object_expiring(key, body, 0)
    }

    /// A stored object expiring at `expires` (unix seconds).
    fn object_expiring(key: &DeleteKey, body: &[u8], expires: u64) -> Bytes {
        let mut bytes = body.to_vec();
        bytes.resize(body.len().max(16), 0);
        bytes.extend_from_slice(&expires.to_be_bytes());
        bytes.extend_from_slice(&voldisefs_crypto::delete_check(key.as_bytes()));
        Bytes::from(bytes)
    }

    #[tokio::test]
    async fn expired_objects_are_dropped_and_never_stored_again() {
        let h = local();
        let now = unix_now();
        let past = object_expiring(&KEY, b"gone", now - 1);
        let soon = object_expiring(&KEY, b"soon", now + 1);
        let later = object_expiring(&KEY, b"later", now + 3600);
        let never = object(&KEY, b"never");
        // Already expired: refused like a deleted chunk (repair and hand-off cannot revive it).
        let id = ChunkId::digest(&past);
        assert!(matches!(
            h.put_received(id, past.clone()).await,
            Err(HolderError::Deleted)
        ));
        assert!(matches!(h.put_sealed(id, past), Err(HolderError::Deleted)));
        for bytes in [&soon, &later, &never] {
            h.put_received(ChunkId::digest(bytes), bytes.clone())
                .await
                .unwrap();
        }
        // The sweep at a given time drops exactly what expired by then.
        assert_eq!(h.expire(now), 0);
        assert_eq!(h.expire(now + 1), 1);
        assert!(matches!(
            h.get(&ChunkId::digest(&soon)),
            Err(HolderError::NotFound | HolderError::Deleted)
        ));
        assert!(h.get(&ChunkId::digest(&later)).is_ok());
        assert_eq!(h.expire(u64::MAX), 1);
        assert!(h.get(&ChunkId::digest(&never)).is_ok());
    }

    const KEY: DeleteKey = DeleteKey::from_bytes([5; 32]);
    const WRONG: DeleteKey = DeleteKey::from_bytes([6; 32]);

    #[tokio::test]
    async fn a_deleted_chunk_is_never_stored_again() {
        let h = local();
        let bytes = object(&KEY, b"ciphertext");
        let id = ChunkId::digest(&bytes);
        h.put_received(id, bytes.clone()).await.unwrap();
        assert_eq!(
            h.delete(&WRONG, &[id]),
            Deleted {
                dropped: 0,
                refused: 1
            },
            "a key that does not fit erases nothing"
        );
        assert_eq!(h.get(&id), Ok(bytes.clone()));
        assert_eq!(
            h.delete(&KEY, &[id]),
            Deleted {
                dropped: 1,
                refused: 0
            }
        );
        assert_eq!(h.get(&id), Err(HolderError::Deleted));
        assert_eq!(
            h.put_received(id, bytes.clone()).await,
            Err(HolderError::Deleted)
        );
        assert_eq!(h.put_sealed(id, bytes), Err(HolderError::Deleted));
        assert_eq!(h.store.stats().chunks, 0);
    }

    #[tokio::test]
    async fn a_tombstone_with_a_made_up_key_refuses_nothing() {
        let h = local();
        let bytes = object(&KEY, b"not held yet");
        let id = ChunkId::digest(&bytes);
        // Someone who cannot read the file plants a tombstone before the chunk arrives.
        h.delete(&WRONG, &[id]);
        assert_eq!(h.get(&id), Err(HolderError::Deleted));
        h.put_received(id, bytes.clone()).await.unwrap();
        assert_eq!(h.get(&id), Ok(bytes.clone()));
        // The real key, presented for a chunk not held, does refuse it.
        let other = object(&KEY, b"another chunk of the file");
        let other_id = ChunkId::digest(&other);
        h.delete(&KEY, &[other_id]);
        assert_eq!(
            h.put_received(other_id, other).await,
            Err(HolderError::Deleted)
        );
    }

    #[tokio::test]
    async fn objects_shorter_than_the_format_allows_are_refused() {
        let h = local();
        let tiny = Bytes::from_static(b"4 b.");
        let err = h
            .put_received(ChunkId::digest(&tiny), tiny)
            .await
            .unwrap_err();
        assert_eq!(err, HolderError::TooShort(4));
        assert_eq!(h.store.stats().chunks, 0);
    }

    #[tokio::test]
    async fn proofs_answer_held_missing_and_deleted() {
        let h = local();
        let bytes = object(&KEY, b"abc");
        let (held, missing, gone) = (
            ChunkId::digest(&bytes),
            ChunkId::digest(b"x"),
            ChunkId::digest(b"y"),
        );
        h.put_received(held, bytes.clone()).await.unwrap();
        h.delete(&KEY, &[gone]);
        let nonce = ProofNonce::from_bytes([7; 32]);
        let proofs = h.prove(nonce, vec![held, missing, gone]).await.unwrap();
        assert_eq!(
            proofs,
            vec![
                ChunkProof::Held {
                    proof: proof::prove(&nonce, *h.id.get().unwrap(), &held, &bytes)
                },
                ChunkProof::Missing,
                ChunkProof::Deleted { key: KEY }
            ]
        );
    }

    #[tokio::test]
    async fn wrong_bytes_are_refused() {
        let h = local();
        let err = h
            .put_received(ChunkId::digest(b"a"), object(&KEY, b"b"))
            .await
            .unwrap_err();
        assert!(matches!(err, HolderError::Refused(_)), "{err:?}");
    }
}
