//! Unit tests of the membership rules, on an injected clock.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use voldisefs_proto::{MAX_PEERS_PER_ANSWER, NodeId, PeerInfo};

use super::left::LeftIds;
use super::peer_list::{PeerListTooLong, validate_peer_list, window};
use super::{Membership, PeerState, Reported};

fn peer(port: u16) -> PeerInfo {
    PeerInfo {
        id: NodeId::random(),
        addr: ([127, 0, 0, 1], port).into(),
    }
}

const MINUTE: Duration = Duration::from_secs(60);

#[test]
fn observe_adds_and_revives() {
    let m = Membership::new(peer(1));
    let p = peer(2);
    let rx = m.subscribe();
    assert!(m.observe(p));
    assert!(!m.observe(p), "seeing a live peer again changes nothing");
    assert!(rx.has_changed().unwrap());
    assert!(m.set_state(p.id, PeerState::Dead));
    assert!(m.live_peers().is_empty());
    assert!(m.observe(p), "a dead peer heard from again is alive");
    assert_eq!(m.live_peers(), vec![p]);
}

#[test]
fn local_node_is_never_a_peer() {
    let local = peer(1);
    let m = Membership::new(local);
    assert!(!m.observe(local));
    assert!(m.is_empty());
}

#[test]
fn restarted_node_at_same_address_replaces_old_one() {
    let m = Membership::new(peer(1));
    let old = peer(2);
    let new = PeerInfo {
        id: NodeId::random(),
        addr: old.addr,
    };
    m.observe(old);
    m.observe(new);
    assert_eq!(m.live_peers(), vec![new]);
    assert_eq!(m.get(&old.id).unwrap().state, PeerState::Dead);
    assert_eq!(m.len(), 2);
}

#[test]
fn probes_make_peers_suspect_then_dead_then_alive_again() {
    let m = Membership::new(peer(1));
    let p = peer(2);
    m.observe(p);
    let rx = m.subscribe();
    assert_eq!(m.record_probe(p.id, false, 3), Some(PeerState::Suspect));
    assert_eq!(m.record_probe(p.id, false, 3), None);
    assert!(
        !rx.has_changed().unwrap(),
        "suspect peers stay in placement"
    );
    assert_eq!(m.record_probe(p.id, false, 3), Some(PeerState::Dead));
    assert!(rx.has_changed().unwrap());
    assert!(m.live_peers().is_empty());
    assert_eq!(m.record_probe(p.id, true, 3), Some(PeerState::Alive));
    assert_eq!(m.get(&p.id).unwrap().failures, 0);
    assert_eq!(m.live_peers(), vec![p]);
    // A success resets the count: two more failures do not kill it.
    m.record_probe(p.id, false, 3);
    m.record_probe(p.id, true, 3);
    m.record_probe(p.id, false, 3);
    m.record_probe(p.id, false, 3);
    assert_eq!(m.get(&p.id).unwrap().state, PeerState::Suspect);
}

#[test]
fn left_peers_are_never_revived() {
    let m = Membership::new(peer(1));
    let p = peer(2);
    m.observe(p);
    let rx = m.subscribe();
    assert!(
        m.set_state(p.id, PeerState::Left),
        "leaving drops it from placement"
    );
    let mut rx2 = rx.clone();
    rx2.mark_unchanged();
    assert_eq!(m.record_probe(p.id, true, 3), None, "a probe success");
    assert!(!m.observe(p), "its own hello (hand-off traffic)");
    let moved = PeerInfo {
        id: p.id,
        addr: ([127, 0, 0, 1], 9).into(),
    };
    assert!(!m.observe(moved), "its hello from another address");
    assert!(
        !m.set_state(p.id, PeerState::Alive),
        "an explicit state change"
    );
    assert!(!m.set_state(p.id, PeerState::Suspect));
    assert!(!m.set_state(p.id, PeerState::Dead));
    let entry = m.get(&p.id).unwrap();
    assert_eq!(entry.state, PeerState::Left);
    assert_eq!(entry.info, p, "the left entry is not updated either");
    assert!(m.live_peers().is_empty());
    assert!(!rx2.has_changed().unwrap(), "no live-set change announced");
    assert!(m.has_left(&p.id));
    assert_eq!(
        m.record_probe(NodeId::random(), true, 3),
        None,
        "unknown ids are ignored"
    );
}

#[test]
fn a_leave_from_an_unknown_node_is_remembered() {
    let m = Membership::new(peer(1));
    let p = peer(2);
    assert!(!m.mark_left(p.id), "nothing live changed");
    assert!(m.is_empty());
    assert!(
        !m.observe(p),
        "a node that announced its leave is not added later"
    );
    assert!(m.is_empty());
}

#[test]
fn left_ids_outlive_their_expired_entries() {
    let m = Membership::with_limits(peer(1), 16, MINUTE);
    let t0 = Instant::now();
    let p = peer(2);
    m.observe_at(p, t0);
    m.mark_left_at(p.id, t0);
    assert_eq!(m.prune(t0 + MINUTE / 2), 0, "not yet");
    assert_eq!(m.prune(t0 + MINUTE), 1);
    assert!(m.get(&p.id).is_none(), "the entry is forgotten");
    assert!(!m.observe_at(p, t0 + 2 * MINUTE), "but the node stays left");
    assert!(m.is_empty());
    assert!(m.has_left(&p.id));
}

#[test]
fn dead_entries_expire_unless_heard_from_first() {
    let m = Membership::with_limits(peer(1), 16, MINUTE);
    let t0 = Instant::now();
    let (a, b, c) = (peer(2), peer(3), peer(4));
    for p in [a, b, c] {
        m.observe_at(p, t0);
    }
    // a dies at t0, b at t0 + 30 s; c stays alive.
    for _ in 0..3 {
        m.record_probe_at(a.id, false, 3, t0);
    }
    for _ in 0..3 {
        m.record_probe_at(b.id, false, 3, t0 + MINUTE / 2);
    }
    assert_eq!(m.get(&a.id).unwrap().state, PeerState::Dead);
    assert_eq!(m.get(&b.id).unwrap().since, t0 + MINUTE / 2);
    // Failed probes of a dead peer do not postpone its expiry.
    m.record_probe_at(a.id, false, 3, t0 + MINUTE / 2);
    assert_eq!(m.get(&a.id).unwrap().since, t0);
    assert_eq!(m.prune(t0 + MINUTE - Duration::from_millis(1)), 0);
    assert_eq!(m.prune(t0 + MINUTE), 1, "a expired");
    assert!(m.get(&a.id).is_none());
    // b is heard from before its expiry: alive again, and no longer expires.
    assert!(m.observe_at(b, t0 + MINUTE));
    assert_eq!(m.prune(t0 + 10 * MINUTE), 0, "live peers never expire");
    assert_eq!(m.len(), 2);
    // A forgotten dead peer that comes back is simply new again.
    assert!(m.observe_at(a, t0 + 11 * MINUTE));
    assert_eq!(m.get(&a.id).unwrap().state, PeerState::Alive);
}

#[test]
fn suspect_peers_do_not_expire() {
    let m = Membership::with_limits(peer(1), 16, MINUTE);
    let t0 = Instant::now();
    let p = peer(2);
    m.observe_at(p, t0);
    m.record_probe_at(p.id, false, 3, t0);
    assert_eq!(m.prune(t0 + 10 * MINUTE), 0);
    assert_eq!(m.get(&p.id).unwrap().state, PeerState::Suspect);
}

#[test]
fn full_table_evicts_oldest_dead_or_left_then_refuses() {
    let m = Membership::with_limits(peer(1), 3, MINUTE);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let (a, b, c) = (peer(2), peer(3), peer(4));
    for p in [a, b, c] {
        assert!(m.observe_at(p, t0));
    }
    assert_eq!(m.len(), 3);
    // Full of live peers: a newcomer is refused, nobody is evicted.
    let d = peer(5);
    assert!(!m.observe_at(d, at(1)));
    assert!(m.get(&d.id).is_none());
    assert_eq!(m.len(), 3);
    // b leaves at 2 s, a dies at 3 s: b has been out longest, so it goes first.
    m.mark_left_at(b.id, at(2));
    for _ in 0..3 {
        m.record_probe_at(a.id, false, 3, at(3));
    }
    assert!(m.observe_at(d, at(4)));
    assert!(
        m.get(&b.id).is_none(),
        "the oldest left/dead entry is evicted"
    );
    assert!(m.get(&a.id).is_some());
    assert!(m.has_left(&b.id), "an evicted left node stays left");
    let e = peer(6);
    assert!(m.observe_at(e, at(5)));
    assert!(m.get(&a.id).is_none(), "then the dead one");
    assert_eq!(m.len(), 3);
    // Full of live peers again.
    assert!(!m.observe_at(peer(7), at(6)));
    assert_eq!(m.len(), 3);
    // A known peer is still updated when the table is full.
    let c_moved = PeerInfo {
        id: c.id,
        addr: ([127, 0, 0, 1], 40).into(),
    };
    assert!(m.observe_at(c_moved, at(7)));
    assert_eq!(m.get(&c.id).unwrap().info, c_moved);
}

#[test]
fn left_id_set_is_bounded_oldest_first() {
    let mut left = LeftIds::new(3);
    let ids: Vec<NodeId> = (0..5).map(|_| NodeId::random()).collect();
    for id in &ids {
        left.insert(*id);
        left.insert(*id);
    }
    assert_eq!(left.len(), 3);
    assert!(!left.contains(&ids[0]) && !left.contains(&ids[1]));
    assert!(ids[2..].iter().all(|id| left.contains(id)));

    // Through the table: the left set follows max_peers.
    let m = Membership::with_limits(peer(1), 2, MINUTE);
    let first = NodeId::random();
    m.mark_left(first);
    m.mark_left(NodeId::random());
    assert!(m.has_left(&first));
    m.mark_left(NodeId::random());
    assert!(!m.has_left(&first), "the oldest left id is forgotten first");
}

#[test]
fn suspect_stays_live() {
    let m = Membership::new(peer(1));
    let p = peer(2);
    m.observe(p);
    assert!(!m.set_state(p.id, PeerState::Suspect));
    assert_eq!(m.live_peers(), vec![p]);
    assert!(m.set_state(p.id, PeerState::Left));
    assert!(m.live_peers().is_empty());
}

fn at(addr: &str) -> PeerInfo {
    PeerInfo {
        id: NodeId::random(),
        addr: addr.parse::<SocketAddr>().unwrap(),
    }
}

#[test]
fn peer_lists_drop_invalid_entries() {
    let local = NodeId::random();
    let good = at("127.0.0.1:7000");
    let good6 = at("[::1]:7001");
    let list = vec![
        good,
        at("0.0.0.0:7000"),
        at("[::]:7000"),
        at("[::ffff:0.0.0.0]:7000"),
        at("224.0.0.1:7000"),
        at("[ff02::1]:7000"),
        at("255.255.255.255:7000"),
        at("127.0.0.1:0"),
        PeerInfo {
            id: local,
            addr: good.addr,
        },
        PeerInfo {
            id: good.id,
            addr: "127.0.0.1:7002".parse().unwrap(),
        },
        good6,
    ];
    assert_eq!(validate_peer_list(local, list), Ok(vec![good, good6]));
    assert_eq!(validate_peer_list(local, vec![]), Ok(vec![]));
}

#[test]
fn peer_lists_over_the_cap_are_refused_whole() {
    let local = NodeId::random();
    let list = |n: usize| (0..n).map(|_| at("127.0.0.1:7000")).collect::<Vec<_>>();
    assert_eq!(
        validate_peer_list(local, list(MAX_PEERS_PER_ANSWER)).map(|v| v.len()),
        Ok(MAX_PEERS_PER_ANSWER)
    );
    assert_eq!(
        validate_peer_list(local, list(MAX_PEERS_PER_ANSWER + 1)),
        Err(PeerListTooLong {
            len: MAX_PEERS_PER_ANSWER + 1
        })
    );
}

#[test]
fn answers_are_capped_windows_over_live_peers() {
    let mut peers: Vec<PeerInfo> = (0..10).map(|i| peer(100 + i)).collect();
    peers.sort_by_key(|p| p.id);
    assert_eq!(window(peers.clone(), 10, NodeId::random()), peers);
    // A pivot just above the 8th id: ids 8, 9, then wrap to 0.
    let pivot = peers[7].id;
    let got = window(peers.clone(), 3, pivot);
    assert_eq!(got, vec![peers[7], peers[8], peers[9]]);
    let got = window(peers.clone(), 4, pivot);
    assert_eq!(got, vec![peers[7], peers[8], peers[9], peers[0]]);
    assert_eq!(window(peers.clone(), 0, pivot), vec![]);

    let m = Membership::new(peer(1));
    for p in &peers {
        m.observe(*p);
    }
    m.set_state(peers[0].id, PeerState::Dead);
    m.mark_left(peers[1].id);
    let answer = m.peers_answer(peers[2].id, 100);
    assert_eq!(
        answer,
        peers[3..].to_vec(),
        "live peers only, not the asker"
    );
    assert_eq!(m.peers_answer(peers[2].id, 4).len(), 4);
}

#[test]
fn claims_count_only_once_verified() {
    let m = Membership::new(peer(1));
    let p = peer(2);
    let mut rx = m.subscribe();
    rx.mark_unchanged();
    assert!(m.claim(p), "an unknown id's address is to be verified");
    let entry = m.get(&p.id).unwrap();
    assert_eq!((entry.info, entry.state), (p, PeerState::Unverified));
    assert_eq!(PeerState::Unverified.as_str(), "unverified");
    assert!(!PeerState::Unverified.is_live());
    assert!(m.live_peers().is_empty());
    assert!(m.peers_answer(NodeId::random(), 100).is_empty());
    assert!(!rx.has_changed().unwrap(), "the live set did not change");
    assert!(m.claim(p), "still to be verified when claimed again");
    assert_eq!(m.len(), 1);
    // The dial of its address found it there.
    assert!(m.observe(p));
    assert_eq!(m.get(&p.id).unwrap().state, PeerState::Alive);
    assert_eq!(m.live_peers(), vec![p]);
    assert!(rx.has_changed().unwrap());
}

#[test]
fn a_live_peer_saying_hello_again_keeps_its_state() {
    let m = Membership::new(peer(1));
    let p = peer(2);
    m.observe(p);
    let mut rx = m.subscribe();
    rx.mark_unchanged();
    assert!(!m.claim(p), "an alive peer at its address needs no dial");
    assert_eq!(m.get(&p.id).unwrap().state, PeerState::Alive);
    m.record_probe(p.id, false, 3);
    assert!(
        m.claim(p),
        "a suspect one is dialled, to be alive again sooner"
    );
    assert_eq!(m.get(&p.id).unwrap().state, PeerState::Suspect);
    assert_eq!(m.live_peers(), vec![p]);
    assert!(!rx.has_changed().unwrap(), "no flapping");
}

#[test]
fn claims_of_non_live_or_moved_ids_are_unverified() {
    let m = Membership::new(peer(1));
    let (dead, moving, left) = (peer(2), peer(3), peer(4));
    for p in [dead, moving, left] {
        m.observe(p);
    }
    m.set_state(dead.id, PeerState::Dead);
    m.mark_left(left.id);
    let mut rx = m.subscribe();
    rx.mark_unchanged();

    assert!(m.claim(dead));
    assert_eq!(m.get(&dead.id).unwrap().state, PeerState::Unverified);
    assert!(!rx.has_changed().unwrap());

    let moved = PeerInfo {
        id: moving.id,
        addr: ([127, 0, 0, 1], 40).into(),
    };
    assert!(m.claim(moved));
    let entry = m.get(&moving.id).unwrap();
    assert_eq!((entry.info, entry.state), (moved, PeerState::Unverified));
    assert!(rx.has_changed().unwrap(), "it left placement");
    assert!(m.live_peers().is_empty());

    assert!(!m.claim(left), "a node that left stays left");
    assert_eq!(m.get(&left.id).unwrap().state, PeerState::Left);
    assert!(!m.claim(m.local()), "this node's own id");
    // A former incarnation of this node (same address, another id), as peers that knew it
    // still tell: dialling it would reach this node itself.
    let former = PeerInfo {
        id: NodeId::random(),
        addr: m.local().addr,
    };
    assert!(!m.claim(former), "a former incarnation is not verified");
    assert!(!m.observe(former), "nor taken as a member");
    assert!(m.get(&former.id).is_none());
}

#[test]
fn a_claim_of_a_live_nodes_address_does_not_displace_it() {
    let m = Membership::new(peer(1));
    let real = peer(2);
    m.observe(real);
    let fake = PeerInfo {
        id: NodeId::random(),
        addr: real.addr,
    };
    assert!(m.claim(fake));
    assert_eq!(m.get(&real.id).unwrap().state, PeerState::Alive);
    assert_eq!(m.live_peers(), vec![real]);
    // The dial of that address finds the real node: the fake claim is disproved.
    assert!(!m.observe(real));
    assert!(m.get(&fake.id).is_none());
    assert_eq!(m.len(), 1);
}

#[test]
fn unverified_entries_are_evicted_first_and_forgotten_soon() {
    let short = Duration::from_secs(10);
    let m = Membership::with_limits(peer(1), 3, MINUTE).with_unverified_forget_after(short);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let (alive, dead, claimed) = (peer(2), peer(3), peer(4));
    m.observe_at(alive, t0);
    m.observe_at(dead, t0);
    for _ in 0..3 {
        m.record_probe_at(dead.id, false, 3, at(1));
    }
    assert!(m.claim_at(claimed, at(2)));
    // Full: a newer claim evicts the unverified entry, though the dead one is older.
    let newer = peer(5);
    assert!(m.claim_at(newer, at(3)));
    assert!(m.get(&claimed.id).is_none());
    assert_eq!(m.get(&dead.id).unwrap().state, PeerState::Dead);
    // Claiming again does not postpone the expiry.
    assert!(m.claim_at(newer, at(8)));
    assert_eq!(m.prune(at(12)), 0);
    assert_eq!(m.prune(at(13)), 1, "unverified for 10 s");
    assert!(m.get(&newer.id).is_none());
    assert_eq!(
        m.get(&dead.id).unwrap().state,
        PeerState::Dead,
        "dead: 1 min"
    );
    // A live newcomer evicts an unverified entry before a dead one too.
    let p6 = peer(6);
    assert!(m.claim_at(p6, at(14)));
    let p7 = peer(7);
    assert!(m.observe_at(p7, at(15)));
    assert!(m.get(&p6.id).is_none());
    assert_eq!(m.get(&dead.id).unwrap().state, PeerState::Dead);
    // With no unverified entry left, a claim evicts the dead one.
    assert!(m.claim_at(peer(8), at(16)));
    assert!(m.get(&dead.id).is_none());
    // Full of live peers (the last unverified one made room): a claim is refused.
    assert!(m.observe_at(peer(9), at(17)));
    assert_eq!(m.live_peers().len(), 3);
    let refused = peer(10);
    assert!(!m.claim_at(refused, at(18)));
    assert!(m.get(&refused.id).is_none());
    assert_eq!(m.len(), 3);
}

#[test]
fn a_reported_former_id_does_not_displace_the_node_at_its_address() {
    let m = Membership::new(peer(1));
    let old = peer(2);
    let new = PeerInfo {
        id: NodeId::random(),
        addr: old.addr,
    };
    assert_eq!(m.report(old), Reported::Changed);
    // This node dialled the address itself and found the restarted node there.
    assert!(m.observe(new));
    // A member still gossips the former id: the report is contested, nothing changes.
    assert_eq!(m.report(old), Reported::Contested);
    assert_eq!(m.live_peers(), vec![new]);
    assert_eq!(m.get(&old.id).unwrap().state, PeerState::Dead);
    // Once the dial finds the former id there after all, it takes the address back.
    assert!(m.observe(old));
    assert_eq!(m.live_peers(), vec![old]);
    // Reports of live or unknown ids at free addresses are recorded as before.
    assert_eq!(m.report(old), Reported::Unchanged);
    let other = peer(3);
    assert_eq!(m.report(other), Reported::Changed);
    assert_eq!(m.report(peer(4)), Reported::Changed);
}
