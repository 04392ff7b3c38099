//! Codec and message tests: round trips for every message, the wire shape, and hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};
use uuid::Uuid;
use voldisefs_proto::codec::GROWTH_STEP;
use voldisefs_proto::{
    ChunkId, ChunkProof, CodecError, DeleteKey, Envelope, ErrorCode, Frame, FrameCodec,
    MAX_FRAME_LEN, Message, NodeId, PROTOCOL_VERSION, PeerInfo, ProofDigest, ProofNonce,
    ReserveBudget,
};

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 16]>().prop_map(|b| NodeId::from_uuid(Uuid::from_bytes(b)))
}

/// Socket addresses as text can carry (the IPv6 flow label has no text form).
fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    (any::<std::net::IpAddr>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn chunk_id() -> impl Strategy<Value = ChunkId> {
    any::<[u8; 32]>().prop_map(ChunkId::from_bytes)
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::BadRequest),
        Just(ErrorCode::UnexpectedMessage),
        Just(ErrorCode::IncompatibleVersion),
        Just(ErrorCode::NotFound),
        Just(ErrorCode::Full),
        Just(ErrorCode::IntegrityMismatch),
        Just(ErrorCode::Unavailable),
        Just(ErrorCode::Internal),
        Just(ErrorCode::Deleted),
        Just(ErrorCode::Unknown),
    ]
}

fn chunk_proof() -> impl Strategy<Value = ChunkProof> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(|p| ChunkProof::Held {
            proof: ProofDigest::from_bytes(p)
        }),
        Just(ChunkProof::Missing),
        any::<[u8; 32]>().prop_map(|k| ChunkProof::Deleted {
            key: DeleteKey::from_bytes(k)
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u32>(), node_id(), socket_addr()).prop_map(|(version, node_id, addr)| {
            Message::Hello {
                version,
                node_id,
                listen_addr: addr,
            }
        }),
        Just(Message::GetPeers),
        prop::collection::vec(
            (node_id(), socket_addr()).prop_map(|(id, addr)| PeerInfo { id, addr }),
            0..20
        )
        .prop_map(|peers| Message::Peers { peers }),
        Just(Message::Ping),
        Just(Message::Pong),
        Just(Message::GetStats),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(objects, bytes, time)| {
            Message::Stats {
                objects,
                bytes,
                time,
            }
        }),
        chunk_id().prop_map(|chunk| Message::PutChunk { chunk }),
        chunk_id().prop_map(|chunk| Message::PutOk { chunk }),
        chunk_id().prop_map(|chunk| Message::GetChunk { chunk }),
        chunk_id().prop_map(|chunk| Message::Chunk { chunk }),
        prop::collection::vec(chunk_id(), 0..50).prop_map(|chunks| Message::HasChunks { chunks }),
        prop::collection::vec(any::<bool>(), 0..50).prop_map(|present| Message::Have { present }),
        (any::<[u8; 32]>(), prop::collection::vec(chunk_id(), 0..50)).prop_map(
            |(nonce, chunks)| Message::ProveChunks {
                nonce: ProofNonce::from_bytes(nonce),
                chunks
            }
        ),
        prop::collection::vec(chunk_proof(), 0..50).prop_map(|proofs| Message::Proofs { proofs }),
        (any::<[u8; 32]>(), prop::collection::vec(chunk_id(), 0..50)).prop_map(|(key, chunks)| {
            Message::DeleteChunks {
                key: DeleteKey::from_bytes(key),
                chunks,
            }
        }),
        node_id().prop_map(|node_id| Message::Leave { node_id }),
        Just(Message::Ack),
        (error_code(), ".{0,100}").prop_map(|(code, message)| Message::Error { code, message }),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        any::<u64>(),
        message(),
        prop::collection::vec(any::<u8>(), 0..4096),
    )
        .prop_map(|(id, message, body)| {
            if message.carries_body() {
                Frame::with_body(id, message, Bytes::from(body))
            } else {
                Frame::new(id, message)
            }
        })
}

fn encode(frame: Frame) -> BytesMut {
    let mut buf = BytesMut::new();
    FrameCodec::new().encode(frame, &mut buf).unwrap();
    buf
}

/// Raw frame bytes from a JSON text and body, bypassing the encoder's checks.
fn raw_frame(json: &str, body: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_u32((4 + json.len() + body.len()) as u32);
    buf.put_u32(json.len() as u32);
    buf.put_slice(json.as_bytes());
    buf.put_slice(body);
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_round_trips(frame in frame()) {
        let mut buf = encode(frame.clone());
        let decoded = FrameCodec::new().decode(&mut buf).unwrap().unwrap();
        prop_assert_eq!(decoded, frame);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn byte_by_byte_feeding_yields_the_same_frames(a in frame(), b in frame()) {
        let mut wire = encode(a.clone());
        wire.extend_from_slice(&encode(b.clone()));
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for byte in wire.iter() {
            buf.put_u8(*byte);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        prop_assert_eq!(out, vec![a, b]);
    }

    #[test]
    fn truncated_frames_need_more_bytes_then_fail_at_eof(frame in frame(), cut in any::<prop::sample::Index>()) {
        let wire = encode(frame);
        let cut = cut.index(wire.len()); // strictly shorter than the whole frame
        let mut buf = BytesMut::from(&wire[..cut]);
        let mut codec = FrameCodec::new();
        prop_assert!(codec.decode(&mut buf).unwrap().is_none());
        let eof = codec.decode_eof(&mut buf);
        if cut == 0 {
            prop_assert!(eof.unwrap().is_none());
        } else {
            prop_assert!(matches!(eof, Err(CodecError::Truncated)));
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&bytes[..]);
        for _ in 0..bytes.len() + 1 {
            match codec.decode(&mut buf) {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
        let _ = codec.decode_eof(&mut buf);
    }

    #[test]
    fn random_json_never_panics(json in ".{0,300}", body in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut buf = raw_frame(&json, &body);
        let _ = FrameCodec::new().decode(&mut buf);
    }

    #[test]
    fn mutated_frames_never_panic(frame in frame(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut wire = encode(frame);
        let i = pos.index(wire.len());
        wire[i] = byte;
        let mut codec = FrameCodec::new();
        let _ = codec.decode(&mut wire);
    }
}

#[test]
fn wire_shape_is_flat_tagged_json() {
    let chunk = ChunkId::digest(b"x");
    let json = serde_json::to_value(Envelope::new(7, Message::GetChunk { chunk })).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"id": 7, "type": "get_chunk", "chunk": chunk.to_string()})
    );
    let hello = Message::Hello {
        version: PROTOCOL_VERSION,
        node_id: NodeId::random(),
        listen_addr: "127.0.0.1:4100".parse().unwrap(),
    };
    let json = serde_json::to_value(Envelope::new(1, hello)).unwrap();
    assert_eq!(json["type"], "hello");
    assert_eq!(json["listen_addr"], "127.0.0.1:4100");
    let err =
        serde_json::to_value(Envelope::new(2, Message::error(ErrorCode::Full, "full"))).unwrap();
    assert_eq!(
        err,
        serde_json::json!({"id":2,"type":"error","code":"full","message":"full"})
    );
}

#[test]
fn oversized_length_prefix_is_refused_before_allocating() {
    let mut buf = BytesMut::new();
    buf.put_u32(u32::MAX);
    let before = buf.capacity();
    let err = FrameCodec::new().decode(&mut buf).unwrap_err();
    assert!(
        matches!(err, CodecError::TooLarge { len, max } if len == u32::MAX as usize && max == MAX_FRAME_LEN)
    );
    assert_eq!(buf.capacity(), before);

    let mut small = FrameCodec::with_max_frame_len(100);
    let mut buf = raw_frame(&"x".repeat(200), b"");
    assert!(matches!(
        small.decode(&mut buf),
        Err(CodecError::TooLarge { .. })
    ));
}

#[test]
fn encoder_refuses_frames_above_the_cap() {
    let body = Bytes::from(vec![0u8; 200]);
    let chunk = ChunkId::digest(&body);
    let mut buf = BytesMut::new();
    let err = FrameCodec::with_max_frame_len(100)
        .encode(
            Frame::with_body(1, Message::PutChunk { chunk }, body),
            &mut buf,
        )
        .unwrap_err();
    assert!(matches!(err, CodecError::TooLarge { .. }));
    assert!(buf.is_empty(), "nothing half-written");
}

#[test]
fn body_presence_must_match_the_message() {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    assert!(matches!(
        codec.encode(
            Frame::new(
                1,
                Message::PutChunk {
                    chunk: ChunkId::digest(b"")
                }
            ),
            &mut buf
        ),
        Err(CodecError::Malformed(_))
    ));
    assert!(matches!(
        codec.encode(
            Frame::with_body(1, Message::Ping, Bytes::from_static(b"x")),
            &mut buf
        ),
        Err(CodecError::Malformed(_))
    ));
    let mut buf = raw_frame(r#"{"id":1,"type":"ping"}"#, b"junk");
    assert!(matches!(
        codec.decode(&mut buf),
        Err(CodecError::Malformed(_))
    ));
    // An empty body is still a body for chunk messages.
    let chunk = ChunkId::digest(b"");
    let mut buf = raw_frame(
        &format!(r#"{{"id":1,"type":"chunk","chunk":"{chunk}"}}"#),
        b"",
    );
    let frame = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(frame.body, Some(Bytes::new()));
}

#[test]
fn invalid_messages_are_json_errors() {
    let mut codec = FrameCodec::new();
    for json in [
        r#"{"id":1,"type":"no_such_message"}"#,
        r#"{"id":1,"type":"get_chunk"}"#,
        r#"{"id":1,"type":"get_chunk","chunk":"nothex"}"#,
        r#"{"type":"ping"}"#,
        r#"{"id":-1,"type":"ping"}"#,
        r#"not json"#,
        r#""#,
    ] {
        let mut buf = raw_frame(json, b"");
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(matches!(err, CodecError::Json(_)), "{json}: {err}");
        assert!(err.is_peer_fault());
    }
}

#[test]
fn json_length_beyond_frame_is_malformed() {
    let mut buf = BytesMut::new();
    buf.put_u32(8);
    buf.put_u32(100);
    buf.put_u32(0);
    assert!(matches!(
        FrameCodec::new().decode(&mut buf),
        Err(CodecError::Malformed(_))
    ));
    let mut buf = BytesMut::new();
    buf.put_u32(2);
    buf.put_u16(0);
    assert!(matches!(
        FrameCodec::new().decode(&mut buf),
        Err(CodecError::Malformed(_))
    ));
}

#[test]
fn unknown_error_codes_decode_as_unknown() {
    let mut buf = raw_frame(
        r#"{"id":3,"type":"error","code":"from_the_future","message":"m"}"#,
        b"",
    );
    let frame = FrameCodec::new().decode(&mut buf).unwrap().unwrap();
    assert_eq!(
        frame.envelope.message,
        Message::error(ErrorCode::Unknown, "m")
    );
}

#[test]
fn request_and_response_kinds() {
    assert!(Message::Ping.is_request());
    assert!(!Message::Pong.is_request());
    assert_eq!(Message::HasChunks { chunks: vec![] }.kind(), "has_chunks");
    assert_eq!(
        serde_json::to_value(Message::HasChunks { chunks: vec![] }).unwrap()["type"],
        "has_chunks"
    );
}

#[test]
fn large_frames_grow_with_the_bytes_and_end_in_an_exact_buffer() {
    let body = Bytes::from(vec![9u8; 2 * 1024 * 1024]);
    let chunk = ChunkId::digest(&body);
    let wire = encode(Frame::with_body(5, Message::Chunk { chunk }, body.clone()));
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut frame = None;
    let mut fed = 0;
    for piece in wire.chunks(1000) {
        assert!(frame.is_none());
        buf.extend_from_slice(piece);
        fed += piece.len();
        frame = codec.decode(&mut buf).unwrap();
        if frame.is_none() {
            // Never more than twice what arrived (plus two growth steps at the start) ...
            assert!(
                buf.capacity() <= (2 * fed).max(fed + 2 * GROWTH_STEP),
                "{} bytes reserved after {fed}",
                buf.capacity()
            );
            // ... always room for the next step (what the Noise link relies on) ...
            assert!(buf.capacity() - buf.len() >= GROWTH_STEP.min(wire.len() - fed));
            // ... and exactly the frame by its last step.
            if fed + GROWTH_STEP >= wire.len() {
                assert_eq!(
                    buf.capacity(),
                    wire.len(),
                    "one buffer of exactly the frame"
                );
            }
        }
    }
    assert_eq!(frame.unwrap().body, Some(body));
    assert!(buf.is_empty());
}

/// A 1 MiB chunk frame on the wire.
fn chunk_frame() -> (Bytes, BytesMut) {
    let body = Bytes::from(vec![3u8; 1024 * 1024]);
    let chunk = ChunkId::digest(&body);
    let wire = encode(Frame::with_body(9, Message::Chunk { chunk }, body.clone()));
    (body, wire)
}

#[test]
fn with_a_budget_a_large_frame_is_read_into_one_buffer_without_copies() {
    let (body, wire) = chunk_frame();
    let budget = ReserveBudget::new(4 * 1024 * 1024);
    let mut codec = FrameCodec::new().with_budget(budget.clone());
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut pieces = wire.chunks(8 * 1024);
    buf.extend_from_slice(pieces.next().unwrap());
    assert!(codec.decode(&mut buf).unwrap().is_none());
    // The exact buffer at once, paid for by the budget ...
    assert_eq!(buf.capacity(), wire.len());
    assert_eq!(budget.available(), 4 * 1024 * 1024 - wire.len());
    let start = buf.as_ptr() as usize;
    let mut frame = None;
    for piece in pieces {
        assert!(frame.is_none());
        buf.extend_from_slice(piece);
        // ... and every later byte lands in it: no reallocation, no copy.
        assert_eq!(buf.as_ptr() as usize, start);
        frame = codec.decode(&mut buf).unwrap();
    }
    let got = frame.unwrap().body.unwrap();
    assert_eq!(got, body);
    assert!((start..start + wire.len()).contains(&(got.as_ptr() as usize)));
    // The frame is complete: the budget is whole again.
    assert_eq!(budget.available(), 4 * 1024 * 1024);
}

#[test]
fn a_spent_budget_falls_back_to_growing_with_the_bytes() {
    let (body, wire) = chunk_frame();
    // Less than one frame: every large frame takes the steps.
    let budget = ReserveBudget::new(wire.len() - 1);
    let mut codec = FrameCodec::new().with_budget(budget.clone());
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let (mut fed, mut frame) = (0, None);
    for piece in wire.chunks(4096) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        frame = codec.decode(&mut buf).unwrap();
        if frame.is_none() {
            assert!(buf.capacity() <= (2 * fed).max(fed + 2 * GROWTH_STEP));
        }
    }
    assert_eq!(frame.unwrap().body, Some(body));
    assert_eq!(budget.available(), wire.len() - 1);
}

#[test]
fn a_codec_dropped_mid_frame_gives_its_reservation_back() {
    let (_, wire) = chunk_frame();
    let budget = ReserveBudget::new(2 * wire.len());
    let mut codec = FrameCodec::new().with_budget(budget.clone());
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&wire[..100]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert_eq!(budget.available(), wire.len());
    // A clone shares the budget but holds nothing of it.
    let clone = codec.clone();
    drop(codec);
    assert_eq!(budget.available(), 2 * wire.len());
    drop(clone);
    assert_eq!(budget.available(), 2 * wire.len());
}

/// A hundred peers announce 16 MiB frames and stall: together they hold the budget and, for
/// those that found it spent, twice what they sent, not 1.6 GiB.
#[test]
fn stalled_announcements_hold_at_most_the_budget() {
    let budget = ReserveBudget::new(64 * 1024 * 1024);
    let mut held = 0;
    let mut codecs = Vec::new();
    for _ in 0..100 {
        let mut codec = FrameCodec::new().with_budget(budget.clone());
        let mut buf = BytesMut::new();
        buf.put_u32(16 * 1024 * 1024);
        buf.put_u32(6);
        buf.extend_from_slice(b"{\"id\":");
        assert!(codec.decode(&mut buf).unwrap().is_none());
        held += buf.capacity();
        codecs.push((codec, buf));
    }
    assert!(budget.available() < 16 * 1024 * 1024);
    assert!(
        held <= 64 * 1024 * 1024 + 100 * 256 * 1024,
        "{held} bytes held for 1400 received"
    );
    drop(codecs);
    assert_eq!(budget.available(), 64 * 1024 * 1024);
}

#[test]
fn an_announced_16_mib_frame_reserves_little_until_its_bytes_arrive() {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::new();
    buf.put_u32(16 * 1024 * 1024);
    // Ten bytes of the frame: its JSON length and six bytes.
    buf.put_u32(6);
    buf.extend_from_slice(b"{\"id\":");
    assert_eq!(buf.len(), 4 + 10);
    for _ in 0..3 {
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }
    assert!(
        buf.capacity() < 1024 * 1024,
        "{} bytes reserved for 14 received",
        buf.capacity()
    );
    assert!(matches!(
        codec.decode_eof(&mut buf),
        Err(CodecError::Truncated)
    ));
}

proptest! {
    /// A head from `encode_head` followed by the body it hands back is byte for byte what
    /// `encode` writes, for any frame.
    #[test]
    fn encode_head_then_body_is_encode(body in proptest::collection::vec(any::<u8>(), 0..70_000)) {
        let body = Bytes::from(body);
        let chunk = ChunkId::digest(&body);
        let frame = Frame::with_body(7, Message::PutChunk { chunk }, body.clone());
        let mut whole = BytesMut::new();
        FrameCodec::new().encode(frame.clone(), &mut whole).unwrap();
        let mut split = BytesMut::new();
        let rest = FrameCodec::new().encode_head(frame, &mut split).unwrap();
        prop_assert_eq!(rest.as_ref(), Some(&body));
        split.extend_from_slice(&body);
        prop_assert_eq!(split, whole);
    }
}
