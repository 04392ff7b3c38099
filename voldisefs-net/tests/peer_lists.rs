//! Peer lists from hostile peers are bounded and validated: bootstrap and discovery on real
//! networks over loopback, against a peer written here that speaks the real wire format.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, ping, quiet, start_with, throughout};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use voldisefs_net::{NetConfig, NetError};
use voldisefs_proto::{
    ErrorCode, Frame, FrameCodec, MAX_PEERS_PER_ANSWER, Message, NodeId, PROTOCOL_VERSION, PeerInfo,
};

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn at(addr: SocketAddr) -> PeerInfo {
    PeerInfo {
        id: NodeId::random(),
        addr,
    }
}

/// Addresses that lead nowhere (TEST-NET-1): connecting times out or fails at once.
fn nowhere(n: usize) -> Vec<PeerInfo> {
    (1..=n)
        .map(|port| at(SocketAddr::from(([192, 0, 2, 1], port as u16))))
        .collect()
}

/// A peer written here that speaks the real wire format (open mode): it answers `hello` with
/// its own, `ping` with `pong` and `get_peers` with whatever list it was given.
struct Hostile {
    info: PeerInfo,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hostile(peers: Vec<PeerInfo>) -> Hostile {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let info = at(listener.local_addr().unwrap());
    let peers = Arc::new(peers);
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            connections.spawn(serve_hostile(stream, info, peers.clone()));
        }
    });
    Hostile { info, task }
}

async fn serve_hostile(stream: TcpStream, me: PeerInfo, peers: Arc<Vec<PeerInfo>>) {
    let mut framed = Framed::new(stream, FrameCodec::new());
    while let Some(Ok(frame)) = framed.next().await {
        let answer = match frame.envelope.message {
            Message::Hello { .. } => Message::Hello {
                version: PROTOCOL_VERSION,
                node_id: me.id,
                listen_addr: me.addr,
            },
            Message::GetPeers => Message::Peers {
                peers: peers.to_vec(),
            },
            Message::Ping => Message::Pong,
            _ => Message::error(ErrorCode::BadRequest, "hostile"),
        };
        if framed
            .send(Frame::new(frame.envelope.id, answer))
            .await
            .is_err()
        {
            return;
        }
    }
}

#[tokio::test]
async fn an_oversized_peer_list_is_refused_whole() {
    let evil = hostile(nowhere(5000)).await;
    let n = start_with(NetConfig {
        max_peers: 64,
        ..quiet()
    })
    .await;
    let err = n.bootstrap(&[evil.info.addr]).await.unwrap_err();
    // Only the seed was contacted: none of the 5000 addresses was queued.
    assert!(
        matches!(err, NetError::BootstrapFailed { tried: 1 }),
        "{err}"
    );
    assert_eq!(
        n.membership().len(),
        1,
        "only the seed itself, from its hello"
    );
    n.shutdown().await;
}

#[tokio::test]
async fn bootstrap_contacts_at_most_max_peers_learned_addresses() {
    let evil = hostile(nowhere(MAX_PEERS_PER_ANSWER)).await;
    let n = start_with(NetConfig {
        max_peers: 40,
        connect_timeout: Duration::from_millis(100),
        bootstrap_parallelism: 64,
        ..quiet()
    })
    .await;
    let report = n.bootstrap(&[evil.info.addr]).await.unwrap();
    assert_eq!(report.reached, vec![evil.info]);
    assert_eq!(
        report.unreachable.len(),
        40,
        "the queue is capped at max_peers"
    );
    assert!(n.membership().len() <= 40);
    n.shutdown().await;
}

#[tokio::test]
async fn invalid_peer_list_entries_are_dropped() {
    let n = start_with(quiet()).await;
    // Three real nodes listed correctly.
    let mut valid = Vec::new();
    for _ in 0..3 {
        valid.push(start_with(quiet()).await);
    }
    // Three more that only an invalid entry leads to: none of them may hear from `n`.
    let (d, e, f) = (
        start_with(quiet()).await,
        start_with(quiet()).await,
        start_with(quiet()).await,
    );
    let mut list: Vec<PeerInfo> = valid.iter().map(|v| v.local()).collect();
    list.extend([
        // Unspecified address: dialing 0.0.0.0 would reach d on loopback.
        at(SocketAddr::from(([0, 0, 0, 0], d.local().addr.port()))),
        // This node's own id at e's address.
        PeerInfo {
            id: n.local().id,
            addr: e.local().addr,
        },
        // A repeated id at f's address.
        PeerInfo {
            id: valid[0].local().id,
            addr: f.local().addr,
        },
        at(addr("127.0.0.1:0")),
        at(addr("224.0.0.1:7000")),
        at(addr("255.255.255.255:7000")),
        at(addr("[ff02::1]:7000")),
    ]);
    let padding = 50 - list.len();
    list.extend(nowhere(padding));
    assert_eq!(list.len(), 50);
    let evil = hostile(list).await;

    let report = n.bootstrap(&[evil.info.addr]).await.unwrap();
    let reached: HashSet<PeerInfo> = report.reached.iter().copied().collect();
    let expected: HashSet<PeerInfo> = valid.iter().map(|v| v.local()).chain([evil.info]).collect();
    assert_eq!(reached, expected);
    assert_eq!(
        report.unreachable.len(),
        padding,
        "{:?}",
        report.unreachable
    );
    for decoy in [&d, &e, &f] {
        assert!(decoy.membership().is_empty(), "an invalid entry was dialed");
    }
    assert_eq!(n.membership().len(), 4);
    for node in valid.into_iter().chain([d, e, f, n]) {
        node.shutdown().await;
    }
}

#[tokio::test]
async fn discovery_introduces_at_most_fanout_peers_per_round() {
    let mut others = Vec::new();
    for _ in 0..12 {
        others.push(start_with(quiet()).await);
    }
    let evil = hostile(others.iter().map(|o| o.local()).collect()).await;
    let n = start_with(NetConfig {
        discovery_interval: Duration::from_secs(1),
        discovery_fanout: 4,
        ..quiet()
    })
    .await;
    // Known through a bare connection (no bootstrap): only discovery can find the rest.
    n.request_addr(evil.info.addr, ping()).await.unwrap();
    assert_eq!(n.membership().len(), 1);
    eventually("the first discovery round", || n.membership().len() > 1).await;
    // The round is over within a few milliseconds; the next starts a second later.
    throughout(
        "one round adds fanout peers",
        Duration::from_millis(300),
        || n.membership().len() <= 5,
    )
    .await;
    eventually("the round introduced exactly fanout peers", || {
        n.membership().len() == 5
    })
    .await;
    for node in others.into_iter().chain([n]) {
        node.shutdown().await;
    }
}
