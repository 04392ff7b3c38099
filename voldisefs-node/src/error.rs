//! The one error type of this crate.

use voldisefs_proto::{ChunkId, FileId};

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The password is wrong, or the file's record was tampered with (one error by design).
    #[error("wrong password or corrupted file")]
    WrongPassword,
    /// No node holds a record for this file id.
    #[error("file {0} not found")]
    NotFound(FileId),
    /// Every holder refused to store the object: it was deleted, and tombstones keep it out.
    #[error("object {0} was deleted; the network refuses to store it again")]
    ObjectDeleted(ChunkId),
    /// No node holds an object under this id (never stored, expired or deleted).
    #[error("no node holds object {0}")]
    NoSuchObject(ChunkId),
    /// The id is a collection's, where a file was asked for: list or fetch its files instead.
    #[error("{0} is a collection: list it with `voldisefs ls {0}` or GET /api/v1/collections/{0}")]
    IsCollection(FileId),
    /// The byte range asked for selects nothing of the file (it starts past the end).
    #[error("the range asked for is not within the file's {size} bytes")]
    RangeNotSatisfiable {
        /// The file's size.
        size: u64,
    },
    /// The collection lists no file at the path asked for.
    #[error("collection {0} has no file at that path")]
    NoSuchPath(FileId),
    /// The id is a file's, where a collection was asked for.
    #[error("{0} is a file, not a collection")]
    NotACollection(FileId),
    /// Some chunks could not be fetched from any holder.
    #[error("{missing} of {total} chunks unavailable")]
    Unavailable {
        /// Chunks no reachable node could serve.
        missing: u64,
        /// Chunks in the file.
        total: u64,
    },
    /// A chunk could not be stored on any node.
    #[error("no node could store chunk {chunk:?}: {reason}")]
    NoHolder {
        /// The chunk.
        chunk: ChunkId,
        /// The last failure seen.
        reason: String,
    },
    /// A redundancy this network cannot keep: `replicas:N` other than the network's count, or
    /// shard counts past the format's bounds.
    #[error("{0}")]
    RedundancyUnavailable(String),
    /// An erasure-coded upload needs more live nodes than the network has: its shards go to
    /// distinct nodes, or the promised loss tolerance would not hold.
    #[error(
        "{redundancy} needs {needed} live nodes, and {live} are live; use fewer shards or replicas:N"
    )]
    TooFewNodes {
        /// The redundancy asked for.
        redundancy: voldisefs_crypto::Redundancy,
        /// Distinct nodes it needs.
        needed: usize,
        /// Live nodes now (this one included).
        live: usize,
    },
    /// A delete reached too little of the network to stick: copies on the members it cannot
    /// reach could bring the file back (see `Cluster::delete_confirmed`).
    #[error(
        "cannot delete now: this node reaches {reached} of the {members} members it saw in the \
         last {memory_secs} s and a delete needs a majority ({needed}), or copies on the others \
         could bring the file back; try again when more of them are reachable (nodes it did \
         reach keep what they deleted)"
    )]
    NoDeleteQuorum {
        /// Nodes that can take the delete (this one included).
        reached: usize,
        /// Nodes counted: this one, live members and members that died recently.
        members: usize,
        /// The majority needed.
        needed: usize,
        /// How long a dead member counts.
        memory_secs: u64,
    },
    /// A delete of chunks reached too few of their ranked holders to stick: copies on the
    /// others, with no tombstone beside them, would stay (see `Cluster::delete_confirmed`).
    #[error(
        "cannot delete now: {confirmed} of the {asked} nodes that may hold the file's chunks \
         confirmed the delete and it needs a majority, or copies on the others would stay; \
         try again when more of them answer (nodes that did confirm keep what they deleted)"
    )]
    NoHolderQuorum {
        /// Nodes that confirmed (this one included).
        confirmed: usize,
        /// Nodes asked (this one included).
        asked: usize,
    },
    /// Every node that could hold the chunk is full.
    #[error("network full: {0}")]
    Full(String),
    /// The configuration cannot be used (e.g. a public HTTP API without a token).
    #[error("{0}")]
    Config(String),
    /// The request was invalid (bad name, empty password, ...).
    #[error("{0}")]
    InvalidRequest(String),
    /// The upload body could not be read.
    #[error("reading the upload failed: {0}")]
    Body(String),
    /// A cryptographic step failed for a reason other than a wrong password.
    #[error(transparent)]
    Crypto(voldisefs_crypto::Error),
    /// The network layer failed.
    #[error(transparent)]
    Net(#[from] voldisefs_net::NetError),
    /// Binding or serving a socket failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The node is too busy to take this request now (its key derivations are all in use);
    /// try again shortly.
    #[error("node busy: {0}")]
    Busy(String),
    /// The operation was cancelled (the client went away) before it finished.
    #[error("cancelled before it finished")]
    Cancelled,
    /// The node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
    /// A background task failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<voldisefs_crypto::Error> for NodeError {
    fn from(e: voldisefs_crypto::Error) -> Self {
        match e {
            voldisefs_crypto::Error::Decrypt => NodeError::WrongPassword,
            voldisefs_crypto::Error::TooLarge { .. } => NodeError::InvalidRequest(e.to_string()),
            other => NodeError::Crypto(other),
        }
    }
}

impl From<tokio::task::JoinError> for NodeError {
    fn from(e: tokio::task::JoinError) -> Self {
        NodeError::Internal(format!("worker task failed: {e}"))
    }
}
