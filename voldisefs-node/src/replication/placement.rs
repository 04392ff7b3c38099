//! Rendezvous (highest-random-weight) placement: every node computes the same holders for a
//! chunk from the chunk id and the live node ids alone, without coordination.
//!
//! A node's weight for a key is the first 8 bytes of SHA-256(node id || key); holders are the
//! nodes with the highest weights. When a node joins or leaves, only the chunks it held or
//! now holds move.

use voldisefs_proto::{ChunkId, PeerInfo};

/// Weight of `node` for `key`: stable across builds and platforms.
fn weight(node: &PeerInfo, key: &ChunkId) -> u64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(node.id.as_bytes());
    ctx.update(key.as_bytes());
    let digest = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// Every node in `nodes`, best holder of `key` first.
pub fn rank(key: &ChunkId, nodes: &[PeerInfo]) -> Vec<PeerInfo> {
    let mut weighted: Vec<(u64, PeerInfo)> = nodes.iter().map(|n| (weight(n, key), *n)).collect();
    // Ties (astronomically unlikely) are broken by id so the order is total.
    weighted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
    weighted.into_iter().map(|(_, n)| n).collect()
}

/// The `replicas` nodes that should hold `key` (all of them when there are fewer).
pub fn holders(key: &ChunkId, nodes: &[PeerInfo], replicas: usize) -> Vec<PeerInfo> {
    let mut ranked = rank(key, nodes);
    ranked.truncate(replicas);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use voldisefs_proto::NodeId;

    fn nodes(n: usize) -> Vec<PeerInfo> {
        (0..n)
            .map(|i| PeerInfo {
                id: NodeId::random(),
                addr: ([127, 0, 0, 1], 1000 + i as u16).into(),
            })
            .collect()
    }

    #[test]
    fn same_answer_whatever_the_input_order() {
        let ns = nodes(7);
        let mut reversed = ns.clone();
        reversed.reverse();
        for i in 0..50u8 {
            let key = ChunkId::digest(&[i]);
            assert_eq!(holders(&key, &ns, 3), holders(&key, &reversed, 3));
        }
    }

    #[test]
    fn fewer_nodes_than_replicas_gives_all() {
        let ns = nodes(2);
        assert_eq!(holders(&ChunkId::digest(b"k"), &ns, 3).len(), 2);
        assert!(holders(&ChunkId::digest(b"k"), &[], 3).is_empty());
    }

    #[test]
    fn load_spreads_evenly() {
        let ns = nodes(5);
        let mut count: HashMap<NodeId, usize> = HashMap::new();
        for i in 0..5000u32 {
            for h in holders(&ChunkId::digest(&i.to_be_bytes()), &ns, 3) {
                *count.entry(h.id).or_default() += 1;
            }
        }
        // Each node should hold about 3000 of the 15000 copies.
        for c in count.values() {
            assert!((2500..3500).contains(c), "{count:?}");
        }
    }

    #[test]
    fn removing_a_node_only_moves_its_chunks() {
        let ns = nodes(6);
        let gone = ns[2];
        let rest: Vec<PeerInfo> = ns.iter().copied().filter(|n| n.id != gone.id).collect();
        for i in 0..500u32 {
            let key = ChunkId::digest(&i.to_be_bytes());
            let before = holders(&key, &ns, 3);
            let after = holders(&key, &rest, 3);
            let kept: Vec<_> = before.iter().filter(|n| n.id != gone.id).collect();
            // Every surviving holder keeps its place; at most one newcomer.
            for k in &kept {
                assert!(after.contains(k));
            }
            assert!(after.len() - kept.len() <= 1);
        }
    }
}
