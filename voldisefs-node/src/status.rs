//! What a node reports about itself: its index of uploads and its network status, as the
//! HTTP API serves them (part of its contract, [`crate::api`]). Deserializing is lenient: what
//! older nodes did not send takes its default.

use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serialize};
use voldisefs_proto::{FileId, NodeId, PeerInfo};
use voldisefs_store::StoreStats;

/// Most entries of a node's local index of uploads; beyond, the oldest is dropped (the file
/// itself stays in the network).
pub const MAX_INDEX_ENTRIES: usize = 65_536;

/// Most bytes of names a node's local index holds; beyond, the oldest entries are dropped.
pub const MAX_INDEX_NAME_BYTES: usize = 8 << 20;

/// One entry of the node's local index of files uploaded through it, in RAM only like
/// everything else. It holds the file's original name (for `ls` and the page), so whoever can
/// reach the node's API sees the names of the files uploaded through it; nothing else about
/// the file's contents. The name is zeroed when the entry is dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The file's id.
    pub id: FileId,
    /// The name it was uploaded under (at most 4,096 bytes).
    #[serde(default)]
    pub name: String,
    /// A file, or a collection of files.
    #[serde(default)]
    pub kind: IndexKind,
    /// Plaintext size in bytes (of all its files, for a collection).
    pub size: u64,
    /// Number of chunks (of the listing, for a collection).
    pub chunks: u64,
    /// How many files a collection lists (absent for a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Upload time, seconds since the Unix epoch.
    pub created: u64,
    /// When it expires, seconds since the Unix epoch (absent: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// What an index entry is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexKind {
    /// A file (and what older nodes, which sent no kind, listed).
    #[default]
    File,
    /// A collection (a folder, or several files put together).
    Collection,
}

impl Drop for IndexEntry {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.name);
    }
}

/// Appends `entry`, first dropping the oldest entries until at most `max_entries - 1` remain
/// and the names, `entry`'s included, take at most `max_name_bytes` (or none is left).
pub(crate) fn push_capped(
    index: &mut std::collections::VecDeque<IndexEntry>,
    entry: IndexEntry,
    max_entries: usize,
    max_name_bytes: usize,
) {
    let mut names = index.iter().map(|e| e.name.len()).sum::<usize>() + entry.name.len();
    while !index.is_empty() && (index.len() >= max_entries || names > max_name_bytes) {
        if let Some(old) = index.pop_front() {
            names -= old.name.len();
        }
    }
    index.push_back(entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, name: &str) -> IndexEntry {
        IndexEntry {
            id: FileId::from_bytes([n; 32]),
            name: name.to_string(),
            kind: IndexKind::File,
            size: 0,
            chunks: 0,
            files: None,
            expires: None,
            created: 0,
        }
    }

    #[test]
    fn the_index_drops_its_oldest_entries_past_either_cap() {
        let mut index = std::collections::VecDeque::new();
        for n in 0..5 {
            push_capped(&mut index, entry(n, "abcd"), 3, 100);
        }
        let kept: Vec<u8> = index.iter().map(|e| e.id.as_bytes()[0]).collect();
        assert_eq!(kept, vec![2, 3, 4]);
        // 4 + 4 + 4 bytes of names; a 10-byte name leaves room for one 4-byte one.
        push_capped(&mut index, entry(9, "0123456789"), 10, 14);
        let kept: Vec<u8> = index.iter().map(|e| e.id.as_bytes()[0]).collect();
        assert_eq!(kept, vec![4, 9]);
        // A name over the byte cap alone still gets in (the index never refuses an upload).
        push_capped(&mut index, entry(7, &"x".repeat(20)), 10, 14);
        assert_eq!(index.len(), 1);
    }
}

/// What a node reports about itself and its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStatus {
    /// This node.
    pub node: PeerInfo,
    /// `joining` while no bootstrap peer has answered yet (the node keeps retrying), then
    /// `running`; `stopping` during a graceful shutdown.
    #[serde(default, deserialize_with = "known_word")]
    pub state: Word,
    /// Every known peer with its state.
    #[serde(default)]
    pub peers: Vec<PeerStatus>,
    /// `keyed` (peer links encrypted and authenticated with the network key) or `open`.
    #[serde(default, deserialize_with = "known_word")]
    pub security: Word,
    /// This node's store usage.
    #[serde(default)]
    pub store: StoreStatus,
    /// This node's repair activity.
    #[serde(default)]
    pub repair: RepairStatus,
}

/// One peer in a [`NetworkStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The peer's id.
    pub id: NodeId,
    /// Its peer address.
    pub addr: SocketAddr,
    /// `alive`, `suspect`, `dead` or `left`.
    #[serde(default, deserialize_with = "known_word")]
    pub state: Word,
    /// Ranked last for reads, writes and repair for now, because it recently failed to
    /// serve, store or prove a chunk, or to say which it holds.
    #[serde(default)]
    pub demoted: bool,
    /// Gets, puts, proofs of possession and `has_chunks` queries it failed so far.
    #[serde(default)]
    pub failures: u64,
    /// Bytes the peer says it stores (asked by [`Node::network_status`](crate::Node::network_status);
    /// absent from [`Node::status`](crate::Node::status), for peers that did not answer
    /// within a second, and past the first 256 live peers). A claim, shown for the storage
    /// overhead; placement never relies on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_bytes: Option<u64>,
    /// Objects (chunks, shards, descriptors, records) the peer says it stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_objects: Option<u64>,
}

/// Repair activity in a [`NetworkStatus`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// Chunks held.
    pub chunks: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Byte capacity.
    pub capacity: u64,
    /// Ids of deleted chunks this node refuses to store again (tombstones).
    #[serde(default)]
    pub tombstones: u64,
}

/// A state or mode a [`NetworkStatus`] names: a plain `&'static str`, spelled through this alias
/// so that deserializing it copies from [`KNOWN_WORDS`] instead of borrowing from the input.
type Word = &'static str;

/// The states and modes a [`NetworkStatus`] names; a word a newer node sends that is not among
/// them reads as `unknown`.
const KNOWN_WORDS: [&str; 10] = [
    "joining",
    "running",
    "stopping",
    "keyed",
    "open",
    "unverified",
    "alive",
    "suspect",
    "dead",
    "left",
];

/// Reads one of [`KNOWN_WORDS`] (the fields are `&'static str`: a node only ever sends these).
fn known_word<'de, D: Deserializer<'de>>(d: D) -> Result<Word, D::Error> {
    let word = String::deserialize(d)?;
    Ok(KNOWN_WORDS
        .into_iter()
        .find(|known| *known == word)
        .unwrap_or("unknown"))
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
