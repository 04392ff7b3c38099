//! SWIM gossip membership between real networks on loopback: joins through one seed converge,
//! a crashed member is marked dead everywhere, forged and foreign datagrams change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{eventually, start_with, throughout};
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

/// A gossip identity as the wire carries it (foca's header and members, postcard-encoded):
/// node id, advertised address, generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct WireId {
    id: [u8; 16],
    addr: std::net::SocketAddr,
    generation: u32,
}

fn wire_id(net: &Network, generation: u32) -> WireId {
    WireId {
        id: *net.local().id.as_bytes(),
        addr: net.local().addr,
        generation,
    }
}

/// An open-mode datagram: `src` tells `dst` in a gossip message that `updates` hold.
fn forged(src: WireId, dst: WireId, updates: &[foca::Member<WireId>]) -> Vec<u8> {
    use foca::Codec;
    let mut out = b"VDG0".to_vec();
    let header = foca::Header {
        src,
        src_incarnation: 0,
        dst,
        message: foca::Message::Gossip,
    };
    foca::PostcardCodec
        .encode_header(&header, &mut out)
        .unwrap();
    out.extend_from_slice(&(updates.len() as u16).to_be_bytes());
    for m in updates {
        foca::PostcardCodec.encode_member(m, &mut out).unwrap();
    }
    out
}

/// The attack measured on the release binary (issue 25, point 1): one datagram per node,
/// naming a real member as its sender and every other member down at the highest generation,
/// split an open network for good. Also tried: the attacker as a member of its own, saying the
/// same from its own address, and claiming its victim down. Nobody may be marked dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_gossip_cannot_partition_an_open_network() {
    let nets = network(4, None).await;
    eventually("every member sees every other", || sees_all(&nets)).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let attacker = WireId {
        id: [0xa7; 16],
        addr: socket.local_addr().unwrap(),
        generation: 0,
    };
    for round in 0..20u32 {
        for (v, victim) in nets.iter().enumerate() {
            let others = nets.iter().enumerate().filter(|(i, _)| *i != v);
            let mut downs: Vec<foca::Member<WireId>> = others
                .clone()
                .flat_map(|(_, n)| {
                    [
                        foca::Member::down(wire_id(n, u32::MAX)),
                        foca::Member::down(wire_id(n, 0)),
                        foca::Member::new(wire_id(n, 1), u16::MAX, foca::State::Down),
                    ]
                })
                .collect();
            downs.push(foca::Member::down(wire_id(victim, 0)));
            // A real member named as the sender (the measured attack)...
            let (_, real) = others.clone().nth(round as usize % 3).unwrap();
            let spoofed = forged(wire_id(real, 0), wire_id(victim, 0), &downs);
            socket.send_to(&spoofed, victim.local().addr).await.unwrap();
            // ...and the attacker speaking for itself.
            let own = forged(attacker, wire_id(victim, 0), &downs);
            socket.send_to(&own, victim.local().addr).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    throughout(
        "no member marked another dead",
        Duration::from_secs(4),
        || sees_all(&nets),
    )
    .await;
    for n in nets {
        n.shutdown().await;
    }
}

/// A flood of junk datagrams is read at most `max_datagrams_per_sec` a second (the kernel
/// drops the rest), so it costs a bounded share of a core; the members stay up through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_flood_is_read_at_a_bounded_rate() {
    let nets = network(2, None).await;
    eventually("every member sees every other", || sees_all(&nets)).await;
    let victim = nets[0].clone();
    let before = victim.traffic().datagrams_in;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(2) && sent < 2_000_000 {
        for _ in 0..1_000 {
            let _ = socket.try_send_to(b"VDG0junkjunkjunk", victim.local().addr);
            sent += 1;
        }
        tokio::task::yield_now().await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let read = victim.traffic().datagrams_in - before;
    let cap = GossipConfig::default().max_datagrams_per_sec as f64;
    eprintln!("sent {sent} junk datagrams in {elapsed:.2} s; the victim read {read}");
    assert!(
        (read as f64) <= cap * (elapsed + 1.5),
        "read {read} datagrams in {elapsed:.2} s (cap {cap}/s)"
    );
    assert!(sees_all(&nets));
    for n in nets {
        n.shutdown().await;
    }
}

/// Push-pull on join: a member that a joiner asks for its list pulls the joiner's list back at
/// once, so it learns what only the joiner knew. Here the joiner runs no gossip and knows one
/// more node that nothing else ever contacts, and the member's periodic anti-entropy and
/// announcements are 10 minutes apart: the pulled-back list is the only way to learn it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_pulls_a_joiners_list_back_at_once() {
    for key in [None, Some(NetworkKey::generate().unwrap())] {
        let slow_pulls = GossipConfig {
            sync_every: Duration::from_secs(600),
            announce_every: Duration::from_secs(600),
            ..gossip(key.clone()).gossip.unwrap()
        };
        let member = start_with(NetConfig {
            gossip: Some(slow_pulls),
            ..gossip(key.clone())
        })
        .await;
        let quiet = || NetConfig {
            gossip: None,
            probe_interval: Duration::from_secs(600),
            discovery_interval: Duration::from_secs(600),
            ..gossip(key.clone())
        };
        let joiner = start_with(quiet()).await;
        let hidden = start_with(quiet()).await;
        hidden.bootstrap(&[joiner.local().addr]).await.unwrap();
        eventually("the joiner counts the hidden node live", || {
            joiner
                .membership()
                .get(&hidden.local().id)
                .is_some_and(|e| e.state.is_live())
        })
        .await;
        joiner.bootstrap(&[member.local().addr]).await.unwrap();
        eventually("the member learns the node only the joiner knew", || {
            member.membership().get(&hidden.local().id).is_some()
        })
        .await;
        for n in [member, joiner, hidden] {
            n.shutdown().await;
        }
    }
}

/// Open mode: a member a third party names counts once an address check (two datagrams on
/// the gossip socket) found it at its address, and is then gossiped on. Nodes that joined
/// through one seed, with anti-entropy rounds, announcements and member-list pulls ten minutes
/// apart (so the gossip alone spreads the joins), count each other live without one
/// verification dial (a dial's check is a TCP `ping`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_members_verify_each_other_with_datagrams_and_spread_the_news() {
    let config = || {
        let base = gossip(None);
        NetConfig {
            gossip: Some(GossipConfig {
                sync_every: Duration::from_secs(600),
                announce_every: Duration::from_secs(600),
                pull_gap: Duration::from_secs(600),
                ..base.gossip.clone().unwrap()
            }),
            ..base
        }
    };
    let seed = start_with(config()).await;
    let mut nets = vec![seed.clone()];
    for _ in 1..6 {
        let net = start_with(config()).await;
        net.bootstrap(&[seed.local().addr]).await.unwrap();
        nets.push(net);
    }
    eventually("every member sees every other", || sees_all(&nets)).await;
    let pings: u64 = nets
        .iter()
        .flat_map(|n| n.request_stats())
        .filter(|s| s.direction == "out" && s.kind == "ping")
        .map(|s| s.count)
        .sum();
    assert_eq!(pings, 0, "addresses were verified by dialling");
    for n in nets {
        n.shutdown().await;
    }
}

/// An address check (open mode) is answered with no more bytes than it took, and a request
/// that names an address other than the one it came from makes no claim: a forged source
/// cannot get a node to take on, or check, a third address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_checks_reflect_no_more_than_they_take_and_forged_askers_claim_nothing() {
    let node = start_with(gossip(None)).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let request = |nonce: u8, id: [u8; 16], addr: &str| {
        let mut r = b"VDC2".to_vec();
        r.extend_from_slice(&[nonce; 16]);
        r.extend_from_slice(&id);
        r.extend_from_slice(addr.as_bytes());
        r.resize(96, 0);
        r
    };
    // Names an address it does not come from.
    let elsewhere = "127.0.0.1:9";
    let forged = request(1, [5; 16], elsewhere);
    socket.send_to(&forged, node.local().addr).await.unwrap();
    let mut buf = [0u8; 2048];
    let (len, from) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("the check is answered")
        .unwrap();
    assert_eq!(from, node.local().addr);
    assert!(
        len <= forged.len(),
        "answered {len} bytes to {}",
        forged.len()
    );
    assert_eq!(&buf[..4], b"VDA2");
    assert_eq!(&buf[4..20], &[1; 16], "the nonce comes back");
    assert_eq!(&buf[20..36], node.local().id.as_bytes());
    assert_eq!(&buf[36..len], node.local().addr.to_string().as_bytes());
    // It comes from the address it names: a claim (checked in turn).
    let honest = request(2, [6; 16], &socket.local_addr().unwrap().to_string());
    socket.send_to(&honest, node.local().addr).await.unwrap();
    eventually("the honest asker is claimed", || {
        node.membership()
            .snapshot()
            .iter()
            .any(|e| e.info.addr == socket.local_addr().unwrap())
    })
    .await;
    assert!(
        node.membership()
            .snapshot()
            .iter()
            .all(|e| e.info.addr.to_string() != elsewhere),
        "a forged asker was claimed"
    );
    node.shutdown().await;
}
