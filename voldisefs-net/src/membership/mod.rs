//! The membership table: every node this node knows, by id, with its address and state.
//!
//! The table is fed by peers (their `hello`s and, through bootstrap and discovery, their peer
//! lists), so everything in it is bounded:
//!
//! - at most `max_peers` entries; a new peer evicts the unverified entry that has been in that
//!   state longest, else the dead or left one, or is refused when every entry is alive or
//!   suspect;
//! - dead and left entries are removed by [`Membership::prune`] once they have been in that
//!   state for `forget_after`, unverified ones after `unverified_forget_after`;
//! - ids of nodes that announced their leave are kept in a set of at most `max_peers` ids,
//!   oldest dropped first, so a left node is never revived even after its entry is gone.

mod left;
mod peer_list;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::watch;
use voldisefs_proto::{NodeId, PeerInfo};

use crate::config::{DEFAULT_FORGET_AFTER, DEFAULT_MAX_PEERS, DEFAULT_UNVERIFIED_FORGET_AFTER};
use left::LeftIds;
pub(crate) use peer_list::validate_peer_list;

/// What this node believes about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Known only from its own `hello` (an inbound connection), whose listen address this node
    /// has not dialled yet: not in placement nor in peer lists until a dial of that address
    /// finds this id there. Evicted first, and forgotten soon.
    Unverified,
    /// Answering.
    Alive,
    /// Recently failed to answer; still counted for placement.
    Suspect,
    /// Unreachable; left out of placement until it is heard from again.
    Dead,
    /// Announced a graceful leave; never alive again (a restarted node has a new id).
    Left,
}

impl PeerState {
    /// Stable lowercase name (`unverified`, `alive`, `suspect`, `dead`, `left`).
    pub fn as_str(&self) -> &'static str {
        match self {
            PeerState::Unverified => "unverified",
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

    /// Whether an entry in this state may be evicted or forgotten (unverified, dead or left).
    fn is_expendable(&self) -> bool {
        matches!(
            self,
            PeerState::Unverified | PeerState::Dead | PeerState::Left
        )
    }
}

impl std::fmt::Display for PeerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`Membership::report`] did with a reported member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// Recorded alive; the live set changed.
    Changed,
    /// Recorded alive (or ignored: this node, a node that left); the live set is the same.
    Unchanged,
    /// Another live node is known at its address: nothing changed, and a dial of the address
    /// should find out which of the two is there now.
    Contested,
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
    /// When the peer entered its current state; dead and left entries are forgotten
    /// `forget_after` later, unverified ones `unverified_forget_after` later.
    pub since: Instant,
    /// Consecutive failed probes.
    pub failures: u32,
}

impl PeerEntry {
    fn set_state(&mut self, state: PeerState, now: Instant) {
        if self.state != state {
            self.state = state;
            self.since = now;
            self.last_seen = now;
        }
    }
}

/// The table behind the lock.
#[derive(Debug)]
struct Table {
    /// Cap: `max_peers` entries. Eviction: see [`Table::make_room`].
    peers: HashMap<NodeId, PeerEntry>,
    /// Cap: `max_peers` ids, oldest dropped first.
    left: LeftIds,
}

impl Table {
    /// Whether `id` announced its leave.
    fn has_left(&self, id: &NodeId) -> bool {
        self.left.contains(id)
            || self
                .peers
                .get(id)
                .is_some_and(|e| e.state == PeerState::Left)
    }

    /// Frees one place if the table holds `max_peers` entries by evicting the unverified entry
    /// that has been in that state longest or, if there is none, the dead or left one. Returns
    /// whether a place is free.
    fn make_room(&mut self, max_peers: usize) -> bool {
        if self.peers.len() < max_peers {
            return true;
        }
        // Unverified first (a claim nobody proved), then by age in the state.
        let oldest = self
            .peers
            .values()
            .filter(|e| e.state.is_expendable())
            .min_by_key(|e| (e.state != PeerState::Unverified, e.since))
            .map(|e| (e.info.id, e.state));
        match oldest {
            Some((id, state)) => {
                self.peers.remove(&id);
                tracing::debug!(peer = %id, %state, "membership table full: evicted oldest expendable peer");
                true
            }
            None => false,
        }
    }
}

/// Thread-safe membership table of the other nodes (this node is not in it).
///
/// Every change that affects who is live bumps a version observable with
/// [`Membership::subscribe`], so placement and repair can react.
///
/// Bounded, as it is fed by peers: at most `max_peers` entries (when full, a new peer evicts
/// the oldest unverified entry, else the oldest dead or left one, or is refused if there is
/// none); dead and left entries are forgotten by [`Membership::prune`] `forget_after` after
/// entering that state, unverified ones `unverified_forget_after` after; ids of nodes that
/// left are remembered in a set of at most `max_peers` ids, oldest dropped first, so a node
/// that left is never alive again. See [`NetConfig`](crate::NetConfig).
///
/// Two ways in: [`Membership::observe`] for a peer this node dialled itself (the address is
/// verified: alive at once), [`Membership::claim`] for one that only said `hello` on an
/// inbound connection (its address is what it claims: unverified until dialled).
#[derive(Debug)]
pub struct Membership {
    local: PeerInfo,
    max_peers: usize,
    forget_after: Duration,
    unverified_forget_after: Duration,
    table: Mutex<Table>,
    version: watch::Sender<u64>,
}

impl Membership {
    /// An empty table for the node `local`, with the default bounds of
    /// [`NetConfig`](crate::NetConfig) (4096 peers, dead and left peers forgotten after 10 min,
    /// unverified ones after 30 s).
    pub fn new(local: PeerInfo) -> Self {
        Self::with_limits(local, DEFAULT_MAX_PEERS, DEFAULT_FORGET_AFTER)
    }

    /// An empty table for the node `local` holding at most `max_peers` peers (at least one),
    /// whose dead and left entries are forgotten `forget_after` after entering that state
    /// (unverified ones after 30 s; see [`Membership::with_unverified_forget_after`]).
    pub fn with_limits(local: PeerInfo, max_peers: usize, forget_after: Duration) -> Self {
        let max_peers = max_peers.max(1);
        Self {
            local,
            max_peers,
            forget_after,
            unverified_forget_after: DEFAULT_UNVERIFIED_FORGET_AFTER,
            table: Mutex::new(Table {
                peers: HashMap::new(),
                left: LeftIds::new(max_peers),
            }),
            version: watch::Sender::new(0),
        }
    }

    /// The same table, whose unverified entries are forgotten `after` entering that state.
    pub fn with_unverified_forget_after(mut self, after: Duration) -> Self {
        self.unverified_forget_after = after;
        self
    }

    /// This node.
    pub fn local(&self) -> PeerInfo {
        self.local
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent even if a holder panicked: no update spans an unwind.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// Records that `peer` was found at an address this node dialled itself (the address is
    /// verified): adds it, or marks it alive at its (new) address, also when it was unverified.
    /// Another live node previously known at the same address is marked dead (a restarted node
    /// is a new node), and unverified claims of other ids at that address are forgotten (the
    /// address holds `peer`). A node that announced its leave is ignored: it stays left. A new
    /// peer is refused when the table is full of live peers. Returns whether the live set
    /// changed.
    ///
    /// Only for verified addresses: a peer known only from its inbound `hello` goes through
    /// [`Membership::claim`].
    pub fn observe(&self, peer: PeerInfo) -> bool {
        self.observe_at(peer, Instant::now())
    }

    /// Records `peer` as a member reported by another node (the gossip, in keyed mode, where
    /// only holders of the network key speak): like [`Membership::observe`], unless another
    /// live node is known at `peer`'s address. A report is news of the past: a node restarted
    /// at an address has a new id, and members keep gossiping the former id for a while (or
    /// bring it back once they forgot it died). Taken as verified, such a report would mark the
    /// node that is there now dead, and nothing would revive it (its gossip identity never went
    /// down), so the report is [`Reported::Contested`] instead and the caller dials the address
    /// to see who answers there (`observe` then settles it).
    pub fn report(&self, peer: PeerInfo) -> Reported {
        if self.is_self(&peer) {
            return Reported::Unchanged;
        }
        let contested = self
            .lock()
            .peers
            .values()
            .any(|e| e.info.addr == peer.addr && e.info.id != peer.id && e.state.is_live());
        if contested {
            Reported::Contested
        } else if self.observe(peer) {
            Reported::Changed
        } else {
            Reported::Unchanged
        }
    }

    /// Whether `peer` is this node, or a former incarnation of it: a node restarted at the
    /// same address gets a new id, and its peers may still speak of the old one for a while.
    /// Dialling that address reaches this node itself, so such an entry is never kept.
    fn is_self(&self, peer: &PeerInfo) -> bool {
        if peer.id != self.local.id && peer.addr == self.local.addr {
            tracing::trace!(peer = %peer.id, "ignoring a former incarnation of this node");
            return true;
        }
        peer.id == self.local.id
    }

    fn observe_at(&self, peer: PeerInfo, now: Instant) -> bool {
        if self.is_self(&peer) {
            return false;
        }
        let mut changed = false;
        {
            let mut table = self.lock();
            if table.has_left(&peer.id) {
                tracing::trace!(peer = %peer.id, "ignoring a node that left");
                return false;
            }
            for entry in table.peers.values_mut() {
                if entry.info.addr == peer.addr && entry.info.id != peer.id && entry.state.is_live()
                {
                    entry.set_state(PeerState::Dead, now);
                    changed = true;
                }
            }
            table.peers.retain(|id, e| {
                e.state != PeerState::Unverified || e.info.addr != peer.addr || *id == peer.id
            });
            if let Some(entry) = table.peers.get_mut(&peer.id) {
                changed |= !entry.state.is_live() || entry.info.addr != peer.addr;
                entry.info = peer;
                entry.set_state(PeerState::Alive, now);
                entry.last_seen = now;
                entry.failures = 0;
            } else if table.make_room(self.max_peers) {
                table.peers.insert(
                    peer.id,
                    PeerEntry {
                        info: peer,
                        state: PeerState::Alive,
                        last_seen: now,
                        since: now,
                        failures: 0,
                    },
                );
                changed = true;
            } else {
                tracing::debug!(peer = %peer.id, max = self.max_peers, "membership table full of live peers: refusing a new one");
            }
        }
        if changed {
            self.bump();
        }
        changed
    }

    /// Records that `peer` said `hello` on an inbound connection. Its address is only what it
    /// claims, so the claim counts for nothing (not live, not in placement, not in peer lists)
    /// until this node dials that address and finds `peer.id` there ([`Membership::observe`]
    /// then makes it alive). Returns whether the address should be dialled to verify it.
    ///
    /// - this node's id, or a node that announced its leave: ignored;
    /// - a live peer at its known address keeps its state, so a member reconnecting does not
    ///   flap (a suspect one is worth a verification dial, an alive one is not);
    /// - an unknown id, a known non-live id, or a known id at another address: unverified at
    ///   the claimed address (a live peer claiming a new address leaves placement until the new
    ///   address is verified); a repeated claim does not postpone its expiry. A new entry takes
    ///   a place like [`Membership::observe`] (evicting the oldest unverified, else dead or
    ///   left, entry) or is refused when the table is full of live peers.
    ///
    /// No other entry is touched: a claim of a live node's address does not mark it dead.
    pub fn claim(&self, peer: PeerInfo) -> bool {
        self.claim_at(peer, Instant::now())
    }

    fn claim_at(&self, peer: PeerInfo, now: Instant) -> bool {
        if self.is_self(&peer) {
            return false;
        }
        let (verify, live_changed) = {
            let mut table = self.lock();
            if table.has_left(&peer.id) {
                tracing::trace!(peer = %peer.id, "ignoring a node that left");
                return false;
            }
            if let Some(entry) = table.peers.get_mut(&peer.id) {
                if entry.state.is_live() && entry.info.addr == peer.addr {
                    (entry.state == PeerState::Suspect, false)
                } else {
                    let was_live = entry.state.is_live();
                    entry.info = peer;
                    entry.set_state(PeerState::Unverified, now);
                    (true, was_live)
                }
            } else if table.make_room(self.max_peers) {
                table.peers.insert(
                    peer.id,
                    PeerEntry {
                        info: peer,
                        state: PeerState::Unverified,
                        last_seen: now,
                        since: now,
                        failures: 0,
                    },
                );
                (true, false)
            } else {
                tracing::debug!(peer = %peer.id, max = self.max_peers, "membership table full of live peers: refusing a new claim");
                (false, false)
            }
        };
        if live_changed {
            self.bump();
        }
        verify
    }

    /// Sets a known peer's state; returns whether the live set changed. Unknown ids are
    /// ignored, and so is any change of a peer that left (use [`Membership::mark_left`] to
    /// record a leave, also for unknown ids).
    pub fn set_state(&self, id: NodeId, state: PeerState) -> bool {
        if state == PeerState::Left {
            return self.mark_left(id);
        }
        let changed = {
            let mut table = self.lock();
            match table.peers.get_mut(&id) {
                Some(entry) if entry.state != state && entry.state != PeerState::Left => {
                    let was_live = entry.state.is_live();
                    entry.set_state(state, Instant::now());
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

    /// Records that node `id` announced its leave: it is never alive again in this table, even
    /// after its entry is forgotten. Returns whether the live set changed.
    pub fn mark_left(&self, id: NodeId) -> bool {
        self.mark_left_at(id, Instant::now())
    }

    fn mark_left_at(&self, id: NodeId, now: Instant) -> bool {
        let changed = {
            let mut table = self.lock();
            table.left.insert(id);
            match table.peers.get_mut(&id) {
                Some(entry) => {
                    let was_live = entry.state.is_live();
                    entry.set_state(PeerState::Left, now);
                    was_live
                }
                None => false,
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
        self.record_probe_at(id, ok, dead_after, Instant::now())
    }

    fn record_probe_at(
        &self,
        id: NodeId,
        ok: bool,
        dead_after: u32,
        now: Instant,
    ) -> Option<PeerState> {
        let (changed, live_changed) = {
            let mut table = self.lock();
            let entry = table.peers.get_mut(&id)?;
            let before = entry.state;
            if ok {
                entry.failures = 0;
                entry.last_seen = now;
                if matches!(before, PeerState::Suspect | PeerState::Dead) {
                    entry.set_state(PeerState::Alive, now);
                }
            } else {
                entry.failures = entry.failures.saturating_add(1);
                if before == PeerState::Alive {
                    entry.set_state(PeerState::Suspect, now);
                }
                if entry.state == PeerState::Suspect && entry.failures >= dead_after.max(1) {
                    entry.set_state(PeerState::Dead, now);
                }
            }
            let after = entry.state;
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

    /// Forgets the dead and left peers that have been in that state for `forget_after` at
    /// `now`, and the unverified ones unverified for `unverified_forget_after`; returns how
    /// many were removed. Called by the probe loop once per round. Left ids stay remembered in
    /// the bounded left set.
    pub fn prune(&self, now: Instant) -> usize {
        let mut table = self.lock();
        let before = table.peers.len();
        table.peers.retain(|_, e| {
            let after = if e.state == PeerState::Unverified {
                self.unverified_forget_after
            } else {
                self.forget_after
            };
            !(e.state.is_expendable() && now.saturating_duration_since(e.since) >= after)
        });
        before - table.peers.len()
    }

    /// The entry for `id`, if known.
    pub fn get(&self, id: &NodeId) -> Option<PeerEntry> {
        self.lock().peers.get(id).cloned()
    }

    /// Whether node `id` announced its leave (remembered even after its entry is forgotten,
    /// within the bounded left set).
    pub fn has_left(&self, id: &NodeId) -> bool {
        self.lock().has_left(id)
    }

    /// Every known peer, sorted by id.
    pub fn snapshot(&self) -> Vec<PeerEntry> {
        let mut all: Vec<PeerEntry> = self.lock().peers.values().cloned().collect();
        all.sort_by_key(|e| e.info.id);
        all
    }

    /// Peers that take part in placement (alive or suspect), sorted by id.
    pub fn live_peers(&self) -> Vec<PeerInfo> {
        let mut live: Vec<PeerInfo> = self
            .lock()
            .peers
            .values()
            .filter(|e| e.state.is_live())
            .map(|e| e.info)
            .collect();
        live.sort_by_key(|p| p.id);
        live
    }

    /// What this node answers to `get_peers` from `asker`: at most `max` live peers other
    /// than `asker`. When there are more, a window of `max` consecutive ids starting at a
    /// random point is chosen, so repeated questions cover every peer.
    pub(crate) fn peers_answer(&self, asker: NodeId, max: usize) -> Vec<PeerInfo> {
        let mut live = self.live_peers();
        live.retain(|p| p.id != asker);
        peer_list::window(live, max, NodeId::random())
    }

    /// Number of known peers in any state.
    pub fn len(&self) -> usize {
        self.lock().peers.len()
    }

    /// Whether no peer is known.
    pub fn is_empty(&self) -> bool {
        self.lock().peers.is_empty()
    }

    /// Most peers the table holds.
    pub fn max_peers(&self) -> usize {
        self.max_peers
    }

    /// A receiver that sees a new version whenever the live set changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}
