//! [`Node`]: a running Voldisefs node and its public API.
//!
//! The node is the layer between the HTTP API (`crate::http`, which only calls the node's
//! public and crate-visible methods) and the replication layer (`crate::replication`). Its
//! files, by what they own (see ARCHITECTURE.md):
//!
//! * this file: the [`Node`] handle, its shared state and the small accessors;
//! * [`lifecycle`]: assembling a node from bound listeners, joining, shutdown and crash;
//! * [`uploads`]: uploads, their redundancy and expiry policy, settling, the index entry;
//! * [`downloads`]: downloads, stat, burn after reading, delete;
//! * [`report`]: status, the network view, metrics and the index of uploads;
//! * [`collections`] and [`objects`]: collections (batches) and the object API's operations.
//!
//! `crate::startup` binds the listeners and starts the HTTP server on a node: this folder
//! never names the HTTP layer.

pub(crate) mod collections;
mod downloads;
mod lifecycle;
pub(crate) mod objects;
mod report;
mod uploads;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voldisefs_net::Network;
use voldisefs_proto::NodeId;

use crate::metrics::Metrics;
use crate::replication::{Cluster, Repairer};
use crate::status::IndexEntry;
use crate::transfer::kdf_gate::KdfGate;
use crate::{NodeConfig, NodeError};

pub use downloads::FileStat;
pub use report::MAX_STATS_PEERS;
pub(crate) use uploads::Indexed;
pub use uploads::{MIN_EXPIRY_SECS, UploadOptions};

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

/// The `tracing` target of the one line logged per upload and download (id, size, duration,
/// outcome; never a name or a password): `RUST_LOG=voldisefs::transfer=info` shows just
/// those.
pub const TRANSFER_LOG: &str = "voldisefs::transfer";

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
    /// A handle for the node's own tasks: it does not keep the node alive.
    fn internal(&self) -> Node {
        Node {
            inner: self.inner.clone(),
            _owner: None,
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

    /// The replication layer, for the object API ([`objects`]).
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
