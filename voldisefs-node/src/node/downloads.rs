//! Downloads through the node: opening a file or collection, the tracked body that logs and
//! times a transfer (and burns a "once" file after its first complete download), stat, and
//! delete.

use bytes::Bytes;
use futures_util::Stream;
use voldisefs_crypto::{FileKind, Password};
use voldisefs_proto::FileId;

use super::{Node, TRANSFER_LOG};
use crate::NodeError;
use crate::replication::TransferGuard;
use crate::transfer::download::{self, Access, ByteRange, ByteStream, Download};

/// What [`Node::stat`] tells about a file or collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// Its name (a collection's: the folder's, or what the uploader chose).
    pub name: String,
    /// Its size in bytes (a collection's: of its listing).
    pub size: u64,
    /// File or collection.
    pub kind: FileKind,
    /// Creation time, unix seconds.
    pub created: u64,
    /// When it expires, unix seconds (`None`: never).
    pub expires: Option<u64>,
    /// Its read key: opens it (and, for a collection, its files) with no Argon2id.
    pub read_key: voldisefs_crypto::ReadKey,
}

/// A download's body that logs one line and records its duration when it ends: completely
/// (`ok`), on an error (`error`), or dropped part-way by the client (`aborted`).
struct TrackedBody {
    inner: ByteStream,
    id: FileId,
    size: u64,
    started: tokio::time::Instant,
    node: Node,
    /// Plaintext bytes handed out so far.
    delivered: u64,
    finished: bool,
    /// A "once" file: deleted everywhere once the whole body went out.
    burn: Option<download::Burn>,
    _transfer: TransferGuard,
}

impl TrackedBody {
    fn finish(&mut self, outcome: &'static str) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let elapsed = self.started.elapsed();
        self.node
            .inner
            .metrics
            .download(outcome, elapsed.as_secs_f64());
        let duration_ms = elapsed.as_millis() as u64;
        tracing::info!(target: TRANSFER_LOG, file = %self.id, size = self.size, duration_ms, outcome, "download");
        if let (Some(burn), "ok") = (self.burn.take(), outcome) {
            self.node.burn(self.id, burn);
        }
    }
}

impl Stream for TrackedBody {
    type Item = Result<Bytes, NodeError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let next = this.inner.as_mut().poll_next(cx);
        match &next {
            std::task::Poll::Ready(Some(Ok(piece))) => {
                this.delivered += piece.len() as u64;
                // HTTP stops polling once Content-Length bytes went out: that is the end.
                if this.delivered == this.size {
                    this.finish("ok");
                }
            }
            std::task::Poll::Ready(None) => this.finish("ok"),
            std::task::Poll::Ready(Some(Err(_))) => this.finish("error"),
            std::task::Poll::Pending => {}
        }
        next
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        // An empty body is never polled (Content-Length: 0): dropped, it was complete.
        let outcome = if self.delivered == self.size {
            "ok"
        } else {
            "aborted"
        };
        self.finish(outcome);
    }
}
impl Node {
    /// Opens file `id` with `password` and returns its name, size and streaming body
    /// ([`NodeError::IsCollection`] for a collection's id).
    pub async fn download(&self, id: FileId, password: Password) -> Result<Download, NodeError> {
        self.download_kind(id, password.into(), FileKind::File, None)
            .await
    }

    /// Like [`Node::download`], but only the bytes `range` selects (fetching and decrypting
    /// only the chunks it touches); [`NodeError::RangeNotSatisfiable`] when it selects nothing.
    pub async fn download_range(
        &self,
        id: FileId,
        password: Password,
        range: Option<ByteRange>,
    ) -> Result<Download, NodeError> {
        self.download_kind(id, password.into(), FileKind::File, range)
            .await
    }

    /// Like [`Node::download_range`], opened by `access`: the password, or the file's read
    /// key (what a share link carries: no Argon2id run, no right to delete).
    pub async fn download_with(
        &self,
        id: FileId,
        access: Access,
        range: Option<ByteRange>,
    ) -> Result<Download, NodeError> {
        self.download_kind(id, access, FileKind::File, range).await
    }

    /// Opens file or collection `id` with `access` and says what it is, without fetching any
    /// chunk (one record fetch and one key derivation or cache hit): [`NodeError::NotFound`],
    /// [`NodeError::WrongPassword`] as a download would.
    pub async fn stat(&self, id: FileId, access: Access) -> Result<FileStat, NodeError> {
        self.check_running()?;
        let opened =
            download::open_record(&self.inner.cluster, &self.inner.kdf, id, access).await?;
        let manifest = opened.opener.manifest();
        Ok(FileStat {
            name: manifest.name().to_string(),
            size: manifest.size(),
            kind: manifest.kind(),
            created: manifest.created(),
            expires: Some(opened.opener.expires()).filter(|e| *e != 0),
            read_key: opened.opener.read_key().clone(),
        })
    }

    /// Deletes a "once" file everywhere, in the background: its record first (so nobody can
    /// start another download), then its chunks.
    fn burn(&self, id: FileId, burn: download::Burn) {
        let cluster = self.inner.cluster.clone();
        self.inner.tracker.spawn(async move {
            cluster.delete(&burn.key, &[burn.record], &[], true).await;
            cluster
                .delete_spread(&burn.key, &burn.chunks, &[], false, burn.spread)
                .await;
            tracing::info!(file = %id, "read once: deleted everywhere");
        });
    }

    /// [`Node::download_range`] of a record whose manifest says `kind`.
    pub(crate) async fn download_kind(
        &self,
        id: FileId,
        access: Access,
        kind: FileKind,
        range: Option<ByteRange>,
    ) -> Result<Download, NodeError> {
        self.check_running()?;
        let transfer = self.inner.repairer.user_transfer();
        let config = &self.inner.config;
        let started = tokio::time::Instant::now();
        let opened = download::download(
            &self.inner.cluster,
            &self.inner.kdf,
            id,
            access,
            kind,
            range,
            config.transfer_parallelism,
            config.fetch_deadline(),
        )
        .await;
        let mut download = match opened {
            Ok(download) => download,
            Err(e) => {
                let elapsed = started.elapsed();
                self.inner.metrics.download("error", elapsed.as_secs_f64());
                let duration_ms = elapsed.as_millis() as u64;
                tracing::warn!(target: TRANSFER_LOG, file = %id, duration_ms, outcome = "error", error = %e, "download");
                return Err(e);
            }
        };
        // The transfer counts, and is timed, until its body ends or is dropped.
        let body = std::mem::replace(&mut download.body, Box::pin(futures_util::stream::empty()));
        download.body = Box::pin(TrackedBody {
            inner: body,
            id,
            size: download
                .range
                .map_or(download.size, |(first, last)| last - first + 1),
            started,
            node: self.internal(),
            delivered: 0,
            finished: false,
            burn: download.burn.take(),
            _transfer: transfer,
        });
        Ok(download)
    }

    /// Downloads a whole file into memory (convenience over [`Node::download`]; the result
    /// is plaintext, so prefer streaming for anything large).
    pub async fn download_bytes(
        &self,
        id: FileId,
        password: Password,
    ) -> Result<(String, Vec<u8>), NodeError> {
        use futures_util::TryStreamExt;
        let download = self.download(id, password).await?;
        let name = download.name;
        let data = download
            .body
            .try_fold(Vec::new(), |mut all, piece| async move {
                all.extend_from_slice(&piece);
                Ok(all)
            })
            .await?;
        Ok((name, data))
    }

    /// Deletes file `id` for good, after proving the password opens it: its record is
    /// dropped on every live node and its chunks on their ranked holders, all of which keep
    /// tombstones so neither a late put nor repair brings them back; drops it from this node's
    /// index. A collection's files go first (those already gone are skipped), then the
    /// collection itself. Returns the number of chunks (records included) deleted; refused
    /// ([`NodeError::NoDeleteQuorum`]) while this node cannot reach a majority of the network.
    pub async fn delete(&self, id: FileId, password: Password) -> Result<u64, NodeError> {
        self.check_running()?;
        let cluster = &self.inner.cluster;
        let opened =
            download::open_record(cluster, &self.inner.kdf, id, password.clone().into()).await?;
        let mut members = 0;
        if opened.opener.manifest().kind() == FileKind::Collection {
            let listing = self.collection(id, password.clone()).await?;
            for file in &listing.files {
                match Box::pin(self.delete(file.id, password.clone())).await {
                    Ok(n) => members += n,
                    Err(NodeError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // The record first: once it is gone the file cannot be read, whatever happens next.
        let key = opened.opener.delete_key().ok_or(NodeError::Internal(
            "a password open always has the delete key".into(),
        ))?;
        // Refused when this node cannot reach a majority of the network (see
        // `Cluster::delete_confirmed`): then nothing is deleted but what it reached.
        cluster
            .delete_confirmed(key, &[id.record_chunk()], true, cluster.replicas())
            .await?;
        let spread = opened
            .opener
            .manifest()
            .redundancy()
            .map_or(0, voldisefs_crypto::Redundancy::nodes);
        cluster
            .delete_confirmed(key, &opened.chunk_ids, false, spread)
            .await?;
        self.lock_index().retain(|e| e.id != id);
        let deleted = opened.chunk_ids.len() as u64 + 1 + members;
        tracing::info!(file = %id, deleted, "file deleted");
        Ok(deleted)
    }
}
