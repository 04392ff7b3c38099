//! The cluster as the client pipelines' object store: gateway mode (a caller that sends its
//! password over HTTP) runs exactly the pipelines a client runs (`voldisefs_crypto::client`),
//! with this node's replication layer as the store. Nothing here seals or opens anything.
//!
//! One [`ClusterStore`] serves one transfer: it keeps the first [`NodeError`] the replication
//! layer gave, so the transfer reports it as it is (full, too few nodes, ...), not as the
//! pipeline's generic store error.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use voldisefs_crypto::client::{
    BoxFuture, Client, DeleteScope, Direction, Fetched, Job, Object, ObjectKind, ObjectStore,
    Offload, Settings, StoreError, StoreErrorKind, Stored, Window,
};
use voldisefs_crypto::{DeleteKey, EncodedStripe, Redundancy, Stripe, content_id};
use voldisefs_proto::ChunkId;

use crate::NodeError;
use crate::replication::{AttemptError, Cluster, Failure, HolderError, StripeUpload};

/// Runs the pipelines' CPU work on tokio's blocking pool, wiping the stack each job used
/// after it (the keys it derived and used lie there), as the KDF's is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockingPool;

impl Offload for BlockingPool {
    fn spawn(&self, job: Job) {
        if crate::cpu::inline() {
            job();
            return;
        }
        tokio::task::spawn_blocking(move || {
            job();
            voldisefs_crypto::scrub_stack();
        });
    }
}

/// Runs `f` on tokio's blocking pool and wipes the stack it used after it; defined in the
/// replication layer (which opens fetched objects with it), named here for the pipelines.
pub(crate) use crate::replication::scrubbed;

/// Objects stored at once by one batch.
const BATCH_PARALLELISM: usize = 16;

/// The cluster, for one transfer (see the module docs).
pub(crate) struct ClusterStore {
    cluster: Cluster,
    /// How long one object's fetch may take before it counts as missing.
    deadline: Duration,
    /// The first error the replication layer gave.
    failure: Mutex<Option<NodeError>>,
}

impl ClusterStore {
    /// A client for one transfer over `cluster`, sealing chunks of `settings.chunk_size` with
    /// `settings.parallelism` in flight at first; every object fetch gets `deadline`.
    pub(crate) fn client(
        cluster: &Cluster,
        settings: Settings,
        deadline: Duration,
    ) -> Result<(Client, Arc<ClusterStore>), NodeError> {
        let store = Arc::new(ClusterStore {
            cluster: cluster.clone(),
            deadline,
            failure: Mutex::new(None),
        });
        let client = Client::new(store.clone(), Arc::new(BlockingPool), settings)?;
        Ok((client, store))
    }

    /// The node error behind a pipeline error: the one the replication layer gave, if the
    /// pipeline failed on the store.
    pub(crate) fn error(&self, e: voldisefs_crypto::Error) -> NodeError {
        use voldisefs_crypto::Error;
        match e {
            Error::Store(e) => self
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .unwrap_or(NodeError::Internal(e.message)),
            Error::Cancelled => NodeError::Cancelled,
            Error::Input(message) => NodeError::InvalidRequest(message),
            e => e.into(),
        }
    }

    /// Keeps `e` (the first one) and returns the store error the pipeline sees.
    fn fail(&self, e: NodeError) -> StoreError {
        let kind = match &e {
            NodeError::Full(_) => StoreErrorKind::Full,
            NodeError::InvalidRequest(_) | NodeError::ObjectDeleted(_) => StoreErrorKind::Refused,
            NodeError::NoHolder { .. }
            | NodeError::TooFewNodes { .. }
            | NodeError::NoDeleteQuorum { .. }
            | NodeError::NoHolderQuorum { .. } => StoreErrorKind::Unavailable,
            _ => StoreErrorKind::Other,
        };
        let message = e.to_string();
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(e);
        StoreError::new(kind, message)
    }

    /// Refuses an object whose expiry passed (this node's clock) before it could be stored.
    fn check_expiry(&self, object: &[u8]) -> Result<(), StoreError> {
        let expires = voldisefs_crypto::stored_expiry(object).unwrap_or(0);
        if voldisefs_crypto::expired(expires, self.cluster.now()) {
            let behind = self.cluster.clock().correction();
            let message = if behind > 0 {
                format!(
                    "this node's clock runs {behind} s behind its peers' and stamps expiries by \
                     its own clock, so this file would be expired on arrival; fix the node's \
                     clock (NTP) or ask for an expiry longer than {behind} s"
                )
            } else {
                "the file's expiry passed before it was stored; ask for a longer one".into()
            };
            return Err(self.fail(NodeError::InvalidRequest(message)));
        }
        Ok(())
    }
}

/// The replication layer's latency-sized window (see `Cluster::window`).
struct ClusterWindow(crate::replication::Window);

impl Window for ClusterWindow {
    fn size(&mut self) -> usize {
        self.0.size()
    }
}

impl ObjectStore for ClusterStore {
    fn put(&self, objects: Vec<Object>) -> BoxFuture<'_, Result<Stored, StoreError>> {
        use futures_util::StreamExt as _;
        Box::pin(async move {
            for object in &objects {
                self.check_expiry(&object.bytes)?;
            }
            let replicas = self.cluster.replicas();
            let mut puts = futures_util::stream::iter(objects)
                .map(|object| {
                    self.cluster
                        .put(ChunkId::from_bytes(object.id), object.bytes)
                })
                .buffer_unordered(BATCH_PARALLELISM);
            let mut copies = usize::MAX;
            while let Some(holders) = puts.next().await {
                copies = copies.min(holders.map_err(|e| self.fail(e))?.len());
            }
            Ok(Stored {
                copies: copies.min(replicas),
                wanted: replicas,
            })
        })
    }

    fn put_stripe(&self, stripe: EncodedStripe) -> BoxFuture<'_, Result<Stored, StoreError>> {
        Box::pin(async move {
            self.check_expiry(&stripe.descriptor)?;
            let parsed =
                Stripe::parse(&stripe.descriptor).map_err(|e| self.fail(NodeError::Crypto(e)))?;
            let redundancy: Redundancy = parsed.redundancy();
            self.cluster
                .stripes()
                .put(StripeUpload {
                    redundancy,
                    id: ChunkId::from_bytes(stripe.id),
                    descriptor: bytes::Bytes::from(stripe.descriptor),
                    ids: stripe
                        .shards
                        .iter()
                        .map(|s| ChunkId::from_bytes(content_id(s)))
                        .collect(),
                    shards: stripe.shards.into_iter().map(bytes::Bytes::from).collect(),
                })
                .await
                .map_err(|e| self.fail(e))?;
            // Every shard found its node: as good as the copies wanted.
            let replicas = self.cluster.replicas();
            Ok(Stored {
                copies: replicas,
                wanted: replicas,
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
            let chunk = ChunkId::from_bytes(id);
            if kind == ObjectKind::Object {
                // This node's own copy was checked when it was stored.
                if let Some(bytes) = self.cluster.local_copy(&chunk) {
                    return Ok(Fetched::Verified(bytes));
                }
            }
            let fetch = async {
                match kind {
                    // Checked here against the id (a holder serving other bytes is demoted
                    // and the next asked), so the pipeline need not hash them again.
                    ObjectKind::Object => self
                        .cluster
                        .fetch(chunk, &[], move |bytes: bytes::Bytes| {
                            if content_id(&bytes) == id {
                                Ok(bytes)
                            } else {
                                Err(AttemptError::Next(HolderError::Failed(
                                    "served bytes that do not match the id".into(),
                                )))
                            }
                        })
                        .await
                        .map(|f| f.map(Fetched::Verified)),
                    // Shards checked against the descriptor; the pipeline checks the tag.
                    ObjectKind::Stripe => self
                        .cluster
                        .stripes()
                        .fetch(chunk, &[])
                        .await
                        .map(|f| f.map(|joined| Fetched::Verified(joined.into()))),
                }
            };
            match tokio::time::timeout(self.deadline, fetch).await {
                Ok(Ok(crate::replication::Fetched::Found(found))) => Ok(found),
                Ok(Ok(_)) | Err(_) => Ok(Fetched::Missing),
                Ok(Err(e)) => Err(self.fail(e)),
            }
        })
    }

    fn delete(
        &self,
        key: DeleteKey,
        ids: Vec<[u8; 32]>,
        scope: DeleteScope,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let ids: Vec<ChunkId> = ids.into_iter().map(ChunkId::from_bytes).collect();
            let (everywhere, spread) = match scope {
                DeleteScope::Everywhere => (true, self.cluster.replicas()),
                DeleteScope::Holders { nodes } => (false, nodes),
            };
            self.cluster
                .delete_confirmed(&key, &ids, everywhere, spread)
                .await
                .map_err(|e| self.fail(e))?;
            Ok(())
        })
    }

    fn window(&self, base: usize, chunk_len: usize, direction: Direction) -> Box<dyn Window> {
        let what = match direction {
            Direction::Put => Failure::Put,
            Direction::Get => Failure::Get,
        };
        Box::new(ClusterWindow(self.cluster.window(base, chunk_len, what)))
    }
}
