//! The Noise transport framing of voldisefs-net, through its only public surface: a keyed
//! [`Network`] server on loopback TCP.
//!
//! `NoiseCodec` and `noise::handshake` are crate-private, so each execution starts a fresh
//! keyed server (fresh state: the outcome depends only on the input), connects to it, speaks
//! the Noise handshake from outside with `snow` (same parameters, prologue and network key),
//! and then sends the fuzzer's transport messages: encrypted under the right key and nonce
//! (so the frame codec behind the Noise layer sees the fuzzer's plaintext), raw (forged
//! lengths, garbage ciphertext), tampered, or with a skipped nonce. Then it half-closes and
//! reads until the server closes the link. A panic in any of the server's tasks aborts the
//! process (libFuzzer's panic hook), so it is found even though tokio would catch it.
//!
//! Input: `[mode][ops...]` (see `voldisefs_fuzz::NoiseMode` and `NoiseOp`).
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use snow::{Builder, HandshakeState, StatelessTransportState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Encoder;
use voldisefs_fuzz::{
    Cursor, NETWORK_KEY_HEX, NOISE_MAX_PLAIN, NOISE_PROLOGUE, NoiseMode, NoiseOp, parse_noise_ops,
};
use voldisefs_net::{
    CancellationToken, Handler, NOISE_PARAMS, NetConfig, Network, NetworkKey, PROTOCOL_VERSION,
    Payload, node_id_for,
};
use voldisefs_proto::{ChunkId, ErrorCode, Frame, FrameCodec, Message, NodeId};

/// Answers chunk requests so the server's encoder (with bodies) runs too.
struct Answer;

impl Handler for Answer {
    async fn handle(&self, _from: NodeId, req: Payload) -> Payload {
        match req.message {
            Message::PutChunk { chunk } => Payload::new(Message::PutOk { chunk }),
            Message::GetChunk { .. } => {
                let body = Bytes::from_static(b"fuzz chunk body");
                Payload::with_body(
                    Message::Chunk {
                        chunk: ChunkId::digest(&body),
                    },
                    body,
                )
            }
            _ => Payload::new(Message::error(ErrorCode::BadRequest, "fuzz server")),
        }
    }
}

struct Harness {
    rt: tokio::runtime::Runtime,
    key: [u8; 32],
    private: Vec<u8>,
    node_id: NodeId,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&NETWORK_KEY_HEX[2 * i..2 * i + 2], 16).expect("hex");
    }
    let pair = Builder::new(NOISE_PARAMS.parse().expect("params"))
        .generate_keypair()
        .expect("keypair");
    Harness {
        rt,
        key,
        node_id: node_id_for(&pair.public),
        private: pair.private,
    }
});

fn config() -> NetConfig {
    NetConfig {
        network_key: Some(NetworkKey::from_hex(NETWORK_KEY_HEX).expect("key")),
        handshake_timeout: Duration::from_secs(2),
        frame_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        // No background traffic of the server's own during an execution.
        probe_interval: Duration::from_secs(3600),
        discovery_interval: Duration::from_secs(3600),
        ..NetConfig::default()
    }
}

async fn send_handshake(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(2 + message.len());
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
    stream.write_all(&out).await
}

async fn read_handshake(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

fn initiator(h: &Harness) -> HandshakeState {
    Builder::new(NOISE_PARAMS.parse().expect("params"))
        .local_private_key(&h.private)
        .and_then(|b| b.psk(3, &h.key))
        .and_then(|b| b.prologue(NOISE_PROLOGUE))
        .and_then(|b| b.build_initiator())
        .expect("initiator")
}

/// `-> e`, then `<- e, ee, s, es` read and checked.
async fn first_message(stream: &mut TcpStream, state: &mut HandshakeState) {
    let mut buf = [0u8; 1024];
    let n = state.write_message(&[], &mut buf).expect("write e");
    send_handshake(stream, &buf[..n]).await.expect("send e");
    let answer = read_handshake(stream)
        .await
        .expect("the server did not answer -> e");
    state
        .read_message(&answer, &mut buf)
        .expect("the server's handshake answer does not verify (prologue or key out of step?)");
}

/// The whole handshake; the transport state.
async fn handshake(stream: &mut TcpStream, h: &Harness) -> StatelessTransportState {
    let mut state = initiator(h);
    first_message(stream, &mut state).await;
    let mut buf = [0u8; 1024];
    let n = state.write_message(&[], &mut buf).expect("write s");
    send_handshake(stream, &buf[..n]).await.expect("send s");
    state.into_stateless_transport_mode().expect("transport")
}

/// One encrypted transport message on the wire: `u16 length || ciphertext`.
fn seal(transport: &StatelessTransportState, nonce: &mut u64, plain: &[u8]) -> Vec<u8> {
    let plain = &plain[..plain.len().min(NOISE_MAX_PLAIN)];
    let mut out = vec![0u8; 2 + plain.len() + 16];
    let n = transport
        .write_message(*nonce, plain, &mut out[2..])
        .expect("encrypt");
    *nonce += 1;
    out.truncate(2 + n);
    let len = (n as u16).to_be_bytes();
    out[..2].copy_from_slice(&len);
    out
}

async fn exec(data: &[u8]) {
    let h = &*HARNESS;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let token = CancellationToken::new();
    let server =
        Network::start(listener, None, Arc::new(Answer), config(), token).expect("start server");
    let mut stream = TcpStream::connect(server.local().addr)
        .await
        .expect("connect");
    stream.set_nodelay(true).ok();
    let mut c = Cursor(data);
    let mode = NoiseMode::from_byte(c.u8());
    // Writes may fail once the server has closed on a bad message: that is its right.
    match mode {
        NoiseMode::Raw => {
            let _ = stream.write_all(c.rest()).await;
        }
        NoiseMode::AfterFirstMessage => {
            first_message(&mut stream, &mut initiator(h)).await;
            let _ = stream.write_all(c.rest()).await;
        }
        NoiseMode::Transport | NoiseMode::TransportAfterHello => {
            let transport = handshake(&mut stream, h).await;
            let mut nonce = 0u64;
            if mode == NoiseMode::TransportAfterHello {
                let hello = Message::Hello {
                    version: PROTOCOL_VERSION,
                    node_id: h.node_id,
                    listen_addr: "127.0.0.1:9".parse().expect("addr"),
                };
                let mut plain = bytes::BytesMut::new();
                FrameCodec::new()
                    .encode(Frame::new(0, hello), &mut plain)
                    .expect("encode hello");
                let _ = stream
                    .write_all(&seal(&transport, &mut nonce, &plain))
                    .await;
            }
            for (op, bytes) in parse_noise_ops(c) {
                let wire = match op {
                    NoiseOp::Encrypt => seal(&transport, &mut nonce, bytes),
                    NoiseOp::Raw => bytes.to_vec(),
                    NoiseOp::Tamper => {
                        let (&at, rest) = bytes.split_first().unwrap_or((&0, &[]));
                        let mut wire = seal(&transport, &mut nonce, rest);
                        let i = 2 + usize::from(at) % (wire.len() - 2);
                        wire[i] ^= 0x01;
                        wire
                    }
                    NoiseOp::SkipNonce => {
                        nonce += 1;
                        seal(&transport, &mut nonce, bytes)
                    }
                };
                if stream.write_all(&wire).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown().await;
    // Drain answers until the server closes the link (it must, at the latest on our EOF).
    let mut sink = vec![0u8; 64 * 1024];
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the server kept the link open 10 s after our EOF"
    );
    server.shutdown().await;
}

fuzz_target!(|data: &[u8]| {
    HARNESS.rt.block_on(exec(data));
});
