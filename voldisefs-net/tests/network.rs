//! Real networks on loopback: handshake, multiplexing, bootstrap, hostile peers.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use voldisefs_net::{CancellationToken, Handler, NetConfig, NetError, Network, Payload, PeerState};
use voldisefs_proto::{ChunkId, ErrorCode, Message, NodeId, PROTOCOL_VERSION};

/// Echoes `put_chunk` bodies back as `chunk`, after an optional delay given in the first byte
/// (tens of milliseconds); `get_chunk` never answers.
struct Echo;

impl Handler for Echo {
    async fn handle(&self, _from: NodeId, req: Payload) -> Payload {
        match req.message {
            Message::PutChunk { chunk } => {
                let body = req.body.unwrap_or_default();
                let delay = body.first().copied().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(10 * u64::from(delay))).await;
                Payload::with_body(Message::Chunk { chunk }, body)
            }
            Message::GetChunk { .. } => std::future::pending().await,
            _ => Payload::new(Message::error(ErrorCode::BadRequest, "unsupported")),
        }
    }
}

async fn start_with(config: NetConfig) -> Network {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Network::start(
        listener,
        None,
        Arc::new(Echo),
        config,
        CancellationToken::new(),
    )
    .unwrap()
}

/// The classic membership (all-to-all probes, recursive bootstrap), which these tests cover;
/// tests/gossip.rs covers the gossip.
async fn start() -> Network {
    start_with(NetConfig {
        gossip: None,
        ..NetConfig::default()
    })
    .await
}

/// Polls `cond` every 20 ms until it holds, failing after 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn raw_frame(json: &str, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u32((4 + json.len() + body.len()) as u32);
    buf.put_u32(json.len() as u32);
    buf.put_slice(json.as_bytes());
    buf.put_slice(body);
    buf.freeze()
}

fn hello_json(id: NodeId, version: u32) -> String {
    format!(
        r#"{{"id":0,"type":"hello","version":{version},"node_id":"{id}","listen_addr":"127.0.0.1:9"}}"#
    )
}

/// Sends `bytes` on a fresh raw connection (then closes our sending side if `half_close`) and
/// returns everything the node sent back before closing (the node must close within 5 s).
async fn raw_exchange(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    if half_close {
        s.shutdown().await.unwrap();
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("node should close a misbehaving connection")
        .ok();
    out
}

async fn assert_serving(net: &Network) {
    let probe = start().await;
    let pong = probe
        .request_addr(net.local().addr, Payload::new(Message::Ping))
        .await
        .unwrap();
    assert_eq!(pong.message, Message::Pong);
    probe.shutdown().await;
}

#[tokio::test]
async fn handshake_ping_and_body_round_trip() {
    let (a, b) = (start().await, start().await);
    let body = Bytes::from(vec![0u8; 3 << 20]);
    let chunk = ChunkId::digest(&body);
    let answer = b
        .request(
            a.local(),
            Payload::with_body(Message::PutChunk { chunk }, body.clone()),
        )
        .await
        .unwrap();
    assert_eq!(answer, Payload::with_body(Message::Chunk { chunk }, body));
    assert_eq!(a.membership().live_peers(), vec![b.local()]);
    assert_eq!(b.membership().live_peers(), vec![a.local()]);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn many_requests_in_flight_on_one_connection_are_matched_by_id() {
    let (a, b) = (start().await, start().await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40u8 {
        let (a, b) = (a.clone(), b.clone());
        tasks.spawn(async move {
            // Later requests answer sooner, so responses come back out of order.
            let body = Bytes::from(vec![(40 - i) % 8, i]);
            let chunk = ChunkId::digest(&body);
            let answer = b
                .request(
                    a.local(),
                    Payload::with_body(Message::PutChunk { chunk }, body.clone()),
                )
                .await
                .unwrap();
            assert_eq!(answer.body, Some(body));
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn request_times_out_and_connection_stays_usable() {
    let config = NetConfig {
        request_timeout: Duration::from_millis(200),
        ..NetConfig::default()
    };
    let a = start().await;
    let b = start_with(config).await;
    let err = b
        .request(
            a.local(),
            Payload::new(Message::GetChunk {
                chunk: ChunkId::digest(b""),
            }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NetError::Timeout {
                what: "request",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        b.membership().get(&a.local().id).unwrap().state,
        PeerState::Suspect
    );
    let pong = b
        .request(a.local(), Payload::new(Message::Ping))
        .await
        .unwrap();
    assert_eq!(pong.message, Message::Pong);
    assert_eq!(
        b.membership().get(&a.local().id).unwrap().state,
        PeerState::Alive,
        "an answer proves the peer alive again"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn remote_errors_are_typed() {
    let (a, b) = (start().await, start().await);
    let err = b
        .request(
            a.local(),
            Payload::new(Message::HasChunks { chunks: vec![] }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::BadRequest));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn twenty_nodes_converge_to_full_membership() {
    let first = start().await;
    let mut nodes = vec![first.clone()];
    for _ in 1..20 {
        let n = start().await;
        n.bootstrap(&[first.local().addr]).await.unwrap();
        nodes.push(n);
    }
    eventually("full membership", || {
        nodes
            .iter()
            .all(|n| n.membership().live_peers().len() == 19)
    })
    .await;
    for n in &nodes {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn bootstrap_is_recursive_through_any_member() {
    let (a, b, c) = (start().await, start().await, start().await);
    b.bootstrap(&[a.local().addr]).await.unwrap();
    // c only knows b, yet learns a through b, and a learns c from c's hello.
    let report = c.bootstrap(&[b.local().addr]).await.unwrap();
    assert_eq!(report.reached.len(), 2);
    for n in [&a, &b, &c] {
        assert_eq!(n.membership().live_peers().len(), 2);
    }
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn unreachable_peer_does_not_stall_bootstrap() {
    let a = start().await;
    // A bound listener that never accepts: connects hang in the backlog or succeed without
    // a handshake; either way the handshake timeout must cut it short.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let config = NetConfig {
        handshake_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        ..NetConfig::default()
    };
    let b = start_with(config).await;
    let started = std::time::Instant::now();
    let report = b
        .bootstrap(&[silent.local_addr().unwrap(), closed, a.local().addr])
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(report.reached, vec![a.local()]);
    assert_eq!(report.unreachable.len(), 2);
    let err = b.bootstrap(&[closed]).await.unwrap_err();
    assert!(
        matches!(err, NetError::BootstrapFailed { tried: 1 }),
        "{err}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn incompatible_version_is_refused_with_a_message() {
    let a = start().await;
    let out = raw_exchange(
        a.local().addr,
        &raw_frame(&hello_json(NodeId::random(), PROTOCOL_VERSION + 1), b""),
        false,
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("incompatible_version"), "{text}");
    assert!(a.membership().is_empty(), "a refused peer is not a member");
    assert_serving(&a).await;
    a.shutdown().await;
}

#[tokio::test]
async fn hostile_frames_close_only_their_connection() {
    let a = start().await;
    let me = NodeId::random();
    let hello = raw_frame(&hello_json(me, PROTOCOL_VERSION), b"");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "garbage",
            b"\x00\x00\x00\x05garbage and more garbage".to_vec(),
        ),
        ("oversized", {
            let mut v = hello.to_vec();
            v.extend_from_slice(&u32::MAX.to_be_bytes());
            v
        }),
        (
            "unknown type",
            [
                hello.clone(),
                raw_frame(r#"{"id":1,"type":"launch_missiles"}"#, b""),
            ]
            .concat(),
        ),
        (
            "missing fields",
            [
                hello.clone(),
                raw_frame(r#"{"id":1,"type":"get_chunk"}"#, b""),
            ]
            .concat(),
        ),
        (
            "request before hello",
            raw_frame(r#"{"id":1,"type":"get_peers"}"#, b"").to_vec(),
        ),
        ("hello twice", [hello.clone(), hello.clone()].concat()),
        (
            "response to server",
            [hello.clone(), raw_frame(r#"{"id":1,"type":"pong"}"#, b"")].concat(),
        ),
        ("truncated", hello.slice(..hello.len() - 3).to_vec()),
    ];
    // A well-behaved peer with a connection open throughout.
    let b = start().await;
    b.bootstrap(&[a.local().addr]).await.unwrap();
    for (name, bytes) in cases {
        let started = std::time::Instant::now();
        // Only the truncated frame needs our end closed to be noticed.
        raw_exchange(a.local().addr, &bytes, name == "truncated").await;
        assert!(started.elapsed() < Duration::from_secs(5), "{name}");
        let pong = b.request(a.local(), Payload::new(Message::Ping)).await;
        assert!(pong.is_ok(), "{name}: existing connection broken");
    }
    assert_serving(&a).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn wrong_peer_at_address_is_detected() {
    let (a, b) = (start().await, start().await);
    let impostor = voldisefs_proto::PeerInfo {
        id: NodeId::random(),
        addr: a.local().addr,
    };
    let err = b
        .request(impostor, Payload::new(Message::Ping))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::WrongPeer { .. }), "{err}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn leave_and_shutdown() {
    let (a, b) = (start().await, start().await);
    b.bootstrap(&[a.local().addr]).await.unwrap();
    b.announce_leave().await;
    assert_eq!(
        a.membership().get(&b.local().id).unwrap().state,
        PeerState::Left
    );
    b.shutdown().await;
    let err = b
        .request(a.local(), Payload::new(Message::Ping))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Shutdown));
    // The shut-down node no longer accepts: a request to it fails fast.
    let err = a
        .request_addr(b.local().addr, Payload::new(Message::Ping))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NetError::Connect { .. } | NetError::ConnectionClosed { .. }
        ),
        "{err}"
    );
    a.shutdown().await;
}

fn fast() -> NetConfig {
    NetConfig {
        gossip: None,
        probe_interval: Duration::from_millis(50),
        probe_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        dead_after: 3,
        dead_probe_every: 2,
        discovery_interval: Duration::from_millis(100),
        ..NetConfig::default()
    }
}

fn state_of(net: &Network, peer: &Network) -> Option<PeerState> {
    net.membership().get(&peer.local().id).map(|e| e.state)
}

#[tokio::test]
async fn crashed_peer_is_declared_dead_by_everyone() {
    let a = start_with(fast()).await;
    let b = start_with(fast()).await;
    let c = start_with(fast()).await;
    b.bootstrap(&[a.local().addr]).await.unwrap();
    c.bootstrap(&[a.local().addr]).await.unwrap();
    // c crashes: no leave announced.
    c.shutdown().await;
    eventually("a and b declare c dead", || {
        state_of(&a, &c) == Some(PeerState::Dead) && state_of(&b, &c) == Some(PeerState::Dead)
    })
    .await;
    assert_eq!(a.membership().live_peers(), vec![b.local()]);
    // a and b keep probing each other without trouble.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state_of(&a, &b), Some(PeerState::Alive));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn partitioned_peer_is_dead_then_readmitted() {
    let a = start_with(fast()).await;
    let b = start_with(fast()).await;
    b.bootstrap(&[a.local().addr]).await.unwrap();
    b.set_isolated(true);
    assert!(matches!(
        b.request(a.local(), Payload::new(Message::Ping)).await,
        Err(NetError::Isolated)
    ));
    eventually("each side declares the other dead", || {
        state_of(&a, &b) == Some(PeerState::Dead) && state_of(&b, &a) == Some(PeerState::Dead)
    })
    .await;
    b.set_isolated(false);
    eventually("the healed partition is re-admitted on both sides", || {
        state_of(&a, &b) == Some(PeerState::Alive) && state_of(&b, &a) == Some(PeerState::Alive)
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn concurrent_joins_through_different_peers_converge() {
    let seed = start_with(fast()).await;
    let x = start_with(fast()).await;
    x.bootstrap(&[seed.local().addr]).await.unwrap();
    // Many nodes join at the same moment, half through `seed` and half through `x`.
    let mut joiners = Vec::new();
    for _ in 0..8 {
        joiners.push(start_with(fast()).await);
    }
    let mut joins = tokio::task::JoinSet::new();
    for (i, j) in joiners.iter().enumerate() {
        let j = j.clone();
        let via = if i % 2 == 0 {
            seed.local().addr
        } else {
            x.local().addr
        };
        joins.spawn(async move { j.bootstrap(&[via]).await.unwrap() });
    }
    while let Some(done) = joins.join_next().await {
        done.unwrap();
    }
    let all: Vec<Network> = [seed, x].into_iter().chain(joiners).collect();
    eventually("full membership after concurrent joins", || {
        all.iter()
            .all(|n| n.membership().live_peers().len() == all.len() - 1)
    })
    .await;
    for n in all {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn traffic_is_counted_both_ways() {
    let (a, b) = (start().await, start().await);
    let body = Bytes::from(vec![1u8; 10_000]);
    let chunk = ChunkId::digest(&body);
    b.request(
        a.local(),
        Payload::with_body(Message::PutChunk { chunk }, body),
    )
    .await
    .unwrap();
    // a verifies the address b's hello claimed: it dials b and pings it.
    let verified = || {
        a.request_stats()
            .iter()
            .any(|s| s.direction == "out" && s.kind == "ping" && s.outcome == "ok")
    };
    eventually("a verified b", verified).await;
    let (ta, tb) = (a.traffic(), b.traffic());
    assert!(
        tb.bytes_out > 10_000 && ta.bytes_in > 10_000,
        "{ta:?} {tb:?}"
    );
    assert!(
        ta.bytes_out > 10_000 && tb.bytes_in > 10_000,
        "the echo comes back"
    );
    assert_eq!(
        tb.frames_out, 4,
        "hello and put_chunk, then hello and pong to a's verification dial"
    );
    assert_eq!(ta.frames_in, tb.frames_out);
    let sent = b.request_stats();
    assert!(
        sent.iter().any(|s| s.direction == "out"
            && s.kind == "put_chunk"
            && s.outcome == "ok"
            && s.count == 1),
        "{sent:?}"
    );
    let served = a.request_stats();
    assert!(
        served.iter().any(|s| s.direction == "in"
            && s.kind == "put_chunk"
            && s.outcome == "ok"
            && s.count == 1),
        "{served:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}
