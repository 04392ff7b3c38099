//! Frame codec: one JSON [`Envelope`] plus, for chunk-carrying messages, the raw chunk bytes.
//!
//! Layout of one frame (all integers big-endian):
//!
//! ```text
//! +-----------+-------------+----------------+----------------------+
//! | len: u32  | json_len:u32| json: json_len | body: len-4-json_len |
//! +-----------+-------------+----------------+----------------------+
//! ```
//!
//! `len` counts every byte after itself and is checked against the codec's cap *before* any
//! buffer is reserved for the frame, so a hostile length prefix cannot make us allocate.
//!
//! Memory grows with the bytes that arrive, never with what a length prefix announces: a frame
//! shorter than 64 KiB gets room for its rest at once; a larger one is read into a buffer that
//! grows in steps (to at most twice the bytes received, or received + 128 KiB); the first step
//! taken once half the frame has arrived (at the latest its last step) allocates a buffer of
//! the frame's exact size (see [`GROWTH_STEP`]). The
//! large body is then kept as one slice of that exact buffer, without a copy at the end and
//! without pinning unrelated bytes. A peer that announces 16 MiB and sends 10 bytes holds about
//! 128 KiB, not 16 MiB.
//!
//! The steps copy what arrived into each larger buffer: about one copy of every large frame.
//! Codecs given a shared [`ReserveBudget`] ([`FrameCodec::with_budget`]) skip them while the
//! budget lasts: a large frame's exact buffer is allocated as soon as its length is known and
//! its bytes are read straight into it, the frame's size drawn from the budget until the frame
//! is complete (or the codec dropped). When the budget is spent (peers that announce large
//! frames and stall hold it until the frame timeout closes them) the codec falls back to the
//! steps above, so the memory a peer can make us reserve ahead of its bytes is the budget for
//! all codecs together, plus twice what arrived.
//!
//! A codec given a [`FrameMemory`] ([`FrameCodec::with_memory`]) asks it before every buffer it
//! allocates for an incomplete frame, and allocates nothing it was refused: it then reports
//! itself [starved](FrameCodec::is_starved) and the caller waits (reads nothing more) until
//! memory frees. Such a codec allocates every buffer of an incomplete frame itself, at an
//! exact size (never through `BytesMut::reserve`, which may double a buffer), and drops an
//! empty buffer once a frame is complete, so what it was granted is exactly what its buffer
//! holds. A complete frame handed out is the caller's, no longer counted. The
//! body is present exactly when [`Message::carries_body`] says so; a body on any other message
//! is invalid. The decoder tells "need more bytes" (`Ok(None)`), "too large"
//! ([`CodecError::TooLarge`]) and "invalid" ([`CodecError::Malformed`], [`CodecError::Json`])
//! apart, and reports a stream that ends mid-frame as [`CodecError::Truncated`].
//!
//! The length prefix is handled here rather than by `tokio_util`'s `LengthDelimitedCodec`
//! because that codec reports an oversized frame as an untyped `io::Error`.

use std::fmt;
use std::io;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::{Envelope, Message, RequestId};

/// Default cap on `len`: a 16 MiB chunk body plus room for its JSON header.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024 + 64 * 1024;

/// Cap on the JSON part of a frame, whatever the frame cap.
pub const MAX_JSON_LEN: usize = 4 * 1024 * 1024;

/// Bytes before the JSON: `len` and `json_len`.
const HEADER_LEN: usize = 8;

/// Frames at least this long are read into a buffer of their own (exact size at the end).
const EXACT_BUFFER_MIN: usize = 64 * 1024;

/// Growth step of the buffer of an incomplete large frame.
///
/// While a frame of at least 64 KiB is incomplete, [`FrameCodec::decode`] leaves room in the
/// buffer for at least `min(GROWTH_STEP, rest of the frame)` more bytes; when there is less, it
/// moves the received bytes to a buffer of `min(frame, max(2 × received, received + 2 ×
/// GROWTH_STEP))` bytes. So the buffer is at most about twice what arrived, it is reallocated
/// only after at least `GROWTH_STEP` more bytes arrived (copies add up to about one frame), and
/// the first reallocation once half the frame has arrived (at the latest the one when less than
/// `GROWTH_STEP` is missing) gives it exactly the frame's size. Callers that append to the
/// buffer themselves (the Noise link appends one decrypted message of at most 65 519 bytes
/// between two `decode` calls) can rely on that room and never trigger a reallocation of their
/// own.
pub const GROWTH_STEP: usize = 64 * 1024;

/// One decoded frame: a message and, for chunk-carrying messages, its raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The message and its request id.
    pub envelope: Envelope,
    /// Raw bytes after the JSON; `Some` exactly when the message carries a body.
    pub body: Option<Bytes>,
}

impl Frame {
    /// A frame without body.
    pub fn new(id: RequestId, message: Message) -> Self {
        Self {
            envelope: Envelope::new(id, message),
            body: None,
        }
    }

    /// A frame whose message carries `body` (e.g. `put_chunk`, `chunk`).
    pub fn with_body(id: RequestId, message: Message, body: Bytes) -> Self {
        Self {
            envelope: Envelope::new(id, message),
            body: Some(body),
        }
    }
}

/// Why a frame could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The frame's announced length exceeds the cap.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced (or, when encoding, actual) frame length.
        len: usize,
        /// The cap in force.
        max: usize,
    },
    /// The frame's structure is wrong.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The JSON part is not a valid message.
    #[error("invalid message: {0}")]
    Json(#[from] serde_json::Error),
    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// Reading or writing the transport failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The memory for incomplete frames ran out and was taken back from this connection (see
    /// [`FrameMemory`]).
    #[error("frame memory taken back: the node's budget is spent and this peer held the most")]
    MemoryReclaimed,
}

impl CodecError {
    /// Whether the peer sent something invalid (as opposed to an I/O failure).
    pub fn is_peer_fault(&self) -> bool {
        !matches!(self, CodecError::Io(_))
    }
}

/// Bytes that codecs sharing it may allocate for large frames before those frames' bytes have
/// arrived (see the module docs). Cloning shares the budget.
#[derive(Debug, Clone)]
pub struct ReserveBudget(Arc<AtomicUsize>);

impl ReserveBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self(Arc::new(AtomicUsize::new(bytes)))
    }

    /// Bytes not reserved by any codec now.
    pub fn available(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Takes `bytes` if that many are left.
    fn try_take(&self, bytes: usize) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }
}

/// Bytes taken from a [`ReserveBudget`], given back when dropped.
#[derive(Debug)]
struct Reservation {
    budget: ReserveBudget,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.0.fetch_add(self.bytes, Ordering::AcqRel);
    }
}

/// Grants the memory of one buffer of incomplete frames (a share of a node-wide budget, say).
///
/// A codec with one ([`FrameCodec::with_memory`]) calls [`hold`](Self::hold) with the size of
/// every buffer it is about to allocate for an incomplete frame (the buffer it replaces is
/// freed) and with 0 once it drops its buffer after a complete frame.
pub trait FrameMemory: fmt::Debug + Send + Sync {
    /// Asks that the buffer be `bytes` long from now on; `false` refuses (nothing may be
    /// allocated then). Never refuses less than what the buffer holds already.
    fn hold(&self, bytes: usize) -> bool;
}

/// Replaces `src` by a buffer of exactly `capacity` bytes holding the same bytes.
pub fn regrow(src: &mut BytesMut, capacity: usize) {
    let mut grown = BytesMut::with_capacity(capacity.max(src.len()));
    grown.extend_from_slice(src);
    *src = grown;
}

/// [`Decoder`]/[`Encoder`] for [`Frame`]s; use with `tokio_util::codec::Framed`.
#[derive(Debug)]
pub struct FrameCodec {
    max_frame_len: usize,
    budget: Option<ReserveBudget>,
    /// What this codec holds of `budget` for the frame it is reading.
    reserved: Option<Reservation>,
    /// Asked before every buffer allocated for an incomplete frame.
    memory: Option<Arc<dyn FrameMemory>>,
    /// Whether the last `decode` needed a buffer `memory` refused.
    starved: bool,
}

impl Clone for FrameCodec {
    /// The same cap, budget and memory; the clone holds no reservation.
    fn clone(&self) -> Self {
        Self {
            max_frame_len: self.max_frame_len,
            budget: self.budget.clone(),
            reserved: None,
            memory: self.memory.clone(),
            starved: false,
        }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameCodec {
    /// A codec with the default cap [`MAX_FRAME_LEN`].
    pub const fn new() -> Self {
        Self {
            max_frame_len: MAX_FRAME_LEN,
            budget: None,
            reserved: None,
            memory: None,
            starved: false,
        }
    }

    /// A codec with a custom frame cap (it never exceeds `u32::MAX`).
    pub fn with_max_frame_len(max_frame_len: usize) -> Self {
        Self {
            max_frame_len: max_frame_len.min(u32::MAX as usize),
            ..Self::new()
        }
    }

    /// This codec, reading large frames into exact buffers while `budget` lasts (see the
    /// module docs).
    pub fn with_budget(mut self, budget: ReserveBudget) -> Self {
        self.reserved = None;
        self.budget = Some(budget);
        self
    }

    /// This codec, asking `memory` before every buffer it allocates for an incomplete frame
    /// (see the module docs).
    pub fn with_memory(mut self, memory: Arc<dyn FrameMemory>) -> Self {
        self.memory = Some(memory);
        self
    }

    /// Whether the last [`decode`](Decoder::decode) needed a larger buffer than its
    /// [`FrameMemory`] granted: it read nothing into one, and the caller should read no more
    /// bytes until memory frees (then decode again).
    pub fn is_starved(&self) -> bool {
        self.starved
    }

    /// Lets `src` hold `capacity` bytes: reclaimed in place or, if `memory` grants it, a new
    /// buffer of exactly that size. False (and starved) if refused.
    fn grow(&mut self, src: &mut BytesMut, capacity: usize) -> bool {
        let Some(memory) = &self.memory else {
            if capacity > src.capacity() {
                let mut grown = BytesMut::with_capacity(capacity);
                grown.extend_from_slice(src);
                *src = grown;
            }
            return true;
        };
        if src.capacity() >= capacity || src.try_reclaim(capacity - src.len()) {
            return true;
        }
        if !memory.hold(capacity) {
            self.starved = true;
            return false;
        }
        regrow(src, capacity);
        true
    }

    /// Takes `bytes` from the budget for the frame being read, if it has them.
    fn reserve(&mut self, bytes: usize) -> bool {
        match &self.budget {
            Some(budget) if budget.try_take(bytes) => {
                self.reserved = Some(Reservation {
                    budget: budget.clone(),
                    bytes,
                });
                true
            }
            _ => false,
        }
    }

    /// The frame cap in force.
    pub const fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Encodes `frame` without its body: the length prefix and JSON (counting the body in the
    /// length), so a writer can send the body straight from its buffer after them. Returns
    /// the body, which must follow on the wire exactly.
    pub fn encode_head(
        &mut self,
        frame: Frame,
        dst: &mut BytesMut,
    ) -> Result<Option<Bytes>, CodecError> {
        let body_len = match (frame.envelope.message.carries_body(), &frame.body) {
            (true, Some(body)) => body.len(),
            (true, None) => return Err(CodecError::Malformed("message needs a body")),
            (false, None) => 0,
            (false, Some(_)) => {
                return Err(CodecError::Malformed("body on a message that carries none"));
            }
        };
        let start = dst.len();
        dst.reserve(HEADER_LEN + 256);
        dst.put_u64(0);
        if let Err(e) = serde_json::to_writer((&mut *dst).writer(), &frame.envelope) {
            dst.truncate(start);
            return Err(e.into());
        }
        let json_len = dst.len() - start - HEADER_LEN;
        let len = dst.len() - start - 4 + body_len;
        if len > self.max_frame_len || json_len > MAX_JSON_LEN {
            dst.truncate(start);
            return Err(CodecError::TooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        // Both values are below the cap, itself at most u32::MAX.
        let header = ((len as u64) << 32) | json_len as u64;
        dst[start..start + HEADER_LEN].copy_from_slice(&header.to_be_bytes());
        Ok(frame.body)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        self.starved = false;
        let Some(prefix) = src.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len > self.max_frame_len {
            return Err(CodecError::TooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        if len < HEADER_LEN - 4 {
            return Err(CodecError::Malformed("frame shorter than its header"));
        }
        let want = 4 + len;
        if src.len() < want {
            if len < EXACT_BUFFER_MIN {
                // Below the growth step: room for the rest at once (bounded by the step).
                if self.memory.is_none() {
                    src.reserve(want - src.len());
                } else {
                    self.grow(src, want);
                }
            } else if self.reserved.is_none() && src.capacity() < want && self.reserve(want) {
                // Paid for by the budget: the exact buffer now, the rest read straight in.
                if !self.grow(src, want) {
                    self.reserved = None;
                }
            }
            if len >= EXACT_BUFFER_MIN && src.capacity() < want.min(src.len() + GROWTH_STEP) {
                // Grow with the bytes received, never to what the prefix announced: at most
                // twice what arrived, and exactly the frame from half of it on, so the
                // body is kept without a final copy and without pinning unrelated bytes.
                let received = src.len();
                let capacity = want.min((2 * received).max(received + 2 * GROWTH_STEP));
                self.grow(src, capacity);
            }
            return Ok(None);
        }
        // The frame is here: what it reserved is now simply its buffer.
        self.reserved = None;
        src.advance(4);
        let mut frame = src.split_to(len);
        if let (true, Some(memory)) = (src.is_empty(), &self.memory) {
            // The frame is the caller's now; an empty buffer would only pin it.
            *src = BytesMut::new();
            memory.hold(0);
        }
        let json_len = frame.get_u32() as usize;
        if json_len > frame.len() {
            return Err(CodecError::Malformed("JSON length exceeds the frame"));
        }
        if json_len > MAX_JSON_LEN {
            return Err(CodecError::Malformed("JSON part exceeds its limit"));
        }
        let json = frame.split_to(json_len);
        let envelope: Envelope = serde_json::from_slice(&json)?;
        let body = if envelope.message.carries_body() {
            Some(frame.freeze())
        } else if frame.is_empty() {
            None
        } else {
            return Err(CodecError::Malformed("body on a message that carries none"));
        };
        Ok(Some(Frame { envelope, body }))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(CodecError::Truncated),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        if let Some(body) = &frame.body {
            dst.reserve(HEADER_LEN + 256 + body.len());
        }
        if let Some(body) = self.encode_head(frame, dst)? {
            dst.extend_from_slice(&body);
        }
        Ok(())
    }
}
