//! The foca instance this node runs ([`Swim`]) and what the driver and the simulation feed it:
//! its configuration scaled to the network's size, the packet cap of its member table, the
//! review of long suspicions, and the effects and timers of each call.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use foca::{Config, Foca, NoCustomBroadcast, OwnedNotification, PostcardCodec, Timer};
use rand::rngs::SmallRng;
use tokio::time::Instant;

use super::identity::GossipId;
use crate::config::GossipConfig;

/// The foca instance this node runs.
pub(crate) type Swim = Foca<GossipId, PostcardCodec, SmallRng, NoCustomBroadcast>;

/// More members than one membership datagram can name (1,400 bytes at about 30 per member).
const MAX_MEMBERS_PER_PACKET: usize = 64;

/// Whether handling `payload` could take foca's table (every member it knows, down ones
/// included) past `cap`: it names members foca does not know, more than the room left. foca
/// itself has no bound, so the driver drops such packets: memory stays bounded whatever
/// anyone gossips (news of members beyond the cap is dropped until down ones are forgotten).
pub(crate) fn overflows(swim: &Swim, payload: &[u8], cap: usize) -> bool {
    use bytes::Buf;
    use foca::Codec;
    let len = swim.iter_membership_state().len();
    if len + MAX_MEMBERS_PER_PACKET <= cap {
        return false;
    }
    let mut buf = payload;
    let mut codec = PostcardCodec;
    let Ok(header) = Codec::<GossipId>::decode_header(&mut codec, &mut buf) else {
        return false; // foca refuses it anyway
    };
    let mut named = vec![header.src.id];
    if buf.remaining() >= 2 {
        let n = buf.get_u16();
        for _ in 0..n {
            match Codec::<GossipId>::decode_member(&mut codec, &mut buf) {
                Ok(m) => named.push(m.id().id),
                Err(_) => break,
            }
        }
    }
    let known: std::collections::HashSet<[u8; 16]> = swim
        .iter_membership_state()
        .map(|m| m.id().id)
        .chain(std::iter::once(swim.identity().id))
        .collect();
    let new: std::collections::HashSet<&[u8; 16]> =
        named.iter().filter(|id| !known.contains(*id)).collect();
    len + new.len() > cap
}

/// Members foca holds as suspect, with the incarnation and the time (on this node's clock) it
/// first saw them so.
///
/// foca lets only the member whose probe failed declare a node down; everyone else waits for
/// that news. A node that misses it (news is sent a bounded number of times) would keep a dead
/// member suspect, and live for placement, until its own round-robin probe reaches it, which
/// takes up to N probe periods. So the driver checks a member that stays suspect at the same
/// incarnation for longer than the suspicion timeout plus a probe period with a direct ping
/// over TCP, and declares it down (and spreads that) only if the ping fails too. A member that
/// refuted, by a higher incarnation this node missed, answers the ping and stays.
///
/// Cap: one entry per member foca holds (at most `max_peers`).
#[derive(Debug, Default)]
pub(crate) struct Suspicions {
    seen: HashMap<[u8; 16], (GossipId, foca::Incarnation, Duration)>,
}

impl Suspicions {
    /// Takes in foca's table at `now` and returns the members suspect at one incarnation for at
    /// least `timeout`; their clock restarts, so a member is returned at most once per `timeout`.
    pub(crate) fn overdue(
        &mut self,
        swim: &Swim,
        now: Duration,
        timeout: Duration,
    ) -> Vec<(GossipId, foca::Incarnation)> {
        let mut suspect = HashMap::new();
        for m in swim.iter_membership_state() {
            if m.state() == foca::State::Suspect {
                suspect.insert(m.id().id, (*m.id(), m.incarnation()));
            }
        }
        self.seen
            .retain(|key, (id, inc, _)| suspect.get(key).is_some_and(|(i, n)| i == id && n == inc));
        let mut due = Vec::new();
        for (key, (id, inc)) in suspect {
            let since = &mut self.seen.entry(key).or_insert((id, inc, now)).2;
            if now.saturating_sub(*since) >= timeout {
                *since = now;
                due.push((id, inc));
            }
        }
        due
    }
}

/// How long a suspect member has to refute before it is down, for `members` members:
/// `suspect_after` times `max(1, log10 N)`.
pub(crate) fn suspect_timeout(settings: &GossipConfig, members: usize) -> Duration {
    let n = (members + 1) as f64;
    settings.suspect_after.mul_f64(n.log10().max(1.0))
}

/// foca's configuration for `members` known members under `settings`: suspicion and
/// retransmissions scale with `log10` of the network's size.
pub(crate) fn foca_config(settings: &GossipConfig, members: usize, overhead: usize) -> Config {
    let n = (members + 1) as f64;
    // Each piece of news is sent about 4 log10(N) times, and at least as often as for a network
    // of a hundred: a node that has just joined does not know yet how large its network is.
    let transmissions = (4.0 * n.log10()).clamp(8.0, 255.0) as u8;
    Config {
        probe_period: settings.probe_period,
        probe_rtt: settings.probe_rtt.min(
            settings
                .probe_period
                .saturating_sub(Duration::from_millis(1)),
        ),
        num_indirect_probes: NonZeroUsize::new(settings.indirect_probes.max(1))
            .unwrap_or(NonZeroUsize::MIN),
        max_transmissions: NonZeroU8::new(transmissions).unwrap_or(NonZeroU8::MIN),
        suspect_to_down_after: suspect_timeout(settings, members),
        remove_down_after: Some(Duration::from_secs(10 * 60)),
        max_packet_size: NonZeroUsize::new(settings.max_packet.saturating_sub(overhead).max(256))
            .unwrap_or(NonZeroUsize::MIN),
        notify_down_members: true,
        periodic_announce: Some(foca::PeriodicParams {
            frequency: settings.announce_every,
            num_members: NonZeroUsize::MIN,
        }),
        // A member this node holds as down answers an announcement with a message that makes
        // this node tell it "you are down", after which it rejoins under a renewed identity:
        // so views that diverged during a partition (each side marked the other down) mend
        // at a few members per round, whatever the network's size.
        periodic_announce_to_down_members: Some(foca::PeriodicParams {
            frequency: settings.announce_every,
            num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        }),
        periodic_gossip: Some(foca::PeriodicParams {
            frequency: settings.gossip_every,
            num_members: NonZeroUsize::new(settings.gossip_fanout.max(1))
                .unwrap_or(NonZeroUsize::MIN),
        }),
    }
}

/// Whether foca's configuration, last scaled for `last` members, should be scaled again for
/// `now`: when the count changed by more than a quarter (at least by one).
pub(crate) fn needs_rescale(last: usize, now: usize) -> bool {
    now.abs_diff(last) * 4 > last.max(3)
}

/// The pause before the next anti-entropy round after one that paused `last`: `sync_every`
/// again when it `learned` a member (the network is still settling), else twice as long, up to
/// 30 times `sync_every`. So a node pulls member lists often while a network forms and rarely
/// once it is stable.
pub(crate) fn sync_pause(last: Duration, learned: bool, settings: &GossipConfig) -> Duration {
    let base = settings.sync_every;
    if learned || last.is_zero() {
        base
    } else {
        last.saturating_mul(2).min(base.saturating_mul(30))
    }
}

/// What one call into foca asked for.
#[derive(Default)]
pub(crate) struct Effects {
    pub(crate) sends: Vec<(GossipId, Vec<u8>)>,
    pub(crate) timers: Vec<(Timer<GossipId>, Duration)>,
    pub(crate) notes: Vec<OwnedNotification<GossipId>>,
    /// Datagrams to send as they are, outside foca (address checks, see `check.rs`).
    pub(crate) raw: Vec<(std::net::SocketAddr, Vec<u8>)>,
}

impl foca::Runtime<GossipId> for Effects {
    fn notify(&mut self, notification: foca::Notification<'_, GossipId>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: GossipId, data: &[u8]) {
        self.sends.push((to, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<GossipId>, after: Duration) {
        self.timers.push((event, after));
    }
}

/// foca's timers, delivered in due order (then in submission order).
#[derive(Default)]
pub(crate) struct Timers {
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    events: HashMap<u64, Timer<GossipId>>,
    seq: u64,
}

impl Timers {
    pub(crate) fn push(&mut self, at: Instant, timer: Timer<GossipId>) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, timer);
    }

    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _))| *at)
    }

    /// The timers due at `now`, in order.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Timer<GossipId>> {
        let mut out = Vec::new();
        while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at > now {
                break;
            }
            self.queue.pop();
            if let Some(timer) = self.events.remove(&seq) {
                out.push(timer);
            }
        }
        out
    }
}
