//! Membership datagrams: how a gossip packet travels in a UDP datagram.
//!
//! ```text
//! open mode:  "VDG2" || sender time u64 BE (8) || payload
//! keyed mode: "VDG3" || sender run id (16) || counter u64 BE (8) || sender time u64 BE (8)
//!             || AES-256-GCM(payload) || tag (16)
//! ```
//!
//! The sender time is the sending node's own clock, in milliseconds since the unix epoch
//! ([`NetConfig::wall_clock`](crate::NetConfig::wall_clock)): every member that hears from it learns its time with no
//! request of its own (see [`crate::peer_time`]). Versions `VDG0` and `VDG1`, which had no
//! time, are refused as foreign.
//!
//! In keyed mode every packet is sealed with a key only holders of the network key can
//! derive: `HKDF-SHA256(salt = "voldisefs gossip v1", IKM = network key)`, expanded with the
//! sender's run id (random per node run) as info, so each sender has a key of its own and
//! its nonce `0^4 || counter` never repeats. The 36-byte header is the associated data, so the
//! time is authenticated with the payload. A
//! receiver refuses a packet it cannot open, and a counter it has already seen from that
//! sender or that lies more than [`REPLAY_WINDOW`] below the newest one (replays). Senders
//! it tracks are bounded by `max_senders` (the least recently heard one is forgotten first;
//! its packets then count as new, which a replay within the window can exploit only after a
//! flood of other authenticated senders, i.e. by a member).

use std::collections::HashMap;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Prk, Salt};

use crate::NetworkKey;

/// Leading bytes of an open-mode packet.
const OPEN_MAGIC: [u8; 4] = *b"VDG2";
/// Leading bytes of a keyed-mode packet.
const KEYED_MAGIC: [u8; 4] = *b"VDG3";
/// Length of the sender's time.
const TIME: usize = 8;
/// Length of an open packet's header (magic, time).
const OPEN_HEADER: usize = 4 + TIME;
/// Length of a keyed packet's header (magic, run id, counter, time).
const KEYED_HEADER: usize = 4 + 16 + 8 + TIME;
/// AES-GCM tag length.
const TAG: usize = 16;
/// Bytes a packet adds to its payload in keyed mode.
pub(crate) const KEYED_OVERHEAD: usize = KEYED_HEADER + TAG;
/// How far below the newest counter of a sender a packet may be and still be accepted (once).
pub(crate) const REPLAY_WINDOW: u64 = 64;

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DatagramError {
    /// Not a packet of this network's mode (wrong magic, or too short).
    #[error("not a membership packet of this network's mode")]
    Foreign,
    /// It does not open under the network key (forged, corrupted, or another network).
    #[error("packet does not authenticate")]
    Forged,
    /// A packet already seen, or too old.
    #[error("replayed or stale packet")]
    Replayed,
}

/// Seals outgoing and opens incoming membership packets (see the module docs).
pub(crate) struct Datagrams {
    keyed: Option<Keyed>,
}

impl std::fmt::Debug for Datagrams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datagrams")
            .field("keyed", &self.keyed.is_some())
            .finish()
    }
}

struct Keyed {
    prk: Prk,
    run: [u8; 16],
    own: LessSafeKey,
    counter: u64,
    senders: HashMap<[u8; 16], Sender>,
    max_senders: usize,
    /// Increases with every accepted packet: when each sender was last heard.
    clock: u64,
}

struct Sender {
    key: LessSafeKey,
    newest: u64,
    /// Bit i: counter `newest - i` was seen.
    seen: u64,
    heard: u64,
}

fn sender_key(prk: &Prk, run: &[u8; 16]) -> Option<LessSafeKey> {
    let info = [&run[..]];
    let okm = prk.expand(&info, &AES_256_GCM).ok()?;
    Some(LessSafeKey::new(UnboundKey::from(okm)))
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

impl Datagrams {
    /// Open mode: packets travel in the clear.
    pub(crate) fn open() -> Self {
        Self { keyed: None }
    }

    /// Keyed mode under `key`, for a node run identified by the random `run`, tracking at most
    /// `max_senders` senders for replay protection.
    pub(crate) fn keyed(key: &NetworkKey, run: [u8; 16], max_senders: usize) -> Option<Self> {
        let prk = Salt::new(HKDF_SHA256, b"voldisefs gossip v1").extract(key.as_bytes());
        let own = sender_key(&prk, &run)?;
        Some(Self {
            keyed: Some(Keyed {
                prk,
                run,
                own,
                counter: 0,
                senders: HashMap::new(),
                max_senders: max_senders.max(1),
                clock: 0,
            }),
        })
    }

    /// Bytes a packet adds to its payload.
    pub(crate) fn overhead(&self) -> usize {
        match self.keyed {
            Some(_) => KEYED_OVERHEAD,
            None => OPEN_HEADER,
        }
    }

    /// The datagram carrying `payload`, stamped with the sender's `time` (milliseconds since
    /// the unix epoch).
    pub(crate) fn seal(&mut self, time: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + self.overhead());
        match &mut self.keyed {
            None => {
                out.extend_from_slice(&OPEN_MAGIC);
                out.extend_from_slice(&time.to_be_bytes());
                out.extend_from_slice(payload);
            }
            Some(k) => {
                k.counter += 1;
                out.extend_from_slice(&KEYED_MAGIC);
                out.extend_from_slice(&k.run);
                out.extend_from_slice(&k.counter.to_be_bytes());
                out.extend_from_slice(&time.to_be_bytes());
                out.extend_from_slice(payload);
                let (header, body) = out.split_at_mut(KEYED_HEADER);
                // Sealing fails only for payloads beyond AES-GCM's limits (gigabytes).
                match k
                    .own
                    .seal_in_place_separate_tag(nonce(k.counter), Aad::from(&*header), body)
                {
                    Ok(tag) => out.extend_from_slice(tag.as_ref()),
                    Err(_) => out.clear(),
                }
            }
        }
        out
    }

    /// The payload of `datagram` and the time its sender stated, if it is an authentic packet
    /// not seen before.
    pub(crate) fn open_packet<'a>(
        &mut self,
        datagram: &'a mut [u8],
    ) -> Result<Opened<'a>, DatagramError> {
        let Some(k) = &mut self.keyed else {
            if datagram.len() < OPEN_HEADER || datagram[..4] != OPEN_MAGIC {
                return Err(DatagramError::Foreign);
            }
            return Ok(Opened {
                time: read_time(&datagram[4..OPEN_HEADER]),
                payload: &datagram[OPEN_HEADER..],
            });
        };
        if datagram.len() < KEYED_OVERHEAD || datagram[..4] != KEYED_MAGIC {
            return Err(DatagramError::Foreign);
        }
        let mut run = [0u8; 16];
        run.copy_from_slice(&datagram[4..20]);
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&datagram[20..28]);
        let counter = u64::from_be_bytes(counter);
        let time = read_time(&datagram[28..KEYED_HEADER]);
        if run == k.run {
            // Our own packet looped back, or a copy of it: never ours to process.
            return Err(DatagramError::Replayed);
        }
        // Replay check before the (cheap, but not free) decryption, then again after it.
        if let Some(s) = k.senders.get(&run) {
            if !fresh(s, counter) {
                return Err(DatagramError::Replayed);
            }
        }
        let (header, body) = datagram.split_at_mut(KEYED_HEADER);
        let opened = {
            let key_store;
            let key = match k.senders.get(&run) {
                Some(s) => &s.key,
                None => {
                    key_store = sender_key(&k.prk, &run).ok_or(DatagramError::Forged)?;
                    &key_store
                }
            };
            key.open_in_place(nonce(counter), Aad::from(&*header), body)
                .map_err(|_| DatagramError::Forged)?
                .len()
        };
        // Authentic: record the counter (a new sender takes a place, evicting the least
        // recently heard one when full).
        k.clock += 1;
        let clock = k.clock;
        if !k.senders.contains_key(&run) {
            if k.senders.len() >= k.max_senders {
                if let Some(oldest) = k
                    .senders
                    .iter()
                    .min_by_key(|(_, s)| s.heard)
                    .map(|(r, _)| *r)
                {
                    k.senders.remove(&oldest);
                }
            }
            let key = sender_key(&k.prk, &run).ok_or(DatagramError::Forged)?;
            k.senders.insert(
                run,
                Sender {
                    key,
                    newest: counter,
                    seen: 1,
                    heard: clock,
                },
            );
        } else if let Some(s) = k.senders.get_mut(&run) {
            record(s, counter);
            s.heard = clock;
        }
        Ok(Opened {
            time,
            payload: &body[..opened],
        })
    }
}

/// An opened datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Opened<'a> {
    /// The sender's own time, milliseconds since the unix epoch, as it stated it.
    pub(crate) time: u64,
    /// The gossip packet.
    pub(crate) payload: &'a [u8],
}

/// The big-endian u64 in `bytes` (eight of them; the callers slice exactly that).
fn read_time(bytes: &[u8]) -> u64 {
    let mut time = [0u8; TIME];
    time.copy_from_slice(&bytes[..TIME]);
    u64::from_be_bytes(time)
}

/// Whether `counter` is new for `s`: above its newest, or within the window and unseen.
fn fresh(s: &Sender, counter: u64) -> bool {
    if counter > s.newest {
        return true;
    }
    let age = s.newest - counter;
    age < REPLAY_WINDOW && s.seen & (1 << age) == 0
}

fn record(s: &mut Sender, counter: u64) {
    if counter > s.newest {
        let shift = counter - s.newest;
        s.seen = if shift >= REPLAY_WINDOW {
            0
        } else {
            s.seen << shift
        };
        s.seen |= 1;
        s.newest = counter;
    } else {
        s.seen |= 1 << (s.newest - counter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> NetworkKey {
        NetworkKey::from_hex(&hex::encode([b; 32])).unwrap()
    }

    fn pair() -> (Datagrams, Datagrams) {
        (
            Datagrams::keyed(&key(1), [1; 16], 8).unwrap(),
            Datagrams::keyed(&key(1), [2; 16], 8).unwrap(),
        )
    }

    #[test]
    fn open_mode_frames_and_refuses_foreign_bytes() {
        let mut d = Datagrams::open();
        let mut p = d.seal(1_800_000_000_123, b"hello");
        assert_eq!(&p[..4], b"VDG2");
        let opened = d.open_packet(&mut p).unwrap();
        assert_eq!(
            (opened.time, opened.payload),
            (1_800_000_000_123, &b"hello"[..])
        );
        // The versions before the time, a keyed packet, a header cut short: foreign.
        for foreign in [
            &b"VDG0xxxxxxxxxxxx"[..],
            b"VDG1xxxxxxxxxxxx",
            b"VDG3xxxxxxxxxxxx",
            b"VDG2xxxx",
        ] {
            assert_eq!(
                d.open_packet(&mut foreign.to_vec()),
                Err(DatagramError::Foreign)
            );
        }
    }

    #[test]
    fn keyed_packets_open_once_and_only_with_the_key() {
        let (mut a, mut b) = pair();
        let packet = a.seal(77, b"gossip");
        assert_eq!(packet.len(), 6 + KEYED_OVERHEAD);
        assert!(!packet.windows(6).any(|w| w == b"gossip"), "encrypted");
        let mut copy = packet.clone();
        let opened = b.open_packet(&mut copy).unwrap();
        assert_eq!((opened.time, opened.payload), (77, &b"gossip"[..]));
        assert_eq!(
            b.open_packet(&mut packet.clone()),
            Err(DatagramError::Replayed)
        );
        // Another network's key, an open-mode node, a flipped bit: refused.
        let mut other = Datagrams::keyed(&key(2), [3; 16], 8).unwrap();
        assert_eq!(
            other.open_packet(&mut packet.clone()),
            Err(DatagramError::Forged)
        );
        assert_eq!(
            Datagrams::open().open_packet(&mut packet.clone()),
            Err(DatagramError::Foreign)
        );
        // Every bit is authenticated, the time's included.
        for i in 4..packet.len() {
            let mut bad = a.seal(77, b"gossip");
            bad[i] ^= 1;
            assert!(b.open_packet(&mut bad).is_err(), "bit flipped at {i}");
        }
        // Its own packets are never processed.
        let mut own = a.seal(0, b"x");
        assert_eq!(a.open_packet(&mut own), Err(DatagramError::Replayed));
    }

    #[test]
    fn reordered_packets_within_the_window_are_accepted_once() {
        let (mut a, mut b) = pair();
        let packets: Vec<Vec<u8>> = (0..100).map(|_| a.seal(0, b"p")).collect();
        // Newest first, then the older ones: those within the window are accepted.
        assert!(b.open_packet(&mut packets[99].clone()).is_ok());
        for (i, p) in packets.iter().enumerate().take(99) {
            let accepted = b.open_packet(&mut p.clone()).is_ok();
            assert_eq!(accepted, 99 - i < REPLAY_WINDOW as usize, "packet {i}");
        }
        for p in &packets {
            assert!(b.open_packet(&mut p.clone()).is_err(), "a replay opened");
        }
    }

    #[test]
    fn tracked_senders_are_bounded() {
        let mut b = Datagrams::keyed(&key(1), [0; 16], 3).unwrap();
        for run in 1..=10u8 {
            let mut a = Datagrams::keyed(&key(1), [run; 16], 3).unwrap();
            assert!(b.open_packet(&mut a.seal(0, b"x")).is_ok());
        }
        assert_eq!(b.keyed.as_ref().unwrap().senders.len(), 3);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_never_open(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let (_, mut b) = pair();
            let mut bytes = bytes;
            prop_assert!(b.open_packet(&mut bytes).is_err());
            let mut open = Datagrams::open();
            let _ = open.open_packet(&mut bytes);
        }

        #[test]
        fn any_payload_and_time_round_trip(payload in prop::collection::vec(any::<u8>(), 0..1500), time in any::<u64>()) {
            let (mut a, mut b) = pair();
            let mut packet = a.seal(time, &payload);
            let opened = b.open_packet(&mut packet).unwrap();
            prop_assert_eq!(opened, Opened { time, payload: &payload[..] });
            let mut open = Datagrams::open();
            let mut packet = open.seal(time, &payload);
            let opened = open.open_packet(&mut packet).unwrap();
            prop_assert_eq!(opened, Opened { time, payload: &payload[..] });
        }
    }
}
