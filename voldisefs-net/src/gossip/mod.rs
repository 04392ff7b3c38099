//! SWIM gossip membership: [`foca`] (sans-IO) driven over a UDP socket on the peer port.
//!
//! foca decides whom to probe, when to suspect and when to declare a member down, and what
//! news to piggyback; this module owns everything else: the socket, the sealing of every
//! datagram ([`crate::datagram`]: encrypted and authenticated with the network key in keyed
//! mode, replays refused), the timer queue (foca needs its timers delivered in order), and
//! the translation of foca's notifications into the [`Membership`](crate::Membership) table
//! that placement, repair and the status pages read:
//!
//! - a member up: alive in keyed mode (only holders of the network key can speak on the
//!   socket); in open mode only a claim, verified by a TCP dial like an inbound `hello`;
//! - a member down: dead (it leaves placement until it is heard from again).
//!
//! Identities are (node id, address, generation): a member wrongly declared down (after a
//! partition, say) renews its identity with the next generation and rejoins by itself.

pub(crate) mod identity;
pub(crate) mod screen;
#[cfg(test)]
mod sim;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use foca::{Config, Foca, Member, NoCustomBroadcast, OwnedNotification, PostcardCodec, Timer};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use voldisefs_proto::PeerInfo;

pub(crate) use identity::GossipId;

use crate::config::GossipConfig;
use crate::datagram::Datagrams;
use crate::{Network, PeerState};

/// The foca instance this node runs.
pub(crate) type Swim = Foca<GossipId, PostcardCodec, SmallRng, NoCustomBroadcast>;

/// Requests to the gossip task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Announce this node to a member (a seed reached over TCP).
    Announce(PeerInfo),
    /// Members learned from a seed's peer list: taken as alive, to be probed.
    Learned(Vec<PeerInfo>),
    /// Tell the members this node leaves, then confirm.
    Leave(tokio::sync::oneshot::Sender<()>),
    /// The outcome of a direct check of a suspect member: before this node's own suspicion
    /// timer declares it down (`then`: that timer, handed to foca only if the check failed),
    /// or after it stayed suspect too long (see [`Suspicions`]).
    Checked {
        id: GossipId,
        incarnation: foca::Incarnation,
        answered: bool,
        then: Option<Timer<GossipId>>,
    },
}

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

/// Most suspect members checked over TCP at once (see [`Suspicions`]); beyond, a suspicion
/// timer goes to foca unchecked and a long suspicion waits for the next review.
const MAX_CHECKS: usize = 8;

/// Most commands waiting for the gossip task.
const COMMAND_QUEUE: usize = 64;

/// The handle the network keeps: where to send commands.
#[derive(Debug, Clone)]
pub(crate) struct Gossip {
    commands: mpsc::Sender<Command>,
}

impl Gossip {
    /// Queues `command` (dropped with a debug log when the queue is full or the task ended).
    pub(crate) fn send(&self, command: Command) {
        if let Err(e) = self.commands.try_send(command) {
            tracing::debug!(error = %e, "gossip command dropped");
        }
    }

    /// Hands `command` to the gossip task, waiting for room in its queue (not past shutdown).
    async fn send_waiting(&self, command: Command, token: &tokio_util::sync::CancellationToken) {
        tokio::select! {
            () = token.cancelled() => {}
            _ = self.commands.send(command) => {}
        }
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

/// Binds the gossip socket beside the peer listener (same address, UDP) and starts the task.
pub(crate) fn start(
    net: &Network,
    bind: SocketAddr,
    settings: GossipConfig,
) -> Result<Gossip, crate::NetError> {
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.set_nonblocking(true)?;
    let socket = UdpSocket::from_std(socket)?;
    let mut run = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut run)
        .map_err(|_| crate::NetError::Key("the system random generator failed".into()))?;
    let datagrams = match &net.shared.config.network_key {
        Some(key) => Datagrams::keyed(key, run, net.shared.config.max_peers)
            .ok_or_else(|| crate::NetError::Key("cannot derive the gossip key".into()))?,
        None => Datagrams::open(),
    };
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| crate::NetError::Key("the system random generator failed".into()))?;
    let local = net.local();
    let mode = if net.shared.config.network_key.is_some() {
        screen::Mode::Keyed
    } else {
        screen::Mode::Open
    };
    let config = foca_config(&settings, 1, datagrams.overhead());
    let swim = Foca::new(
        GossipId::new(local, 0),
        config,
        SmallRng::from_seed(seed),
        PostcardCodec,
    );
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let driver = Driver {
        net: net.clone(),
        socket,
        datagrams,
        swim,
        settings,
        timers: Timers::default(),
        members: 0,
        suspicions: Suspicions::default(),
        checking: std::collections::HashSet::new(),
        started: Instant::now(),
        last_review: Instant::now(),
        parked_gossip: None,
        mode,
        view: None,
        incarnation: 0,
        last_self_claim: None,
        window: (Instant::now(), 0),
    };
    net.shared.tracker.spawn(driver.run(rx));
    Ok(Gossip { commands: tx })
}

struct Driver {
    net: Network,
    socket: UdpSocket,
    datagrams: Datagrams,
    swim: Swim,
    settings: GossipConfig,
    timers: Timers,
    /// Members foca knew when its configuration was last scaled.
    members: usize,
    /// Members that stayed suspect too long, and the ones being checked now (at most
    /// [`MAX_CHECKS`]).
    suspicions: Suspicions,
    checking: std::collections::HashSet<[u8; 16]>,
    started: Instant,
    last_review: Instant,
    /// foca's periodic gossip timer, held while there is no news (see `unpark_gossip`).
    parked_gossip: Option<Timer<GossipId>>,
    /// Keyed or open: what the screen lets through (see [`screen`]).
    mode: screen::Mode,
    /// What the screen checks packets against, and when it was taken (`None`: to take).
    view: Option<(screen::View, Instant)>,
    /// This node's incarnation, as its last packet sent said.
    incarnation: foca::Incarnation,
    /// When a claim about this node (a suspicion, a down claim) last went through.
    last_self_claim: Option<Instant>,
    /// The current one-second window of datagram reads: its start, datagrams read in it.
    window: (Instant, u32),
}

/// How stale the screen's view of foca's table may be while packets keep arriving (it is
/// taken again after any change, at most this often: one pass over at most `max_peers`).
const VIEW_REFRESH: Duration = Duration::from_millis(50);

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let token = self.net.shared_token();
        let mut buf = vec![0u8; 64 * 1024];
        let mut freeze = self.net.shared.freeze_watch();
        loop {
            let next = self.timers.next_due();
            let mut fx = Effects::default();
            tokio::select! {
                () = token.cancelled() => return,
                () = freeze.frozen() => {
                    // A frozen node does nothing, gossip included, until thawed.
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = freeze.thawed() => {}
                    }
                    continue;
                }
                () = sleep_until(self.throttled_until()) => {
                    // A second's worth of datagrams was read: the window restarts.
                    self.window = (Instant::now(), 0);
                    continue;
                }
                received = self.socket.recv_from(&mut buf), if self.throttled_until().is_none() => {
                    let Ok((len, from)) = received else { continue };
                    if self.window.0.elapsed() >= Duration::from_secs(1) {
                        self.window = (Instant::now(), 0);
                    }
                    self.window.1 += 1;
                    if self.net.shared.is_isolated() {
                        continue;
                    }
                    self.net.shared.counters.datagram_in(len);
                    match self.datagrams.open_packet(&mut buf[..len]) {
                        Ok(payload) => self.receive(payload, from, &mut fx),
                        Err(e) => tracing::trace!(%from, error = %e, "datagram dropped"),
                    }
                }
                () = sleep_until(next) => {
                    for timer in self.timers.due(Instant::now()) {
                        // Before a suspect is declared down, one direct check over TCP: a
                        // member whose refutation was lost on the way is not killed.
                        let timer = match timer {
                            // Nothing to gossip: the round waits until there is news, instead
                            // of waking this task every `gossip_every` for nothing.
                            Timer::PeriodicGossip(_) if self.swim.updates_backlog() == 0 => {
                                self.parked_gossip = Some(timer);
                                continue;
                            }
                            Timer::ChangeSuspectToDown { member_id, incarnation, .. } => {
                                match self.check(member_id, incarnation, Some(timer)) {
                                    Some(timer) => timer,
                                    None => continue,
                                }
                            }
                            other => other,
                        };
                        if let Err(e) = self.swim.handle_timer(timer, &mut fx) {
                            tracing::debug!(error = %e, "gossip timer failed");
                        }
                    }
                }
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    self.command(command, &mut fx);
                }
            }
            // Piggybacked on whatever woke the task (a probe at least once a period), so
            // neither costs a wake-up of its own.
            if self.last_review.elapsed() >= self.settings.probe_period {
                self.last_review = Instant::now();
                self.review_suspects();
            }
            self.unpark_gossip(&mut fx);
            self.apply(fx).await;
        }
    }

    /// `None` while the current second's datagram budget lasts, else when the next second
    /// starts (see [`GossipConfig::max_datagrams_per_sec`]).
    fn throttled_until(&self) -> Option<Instant> {
        let (start, read) = self.window;
        (read >= self.settings.max_datagrams_per_sec.max(1)).then(|| start + Duration::from_secs(1))
    }

    /// Screens an opened datagram from `from` (see [`screen`]) and hands what passes to foca.
    fn receive(&mut self, payload: &[u8], from: SocketAddr, fx: &mut Effects) {
        let stale = self
            .view
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() >= VIEW_REFRESH);
        if stale {
            self.view = Some((
                screen::View::of(&self.swim, self.incarnation),
                Instant::now(),
            ));
        }
        let Some((view, _)) = &self.view else { return };
        let self_claims = self
            .last_self_claim
            .is_none_or(|at| at.elapsed() >= self.settings.probe_period);
        let screened = match screen::screen(payload, from, view, self.mode, self_claims) {
            Ok(screened) => screened,
            Err(e) => {
                tracing::debug!(%from, error = %e, "gossip packet dropped");
                return;
            }
        };
        if screened.changed > 0 {
            tracing::debug!(%from, changed = screened.changed, "gossip claims a sender may not make were dropped or tempered");
        }
        for claim in &screened.claims {
            // Open mode: a member heard of from a third party counts once dialled there.
            if self.net.membership().get(&claim.id).is_none() {
                self.net.verify_claim(claim.addr);
            }
        }
        if overflows(
            &self.swim,
            &screened.packet,
            self.net.shared.config.max_peers,
        ) {
            tracing::debug!(%from, "gossip packet dropped: it would take the member table past its cap");
            return;
        }
        if screened.about_me {
            self.last_self_claim = Some(Instant::now());
        }
        // A state change it causes shows in `fx.notes`: `apply` then drops the view, so the
        // next packet is screened against it.
        if let Err(e) = self.swim.handle_data(&screened.packet, &mut *fx) {
            tracing::trace!(%from, error = %e, "gossip packet refused");
        }
    }

    fn command(&mut self, command: Command, fx: &mut Effects) {
        match command {
            Command::Announce(peer) => {
                if let Err(e) = self.swim.announce(GossipId::new(peer, 0), &mut *fx) {
                    tracing::debug!(peer = %peer.id, error = %e, "gossip announce failed");
                }
            }
            Command::Learned(peers) => {
                let members = peers
                    .into_iter()
                    .map(|p| Member::alive(GossipId::new(p, 0)));
                if let Err(e) = self.swim.apply_many(members, false, &mut *fx) {
                    tracing::debug!(error = %e, "learned members not applied");
                }
            }
            Command::Checked {
                id,
                incarnation,
                answered,
                then,
            } => {
                self.checking.remove(&id.id);
                if answered {
                    tracing::debug!(peer = %id.peer().id, "suspect member answered a direct check: not declared down");
                } else if let Some(timer) = then {
                    if let Err(e) = self.swim.handle_timer(timer, &mut *fx) {
                        tracing::debug!(error = %e, "gossip timer failed");
                    }
                } else {
                    let down = Member::new(id, incarnation, foca::State::Down);
                    match self.swim.apply_many(std::iter::once(down), true, &mut *fx) {
                        Ok(()) => {
                            tracing::debug!(peer = %id.peer().id, "long-suspect member did not answer a direct check: down")
                        }
                        Err(e) => tracing::debug!(error = %e, "down not applied"),
                    }
                }
            }
            Command::Leave(done) => {
                if let Err(e) = self.swim.leave_cluster(&mut *fx) {
                    tracing::debug!(error = %e, "gossip leave failed");
                }
                let _ = done.send(());
            }
        }
    }

    /// Sends what foca asked to send, schedules its timers, and records its news.
    async fn apply(&mut self, fx: Effects) {
        let now = Instant::now();
        for (timer, after) in fx.timers {
            self.timers.push(now + after, timer);
        }
        if let Some(incarnation) = fx
            .sends
            .first()
            .and_then(|(_, data)| screen::sender_incarnation(data))
        {
            self.incarnation = incarnation;
        }
        if !fx.notes.is_empty() {
            self.view = None;
        }
        let isolated = self.net.shared.is_isolated();
        for (to, data) in fx.sends {
            if isolated {
                break;
            }
            let packet = self.datagrams.seal(&data);
            match self.socket.send_to(&packet, to.addr).await {
                Ok(_) => self.net.shared.counters.datagram_out(packet.len()),
                Err(e) => tracing::trace!(to = %to.addr, error = %e, "gossip send failed"),
            }
        }
        for note in fx.notes {
            self.notice(note);
        }
        self.rescale();
    }

    fn notice(&mut self, note: OwnedNotification<GossipId>) {
        let membership = self.net.membership();
        match note {
            OwnedNotification::MemberUp(id) | OwnedNotification::Rename(_, id) => {
                let peer = id.peer();
                if self.net.shared.keyed.is_some() {
                    // Only holders of the network key speak on the gossip socket.
                    if membership.observe(peer) {
                        tracing::info!(peer = %peer.id, addr = %peer.addr, "member up");
                    }
                } else if membership.claim(peer) {
                    // Open mode: anyone can gossip; the address counts once dialled.
                    self.net.verify_claim(peer.addr);
                }
            }
            OwnedNotification::MemberDown(id) => {
                let peer = id.peer();
                let current = membership.get(&peer.id);
                if current.is_some_and(|e| e.info.addr == peer.addr && e.state.is_live())
                    && membership.set_state(peer.id, PeerState::Dead)
                {
                    tracing::info!(peer = %peer.id, addr = %peer.addr, "member down");
                }
            }
            OwnedNotification::Rejoin(id) => {
                tracing::info!(
                    generation = id.generation,
                    "rejoined the gossip under a new generation"
                );
            }
            OwnedNotification::Active => tracing::debug!("gossip active"),
            OwnedNotification::Idle => tracing::debug!("gossip idle: no other member"),
            OwnedNotification::Defunct => {
                tracing::warn!("gossip defunct: declared down and cannot rejoin")
            }
        }
    }

    /// Hands the parked periodic gossip timer back to foca as soon as there is news: that
    /// round goes out at once and foca schedules the next one itself.
    fn unpark_gossip(&mut self, fx: &mut Effects) {
        if self.swim.updates_backlog() == 0 {
            return;
        }
        if let Some(timer) = self.parked_gossip.take()
            && let Err(e) = self.swim.handle_timer(timer, &mut *fx)
        {
            tracing::debug!(error = %e, "gossip timer failed");
        }
    }

    /// Starts a direct check of every member suspect for longer than the suspicion timeout
    /// plus a probe period (see [`Suspicions`]), at most [`MAX_CHECKS`] at once.
    fn review_suspects(&mut self) {
        let timeout = suspect_timeout(&self.settings, self.members)
            .saturating_add(self.settings.probe_period);
        let overdue = self
            .suspicions
            .overdue(&self.swim, self.started.elapsed(), timeout);
        for (id, incarnation) in overdue {
            let _ = self.check(id, incarnation, None);
        }
    }

    /// Starts a direct check of suspect `id` (a ping over TCP, within `probe_timeout`) whose
    /// outcome comes back as [`Command::Checked`] carrying `then`. Returns `then` instead when
    /// no check can start ([`MAX_CHECKS`] running, or one of `id` already): the caller goes on
    /// without it.
    fn check(
        &mut self,
        id: GossipId,
        incarnation: foca::Incarnation,
        then: Option<Timer<GossipId>>,
    ) -> Option<Timer<GossipId>> {
        if self.checking.len() >= MAX_CHECKS || !self.checking.insert(id.id) {
            return then;
        }
        let net = self.net.clone();
        self.net.shared.tracker.spawn(async move {
            let answered = net.answers_ping(id.peer()).await;
            if let Some(gossip) = net.gossip() {
                let checked = Command::Checked {
                    id,
                    incarnation,
                    answered,
                    then,
                };
                gossip.send_waiting(checked, &net.shared_token()).await;
            }
        });
        None
    }

    /// Scales suspicion and retransmissions to the network's size when it changed enough.
    fn rescale(&mut self) {
        let n = self.swim.num_members();
        if !needs_rescale(self.members, n) {
            return;
        }
        let config = foca_config(&self.settings, n, self.datagrams.overhead());
        match self.swim.set_config(config) {
            Ok(()) => self.members = n,
            Err(e) => tracing::debug!(error = %e, "gossip configuration not rescaled"),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
