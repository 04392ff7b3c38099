//! Open mode, where a `hello` proves nothing: the address an inbound `hello` claims counts
//! only once the node has dialled it and found the claimed id there. A hostile client written
//! here speaks the real wire format (JSON frames over TCP) and says `hello` with many fake ids
//! claiming addresses of listeners that accept but never answer, of closed ports, and of
//! another real node, while an honest node joins.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{eventually, start_with};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use voldisefs_net::{NetConfig, Network, Payload, PeerState};
use voldisefs_proto::{Frame, FrameCodec, Message, NodeId, PROTOCOL_VERSION, PeerInfo};

/// Fake ids the hostile client claims.
const FAKES: usize = 300;
/// Hostile connections at once (below the per-address handshake cap).
const WORKERS: usize = 4;
/// Most peers the target's table holds.
const MAX_PEERS: usize = 64;

/// Fast liveness, quick verification dials, a small table, and unverified entries forgotten
/// after 1 s.
fn config() -> NetConfig {
    NetConfig {
        probe_interval: Duration::from_millis(200),
        probe_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(300),
        handshake_timeout: Duration::from_millis(500),
        discovery_interval: Duration::from_secs(600),
        max_peers: MAX_PEERS,
        unverified_forget_after: Duration::from_secs(1),
        max_verifying: 4,
        max_verify_pending: 16,
        ..NetConfig::default()
    }
}

/// A listener that accepts connections and never sends nor reads a byte; ends when dropped.
struct BlackHole {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn black_hole() -> BlackHole {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    BlackHole { addr, task }
}

/// A loopback port nothing listens on (bound by the OS, then released).
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Connects to `target`, says `hello` as `claim`, then asks for the target's peers; returns
/// the ids in that answer (`None` if the target refused or closed the connection).
async fn claim_and_ask(target: SocketAddr, claim: PeerInfo) -> Option<Vec<NodeId>> {
    let stream = TcpStream::connect(target).await.ok()?;
    let mut framed = Framed::new(stream, FrameCodec::new());
    let hello = Message::Hello {
        version: PROTOCOL_VERSION,
        node_id: claim.id,
        listen_addr: claim.addr,
    };
    framed.send(Frame::new(1, hello)).await.ok()?;
    match framed.next().await?.ok()?.envelope.message {
        Message::Hello { .. } => {}
        _ => return None,
    }
    framed.send(Frame::new(2, Message::GetPeers)).await.ok()?;
    match framed.next().await?.ok()?.envelope.message {
        Message::Peers { peers } => Some(peers.into_iter().map(|p| p.id).collect()),
        _ => None,
    }
}

fn alive_in(net: &Network, peer: &Network) -> bool {
    net.membership().get(&peer.local().id).map(|e| e.state) == Some(PeerState::Alive)
}

/// Checks, at every change of the target's live set and until `done`, that no fake id is
/// live and the table stays within its bound; returns how many changes it checked.
async fn watch(target: Network, fakes: Arc<HashSet<NodeId>>, done: Arc<AtomicBool>) -> usize {
    let mut changes = target.membership().subscribe();
    let mut checked = 0;
    while !done.load(Ordering::SeqCst) {
        let live = target.membership().live_peers();
        assert!(
            live.iter().all(|p| !fakes.contains(&p.id)),
            "a fake id is live: {live:?}"
        );
        assert!(target.membership().len() <= MAX_PEERS);
        checked += 1;
        // Woken by a live-set change, or every 20 ms to look at the table size.
        let _ = tokio::time::timeout(Duration::from_millis(20), changes.changed()).await;
    }
    checked
}

#[tokio::test]
async fn claimed_addresses_count_only_once_verified() {
    let target = start_with(config()).await;
    let real = start_with(config()).await;
    real.bootstrap(&[target.local().addr]).await.unwrap();
    eventually("the real node is alive on both sides", || {
        alive_in(&target, &real) && alive_in(&real, &target)
    })
    .await;

    let holes = [black_hole().await, black_hole().await];
    let closed = [closed_port().await, closed_port().await];
    // Fake ids claiming: black holes, closed ports, the real node's address, in turn.
    let claims: Vec<PeerInfo> = (0..FAKES)
        .map(|i| PeerInfo {
            id: NodeId::random(),
            addr: match i % 5 {
                0 | 1 => holes[i % 2].addr,
                2 | 3 => closed[i % 2],
                _ => real.local().addr,
            },
        })
        .collect();
    let fakes: Arc<HashSet<NodeId>> = Arc::new(claims.iter().map(|p| p.id).collect());

    let done = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch(target.clone(), fakes.clone(), done.clone()));

    // The flood, and an honest node joining at the same time.
    let mut flood = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let mine: Vec<PeerInfo> = claims
            .iter()
            .copied()
            .skip(worker)
            .step_by(WORKERS)
            .collect();
        let (to, fakes) = (target.local().addr, fakes.clone());
        flood.spawn(async move {
            let mut answered = 0;
            for claim in mine {
                if let Some(ids) = claim_and_ask(to, claim).await {
                    assert!(
                        ids.iter().all(|id| !fakes.contains(id)),
                        "a fake id in a get_peers answer"
                    );
                    answered += 1;
                }
            }
            answered
        });
    }
    let honest = start_with(config()).await;
    honest.bootstrap(&[target.local().addr]).await.unwrap();
    let mut answered = 0;
    while let Some(done) = flood.join_next().await {
        answered += done.unwrap();
    }
    assert!(
        answered > FAKES / 2,
        "most hellos were answered: {answered}"
    );

    eventually("the honest node is alive on both sides", || {
        alive_in(&target, &honest) && alive_in(&honest, &target)
    })
    .await;
    // Neither the target's nor the real node's answer to an honest node lists a fake.
    for node in [target.local(), real.local()] {
        let answer = honest.request(node, Payload::new(Message::GetPeers)).await;
        let Ok(Payload {
            message: Message::Peers { peers },
            ..
        }) = answer
        else {
            panic!("no peer list from {node:?}: {answer:?}");
        };
        assert!(peers.iter().all(|p| !fakes.contains(&p.id)), "{peers:?}");
    }
    eventually("every fake claim is forgotten", || {
        target
            .membership()
            .snapshot()
            .iter()
            .all(|e| !fakes.contains(&e.info.id))
    })
    .await;
    done.store(true, Ordering::SeqCst);
    let checked = watcher.await.unwrap();
    assert!(checked > 0);
    assert!(
        alive_in(&target, &real),
        "claims of its address did not displace it"
    );
    assert_eq!(target.membership().live_peers().len(), 2);

    for net in [honest, real, target] {
        net.shutdown().await;
    }
}

/// A node reached by dialling it that advertises a different address (here: a black hole) is
/// recorded alive only once a dial of the advertised address finds it there, which never
/// happens; the dialled node stays out of placement and is forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialled_node_advertising_another_address_counts_only_once_verified() {
    let hole = black_hole().await;
    let liar_id = NodeId::random();
    // A "seed" that answers hello naming the black hole as its address, then any request.
    let seed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let seed_addr = seed.local_addr().unwrap();
    let advertised = hole.addr;
    let seed_task = tokio::spawn(async move {
        // Bounded: the node under test dials it a few times at most.
        for _ in 0..16 {
            let Ok((stream, _)) = seed.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut framed = Framed::new(stream, FrameCodec::new());
                while let Some(Ok(frame)) = framed.next().await {
                    let answer = match frame.envelope.message {
                        Message::Hello { .. } => Message::Hello {
                            version: PROTOCOL_VERSION,
                            node_id: liar_id,
                            listen_addr: advertised,
                        },
                        Message::GetPeers => Message::Peers { peers: Vec::new() },
                        Message::Ping => Message::Pong,
                        _ => Message::Ack,
                    };
                    let reply = Frame::new(frame.envelope.id, answer);
                    if framed.send(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let node = start_with(config()).await;
    node.bootstrap(&[seed_addr]).await.unwrap();
    let state = |net: &Network| net.membership().get(&liar_id).map(|e| e.state);
    assert_ne!(state(&node), Some(PeerState::Alive));
    assert!(node.membership().live_peers().is_empty());
    // The verification dial hits the black hole and times out; the claim is then forgotten.
    eventually("the unverified claim is forgotten", || {
        state(&node).is_none()
    })
    .await;
    assert!(node.membership().live_peers().is_empty());
    seed_task.abort();
    node.shutdown().await;
}
