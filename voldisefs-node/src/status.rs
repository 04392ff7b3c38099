//! What a node reports about itself: its index of uploads and its network status, as the
//! HTTP API serves them.

use std::net::SocketAddr;

use serde::Serialize;
use voldisefs_proto::{FileId, NodeId, PeerInfo};
use voldisefs_store::StoreStats;

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
    /// `joining` while no bootstrap peer has answered yet (the node keeps retrying), then
    /// `running`; `stopping` during a graceful shutdown.
    pub state: &'static str,
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
    /// Ranked last for reads, writes and repair for now, because it recently failed to
    /// serve, store or prove a chunk.
    pub demoted: bool,
    /// Gets, puts and proofs of possession it failed so far.
    pub failures: u64,
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
    /// Ids of deleted chunks this node refuses to store again (tombstones).
    pub tombstones: u64,
}

impl StoreStatus {
    pub(crate) fn new(s: StoreStats, tombstones: usize) -> Self {
        Self {
            chunks: s.chunks,
            bytes: s.bytes,
            capacity: s.capacity,
            tombstones: tombstones as u64,
        }
    }
}
