//! Peer lists exchanged with `get_peers`/`peers`: checking the ones peers send, choosing the
//! ones this node sends. Pure functions, tested without sockets.

use std::collections::HashSet;
use std::net::IpAddr;

use voldisefs_proto::{MAX_PEERS_PER_ANSWER, NodeId, PeerInfo};

/// A `peers` answer listed more than [`MAX_PEERS_PER_ANSWER`] peers and was refused whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerListTooLong {
    /// How many peers the answer listed.
    pub(crate) len: usize,
}

/// Checks a `peers` answer: refuses it whole if it lists more than [`MAX_PEERS_PER_ANSWER`]
/// peers, otherwise returns its valid entries in order. Dropped (each with a debug log): this
/// node's own id, an unspecified, multicast or broadcast IP address, port 0, and every entry
/// after the first with the same id.
pub(crate) fn validate_peer_list(
    local: NodeId,
    peers: Vec<PeerInfo>,
) -> Result<Vec<PeerInfo>, PeerListTooLong> {
    if peers.len() > MAX_PEERS_PER_ANSWER {
        return Err(PeerListTooLong { len: peers.len() });
    }
    let mut seen = HashSet::with_capacity(peers.len());
    let mut valid = Vec::with_capacity(peers.len());
    for peer in peers {
        let problem = if peer.id == local {
            Some("this node's own id")
        } else if let Some(problem) = bad_address(&peer) {
            Some(problem)
        } else if !seen.insert(peer.id) {
            Some("repeated id")
        } else {
            None
        };
        match problem {
            Some(problem) => {
                tracing::debug!(peer = %peer.id, addr = %peer.addr, problem, "dropping invalid entry of a peer list");
            }
            None => valid.push(peer),
        }
    }
    Ok(valid)
}

/// Why `peer`'s address cannot be dialed, if it cannot.
fn bad_address(peer: &PeerInfo) -> Option<&'static str> {
    if peer.addr.port() == 0 {
        return Some("port 0");
    }
    match peer.addr.ip().to_canonical() {
        ip if ip.is_unspecified() => Some("unspecified address"),
        ip if ip.is_multicast() => Some("multicast address"),
        IpAddr::V4(ip) if ip.is_broadcast() => Some("broadcast address"),
        _ => None,
    }
}

/// At most `max` of `peers` (sorted by id): all of them if they fit, otherwise `max`
/// consecutive ones starting at the first id not below `pivot`, wrapping around.
pub(super) fn window(peers: Vec<PeerInfo>, max: usize, pivot: NodeId) -> Vec<PeerInfo> {
    if peers.len() <= max {
        return peers;
    }
    let start = peers.partition_point(|p| p.id < pivot);
    peers
        .iter()
        .cycle()
        .skip(start)
        .take(max)
        .copied()
        .collect()
}
