//! Traffic counters: every frame this node sends or receives, counted at the codec.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};
use voldisefs_proto::{CodecError, Frame, FrameCodec};

/// Totals of peer traffic since the network started (all connections, both directions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes sent (frame headers included, TCP/IP overhead not).
    pub bytes_out: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Membership datagrams sent (gossip; 0 without it).
    pub datagrams_out: u64,
    /// Bytes of membership datagrams sent (envelope included, UDP/IP headers not).
    pub datagram_bytes_out: u64,
    /// Membership datagrams received (before they are opened: forged ones count too).
    pub datagrams_in: u64,
    /// Bytes of membership datagrams received.
    pub datagram_bytes_in: u64,
}

/// How many requests of one kind ended one way, in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestStat {
    /// `in` (served by this node) or `out` (sent by it).
    pub direction: &'static str,
    /// The request's wire name (`put_chunk`, `ping`, ...).
    pub kind: &'static str,
    /// `ok`; `error` (answered with an error message); `failed` (sent requests only: no
    /// answer, a timeout or a broken connection).
    pub outcome: &'static str,
    /// Requests so far.
    pub count: u64,
}

type RequestKey = (&'static str, &'static str, &'static str);

/// Shared atomic counters behind [`TrafficStats`] and [`RequestStat`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    frames_out: AtomicU64,
    bytes_out: AtomicU64,
    frames_in: AtomicU64,
    bytes_in: AtomicU64,
    datagrams_out: AtomicU64,
    datagram_bytes_out: AtomicU64,
    datagrams_in: AtomicU64,
    datagram_bytes_in: AtomicU64,
    requests: Mutex<HashMap<RequestKey, u64>>,
}

impl Counters {
    /// Counts one request.
    pub(crate) fn request(
        &self,
        direction: &'static str,
        kind: &'static str,
        outcome: &'static str,
    ) {
        let mut requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        *requests.entry((direction, kind, outcome)).or_insert(0) += 1;
    }

    /// Every request count, sorted.
    pub(crate) fn requests(&self) -> Vec<RequestStat> {
        let requests = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<RequestStat> = requests
            .iter()
            .map(|(&(direction, kind, outcome), &count)| RequestStat {
                direction,
                kind,
                outcome,
                count,
            })
            .collect();
        all.sort_by_key(|s| (s.direction, s.kind, s.outcome));
        all
    }

    pub(crate) fn snapshot(&self) -> TrafficStats {
        TrafficStats {
            frames_out: self.frames_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            frames_in: self.frames_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            datagrams_out: self.datagrams_out.load(Ordering::Relaxed),
            datagram_bytes_out: self.datagram_bytes_out.load(Ordering::Relaxed),
            datagrams_in: self.datagrams_in.load(Ordering::Relaxed),
            datagram_bytes_in: self.datagram_bytes_in.load(Ordering::Relaxed),
        }
    }

    /// Counts one membership datagram of `len` bytes sent.
    pub(crate) fn datagram_out(&self, len: usize) {
        self.datagrams_out.fetch_add(1, Ordering::Relaxed);
        self.datagram_bytes_out
            .fetch_add(len as u64, Ordering::Relaxed);
    }

    /// Counts one membership datagram of `len` bytes received.
    pub(crate) fn datagram_in(&self, len: usize) {
        self.datagrams_in.fetch_add(1, Ordering::Relaxed);
        self.datagram_bytes_in
            .fetch_add(len as u64, Ordering::Relaxed);
    }
}

/// [`FrameCodec`] that adds every frame it encodes or decodes to the node's counters.
#[derive(Debug, Clone)]
pub(crate) struct CountingCodec {
    inner: FrameCodec,
    counters: Arc<Counters>,
}

impl CountingCodec {
    pub(crate) fn new(max_frame_len: usize, counters: Arc<Counters>) -> Self {
        Self {
            inner: FrameCodec::with_max_frame_len(max_frame_len),
            counters,
        }
    }

    /// This codec, reading large frames into exact buffers while `budget` lasts.
    pub(crate) fn with_budget(mut self, budget: voldisefs_proto::ReserveBudget) -> Self {
        self.inner = self.inner.with_budget(budget);
        self
    }

    /// This codec, asking `memory` before every buffer it allocates for an incomplete frame.
    pub(crate) fn with_memory(
        mut self,
        memory: Arc<dyn voldisefs_proto::codec::FrameMemory>,
    ) -> Self {
        self.inner = self.inner.with_memory(memory);
        self
    }

    /// Whether the last decode was refused a buffer.
    pub(crate) fn is_starved(&self) -> bool {
        self.inner.is_starved()
    }

    fn count_in(&self, before: usize, after: usize, frame: &Option<Frame>) {
        if frame.is_some() {
            self.counters.frames_in.fetch_add(1, Ordering::Relaxed);
            let consumed = before.saturating_sub(after) as u64;
            self.counters
                .bytes_in
                .fetch_add(consumed, Ordering::Relaxed);
        }
    }
}

impl Decoder for CountingCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let before = src.len();
        let frame = self.inner.decode(src)?;
        self.count_in(before, src.len(), &frame);
        Ok(frame)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        let before = src.len();
        let frame = self.inner.decode_eof(src)?;
        self.count_in(before, src.len(), &frame);
        Ok(frame)
    }
}

impl CountingCodec {
    /// [`FrameCodec::encode_head`], counted: the body that must follow is counted as sent.
    pub(crate) fn encode_head(
        &mut self,
        frame: Frame,
        dst: &mut BytesMut,
    ) -> Result<Option<bytes::Bytes>, CodecError> {
        let before = dst.len();
        let body = self.inner.encode_head(frame, dst)?;
        self.counters.frames_out.fetch_add(1, Ordering::Relaxed);
        let written = (dst.len() - before + body.as_ref().map_or(0, bytes::Bytes::len)) as u64;
        self.counters
            .bytes_out
            .fetch_add(written, Ordering::Relaxed);
        Ok(body)
    }
}

impl Encoder<Frame> for CountingCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        let before = dst.len();
        self.inner.encode(frame, dst)?;
        self.counters.frames_out.fetch_add(1, Ordering::Relaxed);
        let written = (dst.len() - before) as u64;
        self.counters
            .bytes_out
            .fetch_add(written, Ordering::Relaxed);
        Ok(())
    }
}
