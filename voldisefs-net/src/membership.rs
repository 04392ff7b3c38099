//! The membership table: every node this node knows, by id, with its address and state.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use tokio::sync::watch;
use voldisefs_proto::{NodeId, PeerInfo};

/// What this node believes about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Answering.
    Alive,
    /// Recently failed to answer; still counted for placement.
    Suspect,
    /// Unreachable; left out of placement until it is heard from again.
    Dead,
    /// Announced a graceful leave.
    Left,
}

impl PeerState {
    /// Stable lowercase name (`alive`, `suspect`, `dead`, `left`).
    pub fn as_str(&self) -> &'static str {
        match self {
            PeerState::Alive => "alive",
            PeerState::Suspect => "suspect",
            PeerState::Dead => "dead",
            PeerState::Left => "left",
        }
    }

    /// Whether a peer in this state takes part in placement.
    pub fn is_live(&self) -> bool {
        matches!(self, PeerState::Alive | PeerState::Suspect)
    }
}

impl std::fmt::Display for PeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the membership table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// Id and address.
    pub info: PeerInfo,
    /// Current belief.
    pub state: PeerState,
    /// When the peer was last heard from (or its state last changed).
    pub last_seen: Instant,
    /// Consecutive failed probes.
    pub failures: u32,
}

/// Thread-safe membership table of the other nodes (this node is not in it).
///
/// Every change that affects who is live bumps a version observable with
/// [`Membership::subscribe`], so placement and repair can react.
#[derive(Debug)]
pub struct Membership {
    local: PeerInfo,
    peers: Mutex<HashMap<NodeId, PeerEntry>>,
    version: watch::Sender<u64>,
}

impl Membership {
    /// An empty table for the node `local`.
    pub fn new(local: PeerInfo) -> Self {
        Self {
            local,
            peers: Mutex::new(HashMap::new()),
            version: watch::Sender::new(0),
        }
    }

    /// This node.
    pub fn local(&self) -> PeerInfo {
        self.local
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<NodeId, PeerEntry>> {
        // The table stays consistent even if a holder panicked: every update is one insert.
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Records that `peer` was heard from: adds it, or marks it alive at its (new) address.
    /// Another node previously known at the same address is marked dead (a restarted node is
    /// a new node). Returns whether the live set changed.
    pub fn observe(&self, peer: PeerInfo) -> bool {
        if peer.id == self.local.id {
            return false;
        }
        let now = Instant::now();
        let mut changed = false;
        {
            let mut peers = self.lock();
            for entry in peers.values_mut() {
                if entry.info.addr == peer.addr && entry.info.id != peer.id && entry.state.is_live()
                {
                    entry.state = PeerState::Dead;
                    entry.last_seen = now;
                    changed = true;
                }
            }
            match peers.get_mut(&peer.id) {
                Some(entry) => {
                    changed |= !entry.state.is_live() || entry.info.addr != peer.addr;
                    entry.info = peer;
                    entry.state = PeerState::Alive;
                    entry.last_seen = now;
                    entry.failures = 0;
                }
                None => {
                    peers.insert(
                        peer.id,
                        PeerEntry {
                            info: peer,
                            state: PeerState::Alive,
                            last_seen: now,
                            failures: 0,
                        },
                    );
                    changed = true;
                }
            }
        }
        if changed {
            self.bump();
        }
        changed
    }

    /// Sets a known peer's state; returns whether the live set changed. Unknown ids are ignored.
    pub fn set_state(&self, id: NodeId, state: PeerState) -> bool {
        let changed = {
            let mut peers = self.lock();
            match peers.get_mut(&id) {
                Some(entry) if entry.state != state => {
                    let was_live = entry.state.is_live();
                    entry.state = state;
                    entry.last_seen = Instant::now();
                    was_live != state.is_live()
                }
                _ => false,
            }
        };
        if changed {
            self.bump();
        }
        changed
    }

    /// Records the outcome of a probe of `id`: success makes a suspect or dead peer alive
    /// again (a peer that announced its leave stays left); a failure makes an alive peer
    /// suspect, and `dead_after` consecutive failures make it dead. Returns the new state if
    /// it changed.
    pub fn record_probe(&self, id: NodeId, ok: bool, dead_after: u32) -> Option<PeerState> {
        let (changed, live_changed) = {
            let mut peers = self.lock();
            let entry = peers.get_mut(&id)?;
            let before = entry.state;
            if ok {
                entry.failures = 0;
                entry.last_seen = Instant::now();
                if matches!(before, PeerState::Suspect | PeerState::Dead) {
                    entry.state = PeerState::Alive;
                }
            } else {
                entry.failures = entry.failures.saturating_add(1);
                if before == PeerState::Alive {
                    entry.state = PeerState::Suspect;
                }
                if entry.state == PeerState::Suspect && entry.failures >= dead_after.max(1) {
                    entry.state = PeerState::Dead;
                }
            }
            let after = entry.state;
            if after != before {
                entry.last_seen = Instant::now();
            }
            (
                (after != before).then_some(after),
                before.is_live() != after.is_live(),
            )
        };
        if live_changed {
            self.bump();
        }
        changed
    }

    /// The entry for `id`, if known.
    pub fn get(&self, id: &NodeId) -> Option<PeerEntry> {
        self.lock().get(id).cloned()
    }

    /// Every known peer, sorted by id.
    pub fn snapshot(&self) -> Vec<PeerEntry> {
        let mut all: Vec<PeerEntry> = self.lock().values().cloned().collect();
        all.sort_by_key(|e| e.info.id);
        all
    }

    /// Peers that take part in placement (alive or suspect), sorted by id.
    pub fn live_peers(&self) -> Vec<PeerInfo> {
        let mut live: Vec<PeerInfo> = self
            .lock()
            .values()
            .filter(|e| e.state.is_live())
            .map(|e| e.info)
            .collect();
        live.sort_by_key(|p| p.id);
        live
    }

    /// Number of known peers in any state.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no peer is known.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// A receiver that sees a new version whenever the live set changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> PeerInfo {
        PeerInfo {
            id: NodeId::random(),
            addr: ([127, 0, 0, 1], port).into(),
        }
    }

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
    fn left_peers_stay_left_until_they_say_hello() {
        let m = Membership::new(peer(1));
        let p = peer(2);
        m.observe(p);
        m.set_state(p.id, PeerState::Left);
        assert_eq!(m.record_probe(p.id, true, 3), None);
        assert_eq!(m.get(&p.id).unwrap().state, PeerState::Left);
        assert!(m.observe(p));
        assert_eq!(m.get(&p.id).unwrap().state, PeerState::Alive);
        assert_eq!(
            m.record_probe(NodeId::random(), true, 3),
            None,
            "unknown ids are ignored"
        );
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
}
