use std::net::SocketAddr;

use bytes::BufMut;
use foca::{Codec, Header, Member, Message, PostcardCodec, State};
use proptest::prelude::*;

use super::*;

fn id(n: u8, generation: u32) -> GossipId {
    GossipId {
        id: [n; 16],
        addr: SocketAddr::from(([127, 0, 0, 1], 4000 + u16::from(n))),
        generation,
    }
}

/// A packet as foca encodes it: `src` says `updates` to `dst` in `message`.
fn packet(
    src: GossipId,
    src_incarnation: u16,
    dst: GossipId,
    message: Message<GossipId>,
    updates: &[Member<GossipId>],
) -> Vec<u8> {
    let mut out = Vec::new();
    let header = Header {
        src,
        src_incarnation,
        dst,
        message,
    };
    Codec::<GossipId>::encode_header(&mut PostcardCodec, &header, &mut out).unwrap();
    out.put_u16(updates.len() as u16);
    for m in updates {
        Codec::<GossipId>::encode_member(&mut PostcardCodec, m, &mut out).unwrap();
    }
    out
}

fn decode(packet: &[u8]) -> (Header<GossipId>, Vec<Member<GossipId>>) {
    let mut buf = packet;
    let header = Codec::<GossipId>::decode_header(&mut PostcardCodec, &mut buf).unwrap();
    let mut updates = Vec::new();
    if buf.len() >= 2 {
        let n = u16::from_be_bytes([buf[0], buf[1]]);
        buf = &buf[2..];
        for _ in 0..n {
            updates.push(Codec::<GossipId>::decode_member(&mut PostcardCodec, &mut buf).unwrap());
        }
    }
    assert!(buf.is_empty());
    (header, updates)
}

/// Node 1 at generation 0, incarnation 2, knowing members 2..=5 alive at generation 3,
/// incarnation 4 (and member 7 at the highest generation, as an older release could learn).
fn view() -> View {
    View::with(
        id(1, 0),
        2,
        (2..=5)
            .map(|n| (id(n, 3), 4, State::Alive))
            .chain(std::iter::once((id(7, u32::MAX), 0, State::Alive))),
    )
}

#[test]
fn the_forged_partition_packet_is_refused_in_open_mode() {
    // The attack as measured: a real member's identity as sender, from another address,
    // declaring the others down at the highest generation.
    let downs: Vec<_> = (3..=5).map(|n| Member::down(id(n, u32::MAX))).collect();
    let p = packet(id(2, 3), 4, id(1, 0), Message::Gossip, &downs);
    let attacker = SocketAddr::from(([127, 0, 0, 1], 9999));
    assert_eq!(
        screen(&p, attacker, &view(), Mode::Open, true).unwrap_err(),
        Refused::Spoofed
    );
    // From the member's own address (or keyed): the claims go, the packet stays.
    for mode in [Mode::Open, Mode::Keyed] {
        let out = screen(&p, id(2, 3).addr, &view(), mode, true).unwrap();
        let (_, updates) = decode(&out.packet);
        assert!(updates.is_empty(), "{mode:?}: {updates:?}");
        assert_eq!(out.changed, 3);
    }
}

#[test]
fn a_third_party_down_is_a_suspicion_in_open_mode_and_clamped_in_keyed_mode() {
    let p = packet(
        id(2, 3),
        0,
        id(1, 0),
        Message::Gossip,
        &[Member::new(id(3, 3), 9_000, State::Down)],
    );
    let open = screen(&p, id(2, 3).addr, &view(), Mode::Open, true).unwrap();
    assert_eq!(
        decode(&open.packet).1,
        vec![Member::new(id(3, 3), 4, State::Suspect)]
    );
    let keyed = screen(&p, id(2, 3).addr, &view(), Mode::Keyed, true).unwrap();
    assert_eq!(
        decode(&keyed.packet).1,
        vec![Member::new(id(3, 3), 4, State::Down)]
    );
}

#[test]
fn only_a_member_raises_its_generation_or_refutes() {
    let updates = [
        Member::alive(id(3, 5)),
        Member::new(id(3, 3), 5, State::Alive),
        Member::new(id(4, 2), 4, State::Suspect),
    ];
    let p = packet(id(2, 3), 0, id(1, 0), Message::Gossip, &updates);
    let out = screen(&p, id(2, 3).addr, &view(), Mode::Keyed, true).unwrap();
    assert!(decode(&out.packet).1.is_empty());
    // A relayed renewal: one step, alive, at incarnation 0.
    let renewed = [
        Member::new(id(3, 4), 900, State::Alive),
        Member::down(id(4, 4)),
    ];
    let p = packet(id(2, 3), 0, id(1, 0), Message::Gossip, &renewed);
    let out = screen(&p, id(2, 3).addr, &view(), Mode::Open, true).unwrap();
    assert_eq!(decode(&out.packet).1, vec![Member::alive(id(3, 4))]);
    // The member itself: its new generation, and the old one retired.
    let own = [Member::alive(id(2, 4)), Member::down(id(2, 3))];
    let p = packet(id(2, 4), 0, id(1, 0), Message::Gossip, &own);
    let out = screen(&p, id(2, 4).addr, &view(), Mode::Open, true).unwrap();
    assert_eq!(decode(&out.packet).1, own.to_vec());
}

#[test]
fn claims_about_this_node_are_clamped_and_rate_limited() {
    let p = packet(
        id(2, 3),
        0,
        id(1, 0),
        Message::Gossip,
        &[
            Member::new(id(1, 0), u16::MAX, State::Suspect),
            Member::down(id(1, 7)),
        ],
    );
    let out = screen(&p, id(2, 3).addr, &view(), Mode::Open, true).unwrap();
    assert!(out.about_me);
    assert_eq!(
        decode(&out.packet).1,
        vec![Member::new(id(1, 0), 2, State::Suspect)]
    );
    let out = screen(&p, id(2, 3).addr, &view(), Mode::Open, false).unwrap();
    assert!(!out.about_me);
    assert!(decode(&out.packet).1.is_empty());
    let undead = packet(id(2, 3), 0, id(1, 0), Message::TurnUndead, &[]);
    assert_eq!(
        screen(&undead, id(2, 3).addr, &view(), Mode::Keyed, false).unwrap_err(),
        Refused::TooSoon
    );
    assert!(
        screen(&undead, id(2, 3).addr, &view(), Mode::Keyed, true)
            .unwrap()
            .about_me
    );
}

#[test]
fn unknown_members_are_verified_in_open_mode() {
    let p = packet(
        id(2, 3),
        0,
        id(1, 0),
        Message::Feed,
        &[Member::alive(id(9, 0)), Member::down(id(8, 0))],
    );
    let open = screen(&p, id(2, 3).addr, &view(), Mode::Open, true).unwrap();
    assert!(decode(&open.packet).1.is_empty());
    assert_eq!(open.claims, vec![id(9, 0).peer()]);
    let keyed = screen(&p, id(2, 3).addr, &view(), Mode::Keyed, true).unwrap();
    assert_eq!(decode(&keyed.packet).1, vec![Member::alive(id(9, 0))]);
}

#[test]
fn reflection_and_oversized_generations_are_refused() {
    let stranger = GossipId {
        addr: SocketAddr::from(([192, 0, 2, 1], 53)),
        ..id(3, 3)
    };
    let p = packet(
        id(2, 3),
        0,
        id(1, 0),
        Message::PingReq {
            target: stranger,
            probe_number: 1,
        },
        &[],
    );
    assert_eq!(
        screen(&p, id(2, 3).addr, &view(), Mode::Keyed, true).unwrap_err(),
        Refused::UnknownTarget
    );
    let p = packet(id(2, u32::MAX), 0, id(1, 0), Message::Gossip, &[]);
    assert_eq!(
        screen(&p, id(2, u32::MAX).addr, &view(), Mode::Keyed, true).unwrap_err(),
        Refused::Generation
    );
    let mut p = packet(id(2, 3), 0, id(1, 0), Message::Gossip, &[]);
    p.push(0);
    assert_eq!(
        screen(&p, id(2, 3).addr, &view(), Mode::Keyed, true).unwrap_err(),
        Refused::Malformed
    );
}

#[test]
fn renewal_stops_at_the_generation_limit() {
    use foca::Identity;
    assert_eq!(id(1, 5).renew().unwrap().generation, 6);
    assert!(id(1, GENERATION_LIMIT).renew().is_none());
}

fn any_id() -> impl Strategy<Value = GossipId> {
    (
        1u8..8,
        prop_oneof![
            0u32..6,
            Just(GENERATION_LIMIT),
            Just(u32::MAX),
            any::<u32>()
        ],
        prop::bool::weighted(0.8),
    )
        .prop_map(|(n, generation, home)| GossipId {
            addr: if home {
                id(n, 0).addr
            } else {
                SocketAddr::from(([127, 0, 0, 2], 4000 + u16::from(n)))
            },
            ..id(n, generation)
        })
}

fn any_member() -> impl Strategy<Value = Member<GossipId>> {
    (
        any_id(),
        prop_oneof![0u16..8, Just(u16::MAX)],
        prop_oneof![Just(State::Alive), Just(State::Suspect), Just(State::Down)],
    )
        .prop_map(|(id, incarnation, state)| Member::new(id, incarnation, state))
}

fn any_message() -> impl Strategy<Value = Message<GossipId>> {
    prop_oneof![
        any::<u8>().prop_map(Message::Ping),
        any::<u8>().prop_map(Message::Ack),
        Just(Message::Gossip),
        Just(Message::Feed),
        Just(Message::TurnUndead),
        (any_id(), any::<u8>()).prop_map(|(target, probe_number)| Message::PingReq {
            target,
            probe_number
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Forged senders and claims: whatever a packet says, what reaches foca never raises a
    /// member's generation or incarnation but by its own word, never kills a member on a
    /// third party's word in open mode, and never names a generation above the limit.
    #[test]
    fn what_passes_obeys_the_incarnation_rules(
        src in any_id(),
        from_home in any::<bool>(),
        message in any_message(),
        updates in prop::collection::vec(any_member(), 0..12),
        open in any::<bool>(),
        self_claims in any::<bool>(),
    ) {
        let mode = if open { Mode::Open } else { Mode::Keyed };
        let from = if from_home { src.addr } else { SocketAddr::from(([127, 0, 0, 9], 1)) };
        let view = view();
        let p = packet(src, 0, id(1, 0), message, &updates);
        let Ok(out) = screen(&p, from, &view, mode, self_claims) else { return Ok(()) };
        prop_assert!(src.generation <= GENERATION_LIMIT);
        if open {
            prop_assert_eq!(src.addr, from);
        }
        let (header, passed) = decode(&out.packet);
        prop_assert_eq!(header.src, src);
        for m in passed {
            let mid = m.id();
            prop_assert!(mid.generation <= GENERATION_LIMIT);
            if mid.id == src.id {
                prop_assert!(mid.generation <= src.generation);
                continue;
            }
            if mid.id == [1; 16] {
                // This node (generation 0, incarnation 2): a suspicion or a down claim at most,
                // never above its incarnation, only while claims are let through.
                prop_assert!(self_claims);
                prop_assert_eq!(mid, &id(1, 0));
                prop_assert!(m.incarnation() <= 2);
                prop_assert!(m.state() != State::Alive);
                prop_assert!(!(open && m.state() == State::Down));
                continue;
            }
            match view.members.get(&mid.id) {
                Some((known, _, _)) if known.generation.checked_add(1) == Some(mid.generation) => {
                    // A relayed renewal: one step, alive, first incarnation, same address.
                    prop_assert_eq!(mid.addr, known.addr);
                    prop_assert_eq!(m.state(), State::Alive);
                    prop_assert_eq!(m.incarnation(), 0);
                }
                Some((known, incarnation, _)) => {
                    prop_assert_eq!(mid, known);
                    prop_assert!(m.incarnation() <= *incarnation);
                    prop_assert!(m.state() != State::Alive);
                    prop_assert!(!(open && m.state() == State::Down));
                }
                None => {
                    prop_assert!(!open, "open mode: unknown members are verified, not believed");
                    prop_assert_eq!(m.state(), State::Alive);
                }
            }
        }
    }

    /// Arbitrary bytes never panic the screen.
    #[test]
    fn junk_is_refused_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = screen(&bytes, id(2, 3).addr, &view(), Mode::Open, true);
        let _ = screen(&bytes, id(2, 3).addr, &view(), Mode::Keyed, true);
    }
}
