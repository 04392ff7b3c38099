//! Uploads through the node: the redundancy and expiry an upload gets, the task that runs it,
//! settling its chunks by proof afterwards, and its entry in the node's index.

use std::sync::PoisonError;

use bytes::Bytes;
use futures_util::Stream;
use tokio_util::sync::CancellationToken;
use voldisefs_crypto::{DeleteKey, FileKind, Password};

use super::{Node, TRANSFER_LOG};
use crate::NodeError;
use crate::status::{IndexEntry, IndexKind};
use crate::transfer::upload::{
    self, Keying, UploadReceipt, UploadRequest, UploadSettings, Uploaded,
};

/// Options of [`Node::upload_with_options`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadOptions {
    /// Delete the file everywhere this long after the upload (`None`: the node's default).
    pub expires_after: Option<std::time::Duration>,
    /// Delete the file everywhere after its first complete download ("burn after reading").
    pub once: bool,
    /// How the file's chunks are kept (`None`: the node's default, see
    /// [`NodeConfig::redundancy`](crate::NodeConfig::redundancy)).
    pub redundancy: Option<voldisefs_crypto::Redundancy>,
}

/// How an upload goes into the node's index.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Indexed {
    /// As a file.
    File,
    /// As a collection of `files` files of `size` bytes in all.
    Collection { size: u64, files: u64 },
}

/// The shortest expiry an upload may ask for: less would expire while it is stored.
pub const MIN_EXPIRY_SECS: u64 = 2;
/// Wait after an upload before its holders are checked by proof.
pub(super) const SETTLE_DELAY: std::time::Duration = std::time::Duration::from_millis(500);
/// Most object API objects waiting to be settled.
const MAX_SETTLING: usize = 65_536;

impl Node {
    /// Uploads `body` as a file named `name` under `password`: chunks are sealed here and
    /// spread over their holders; the file is added to this node's index.
    ///
    /// The upload runs as a task the node owns: if this future is dropped before it ends (the
    /// client went away), or the node shuts down, the upload stops and deletes what it stored.
    pub async fn upload<S, E>(
        &self,
        name: &str,
        password: Password,
        body: S,
    ) -> Result<UploadReceipt, NodeError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        self.upload_kind(name, password, FileKind::File, body).await
    }

    /// Uploads `body` as a record of `kind`, as [`Node::upload`] does for a file (only files
    /// go into the index). A [`FileKind::Collection`] body is stored as given: readers check
    /// every collection whoever sealed it, and this is how tests plant hostile ones. Make real
    /// collections with [`Node::batch`].
    pub async fn upload_kind<S, E>(
        &self,
        name: &str,
        password: Password,
        kind: FileKind,
        body: S,
    ) -> Result<UploadReceipt, NodeError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        self.upload_with_options(name, password, kind, UploadOptions::default(), body)
            .await
    }

    /// Like [`Node::upload_kind`], with `options`: an expiry (`None`: the node's
    /// `default_expiry`, else its `max_expiry`, else never; every holder drops the file's
    /// chunks and record then, and no reader opens it after; refused when longer than the
    /// node's `max_expiry`), and "once" (the gateway that serves the first complete download
    /// deletes the file everywhere afterwards).
    pub async fn upload_with_options<S, E>(
        &self,
        name: &str,
        password: Password,
        kind: FileKind,
        options: UploadOptions,
        body: S,
    ) -> Result<UploadReceipt, NodeError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let request = UploadRequest {
            name: name.to_string(),
            kind,
            keying: Keying::Password(password),
            expires: self.expiry(options.expires_after)?,
            once: options.once,
            redundancy: self.redundancy(options.redundancy)?,
        };
        let indexed = (kind == FileKind::File).then_some(Indexed::File);
        Ok(self.upload_with(request, body, indexed).await?.receipt)
    }

    /// The redundancy of an upload asking for `asked`: checked, or the node's default;
    /// [`NodeError::TooFewNodes`] when `rs:K+M` needs more nodes than are live now.
    /// `replicas:N` must be this network's count: holders keep that many copies of every
    /// replicated object whoever uploaded it (they see no manifest), so another count could
    /// not be kept; `rs:K+M` is per file.
    pub fn redundancy(
        &self,
        asked: Option<voldisefs_crypto::Redundancy>,
    ) -> Result<voldisefs_crypto::Redundancy, NodeError> {
        use voldisefs_crypto::Redundancy;
        // Node::start refused a count outside 1..=MAX_SHARDS.
        let replicas = self.inner.config.replicas;
        let spec = asked
            .or(self.inner.config.redundancy)
            .unwrap_or(Redundancy::Replicas(replicas as u8))
            .validate()
            .map_err(|e| NodeError::RedundancyUnavailable(e.to_string()))?;
        match spec {
            Redundancy::Replicas(n) if usize::from(n) != replicas => {
                Err(NodeError::RedundancyUnavailable(format!(
                    "this network keeps {replicas} copies of replicated files, so replicas:{n} is not available; use replicas:{replicas}, or rs:K+M for another overhead"
                )))
            }
            // Refused before the body is read (each stripe checks again as it is placed).
            Redundancy::ErasureCoded { .. } if self.inner.cluster.nodes().len() < spec.nodes() => {
                Err(NodeError::TooFewNodes {
                    redundancy: spec,
                    needed: spec.nodes(),
                    live: self.inner.cluster.nodes().len(),
                })
            }
            spec => Ok(spec),
        }
    }

    /// The expiry (unix seconds, 0: never) of an upload asking for `after`, by this node's
    /// defaults and limit.
    pub(crate) fn expiry(
        &self,
        after: Option<std::time::Duration>,
    ) -> Result<upload::Expiry, NodeError> {
        let config = &self.inner.config;
        let after = match (after, config.max_expiry) {
            (Some(after), Some(max)) if after > max => {
                return Err(NodeError::InvalidRequest(format!(
                    "this node keeps files at most {} s; ask for less",
                    max.as_secs()
                )));
            }
            (Some(after), _) => Some(after),
            (None, max) => match (config.default_expiry, max) {
                (Some(default), Some(max)) => Some(default.min(max)),
                (default, max) => default.or(max),
            },
        };
        match after {
            None => Ok(upload::Expiry::Never),
            Some(after) if after.as_secs() < MIN_EXPIRY_SECS => Err(NodeError::InvalidRequest(
                format!("an expiry must be at least {MIN_EXPIRY_SECS} seconds away"),
            )),
            Some(after) => Ok(upload::Expiry::After(after.as_secs())),
        }
    }

    /// Runs one upload as a task the node owns (see [`Node::upload`]), adding it to the index
    /// as `indexed` says once it succeeded.
    pub(crate) async fn upload_with<S, E>(
        &self,
        request: UploadRequest,
        body: S,
        indexed: Option<Indexed>,
    ) -> Result<Uploaded, NodeError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        self.check_running()?;
        let token = self.inner.work.child_token();
        // Cancels the upload if the caller stops waiting for it.
        let cancel_on_drop = token.clone().drop_guard();
        let (done, result) = tokio::sync::oneshot::channel();
        let node = self.internal();
        self.inner.tracker.spawn(async move {
            let result = node.run_upload(request, body, token, indexed).await;
            // The caller may be gone; the upload cleaned up after itself either way.
            let _ = done.send(result);
        });
        let result = result
            .await
            .unwrap_or_else(|_| Err(NodeError::Internal("upload task ended early".into())));
        cancel_on_drop.disarm();
        result
    }

    async fn run_upload<S, E>(
        &self,
        request: UploadRequest,
        body: S,
        token: CancellationToken,
        indexed: Option<Indexed>,
    ) -> Result<Uploaded, NodeError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let _transfer = self.inner.repairer.user_transfer();
        let settings = UploadSettings {
            gate: &self.inner.kdf,
            kdf: self.inner.config.kdf,
            chunk_size: self.inner.config.chunk_size,
            parallelism: self.inner.config.transfer_parallelism,
        };
        let started = tokio::time::Instant::now();
        let index_name = request.name.clone();
        let result = upload::upload(&self.inner.cluster, settings, request, body, token).await;
        if let Ok(uploaded) = &result {
            self.settle_later(uploaded.ids.clone());
        }
        let elapsed = started.elapsed();
        let duration_ms = elapsed.as_millis() as u64;
        match &result {
            Ok(Uploaded { receipt, .. }) => {
                self.inner.metrics.upload("ok", elapsed.as_secs_f64());
                tracing::info!(target: TRANSFER_LOG, file = %receipt.id, size = receipt.size, chunks = receipt.chunks, copies = receipt.copies, duration_ms, outcome = "ok", "upload");
                if receipt.copies < receipt.replicas {
                    tracing::warn!(file = %receipt.id, copies = receipt.copies, replicas = receipt.replicas, "file stored with fewer copies than wanted: too few live nodes; repair adds copies as nodes join");
                }
                let (kind, size, files) = match indexed {
                    None => return result,
                    Some(Indexed::File) => (IndexKind::File, receipt.size, None),
                    Some(Indexed::Collection { size, files }) => {
                        (IndexKind::Collection, size, Some(files))
                    }
                };
                let entry = IndexEntry {
                    id: receipt.id,
                    name: index_name,
                    kind,
                    size,
                    chunks: receipt.chunks,
                    files,
                    created: receipt.created,
                    expires: receipt.expires,
                };
                crate::status::push_capped(
                    &mut self.lock_index(),
                    entry,
                    crate::status::MAX_INDEX_ENTRIES,
                    crate::status::MAX_INDEX_NAME_BYTES,
                );
            }
            Err(e) => {
                let outcome = if matches!(e, NodeError::Cancelled) {
                    "cancelled"
                } else {
                    "error"
                };
                self.inner.metrics.upload(outcome, elapsed.as_secs_f64());
                tracing::warn!(target: TRANSFER_LOG, duration_ms, outcome, error = %e, "upload");
            }
        }
        result
    }

    /// Queues objects stored through the object API for the next settling round (within
    /// [`SETTLE_DELAY`]): their holders are checked by proof and this node's extra copies
    /// dropped, as after an upload. Past [`MAX_SETTLING`] queued, they wait for the next
    /// repair sweep.
    pub(crate) fn settle_soon(&self, ids: impl IntoIterator<Item = voldisefs_proto::ChunkId>) {
        let mut queue = self
            .inner
            .settling
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let room = MAX_SETTLING.saturating_sub(queue.len());
        queue.extend(ids.into_iter().take(room));
    }

    /// Has repair check the holders of a finished upload by proof shortly after it ended (and
    /// drop this node's extra copies once they proved theirs).
    fn settle_later(&self, ids: Vec<voldisefs_proto::ChunkId>) {
        let repairer = self.inner.repairer.clone();
        let token = self.inner.work.clone();
        self.inner.tracker.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = async {
                    tokio::time::sleep(SETTLE_DELAY).await;
                    repairer.settle(&ids).await;
                } => {}
            }
        });
    }

    /// Uploads an in-memory buffer (convenience over [`Node::upload`]).
    pub async fn upload_bytes(
        &self,
        name: &str,
        password: Password,
        data: Bytes,
    ) -> Result<UploadReceipt, NodeError> {
        let body = futures_util::stream::iter([Ok::<Bytes, std::convert::Infallible>(data)]);
        self.upload(name, password, body).await
    }

    /// Deletes, in the background, what finished uploads stored (a batch that never
    /// finished), unless the node is stopping anyway.
    pub(crate) fn forget_later(&self, stored: Vec<(DeleteKey, Vec<voldisefs_proto::ChunkId>)>) {
        if self.check_running().is_err() {
            return;
        }
        let cluster = self.inner.cluster.clone();
        self.inner.tracker.spawn(async move {
            let files = stored.len();
            for (key, ids) in stored {
                cluster
                    .delete_spread(&key, &ids, &[], false, voldisefs_crypto::MAX_SHARDS)
                    .await;
            }
            tracing::info!(files, "removed the files of an unfinished batch");
        });
    }
}
