//! The gossip screen: every datagram's claims are checked against SWIM's incarnation rules
//! before foca sees them, so no member can speak for another.
//!
//! foca believes whatever a packet says, and a claim carrying a higher generation or
//! incarnation wins every conflict. One datagram could thus declare every member down at a
//! generation nobody can outbid (`u32::MAX`), and split the network for good. The screen
//! decodes each packet (header and updates), keeps only what its sender may say, and
//! re-encodes the rest for foca:
//!
//! - **Senders.** In open mode (no network key) the header's sender must be the address the
//!   datagram came from; a packet naming anyone else is dropped. (Keyed datagrams are
//!   authenticated already.) Generations above [`GENERATION_LIMIT`] are refused everywhere.
//! - **A member's generation and refutations are its own.** A member's generation rises by
//!   its own word (as a packet's sender), and by a third party's only one step at a time
//!   (the news of a renewal, believed alive at incarnation 0). An update from a third party
//!   about a member this node knows must otherwise carry the generation it knows; an `Alive`
//!   update (a relayed refutation) is dropped, and a suspicion or a down claim is clamped to
//!   the incarnation this node knows, so nobody can push a member's incarnation to the top.
//! - **Open mode: a third party cannot kill.** A third party's `Down` is taken as a suspicion:
//!   this node's own review (a direct TCP check of members that stay suspect) decides.
//!   A member's own `Down` (it leaves, or retires an old generation) stands.
//! - **Unknown members.** Keyed: learned at the generation announced. Open: not taken from a
//!   third party at all: their addresses are returned for a verification
//!   (`pool::verify_claim`: an address check over UDP, `check.rs`, else a dial), which hands a
//!   member that answers there to the gossip at generation 0, as news to spread.
//! - **Claims about this node** (a suspicion, a down claim, `TurnUndead`) make it refute or
//!   rejoin: the driver lets at most one such packet through per probe period, so a flood
//!   cannot spin its incarnation or generation.
//! - **Reflection.** `PingReq` and `IndirectAck` make this node send to the member they name:
//!   only to a member it knows under that very identity.
//!
//! A packet with trailing bytes or custom broadcasts (this network sends none) is dropped.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::{Buf, BufMut};
use foca::{Codec, Header, Incarnation, Member, Message, PostcardCodec, State};
use voldisefs_proto::PeerInfo;

use super::identity::GENERATION_LIMIT;
use super::{GossipId, Swim};

/// Most updates one packet may carry (foca fills a 1,400-byte packet with about 30).
const MAX_UPDATES: u16 = 256;

/// What this node knows of the membership, as the screen needs it.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    /// This node's identity and incarnation.
    me: Option<(GossipId, Incarnation)>,
    /// Every member foca holds (down ones included), by node id.
    members: HashMap<[u8; 16], (GossipId, Incarnation, State)>,
}

impl View {
    /// What `swim` knows now, its own incarnation being `incarnation` (foca does not say it:
    /// the driver reads it from the packets this node sends). One pass over foca's table: at
    /// most `max_peers` members.
    pub(crate) fn of(swim: &Swim, incarnation: Incarnation) -> Self {
        let mut members = HashMap::with_capacity(swim.iter_membership_state().len());
        for m in swim.iter_membership_state() {
            members.insert(m.id().id, (*m.id(), m.incarnation(), m.state()));
        }
        Self {
            me: Some((*swim.identity(), incarnation)),
            members,
        }
    }

    /// A view of a node `me` at `incarnation` knowing `members` (for tests).
    #[cfg(test)]
    pub(crate) fn with(
        me: GossipId,
        incarnation: Incarnation,
        members: impl IntoIterator<Item = (GossipId, Incarnation, State)>,
    ) -> Self {
        Self {
            me: Some((me, incarnation)),
            members: members.into_iter().map(|m| (m.0.id, m)).collect(),
        }
    }

    fn knows_exactly(&self, id: &GossipId) -> bool {
        self.members
            .get(&id.id)
            .is_some_and(|(known, _, _)| known == id)
    }
}

/// How the node's network is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Datagrams are authenticated with the network key.
    Keyed,
    /// Anyone can send datagrams.
    Open,
}

/// Why a packet was dropped whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// It does not decode, or has bytes after its updates.
    #[error("malformed gossip packet")]
    Malformed,
    /// Open mode: its sender is not the address it came from.
    #[error("gossip packet names another sender than its source address")]
    Spoofed,
    /// Its sender claims a generation above the limit.
    #[error("gossip packet claims a generation above the limit")]
    Generation,
    /// It carries custom broadcasts, which this network does not use.
    #[error("gossip broadcast refused")]
    Broadcast,
    /// It asks this node to send to a member it does not know under that identity.
    #[error("gossip request names an unknown member")]
    UnknownTarget,
    /// It is a claim about this node, and one went through less than a probe period ago.
    #[error("claim about this node refused: one was taken in a moment ago")]
    TooSoon,
}

/// A packet that passed the screen.
#[derive(Debug, Default)]
pub(crate) struct Screened {
    /// The packet to hand to foca (re-encoded with only the updates the sender may make).
    pub(crate) packet: Vec<u8>,
    /// Open mode: members a third party told of that this node does not know; the driver
    /// dials them to verify before anyone believes them.
    pub(crate) claims: Vec<PeerInfo>,
    /// Whether the packet carries a claim about this node (it will refute or rejoin).
    pub(crate) about_me: bool,
    /// Updates dropped or rewritten.
    pub(crate) changed: usize,
    /// Who sent it, as its header says (in open mode, at the address it came from).
    pub(crate) sender: Option<PeerInfo>,
}

/// Screens `payload` (an opened datagram, as foca encodes it) that came from `from`, for a
/// node that knows `view`; `self_claims` says whether a claim about this node may go through
/// now (see the module docs).
pub(crate) fn screen(
    payload: &[u8],
    from: SocketAddr,
    view: &View,
    mode: Mode,
    self_claims: bool,
) -> Result<Screened, Refused> {
    let mut buf = payload;
    let mut codec = PostcardCodec;
    let header: Header<GossipId> =
        Codec::<GossipId>::decode_header(&mut codec, &mut buf).map_err(|_| Refused::Malformed)?;
    let src = header.src;
    if src.generation > GENERATION_LIMIT {
        return Err(Refused::Generation);
    }
    if mode == Mode::Open && !same_address(src.addr, from) {
        return Err(Refused::Spoofed);
    }
    let mut out = Screened {
        sender: Some(src.peer()),
        ..Screened::default()
    };
    match &header.message {
        Message::Broadcast => return Err(Refused::Broadcast),
        Message::PingReq { target: id, .. } | Message::IndirectAck { target: id, .. }
            if !view.knows_exactly(id) =>
        {
            return Err(Refused::UnknownTarget);
        }
        Message::TurnUndead => {
            if !self_claims {
                return Err(Refused::TooSoon);
            }
            out.about_me = true;
        }
        _ => {}
    }
    let mut updates = Vec::new();
    let mut counted = false;
    if header.message == Message::Announce {
        if buf.has_remaining() {
            return Err(Refused::Malformed);
        }
    } else if buf.remaining() >= 2 {
        let n = buf.get_u16();
        counted = true;
        if n > MAX_UPDATES {
            return Err(Refused::Malformed);
        }
        for _ in 0..n {
            let m: Member<GossipId> = Codec::<GossipId>::decode_member(&mut codec, &mut buf)
                .map_err(|_| Refused::Malformed)?;
            updates.push(m);
        }
        if buf.has_remaining() {
            return Err(Refused::Malformed);
        }
    } else if buf.has_remaining() {
        return Err(Refused::Malformed);
    }
    let mut kept = Vec::with_capacity(updates.len());
    for update in updates {
        match judge(&update, &src, view, mode, self_claims) {
            Judged::Keep => kept.push(update),
            Judged::Rewrite(m) => {
                out.changed += 1;
                kept.push(m);
            }
            Judged::AboutMe(m) => {
                out.about_me = true;
                if m != update {
                    out.changed += 1;
                }
                kept.push(m);
            }
            Judged::Verify(peer) => {
                out.changed += 1;
                out.claims.push(peer);
            }
            Judged::Drop => out.changed += 1,
        }
    }
    let mut packet = Vec::with_capacity(payload.len());
    Codec::<GossipId>::encode_header(&mut codec, &header, &mut packet)
        .map_err(|_| Refused::Malformed)?;
    if counted {
        packet.put_u16(kept.len() as u16);
        for m in &kept {
            Codec::<GossipId>::encode_member(&mut codec, m, &mut packet)
                .map_err(|_| Refused::Malformed)?;
        }
    }
    out.packet = packet;
    Ok(out)
}

/// The sender's incarnation in a packet this node encoded (to follow its own incarnation).
pub(crate) fn sender_incarnation(packet: &[u8]) -> Option<Incarnation> {
    let mut buf = packet;
    Codec::<GossipId>::decode_header(&mut PostcardCodec, &mut buf)
        .ok()
        .map(|h| h.src_incarnation)
}

/// Whether `claimed` is the address `from` (an IPv4 address received on a dual-stack socket
/// counts as itself).
fn same_address(claimed: SocketAddr, from: SocketAddr) -> bool {
    claimed.port() == from.port() && claimed.ip().to_canonical() == from.ip().to_canonical()
}

enum Judged {
    Keep,
    Rewrite(Member<GossipId>),
    AboutMe(Member<GossipId>),
    Verify(PeerInfo),
    Drop,
}

/// What may become of `update`, sent by `src` (see the module docs).
fn judge(
    update: &Member<GossipId>,
    src: &GossipId,
    view: &View,
    mode: Mode,
    self_claims: bool,
) -> Judged {
    let id = update.id();
    if id.generation > GENERATION_LIMIT {
        return Judged::Drop;
    }
    // The sender speaking of itself: its current generation or an older one it retires.
    if id.id == src.id {
        return if id.generation <= src.generation {
            Judged::Keep
        } else {
            Judged::Drop
        };
    }
    if let Some((me, my_incarnation)) = view.me
        && id.id == me.id
    {
        return judge_about_me(update, me, my_incarnation, mode, self_claims);
    }
    let Some(&(known, incarnation, _)) = view.members.get(&id.id) else {
        // A member this node does not know.
        if update.state() != State::Alive {
            return Judged::Drop;
        }
        return match mode {
            Mode::Keyed => Judged::Keep,
            Mode::Open => Judged::Verify(id.peer()),
        };
    };
    if id.id == known.id
        && id.addr == known.addr
        && known.generation.checked_add(1) == Some(id.generation)
    {
        // The member renewed (it was declared down and rejoined): relayed news of that is
        // believed one step at a time, alive, at its first incarnation. A forged step costs
        // the member one renewal (it is told it is down when it next speaks to this node, at
        // most once a probe period), never a generation nobody can outbid.
        return if update.state() == State::Alive {
            rewritten(update, Member::new(*id, 0, State::Alive))
        } else {
            Judged::Drop
        };
    }
    if *id != known {
        // Any other generation (or address) than this node knows: only the member itself
        // may announce it, and an older one is stale.
        return Judged::Drop;
    }
    let clamped = update.incarnation().min(incarnation);
    match update.state() {
        // A relayed refutation: only the member refutes (every packet it sends carries its
        // incarnation); nothing else is news.
        State::Alive => Judged::Drop,
        State::Suspect => rewritten(update, Member::new(*id, clamped, State::Suspect)),
        State::Down => match mode {
            Mode::Keyed => rewritten(update, Member::new(*id, clamped, State::Down)),
            Mode::Open => Judged::Rewrite(Member::new(*id, clamped, State::Suspect)),
        },
    }
}

fn rewritten(update: &Member<GossipId>, to: Member<GossipId>) -> Judged {
    if *update == to {
        Judged::Keep
    } else {
        Judged::Rewrite(to)
    }
}

/// A third party's claim about this node.
fn judge_about_me(
    update: &Member<GossipId>,
    me: GossipId,
    incarnation: Incarnation,
    mode: Mode,
    self_claims: bool,
) -> Judged {
    let id = update.id();
    if id.generation > me.generation || id.addr != me.addr {
        // Nobody but this node declares its generation.
        return Judged::Drop;
    }
    if id.generation < me.generation {
        // An older generation of this node: foca retires it (declares it down), as it should.
        return Judged::Keep;
    }
    let clamped = update.incarnation().min(incarnation);
    match update.state() {
        State::Alive => Judged::Drop,
        _ if !self_claims => Judged::Drop,
        State::Suspect => Judged::AboutMe(Member::new(me, clamped, State::Suspect)),
        State::Down => match mode {
            Mode::Keyed => Judged::AboutMe(Member::new(me, clamped, State::Down)),
            // Open mode: refute (a new incarnation) instead of rejoining.
            Mode::Open => Judged::AboutMe(Member::new(me, clamped, State::Suspect)),
        },
    }
}

#[cfg(test)]
mod tests;
