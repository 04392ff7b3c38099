//! Peer connections stay bounded under attack: hostile clients written here on raw TCP stall
//! frames, idle after their hello or never finish their handshake, and honest nodes keep
//! joining and working meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::{eventually, ping, quiet, start_with};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Encoder, FramedRead};
use voldisefs_net::{
    CancellationToken, Handler, NetConfig, NetError, Network, NetworkKey, Payload,
};
use voldisefs_proto::{ChunkId, ErrorCode, Frame, FrameCodec, Message, NodeId, PROTOCOL_VERSION};

/// The wire bytes of one open-mode frame.
fn wire(frame: Frame) -> BytesMut {
    let mut out = BytesMut::new();
    FrameCodec::new().encode(frame, &mut out).unwrap();
    out
}

/// An open-mode `hello` from a made-up node.
fn hello() -> BytesMut {
    wire(Frame::new(
        0,
        Message::Hello {
            version: PROTOCOL_VERSION,
            node_id: NodeId::random(),
            listen_addr: "127.0.0.1:9".parse().unwrap(),
        },
    ))
}

/// Connects on raw TCP, says hello (open mode) and reads the node's answer.
async fn raw_member(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&hello()).await.unwrap();
    let mut frames = FramedRead::new(&mut stream, FrameCodec::new());
    let answer = tokio::time::timeout(Duration::from_secs(5), frames.next())
        .await
        .expect("the node answers a hello")
        .unwrap()
        .unwrap();
    assert!(
        matches!(answer.envelope.message, Message::Hello { .. }),
        "{:?}",
        answer.envelope.message
    );
    stream
}

/// Waits (at most `limit`) for the node to close `stream`, discarding anything it sends;
/// `None` if it is still open then.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        // Bounded: each read consumes bytes the node sent; it sends little before closing.
        for _ in 0..1000 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        panic!("the node keeps sending");
    })
    .await
    .ok()
    .map(|()| start.elapsed())
}

/// A `put_chunk` of `body`.
fn put(body: &'static [u8]) -> Payload {
    let body = Bytes::from_static(body);
    Payload::with_body(
        Message::PutChunk {
            chunk: ChunkId::digest(&body),
        },
        body,
    )
}

/// (a) Sixty peers that finish their hello, announce a 16 MiB frame, send a few bytes of it
/// and stall are all closed once `frame_timeout` passes, while a peer that is merely quiet
/// after its hello (no frame started) stays open, and an honest node joins and makes requests
/// meanwhile. The stalled peers spend the node's frame reserve budget (17 MiB here: one of
/// them), no more; the honest node's 1 MiB chunk is read without it (its buffer grows with its
/// bytes),
/// and the budget is whole again once the stalled peers are closed. That the node does not
/// hold 16 MiB per stalled peer is shown by the codec tests
/// `an_announced_16_mib_frame_reserves_little_until_its_bytes_arrive` and
/// `stalled_announcements_hold_at_most_the_budget`.
#[tokio::test]
async fn stalled_frames_are_closed_after_the_frame_timeout() {
    let frame_timeout = Duration::from_millis(700);
    let budget = 17 * 1024 * 1024;
    let node = start_with(NetConfig {
        frame_timeout,
        frame_reserve_budget: budget,
        ..quiet()
    })
    .await;
    let addr = node.local().addr;
    let mut quiet_member = raw_member(addr).await;
    let mut stalled = Vec::new();
    for _ in 0..60 {
        let mut s = raw_member(addr).await;
        let mut start = BytesMut::new();
        start.put_u32(16 * 1024 * 1024);
        start.put_u32(2);
        start.put_slice(b"{\"");
        s.write_all(&start).await.unwrap();
        stalled.push(s);
    }
    let started = Instant::now();
    let spent = async {
        // Bounded: 200 looks, 10 ms apart.
        for _ in 0..200 {
            if node.frame_reserve_available() < 1024 * 1024 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the stalled frames never took the budget");
    };
    spent.await;
    assert!(node.frame_reserve_available() <= budget);

    // Meanwhile an honest node joins and works, a large frame included.
    let honest = start_with(quiet()).await;
    honest.join(&[addr]).await.unwrap();
    let answer = honest.request(node.local(), put(b"honest chunk")).await;
    assert_eq!(answer.unwrap().message, Message::Ack);
    let large: &'static [u8] = Box::leak(vec![5u8; 1024 * 1024].into_boxed_slice());
    let answer = honest.request(node.local(), put(large)).await;
    assert_eq!(answer.unwrap().message, Message::Ack);
    assert_eq!(
        honest.request(node.local(), ping()).await.unwrap().message,
        Message::Pong
    );

    for s in &mut stalled {
        let left = (frame_timeout + Duration::from_secs(3)).saturating_sub(started.elapsed());
        closed_within(s, left)
            .await
            .expect("a stalled frame closes its connection");
    }
    let took = started.elapsed();
    assert!(
        took >= frame_timeout.mul_f32(0.9),
        "closed after {took:?}, before the frame timeout"
    );
    // Closed connections give their share back (bounded wait: closing is asynchronous).
    for _ in 0..200 {
        if node.frame_reserve_available() == budget {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(node.frame_reserve_available(), budget);
    // Control: no frame started, no frame timeout (the idle timeout is 60 s here).
    assert_eq!(
        closed_within(&mut quiet_member, Duration::from_millis(200)).await,
        None
    );
    assert_eq!(
        honest.request(node.local(), ping()).await.unwrap().message,
        Message::Pong
    );
    node.shutdown().await;
    honest.shutdown().await;
}

/// (a, outbound side) A peer that answers our hello, then starts its answer to a request and
/// stalls, is cut off after `frame_timeout`, long before the request timeout.
#[tokio::test]
async fn a_stalled_answer_closes_the_outbound_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let (read, mut write) = stream.split();
        let mut frames = FramedRead::new(read, FrameCodec::new());
        let first = frames.next().await.unwrap().unwrap();
        assert!(matches!(first.envelope.message, Message::Hello { .. }));
        write.write_all(&hello()).await.unwrap();
        let request = frames.next().await.unwrap().unwrap();
        assert_eq!(request.envelope.message, Message::Ping);
        // Start the answer, announcing 1 MiB, then stall.
        let mut start = BytesMut::new();
        start.put_u32(1024 * 1024);
        start.put_u32(2);
        write.write_all(&start).await.unwrap();
        // Wait (bounded) for the client to give up on the link.
        let closed = tokio::time::timeout(Duration::from_secs(10), frames.next()).await;
        assert!(matches!(closed, Ok(None | Some(Err(_)))), "{closed:?}");
    });
    let frame_timeout = Duration::from_millis(500);
    let client = start_with(NetConfig {
        frame_timeout,
        request_timeout: Duration::from_secs(20),
        ..quiet()
    })
    .await;
    let start = Instant::now();
    let err = client.request_addr(addr, ping()).await.unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, NetError::ConnectionClosed { .. }), "{err}");
    assert!(
        took >= frame_timeout.mul_f32(0.9) && took < Duration::from_secs(5),
        "gave up after {took:?}"
    );
    fake.await.unwrap();
    client.shutdown().await;
}

/// Answers `has_chunks` after 800 ms, everything else at once.
struct Slow;

impl Handler for Slow {
    async fn handle(&self, _from: NodeId, req: Payload) -> Payload {
        if matches!(req.message, Message::HasChunks { .. }) {
            tokio::time::sleep(Duration::from_millis(800)).await;
        }
        Payload::new(Message::Ack)
    }
}

/// A member that answers pings and leaves every other request hanging.
struct Hang;

impl Handler for Hang {
    async fn handle(&self, _from: NodeId, req: Payload) -> Payload {
        if matches!(req.message, Message::Ping) {
            return Payload::new(Message::Pong);
        }
        std::future::pending().await
    }
}

/// Requests to a peer that never answers, each given up by its caller before the request
/// timeout (as replication's shorter per-attempt deadline does), leave nothing behind: before,
/// every one kept its entry in the connection's table of waiting requests until the
/// connection closed, which it never did while requests kept coming.
#[tokio::test]
async fn requests_given_up_on_a_hung_peer_leave_nothing_behind() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung = Network::start(
        listener,
        None,
        Arc::new(Hang),
        quiet(),
        CancellationToken::new(),
    )
    .unwrap();
    let caller = start_with(NetConfig {
        request_timeout: Duration::from_secs(600),
        ..quiet()
    })
    .await;
    let ask = || Payload::new(Message::HasChunks { chunks: vec![] });
    // One waits, counted while it does.
    let waiting = tokio::spawn({
        let (caller, peer) = (caller.clone(), hung.local());
        async move { caller.request(peer, ask()).await }
    });
    eventually("the request waits", || caller.pending_requests() == 1).await;
    waiting.abort();
    for _ in 0..200 {
        let given_up = tokio::time::timeout(
            Duration::from_millis(5),
            caller.request(hung.local(), ask()),
        )
        .await;
        assert!(given_up.is_err(), "the hung peer answered");
    }
    assert_eq!(
        caller.pending_requests(),
        0,
        "abandoned requests stay pending"
    );
    // (The hung peer's own handlers never end: it is not shut down gracefully.)
    caller.shutdown().await;
}

/// A peer that fills a connection's request slots with requests the node's handler never
/// answers cannot keep the node from shutting down: the connection stops waiting for a slot
/// when the network does (it used to wait forever, and `shutdown` with it).
#[tokio::test]
async fn a_connection_full_of_hung_requests_does_not_hold_up_shutdown() {
    /// Counts the requests it takes, and answers none.
    struct Swallow(Arc<std::sync::atomic::AtomicUsize>);
    impl Handler for Swallow {
        async fn handle(&self, _from: NodeId, _req: Payload) -> Payload {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::pending().await
        }
    }
    let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung = Network::start(
        listener,
        None,
        Arc::new(Swallow(taken.clone())),
        NetConfig {
            max_in_flight_per_connection: 4,
            ..quiet()
        },
        CancellationToken::new(),
    )
    .unwrap();
    let mut stream = raw_member(hung.local().addr).await;
    // Twice the slots: four hang in the handler, the rest wait for a slot.
    for id in 1..=8 {
        let ask = Frame::new(id, Message::HasChunks { chunks: vec![] });
        stream.write_all(&wire(ask)).await.unwrap();
    }
    eventually("the hung requests reach the handler", || {
        taken.load(std::sync::atomic::Ordering::SeqCst) == 4
    })
    .await;
    tokio::time::timeout(Duration::from_secs(5), hung.shutdown())
        .await
        .expect("the node shuts down with every request slot held");
}

/// (b) Twenty connections that say hello and then nothing fill the established cap (20): a
/// newcomer is refused while they are held, they are closed once `idle_timeout` passes, and
/// the newcomer then joins. A request in flight longer than `idle_timeout` is not cut, and an
/// honest member whose pooled connection was closed as idle re-dials transparently.
#[tokio::test]
async fn idle_connections_are_closed_and_free_their_places() {
    let idle_timeout = Duration::from_millis(400);
    let config = NetConfig {
        idle_timeout,
        max_connections: 20,
        ..quiet()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = Network::start(
        listener,
        None,
        Arc::new(Slow),
        config,
        CancellationToken::new(),
    )
    .unwrap();
    let addr = node.local().addr;

    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(raw_member(addr).await);
    }
    let held = Instant::now();
    // The cap is full: a newcomer's hello is refused while the idle connections are held.
    let honest = start_with(quiet()).await;
    match honest.request_addr(addr, ping()).await {
        Err(NetError::Remote { code, .. }) => assert_eq!(code, ErrorCode::Unavailable),
        other => panic!("expected a refusal while the cap is full, got {other:?}"),
    }
    for s in &mut idle {
        let left = (idle_timeout + Duration::from_secs(3)).saturating_sub(held.elapsed());
        closed_within(s, left)
            .await
            .expect("an idle connection is closed");
    }
    let took = held.elapsed();
    assert!(took >= idle_timeout.mul_f32(0.9), "closed after {took:?}");
    honest.join(&[addr]).await.unwrap();
    assert!(node.membership().live_peers().contains(&honest.local()));

    // A request in flight for twice the idle timeout keeps its connection.
    let slow = Payload::new(Message::HasChunks { chunks: vec![] });
    let answer = honest.request(node.local(), slow).await.unwrap();
    assert_eq!(answer.message, Message::Ack);
    // The node closes the honest node's pooled connection once it idles; the next request
    // re-dials without the caller noticing.
    tokio::time::sleep(idle_timeout * 2).await;
    assert_eq!(
        honest.request(node.local(), ping()).await.unwrap().message,
        Message::Pong
    );
    node.shutdown().await;
    honest.shutdown().await;
}

/// (c) Pre-handshake junk and established members do not share slots (keyed mode).
///
/// Everything runs on 127.0.0.1, so the per-address handshake limit is set high here and the
/// node-wide one low (`max_handshaking` 8): then the test shows
/// 1. established connections do not count against the pre-handshake slots: ten honest nodes
///    join one after the other (more than 8);
/// 2. 100 connections that never start their Noise handshake take at most 8 slots, the other
///    92 are closed at once, and the ten members' requests keep working while they are held;
/// 3. the held ones are closed after the handshake timeout, and a newcomer then joins.
///
/// The per-address limit itself is covered by a unit test in `server.rs` (it needs several
/// source addresses).
#[tokio::test]
async fn pre_handshake_junk_does_not_keep_members_out() {
    let key = NetworkKey::generate().unwrap();
    let handshake_timeout = Duration::from_secs(2);
    // Links stay pooled for the whole test: on a loaded machine the junk round below can take
    // longer than half the default idle timeout, and a member would then dial afresh (into the
    // full handshake slots) rather than use the link the test is about.
    let keyed = |config: NetConfig| NetConfig {
        network_key: Some(key.clone()),
        handshake_timeout,
        idle_timeout: Duration::from_secs(120),
        ..config
    };
    let node = start_with(keyed(NetConfig {
        max_handshaking: 8,
        max_handshaking_per_ip: 1000,
        ..quiet()
    }))
    .await;
    let addr = node.local().addr;
    let mut members = Vec::new();
    for _ in 0..10 {
        let member = start_with(keyed(quiet())).await;
        member.join(&[addr]).await.unwrap();
        members.push(member);
    }
    assert_eq!(node.membership().live_peers().len(), 10);

    let mut junk = Vec::new();
    for _ in 0..100 {
        junk.push(TcpStream::connect(addr).await.unwrap());
    }
    let held_since = Instant::now();
    let mut refused = 0;
    let mut held = Vec::new();
    for mut s in junk {
        match closed_within(&mut s, Duration::from_millis(100)).await {
            Some(_) => refused += 1,
            None => held.push(s),
        }
    }
    assert_eq!(held.len(), 8, "{refused} refused at once");
    // The members' established links are untouched by the junk.
    for member in &members {
        let pong = member.request(node.local(), ping()).await.unwrap();
        assert_eq!(pong.message, Message::Pong);
    }
    // ... while the junk was still held.
    for s in &mut held {
        assert_eq!(closed_within(s, Duration::from_millis(1)).await, None);
    }
    for s in &mut held {
        let left =
            (handshake_timeout + Duration::from_secs(3)).saturating_sub(held_since.elapsed());
        closed_within(s, left)
            .await
            .expect("a silent connection is closed after the handshake timeout");
    }
    let newcomer = start_with(keyed(quiet())).await;
    newcomer.join(&[addr]).await.unwrap();
    eventually("the newcomer is a member", || {
        node.membership().live_peers().contains(&newcomer.local())
    })
    .await;
    for n in members.iter().chain([&node, &newcomer]) {
        n.shutdown().await;
    }
}

/// A peer on raw TCP that answers `hello` and every `ping`; counts the connections it accepted.
async fn counting_peer() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (read, mut write) = stream.split();
                let mut frames = FramedRead::new(read, FrameCodec::new());
                while let Some(Ok(frame)) = frames.next().await {
                    let answer = match frame.envelope.message {
                        Message::Hello { .. } => hello(),
                        _ => wire(Frame::new(frame.envelope.id, Message::Pong)),
                    };
                    if write.write_all(&answer).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// The pool reuses a recently used connection, but dials afresh once it has been unused for half the
/// idle timeout, so no request is sent on a link the peer is closing as idle.
#[tokio::test]
async fn pooled_connections_unused_for_half_the_idle_timeout_are_redialed() {
    use std::sync::atomic::Ordering;
    let (addr, accepted) = counting_peer().await;
    let idle_timeout = Duration::from_millis(600);
    let client = start_with(NetConfig {
        idle_timeout,
        ..quiet()
    })
    .await;
    for _ in 0..3 {
        let pong = client.request_addr(addr, ping()).await.unwrap();
        assert_eq!(pong.message, Message::Pong);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "reused while recently used"
    );
    tokio::time::sleep(idle_timeout / 2 + Duration::from_millis(50)).await;
    let pong = client.request_addr(addr, ping()).await.unwrap();
    assert_eq!(pong.message, Message::Pong);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "dialed afresh after idling"
    );
    client.shutdown().await;
}
