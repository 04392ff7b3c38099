//! SWIM gossip membership between real networks on loopback: joins through one seed converge,
//! a crashed member is marked dead everywhere, forged and foreign datagrams change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{eventually, start_with};
use voldisefs_net::{GossipConfig, NetConfig, Network, NetworkKey, PeerState};

/// Gossip with quick probes and suspicion, so a test sees a death within a few seconds.
fn gossip(key: Option<NetworkKey>) -> NetConfig {
    NetConfig {
        network_key: key,
        connect_timeout: Duration::from_millis(500),
        handshake_timeout: Duration::from_millis(1000),
        probe_interval: Duration::from_millis(200),
        probe_timeout: Duration::from_millis(500),
        gossip: Some(GossipConfig {
            probe_period: Duration::from_millis(200),
            probe_rtt: Duration::from_millis(100),
            suspect_after: Duration::from_millis(600),
            gossip_every: Duration::from_millis(50),
            sync_every: Duration::from_millis(300),
            ..GossipConfig::default()
        }),
        ..NetConfig::default()
    }
}

fn sees_all(nets: &[Network]) -> bool {
    nets.iter()
        .all(|n| n.membership().live_peers().len() == nets.len() - 1)
}

async fn network(n: usize, key: Option<NetworkKey>) -> Vec<Network> {
    let first = start_with(gossip(key.clone())).await;
    let mut nets = vec![first.clone()];
    for _ in 1..n {
        let net = start_with(gossip(key.clone())).await;
        net.bootstrap(&[first.local().addr]).await.unwrap();
        nets.push(net);
    }
    nets
}

async fn converge_then_detect_a_crash(key: Option<NetworkKey>) {
    let nets = network(8, key).await;
    eventually("every member sees every other", || sees_all(&nets)).await;
    // A crash: no leave, the sockets just close.
    let victim = nets[3].clone();
    victim.shutdown().await;
    let survivors: Vec<Network> = nets
        .iter()
        .filter(|n| n.local().id != victim.local().id)
        .cloned()
        .collect();
    eventually("every survivor marks the crashed member dead", || {
        survivors.iter().all(|n| {
            n.membership()
                .get(&victim.local().id)
                .is_none_or(|e| e.state == PeerState::Dead)
        })
    })
    .await;
    assert!(sees_all(&survivors));
    for n in survivors {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_members_converge_and_detect_a_crash() {
    converge_then_detect_a_crash(Some(NetworkKey::generate().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_members_converge_and_detect_a_crash() {
    converge_then_detect_a_crash(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_without_the_key_change_nothing() {
    let key = NetworkKey::generate().unwrap();
    let nets = network(3, Some(key)).await;
    eventually("every member sees every other", || sees_all(&nets)).await;
    let before: Vec<_> = nets.iter().map(|n| n.membership().live_peers()).collect();
    // Junk, an open-mode packet, and a packet sealed under another key, many times each.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut packets: Vec<Vec<u8>> = vec![b"junk".to_vec(), b"VDG0hello".to_vec()];
    let mut forged = b"VDG1".to_vec();
    forged.extend_from_slice(&[7u8; 200]);
    packets.push(forged);
    for _ in 0..50 {
        for net in &nets {
            for p in &packets {
                socket.send_to(p, net.local().addr).await.unwrap();
            }
        }
    }
    // A node of another network, with its own key, announcing itself to them.
    let stranger = start_with(gossip(Some(NetworkKey::generate().unwrap()))).await;
    assert!(stranger.bootstrap(&[nets[0].local().addr]).await.is_err());
    // Give the packets time to arrive; membership must be unchanged (bounded wait).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<_> = nets.iter().map(|n| n.membership().live_peers()).collect();
    assert_eq!(before, after);
    assert!(
        nets.iter()
            .all(|n| n.membership().get(&stranger.local().id).is_none())
    );
    stranger.shutdown().await;
    for n in nets {
        n.shutdown().await;
    }
}

/// A member known only over TCP (here: one that never speaks the gossip, as one that crashed
/// before its announcement arrived) is not kept alive: the members that met it hand it to
/// their gossip, which probes it and declares it dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_known_only_over_tcp_is_probed_by_the_gossip() {
    for key in [None, Some(NetworkKey::generate().unwrap())] {
        let nets = network(3, key.clone()).await;
        let late = start_with(NetConfig {
            gossip: None,
            probe_interval: Duration::from_secs(600),
            discovery_interval: Duration::from_secs(600),
            ..gossip(key)
        })
        .await;
        late.bootstrap(&[nets[0].local().addr]).await.unwrap();
        late.shutdown().await;
        eventually("nobody keeps the crashed member alive", || {
            nets.iter().all(|n| {
                n.membership()
                    .get(&late.local().id)
                    .is_none_or(|e| !e.state.is_live())
            })
        })
        .await;
        for n in nets {
            n.shutdown().await;
        }
    }
}

/// A node whose bootstrap returned already knows every member its seed named, as live, in
/// both modes (in open mode their addresses were verified by a dial on the way): a request
/// right after start finds the whole network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_knows_the_network_once_its_bootstrap_returns() {
    for key in [None, Some(NetworkKey::generate().unwrap())] {
        let nets = network(5, key.clone()).await;
        eventually("every member sees every other", || sees_all(&nets)).await;
        let late = start_with(gossip(key)).await;
        late.bootstrap(&[nets[0].local().addr]).await.unwrap();
        let live = late.membership().live_peers();
        assert_eq!(live.len(), nets.len(), "{live:?}");
        late.shutdown().await;
        for n in nets {
            n.shutdown().await;
        }
    }
}

/// A graceful leave reaches every member, also in a network larger than the leave messages
/// sent at once: each marks the node left (never revived), none merely dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leave_marks_the_node_left_everywhere() {
    let nets = network(voldisefs_net::LEAVE_PARALLELISM + 8, None).await;
    eventually("every member sees every other", || sees_all(&nets)).await;
    let leaver = nets[5].clone();
    leaver.announce_leave().await;
    leaver.shutdown().await;
    let others: Vec<Network> = nets
        .iter()
        .filter(|n| n.local().id != leaver.local().id)
        .cloned()
        .collect();
    for n in &others {
        assert!(n.membership().has_left(&leaver.local().id));
    }
    eventually("the others keep seeing each other", || sees_all(&others)).await;
    for n in others {
        n.shutdown().await;
    }
}
