//! Verifying claimed addresses: a peer that only said `hello` on an inbound connection is
//! unverified (see [`Membership::claim`](crate::Membership::claim)) until this node dials the
//! address it claims and finds it there.
//!
//! Claims come from anyone, so the work they cause is bounded (see
//! [`NetConfig`](crate::NetConfig)):
//!
//! - at most `max_verify_pending` addresses wait for a dial, running dials included; one dial
//!   per address whatever the number of ids claiming it; a claim of a further address is not
//!   dialled (debug log), its entry stays unverified and the probe loop submits it again in a
//!   later round, until it is forgotten;
//! - at most `max_verifying` dials run at once, each done within `probe_timeout`;
//! - every dial is a task on the network's tracker and ends with the network's token.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Semaphore;
use voldisefs_proto::{Message, PeerInfo};

use crate::{Network, Payload};

/// The bounded set of addresses waiting for (or undergoing) a verification dial.
#[derive(Debug)]
pub(crate) struct Verifier {
    /// Cap: `max_pending` addresses.
    pending: Mutex<HashSet<SocketAddr>>,
    max_pending: usize,
    /// Dials running at once.
    running: Semaphore,
}

/// Whether an address was taken in for verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// Newly pending: dial it.
    Taken,
    /// Already pending: the dial under way answers this claim too.
    AlreadyPending,
    /// The pending set is full: the claim is not dialled now.
    Full,
}

impl Verifier {
    /// At most `max_running` dials at once and `max_pending` addresses waiting (at least one
    /// of each).
    pub(crate) fn new(max_running: usize, max_pending: usize) -> Self {
        Self {
            pending: Mutex::new(HashSet::new()),
            max_pending: max_pending.max(1),
            running: Semaphore::new(max_running.max(1)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<SocketAddr>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit(&self, addr: SocketAddr) -> Admit {
        let mut pending = self.lock();
        if pending.contains(&addr) {
            Admit::AlreadyPending
        } else if pending.len() >= self.max_pending {
            Admit::Full
        } else {
            pending.insert(addr);
            Admit::Taken
        }
    }
}

/// One pending address; frees its place when dropped (also when its task is cancelled).
struct Pending {
    net: Network,
    addr: SocketAddr,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.net.shared.verifier.lock().remove(&self.addr);
    }
}

impl Network {
    /// Dials `addr`, an address some inbound `hello` claimed, to find out who is there: if a
    /// node answers there (within `probe_timeout`) and advertises that very address, it is
    /// alive in the membership table; any unverified claim of another id at that address
    /// stays unverified (and is forgotten). Returns at once: the dial runs in a task, bounded
    /// as the module says; a claim beyond the bounds is dropped with a debug log.
    pub(crate) fn verify_claim(&self, addr: SocketAddr) {
        let token = self.shared_token();
        if token.is_cancelled() {
            return;
        }
        match self.shared.verifier.admit(addr) {
            Admit::Taken => {}
            Admit::AlreadyPending => return,
            Admit::Full => {
                tracing::debug!(%addr, max = self.shared.verifier.max_pending, "too many claimed addresses waiting for verification: not dialling this one now");
                return;
            }
        }
        let pending = Pending {
            net: self.clone(),
            addr,
        };
        self.shared.tracker.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = pending.net.verify(addr) => {}
            }
            drop(pending);
        });
    }

    /// One ping within `probe_timeout`; true if the node at `peer`'s address is `peer` and
    /// answered (the liveness probe loop and the gossip's direct check of a suspect).
    pub(crate) async fn answers_ping(&self, peer: PeerInfo) -> bool {
        let ping = async {
            let conn = self.conn(peer.addr).await.ok()?;
            if conn.remote().id != peer.id {
                return None;
            }
            conn.request(Payload::new(Message::Ping)).await.ok()
        };
        matches!(
            tokio::time::timeout(self.config().probe_timeout, ping).await,
            Ok(Some(Payload {
                message: Message::Pong,
                ..
            }))
        )
    }

    /// One verification dial of `addr`, once a running place is free.
    async fn verify(&self, addr: SocketAddr) {
        let Ok(_running) = self.shared.verifier.running.acquire().await else {
            return;
        };
        let check = async {
            // A fresh dial records what it finds (`Network::conn`); a pooled connection was
            // recorded when dialled, and the ping shows it still answers.
            let conn = self.conn(addr).await.ok()?;
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
        let found: Option<PeerInfo> = tokio::time::timeout(self.config().probe_timeout, check)
            .await
            .ok()
            .flatten();
        match found {
            Some(remote) if remote.addr == addr => {
                if self.membership().observe(remote) {
                    tracing::info!(peer = %remote.id, %addr, "verified claimed address");
                }
            }
            Some(remote) => {
                tracing::debug!(%addr, peer = %remote.id, advertised = %remote.addr, "node at claimed address advertises another one");
            }
            None => tracing::debug!(%addr, "claimed address did not answer in time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_addresses_are_bounded_and_deduplicated() {
        let v = Verifier::new(2, 3);
        let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(v.admit(addr(1)), Admit::Taken);
        assert_eq!(v.admit(addr(1)), Admit::AlreadyPending);
        assert_eq!(v.admit(addr(2)), Admit::Taken);
        assert_eq!(v.admit(addr(3)), Admit::Taken);
        assert_eq!(v.admit(addr(4)), Admit::Full);
        assert_eq!(v.lock().len(), 3);
        v.lock().remove(&addr(2));
        assert_eq!(v.admit(addr(4)), Admit::Taken);
    }
}
