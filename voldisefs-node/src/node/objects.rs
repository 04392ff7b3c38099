//! The object API's operations: sealed objects and stripes in and out, deletes with a delete
//! key. No key but a delete key ever reaches these functions: the client sealed everything.
//!
//! Every object is checked before anything is stored: its id must be the BLAKE3 of its bytes,
//! its length within [`MAX_OBJECT_LEN`] and at least [`MIN_STORED_LEN`], its public trailer's
//! expiry not passed and within the node's `max_expiry` (plus [`EXPIRY_SKEW_SECS`] for the
//! client's clock). A stripe's descriptor must match the stripe id and every shard its
//! descriptor. Then the objects go through the replication layer exactly as the gateway's own
//! chunks do: `replicas` copies, or K + M shards on K + M nodes, within the nodes' capacity.

use bytes::Bytes;
use futures_util::StreamExt;
use voldisefs_crypto::{
    CHUNK_OVERHEAD, ChunkSize, DeleteKey, MAX_RECORD_LEN, MIN_STORED_LEN, Redundancy, Stripe,
    content_id, expired, stored_expiry,
};
use voldisefs_proto::ChunkId;

use crate::replication::{AttemptError, Fetched, HolderError, StripeUpload};
use crate::{Node, NodeError};

/// Longest object the API takes: a maximal record or a chunk of the largest chunk size.
pub const MAX_OBJECT_LEN: usize = {
    let chunk = (1usize << ChunkSize::MAX_LOG2) + CHUNK_OVERHEAD;
    if chunk > MAX_RECORD_LEN {
        chunk
    } else {
        MAX_RECORD_LEN
    }
};
/// Most objects in one batch (`POST /api/v1/objects`).
pub const MAX_BATCH_OBJECTS: usize = 1024;
/// Most bytes in one batch body (and in a stripe's body).
pub const MAX_BATCH_BYTES: usize = 32 << 20;
/// Most ids in one delete request.
pub const MAX_DELETE_IDS: usize = 16_384;
/// How far past `max_expiry` a client's clock may stamp an object.
pub const EXPIRY_SKEW_SECS: u64 = 300;
/// Objects of one batch stored at once.
const BATCH_PARALLELISM: usize = 16;

/// What storing objects gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectReceipt {
    /// Objects (or stripes) stored.
    pub stored: usize,
    /// Copies (or shards) confirmed for the least-kept one.
    pub copies: usize,
    /// Copies (or shards) wanted.
    pub replicas: usize,
}

impl Node {
    /// Checks one object before it is stored (see the module docs).
    fn check_object(&self, id: &[u8; 32], bytes: &[u8]) -> Result<(), NodeError> {
        let bad = |m: String| Err(NodeError::InvalidRequest(m));
        if bytes.len() > MAX_OBJECT_LEN {
            return bad(format!("an object is at most {MAX_OBJECT_LEN} bytes"));
        }
        let Some(expires) = stored_expiry(bytes) else {
            return bad(format!(
                "an object is at least {MIN_STORED_LEN} bytes (a sealed chunk's tag and trailer)"
            ));
        };
        if content_id(bytes) != *id {
            return bad(format!(
                "object {} does not match its id (the BLAKE3 of its bytes)",
                ChunkId::from_bytes(*id)
            ));
        }
        let now = self.now();
        if expired(expires, now) {
            return bad("the object's expiry has passed".into());
        }
        if let Some(max) = self.config().max_expiry {
            // This node's own clock: peers that say it runs late cannot stretch the bound.
            let latest = self
                .own_time()
                .saturating_add(max.as_secs())
                .saturating_add(EXPIRY_SKEW_SECS);
            if expires == 0 || expires > latest {
                return bad(format!(
                    "this node keeps objects at most {} s; seal them with an earlier expiry",
                    max.as_secs()
                ));
            }
        }
        Ok(())
    }

    /// Stores sealed objects (chunks and records) as whole copies on their ranked holders,
    /// after checking every one of them (nothing is stored when one fails).
    pub async fn put_objects(
        &self,
        objects: Vec<([u8; 32], Bytes)>,
    ) -> Result<ObjectReceipt, NodeError> {
        for (id, bytes) in &objects {
            self.check_object(id, bytes)?;
        }
        let replicas = self.cluster().replicas();
        let stored = objects.len();
        let ids: Vec<ChunkId> = objects
            .iter()
            .map(|(id, _)| ChunkId::from_bytes(*id))
            .collect();
        let cluster = self.cluster().clone();
        let mut puts = futures_util::stream::iter(objects)
            .map(|(id, bytes)| {
                let cluster = cluster.clone();
                async move { cluster.put(ChunkId::from_bytes(id), bytes).await }
            })
            .buffer_unordered(BATCH_PARALLELISM);
        let mut copies = usize::MAX;
        while let Some(holders) = puts.next().await {
            copies = copies.min(holders?.len());
        }
        // Holders proved by proof soon, and this node's extra copies dropped, as for uploads.
        self.settle_soon(ids);
        Ok(ObjectReceipt {
            stored,
            copies: if stored == 0 { 0 } else { copies },
            replicas,
        })
    }

    /// Stores a stripe: `objects` are its descriptor (under `id`) then its K + M shards, in
    /// order. Refused unless they fit together and K + M nodes are live.
    pub async fn put_stripe(
        &self,
        id: [u8; 32],
        objects: Vec<([u8; 32], Bytes)>,
    ) -> Result<ObjectReceipt, NodeError> {
        let bad = |m: &str| NodeError::InvalidRequest(format!("stripe: {m}"));
        let mut objects = objects.into_iter();
        let (descriptor_id, descriptor) = objects.next().ok_or_else(|| bad("no descriptor"))?;
        let stripe = Stripe::parse(&descriptor).map_err(|e| bad(&e.to_string()))?;
        if descriptor_id != id || stripe.id() != id {
            return Err(bad("the descriptor does not match the stripe id"));
        }
        let shards: Vec<([u8; 32], Bytes)> = objects.collect();
        if shards.len() != stripe.shard_ids().len() {
            return Err(bad("not one object per shard"));
        }
        self.check_object(&id, &descriptor)?;
        for (j, (shard_id, shard)) in shards.iter().enumerate() {
            if stripe.shard_ids()[j] != *shard_id || !stripe.check_shard(j, shard) {
                return Err(bad("a shard does not match its descriptor"));
            }
            self.check_object(shard_id, shard)?;
        }
        let redundancy: Redundancy = stripe.redundancy();
        let wanted = redundancy.nodes();
        let holders = self
            .cluster()
            .stripes()
            .put(StripeUpload {
                redundancy,
                id: ChunkId::from_bytes(id),
                descriptor,
                ids: shards
                    .iter()
                    .map(|(i, _)| ChunkId::from_bytes(*i))
                    .collect(),
                shards: shards.into_iter().map(|(_, s)| s).collect(),
            })
            .await?;
        Ok(ObjectReceipt {
            stored: 1,
            copies: holders.len(),
            replicas: wanted,
        })
    }

    /// Whether this node's own store holds object (or shard) `id` now: no peer is asked.
    pub fn holds_object(&self, id: [u8; 32]) -> bool {
        self.cluster()
            .local_copy(&ChunkId::from_bytes(id))
            .is_some()
    }

    /// The bytes of object `id`, checked against the id here (a holder serving others is
    /// demoted and the next asked); [`NodeError::NotFound`] when no node holds it.
    pub async fn get_object(&self, id: [u8; 32]) -> Result<Bytes, NodeError> {
        let chunk = ChunkId::from_bytes(id);
        // Its own copy was checked when it was stored.
        if let Some(bytes) = self.cluster().local_copy(&chunk) {
            return Ok(bytes);
        }
        let fetched = self
            .cluster()
            .fetch(chunk, &[], move |bytes: Bytes| {
                if content_id(&bytes) == id {
                    Ok(bytes)
                } else {
                    Err(AttemptError::Next(HolderError::Failed(
                        "served bytes that do not match the id".into(),
                    )))
                }
            })
            .await?;
        match fetched {
            Fetched::Found(bytes) => Ok(bytes),
            Fetched::Deleted | Fetched::Missing => Err(NodeError::NoSuchObject(chunk)),
        }
    }

    /// The sealed chunk of stripe `id`, joined from any K shards checked against the stripe's
    /// descriptor.
    pub async fn get_stripe(&self, id: [u8; 32]) -> Result<Bytes, NodeError> {
        let chunk = ChunkId::from_bytes(id);
        match self.cluster().stripes().fetch(chunk, &[]).await? {
            Fetched::Found(joined) => Ok(Bytes::from(joined)),
            Fetched::Deleted | Fetched::Missing => Err(NodeError::NoSuchObject(chunk)),
        }
    }

    /// Deletes `ids` with `key` on their holders (over `spread` nodes each, 0 for copies), or
    /// on every live node when `everywhere`; every node that deletes keeps a tombstone.
    /// Holders erase only objects whose delete check the key matches. Returns how many nodes
    /// confirmed; refused ([`NodeError::NoDeleteQuorum`]) when this node cannot reach a
    /// majority of the network, or (`everywhere`) a majority did not confirm.
    pub async fn delete_objects(
        &self,
        key: &DeleteKey,
        ids: &[[u8; 32]],
        everywhere: bool,
        spread: usize,
    ) -> Result<usize, NodeError> {
        if ids.len() > MAX_DELETE_IDS {
            return Err(NodeError::InvalidRequest(format!(
                "at most {MAX_DELETE_IDS} ids per delete"
            )));
        }
        if spread > voldisefs_crypto::MAX_SHARDS {
            return Err(NodeError::InvalidRequest(format!(
                "spread is at most {}",
                voldisefs_crypto::MAX_SHARDS
            )));
        }
        let ids: Vec<ChunkId> = ids.iter().map(|id| ChunkId::from_bytes(*id)).collect();
        self.cluster()
            .delete_confirmed(key, &ids, everywhere, spread)
            .await
    }
}
