//! The gossip task: reads the UDP socket (at most `max_datagrams_per_sec`), opens and screens
//! each datagram before foca sees it, delivers foca's timers in order, checks long suspects
//! with a direct ping over TCP, and turns foca's notifications into the membership table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::socket::Udp;
use foca::{Member, OwnedNotification, Timer};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::handle::Command;
use super::identity::GossipId;
use super::swim::{
    Effects, Suspicions, Swim, Timers, foca_config, needs_rescale, overflows, suspect_timeout,
};
use super::{check, screen};
use crate::config::GossipConfig;
use crate::datagram::{Datagrams, Opened};
use crate::membership::{PeerState, Reported};
use crate::pool;
use crate::shared::Shared;

/// Most suspect members checked over TCP at once (see [`Suspicions`]); beyond, a suspicion
/// timer goes to foca unchecked and a long suspicion waits for the next review.
const MAX_CHECKS: usize = 8;

/// The gossip task: the socket, foca and its timers, and the screen in front of foca.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    socket: Udp,
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
pub(crate) const VIEW_REFRESH: Duration = Duration::from_millis(50);

impl Driver {
    /// A driver for `swim` on `socket`, sealing with `datagrams`, screening in `mode`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        socket: Udp,
        datagrams: Datagrams,
        swim: Swim,
        settings: GossipConfig,
        mode: screen::Mode,
    ) -> Self {
        Driver {
            shared,
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
        }
    }

    /// Runs the task until the network's token is cancelled or the command queue closes.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let token = self.shared.token.clone();
        let mut buf = vec![0u8; 64 * 1024];
        let mut freeze = self.shared.freeze_watch();
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
                    if self.shared.is_isolated() {
                        continue;
                    }
                    self.shared.counters.datagram_in(len);
                    if matches!(self.mode, screen::Mode::Open)
                        && let Some(check) = check::parse(&buf[..len])
                    {
                        self.on_check(check, from, &mut fx);
                    } else {
                        match self.datagrams.open_packet(&mut buf[..len]) {
                            Ok(opened) => self.receive(opened, from, &mut fx),
                            Err(e) => tracing::trace!(%from, error = %e, "datagram dropped"),
                        }
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
    fn receive(&mut self, opened: Opened<'_>, from: SocketAddr, fx: &mut Effects) {
        let payload = opened.payload;
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
        // Open mode: the sender told of members this node does not know.
        let mut told_of_unknown = false;
        for claim in &screened.claims {
            // A member heard of from a third party counts once found there (`pool::verify`).
            if self.shared.membership.get(&claim.id).is_none() {
                told_of_unknown = true;
                pool::verify_claim(&self.shared, claim.addr);
            }
        }
        if overflows(&self.swim, &screened.packet, self.shared.config.max_peers) {
            tracing::debug!(%from, "gossip packet dropped: it would take the member table past its cap");
            return;
        }
        let local = self.shared.membership.local().id;
        // A member's time, for nodes comparing clocks (see `crate::peer_time`).
        if let Some(sender) = screened.sender.filter(|s| s.id != local)
            && self.shared.membership.get(&sender.id).is_some()
        {
            self.shared
                .peer_times
                .record(sender.id, opened.time, Instant::now());
        }
        if screened.about_me {
            self.last_self_claim = Some(Instant::now());
        }
        // A state change it causes shows in `fx.notes`: `apply` then drops the view, so the
        // next packet is screened against it.
        let seen = fx.notes.len();
        if let Err(e) = self.swim.handle_data(&screened.packet, &mut *fx) {
            tracing::trace!(%from, error = %e, "gossip packet refused");
        }
        // The sender knew a member this node did not: it may know more, so its list is pulled
        // now rather than at the next anti-entropy round (see `PullHint`). In open mode the
        // screen keeps such members from foca (their addresses are checked first), so no `MemberUp`
        // shows them: the claims do.
        let news = told_of_unknown
            || fx.notes[seen..].iter().any(|note| match note {
                OwnedNotification::MemberUp(id) => {
                    self.shared.membership.get(&id.peer().id).is_none()
                }
                _ => false,
            });
        if news && let Some(sender) = screened.sender.filter(|s| s.id != local) {
            self.shared.pull_hint.hint(sender.addr);
        }
    }

    /// An address check's datagram from `from` (open mode): a request is answered with this
    /// node's id and address, an answer handed to the check waiting for it.
    fn on_check(&mut self, check: check::Check, from: SocketAddr, fx: &mut Effects) {
        match check {
            check::Check::Request(nonce, asker) => {
                if let Some(answer) = check::answer(&nonce, self.shared.membership.local()) {
                    fx.raw.push((from, answer));
                }
                // The asker, as a TCP `hello` would: a claim, checked in turn, when it asks
                // from the address it names.
                if asker.addr == from && self.shared.membership.claim(asker) {
                    pool::verify_claim(&self.shared, asker.addr);
                }
            }
            check::Check::Answer(nonce, peer) => {
                if !self.shared.address_checks.answered(&nonce, from, peer) {
                    tracing::trace!(%from, "address check answer matches no check");
                }
            }
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
            Command::Verified(peer) => {
                let member = Member::alive(GossipId::new(peer, 0));
                if let Err(e) = self
                    .swim
                    .apply_many(std::iter::once(member), true, &mut *fx)
                {
                    tracing::debug!(error = %e, "verified member not applied");
                }
            }
            Command::CheckAddress { addr, nonce } => {
                let local = self.shared.membership.local();
                fx.raw.push((addr, check::request(&nonce, local)));
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
        let isolated = self.shared.is_isolated();
        for (to, packet) in fx.raw {
            if isolated {
                break;
            }
            match self.socket.send_to(&packet, to).await {
                Ok(_) => self.shared.counters.datagram_out(packet.len()),
                Err(e) => tracing::trace!(%to, error = %e, "address check send failed"),
            }
        }
        for (to, data) in fx.sends {
            if isolated {
                break;
            }
            let packet = self
                .datagrams
                .seal(self.shared.config.wall_clock.millis(), &data);
            match self.socket.send_to(&packet, to.addr).await {
                Ok(_) => self.shared.counters.datagram_out(packet.len()),
                Err(e) => tracing::trace!(to = %to.addr, error = %e, "gossip send failed"),
            }
        }
        for note in fx.notes {
            self.notice(note);
        }
        self.rescale();
    }

    fn notice(&mut self, note: OwnedNotification<GossipId>) {
        let membership = &self.shared.membership;
        match note {
            OwnedNotification::MemberUp(id) | OwnedNotification::Rename(_, id) => {
                let peer = id.peer();
                if self.shared.keyed.is_some() {
                    // Only holders of the network key speak on the gossip socket, but what
                    // they say of an address may be older than what this node saw there.
                    match membership.report(peer) {
                        Reported::Changed => {
                            tracing::info!(peer = %peer.id, addr = %peer.addr, "member up")
                        }
                        Reported::Unchanged => {}
                        Reported::Contested => pool::verify_claim(&self.shared, peer.addr),
                    }
                } else if membership.claim(peer) {
                    // Open mode: anyone can gossip; the address counts once dialled.
                    pool::verify_claim(&self.shared, peer.addr);
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
        let shared = self.shared.clone();
        self.shared.tracker.spawn(async move {
            let answered = pool::answers_ping(&shared, id.peer()).await;
            if let Some(gossip) = shared.gossip.get() {
                let checked = Command::Checked {
                    id,
                    incarnation,
                    answered,
                    then,
                };
                gossip.send_waiting(checked, &shared.token).await;
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
