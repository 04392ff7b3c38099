//! Encrypted, authenticated peer links (keyed mode).
//!
//! Every connection opens with a `Noise_XXpsk3_25519_AESGCM_SHA256` handshake before any
//! protocol byte: the network key is the pre-shared key, so a host without it cannot complete
//! the handshake, and each side learns the other's static X25519 key. A node's [`NodeId`] is
//! derived from its static key ([`node_id_for`]), so the `hello` that follows can be checked:
//! no node can speak for another's id. After the handshake every frame travels inside Noise
//! transport messages (AES-256-GCM, at most 65 535 bytes each, counter nonces), so traffic is
//! confidential and any tampering, replay or reordering breaks the connection.
//!
//! Handshake messages on the wire: `u16` big-endian length, then the Noise message.
//! Transport: the same, one Noise message per at most 65 519 bytes of frame data.

use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};
use snow::{Builder, StatelessTransportState};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};
use uuid::Uuid;
use voldisefs_proto::codec::{FrameMemory, regrow};
use voldisefs_proto::{CodecError, Frame, NodeId};
use zeroize::Zeroizing;

use crate::NetError;
use crate::memory::{Buffer, Lease};
use crate::stats::CountingCodec;

/// The Noise protocol name used for every keyed link.
pub const NOISE_PARAMS: &str = "Noise_XXpsk3_25519_AESGCM_SHA256";
/// Length of the network key in bytes.
pub const NETWORK_KEY_LEN: usize = 32;
/// Largest Noise message (the spec's limit).
const MAX_MESSAGE: usize = 65_535;
/// AES-GCM tag per Noise message.
const TAG: usize = 16;
/// Plaintext bytes per transport message.
const MAX_PLAIN: usize = MAX_MESSAGE - TAG;
// The frame codec's growth room must hold one whole message (see `NoiseCodec::decode`).
const _: () = assert!(voldisefs_proto::codec::GROWTH_STEP >= MAX_PLAIN);
/// Handshake messages are small; anything larger is hostile.
const MAX_HANDSHAKE_MESSAGE: usize = 1024;
/// Prologue binding the handshake to this protocol.
const PROLOGUE: &[u8] = b"voldisefs peer link v1";

/// The network's shared secret: only nodes holding it can join. Wiped when dropped; its
/// `Debug` shows nothing.
#[derive(Clone)]
pub struct NetworkKey(Zeroizing<[u8; NETWORK_KEY_LEN]>);

impl std::fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetworkKey(..)")
    }
}

impl NetworkKey {
    /// A fresh random key from the system's secure random generator.
    pub fn generate() -> Result<Self, NetError> {
        let mut key = Zeroizing::new([0u8; NETWORK_KEY_LEN]);
        voldisefs_proto::entropy::fill(&mut key[..])
            .map_err(|_| NetError::Key("the system random generator failed".into()))?;
        Ok(Self(key))
    }

    /// The raw key (to derive the membership datagram keys from).
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0[..]
    }

    /// Parses the text form: 64 hexadecimal digits, surrounding whitespace ignored.
    pub fn from_hex(text: &str) -> Result<Self, NetError> {
        let text = text.trim();
        let mut key = Zeroizing::new([0u8; NETWORK_KEY_LEN]);
        if text.len() != 2 * NETWORK_KEY_LEN || hex::decode_to_slice(text, &mut key[..]).is_err() {
            return Err(NetError::Key(format!(
                "a network key is {} hexadecimal digits",
                2 * NETWORK_KEY_LEN
            )));
        }
        Ok(Self(key))
    }

    /// The text form written by `voldisefs keygen` (64 lowercase hex digits).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0[..]))
    }
}

/// A node's static X25519 key pair for its lifetime, and the id derived from it.
pub(crate) struct Identity {
    private: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("node_id", &self.node_id())
            .finish_non_exhaustive()
    }
}

/// A Noise builder whose random bytes (key pairs, ephemeral keys) come from
/// `voldisefs_proto::entropy`, the one source of every native draw, and whose primitives come
/// from ring where it has them.
fn builder(params: snow::params::NoiseParams) -> Builder<'static> {
    use snow::resolvers::{DefaultResolver, FallbackResolver, RingResolver};
    Builder::with_resolver(
        params,
        Box::new(FallbackResolver::new(
            Box::new(EntropyResolver),
            Box::new(FallbackResolver::new(
                Box::new(RingResolver),
                Box::new(DefaultResolver),
            )),
        )),
    )
}

/// Resolves only Noise's random generator: [`voldisefs_proto::entropy`].
struct EntropyResolver;

impl snow::resolvers::CryptoResolver for EntropyResolver {
    fn resolve_rng(&self) -> Option<Box<dyn snow::types::Random>> {
        Some(Box::new(EntropyRng))
    }

    fn resolve_dh(&self, _: &snow::params::DHChoice) -> Option<Box<dyn snow::types::Dh>> {
        None
    }

    fn resolve_hash(&self, _: &snow::params::HashChoice) -> Option<Box<dyn snow::types::Hash>> {
        None
    }

    fn resolve_cipher(
        &self,
        _: &snow::params::CipherChoice,
    ) -> Option<Box<dyn snow::types::Cipher>> {
        None
    }
}

/// [`voldisefs_proto::entropy::fill`] as Noise's generator.
struct EntropyRng;

impl snow::types::Random for EntropyRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        voldisefs_proto::entropy::fill(dest).map_err(|_| snow::Error::Rng)
    }
}

fn params() -> Result<snow::params::NoiseParams, NetError> {
    NOISE_PARAMS
        .parse()
        .map_err(|e| NetError::Key(format!("noise parameters: {e}")))
}

impl Identity {
    /// A fresh key pair.
    pub(crate) fn generate() -> Result<Self, NetError> {
        let keypair = builder(params()?)
            .generate_keypair()
            .map_err(|e| NetError::Key(format!("cannot generate a key pair: {e}")))?;
        Ok(Self {
            private: Zeroizing::new(keypair.private),
            public: keypair.public,
        })
    }

    /// The node id bound to this key pair.
    pub(crate) fn node_id(&self) -> NodeId {
        node_id_for(&self.public)
    }
}

/// The node id that belongs to a static public key: a UUID (version 8) made of the first 16
/// bytes of SHA-256("voldisefs node id v1" || key). Only the holder of the private key can
/// complete a handshake under it.
pub fn node_id_for(static_public: &[u8]) -> NodeId {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"voldisefs node id v1");
    ctx.update(static_public);
    let digest = ctx.finish();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.as_ref()[..16]);
    NodeId::from_uuid(Uuid::new_v8(first))
}

/// An established keyed link: the transport cipher states and the peer's static key.
#[derive(Clone)]
pub(crate) struct Session {
    transport: Arc<StatelessTransportState>,
    /// The id the peer's static key entitles it to.
    pub(crate) remote_id: NodeId,
}

fn handshake_error(step: &str, e: impl std::fmt::Display) -> String {
    format!("noise handshake failed at {step}: {e}")
}

async fn send_message<S: AsyncWrite + Unpin>(stream: &mut S, message: &[u8]) -> Result<(), String> {
    let len = u16::try_from(message.len()).map_err(|_| "handshake message too long")?;
    let mut out = Vec::with_capacity(2 + message.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    stream.write_all(&out).await.map_err(|e| e.to_string())
}

async fn read_message<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, String> {
    let mut len = [0u8; 2];
    stream
        .read_exact(&mut len)
        .await
        .map_err(|e| format!("reading handshake: {e}"))?;
    let len = usize::from(u16::from_be_bytes(len));
    if len > MAX_HANDSHAKE_MESSAGE {
        return Err(format!("handshake message of {len} bytes"));
    }
    let mut message = vec![0u8; len];
    stream
        .read_exact(&mut message)
        .await
        .map_err(|e| format!("reading handshake: {e}"))?;
    Ok(message)
}

/// Runs the handshake on a fresh connection. `initiator` is the dialing side. The caller
/// bounds it with a timeout.
pub(crate) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    key: &NetworkKey,
    identity: &Identity,
    initiator: bool,
) -> Result<Session, String> {
    let builder = builder(params().map_err(|e| e.to_string())?)
        .local_private_key(&identity.private)
        .and_then(|b| b.psk(3, &key.0))
        .and_then(|b| b.prologue(PROLOGUE))
        .map_err(|e| handshake_error("setup", e))?;
    let mut state = if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
    .map_err(|e| handshake_error("setup", e))?;
    let mut buf = [0u8; MAX_HANDSHAKE_MESSAGE];
    let mut scratch = [0u8; MAX_HANDSHAKE_MESSAGE];
    // XX: -> e ; <- e, ee, s, es ; -> s, se, psk
    for step in 0..3 {
        let ours = (step % 2 == 0) == initiator;
        if ours {
            let n = state
                .write_message(&[], &mut buf)
                .map_err(|e| handshake_error("write", e))?;
            send_message(stream, &buf[..n]).await?;
        } else {
            let message = read_message(stream).await?;
            state
                .read_message(&message, &mut scratch)
                .map_err(|e| handshake_error("read (wrong network key?)", e))?;
        }
    }
    let remote_id = node_id_for(
        state
            .get_remote_static()
            .ok_or_else(|| handshake_error("finish", "no remote static key"))?,
    );
    let transport = state
        .into_stateless_transport_mode()
        .map_err(|e| handshake_error("finish", e))?;
    Ok(Session {
        transport: Arc::new(transport),
        remote_id,
    })
}

/// Encrypts frames into Noise transport messages and back, around the plain frame codec.
#[derive(Clone)]
pub(crate) struct NoiseCodec {
    session: Session,
    inner: CountingCodec,
    send_nonce: u64,
    recv_nonce: u64,
    /// Encoded frames waiting to be encrypted.
    plain_out: BytesMut,
    /// Decrypted bytes waiting to form a frame.
    plain_in: BytesMut,
    /// Grants the buffers of incomplete frames: (ciphertext, decrypted bytes).
    memory: Option<(Arc<dyn FrameMemory>, Arc<dyn FrameMemory>)>,
    /// Whether the last `decode` needed a buffer `memory` refused.
    starved: bool,
}

impl std::fmt::Debug for NoiseCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseCodec").finish_non_exhaustive()
    }
}

impl NoiseCodec {
    pub(crate) fn new(session: Session, inner: CountingCodec) -> Self {
        Self {
            session,
            inner,
            send_nonce: 0,
            recv_nonce: 0,
            plain_out: BytesMut::new(),
            plain_in: BytesMut::new(),
            memory: None,
            starved: false,
        }
    }

    /// This codec, holding its buffers of incomplete frames (the ciphertext read and the
    /// decrypted bytes) within `lease`.
    pub(crate) fn with_memory(mut self, lease: &Arc<Lease>) -> Self {
        self.inner = self.inner.with_memory(lease.memory(Buffer::Plain));
        self.memory = Some((lease.memory(Buffer::Wire), lease.memory(Buffer::Plain)));
        self
    }

    /// Whether decrypted bytes of an incomplete frame are waiting.
    pub(crate) fn has_partial(&self) -> bool {
        !self.plain_in.is_empty()
    }

    /// Whether the last `decode` was refused a buffer: read nothing until memory frees.
    pub(crate) fn is_starved(&self) -> bool {
        self.starved || self.inner.is_starved()
    }

    /// Decrypts the next whole transport message in `src` into `plain_in`; false if `src`
    /// does not hold one yet.
    fn decrypt_one(&mut self, src: &mut BytesMut) -> Result<bool, CodecError> {
        let Some(prefix) = src.get(..2) else {
            return Ok(false);
        };
        let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
        if len < TAG {
            return Err(CodecError::Malformed("noise message shorter than its tag"));
        }
        if src.len() < 2 + len {
            let wire = self.memory.as_ref().map(|(wire, _)| wire);
            self.starved = !grow(src, 2 + len, wire);
            return Ok(false);
        }
        let plain_len = len - TAG;
        if self.plain_in.capacity() - self.plain_in.len() < plain_len {
            // The frame codec leaves room for a message once it knows the frame's length;
            // before that (or when it was refused a buffer) room is made here.
            let plain = self.memory.as_ref().map(|(_, plain)| plain);
            let want = self.plain_in.len() + plain_len;
            if self.inner.is_starved() || !grow(&mut self.plain_in, want, plain) {
                self.starved = true;
                return Ok(false);
            }
        }
        src.advance(2);
        let message = src.split_to(len);
        let start = self.plain_in.len();
        self.plain_in.resize(start + len - TAG, 0);
        let n = self
            .session
            .transport
            .read_message(self.recv_nonce, &message, &mut self.plain_in[start..])
            .map_err(|_| CodecError::Malformed("noise message failed authentication"))?;
        self.plain_in.truncate(start + n);
        self.recv_nonce += 1;
        Ok(true)
    }
}

/// Lets `buf` hold `capacity` bytes: reclaimed in place, or a new buffer of exactly that size
/// if `memory` (when given) grants it. False if refused.
fn grow(buf: &mut BytesMut, capacity: usize, memory: Option<&Arc<dyn FrameMemory>>) -> bool {
    if buf.capacity() >= capacity || buf.try_reclaim(capacity - buf.len()) {
        return true;
    }
    if memory.is_some_and(|m| !m.hold(capacity)) {
        return false;
    }
    regrow(buf, capacity);
    true
}

impl Decoder for NoiseCodec {
    type Item = Frame;
    type Error = CodecError;

    /// Decrypts one message at a time and offers the plaintext to the frame codec in
    /// between: the encoder never lets a message span two frames, and the frame codec always
    /// leaves room for one more message of the frame it waits for (its
    /// [`GROWTH_STEP`](voldisefs_proto::codec::GROWTH_STEP) is at least [`MAX_PLAIN`]), so
    /// appending never reallocates behind the frame codec's back: the buffer grows with the
    /// bytes that arrive and a large frame ends in the frame codec's exact-size buffer.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        self.starved = false;
        loop {
            if let Some(frame) = self.inner.decode(&mut self.plain_in)? {
                return Ok(Some(frame));
            }
            if !self.decrypt_one(src)? {
                return Ok(None);
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() && self.plain_in.is_empty() => Ok(None),
            None => Err(CodecError::Truncated),
        }
    }
}

impl Encoder<Frame> for NoiseCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.plain_out.clear();
        self.inner.encode(frame, &mut self.plain_out)?;
        let pieces = self.plain_out.len().div_ceil(MAX_PLAIN);
        dst.reserve(self.plain_out.len() + pieces * (2 + TAG));
        for piece in self.plain_out.chunks(MAX_PLAIN) {
            let len = piece.len() + TAG;
            // `len` fits: pieces are at most MAX_PLAIN bytes.
            dst.put_u16(len as u16);
            let start = dst.len();
            dst.resize(start + len, 0);
            self.session
                .transport
                .write_message(self.send_nonce, piece, &mut dst[start..])
                .map_err(|_| CodecError::Malformed("noise encryption failed"))?;
            self.send_nonce += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Handler, NetConfig, Network, Payload};
    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpStream;
    use tokio_util::codec::Framed;
    use voldisefs_proto::{ErrorCode, Message, PROTOCOL_VERSION};

    struct Nothing;

    impl Handler for Nothing {
        async fn handle(&self, _from: NodeId, _req: Payload) -> Payload {
            Payload::new(Message::error(ErrorCode::BadRequest, "nothing here"))
        }
    }

    /// Completes a real handshake with `server` under `key`, then says hello as `claimed`.
    async fn hello_as(server: &Network, key: &NetworkKey, claimed: Option<NodeId>) -> Message {
        let identity = Identity::generate().unwrap();
        let claimed = claimed.unwrap_or_else(|| identity.node_id());
        let mut stream = TcpStream::connect(server.local().addr).await.unwrap();
        let session = handshake(&mut stream, key, &identity, true).await.unwrap();
        let inner = CountingCodec::new(voldisefs_proto::MAX_FRAME_LEN, Default::default());
        let mut framed = Framed::new(stream, NoiseCodec::new(session, inner));
        let hello = Message::Hello {
            version: PROTOCOL_VERSION,
            node_id: claimed,
            listen_addr: "127.0.0.1:9".parse().unwrap(),
        };
        framed.send(Frame::new(0, hello)).await.unwrap();
        framed.next().await.unwrap().unwrap().envelope.message
    }

    #[tokio::test]
    async fn a_peer_claiming_another_nodes_id_is_refused() {
        let key = NetworkKey::generate().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = NetConfig {
            network_key: Some(key.clone()),
            ..NetConfig::default()
        };
        let token = crate::CancellationToken::new();
        let server =
            Network::start(listener, None, std::sync::Arc::new(Nothing), config, token).unwrap();
        // Speaking for some other node (here: the server itself, and a random id) fails.
        for claimed in [server.local().id, NodeId::random()] {
            match hello_as(&server, &key, Some(claimed)).await {
                Message::Error { code, message } => {
                    assert_eq!(code, ErrorCode::BadRequest);
                    assert!(message.contains("its key is that of"), "{message}");
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert!(server.membership().is_empty());
        // Control: the id that belongs to the key is accepted.
        assert!(matches!(
            hello_as(&server, &key, None).await,
            Message::Hello { .. }
        ));
        assert_eq!(server.membership().len(), 1);
        server.shutdown().await;
    }

    /// Keyed mode: once decrypted bytes of a frame have arrived, the rest must come within the
    /// frame timeout; a quiet member (no frame started) is not affected.
    #[tokio::test]
    async fn a_stalled_frame_inside_noise_closes_the_link() {
        use tokio::io::AsyncReadExt;
        let key = NetworkKey::generate().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let frame_timeout = std::time::Duration::from_millis(500);
        let config = NetConfig {
            network_key: Some(key.clone()),
            frame_timeout,
            ..NetConfig::default()
        };
        let token = crate::CancellationToken::new();
        let server =
            Network::start(listener, None, std::sync::Arc::new(Nothing), config, token).unwrap();
        let mut links = Vec::new();
        for _ in 0..2 {
            let identity = Identity::generate().unwrap();
            let mut stream = TcpStream::connect(server.local().addr).await.unwrap();
            let session = handshake(&mut stream, &key, &identity, true).await.unwrap();
            let inner = CountingCodec::new(voldisefs_proto::MAX_FRAME_LEN, Default::default());
            let mut framed = Framed::new(stream, NoiseCodec::new(session, inner));
            let hello = Message::Hello {
                version: PROTOCOL_VERSION,
                node_id: identity.node_id(),
                listen_addr: "127.0.0.1:9".parse().unwrap(),
            };
            framed.send(Frame::new(0, hello)).await.unwrap();
            let answer = framed.next().await.unwrap().unwrap();
            assert!(matches!(answer.envelope.message, Message::Hello { .. }));
            links.push(framed);
        }
        let mut quiet = links.pop().unwrap().into_inner();
        let mut stalled = links.pop().unwrap();
        // One whole Noise message and a bit of the next of a 1 MiB frame, then nothing.
        let body = bytes::Bytes::from(vec![7u8; 1024 * 1024]);
        let chunk = voldisefs_proto::ChunkId::digest(&body);
        let mut wire = BytesMut::new();
        let put = Frame::with_body(1, Message::PutChunk { chunk }, body);
        stalled.codec_mut().encode(put, &mut wire).unwrap();
        let mut stalled = stalled.into_inner();
        stalled.write_all(&wire[..MAX_MESSAGE + 100]).await.unwrap();
        let start = std::time::Instant::now();
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(frame_timeout * 6, stalled.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0) | Err(_))), "{closed:?}");
        assert!(start.elapsed() >= frame_timeout.mul_f32(0.9));
        // Control: the quiet member's link is still open.
        let quiet_read =
            tokio::time::timeout(std::time::Duration::from_millis(100), quiet.read(&mut buf)).await;
        assert!(quiet_read.is_err(), "{quiet_read:?}");
        server.shutdown().await;
    }

    #[test]
    fn network_key_text_round_trip_and_errors() {
        let key = NetworkKey::generate().unwrap();
        let text = key.to_hex();
        assert_eq!(text.len(), 64);
        let back = NetworkKey::from_hex(&format!("  {}\n", text.as_str())).unwrap();
        assert_eq!(back.to_hex(), text);
        assert!(NetworkKey::from_hex("abcd").is_err());
        assert!(NetworkKey::from_hex(&"zz".repeat(32)).is_err());
        assert_eq!(format!("{key:?}"), "NetworkKey(..)");
    }

    #[test]
    fn node_ids_are_bound_to_keys() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert_ne!(a.node_id(), b.node_id());
        assert_eq!(a.node_id(), node_id_for(&a.public));
        assert!(!format!("{a:?}").contains(&hex::encode(&a.private[..])));
    }
}
