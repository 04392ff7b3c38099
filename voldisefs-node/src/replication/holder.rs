//! Holders: a node that may hold chunks, whether it is this node (`local.rs`, which also
//! answers peers) or a peer reached over the network (`remote.rs`), and why one did not do
//! what was asked.
//!
//! The rest of the replication layer calls [`Holder`]s without caring which kind it has.

use voldisefs_net::NetError;
use voldisefs_proto::{ErrorCode, NodeId, PeerInfo};

/// Most chunks one `prove_chunks` request may ask about: each answer hashes at most 64 KiB of
/// the chunk (see `voldisefs_proto::proof`), so one request costs at most 16 MiB of hashing.
pub(crate) const MAX_PROVE_BATCH: usize = 256;

/// A node that may hold chunks: this one or a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Holder {
    /// This node.
    Local(PeerInfo),
    /// Another node, reached over the network.
    Remote(PeerInfo),
}

impl Holder {
    /// The node's id and address.
    pub(crate) fn info(&self) -> PeerInfo {
        match self {
            Holder::Local(p) | Holder::Remote(p) => *p,
        }
    }

    /// The node's id.
    pub(crate) fn id(&self) -> NodeId {
        self.info().id
    }

    /// Whether this is a peer (its failures count against its health).
    pub(crate) fn is_remote(&self) -> bool {
        matches!(self, Holder::Remote(_))
    }
}

/// Why a holder did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HolderError {
    /// It does not hold the chunk.
    #[error("chunk not held")]
    NotFound,
    /// It deleted the chunk and refuses to store it again.
    #[error("chunk was deleted")]
    Deleted,
    /// Its store is full.
    #[error("store full: {0}")]
    Full(String),
    /// It is busy (its proof budget for this node is spent for now): ask again later.
    #[error("busy: {0}")]
    Busy(String),
    /// It refused the request as invalid (a bug on our side, or bytes not matching the id).
    #[error("refused: {0}")]
    Refused(String),
    /// The bytes are shorter than any object of the format (an empty chunk's tag and delete
    /// check), so they cannot be a chunk or a record.
    #[error("{0} bytes is shorter than any stored object ({min} bytes)", min = voldisefs_crypto::MIN_STORED_LEN)]
    TooShort(usize),
    /// It could not be reached, did not answer in time, or answered nonsense.
    #[error("{0}")]
    Failed(String),
}

impl HolderError {
    /// Whether the holder broke a promise (counts against its health), rather than saying
    /// plainly that it cannot help.
    pub(crate) fn is_failure(&self) -> bool {
        matches!(self, HolderError::Failed(_))
    }
}

impl From<NetError> for HolderError {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Remote { code, message, .. } => match code {
                ErrorCode::NotFound => HolderError::NotFound,
                ErrorCode::Deleted => HolderError::Deleted,
                ErrorCode::Full => HolderError::Full(message),
                ErrorCode::Unavailable => HolderError::Busy(message),
                ErrorCode::BadRequest | ErrorCode::IntegrityMismatch => {
                    HolderError::Refused(message)
                }
                _ => HolderError::Failed(format!("{code:?}: {message}")),
            },
            other => HolderError::Failed(other.to_string()),
        }
    }
}
