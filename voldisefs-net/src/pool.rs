//! The connection pool and the exchanges the network makes over it on its own behalf.
//!
//! [`conn`] returns the pooled connection to an address, dialing one ([`crate::dial`]) when
//! there is none or it is stale, and records the node found there: alive when it advertises
//! the dialled address, else only a claim, verified by a dial of its own ([`verify_claim`],
//! bounded as `verify.rs` says). The verification dials go through the pool too, which is why
//! they live here. Above the pool: [`answers_ping`] (the probe loop's and the gossip's direct
//! check of one peer) and [`discover`] (the `get_peers` exchange of bootstrap and discovery).

use std::net::SocketAddr;
use std::sync::Arc;

use voldisefs_proto::{MAX_PEERS_PER_ANSWER, Message, PeerInfo};

use crate::conn::Conn;
use crate::dial;
use crate::error::NetError;
use crate::freeze::wait_thawed;
use crate::gossip::Command;
use crate::membership::validate_peer_list;
use crate::payload::Payload;
use crate::shared::Shared;
use crate::verify::Admit;

/// Returns an open connection to `addr`, dialing (and handshaking) if needed: when there is
/// none, when it was closed (by either side), or when it has been unused for half of
/// [`NetConfig::idle_timeout`](crate::NetConfig::idle_timeout). The node found there is
/// recorded alive when it advertises the dialled address; another advertised address is only a
/// claim, verified by a dial of its own.
pub(crate) async fn conn(shared: &Arc<Shared>, addr: SocketAddr) -> Result<Arc<Conn>, NetError> {
    if shared.token.is_cancelled() {
        return Err(NetError::Shutdown);
    }
    if shared.is_isolated() {
        return Err(NetError::Isolated);
    }
    let wait = shared.config.request_timeout;
    wait_thawed(shared.freeze_watch(), wait).await?;
    let slot = shared.slot(addr);
    let mut slot = slot.lock().await;
    // A connection unused for half the idle timeout is not reused: the peer (with the same
    // idle timeout) may be closing it right now, which would fail the request.
    let stale_after = shared.config.idle_timeout / 2;
    if let Some(conn) = slot.as_ref() {
        if conn.is_open() && conn.idle_for() < stale_after {
            conn.touch();
            return Ok(conn.clone());
        }
        conn.close();
    }
    let conn = dial::connect(addr, shared).await?;
    let remote = conn.remote();
    if remote.addr == addr {
        shared.membership.observe(remote);
        if let Some(gossip) = shared.gossip.get() {
            // A member met over TCP is probed by the gossip too, or nothing would notice
            // its death if the gossip had not heard of it yet.
            gossip.send(Command::Learned(vec![remote]));
        }
    } else if shared.membership.claim(remote) {
        // It advertises another address than the one dialled: that one counts only once a
        // dial there finds the same node (a hostile node could name a black hole).
        verify_claim(shared, remote.addr);
    }
    *slot = Some(conn.clone());
    Ok(conn)
}

/// One pending address; frees its place when dropped (also when its task is cancelled).
struct Pending {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.shared.verifier.release(self.addr);
    }
}

/// Dials `addr`, an address some inbound `hello` claimed, to find out who is there: if a
/// node answers there (within `probe_timeout`) and advertises that very address, it is
/// alive in the membership table; any unverified claim of another id at that address
/// stays unverified (and is forgotten). Returns at once: the dial runs in a task, bounded
/// as `verify.rs` says; a claim beyond the bounds is dropped with a debug log.
pub(crate) fn verify_claim(shared: &Arc<Shared>, addr: SocketAddr) {
    let token = shared.token.clone();
    if token.is_cancelled() {
        return;
    }
    match shared.verifier.admit(addr) {
        Admit::Taken => {}
        Admit::AlreadyPending => return,
        Admit::Full => {
            tracing::debug!(%addr, max = shared.verifier.max_pending, "too many claimed addresses waiting for verification: not dialling this one now");
            return;
        }
    }
    let pending = Pending {
        shared: shared.clone(),
        addr,
    };
    shared.tracker.spawn(async move {
        tokio::select! {
            () = token.cancelled() => {}
            () = verify(&pending.shared, addr) => {}
        }
        drop(pending);
    });
}

/// One ping within `probe_timeout`; true if the node at `peer`'s address is `peer` and
/// answered (the liveness probe loop and the gossip's direct check of a suspect).
pub(crate) async fn answers_ping(shared: &Arc<Shared>, peer: PeerInfo) -> bool {
    let ping = async {
        let conn = conn(shared, peer.addr).await.ok()?;
        if conn.remote().id != peer.id {
            return None;
        }
        conn.request(Payload::new(Message::Ping)).await.ok()
    };
    matches!(
        tokio::time::timeout(shared.config.probe_timeout, ping).await,
        Ok(Some(Payload {
            message: Message::Pong,
            ..
        }))
    )
}

/// One verification of `addr`, once a running place is free: an address check over UDP in
/// open mode with gossip (`gossip/check.rs`), else (or when it got no answer) a dial.
async fn verify(shared: &Arc<Shared>, addr: SocketAddr) {
    let Ok(_running) = shared.verifier.running.acquire().await else {
        return;
    };
    if let Some(remote) = check_over_udp(shared, addr).await {
        if remote.addr == addr {
            if shared.membership.observe(remote) {
                tracing::info!(peer = %remote.id, %addr, "verified claimed address");
            }
            // Gossiped on only as the membership took it (not a node that left, nor one past
            // a table full of live members), so foca's table stays within the same cap.
            let live = shared
                .membership
                .get(&remote.id)
                .is_some_and(|e| e.state.is_live() && e.info.addr == addr);
            if live && let Some(gossip) = shared.gossip.get() {
                gossip
                    .send_waiting(Command::Verified(remote), &shared.token)
                    .await;
            }
        } else {
            tracing::debug!(%addr, peer = %remote.id, advertised = %remote.addr, "node at claimed address advertises another one");
        }
        return;
    }
    let check = async {
        // A fresh dial records what it finds (`conn`); a pooled connection was recorded when
        // dialled, and the ping shows it still answers.
        let conn = conn(shared, addr).await.ok()?;
        let remote = conn.remote();
        match conn
            .request(Payload::new(Message::Ping))
            .await
            .ok()?
            .message
        {
            Message::Pong => Some(remote),
            _ => None,
        }
    };
    let found: Option<PeerInfo> = tokio::time::timeout(shared.config.probe_timeout, check)
        .await
        .ok()
        .flatten();
    match found {
        Some(remote) if remote.addr == addr => {
            if shared.membership.observe(remote) {
                tracing::info!(peer = %remote.id, %addr, "verified claimed address");
            }
        }
        Some(remote) => {
            tracing::debug!(%addr, peer = %remote.id, advertised = %remote.addr, "node at claimed address advertises another one");
        }
        None => tracing::debug!(%addr, "claimed address did not answer in time"),
    }
}

/// Who answers an address check sent to `addr` within `probe_timeout`; `None` in keyed mode,
/// without gossip, with too many checks waiting, or with no answer.
async fn check_over_udp(shared: &Arc<Shared>, addr: SocketAddr) -> Option<PeerInfo> {
    if shared.config.network_key.is_some() {
        return None;
    }
    let gossip = shared.gossip.get()?;
    let (nonce, answer) = shared.address_checks.start(addr)?;
    let ask = async {
        gossip
            .send_waiting(Command::CheckAddress { addr, nonce }, &shared.token)
            .await;
        answer.await.ok()
    };
    let answered = tokio::time::timeout(shared.config.probe_timeout, ask).await;
    shared.address_checks.end(&nonce);
    let answered = answered.ok().flatten();
    tracing::trace!(%addr, answered = answered.is_some(), "address check");
    answered
}

/// Handshakes with `addr` and asks it for its peers. The answer is checked: refused whole
/// if it lists more than [`MAX_PEERS_PER_ANSWER`] peers, invalid entries dropped.
pub(crate) async fn discover(
    shared: &Arc<Shared>,
    addr: SocketAddr,
) -> Result<(PeerInfo, Vec<PeerInfo>), NetError> {
    let conn = conn(shared, addr).await?;
    match conn.request(Payload::new(Message::GetPeers)).await?.message {
        Message::Peers { peers } => {
            let local = shared.membership.local();
            let peers = validate_peer_list(local.id, peers).map_err(|refused| {
                tracing::warn!(%addr, len = refused.len, max = MAX_PEERS_PER_ANSWER, "refusing a peer list over the cap");
                NetError::PeerListTooLong {
                    addr,
                    len: refused.len,
                    max: MAX_PEERS_PER_ANSWER,
                }
            })?;
            Ok((conn.remote(), peers))
        }
        other => Err(NetError::UnexpectedResponse {
            addr,
            request: "get_peers",
            got: other.kind(),
        }),
    }
}
