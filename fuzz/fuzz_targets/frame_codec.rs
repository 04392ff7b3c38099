//! The peer frame codec (voldisefs-proto `FrameCodec`) on arbitrary bytes.
//!
//! Input: `[cap index][split seed][stream]` (see `voldisefs_fuzz::frame_codec_input`). The stream
//! is fed to the decoder in reads cut by the split seed, then `decode_eof`. Checked:
//! - it never panics;
//! - the outcome (frames, then the final error kind) does not depend on how reads are cut
//!   (the whole stream at once gives the same);
//! - `TooLarge` only for an announced length above the cap, a frame only within the cap, and
//!   `Ok(None)` only while the buffer lacks a whole frame;
//! - the buffer grows with the bytes received, never with the announced length;
//! - a decoded frame's body is there exactly when its message carries one, and it re-encodes
//!   to bytes that decode to the same frame and re-encode identically (canonical form).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};
use voldisefs_fuzz::{Cursor, FRAME_CAPS, split_reads};
use voldisefs_proto::codec::GROWTH_STEP;
use voldisefs_proto::{CodecError, Frame, FrameCodec};

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Clean,
    TooLarge { len: usize, max: usize },
    Malformed(&'static str),
    Json,
    Truncated,
}

fn end_of(e: CodecError) -> End {
    match e {
        CodecError::TooLarge { len, max } => End::TooLarge { len, max },
        CodecError::Malformed(m) => End::Malformed(m),
        CodecError::Json(_) => End::Json,
        CodecError::Truncated => End::Truncated,
        other => panic!("the decoder reported an I/O error on a byte buffer: {other:?}"),
    }
}

fn announced(buf: &[u8]) -> Option<usize> {
    buf.get(..4)
        .map(|p| u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize)
}

/// One decode call with every per-call property checked; `eof` selects `decode_eof`.
fn step(
    codec: &mut FrameCodec,
    buf: &mut BytesMut,
    fed: usize,
    eof: bool,
) -> Result<Option<Frame>, CodecError> {
    let before = buf.len();
    let len = announced(buf);
    let cap = codec.max_frame_len();
    let result = if eof {
        codec.decode_eof(buf)
    } else {
        codec.decode(buf)
    };
    match &result {
        Ok(Some(frame)) => {
            let len = len.expect("a frame without a length prefix");
            assert!(
                len <= cap,
                "frame of {len} bytes decoded under a cap of {cap}"
            );
            assert_eq!(
                before - buf.len(),
                4 + len,
                "consumed bytes differ from the prefix"
            );
            assert_eq!(
                frame.body.is_some(),
                frame.envelope.message.carries_body(),
                "body presence disagrees with the message"
            );
        }
        Ok(None) => {
            assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
            if let Some(len) = len {
                assert!(buf.len() < 4 + len, "a whole frame was left undecoded");
            }
            if eof {
                assert!(buf.is_empty(), "decode_eof: Ok(None) with bytes left");
            }
            // Memory follows the bytes received, not the announced length: the codec's
            // own growth (at most 2x received, or received + 2 steps, or one small frame)
            // plus the doubling of our own appends.
            let bound = 4 * fed + 4 * GROWTH_STEP + 64;
            assert!(
                buf.capacity() <= bound,
                "buffer of {} bytes for {fed} received (announced {len:?})",
                buf.capacity()
            );
        }
        Err(CodecError::TooLarge { len: l, max }) => {
            assert_eq!(*max, cap);
            assert_eq!(
                Some(*l),
                len,
                "TooLarge names another length than the prefix"
            );
            assert!(l > max, "TooLarge for {l} <= cap {max}");
        }
        Err(CodecError::Truncated) => assert!(eof, "Truncated outside decode_eof"),
        Err(_) => {}
    }
    result
}

/// Decodes the reads; returns the frames and how it ended.
fn run(cap: usize, reads: &[&[u8]]) -> (Vec<Frame>, End) {
    let mut codec = FrameCodec::with_max_frame_len(cap);
    assert_eq!(codec.max_frame_len(), cap.min(u32::MAX as usize));
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut fed = 0;
    for read in reads {
        buf.extend_from_slice(read);
        fed += read.len();
        loop {
            match step(&mut codec, &mut buf, fed, false) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, end_of(e)),
            }
        }
    }
    loop {
        match step(&mut codec, &mut buf, fed, true) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => return (frames, End::Clean),
            Err(e) => return (frames, end_of(e)),
        }
    }
}

fn round_trip(frame: &Frame) {
    let mut codec = FrameCodec::new();
    let mut wire = BytesMut::new();
    match codec.encode(frame.clone(), &mut wire) {
        Ok(()) => {}
        // A frame decoded under a larger cap (or whose JSON re-encodes longer) may not fit.
        Err(CodecError::TooLarge { .. }) => return,
        Err(e) => panic!("a decoded frame does not re-encode: {e:?}"),
    }
    let wire_len = wire.len();
    let again = codec
        .decode(&mut wire)
        .expect("a re-encoded frame does not decode")
        .expect("a re-encoded frame is incomplete");
    assert!(wire.is_empty(), "re-encoded frame left bytes behind");
    assert_eq!(&again, frame, "frame changed in a round trip");
    let mut wire2 = BytesMut::new();
    codec.encode(again, &mut wire2).expect("second encode");
    assert_eq!(wire2.len(), wire_len, "encoding is not canonical");
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor(data);
    let cap = FRAME_CAPS[usize::from(c.u8()) % FRAME_CAPS.len()];
    let seed = c.u8();
    let stream = c.rest();
    let (frames, end) = run(cap, &split_reads(stream, seed));
    if seed != 0 {
        let (whole, whole_end) = run(cap, &[stream]);
        assert_eq!(whole, frames, "frames depend on how reads are cut");
        assert_eq!(whole_end, end, "the outcome depends on how reads are cut");
    }
    for frame in &frames {
        round_trip(frame);
    }
});
