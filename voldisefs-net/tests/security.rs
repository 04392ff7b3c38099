//! Keyed mode: only holders of the network key get in, links reveal nothing, recordings
//! cannot be replayed, and abuse limits hold.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use voldisefs_net::{
    CancellationToken, Handler, NetConfig, NetError, Network, NetworkKey, Payload, node_id_for,
};
use voldisefs_proto::{ChunkId, ErrorCode, Message, NodeId};

/// Echoes `put_chunk` bodies back.
struct Echo;

impl Handler for Echo {
    async fn handle(&self, _from: NodeId, req: Payload) -> Payload {
        match req.message {
            Message::PutChunk { chunk } => {
                Payload::with_body(Message::Chunk { chunk }, req.body.unwrap_or_default())
            }
            _ => Payload::new(Message::error(ErrorCode::BadRequest, "unsupported")),
        }
    }
}

async fn start(key: Option<&NetworkKey>) -> Network {
    start_with(key, NetConfig::default()).await
}

async fn start_with(key: Option<&NetworkKey>, config: NetConfig) -> Network {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = NetConfig {
        network_key: key.cloned(),
        handshake_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        ..config
    };
    Network::start(
        listener,
        None,
        Arc::new(Echo),
        config,
        CancellationToken::new(),
    )
    .unwrap()
}

/// A loopback TCP relay to `target` that records every byte, per direction.
struct Relay {
    addr: SocketAddr,
    to_server: Arc<Mutex<Vec<u8>>>,
    to_client: Arc<Mutex<Vec<u8>>>,
}

async fn relay(target: SocketAddr) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let to_server = Arc::new(Mutex::new(Vec::new()));
    let to_client = Arc::new(Mutex::new(Vec::new()));
    let (up, down) = (to_server.clone(), to_client.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(target).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let (up, down) = (up.clone(), down.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    up.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    down.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    Relay {
        addr,
        to_server,
        to_client,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn only_holders_of_the_key_can_join_and_members_keep_working() {
    let key = NetworkKey::generate().unwrap();
    let other = NetworkKey::generate().unwrap();
    let a = start(Some(&key)).await;
    let b = start(Some(&key)).await;
    b.bootstrap(&[a.local().addr]).await.unwrap();
    assert!(a.is_keyed() && b.is_keyed());

    let stranger = start(Some(&other)).await;
    let open = start(None).await;
    for outsider in [&stranger, &open] {
        let err = outsider.bootstrap(&[a.local().addr]).await.unwrap_err();
        assert!(matches!(err, NetError::BootstrapFailed { .. }), "{err}");
        let body = Bytes::from_static(b"junk");
        let put = Payload::with_body(
            Message::PutChunk {
                chunk: ChunkId::digest(&body),
            },
            body,
        );
        assert!(outsider.request_addr(a.local().addr, put).await.is_err());
        let list = Payload::new(Message::GetPeers);
        assert!(outsider.request_addr(a.local().addr, list).await.is_err());
    }
    // A keyed node cannot reach an open one either: the modes never mix.
    assert!(
        a.request_addr(open.local().addr, Payload::new(Message::Ping))
            .await
            .is_err()
    );
    assert_eq!(a.membership().live_peers(), vec![b.local()]);
    let pong = b
        .request(a.local(), Payload::new(Message::Ping))
        .await
        .unwrap();
    assert_eq!(pong.message, Message::Pong);
    for n in [a, b, stranger, open] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn captured_link_bytes_reveal_neither_messages_nor_chunks() {
    let secret = b"TOP SECRET CHUNK PLAINTEXT that must never appear on the wire".repeat(100);
    for keyed in [false, true] {
        let key = NetworkKey::generate().unwrap();
        let key = keyed.then_some(&key);
        let a = start(key).await;
        let b = start(key).await;
        let relay = relay(a.local().addr).await;
        let body = Bytes::from(secret.clone());
        let chunk = ChunkId::digest(&body);
        let answer = b
            .request_addr(
                relay.addr,
                Payload::with_body(Message::PutChunk { chunk }, body),
            )
            .await
            .unwrap();
        assert_eq!(answer.body.as_deref(), Some(&secret[..]));
        let up = relay.to_server.lock().unwrap().clone();
        let down = relay.to_client.lock().unwrap().clone();
        let leaks = |bytes: &[u8]| {
            contains(bytes, b"put_chunk")
                || contains(bytes, b"hello")
                || contains(bytes, b"\"type\"")
                || contains(bytes, &secret[..64])
        };
        if keyed {
            assert!(!leaks(&up) && !leaks(&down), "keyed link leaked");
        } else {
            // Control: the same capture of an open link shows everything.
            assert!(leaks(&up) && leaks(&down), "the capture itself must work");
        }
        a.shutdown().await;
        b.shutdown().await;
    }
}

#[tokio::test]
async fn a_replayed_recording_is_refused() {
    let key = NetworkKey::generate().unwrap();
    let a = start(Some(&key)).await;
    let b = start(Some(&key)).await;
    let relay = relay(a.local().addr).await;
    let body = Bytes::from_static(b"recorded request");
    let chunk = ChunkId::digest(&body);
    b.request_addr(
        relay.addr,
        Payload::with_body(Message::PutChunk { chunk }, body),
    )
    .await
    .unwrap();
    // a verifies the address b's hello claimed (a dial and a ping): let that settle first.
    let verified = || {
        a.request_stats()
            .iter()
            .any(|s| s.direction == "out" && s.kind == "ping" && s.outcome == "ok")
    };
    for _ in 0..500 {
        if verified() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(verified(), "a verified b");
    b.shutdown().await;
    let recording = relay.to_server.lock().unwrap().clone();
    let frames_before = a.traffic().frames_in;
    let members_before = a.membership().len();

    let mut s = TcpStream::connect(a.local().addr).await.unwrap();
    s.write_all(&recording).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the node closes the replayed connection")
        .ok();
    assert_eq!(
        a.traffic().frames_in,
        frames_before,
        "no replayed frame was accepted"
    );
    assert_eq!(a.membership().len(), members_before);
    // Only the node's fresh handshake reply came back: nothing was answered.
    assert!(out.len() < 200, "{} bytes answered", out.len());
    a.shutdown().await;
}

#[tokio::test]
async fn connections_per_address_are_capped_and_silent_ones_time_out() {
    let config = NetConfig {
        max_connections_per_ip: 2,
        ..NetConfig::default()
    };
    let key = NetworkKey::generate().unwrap();
    let a = start_with(Some(&key), config).await;
    let _first = TcpStream::connect(a.local().addr).await.unwrap();
    let _second = TcpStream::connect(a.local().addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut third = TcpStream::connect(a.local().addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_millis(400), third.read(&mut buf))
        .await
        .expect("the third connection is closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // The silent ones are closed when the handshake timeout (500 ms) passes, freeing places.
    let b = start(Some(&key)).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    b.bootstrap(&[a.local().addr]).await.unwrap();
    a.shutdown().await;
    b.shutdown().await;
}

#[test]
fn node_ids_derive_from_keys() {
    assert_ne!(node_id_for(&[1u8; 32]), node_id_for(&[2u8; 32]));
    assert_eq!(node_id_for(&[1u8; 32]), node_id_for(&[1u8; 32]));
}
