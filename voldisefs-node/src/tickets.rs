//! Download tickets: what lets a browser hand a download to its own download manager (or a
//! `<video>` element) instead of assembling it in page memory.
//!
//! The page proves access once through the API (password or read key, in a header), and gets
//! a random 256-bit ticket; `GET /download/{ticket}` then serves the file (or a collection's
//! archive) to a plain navigation, with `Range`, and with no header the browser would have to
//! add. The ticket is the capability: it is bound to one file, lives [`TICKET_TTL`] (so a
//! media element can seek and a browser can resume), and the node keeps at most
//! [`MAX_TICKETS`] of them (the oldest go first), in RAM only, wiped with the key they hold
//! when they expire, are evicted, or the node stops. A ticket holds the file's read key, never
//! a password (its type allows nothing else): whoever proved the password gets a ticket that
//! opens that one file, with no second Argon2id run.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use voldisefs_proto::FileId;

use voldisefs_crypto::ReadKey;

use crate::NodeError;

/// How long a ticket stays valid after it was issued.
pub const TICKET_TTL: Duration = Duration::from_secs(10 * 60);
/// Most tickets a node holds at once; issuing one more drops the oldest.
pub const MAX_TICKETS: usize = 1024;

/// What a ticket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TicketKind {
    /// A file's bytes.
    File,
    /// A collection, as a tar archive.
    Archive,
}

/// One ticket's grant.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) id: FileId,
    pub(crate) kind: TicketKind,
    /// The file's (or collection's) read key.
    pub(crate) key: ReadKey,
    issued: Instant,
}

/// The node's tickets (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Tickets {
    grants: Mutex<HashMap<String, Grant>>,
}

impl Tickets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Grant>> {
        self.grants.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues a ticket for `id` (64 random hex digits).
    pub(crate) fn issue(
        &self,
        id: FileId,
        kind: TicketKind,
        key: ReadKey,
        now: Instant,
    ) -> Result<String, NodeError> {
        let mut raw = [0u8; 32];
        SystemRandom::new()
            .fill(&mut raw)
            .map_err(|_| NodeError::Internal("the random number generator failed".into()))?;
        let ticket: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut grants = self.lock();
        grants.retain(|_, g| now.saturating_duration_since(g.issued) < TICKET_TTL);
        while grants.len() >= MAX_TICKETS {
            let oldest = grants
                .iter()
                .min_by_key(|(_, g)| g.issued)
                .map(|(t, _)| t.clone());
            match oldest {
                Some(t) => grants.remove(&t),
                None => break,
            };
        }
        grants.insert(
            ticket.clone(),
            Grant {
                id,
                kind,
                key,
                issued: now,
            },
        );
        Ok(ticket)
    }

    /// The grant of `ticket`, if it exists and has not expired.
    pub(crate) fn redeem(&self, ticket: &str, now: Instant) -> Option<Grant> {
        let mut grants = self.lock();
        let grant = grants.get(ticket)?;
        if now.saturating_duration_since(grant.issued) >= TICKET_TTL {
            grants.remove(ticket);
            return None;
        }
        Some(grant.clone())
    }

    /// Drops (and wipes) every expired ticket; returns how many. The node calls this every
    /// second, so a ticket's key leaves RAM within a second of its expiry even if no other
    /// ticket is issued or redeemed.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let mut grants = self.lock();
        let before = grants.len();
        grants.retain(|_, g| now.saturating_duration_since(g.issued) < TICKET_TTL);
        before - grants.len()
    }

    /// Drops every ticket (the node stops).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Tickets held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn access() -> ReadKey {
        ReadKey::from_bytes([7; 32])
    }

    #[test]
    fn tickets_expire_are_capped_and_cleared() {
        let tickets = Tickets::default();
        let start = Instant::now();
        let id = FileId::from_bytes([1; 32]);
        let t = tickets
            .issue(id, TicketKind::File, access(), start)
            .unwrap();
        assert_eq!(t.len(), 64);
        let grant = tickets.redeem(&t, start + Duration::from_secs(1)).unwrap();
        assert_eq!((grant.id, grant.kind), (id, TicketKind::File));
        // Reusable while valid (a media element seeks with several requests).
        assert!(tickets.redeem(&t, start + Duration::from_secs(2)).is_some());
        assert!(tickets.redeem(&t, start + TICKET_TTL).is_none());
        assert!(tickets.redeem("nope", start).is_none());
        // The cap drops the oldest.
        let first = tickets
            .issue(id, TicketKind::File, access(), start)
            .unwrap();
        for i in 0..MAX_TICKETS {
            tickets
                .issue(
                    id,
                    TicketKind::Archive,
                    access(),
                    start + Duration::from_millis(1 + i as u64),
                )
                .unwrap();
        }
        assert_eq!(tickets.len(), MAX_TICKETS);
        assert!(tickets.redeem(&first, start).is_none());
        // The sweep wipes expired tickets without any other ticket being touched.
        assert_eq!(tickets.sweep(start + Duration::from_secs(3)), 0);
        assert_eq!(
            tickets.sweep(start + TICKET_TTL + Duration::from_secs(2)),
            MAX_TICKETS
        );
        assert_eq!(tickets.len(), 0);
        tickets
            .issue(id, TicketKind::File, access(), start)
            .unwrap();
        tickets.clear();
        assert_eq!(tickets.len(), 0);
    }
}
