//! Membership lifecycle on real networks over loopback: retried joins, the root token, the
//! freeze drill, and leaves that stay left.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{eventually, fast, ping, pings_sent, quiet, slow, start_on, start_with};
use tokio::net::{TcpListener, TcpStream};
use voldisefs_net::{CancellationToken, NetConfig, NetError, Payload, PeerState};
use voldisefs_proto::Message;

#[tokio::test]
async fn join_waits_for_a_seed_that_comes_up_later() {
    // Reserve a port, then free it: nothing listens there yet.
    let seed_addr = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let n = start_with(NetConfig {
        join_retry_initial: Duration::from_millis(20),
        join_retry_max: Duration::from_millis(100),
        ..quiet()
    })
    .await;
    assert!(!n.is_joining(), "not joining before join is called");
    let joiner = tokio::spawn({
        let n = n.clone();
        async move { n.join(&[seed_addr]).await }
    });
    eventually("join is under way", || n.is_joining()).await;
    // The seed comes up a moment later; the attempts so far found nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!joiner.is_finished() && n.is_joining());
    let seed = start_on(
        TcpListener::bind(seed_addr).await.unwrap(),
        quiet(),
        CancellationToken::new(),
    )
    .await;
    let report = tokio::time::timeout(Duration::from_secs(10), joiner)
        .await
        .expect("join finishes once the seed is up")
        .unwrap()
        .unwrap();
    assert_eq!(report.reached, vec![seed.local()]);
    assert!(!n.is_joining());
    assert_eq!(seed.membership().live_peers(), vec![n.local()]);
    n.shutdown().await;
    seed.shutdown().await;
}

#[tokio::test]
async fn cancelling_the_root_token_stops_join_and_everything() {
    let root = CancellationToken::new();
    let nowhere = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let config = NetConfig {
        join_retry_initial: Duration::from_millis(20),
        join_retry_max: Duration::from_millis(50),
        ..quiet()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let n = start_on(listener, config, root.child_token()).await;
    let peer = start_with(quiet()).await;
    peer.request(n.local(), ping()).await.unwrap();
    let joiner = tokio::spawn({
        let n = n.clone();
        async move { n.join(&[nowhere]).await }
    });
    eventually("join is under way", || n.is_joining()).await;
    root.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), joiner)
        .await
        .expect("join ends with the token")
        .unwrap();
    assert!(matches!(outcome, Err(NetError::Shutdown)), "{outcome:?}");
    assert!(n.is_joining(), "it never joined");
    assert!(n.is_shut_down());
    // Every task ends: shutdown only has to wait for them.
    tokio::time::timeout(Duration::from_secs(5), n.shutdown())
        .await
        .expect("every task ended");
    // The open connection was closed and nothing accepts any more.
    let err = peer.request(n.local(), ping()).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetError::ConnectionClosed { .. } | NetError::Connect { .. }
        ),
        "{err}"
    );
    assert!(TcpStream::connect(n.local().addr).await.is_err());
    peer.shutdown().await;
}

#[tokio::test]
async fn a_frozen_node_keeps_its_links_but_answers_nothing_until_thawed() {
    let a = start_with(NetConfig {
        request_timeout: Duration::from_secs(1),
        ..quiet()
    })
    .await;
    let b = start_with(NetConfig {
        request_timeout: Duration::from_millis(300),
        ..quiet()
    })
    .await;
    b.request(a.local(), ping()).await.unwrap();
    // a verifies the address b's hello claimed (a dial and a ping): let that settle first.
    eventually("a verified b", || pings_sent(&a) == 1).await;
    let served_before = a.traffic().frames_in;

    a.set_frozen(true);
    assert!(a.is_frozen());
    // A peer's request to it times out on the peer's side...
    let err = b.request(a.local(), ping()).await.unwrap_err();
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
    assert_eq!(a.traffic().frames_in, served_before, "nothing was read");
    // ... a new connection is not accepted (its handshake times out) ...
    let c = start_with(quiet()).await;
    let err = c.request_addr(a.local().addr, ping()).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetError::Timeout {
                what: "handshake",
                ..
            }
        ),
        "{err}"
    );
    // ... and its own requests wait: not even a hello leaves it.
    let b_heard = b.traffic().frames_in;
    let mut outbound = tokio::spawn({
        let (a, b) = (a.clone(), b.local());
        async move { a.request(b, ping()).await }
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut outbound)
            .await
            .is_err(),
        "a frozen node's request waits"
    );
    assert_eq!(
        b.traffic().frames_in,
        b_heard,
        "a frozen node sends nothing"
    );

    a.set_frozen(false);
    outbound.await.unwrap().unwrap();
    let sent = b.traffic().frames_out;
    b.request(a.local(), ping()).await.unwrap();
    // The thawed node answered on the connection that stayed open: no second hello.
    assert_eq!(b.traffic().frames_out, sent + 1, "one ping, no hello");
    c.request_addr(a.local().addr, ping()).await.unwrap();

    // A request still frozen at its timeout fails without blaming the peer.
    a.set_frozen(true);
    let err = a.request(b.local(), ping()).await.unwrap_err();
    assert!(matches!(err, NetError::Frozen), "{err}");
    assert_eq!(
        a.membership().get(&b.local().id).unwrap().state,
        PeerState::Alive
    );
    a.set_frozen(false);
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test]
async fn a_frozen_node_neither_reads_nor_sends_answers_in_flight() {
    let short = || NetConfig {
        request_timeout: Duration::from_millis(600),
        ..quiet()
    };
    let (a, b) = (start_with(short()).await, start_with(short()).await);
    a.request(b.local(), ping()).await.unwrap();
    // b verifies the address a's hello claimed (a dial and a ping): let that settle first.
    eventually("b verified a", || pings_sent(&b) == 1).await;
    let heard = b.traffic().frames_in;
    let request = tokio::spawn({
        let (a, b) = (a.clone(), b.local());
        async move { a.request(b, slow()).await }
    });
    // Freeze once the request is out; b answers 200 ms later, into a frozen node.
    eventually("b received the request", || b.traffic().frames_in > heard).await;
    a.set_frozen(true);
    let received = a.traffic().frames_in;
    let outcome = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the request times out")
        .unwrap();
    assert!(
        matches!(
            outcome,
            Err(NetError::Timeout {
                what: "request",
                ..
            })
        ),
        "{outcome:?}"
    );
    assert_eq!(a.traffic().frames_in, received, "the answer was not read");
    a.set_frozen(false);
    // The late answer is read after the thaw (and dropped); the link still works.
    eventually("the late answer is read", || {
        a.traffic().frames_in > received
    })
    .await;
    a.request(b.local(), ping()).await.unwrap();

    // The other way: a request a read before its freeze is not answered until the thaw.
    let heard = a.traffic().frames_in;
    let request = tokio::spawn({
        let (a, b) = (a.local(), b.clone());
        async move { b.request(a, slow()).await }
    });
    eventually("a received the request", || a.traffic().frames_in > heard).await;
    a.set_frozen(true);
    let outcome = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the request times out")
        .unwrap();
    assert!(
        matches!(
            outcome,
            Err(NetError::Timeout {
                what: "request",
                ..
            })
        ),
        "{outcome:?}"
    );
    a.set_frozen(false);
    b.request(a.local(), ping()).await.unwrap();
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_node_that_left_is_never_revived() {
    let a = start_with(NetConfig {
        forget_after: Duration::from_millis(300),
        ..fast()
    })
    .await;
    // b runs no liveness loops, so its traffic is only what the test makes it send.
    let (b, c) = (start_with(quiet()).await, start_with(fast()).await);
    b.bootstrap(&[a.local().addr]).await.unwrap();
    c.bootstrap(&[a.local().addr]).await.unwrap();
    // a verifies b's claimed address (a dial and a ping): let that settle before counting.
    eventually("a verified b", || {
        b.request_stats()
            .iter()
            .any(|s| s.direction == "in" && s.kind == "ping" && s.outcome == "ok")
    })
    .await;
    b.announce_leave().await;
    assert_eq!(
        a.membership().get(&b.local().id).unwrap().state,
        PeerState::Left
    );

    // The leaving node hands its data off on a fresh connection: a new hello from it.
    b.set_isolated(true);
    b.set_isolated(false);
    let sent = b.traffic().frames_out;
    b.request(
        a.local(),
        Payload::new(Message::HasChunks { chunks: vec![] }),
    )
    .await
    .unwrap();
    assert_eq!(b.traffic().frames_out, sent + 2, "hello and the request");
    assert_eq!(
        a.membership().get(&b.local().id).unwrap().state,
        PeerState::Left
    );

    // Probe rounds go by (a keeps pinging c); b stays left, then is forgotten but stays out.
    let pings = pings_sent(&a);
    eventually("a few probe rounds", || pings_sent(&a) >= pings + 3).await;
    eventually("the left entry is forgotten", || {
        a.membership().get(&b.local().id).is_none()
    })
    .await;
    assert!(a.membership().has_left(&b.local().id));
    b.set_isolated(true);
    b.set_isolated(false);
    b.request(a.local(), ping()).await.unwrap();
    assert!(
        a.membership().get(&b.local().id).is_none(),
        "not re-added by its hello"
    );
    let peers = c
        .request(a.local(), Payload::new(Message::GetPeers))
        .await
        .unwrap();
    assert_eq!(
        peers.message,
        Message::Peers { peers: vec![] },
        "nor listed to others"
    );
    assert_eq!(a.membership().live_peers(), vec![c.local()]);
    for n in [a, b, c] {
        n.shutdown().await;
    }
}
