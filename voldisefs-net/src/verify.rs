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
//!
//! This file holds the bounds ([`Verifier`]); the dials themselves go through the connection
//! pool, which records what they find, so they live beside it (`pool.rs`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Semaphore;

/// The bounded set of addresses waiting for (or undergoing) a verification dial.
#[derive(Debug)]
pub(crate) struct Verifier {
    /// Cap: `max_pending` addresses.
    pending: Mutex<HashSet<SocketAddr>>,
    pub(crate) max_pending: usize,
    /// Dials running at once.
    pub(crate) running: Semaphore,
}

/// Whether an address was taken in for verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
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

    /// Takes `addr` in as pending, unless it already is or the pending set is full.
    pub(crate) fn admit(&self, addr: SocketAddr) -> Admit {
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

    /// Frees the place of `addr`, whose dial ended (or was cancelled).
    pub(crate) fn release(&self, addr: SocketAddr) {
        self.lock().remove(&addr);
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
