//! [`Network`]: the handle a node holds: its server, its connection pool, its membership table.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voldisefs_proto::{Message, NodeId, PeerInfo};

use crate::conn::Conn;
use crate::freeze::{Freeze, FreezeWatch};
use crate::noise::{Identity, NetworkKey};
use crate::stats::{Counters, CountingCodec, RequestStat, TrafficStats};
use crate::verify::Verifier;
use crate::{Membership, NetConfig, NetError, PeerState};

/// Most `leave` messages [`Network::announce_leave`] has in flight at once.
pub const LEAVE_PARALLELISM: usize = 32;

/// A message with its optional raw body: what a request or response consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The message.
    pub message: Message,
    /// Raw bytes for messages that carry them (`put_chunk`, `chunk`).
    pub body: Option<Bytes>,
}

impl Payload {
    /// A payload without body.
    pub fn new(message: Message) -> Self {
        Self {
            message,
            body: None,
        }
    }

    /// A payload with a body.
    pub fn with_body(message: Message, body: Bytes) -> Self {
        Self {
            message,
            body: Some(body),
        }
    }
}

/// What the node does with the requests the network layer does not answer itself.
///
/// `hello`, `get_peers`, `ping` and `leave` are handled by [`Network`]; every other request
/// (chunk storage, ...) is passed here with the id of the peer that sent it. The returned
/// payload is sent back; use [`Message::Error`] for failures.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request from peer `from`.
    fn handle(
        &self,
        from: NodeId,
        request: Payload,
    ) -> impl std::future::Future<Output = Payload> + Send;
}

/// A pooled connection to one address, dialed on first use.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Conn>>>>;

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
    pub(crate) frame_memory: crate::memory::FrameBudget,
    /// Keyed mode: the network key and this node's static key pair.
    pub(crate) keyed: Option<Keyed>,
    isolated: AtomicBool,
    /// Parent of every connection's token; replaced (and cancelled) on isolation.
    generation: Mutex<CancellationToken>,
    /// The freeze drill switch (see [`Network::set_frozen`]).
    freeze: Freeze,
    /// Whether [`Network::join`] runs and has not succeeded yet.
    pub(crate) joining: AtomicBool,
    /// Claimed addresses waiting for a verification dial (see [`crate::verify`]).
    pub(crate) verifier: Verifier,
    /// The gossip task, when membership runs on SWIM gossip ([`NetConfig::gossip`]).
    pub(crate) gossip: std::sync::OnceLock<crate::gossip::Gossip>,
}

/// What keyed mode needs: the shared network key and this node's own key pair.
#[derive(Debug)]
pub(crate) struct Keyed {
    pub(crate) key: NetworkKey,
    pub(crate) identity: Identity,
}

impl Shared {
    /// A codec with this node's frame cap, counting into its traffic counters.
    pub(crate) fn codec(&self) -> CountingCodec {
        CountingCodec::new(self.config.max_frame_len, self.counters.clone())
            .with_budget(self.frame_budget.clone())
    }

    /// Whether the node is cut off from its peers (see [`Network::set_isolated`]).
    pub(crate) fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::SeqCst)
    }

    /// The token of the current connection generation.
    pub(crate) fn generation(&self) -> CancellationToken {
        self.generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A handle to wait for the end (or the start) of a freeze.
    pub(crate) fn freeze_watch(&self) -> FreezeWatch {
        self.freeze.watch()
    }

    fn clear_pool(&self) {
        self.pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// A running network endpoint: server, client pool and membership. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Network {
    pub(crate) shared: Arc<Shared>,
}

impl Network {
    /// Starts serving peers on `listener`, passing requests to `handler`.
    ///
    /// `token` is the root of the network's lifecycle (give a child of the node's own root):
    /// cancelling it stops the accept loop, the liveness loops and every connection, as
    /// [`Network::shutdown`] does (which cancels it and then waits for every task).
    ///
    /// The node's id is random in open mode; in keyed mode (`config.network_key`) a static key
    /// pair is generated for the node's lifetime and the id is derived from it
    /// ([`node_id_for`](crate::node_id_for)). `advertise` is the address other peers should
    /// dial (default: the listener's address; give one when listening on a wildcard address).
    /// Must be called inside a tokio runtime.
    pub fn start<H: Handler>(
        listener: TcpListener,
        advertise: Option<SocketAddr>,
        handler: Arc<H>,
        config: NetConfig,
        token: CancellationToken,
    ) -> Result<Network, NetError> {
        let addr = match advertise {
            Some(addr) => addr,
            None => listener.local_addr()?,
        };
        let keyed = match &config.network_key {
            Some(key) => Some(Keyed {
                key: key.clone(),
                identity: Identity::generate()?,
            }),
            None => None,
        };
        let id = match &keyed {
            Some(keyed) => keyed.identity.node_id(),
            None => NodeId::random(),
        };
        let membership =
            Membership::with_limits(PeerInfo { id, addr }, config.max_peers, config.forget_after)
                .with_unverified_forget_after(config.unverified_forget_after);
        let verifier = Verifier::new(config.max_verifying, config.max_verify_pending);
        let frame_budget = voldisefs_proto::ReserveBudget::new(config.frame_reserve_budget);
        let frame_memory =
            crate::memory::FrameBudget::new(config.frame_memory, config.frame_memory_per_ip);
        let shared = Arc::new(Shared {
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
        });
        let gossip_bind = listener.local_addr()?;
        shared.tracker.spawn(crate::server::accept_loop(
            listener,
            shared.clone(),
            handler,
        ));
        let network = Network { shared };
        if let Some(settings) = network.shared.config.gossip.clone() {
            let gossip = crate::gossip::start(&network, gossip_bind, settings)?;
            let _ = network.shared.gossip.set(gossip);
        }
        let tracker = &network.shared.tracker;
        tracker.spawn(crate::liveness::probe_loop(network.clone()));
        tracker.spawn(crate::liveness::discovery_loop(network.clone()));
        Ok(network)
    }

    /// The token cancelled when the network shuts down.
    pub(crate) fn shared_token(&self) -> CancellationToken {
        self.shared.token.clone()
    }

    /// Peer requests served and sent so far, by kind and outcome.
    pub fn request_stats(&self) -> Vec<RequestStat> {
        self.shared.counters.requests()
    }

    /// Peer traffic of this node so far.
    pub fn traffic(&self) -> TrafficStats {
        self.shared.counters.snapshot()
    }

    /// Bytes of [`NetConfig::frame_reserve_budget`] no connection holds now.
    pub fn frame_reserve_available(&self) -> usize {
        self.shared.frame_budget.available()
    }

    /// Memory held now (and at most so far) for incoming frames not yet complete, all peer
    /// connections together; never more than [`NetConfig::frame_memory`] (see there).
    pub fn frame_memory(&self) -> crate::FrameMemoryStats {
        self.shared.frame_memory.stats()
    }

    /// Cuts this node off from every peer (`true`) or reconnects it (`false`), as a network
    /// partition would: open connections are closed, inbound ones are dropped on accept and
    /// outbound requests fail with [`NetError::Isolated`]. For failure drills and tests.
    pub fn set_isolated(&self, isolated: bool) {
        self.shared.isolated.store(isolated, Ordering::SeqCst);
        if isolated {
            let fresh = self.shared.token.child_token();
            let old = std::mem::replace(
                &mut *self
                    .shared
                    .generation
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
                fresh,
            );
            old.cancel();
            self.shared.clear_pool();
        }
        tracing::warn!(isolated, "peer links administratively changed");
    }

    /// Freezes this node (`true`) or thaws it (`false`), as `SIGSTOP`/`SIGCONT` would: while
    /// frozen, open connections stay open but no inbound frame is read or answered (a peer's
    /// request waits until the thaw or its own timeout), no new connection is accepted, and
    /// this node's own requests, probes and discovery wait until the thaw (or their timeout;
    /// a request still frozen at its timeout fails with [`NetError::Frozen`]). Unlike
    /// [`Network::set_isolated`] no link is closed. For failure drills and tests.
    pub fn set_frozen(&self, frozen: bool) {
        self.shared.freeze.set(frozen);
        tracing::warn!(frozen, "peer traffic administratively frozen or thawed");
    }

    /// Whether the node is frozen (see [`Network::set_frozen`]).
    pub fn is_frozen(&self) -> bool {
        self.shared.freeze.is_frozen()
    }

    /// This node's id and advertised address.
    pub fn local(&self) -> PeerInfo {
        self.shared.membership.local()
    }

    /// Whether links are encrypted and authenticated with a network key.
    pub fn is_keyed(&self) -> bool {
        self.shared.keyed.is_some()
    }

    /// The membership table.
    pub fn membership(&self) -> &Membership {
        &self.shared.membership
    }

    /// The configuration in force.
    pub fn config(&self) -> &NetConfig {
        &self.shared.config
    }

    /// Returns an open connection to `addr`, dialing (and handshaking) if needed: when there is
    /// none, when it was closed (by either side), or when it has been unused for half of
    /// [`NetConfig::idle_timeout`]. The node found there is recorded alive when it advertises
    /// the dialled address; another advertised address is only a claim, verified by a dial of
    /// its own.
    pub(crate) async fn conn(&self, addr: SocketAddr) -> Result<Arc<Conn>, NetError> {
        if self.shared.token.is_cancelled() {
            return Err(NetError::Shutdown);
        }
        if self.shared.is_isolated() {
            return Err(NetError::Isolated);
        }
        let wait = self.shared.config.request_timeout;
        wait_thawed(self.shared.freeze_watch(), wait).await?;
        let slot = {
            let mut pool = self
                .shared
                .pool
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            pool.entry(addr).or_default().clone()
        };
        let mut slot = slot.lock().await;
        // A connection unused for half the idle timeout is not reused: the peer (with the same
        // idle timeout) may be closing it right now, which would fail the request.
        let stale_after = self.shared.config.idle_timeout / 2;
        if let Some(conn) = slot.as_ref() {
            if conn.is_open() && conn.idle_for() < stale_after {
                conn.touch();
                return Ok(conn.clone());
            }
            conn.close();
        }
        let conn = Conn::connect(addr, &self.shared).await?;
        let remote = conn.remote();
        if remote.addr == addr {
            self.shared.membership.observe(remote);
            if let Some(gossip) = self.gossip() {
                // A member met over TCP is probed by the gossip too, or nothing would notice
                // its death if the gossip had not heard of it yet.
                gossip.send(crate::gossip::Command::Learned(vec![remote]));
            }
        } else if self.shared.membership.claim(remote) {
            // It advertises another address than the one dialled: that one counts only once a
            // dial there finds the same node (a hostile node could name a black hole).
            self.verify_claim(remote.addr);
        }
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Sends `request` to the peer at `addr` (whoever it is) and returns its answer.
    pub async fn request_addr(
        &self,
        addr: SocketAddr,
        request: Payload,
    ) -> Result<Payload, NetError> {
        let conn = self.conn(addr).await?;
        conn.request(request).await
    }

    /// Sends `request` to `peer` and returns its answer.
    ///
    /// An error answer becomes [`NetError::Remote`]. A peer that cannot be reached or does not
    /// answer in time is marked suspect (the failure detector decides whether it is dead); a
    /// suspect or dead peer that answers is alive again.
    pub async fn request(&self, peer: PeerInfo, request: Payload) -> Result<Payload, NetError> {
        let result = async {
            let conn = self.conn(peer.addr).await?;
            let remote = conn.remote();
            if remote.id != peer.id {
                return Err(NetError::WrongPeer {
                    addr: peer.addr,
                    expected: peer.id,
                    actual: remote.id,
                });
            }
            conn.request(request).await
        }
        .await;
        let membership = &self.shared.membership;
        let state = membership.get(&peer.id).map(|e| e.state);
        match &result {
            // Any answer, even an error message, proves the peer alive.
            Ok(_) | Err(NetError::Remote { .. })
                if matches!(state, Some(PeerState::Suspect | PeerState::Dead)) =>
            {
                membership.record_probe(peer.id, true, self.shared.config.dead_after);
            }
            Err(
                NetError::Connect { .. }
                | NetError::WrongPeer { .. }
                | NetError::Timeout { .. }
                | NetError::ConnectionClosed { .. },
            ) if state == Some(PeerState::Alive) => {
                membership.set_state(peer.id, PeerState::Suspect);
            }
            _ => {}
        }
        result
    }

    /// Sends `request` to the known peer `id`.
    pub async fn request_id(&self, id: NodeId, request: Payload) -> Result<Payload, NetError> {
        let peer = self
            .shared
            .membership
            .get(&id)
            .ok_or(NetError::UnknownPeer(id))?
            .info;
        self.request(peer, request).await
    }

    /// The gossip task's handle, when membership runs on gossip.
    pub(crate) fn gossip(&self) -> Option<&crate::gossip::Gossip> {
        self.shared.gossip.get()
    }

    /// Tells every live peer that this node leaves, best effort, [`LEAVE_PARALLELISM`] at a
    /// time (and, with gossip, the gossip too, whose news of this node going down reaches
    /// anyone the direct message missed). A peer that got the `leave` marks this node left, never
    /// to be revived; one that only heard the gossip marks it dead.
    pub async fn announce_leave(&self) {
        if let Some(gossip) = self.gossip() {
            let (done, confirmed) = tokio::sync::oneshot::channel();
            gossip.send(crate::gossip::Command::Leave(done));
            let _ = tokio::time::timeout(Duration::from_secs(1), confirmed).await;
        }
        let local = self.local();
        let mut running = JoinSet::new();
        let mut peers = self.shared.membership.live_peers().into_iter();
        loop {
            // At most `LEAVE_PARALLELISM` at once: one dial per member of a large network.
            while running.len() < LEAVE_PARALLELISM {
                let Some(peer) = peers.next() else { break };
                let net = self.clone();
                running.spawn(async move {
                    let leave = Payload::new(Message::Leave { node_id: local.id });
                    (peer, net.request(peer, leave).await)
                });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            if let Ok((peer, Err(e))) = done {
                tracing::debug!(peer = %peer.id, error = %e, "leave not delivered");
            }
        }
    }

    /// Stops the server, the liveness loops and every connection, and waits until all their
    /// tasks have ended.
    pub async fn shutdown(&self) {
        self.shared.token.cancel();
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
        self.shared.clear_pool();
    }

    /// Whether [`Network::shutdown`] has begun (or the token given to [`Network::start`] was
    /// cancelled).
    pub fn is_shut_down(&self) -> bool {
        self.shared.token.is_cancelled()
    }
}

/// Waits until the node is not frozen, for at most `limit`; [`NetError::Frozen`] if it still is.
pub(crate) async fn wait_thawed(mut freeze: FreezeWatch, limit: Duration) -> Result<(), NetError> {
    tokio::time::timeout(limit, freeze.thawed())
        .await
        .map_err(|_| NetError::Frozen)
}
