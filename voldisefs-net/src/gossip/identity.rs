//! A member's gossip identity: node id, advertised address, generation.

use std::net::SocketAddr;

use foca::Identity;
use serde::{Deserialize, Serialize};
use voldisefs_proto::{NodeId, PeerInfo};

/// The highest generation anyone may claim. A member renews its generation only when declared
/// down, at most once per probe period (see the [`screen`](super::screen) module's docs), so
/// 2^24 renewals are half a year of continuous renewals at one a second; a claim above it is
/// forged, and the screen refuses it.
pub(crate) const GENERATION_LIMIT: u32 = 1 << 24;

/// What foca knows a member by. Its [`Identity::Addr`] is the node id (random per node run,
/// so unique); the generation is bumped when a member declared down rejoins, and the higher
/// generation wins a conflict. The gossip socket of a member is its advertised peer address
/// (UDP instead of TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct GossipId {
    /// The node id's 16 bytes.
    pub(crate) id: [u8; 16],
    /// The node's advertised peer address.
    pub(crate) addr: SocketAddr,
    /// Bumped at every renewal.
    pub(crate) generation: u32,
}

impl GossipId {
    /// The identity of `peer` at `generation`.
    pub(crate) fn new(peer: PeerInfo, generation: u32) -> Self {
        Self {
            id: *peer.id.as_bytes(),
            addr: peer.addr,
            generation,
        }
    }

    /// The peer this identity names.
    pub(crate) fn peer(&self) -> PeerInfo {
        PeerInfo {
            id: NodeId::from_uuid(uuid::Uuid::from_bytes(self.id)),
            addr: self.addr,
        }
    }
}

impl Identity for GossipId {
    type Addr = [u8; 16];

    /// The next generation, up to [`GENERATION_LIMIT`] (renewals are rate-limited, so the
    /// limit is never reached honestly).
    fn renew(&self) -> Option<Self> {
        let generation = self.generation.checked_add(1)?;
        (generation <= GENERATION_LIMIT).then_some(Self {
            generation,
            ..*self
        })
    }

    fn addr(&self) -> [u8; 16] {
        self.id
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.generation, self.addr) > (adversary.generation, adversary.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_wins_and_keeps_the_node() {
        let peer = PeerInfo {
            id: NodeId::random(),
            addr: "127.0.0.1:4100".parse().unwrap(),
        };
        let old = GossipId::new(peer, 0);
        let new = old.renew().unwrap();
        assert_eq!(new.peer(), peer);
        assert_eq!(new.addr(), old.addr());
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
    }
}
