//! The one error type of this crate.

use std::io;
use std::net::SocketAddr;

use voldisefs_proto::{CodecError, ErrorCode, NodeId};

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The TCP connection could not be opened.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The peer's address.
        addr: SocketAddr,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// A step did not finish in time.
    #[error("{what} with {addr} timed out")]
    Timeout {
        /// The peer's address.
        addr: SocketAddr,
        /// What timed out ("connect", "handshake", "request").
        what: &'static str,
    },
    /// The peer speaks another protocol version.
    #[error("peer {addr} speaks protocol v{theirs}, this node v{ours}")]
    IncompatibleVersion {
        /// The peer's address.
        addr: SocketAddr,
        /// The peer's version.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
    /// The handshake went wrong in another way.
    #[error("handshake with {addr} failed: {reason}")]
    Handshake {
        /// The peer's address.
        addr: SocketAddr,
        /// What was wrong.
        reason: String,
    },
    /// The peer at this address is not the node we meant to reach.
    #[error("peer {addr} is node {actual}, expected {expected}")]
    WrongPeer {
        /// The peer's address.
        addr: SocketAddr,
        /// Who we wanted.
        expected: NodeId,
        /// Who answered.
        actual: NodeId,
    },
    /// The connection closed before the answer came.
    #[error("connection to {addr} closed")]
    ConnectionClosed {
        /// The peer's address.
        addr: SocketAddr,
    },
    /// The peer sent something that could not be decoded, or we could not encode a frame.
    #[error("bad frame from {addr}: {source}")]
    Codec {
        /// The peer's address.
        addr: SocketAddr,
        /// The codec's reason.
        #[source]
        source: CodecError,
    },
    /// The peer answered with an error message.
    #[error("peer {addr} refused: {message} ({code:?})")]
    Remote {
        /// The peer's address.
        addr: SocketAddr,
        /// The peer's error code.
        code: ErrorCode,
        /// The peer's explanation.
        message: String,
    },
    /// The peer answered with a message that does not fit the request.
    #[error("peer {addr} answered {got} to {request}")]
    UnexpectedResponse {
        /// The peer's address.
        addr: SocketAddr,
        /// The request's kind.
        request: &'static str,
        /// The response's kind.
        got: &'static str,
    },
    /// The peer answered `get_peers` with more peers than a `peers` answer may list; the
    /// whole answer was refused.
    #[error("peer {addr} listed {len} peers, more than the {max} allowed; answer refused")]
    PeerListTooLong {
        /// The peer's address.
        addr: SocketAddr,
        /// How many peers it listed.
        len: usize,
        /// The most allowed ([`MAX_PEERS_PER_ANSWER`](voldisefs_proto::MAX_PEERS_PER_ANSWER)).
        max: usize,
    },
    /// No peer with this id is known.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// Bootstrap reached none of the given peers.
    #[error("bootstrap failed: none of {tried} peer(s) could be reached")]
    BootstrapFailed {
        /// How many addresses were tried.
        tried: usize,
    },
    /// The network key or this node's key pair is unusable.
    #[error("network key: {0}")]
    Key(String),
    /// This node is cut off from its peers (`Network::set_isolated`).
    #[error("this node is isolated from its peers")]
    Isolated,
    /// This node stayed frozen (`Network::set_frozen`) for the whole time a request allowed.
    #[error("this node is frozen")]
    Frozen,
    /// The network layer is shutting down.
    #[error("network is shutting down")]
    Shutdown,
    /// A local socket operation failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl NetError {
    /// The remote error code, if the peer answered with an error.
    pub fn remote_code(&self) -> Option<ErrorCode> {
        match self {
            NetError::Remote { code, .. } => Some(*code),
            _ => None,
        }
    }
}
