//! Opening an outbound connection: TCP connect, the Noise handshake in keyed mode and the
//! `hello` exchange, all within the handshake timeout; then the [`Conn`] runs the link.

use std::net::SocketAddr;
use std::sync::Arc;

use voldisefs_proto::{Frame, Message, PROTOCOL_VERSION, PeerInfo};

use crate::conn::Conn;
use crate::error::NetError;
use crate::link::{FrameReader, LinkCodec, LinkWriter};
use crate::noise::{self, NoiseCodec};
use crate::shared::Shared;

/// Connects to `addr`, performs the handshake as this node, and starts the connection's tasks.
pub(crate) async fn connect(addr: SocketAddr, shared: &Shared) -> Result<Arc<Conn>, NetError> {
    let config = &shared.config;
    let local = shared.membership.local();
    let mut stream = tokio::time::timeout(config.connect_timeout, shared.transport.connect(addr))
        .await
        .map_err(|_| NetError::Timeout {
            addr,
            what: "connect",
        })?
        .map_err(|source| NetError::Connect { addr, source })?;
    stream.set_nodelay(true)?;
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    let (codec, expected) = match &shared.keyed {
        None => (LinkCodec::Open(shared.codec()), None),
        Some(keyed) => {
            let session = tokio::time::timeout_at(
                deadline,
                noise::handshake(&mut stream, &keyed.key, &keyed.identity, true),
            )
            .await
            .map_err(|_| NetError::Timeout {
                addr,
                what: "handshake",
            })?
            .map_err(|reason| NetError::Handshake { addr, reason })?;
            let expected = session.remote_id;
            let codec = NoiseCodec::new(session, shared.codec());
            (LinkCodec::Noise(Box::new(codec)), Some(expected))
        }
    };
    let (read, write) = stream.into_split();
    let lease = shared.frame_memory.lease(addr.ip());
    let mut reader = FrameReader::new(read, codec.clone(), lease);
    let mut writer = LinkWriter::new(write, codec);

    let hello = Frame::new(
        0,
        Message::Hello {
            version: PROTOCOL_VERSION,
            node_id: local.id,
            listen_addr: local.addr,
        },
    );
    let remote = tokio::time::timeout_at(deadline, async {
        writer
            .send(hello)
            .await
            .map_err(|source| NetError::Codec { addr, source })?;
        let answer = reader
            .next()
            .await
            .ok_or(NetError::ConnectionClosed { addr })?
            .map_err(|source| NetError::Codec { addr, source })?;
        handshake_answer(addr, answer.envelope.message)
    })
    .await
    .map_err(|_| NetError::Timeout {
        addr,
        what: "handshake",
    })??;
    if let Some(expected) = expected.filter(|id| *id != remote.id) {
        return Err(NetError::Handshake {
            addr,
            reason: format!(
                "peer claims id {} but its key is that of {expected}",
                remote.id
            ),
        });
    }
    Ok(Conn::start(
        remote,
        (reader, writer),
        config,
        shared.generation().child_token(),
        shared.counters.clone(),
        shared.freeze_watch(),
        &shared.tracker,
    ))
}

/// Checks the server's `hello` answer.
fn handshake_answer(addr: SocketAddr, message: Message) -> Result<PeerInfo, NetError> {
    match message {
        Message::Hello {
            version,
            node_id,
            listen_addr,
        } => {
            if version != PROTOCOL_VERSION {
                return Err(NetError::IncompatibleVersion {
                    addr,
                    theirs: version,
                    ours: PROTOCOL_VERSION,
                });
            }
            Ok(PeerInfo {
                id: node_id,
                addr: listen_addr,
            })
        }
        Message::Error { code, message } => {
            if code == voldisefs_proto::ErrorCode::IncompatibleVersion {
                Err(NetError::Handshake {
                    addr,
                    reason: format!("incompatible version: {message}"),
                })
            } else {
                Err(NetError::Remote {
                    addr,
                    code,
                    message,
                })
            }
        }
        other => Err(NetError::Handshake {
            addr,
            reason: format!("expected hello, got {}", other.kind()),
        }),
    }
}
