//! Address checks over UDP (open mode): is the member a third party named really at the
//! address it was named with?
//!
//! In open mode a member heard of from a third party counts once this node found it at its
//! address. A TCP dial (connection, `hello` both ways, a ping) proves that, at a cost that adds
//! up when a whole network joins at once: 200 nodes make about 40,000 such dials, each of which
//! also makes the dialled node dial back. This check proves the same with two datagrams on the
//! gossip socket, which shares the peer port:
//!
//! ```text
//! request: "VDC2" || nonce (16) || node id (16) || advertised address (UTF-8 text)
//!          || zero padding, CHECK_LEN bytes in all
//! answer:  "VDA2" || nonce (16) || node id (16) || advertised address (UTF-8 text)
//! ```
//!
//! The node at the address answers with its id and the address it advertises. The request
//! names its sender too, as a TCP `hello` does: the node asked learns of the asker, as a claim
//! that counts once its own check of the asker's address found it there (only a request sent
//! from the address it names is taken as a claim). The checker
//! takes an answer only from the very address it asked, carrying the nonce it sent (16 random
//! bytes, so nobody off the path can forge one), and the member only when the advertised
//! address is the one named. A TCP dial proves no more in open mode: both show whoever
//! answers at that address, and what it says it is.
//!
//! Bounds: an answer is never longer than the request that caused it ([`CHECK_LEN`]), so a
//! request sent with a forged source address reflects no more bytes than it cost; requests
//! are read within the gossip's datagram budget; at most [`MAX_PENDING_CHECKS`] checks wait
//! for an answer, each for `probe_timeout`. A check that gets no answer falls back to the TCP
//! dial (`pool.rs`). Keyed mode has no checks: its members are authenticated by the key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;
use voldisefs_proto::{NodeId, PeerInfo};

/// Leading bytes of a request.
const REQUEST_MAGIC: [u8; 4] = *b"VDC2";
/// Leading bytes of an answer.
const ANSWER_MAGIC: [u8; 4] = *b"VDA2";
/// Length of a check's nonce.
const NONCE: usize = 16;
/// Length of every request, and the most an answer may be.
pub(crate) const CHECK_LEN: usize = 96;
/// Most checks waiting for an answer at once; further ones fall back to the TCP dial.
pub(crate) const MAX_PENDING_CHECKS: usize = 256;

/// A check datagram, parsed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Someone asks who this node is, and says who it is.
    Request([u8; NONCE], PeerInfo),
    /// The answer to a request: the nonce it carried, and who answered.
    Answer([u8; NONCE], PeerInfo),
}

/// `magic || nonce || local's id || local's address`.
fn encode(magic: [u8; 4], nonce: &[u8; NONCE], local: PeerInfo) -> Vec<u8> {
    let addr = local.addr.to_string();
    let mut out = Vec::with_capacity(CHECK_LEN);
    out.extend_from_slice(&magic);
    out.extend_from_slice(nonce);
    out.extend_from_slice(local.id.as_bytes());
    out.extend_from_slice(addr.as_bytes());
    out
}

/// The request carrying `nonce`, from `local`, padded to [`CHECK_LEN`].
pub(crate) fn request(nonce: &[u8; NONCE], local: PeerInfo) -> Vec<u8> {
    let mut out = encode(REQUEST_MAGIC, nonce, local);
    out.resize(CHECK_LEN, 0);
    out
}

/// The answer to the request carrying `nonce`, from `local`; `None` if it would be longer than
/// the request (it never is: an address's text is at most 47 bytes).
pub(crate) fn answer(nonce: &[u8; NONCE], local: PeerInfo) -> Option<Vec<u8>> {
    let out = encode(ANSWER_MAGIC, nonce, local);
    (out.len() <= CHECK_LEN).then_some(out)
}

/// The node id and address after a check's nonce (the address's text ends at the first zero
/// byte of a request's padding).
fn peer(rest: &[u8]) -> Option<PeerInfo> {
    let (id, addr) = rest.split_first_chunk::<16>()?;
    let end = addr.iter().position(|&b| b == 0).unwrap_or(addr.len());
    let (addr, padding) = addr.split_at(end);
    if padding.iter().any(|&b| b != 0) {
        return None;
    }
    let addr: SocketAddr = std::str::from_utf8(addr).ok()?.parse().ok()?;
    let id = NodeId::from_uuid(uuid::Uuid::from_bytes(*id));
    Some(PeerInfo { id, addr })
}

/// `datagram` as a check, if it is one (well formed); `None` for anything else.
pub(crate) fn parse(datagram: &[u8]) -> Option<Check> {
    let (magic, rest) = datagram.split_first_chunk::<4>()?;
    let (nonce, rest) = rest.split_first_chunk::<NONCE>()?;
    match *magic {
        REQUEST_MAGIC if datagram.len() == CHECK_LEN => Some(Check::Request(*nonce, peer(rest)?)),
        ANSWER_MAGIC if datagram.len() <= CHECK_LEN => Some(Check::Answer(*nonce, peer(rest)?)),
        _ => None,
    }
}

/// Checks waiting for their answer: at most [`MAX_PENDING_CHECKS`].
#[derive(Debug, Default)]
pub(crate) struct Checks {
    pending: Mutex<HashMap<[u8; NONCE], Waiting>>,
}

#[derive(Debug)]
struct Waiting {
    addr: SocketAddr,
    answer: oneshot::Sender<PeerInfo>,
}

impl Checks {
    /// Starts a check of `addr`: its nonce (fresh, random) and where its answer arrives;
    /// `None` when [`MAX_PENDING_CHECKS`] are waiting or the system's random generator failed.
    pub(crate) fn start(
        &self,
        addr: SocketAddr,
    ) -> Option<([u8; NONCE], oneshot::Receiver<PeerInfo>)> {
        let nonce: [u8; NONCE] = voldisefs_proto::entropy::bytes().ok()?;
        let (tx, rx) = oneshot::channel();
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.len() >= MAX_PENDING_CHECKS {
            return None;
        }
        pending.insert(nonce, Waiting { addr, answer: tx });
        Some((nonce, rx))
    }

    /// Ends the check with `nonce` (answered or not).
    pub(crate) fn end(&self, nonce: &[u8; NONCE]) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(nonce);
    }

    /// An answer carrying `nonce` came from `from`: it answers the check with that nonce if
    /// that check asked `from`. Returns whether it did.
    pub(crate) fn answered(&self, nonce: &[u8; NONCE], from: SocketAddr, peer: PeerInfo) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.get(nonce) {
            Some(waiting) if waiting.addr == from => {}
            _ => return false,
        }
        pending
            .remove(nonce)
            .is_some_and(|waiting| waiting.answer.send(peer).is_ok())
    }

    /// Checks waiting now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer(port: u16) -> PeerInfo {
        PeerInfo {
            id: NodeId::from_uuid(uuid::Uuid::from_bytes([7; 16])),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[test]
    fn requests_and_answers_round_trip_and_an_answer_is_never_longer() {
        let nonce = [3; NONCE];
        let req = request(&nonce, peer(4000));
        assert_eq!(req.len(), CHECK_LEN);
        assert_eq!(parse(&req), Some(Check::Request(nonce, peer(4000))));
        let v6 = PeerInfo {
            addr: "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
                .parse()
                .unwrap(),
            ..peer(1)
        };
        for local in [peer(4100), v6] {
            let ans = answer(&nonce, local).unwrap();
            assert!(ans.len() <= req.len(), "{} bytes", ans.len());
            assert_eq!(parse(&ans), Some(Check::Answer(nonce, local)));
        }
        // A request cut short or padded out, gossip, junk: not checks.
        assert_eq!(parse(&req[..CHECK_LEN - 1]), None);
        assert_eq!(parse(&[req.clone(), vec![0]].concat()), None);
        assert_eq!(parse(b"VDG2xxxxxxxxxxxxxxxxxxxx"), None);
        let mut bad = answer(&nonce, peer(1)).unwrap();
        bad.truncate(bad.len() - 1);
        bad.push(b'x');
        assert_eq!(parse(&bad), None, "an address that does not parse");
    }

    #[test]
    fn only_the_asked_address_with_the_nonce_answers_a_check() {
        let checks = Checks::default();
        let asked = peer(4100).addr;
        let (nonce, mut rx) = checks.start(asked).unwrap();
        // Another address, another nonce: nothing.
        assert!(!checks.answered(&nonce, peer(4101).addr, peer(4100)));
        assert!(!checks.answered(&[0; NONCE], asked, peer(4100)));
        assert!(rx.try_recv().is_err());
        // The asked address with the nonce: answered once.
        assert!(checks.answered(&nonce, asked, peer(4100)));
        assert_eq!(rx.try_recv().unwrap(), peer(4100));
        assert!(!checks.answered(&nonce, asked, peer(4100)));
        assert_eq!(checks.len(), 0);
    }

    #[test]
    fn pending_checks_are_bounded_and_end_frees_a_place() {
        let checks = Checks::default();
        let mut nonces = Vec::new();
        for i in 0..MAX_PENDING_CHECKS {
            let port = u16::try_from(i).unwrap();
            nonces.push(checks.start(peer(port).addr).unwrap().0);
        }
        assert!(checks.start(peer(9).addr).is_none());
        checks.end(&nonces[0]);
        assert!(checks.start(peer(9).addr).is_some());
        assert_eq!(checks.len(), MAX_PENDING_CHECKS);
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
