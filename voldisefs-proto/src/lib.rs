//! Voldisefs wire vocabulary: ids, peer messages and the frame codec.
//!
//! * [`NodeId`], [`ChunkId`], [`FileId`]: identifiers with hex/UUID text forms and serde.
//! * [`Message`] inside an [`Envelope`]: the JSON messages peers exchange, internally tagged by
//!   `type`, with a request id that responses echo.
//! * [`FrameCodec`]: a `tokio_util` codec for length-prefixed frames of one JSON message plus
//!   an optional raw body, with a hard size cap.
//!
//! Goals: a small, strict vocabulary that refuses anything malformed with a typed error.
//! Non-goals: transport, retries, authentication (see `voldisefs-net`).
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use tokio_util::codec::{Decoder, Encoder};
//! use voldisefs_proto::{ChunkId, Frame, FrameCodec, Message};
//!
//! let body = Bytes::from_static(b"ciphertext");
//! let chunk = ChunkId::digest(&body);
//! let mut codec = FrameCodec::new();
//! let mut buf = BytesMut::new();
//! codec.encode(Frame::with_body(7, Message::PutChunk { chunk }, body.clone()), &mut buf)?;
//! let frame = codec.decode(&mut buf)?.expect("one whole frame");
//! assert_eq!(frame.envelope.id, 7);
//! assert_eq!(frame.envelope.message, Message::PutChunk { chunk });
//! assert_eq!(frame.body, Some(body));
//! # Ok::<(), voldisefs_proto::CodecError>(())
//! ```

pub mod codec;
// Native only: a browser build draws through the Web Crypto API (`voldisefs-crypto`).
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub mod entropy;
mod ids;
mod message;
pub mod objects;
// Proofs of possession are between nodes, and use ring (a C compiler for wasm32): left out of
// a browser build, where the page's client library has no use for them.
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub mod proof;

pub use codec::{CodecError, Frame, FrameCodec, MAX_FRAME_LEN, ReserveBudget};
pub use ids::{ChunkId, DeleteKey, FileId, IdError, NodeId, ProofDigest, ProofNonce};
pub use message::{
    ChunkProof, Envelope, ErrorCode, MAX_BATCH, MAX_PEERS_PER_ANSWER, Message, PROTOCOL_VERSION,
    PeerInfo, RequestId,
};
