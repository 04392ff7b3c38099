//! [`Node`]: a running Voldisefs node and its public API.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures_util::Stream;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voldisefs_crypto::{DeleteKey, FileKind, Password};
use voldisefs_net::Network;
use voldisefs_proto::{FileId, NodeId};

use crate::metrics::Metrics;
use crate::replication::{
    Cluster, LocalHolder, Mode, Repairer, Settings, StoreHandler, Tombstones, TransferGuard,
};
use crate::status::{IndexEntry, IndexKind, NetworkStatus, PeerStatus, RepairStatus, StoreStatus};
use crate::transfer::download::{self, Access, ByteRange, ByteStream, Download};
use crate::transfer::kdf_gate::KdfGate;
use crate::transfer::upload::{
    self, Keying, UploadReceipt, UploadRequest, UploadSettings, Uploaded,
};
use crate::{NodeConfig, NodeError};

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id())
            .field("peer_addr", &self.peer_addr())
            .field("http_addr", &self.inner.http_addr)
            .finish_non_exhaustive()
    }
}

/// Shared state behind a [`Node`] handle.
///
/// Lifecycle tree: `root` is cancelled last (it ends the network) and when the last
/// user-held [`Node`] handle is dropped; `work`, its child, ends the HTTP server, repair,
/// joining and uploads, which all run on `tracker`. Tasks hold internal handles that do not
/// keep the node alive.
#[derive(Debug)]
struct Inner {
    config: NodeConfig,
    cluster: Cluster,
    /// The peer network (membership, status, drills); the cluster keeps its own clone.
    network: Network,
    /// Cap: [`MAX_INDEX_ENTRIES`](crate::status::MAX_INDEX_ENTRIES) entries and
    /// [`MAX_INDEX_NAME_BYTES`](crate::status::MAX_INDEX_NAME_BYTES) of names, oldest dropped first.
    index: Mutex<std::collections::VecDeque<IndexEntry>>,
    http_addr: Option<SocketAddr>,
    root: CancellationToken,
    work: CancellationToken,
    tracker: TaskTracker,
    repairer: Repairer,
    metrics: Metrics,
    kdf: Arc<KdfGate>,
    tickets: crate::tickets::Tickets,
    object_budget: Arc<tokio::sync::Semaphore>,
    /// Objects stored through the object API, to settle within [`SETTLE_DELAY`]; at most
    /// [`MAX_SETTLING`] (more wait for the next repair sweep).
    settling: Mutex<Vec<voldisefs_proto::ChunkId>>,
    joining: AtomicBool,
    stopping: AtomicBool,
}

/// Cancels the node's root token when the last user-held handle goes.
#[derive(Debug)]
struct Owner(CancellationToken);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.cancel();
    }
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

/// The `tracing` target of the one line logged per upload and download (id, size, duration,
/// outcome; never a name or a password): `RUST_LOG=voldisefs::transfer=info` shows just
/// those.
pub const TRANSFER_LOG: &str = "voldisefs::transfer";

/// Most peers [`Node::network_status`] asks for their store usage.
pub const MAX_STATS_PEERS: usize = 256;

/// The shortest expiry an upload may ask for: less would expire while it is stored.
pub const MIN_EXPIRY_SECS: u64 = 2;

/// How long shutdown waits for HTTP transfers and upload clean-up before cutting them off.
const WORK_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// Wait after an upload before its holders are checked by proof.
const SETTLE_DELAY: std::time::Duration = std::time::Duration::from_millis(500);
/// Most object API objects waiting to be settled.
const MAX_SETTLING: usize = 65_536;

/// A running node: peer server, chunk store, pipelines and (optionally) the HTTP API.
/// Cheap to clone; every clone is the same node. Dropping every handle without
/// [`Node::shutdown`] stops the node's tasks at once (as [`Node::crash`] would).
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
    /// `None` for the handles the node's own tasks hold.
    _owner: Option<Arc<Owner>>,
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
        let root = CancellationToken::new();
        let local = Arc::new(
            LocalHolder::new(
                config.capacity,
                Tombstones::new(config.tombstone_ttl, config.max_tombstones),
            )
            .with_clock(crate::clock::Clock::new(config.drill_clock_offset)),
        );
        let handler = Arc::new(StoreHandler {
            local: local.clone(),
        });
        let net = Network::start(
            peer_listener,
            config.advertise,
            handler,
            config.net.clone(),
            root.child_token(),
        )?;
        // The network chose (keyed mode: derived) this node's id; proofs are bound to it.
        let _ = local.id.set(net.local().id);
        let sweeper = local.clone();
        let network = net.clone();
        let cluster = Cluster::new(
            net,
            local,
            Settings {
                replicas: config.replicas.max(1),
                attempt_timeout: config.attempt_timeout,
                hedge_min: config.hedge_min,
                hedge_max: config.hedge_max,
                window_budget: config.transfer_window_budget,
            },
        );
        let repairer = Repairer::new(&cluster, config.repair_bandwidth);
        let cache = voldisefs_crypto::KekCache::new(config.kdf_cache_entries, config.kdf_cache_age)
            .map_err(NodeError::Crypto)?;
        let kdf = Arc::new(KdfGate::new(
            config.kdf_concurrency,
            config.kdf_queue_timeout,
            config.kdf_max.max(&config.kdf),
            cache,
        ));
        let metrics = Metrics::new(
            cluster.clone(),
            network.clone(),
            repairer.clone(),
            kdf.clone(),
        );
        let work = root.child_token();
        let node = Node {
            inner: Arc::new(Inner {
                metrics,
                cluster,
                network,
                repairer,
                kdf,
                tickets: crate::tickets::Tickets::default(),
                settling: Mutex::new(Vec::new()),
                object_budget: Arc::new(tokio::sync::Semaphore::new(
                    crate::http::OBJECT_BODY_BUDGET >> 10,
                )),
                index: Mutex::new(std::collections::VecDeque::new()),
                http_addr,
                root: root.clone(),
                work,
                tracker: TaskTracker::new(),
                joining: AtomicBool::new(!config.bootstrap.is_empty()),
                stopping: AtomicBool::new(false),
                config,
            }),
            _owner: Some(Arc::new(Owner(root))),
        };
        if let Some(listener) = http_listener {
            let serve = crate::http::serve(listener, node.internal(), node.inner.work.clone());
            node.inner.tracker.spawn(serve);
        }
        let repair = node
            .inner
            .repairer
            .clone()
            .run(node.inner.config.repair_interval, node.inner.work.clone());
        node.inner.tracker.spawn(repair);
        // Expired objects leave the store within `expiry_sweep` (reads drop them at once);
        // expired password keys and download tickets leave RAM within the same second.
        let (cache, swept) = (node.inner.kdf.cache(), node.internal());
        let every = node.inner.config.expiry_sweep;
        node.every(every.max(std::time::Duration::from_millis(10)), move || {
            let dropped = sweeper.expire(sweeper.clock.now());
            if dropped > 0 {
                tracing::debug!(dropped, "expired objects dropped");
            }
            cache.sweep();
            swept.inner.tickets.sweep(std::time::Instant::now());
            std::future::ready(())
        });
        // Objects stored through the object API are settled in batches, as uploads are.
        let (settler, queue) = (node.inner.repairer.clone(), node.internal());
        node.every(SETTLE_DELAY, move || {
            let ids = std::mem::take(
                &mut *queue
                    .inner
                    .settling
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            let settler = settler.clone();
            async move {
                if !ids.is_empty() {
                    settler.settle(&ids).await;
                }
            }
        });
        // A late clock follows the peers' (see `clock`): one round of questions per interval.
        let cluster = node.inner.cluster.clone();
        let every = node.inner.config.clock_check_interval;
        node.every(
            every.max(std::time::Duration::from_millis(100)),
            move || {
                let cluster = cluster.clone();
                async move {
                    let own = cluster.clock().own();
                    let answers = cluster
                        .peer_stats(
                            crate::clock::SAMPLE_PEERS,
                            std::time::Duration::from_secs(1),
                        )
                        .await;
                    let times: Vec<u64> = answers.values().map(|(_, _, time)| *time).collect();
                    cluster.clock().observe(own, &times);
                }
            },
        );
        if !node.inner.config.bootstrap.is_empty() {
            node.join().await;
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
            peers = node.network().membership().len(),
            joining = node.is_joining(),
            "node started"
        );
        Ok(node)
    }

    /// A handle for the node's own tasks: it does not keep the node alive.
    fn internal(&self) -> Node {
        Node {
            inner: self.inner.clone(),
            _owner: None,
        }
    }

    /// Joins through the bootstrap peers: one attempt now, for at most one dial and handshake's
    /// worth of time; if no peer answered by then (they may not be up yet, or a seed listed
    /// peers that hang), keeps going in the background with capped backoff
    /// ([`Network::join`], `NetConfig::join_retry_*`) while the node serves, and reports
    /// itself as joining until one answers.
    async fn join(&self) {
        let seeds = self.inner.config.bootstrap.clone();
        let net = self.network().clone();
        // A seed that answers with peers that hang must not hold up the start: the first
        // attempt gets one dial and handshake's worth of time, the rest goes on in the
        // background.
        let budget = net.config().connect_timeout + net.config().handshake_timeout;
        let first = tokio::time::timeout(budget, net.bootstrap(&seeds)).await;
        match first {
            Ok(Ok(_)) => self.inner.joining.store(false, Ordering::Relaxed),
            failed => {
                match failed {
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "bootstrap peers not reachable yet; retrying in the background")
                    }
                    _ => tracing::warn!(
                        ?budget,
                        "bootstrap still running; going on in the background"
                    ),
                }
                let node = self.internal();
                let token = self.inner.work.clone();
                self.inner.tracker.spawn(async move {
                    tokio::select! {
                        () = token.cancelled() => {}
                        joined = net.join(&seeds) => match joined {
                            Ok(report) => {
                                node.inner.joining.store(false, Ordering::Relaxed);
                                tracing::info!(peers = report.reached.len(), "joined the network");
                            }
                            Err(e) => tracing::warn!(error = %e, "gave up joining"),
                        },
                    }
                });
            }
        }
    }

    /// Whether the node is still waiting for a bootstrap peer to answer.
    pub fn is_joining(&self) -> bool {
        self.inner.joining.load(Ordering::Relaxed)
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

    /// The replication layer, for the object API ([`crate::objects`]).
    pub(crate) fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// The node-wide budget of object API bodies being read, in KiB
    /// ([`crate::http::OBJECT_BODY_BUDGET`]).
    pub(crate) fn object_budget(&self) -> &std::sync::Arc<tokio::sync::Semaphore> {
        &self.inner.object_budget
    }

    /// Bytes of [`crate::OBJECT_BODY_BUDGET`] no object API body holds now.
    pub fn object_budget_free(&self) -> usize {
        self.inner.object_budget.available_permits() << 10
    }

    /// The peer network (membership, requests, drills) of this node.
    pub fn network(&self) -> &Network {
        &self.inner.network
    }

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
        let replicas = self
            .inner
            .config
            .replicas
            .clamp(1, voldisefs_crypto::MAX_SHARDS);
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
        let started = std::time::Instant::now();
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

    /// The node's download tickets.
    pub(crate) fn tickets(&self) -> &crate::tickets::Tickets {
        &self.inner.tickets
    }

    /// Runs `work` every `period` (a missed tick waits for the next) until the node stops.
    fn every<F, W>(&self, period: std::time::Duration, mut work: W)
    where
        W: FnMut() -> F + Send + 'static,
        F: std::future::Future<Output = ()> + Send,
    {
        let token = self.inner.work.clone();
        self.inner.tracker.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = tick.tick() => {}
                }
                work().await;
            }
        });
    }

    /// The node's gate for key derivations.
    pub(crate) fn kdf_gate(&self) -> &KdfGate {
        &self.inner.kdf
    }

    /// The unix time this node judges expiry by (see [`crate::clock`]).
    pub(crate) fn now(&self) -> u64 {
        self.inner.cluster.now()
    }

    /// This node's own unix time: what stamps and bounds expiries (see [`crate::clock`]).
    pub(crate) fn own_time(&self) -> u64 {
        self.inner.cluster.own_time()
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
        let started = std::time::Instant::now();
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
    /// collection itself. Returns the number of chunks (records included) deleted.
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
        cluster.delete(key, &[id.record_chunk()], &[], true).await;
        let spread = opened
            .opener
            .manifest()
            .redundancy()
            .map_or(0, voldisefs_crypto::Redundancy::nodes);
        cluster
            .delete_spread(key, &opened.chunk_ids, &[], false, spread)
            .await;
        self.lock_index().retain(|e| e.id != id);
        let deleted = opened.chunk_ids.len() as u64 + 1 + members;
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
        self.lock_index().iter().cloned().collect()
    }

    /// This node, its peers and its store usage.
    pub fn status(&self) -> NetworkStatus {
        let cluster = &self.inner.cluster;
        let net = &self.inner.network;
        let state = if self.inner.stopping.load(Ordering::Relaxed) {
            "stopping"
        } else if self.is_joining() {
            "joining"
        } else {
            "running"
        };
        NetworkStatus {
            node: net.local(),
            state,
            peers: net
                .membership()
                .snapshot()
                .into_iter()
                .map(|e| {
                    let health = cluster.peer_health(&e.info.id);
                    PeerStatus {
                        id: e.info.id,
                        addr: e.info.addr,
                        state: e.state.as_str(),
                        demoted: health.demoted,
                        failures: health.failures,
                        stored_bytes: None,
                        stored_objects: None,
                    }
                })
                .collect(),
            security: if net.is_keyed() { "keyed" } else { "open" },
            store: StoreStatus::new(cluster.store_stats(), cluster.tombstone_count()),
            repair: {
                let c = self.inner.repairer.counters();
                RepairStatus {
                    backlog: c.backlog,
                    pushed: c.pushed,
                    dropped: c.dropped,
                    failed: c.failed,
                    sweeps: c.sweeps,
                }
            },
        }
    }

    /// Like [`Node::status`], with what each live peer says it stores (one `get_stats` to each
    /// of at most [`MAX_STATS_PEERS`] live peers, all at once, each given a second), so the
    /// network's storage overhead shows: the sum over all nodes against the files' sizes.
    pub async fn network_status(&self) -> NetworkStatus {
        let mut status = self.status();
        let answers = self
            .inner
            .cluster
            .peer_stats(MAX_STATS_PEERS, std::time::Duration::from_secs(1))
            .await;
        for peer in &mut status.peers {
            if let Some((objects, bytes, _)) = answers.get(&peer.id) {
                peer.stored_objects = Some(*objects);
                peer.stored_bytes = Some(*bytes);
            }
        }
        status
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

    /// Stops the node gracefully, in a fixed order: stops taking requests and cancels the
    /// uploads in progress (which delete what they stored) and repair, waiting for them
    /// (HTTP transfers get a few seconds to finish); tells its peers it leaves; hands every
    /// chunk it holds to the holders that should have it (within `handoff_deadline`, logging
    /// what it could not hand off); stops the peer network; wipes the store. Idempotent.
    pub async fn shutdown(&self) {
        if self.inner.stopping.swap(true, Ordering::SeqCst) || self.inner.root.is_cancelled() {
            return;
        }
        self.stop_work().await;
        let net = self.network();
        net.announce_leave().await;
        let held = self.inner.cluster.store_stats().chunks;
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
        net.shutdown().await;
        self.inner.root.cancel();
        self.inner.cluster.wipe();
        self.lock_index().clear();
        self.inner.kdf.cache().clear();
        self.inner.tickets.clear();
        tracing::info!(node = %self.id(), "node stopped; memory wiped");
    }

    /// Cancels the work token and waits (bounded) for every task under it.
    async fn stop_work(&self) {
        self.inner.work.cancel();
        self.inner.tracker.close();
        if tokio::time::timeout(WORK_GRACE, self.inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("node tasks still running after {WORK_GRACE:?}; going on without them");
        }
    }

    /// Stops the node at once, as a crash or power cut would: no leave announcement, no
    /// hand-off; connections drop and the store is wiped. For failure drills and tests.
    pub async fn crash(&self) {
        if self.inner.stopping.swap(true, Ordering::SeqCst) || self.inner.root.is_cancelled() {
            return;
        }
        self.inner.root.cancel();
        self.network().shutdown().await;
        self.stop_work().await;
        self.inner.cluster.wipe();
        self.lock_index().clear();
        self.inner.kdf.cache().clear();
        self.inner.tickets.clear();
        tracing::warn!(node = %self.id(), "node crashed (drill)");
    }

    fn check_running(&self) -> Result<(), NodeError> {
        if self.inner.work.is_cancelled() || self.inner.stopping.load(Ordering::Relaxed) {
            Err(NodeError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    fn lock_index(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<IndexEntry>> {
        self.inner
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
