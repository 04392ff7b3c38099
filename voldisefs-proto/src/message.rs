//! Peer-to-peer messages: one JSON object per frame, internally tagged by `type`, wrapped in an
//! [`Envelope`] carrying the request id that the response echoes.
//!
//! Bulk chunk bytes never travel inside the JSON: messages for which
//! [`Message::carries_body`] is true are followed by the raw bytes in the same frame (see
//! [`crate::codec`]).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{ChunkId, DeleteKey, NodeId, ProofDigest, ProofNonce};

/// Version of the peer protocol spoken by this build. The handshake refuses any other version.
pub const PROTOCOL_VERSION: u32 = 3;

/// Most chunk ids one batched request (`has_chunks`, `prove_chunks`, `delete_chunks`) may
/// carry; receivers refuse larger batches with `bad_request`.
pub const MAX_BATCH: usize = 4096;

/// Most peers one `peers` answer may list; receivers refuse longer lists.
pub const MAX_PEERS_PER_ANSWER: usize = 1024;

/// Correlates a response with its request on a multiplexed connection.
pub type RequestId = u64;

/// One message with the id of the request it belongs to.
///
/// On the wire the id sits beside the message's own fields:
/// `{"id":7,"type":"get_chunk","chunk":"ab12…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Chosen by the requester, unique among its requests in flight on this connection;
    /// responses carry the id of the request they answer.
    pub id: RequestId,
    /// The message itself.
    #[serde(flatten)]
    pub message: Message,
}

impl Envelope {
    /// Wraps `message` with request id `id`.
    pub fn new(id: RequestId, message: Message) -> Self {
        Self { id, message }
    }
}

/// A peer as other peers reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer's node id.
    pub id: NodeId,
    /// The address of the peer's TCP server.
    pub addr: SocketAddr,
}

/// Every message peers exchange.
///
/// Requests and the responses they get:
///
/// | request        | response                         |
/// |----------------|----------------------------------|
/// | `hello`        | `hello` (the server's own)       |
/// | `get_peers`    | `peers`                          |
/// | `ping`         | `pong`                           |
/// | `put_chunk` +body | `put_ok`                      |
/// | `get_chunk`    | `chunk` +body                    |
/// | `has_chunks`   | `have`                           |
/// | `prove_chunks` | `proofs`                         |
/// | `delete_chunks`| `ack`                            |
/// | `leave`        | `ack`                            |
/// | `get_stats`    | `stats`                          |
///
/// Any request may instead be answered by `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Message {
    /// Handshake, sent first by the connecting side and answered in kind by the server.
    Hello {
        /// The sender's [`PROTOCOL_VERSION`].
        version: u32,
        /// The sender's node id.
        node_id: NodeId,
        /// Where the sender's own TCP server listens.
        listen_addr: SocketAddr,
    },
    /// Asks for every peer the receiver knows.
    GetPeers,
    /// The receiver's known peers (not including itself).
    Peers {
        /// Known peers.
        peers: Vec<PeerInfo>,
    },
    /// Liveness probe.
    Ping,
    /// Answer to [`Message::Ping`].
    Pong,
    /// Asks how much the peer stores (for status pages: a claim, never trusted for placement).
    GetStats,
    /// Answer to [`Message::GetStats`].
    Stats {
        /// Objects (chunks, shards, descriptors, records) the peer holds.
        objects: u64,
        /// Their bytes.
        bytes: u64,
        /// The peer's own clock, unix seconds (0 or absent: not told). Nodes follow the
        /// median of their peers' clocks when theirs runs late, for expiry.
        #[serde(default)]
        time: u64,
    },
    /// Store the chunk in the frame body under `chunk` (its BLAKE3 digest).
    PutChunk {
        /// Id the body must hash to.
        chunk: ChunkId,
    },
    /// The chunk is stored (or was already).
    PutOk {
        /// The stored chunk.
        chunk: ChunkId,
    },
    /// Asks for a chunk's bytes.
    GetChunk {
        /// The wanted chunk.
        chunk: ChunkId,
    },
    /// A chunk's bytes, in the frame body.
    Chunk {
        /// Id of the chunk in the body.
        chunk: ChunkId,
    },
    /// Asks which of these chunks the receiver holds (batched).
    HasChunks {
        /// Chunks asked about.
        chunks: Vec<ChunkId>,
    },
    /// Answer to [`Message::HasChunks`]: `present[i]` tells about `chunks[i]`.
    Have {
        /// One flag per asked chunk, in request order.
        present: Vec<bool>,
    },
    /// Challenges the receiver to prove it holds these chunks (see [`crate::proof`]); at most
    /// [`MAX_BATCH`] ids.
    ProveChunks {
        /// Fresh random challenge chosen by the sender.
        nonce: ProofNonce,
        /// Chunks asked about.
        chunks: Vec<ChunkId>,
    },
    /// Answer to [`Message::ProveChunks`]: `proofs[i]` tells about `chunks[i]`.
    Proofs {
        /// One answer per asked chunk, in request order.
        proofs: Vec<ChunkProof>,
    },
    /// Asks the receiver to drop these chunks of one file and remember them as deleted
    /// (tombstones), so a late or repeated put of them is refused; at most [`MAX_BATCH`] ids.
    /// A held chunk is dropped only if `key` authorizes it (its check is the chunk's last 32
    /// bytes); a tombstone for a chunk not held refuses only puts of bytes the key authorizes.
    DeleteChunks {
        /// The file's delete key.
        key: DeleteKey,
        /// The chunks to drop.
        chunks: Vec<ChunkId>,
    },
    /// The sender is leaving the network gracefully.
    Leave {
        /// The leaving node.
        node_id: NodeId,
    },
    /// Generic success answer (to `delete_chunks`, `leave`).
    Ack,
    /// The request failed.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable detail (never secrets).
        message: String,
    },
}

impl Message {
    /// Whether frames of this message carry raw bytes after the JSON.
    pub fn carries_body(&self) -> bool {
        matches!(self, Message::PutChunk { .. } | Message::Chunk { .. })
    }

    /// The wire name (`type` tag) of this message, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::GetPeers => "get_peers",
            Message::Peers { .. } => "peers",
            Message::Ping => "ping",
            Message::Pong => "pong",
            Message::GetStats => "get_stats",
            Message::Stats { .. } => "stats",
            Message::PutChunk { .. } => "put_chunk",
            Message::PutOk { .. } => "put_ok",
            Message::GetChunk { .. } => "get_chunk",
            Message::Chunk { .. } => "chunk",
            Message::HasChunks { .. } => "has_chunks",
            Message::Have { .. } => "have",
            Message::ProveChunks { .. } => "prove_chunks",
            Message::Proofs { .. } => "proofs",
            Message::DeleteChunks { .. } => "delete_chunks",
            Message::Leave { .. } => "leave",
            Message::Ack => "ack",
            Message::Error { .. } => "error",
        }
    }

    /// Whether this message is a request (expects a response) rather than a response.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Message::Hello { .. }
                | Message::GetPeers
                | Message::Ping
                | Message::GetStats
                | Message::PutChunk { .. }
                | Message::GetChunk { .. }
                | Message::HasChunks { .. }
                | Message::ProveChunks { .. }
                | Message::DeleteChunks { .. }
                | Message::Leave { .. }
        )
    }

    /// Builds an [`Message::Error`].
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Message::Error {
            code,
            message: message.into(),
        }
    }
}

/// One holder's answer about one chunk in [`Message::Proofs`].
///
/// On the wire: `{"state":"held","proof":"ab12…"}`, `{"state":"missing"}` or
/// `{"state":"deleted","key":"cd34…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ChunkProof {
    /// Held; the proof over the chunk's bytes.
    Held {
        /// [`crate::proof::prove`] of the chunk for the challenge.
        proof: ProofDigest,
    },
    /// Not held.
    Missing,
    /// Not held, and remembered as deleted (a tombstone): it must not be stored again.
    Deleted {
        /// The delete key the deletion presented, so that a holder of the chunk can check
        /// that the deletion was authorized before it follows it.
        key: DeleteKey,
    },
}

/// Machine-readable error reasons carried by [`Message::Error`].
///
/// Unknown codes from newer peers decode as [`ErrorCode::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request was malformed or invalid.
    BadRequest,
    /// The message was not expected at this point (e.g. anything before `hello`).
    UnexpectedMessage,
    /// The peer speaks another protocol version.
    IncompatibleVersion,
    /// The asked-for chunk is not held here.
    NotFound,
    /// The receiver's store is full.
    Full,
    /// The body does not hash to the claimed chunk id.
    IntegrityMismatch,
    /// The chunk was deleted (the receiver keeps a tombstone) and must not be stored again.
    Deleted,
    /// The receiver is shutting down or overloaded.
    Unavailable,
    /// Something failed on the receiver.
    Internal,
    /// A code this build does not know.
    #[serde(other)]
    Unknown,
}
