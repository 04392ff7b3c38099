//! The state a running network shares between its parts: the server, the connection pool, the
//! gossip, the liveness loops and the [`Network`](crate::Network) handle, which wraps it.
//!
//! It holds data and the small operations on it; what dials, serves or gossips sits above it
//! (`pool.rs`, `server.rs`, `gossip/`, `liveness.rs`), and `network.rs` on top of those.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voldisefs_proto::PeerInfo;

use crate::config::NetConfig;
use crate::conn::Conn;
use crate::freeze::{Freeze, FreezeWatch};
use crate::gossip::Gossip;
use crate::membership::Membership;
use crate::memory::FrameBudget;
use crate::noise::{Identity, NetworkKey};
use crate::stats::{Counters, CountingCodec};
use crate::verify::Verifier;

/// A pooled connection to one address, dialed on first use.
pub(crate) type Slot = Arc<tokio::sync::Mutex<Option<Arc<Conn>>>>;

/// State shared by the server, the pool and the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: NetConfig,
    pub(crate) membership: Membership,
    pub(crate) token: CancellationToken,
    pub(crate) tracker: TaskTracker,
    /// One slot per peer address; the async mutex makes concurrent first uses share one dial.
    pool: Mutex<HashMap<SocketAddr, Slot>>,
    pub(crate) counters: Arc<Counters>,
    /// What every connection's codec may allocate ahead of a large frame's bytes.
    pub(crate) frame_budget: voldisefs_proto::ReserveBudget,
    /// The memory of every buffer held for an incoming frame not yet complete.
    pub(crate) frame_memory: FrameBudget,
    /// Keyed mode: the network key and this node's static key pair.
    pub(crate) keyed: Option<Keyed>,
    isolated: AtomicBool,
    /// Parent of every connection's token; replaced (and cancelled) on isolation.
    generation: Mutex<CancellationToken>,
    /// The freeze drill switch (see [`Network::set_frozen`](crate::Network::set_frozen)).
    freeze: Freeze,
    /// Whether [`Network::join`](crate::Network::join) runs and has not succeeded yet.
    pub(crate) joining: AtomicBool,
    /// Claimed addresses waiting for a verification dial (see [`crate::verify`]).
    pub(crate) verifier: Verifier,
    /// The gossip task, when membership runs on SWIM gossip ([`NetConfig::gossip`]).
    pub(crate) gossip: std::sync::OnceLock<Gossip>,
    /// Where the anti-entropy loop should pull a member list from next, sooner than its round.
    pub(crate) pull_hint: PullHint,
    /// The latest time each of a bounded set of members stated in its datagrams.
    pub(crate) peer_times: crate::peer_time::PeerTimes,
    /// Open mode's address checks waiting for their answer (see `gossip/check.rs`).
    pub(crate) address_checks: crate::gossip::check::Checks,
    /// The network this node's sockets belong to (the one its listener was bound on).
    pub(crate) transport: crate::socket::Transport,
}

/// A request to pull a member list from one address sooner than the next anti-entropy round:
/// a member that just told this node of a member it did not know (it may know more), or a
/// joiner that asked for this node's list (its own comes back: push-pull). One slot, the
/// latest hint wins, so any number of hints cost the anti-entropy loop one pull per
/// [`GossipConfig::pull_gap`](crate::GossipConfig::pull_gap) at most.
#[derive(Debug, Default)]
pub(crate) struct PullHint {
    slot: Mutex<Option<SocketAddr>>,
    wake: tokio::sync::Notify,
}

impl PullHint {
    /// Asks for a pull from `addr` (replacing a hint not yet taken).
    pub(crate) fn hint(&self, addr: SocketAddr) {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(addr);
        self.wake.notify_one();
    }

    /// Asks for a pull from `addr` unless another hint is waiting.
    pub(crate) fn hint_if_none(&self, addr: SocketAddr) {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(addr);
            self.wake.notify_one();
        }
    }

    /// The latest hint, if one is waiting; takes it.
    pub(crate) fn take(&self) -> Option<SocketAddr> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Waits for a hint and takes it.
    pub(crate) async fn next(&self) -> SocketAddr {
        loop {
            let woken = self.wake.notified();
            if let Some(addr) = self.take() {
                return addr;
            }
            woken.await;
        }
    }
}

/// What keyed mode needs: the shared network key and this node's own key pair.
#[derive(Debug)]
pub(crate) struct Keyed {
    pub(crate) key: NetworkKey,
    pub(crate) identity: Identity,
}

impl Shared {
    /// The state of a network that starts now as `local`, under `config`, with `token` as its
    /// root: an empty pool and membership table, thawed and not isolated.
    pub(crate) fn new(
        config: NetConfig,
        local: PeerInfo,
        keyed: Option<Keyed>,
        token: CancellationToken,
    ) -> Self {
        let membership = Membership::with_limits(local, config.max_peers, config.forget_after)
            .with_unverified_forget_after(config.unverified_forget_after);
        let verifier = Verifier::new(config.max_verifying, config.max_verify_pending);
        let frame_budget = voldisefs_proto::ReserveBudget::new(config.frame_reserve_budget);
        let frame_memory = FrameBudget::new(config.frame_memory, config.frame_memory_per_ip);
        Shared {
            config,
            membership,
            generation: Mutex::new(token.child_token()),
            token,
            tracker: TaskTracker::new(),
            pool: Mutex::new(HashMap::new()),
            counters: Arc::default(),
            frame_budget,
            frame_memory,
            keyed,
            isolated: AtomicBool::new(false),
            freeze: Freeze::new(),
            joining: AtomicBool::new(false),
            verifier,
            gossip: std::sync::OnceLock::new(),
            pull_hint: PullHint::default(),
            peer_times: crate::peer_time::PeerTimes::default(),
            address_checks: crate::gossip::check::Checks::default(),
            transport: crate::socket::Transport::Os,
        }
    }

    /// Requests waiting for an answer on the pooled connections (one not taken now counts as
    /// none: its slot is being dialled or used).
    pub(crate) fn pending_requests(&self) -> usize {
        let slots: Vec<Slot> = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        slots
            .iter()
            .filter_map(|slot| slot.try_lock().ok().and_then(|conn| conn.clone()))
            .map(|conn| conn.pending())
            .sum()
    }

    /// A codec with this node's frame cap, counting into its traffic counters.
    pub(crate) fn codec(&self) -> CountingCodec {
        CountingCodec::new(self.config.max_frame_len, self.counters.clone())
            .with_budget(self.frame_budget.clone())
    }

    /// Whether the node is cut off from its peers (see
    /// [`Network::set_isolated`](crate::Network::set_isolated)).
    pub(crate) fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::SeqCst)
    }

    /// Cuts the node off (`true`: every connection of the current generation is closed and
    /// the pool emptied) or reconnects it (`false`).
    pub(crate) fn set_isolated(&self, isolated: bool) {
        self.isolated.store(isolated, Ordering::SeqCst);
        if isolated {
            let fresh = self.token.child_token();
            let old = std::mem::replace(
                &mut *self
                    .generation
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
                fresh,
            );
            old.cancel();
            self.clear_pool();
        }
    }

    /// The token of the current connection generation.
    pub(crate) fn generation(&self) -> CancellationToken {
        self.generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Freezes (`true`) or thaws (`false`) the node; wakes every waiter.
    pub(crate) fn set_frozen(&self, frozen: bool) {
        self.freeze.set(frozen);
    }

    /// Whether the node is frozen now.
    pub(crate) fn is_frozen(&self) -> bool {
        self.freeze.is_frozen()
    }

    /// A handle to wait for the end (or the start) of a freeze.
    pub(crate) fn freeze_watch(&self) -> FreezeWatch {
        self.freeze.watch()
    }

    /// The pool's slot for `addr`, made empty if there is none yet.
    pub(crate) fn slot(&self, addr: SocketAddr) -> Slot {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        pool.entry(addr).or_default().clone()
    }

    /// Forgets every pooled connection: the next request to any address dials afresh.
    pub(crate) fn clear_pool(&self) {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
