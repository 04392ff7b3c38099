//! The codec of one peer link: plain frames (open mode) or frames inside Noise transport
//! messages (keyed mode), and reading frames under the frame and idle timeouts.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncRead;
use tokio::time::{Instant, Sleep};
use tokio_util::codec::{Decoder, Encoder};
use voldisefs_proto::codec::{FrameMemory, regrow};
use voldisefs_proto::{CodecError, Frame};

use crate::memory::{Buffer, Lease};
use crate::noise::NoiseCodec;
use crate::stats::CountingCodec;

/// Frames on the wire of one connection.
#[derive(Debug, Clone)]
pub(crate) enum LinkCodec {
    /// Open mode: plain length-prefixed frames.
    Open(CountingCodec),
    /// Keyed mode: frames inside Noise transport messages.
    Noise(Box<NoiseCodec>),
}

impl Decoder for LinkCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self {
            LinkCodec::Open(c) => c.decode(src),
            LinkCodec::Noise(c) => c.decode(src),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self {
            LinkCodec::Open(c) => c.decode_eof(src),
            LinkCodec::Noise(c) => c.decode_eof(src),
        }
    }
}

impl Encoder<Frame> for LinkCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        match self {
            LinkCodec::Open(c) => c.encode(frame, dst),
            LinkCodec::Noise(c) => c.encode(frame, dst),
        }
    }
}

impl LinkCodec {
    /// Whether the codec holds part of a frame itself (decrypted bytes, keyed mode).
    fn has_partial(&self) -> bool {
        match self {
            LinkCodec::Open(_) => false,
            LinkCodec::Noise(c) => c.has_partial(),
        }
    }

    /// This codec, holding its buffers of incomplete frames within `lease`.
    fn with_memory(self, lease: &Arc<Lease>) -> Self {
        match self {
            LinkCodec::Open(c) => LinkCodec::Open(c.with_memory(lease.memory(Buffer::Wire))),
            LinkCodec::Noise(c) => LinkCodec::Noise(Box::new(c.with_memory(lease))),
        }
    }

    /// Whether the last decode was refused a buffer.
    fn is_starved(&self) -> bool {
        match self {
            LinkCodec::Open(c) => c.is_starved(),
            LinkCodec::Noise(c) => c.is_starved(),
        }
    }
}

/// Room the reader makes for a read when no frame asks for more.
const READ_CHUNK: usize = 8 * 1024;

/// Reads the frames of one connection, holding every buffer of an incomplete frame within its
/// [`Lease`] on the node's frame memory budget (see [`crate::memory`]): a buffer it is refused
/// is not allocated, and the connection reads nothing more until memory frees (or the lease
/// is reclaimed: [`CodecError::MemoryReclaimed`]). A complete frame is handed out and no
/// longer counted; an empty buffer is dropped after it, so it pins nothing.
pub(crate) struct FrameReader<R> {
    io: R,
    codec: LinkCodec,
    buf: BytesMut,
    lease: Arc<Lease>,
    wire: Arc<dyn FrameMemory>,
    eof: bool,
    done: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of the frames `codec` decodes from `io`, its buffers held within `lease`.
    pub(crate) fn new(io: R, codec: LinkCodec, lease: Arc<Lease>) -> Self {
        Self {
            io,
            codec: codec.with_memory(&lease),
            buf: BytesMut::new(),
            wire: lease.memory(Buffer::Wire),
            lease,
            eof: false,
            done: false,
        }
    }

    /// Whether part of a frame is buffered.
    fn has_partial(&self) -> bool {
        !self.buf.is_empty() || self.codec.has_partial()
    }

    /// The next frame (`None`: the stream ended cleanly, or after an error).
    pub(crate) async fn next(&mut self) -> Option<Result<Frame, CodecError>> {
        std::future::poll_fn(|cx| self.poll_frame(cx)).await
    }

    /// Polls for the next frame. Cancel-safe: a partly read frame stays buffered.
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame, CodecError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        // Woken when memory frees or the lease is reclaimed, besides the socket's wakes.
        self.lease.register(cx);
        let next = self.poll_inner(cx);
        if matches!(next, Poll::Ready(None | Some(Err(_)))) {
            self.done = true;
        }
        next
    }

    fn poll_inner(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame, CodecError>>> {
        use std::task::Poll::{Pending, Ready};
        // Each round reads bytes or returns (the socket's cooperative budget ends a flood).
        loop {
            if self.lease.is_reclaimed() {
                return Ready(Some(Err(CodecError::MemoryReclaimed)));
            }
            let decoded = if self.eof {
                self.codec.decode_eof(&mut self.buf)
            } else {
                self.codec.decode(&mut self.buf)
            };
            match decoded {
                Err(e) => return Ready(Some(Err(e))),
                Ok(Some(frame)) => {
                    if self.buf.is_empty() {
                        self.buf = BytesMut::new();
                        self.wire.hold(0);
                    }
                    return Ready(Some(Ok(frame)));
                }
                Ok(None) if self.eof => return Ready(None),
                Ok(None) => {}
            }
            // Refused: the lease is enrolled to be woken when memory frees.
            if self.codec.is_starved() {
                return Pending;
            }
            if self.buf.len() == self.buf.capacity() && !self.buf.try_reclaim(READ_CHUNK) {
                let capacity = self.buf.len() + READ_CHUNK;
                if !self.wire.hold(capacity) {
                    return Pending;
                }
                regrow(&mut self.buf, capacity);
            }
            // A fresh `read_buf` each time: it holds no state between polls.
            let read = {
                use tokio::io::AsyncReadExt as _;
                std::pin::pin!(self.io.read_buf(&mut self.buf)).poll(cx)
            };
            match read {
                Pending => return Pending,
                Ready(Err(e)) => return Ready(Some(Err(e.into()))),
                Ready(Ok(0)) => self.eof = true,
                Ready(Ok(_)) => {}
            }
        }
    }
}

/// Why [`next_frame`] gave up on a connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The bytes received are not a valid frame, or reading failed.
    #[error("bad frame: {0}")]
    Codec(#[from] CodecError),
    /// A frame started but did not arrive whole within the frame timeout.
    #[error("frame not complete within {0:?} of its first byte")]
    FrameTimeout(Duration),
    /// No request in flight and no frame for the idle timeout.
    #[error("idle for {0:?}")]
    Idle(Duration),
}

/// What keeps an inbound connection from being idle: requests in flight (from the moment their
/// frame is read until their answer is written) and the time of the last frame or answer.
#[derive(Debug)]
pub(crate) struct Activity {
    busy: AtomicUsize,
    last: Mutex<Instant>,
}

/// One request in flight; ends (and counts as activity) when dropped.
#[derive(Debug)]
pub(crate) struct Busy(Arc<Activity>);

impl Activity {
    /// A connection that was active just now.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            busy: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        })
    }

    /// Records a frame received or sent now.
    pub(crate) fn touch(&self) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Marks one request in flight until the guard is dropped.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// The earliest time the connection may be closed as idle, as things stand: `idle` after
    /// the last activity, or `idle` from now while a request is in flight.
    fn idle_deadline(&self, idle: Duration) -> Instant {
        if self.busy.load(Ordering::SeqCst) > 0 {
            Instant::now() + idle
        } else {
            *self.last.lock().unwrap_or_else(PoisonError::into_inner) + idle
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Reads the next frame (`None`: the peer closed the connection cleanly).
///
/// Once part of a frame is buffered, the whole frame must arrive within `frame_timeout`
/// ([`ReadError::FrameTimeout`]). With `idle`, waiting between frames ends with
/// [`ReadError::Idle`] once the [`Activity`] shows nothing in flight and nothing received or
/// answered for that long. A connection waiting for frame memory waits under the same
/// timeouts. Cancel-safe (a partly read frame stays buffered; its timer starts
/// again on the next call).
pub(crate) async fn next_frame<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    frame_timeout: Duration,
    idle: Option<(&Activity, Duration)>,
) -> Result<Option<Frame>, ReadError> {
    let mut frame_timer: Option<Pin<Box<Sleep>>> = None;
    let mut idle_timer = idle.map(|(activity, limit)| {
        (
            activity,
            limit,
            Box::pin(tokio::time::sleep_until(activity.idle_deadline(limit))),
        )
    });
    std::future::poll_fn(|cx| {
        if let Poll::Ready(next) = reader.poll_frame(cx) {
            return Poll::Ready(next.transpose().map_err(ReadError::from));
        }
        if reader.has_partial() {
            let timer =
                frame_timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(frame_timeout)));
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(ReadError::FrameTimeout(frame_timeout)));
            }
        } else if let Some((activity, limit, timer)) = idle_timer.as_mut() {
            // Bounded: each round moves the deadline into the future or returns.
            while timer.as_mut().poll(cx).is_ready() {
                let deadline = activity.idle_deadline(*limit);
                if deadline <= Instant::now() {
                    return Poll::Ready(Err(ReadError::Idle(*limit)));
                }
                timer.as_mut().reset(deadline);
            }
        }
        Poll::Pending
    })
    .await
}

/// Bodies at least this long are written straight from their buffer (open mode) instead of
/// being copied into the frame buffer first.
const DIRECT_BODY_MIN: usize = 16 * 1024;
/// Buffered bytes beyond which [`LinkWriter::feed`] writes them out before taking more.
const WRITE_HIGH_WATER: usize = 256 * 1024;

/// The writing half of one peer link. Frames are encoded into one buffer and written out on
/// [`flush`](Self::flush) (so answers already queued go out together); in open mode a large
/// body (a chunk) is written from its own `Bytes` right after its frame's head, never copied
/// into the buffer. Keyed mode encrypts every byte into the buffer anyway.
pub(crate) struct LinkWriter<W> {
    io: W,
    codec: LinkCodec,
    buf: BytesMut,
}

impl<W: tokio::io::AsyncWrite + Unpin> LinkWriter<W> {
    /// A writer of frames encoded by `codec` to `io`.
    pub(crate) fn new(io: W, codec: LinkCodec) -> Self {
        Self {
            io,
            codec,
            buf: BytesMut::new(),
        }
    }

    /// Queues `frame`: encodes it into the buffer, or in open mode writes the buffer, the
    /// frame's head and its large body out at once.
    pub(crate) async fn feed(&mut self, frame: Frame) -> Result<(), CodecError> {
        use tokio::io::AsyncWriteExt as _;
        match &mut self.codec {
            LinkCodec::Open(codec)
                if frame
                    .body
                    .as_ref()
                    .is_some_and(|b| b.len() >= DIRECT_BODY_MIN) =>
            {
                let body = codec.encode_head(frame, &mut self.buf)?;
                self.io.write_all_buf(&mut self.buf).await?;
                if let Some(body) = body {
                    self.io.write_all(&body).await?;
                }
            }
            codec => {
                codec.encode(frame, &mut self.buf)?;
                if self.buf.len() >= WRITE_HIGH_WATER {
                    self.io.write_all_buf(&mut self.buf).await?;
                }
            }
        }
        Ok(())
    }

    /// Writes out everything queued.
    pub(crate) async fn flush(&mut self) -> Result<(), CodecError> {
        use tokio::io::AsyncWriteExt as _;
        self.io.write_all_buf(&mut self.buf).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Queues `frame` and writes everything out.
    pub(crate) async fn send(&mut self, frame: Frame) -> Result<(), CodecError> {
        self.feed(frame).await?;
        self.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Counters, CountingCodec};
    use bytes::Bytes;
    use futures_util::StreamExt;
    use tokio_util::codec::FramedRead;
    use voldisefs_proto::{ChunkId, MAX_FRAME_LEN, Message};

    /// Small frames, bodies written straight from their buffer and bodies copied all arrive
    /// whole and in order, and are counted as the buffered encoder counts them.
    #[tokio::test]
    async fn frames_arrive_whole_and_in_order_however_their_bodies_are_written() {
        let counters = Arc::new(Counters::default());
        let codec = LinkCodec::Open(CountingCodec::new(MAX_FRAME_LEN, counters.clone()));
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut writer = LinkWriter::new(client, codec);
        let bodies: Vec<Bytes> = [0usize, 100, DIRECT_BODY_MIN, 1 << 20, 5, 300_000]
            .iter()
            .enumerate()
            .map(|(i, &len)| Bytes::from(vec![i as u8; len]))
            .collect();
        let frames: Vec<Frame> = bodies
            .iter()
            .enumerate()
            .flat_map(|(i, body)| {
                let chunk = ChunkId::digest(body);
                [
                    Frame::new(2 * i as u64, Message::Ping),
                    Frame::with_body(2 * i as u64 + 1, Message::PutChunk { chunk }, body.clone()),
                ]
            })
            .collect();
        let expected = frames.clone();
        let write = async move {
            for frame in frames {
                writer.feed(frame).await.unwrap();
            }
            writer.flush().await.unwrap();
        };
        let read = async {
            let plain = LinkCodec::Open(CountingCodec::new(
                MAX_FRAME_LEN,
                Arc::new(Counters::default()),
            ));
            FramedRead::new(server, plain)
                .take(expected.len())
                .map(Result::unwrap)
                .collect::<Vec<Frame>>()
                .await
        };
        let ((), got) = tokio::join!(write, read);
        assert_eq!(got, expected);
        let mut buffered = BytesMut::new();
        for frame in expected {
            voldisefs_proto::FrameCodec::new()
                .encode(frame, &mut buffered)
                .unwrap();
        }
        let counted = counters.snapshot();
        assert_eq!(counted.bytes_out, buffered.len() as u64);
        assert_eq!(counted.frames_out, 12);
    }
}
