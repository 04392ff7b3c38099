//! [`Node`]: a running Voldisefs node and its public API.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::Stream;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use voldisefs_crypto::Password;
use voldisefs_net::Network;
use voldisefs_proto::{FileId, NodeId, PeerInfo};
use voldisefs_store::{ChunkStore, MemoryStore, StoreStats};

use crate::cluster::Cluster;
use crate::download::ByteStream;
use crate::download::{self, Download};
use crate::handler::StoreHandler;
use crate::metrics::Metrics;
use crate::repair::{Mode, Repairer};
use crate::upload::{self, UploadReceipt, UploadSettings};
use crate::{NodeConfig, NodeError};

/// One entry of the node's local index of files uploaded through it. No names: the index
/// holds nothing a password protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IndexEntry {
    /// The file's id.
    pub id: FileId,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// Upload time, seconds since the Unix epoch.
    pub created: u64,
}

/// What a node reports about itself and its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkStatus {
    /// This node.
    pub node: PeerInfo,
    /// Every known peer with its state.
    pub peers: Vec<PeerStatus>,
    /// `keyed` (peer links encrypted and authenticated with the network key) or `open`.
    pub security: &'static str,
    /// This node's store usage.
    pub store: StoreStatus,
    /// This node's repair activity.
    pub repair: RepairStatus,
}

/// One peer in a [`NetworkStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// The peer's id.
    pub id: NodeId,
    /// Its peer address.
    pub addr: SocketAddr,
    /// `alive`, `suspect`, `dead` or `left`.
    pub state: &'static str,
}

/// Repair activity in a [`NetworkStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RepairStatus {
    /// Chunks this node still has to copy to a holder (as of its last sweep).
    pub backlog: u64,
    /// Copies made by repair and hand-off so far.
    pub pushed: u64,
    /// Extra copies dropped after their holders confirmed theirs.
    pub dropped: u64,
    /// Copies that failed and were retried.
    pub failed: u64,
    /// Sweeps completed.
    pub sweeps: u64,
}

/// Store usage in a [`NetworkStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StoreStatus {
    /// Chunks held.
    pub chunks: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Byte capacity.
    pub capacity: u64,
}

impl From<StoreStats> for StoreStatus {
    fn from(s: StoreStats) -> Self {
        Self {
            chunks: s.chunks,
            bytes: s.bytes,
            capacity: s.capacity,
        }
    }
}

/// Shared state behind a [`Node`] handle.
#[derive(Debug)]
struct Inner {
    config: NodeConfig,
    cluster: Cluster,
    index: Mutex<Vec<IndexEntry>>,
    http_addr: Option<SocketAddr>,
    token: CancellationToken,
    /// The HTTP server task; aborted if it does not stop within [`HTTP_GRACE`].
    http_task: Mutex<Option<AbortOnDropHandle<()>>>,
    repairer: Repairer,
    repair_task: Mutex<Option<AbortOnDropHandle<()>>>,
    metrics: Metrics,
}

/// A download's body that logs one line and records its duration when it ends: completely
/// (`ok`), on an error (`error`), or dropped part-way by the client (`aborted`).
struct TrackedBody {
    inner: ByteStream,
    id: FileId,
    size: u64,
    started: std::time::Instant,
    node: Node,
    /// Plaintext bytes handed out so far.
    delivered: u64,
    finished: bool,
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
        tracing::info!(file = %self.id, size = self.size, duration_ms, outcome, "download");
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
        self.finish("aborted");
    }
}

/// Counts a user transfer in progress for as long as it lives (repair yields to them).
struct TransferGuard(Arc<AtomicUsize>);

impl TransferGuard {
    fn new(active: &Arc<AtomicUsize>) -> Self {
        active.fetch_add(1, Ordering::Relaxed);
        Self(active.clone())
    }
}

impl Drop for TransferGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long shutdown waits for HTTP transfers in progress before cutting them off.
const HTTP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// A running node: peer server, chunk store, pipelines and (optionally) the HTTP API.
/// Cheap to clone; every clone is the same node.
#[derive(Debug, Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl Node {
    /// Binds the peer and HTTP listeners, starts serving, and joins the network through
    /// `config.bootstrap` (if any). Fails if a listener cannot be bound or if bootstrap peers
    /// were given and none could be reached.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        if let Some(addr) = config.http.filter(|a| !a.ip().is_loopback()) {
            if config.api_token.is_none() {
                return Err(NodeError::Config(format!(
                    "refusing to serve the HTTP API on {addr} without an API token: anyone who \
                     can reach that address could list this node's files, see the network and \
                     use its storage; give an API token (--api-token-file) or bind the API to \
                     127.0.0.1"
                )));
            }
        }
        let peer_listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| NodeError::Io {
                    context: format!("cannot listen for peers on {}", config.listen),
                    source,
                })?;
        let http_listener = match config.http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| NodeError::Io {
                        context: format!("cannot serve HTTP on {addr}"),
                        source,
                    })?,
            ),
            None => None,
        };
        let http_addr = match &http_listener {
            Some(l) => Some(l.local_addr().map_err(|source| NodeError::Io {
                context: "cannot read the HTTP address".into(),
                source,
            })?),
            None => None,
        };
        let store = MemoryStore::new(config.capacity);
        let net = Network::start(
            peer_listener,
            config.advertise,
            Arc::new(StoreHandler {
                store: store.clone(),
            }),
            config.net.clone(),
        )?;
        let cluster = Cluster {
            net,
            store,
            replicas: config.replicas.max(1),
        };
        let repairer = Repairer {
            cluster: cluster.clone(),
            counters: Arc::default(),
            active_transfers: Arc::default(),
            bandwidth: config.repair_bandwidth,
        };
        let metrics = Metrics::new(cluster.clone(), repairer.counters.clone());
        let node = Node {
            inner: Arc::new(Inner {
                metrics,
                cluster,
                repairer,
                repair_task: Mutex::new(None),
                config,
                index: Mutex::new(Vec::new()),
                http_addr,
                token: CancellationToken::new(),
                http_task: Mutex::new(None),
            }),
        };
        if let Some(listener) = http_listener {
            let router = crate::http::router(node.clone());
            let token = node.inner.token.clone();
            let task = tokio::spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(token.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            });
            *node
                .inner
                .http_task
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(AbortOnDropHandle::new(task));
        }
        let repair = node
            .inner
            .repairer
            .clone()
            .run(node.inner.config.repair_interval, node.inner.token.clone());
        *node
            .inner
            .repair_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some(AbortOnDropHandle::new(tokio::spawn(repair)));
        if !node.inner.config.bootstrap.is_empty() {
            let seeds = node.inner.config.bootstrap.clone();
            if let Err(e) = node.inner.cluster.net.bootstrap(&seeds).await {
                node.shutdown().await;
                return Err(e.into());
            }
        }
        if !node.network().is_keyed() {
            tracing::warn!(
                peer_addr = %node.peer_addr(),
                "OPEN MODE: peer links are neither encrypted nor authenticated; anyone who can \
                 reach the peer port can join, list peers, store and fetch chunks (file contents \
                 stay encrypted). Use a network key (voldisefs keygen, --network-key-file)."
            );
        }
        tracing::info!(
            node = %node.id(),
            peer_addr = %node.peer_addr(),
            http = ?node.http_addr(),
            peers = node.inner.cluster.net.membership().len(),
            "node started"
        );
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.inner.cluster.local().id
    }

    /// The address peers reach this node at.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.cluster.local().addr
    }

    /// The bound address of the HTTP API, if it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.inner.http_addr
    }

    /// The configuration the node was started with.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// The peer network (membership, requests) of this node.
    pub fn network(&self) -> &Network {
        &self.inner.cluster.net
    }

    /// Uploads `body` as a file named `name` under `password`: chunks are sealed here and
    /// spread over their holders; the file is added to this node's index.
    pub async fn upload<S, E>(
        &self,
        name: &str,
        password: Password,
        body: S,
    ) -> Result<UploadReceipt, NodeError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.check_running()?;
        let _transfer = TransferGuard::new(&self.inner.repairer.active_transfers);
        let settings = UploadSettings {
            kdf: self.inner.config.kdf,
            chunk_size: self.inner.config.chunk_size,
            parallelism: self.inner.config.transfer_parallelism,
        };
        let started = std::time::Instant::now();
        let result = upload::upload(
            &self.inner.cluster,
            settings,
            name.to_string(),
            password,
            body,
        )
        .await;
        let elapsed = started.elapsed();
        let duration_ms = elapsed.as_millis() as u64;
        match &result {
            Ok(receipt) => {
                self.inner.metrics.upload("ok", elapsed.as_secs_f64());
                tracing::info!(file = %receipt.id, size = receipt.size, chunks = receipt.chunks, duration_ms, outcome = "ok", "upload");
                self.lock_index().push(IndexEntry {
                    id: receipt.id,
                    size: receipt.size,
                    chunks: receipt.chunks,
                    created: receipt.created,
                });
            }
            Err(e) => {
                self.inner.metrics.upload("error", elapsed.as_secs_f64());
                tracing::warn!(duration_ms, outcome = "error", error = %e, "upload");
            }
        }
        result
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

    /// Opens file `id` with `password` and returns its name, size and streaming body.
    pub async fn download(&self, id: FileId, password: Password) -> Result<Download, NodeError> {
        self.check_running()?;
        let transfer = TransferGuard::new(&self.inner.repairer.active_transfers);
        let config = &self.inner.config;
        let started = std::time::Instant::now();
        let opened = download::download(
            &self.inner.cluster,
            id,
            password,
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
                tracing::warn!(file = %id, duration_ms, outcome = "error", error = %e, "download");
                return Err(e);
            }
        };
        // The transfer counts, and is timed, until its body ends or is dropped.
        let body = std::mem::replace(&mut download.body, Box::pin(futures_util::stream::empty()));
        download.body = Box::pin(TrackedBody {
            inner: body,
            id,
            size: download.size,
            started,
            node: self.clone(),
            delivered: 0,
            finished: false,
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

    /// Deletes file `id` from every node that holds its chunks or record, after proving the
    /// password opens it; drops it from this node's index. Returns the number of chunks
    /// (record included) deleted.
    pub async fn delete(&self, id: FileId, password: Password) -> Result<u64, NodeError> {
        self.check_running()?;
        let cluster = &self.inner.cluster;
        let opened = download::open_record(cluster, id, password).await?;
        let holders = cluster.locate(&opened.chunk_ids).await;
        let mut deleted = 0u64;
        for (chunk, holders) in opened.chunk_ids.iter().zip(&holders) {
            if cluster.delete(*chunk, holders).await > 0 {
                deleted += 1;
            }
        }
        if cluster
            .delete(id.record_chunk(), &opened.record_holders)
            .await
            > 0
        {
            deleted += 1;
        }
        self.lock_index().retain(|e| e.id != id);
        tracing::info!(file = %id, deleted, "file deleted");
        Ok(deleted)
    }

    /// This node's metrics in the OpenMetrics text format (what `GET /metrics` serves).
    pub fn metrics_text(&self) -> String {
        // Writing into a String cannot fail.
        self.inner.metrics.render().unwrap_or_default()
    }

    /// Files uploaded through this node, oldest first.
    pub fn files(&self) -> Vec<IndexEntry> {
        self.lock_index().clone()
    }

    /// This node, its peers and its store usage.
    pub fn status(&self) -> NetworkStatus {
        let net = &self.inner.cluster.net;
        NetworkStatus {
            node: net.local(),
            peers: net
                .membership()
                .snapshot()
                .into_iter()
                .map(|e| PeerStatus {
                    id: e.info.id,
                    addr: e.info.addr,
                    state: e.state.as_str(),
                })
                .collect(),
            security: if net.is_keyed() { "keyed" } else { "open" },
            store: self.inner.cluster.store.stats().into(),
            repair: {
                let c = &self.inner.repairer.counters;
                RepairStatus {
                    backlog: c.backlog.load(Ordering::Relaxed),
                    pushed: c.pushed.load(Ordering::Relaxed),
                    dropped: c.dropped.load(Ordering::Relaxed),
                    failed: c.failed.load(Ordering::Relaxed),
                    sweeps: c.sweeps.load(Ordering::Relaxed),
                }
            },
        }
    }

    /// Ids of the live nodes (this one included) placement currently uses.
    pub fn live_nodes(&self) -> Vec<NodeId> {
        self.inner
            .cluster
            .nodes()
            .into_iter()
            .map(|p| p.id)
            .collect()
    }

    /// Stops the node gracefully: tells its peers it leaves, hands every chunk it holds to
    /// the holders that should have it (within `handoff_deadline`, logging what it could not
    /// hand off), stops the HTTP API and peer server, waits for their tasks, and wipes the
    /// store. Idempotent.
    pub async fn shutdown(&self) {
        if self.inner.token.is_cancelled() {
            return;
        }
        self.inner.token.cancel();
        self.take_task(&self.inner.repair_task);
        let net = &self.inner.cluster.net;
        net.announce_leave().await;
        let held = self.inner.cluster.store.stats().chunks;
        if held > 0 {
            let deadline = tokio::time::Instant::now() + self.inner.config.handoff_deadline;
            let outcome = self
                .inner
                .repairer
                .sweep(Mode::Handoff, Some(deadline))
                .await;
            if outcome.failed + outcome.unfinished > 0 {
                tracing::warn!(
                    held,
                    pushed = outcome.pushed,
                    failed = outcome.failed,
                    unfinished = outcome.unfinished,
                    "hand-off incomplete: some chunks may have fewer copies until repair"
                );
            } else {
                tracing::info!(held, pushed = outcome.pushed, "handed off every chunk");
            }
        }
        if let Some(mut http) = self.take_task(&self.inner.http_task) {
            if tokio::time::timeout(HTTP_GRACE, &mut http).await.is_err() {
                tracing::warn!(
                    "HTTP transfers still running after {HTTP_GRACE:?}; cutting them off"
                );
                http.abort();
            }
        }
        net.shutdown().await;
        self.inner.cluster.store.clear();
        self.lock_index().clear();
        tracing::info!(node = %self.id(), "node stopped; memory wiped");
    }

    /// Stops the node at once, as a crash or power cut would: no leave announcement, no
    /// hand-off; connections drop and the store is wiped. For failure drills and tests.
    pub async fn crash(&self) {
        if self.inner.token.is_cancelled() {
            return;
        }
        self.inner.token.cancel();
        drop(self.take_task(&self.inner.repair_task));
        drop(self.take_task(&self.inner.http_task));
        self.inner.cluster.net.shutdown().await;
        self.inner.cluster.store.clear();
        self.lock_index().clear();
        tracing::warn!(node = %self.id(), "node crashed (drill)");
    }

    fn take_task(
        &self,
        slot: &Mutex<Option<AbortOnDropHandle<()>>>,
    ) -> Option<AbortOnDropHandle<()>> {
        slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn check_running(&self) -> Result<(), NodeError> {
        if self.inner.token.is_cancelled() {
            Err(NodeError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    fn lock_index(&self) -> std::sync::MutexGuard<'_, Vec<IndexEntry>> {
        self.inner
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
