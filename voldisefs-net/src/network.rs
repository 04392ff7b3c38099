//! [`Network`]: the handle a node holds: its server, its connection pool, its membership table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use voldisefs_proto::{Message, NodeId, PeerInfo};

use crate::config::NetConfig;
use crate::error::NetError;
use crate::gossip::{self, Command, Gossip};
use crate::membership::{Membership, PeerState};
use crate::memory::FrameMemoryStats;
use crate::noise::Identity;
use crate::payload::{Handler, Payload};
use crate::shared::{Keyed, Shared};
use crate::socket::Listener;
use crate::stats::{RequestStat, TrafficStats};
use crate::{liveness, pool, server};

/// Most `leave` messages [`Network::announce_leave`] has in flight at once.
pub const LEAVE_PARALLELISM: usize = 32;

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
        listener: impl Into<Listener>,
        advertise: Option<SocketAddr>,
        handler: Arc<H>,
        config: NetConfig,
        token: CancellationToken,
    ) -> Result<Network, NetError> {
        let listener = listener.into();
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
        let mut shared = Shared::new(config, PeerInfo { id, addr }, keyed, token);
        shared.transport = listener.transport();
        let shared = Arc::new(shared);
        let gossip_bind = listener.local_addr()?;
        shared
            .tracker
            .spawn(server::accept_loop(listener, shared.clone(), handler));
        let network = Network { shared };
        if let Some(settings) = network.shared.config.gossip.clone() {
            let gossip = gossip::start(&network.shared, gossip_bind, settings)?;
            let _ = network.shared.gossip.set(gossip);
        }
        let tracker = &network.shared.tracker;
        tracker.spawn(liveness::probe_loop(network.shared.clone()));
        tracker.spawn(liveness::discovery_loop(network.shared.clone()));
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

    /// Requests of this node waiting for an answer now, over all its pooled connections. A
    /// request its caller gave up on (a shorter deadline, a cancelled transfer) is not counted:
    /// its place is freed at once, so a peer that never answers costs no memory that grows.
    pub fn pending_requests(&self) -> usize {
        self.shared.pending_requests()
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
    pub fn frame_memory(&self) -> FrameMemoryStats {
        self.shared.frame_memory.stats()
    }

    /// Cuts this node off from every peer (`true`) or reconnects it (`false`), as a network
    /// partition would: open connections are closed, inbound ones are dropped on accept and
    /// outbound requests fail with [`NetError::Isolated`]. For failure drills and tests.
    pub fn set_isolated(&self, isolated: bool) {
        self.shared.set_isolated(isolated);
        tracing::warn!(isolated, "peer links administratively changed");
    }

    /// Freezes this node (`true`) or thaws it (`false`), as `SIGSTOP`/`SIGCONT` would: while
    /// frozen, open connections stay open but no inbound frame is read or answered (a peer's
    /// request waits until the thaw or its own timeout), no new connection is accepted, and
    /// this node's own requests, probes and discovery wait until the thaw (or their timeout;
    /// a request still frozen at its timeout fails with [`NetError::Frozen`]). Unlike
    /// [`Network::set_isolated`] no link is closed. For failure drills and tests.
    pub fn set_frozen(&self, frozen: bool) {
        self.shared.set_frozen(frozen);
        tracing::warn!(frozen, "peer traffic administratively frozen or thawed");
    }

    /// Whether the node is frozen (see [`Network::set_frozen`]).
    pub fn is_frozen(&self) -> bool {
        self.shared.is_frozen()
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

    /// The time of day of live members as their membership datagrams stated it, heard within
    /// `max_age`, most recently heard first: each member's stated time (milliseconds since the
    /// unix epoch, read from its own clock) plus the time since it arrived. At most
    /// [`MAX_PEER_TIMES`](crate::MAX_PEER_TIMES) members; none with the classic detector
    /// ([`NetConfig::gossip`] `None`), which sends no datagrams.
    pub fn peer_times(&self, max_age: Duration) -> Vec<(NodeId, u64)> {
        let live: std::collections::HashSet<NodeId> = self
            .shared
            .membership
            .live_peers()
            .into_iter()
            .map(|p| p.id)
            .collect();
        self.shared
            .peer_times
            .recent(tokio::time::Instant::now(), max_age, |id| live.contains(id))
    }

    /// Sends `request` to the peer at `addr` (whoever it is) and returns its answer.
    pub async fn request_addr(
        &self,
        addr: SocketAddr,
        request: Payload,
    ) -> Result<Payload, NetError> {
        let conn = pool::conn(&self.shared, addr).await?;
        conn.request(request).await
    }

    /// Sends `request` to `peer` and returns its answer.
    ///
    /// An error answer becomes [`NetError::Remote`]. A peer that cannot be reached or does not
    /// answer in time is marked suspect (the failure detector decides whether it is dead); a
    /// suspect or dead peer that answers is alive again.
    pub async fn request(&self, peer: PeerInfo, request: Payload) -> Result<Payload, NetError> {
        let result = async {
            let conn = pool::conn(&self.shared, peer.addr).await?;
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
    pub(crate) fn gossip(&self) -> Option<&Gossip> {
        self.shared.gossip.get()
    }

    /// Tells every live peer that this node leaves, best effort, [`LEAVE_PARALLELISM`] at a
    /// time (and, with gossip, the gossip too, whose news of this node going down reaches
    /// anyone the direct message missed). A peer that got the `leave` marks this node left, never
    /// to be revived; one that only heard the gossip marks it dead.
    pub async fn announce_leave(&self) {
        if let Some(gossip) = self.gossip() {
            let (done, confirmed) = tokio::sync::oneshot::channel();
            gossip.send(Command::Leave(done));
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
