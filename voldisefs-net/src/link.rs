//! The codec of one peer link: plain frames (open mode) or frames inside Noise transport
//! messages (keyed mode).

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};
use voldisefs_proto::{CodecError, Frame};

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
