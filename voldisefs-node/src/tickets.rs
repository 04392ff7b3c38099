//! Download tickets: what lets a browser hand a download to its own download manager (or a
//! `<video>` element) instead of assembling it in page memory.
//!
//! The page proves access once through the API (password or read key, in a header), and gets
//! a random 256-bit ticket; `GET /download/{ticket}` then serves the file (or a collection's
//! archive) to a plain navigation, with `Range`, and with no header the browser would have to
//! add. The ticket is the capability: it is bound to one file, lives [`TICKET_TTL`] (so a
//! media element can seek and a browser can resume). Tickets live in RAM only and are wiped
//! with the key they hold when they expire, are evicted, or the node stops. A ticket holds the file's read key, never
//! a password (its type allows nothing else): whoever proved the password gets a ticket that
//! opens that one file, with no second Argon2id run.
//!
//! **Bounds.** Tickets are accounted to the [`Client`] that asked for them (its IP address; a
//! whole IPv6 /64 counts as one client). A client holds at most [`MAX_TICKETS_PER_CLIENT`]
//! live tickets: one more drops that client's own oldest, never another's. The node holds at
//! most [`MAX_TICKETS`]: when full, one more drops the oldest ticket of the client holding the
//! most, the oldest of those if several hold as many (so another client's request evicts a
//! ticket of yours only when the table is full, which takes at least
//! `MAX_TICKETS / MAX_TICKETS_PER_CLIENT` = 16 clients, and nobody holds more than you).
//! Issuing costs a few passes over the table (at most [`MAX_TICKETS`] entries). Behind a reverse proxy every client has the proxy's address and shares its quota.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use voldisefs_proto::FileId;

use voldisefs_crypto::ReadKey;

use crate::NodeError;

/// How long a ticket stays valid after it was issued.
pub const TICKET_TTL: Duration = Duration::from_secs(10 * 60);
/// Most tickets a node holds at once; issuing one more drops the oldest ticket of the client
/// holding the most.
pub const MAX_TICKETS: usize = 1024;
/// Most tickets one client holds at once; issuing it one more drops its own oldest.
pub(crate) const MAX_TICKETS_PER_CLIENT: usize = 64;

/// Whom a ticket is accounted to: the IP address it was asked from, IPv4 whole (an
/// IPv4-mapped IPv6 address counts as its IPv4 address) and IPv6 by its /64 prefix (what one
/// host or network commonly gets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Client(IpAddr);

impl Client {
    /// What a request whose peer address is unknown counts as (all such share one quota).
    pub(crate) const UNKNOWN: Client = Client(IpAddr::V4(Ipv4Addr::UNSPECIFIED));

    /// The client asking from `ip`.
    pub(crate) fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Client(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client(IpAddr::V4(v4)),
                None => {
                    let mut octets = v6.octets();
                    octets[8..].fill(0);
                    Client(IpAddr::V6(Ipv6Addr::from(octets)))
                }
            },
        }
    }
}

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
    /// Who asked for it.
    client: Client,
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

    /// Issues `client` a ticket for `id` (64 random hex digits), dropping first what the
    /// bounds require (see the module docs).
    pub(crate) fn issue(
        &self,
        client: Client,
        id: FileId,
        kind: TicketKind,
        key: ReadKey,
        now: Instant,
    ) -> Result<String, NodeError> {
        let mut raw = [0u8; 32];
        voldisefs_proto::entropy::fill(&mut raw)
            .map_err(|_| NodeError::Internal("the random number generator failed".into()))?;
        let ticket: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let mut grants = self.lock();
        grants.retain(|_, g| now.saturating_duration_since(g.issued) < TICKET_TTL);
        // The client's own quota: its oldest ticket goes.
        while grants.values().filter(|g| g.client == client).count() >= MAX_TICKETS_PER_CLIENT {
            if !remove_oldest(&mut grants, |g| g.client == client) {
                break;
            }
        }
        // The node's: the oldest ticket of the client holding the most goes.
        while grants.len() >= MAX_TICKETS {
            let mut held: HashMap<Client, usize> = HashMap::new();
            for g in grants.values() {
                *held.entry(g.client).or_default() += 1;
            }
            let most = held.values().copied().max().unwrap_or(0);
            if !remove_oldest(&mut grants, |g| held.get(&g.client) == Some(&most)) {
                break;
            }
        }
        grants.insert(
            ticket.clone(),
            Grant {
                id,
                kind,
                key,
                issued: now,
                client,
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

/// Drops the oldest of the `grants` that `which` selects; whether there was one.
fn remove_oldest(grants: &mut HashMap<String, Grant>, which: impl Fn(&Grant) -> bool) -> bool {
    let oldest = grants
        .iter()
        .filter(|(_, g)| which(g))
        .min_by_key(|(_, g)| g.issued)
        .map(|(t, _)| t.clone());
    oldest.is_some_and(|t| grants.remove(&t).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    fn access() -> ReadKey {
        ReadKey::from_bytes([7; 32])
    }

    /// Client number `n`, each at an address of its own.
    fn client(n: u32) -> Client {
        Client::from_ip(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)))
    }

    const ID: FileId = FileId::from_bytes([1; 32]);

    fn issue(tickets: &Tickets, who: Client, at: Instant) -> String {
        tickets
            .issue(who, ID, TicketKind::File, access(), at)
            .unwrap()
    }

    #[test]
    fn tickets_expire_are_capped_and_cleared() {
        let tickets = Tickets::default();
        let start = Instant::now();
        let id = ID;
        let t = tickets
            .issue(client(0), id, TicketKind::File, access(), start)
            .unwrap();
        assert_eq!(t.len(), 64);
        let grant = tickets.redeem(&t, start + Duration::from_secs(1)).unwrap();
        assert_eq!((grant.id, grant.kind), (id, TicketKind::File));
        // Reusable while valid (a media element seeks with several requests).
        assert!(tickets.redeem(&t, start + Duration::from_secs(2)).is_some());
        assert!(tickets.redeem(&t, start + TICKET_TTL).is_none());
        assert!(tickets.redeem("nope", start).is_none());
        // The cap drops the oldest (here every client holds one ticket).
        let first = tickets
            .issue(client(0), id, TicketKind::File, access(), start)
            .unwrap();
        for i in 0..MAX_TICKETS {
            tickets
                .issue(
                    client(1 + i as u32),
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
        issue(&tickets, client(0), start);
        tickets.clear();
        assert_eq!(tickets.len(), 0);
    }

    /// Issue 25, point 9: one client asking for many tickets drops only its own.
    #[test]
    fn a_client_evicts_only_its_own_tickets() {
        let tickets = Tickets::default();
        let start = Instant::now();
        let victim = issue(&tickets, client(1), start);
        let attacker = client(2);
        let first = issue(&tickets, attacker, start + Duration::from_millis(1));
        let mut last = first.clone();
        for i in 0..1_100 {
            last = issue(&tickets, attacker, start + Duration::from_millis(2 + i));
        }
        let later = start + Duration::from_secs(1);
        assert!(
            tickets.redeem(&victim, later).is_some(),
            "the victim's ticket was evicted"
        );
        assert!(tickets.redeem(&first, later).is_none());
        assert!(tickets.redeem(&last, later).is_some());
        assert_eq!(tickets.len(), 1 + MAX_TICKETS_PER_CLIENT);
    }

    /// A full table drops from whoever holds the most: a client holding one ticket keeps it
    /// while others hold more.
    #[test]
    fn a_full_table_evicts_from_the_client_holding_the_most() {
        let tickets = Tickets::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let clients = u32::try_from(MAX_TICKETS / MAX_TICKETS_PER_CLIENT).unwrap();
        let mut ms = 0;
        let mut oldest_of_first = None;
        for c in 0..clients {
            for _ in 0..MAX_TICKETS_PER_CLIENT {
                ms += 1;
                let t = issue(&tickets, client(100 + c), at(ms));
                oldest_of_first.get_or_insert(t);
            }
        }
        assert_eq!(tickets.len(), MAX_TICKETS);
        // The victim asks last: the table is full, the first client's oldest goes.
        let victim = issue(&tickets, client(1), at(ms + 1));
        assert_eq!(tickets.len(), MAX_TICKETS);
        assert!(
            tickets
                .redeem(oldest_of_first.as_ref().unwrap(), at(ms + 2))
                .is_none()
        );
        // Many more clients with one ticket each: the big holders pay, the victim does not.
        for c in 0..500 {
            issue(&tickets, client(1_000 + c), at(ms + 3 + u64::from(c)));
        }
        assert_eq!(tickets.len(), MAX_TICKETS);
        assert!(tickets.redeem(&victim, at(ms + 1_000)).is_some());
    }

    #[test]
    fn an_ipv6_client_is_its_64_prefix() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Client::from_ip(a), Client::from_ip(b));
        assert_ne!(Client::from_ip(a), Client::from_ip(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(Client::from_ip(mapped), Client::from_ip(v4));
    }
}
