//! A deterministic simulation of the gossip membership: many foca instances with this
//! module's identity and configuration, a virtual clock, and a network that delays, drops
//! and partitions packets, all driven by seeded generators (the same run every time).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use foca::{Foca, OwnedNotification, PostcardCodec, Timer};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use voldisefs_proto::{NodeId, PeerInfo};

use super::GossipId;
use super::swim::{
    Effects, Suspicions, Swim, foca_config, needs_rescale, suspect_timeout, sync_pause,
};
use crate::config::GossipConfig;

/// Bytes the keyed envelope adds (so packets are as large as on the wire).
const OVERHEAD: usize = crate::datagram::KEYED_OVERHEAD;

enum Event {
    /// A packet and the address it came from.
    Data(SocketAddr, Vec<u8>),
    Timer(Timer<GossipId>),
    /// Anti-entropy: the node asks a random member for its member list (over TCP, in the
    /// driver: `get_peers`) and takes in what it did not know.
    Sync,
    /// The driver's review of long-suspect members: each is checked directly (a TCP ping in
    /// the driver, which reaches it unless it crashed or a cut is in the way) and declared down
    /// if that fails.
    Review,
}

struct Sim {
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    events: HashMap<u64, Event>,
    nodes: Vec<Swim>,
    ids: Vec<GossipId>,
    by_addr: HashMap<SocketAddr, usize>,
    /// Crashed nodes: they neither receive nor send.
    crashed: Vec<bool>,
    /// Nodes cut off from everyone (both directions).
    cut: Vec<bool>,
    /// Probability that a packet is lost.
    loss: f64,
    net_rng: SmallRng,
    /// Per node: the members it saw go down (id index -> time).
    downs: Vec<BTreeMap<usize, Duration>>,
    settings: GossipConfig,
    /// Per node: the member count its configuration was last scaled for.
    scaled: Vec<usize>,
    /// Per node: the pause before its next anti-entropy round.
    pause: Vec<Duration>,
    packets: u64,
    bytes: u64,
    /// Per node: members that stayed suspect too long (as the driver keeps them).
    suspicions: Vec<Suspicions>,
    /// Per node: the periodic gossip timer, held while there is no news (as in the driver).
    parked: Vec<Option<Timer<GossipId>>>,
    /// Per node, as the driver keeps them: the screen's view and when it was taken, its own
    /// incarnation, when a claim about it last went through.
    views: Vec<Option<(super::screen::View, Duration)>>,
    incarnations: Vec<foca::Incarnation>,
    self_claims: Vec<Option<Duration>>,
}

fn peer(i: usize) -> PeerInfo {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    PeerInfo {
        id: NodeId::from_uuid(uuid::Uuid::from_bytes(id)),
        addr: SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4100)),
    }
}

impl Sim {
    fn new(n: usize, seed: u64) -> Self {
        let mut sim = Self::build(n, seed);
        // The first node runs anti-entropy too (the others start it when they join).
        let first = sim.settings.sync_every;
        sim.push(first, 0, Event::Sync);
        for i in 0..n {
            let at = sim.settings.probe_period.mul_f64(i as f64 / n as f64);
            sim.push(at, i, Event::Review);
        }
        sim
    }

    fn build(n: usize, seed: u64) -> Self {
        let settings = GossipConfig::default();
        let ids: Vec<GossipId> = (0..n).map(|i| GossipId::new(peer(i), 0)).collect();
        let nodes = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                Foca::new(
                    *id,
                    foca_config(&settings, 1, OVERHEAD),
                    SmallRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9)),
                    PostcardCodec,
                )
            })
            .collect();
        Self {
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            nodes,
            by_addr: ids.iter().enumerate().map(|(i, id)| (id.addr, i)).collect(),
            ids,
            crashed: vec![false; n],
            cut: vec![false; n],
            loss: 0.0,
            net_rng: SmallRng::seed_from_u64(seed),
            downs: vec![BTreeMap::new(); n],
            settings,
            scaled: vec![0; n],
            pause: vec![Duration::ZERO; n],
            packets: 0,
            suspicions: (0..n).map(|_| Suspicions::default()).collect(),
            parked: vec![None; n],
            bytes: 0,
            views: vec![None; n],
            incarnations: vec![0; n],
            self_claims: vec![None; n],
        }
    }

    fn push(&mut self, at: Duration, node: usize, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, node)));
        self.events.insert(self.seq, event);
    }

    /// Routes what node `from` asked for: packets (maybe lost, 1–3 ms late), timers, news.
    fn drain(&mut self, from: usize, fx: Effects) {
        if let Some(incarnation) = fx
            .sends
            .first()
            .and_then(|(_, data)| super::screen::sender_incarnation(data))
        {
            self.incarnations[from] = incarnation;
        }
        if !fx.notes.is_empty() {
            self.views[from] = None;
        }
        let source = self.ids[from].addr;
        for (to, data) in fx.sends {
            let Some(&dst) = self.by_addr.get(&to.addr) else {
                continue;
            };
            self.packets += 1;
            self.bytes += (data.len() + OVERHEAD) as u64;
            assert!(data.len() + OVERHEAD <= self.settings.max_packet);
            let lost = self.loss > 0.0 && self.net_rng.random_bool(self.loss);
            if lost || self.cut[from] || self.cut[dst] {
                continue;
            }
            let delay = Duration::from_micros(self.net_rng.random_range(1000..3000));
            self.push(self.now + delay, dst, Event::Data(source, data));
        }
        for (timer, after) in fx.timers {
            self.push(self.now + after, from, Event::Timer(timer));
        }
        for note in fx.notes {
            match note {
                OwnedNotification::MemberDown(id) => {
                    if let Some(&i) = self.by_addr.get(&id.addr) {
                        self.downs[from].entry(i).or_insert(self.now);
                    }
                }
                OwnedNotification::MemberUp(id) => {
                    if let Some(&i) = self.by_addr.get(&id.addr) {
                        self.downs[from].remove(&i);
                    }
                }
                _ => {}
            }
        }
    }

    /// Node `i` joins like `Network::bootstrap` does: it learns the seed's members (the TCP
    /// `get_peers` answer) and announces itself to the seed.
    fn join(&mut self, i: usize, seed: usize) {
        let mut fx = Effects::default();
        let known: Vec<_> = self.nodes[seed]
            .iter_members()
            .map(|m| foca::Member::alive(*m.id()))
            .chain(std::iter::once(foca::Member::alive(self.ids[seed])))
            .filter(|m| m.id().addr != self.ids[i].addr)
            .collect();
        self.nodes[i]
            .apply_many(known.into_iter(), false, &mut fx)
            .unwrap();
        self.nodes[i].announce(self.ids[seed], &mut fx).unwrap();
        self.drain(i, fx);
        let first = self.now
            + self
                .settings
                .sync_every
                .mul_f64(0.5 + i as f64 % 7.0 / 14.0);
        self.push(first, i, Event::Sync);
    }

    /// One anti-entropy round of `node` (see [`Event::Sync`]); partitions and crashes apply.
    /// Returns whether it learned a member.
    fn sync(&mut self, node: usize, fx: &mut Effects) -> bool {
        let members: Vec<GossipId> = self.nodes[node].iter_members().map(|m| *m.id()).collect();
        if members.is_empty() || self.cut[node] {
            return false;
        }
        let pick = members[self.net_rng.random_range(0..members.len())];
        let Some(&from) = self.by_addr.get(&pick.addr) else {
            return false;
        };
        if self.crashed[from] || self.cut[from] {
            return false;
        }
        let own = self.ids[node].addr;
        let known: std::collections::HashSet<[u8; 16]> = self.nodes[node]
            .iter_membership_state()
            .map(|m| m.id().id)
            .collect();
        let learned: Vec<_> = self.nodes[from]
            .iter_members()
            .filter(|m| m.id().addr != own && !known.contains(&m.id().id))
            .map(|m| foca::Member::alive(*m.id()))
            .collect();
        let any = !learned.is_empty();
        let _ = self.nodes[node].apply_many(learned.into_iter(), false, fx);
        any
    }

    /// Runs until `until` (virtual time), or until `done` holds (checked every 100 ms).
    fn run(&mut self, until: Duration, mut done: impl FnMut(&Sim) -> bool) -> Duration {
        let mut next_check = self.now;
        while let Some(Reverse((at, seq, node))) = self.queue.pop() {
            if at > until {
                self.queue.push(Reverse((at, seq, node)));
                break;
            }
            self.now = at;
            let Some(event) = self.events.remove(&seq) else {
                continue;
            };
            if self.crashed[node] {
                continue;
            }
            let mut fx = Effects::default();
            let _ = match event {
                Event::Data(from, data) => match self.screen(node, from, &data) {
                    Some(packet) => self.nodes[node].handle_data(&packet, &mut fx),
                    None => Ok(()),
                },
                // As the driver: a direct check before a suspect is declared down.
                Event::Timer(Timer::ChangeSuspectToDown { member_id, .. })
                    if self.reachable(node, &member_id) =>
                {
                    Ok(())
                }
                // As the driver: no gossip round without news; the round waits for it.
                Event::Timer(timer @ Timer::PeriodicGossip(_))
                    if self.nodes[node].updates_backlog() == 0 =>
                {
                    self.parked[node] = Some(timer);
                    Ok(())
                }
                Event::Timer(timer) => self.nodes[node].handle_timer(timer, &mut fx),
                Event::Review => {
                    self.review(node, &mut fx);
                    let next = self.now + self.settings.probe_period;
                    self.push(next, node, Event::Review);
                    Ok(())
                }
                Event::Sync => {
                    let learned = self.sync(node, &mut fx);
                    self.pause[node] = sync_pause(self.pause[node], learned, &self.settings);
                    let next = self.now + self.pause[node];
                    self.push(next, node, Event::Sync);
                    Ok(())
                }
            };
            if self.nodes[node].updates_backlog() > 0
                && let Some(timer) = self.parked[node].take()
            {
                let _ = self.nodes[node].handle_timer(timer, &mut fx);
            }
            self.rescale(node);
            self.drain(node, fx);
            if self.now >= next_check {
                next_check = self.now + Duration::from_millis(100);
                if done(self) {
                    return self.now;
                }
            }
        }
        self.now = self.now.max(until);
        self.now
    }

    /// As the driver: the packet `node` hands to foca once screened (keyed mode), if any.
    fn screen(&mut self, node: usize, from: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
        let refresh = super::driver::VIEW_REFRESH;
        if self.views[node]
            .as_ref()
            .is_none_or(|(_, at)| self.now.saturating_sub(*at) >= refresh)
        {
            let view = super::screen::View::of(&self.nodes[node], self.incarnations[node]);
            self.views[node] = Some((view, self.now));
        }
        let (view, _) = self.views[node].as_ref()?;
        let self_claims = self.self_claims[node]
            .is_none_or(|at| self.now.saturating_sub(at) >= self.settings.probe_period);
        let screened =
            super::screen::screen(data, from, view, super::screen::Mode::Keyed, self_claims)
                .ok()?;
        if screened.about_me {
            self.self_claims[node] = Some(self.now);
        }
        Some(screened.packet)
    }

    /// Whether `node`'s direct check (a TCP ping in the driver, which retransmits through
    /// packet loss) reaches `id`: unless it crashed or a cut is in the way.
    fn reachable(&self, node: usize, id: &GossipId) -> bool {
        self.by_addr
            .get(&id.addr)
            .is_some_and(|&t| !self.crashed[t] && !self.cut[t] && !self.cut[node])
    }

    /// As the driver's review: long-suspect members that a direct check cannot reach are down.
    fn review(&mut self, node: usize, fx: &mut Effects) {
        let timeout = suspect_timeout(&self.settings, self.scaled[node])
            .saturating_add(self.settings.probe_period);
        let overdue = self.suspicions[node].overdue(&self.nodes[node], self.now, timeout);
        for (id, incarnation) in overdue {
            if !self.reachable(node, &id) {
                let down = foca::Member::new(id, incarnation, foca::State::Down);
                let _ = self.nodes[node].apply_many(std::iter::once(down), true, &mut *fx);
            }
        }
    }

    /// As the driver does: suspicion and retransmissions follow the member count.
    fn rescale(&mut self, node: usize) {
        let n = self.nodes[node].num_members();
        if needs_rescale(self.scaled[node], n) {
            let config = foca_config(&self.settings, n, OVERHEAD);
            self.nodes[node].set_config(config).unwrap();
            self.scaled[node] = n;
        }
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| !self.crashed[i])
    }

    fn converged(&self) -> bool {
        let want = self.live().count() - 1;
        self.live().all(|i| self.nodes[i].num_members() == want)
    }
}

/// Mass join of `n` nodes (each joining through a random earlier one within `spread`), then
/// one crash; returns (time to full membership after the last join, time until every
/// survivor marked the crashed node down, packets per node per second while idle).
fn join_and_crash(n: usize, spread: Duration) -> (Duration, Duration, f64) {
    let mut sim = Sim::new(n, 7);
    let mut rng = SmallRng::seed_from_u64(11);
    for i in 1..n {
        let at = spread.mul_f64(i as f64 / n as f64);
        sim.run(at, |_| false);
        let seed = rng.random_range(0..i);
        sim.join(i, seed);
    }
    let last_join = sim.now;
    let converged_at = sim.run(last_join + Duration::from_secs(60), Sim::converged);
    if !sim.converged() {
        let counts: Vec<usize> = (0..n).map(|i| sim.nodes[i].num_members()).collect();
        let short = counts.iter().filter(|c| **c < n - 1).count();
        let downs: usize = (0..n)
            .map(|i| {
                sim.nodes[i]
                    .iter_membership_state()
                    .filter(|m| m.state() != foca::State::Alive)
                    .count()
            })
            .sum();
        eprintln!(
            "min {:?} short {short} non-alive entries {downs} backlog0 {}",
            counts.iter().min(),
            sim.nodes[0].updates_backlog()
        );
    }
    assert!(sim.converged(), "{n} nodes did not converge within 60 s");
    let converged = converged_at - last_join;

    // Idle traffic over 10 s, once the news of the joins has died down.
    sim.run(sim.now + Duration::from_secs(20), |_| false);
    let (p0, start) = (sim.packets, sim.now);
    sim.run(start + Duration::from_secs(10), |_| false);
    let idle = (sim.packets - p0) as f64 / n as f64 / 10.0;

    // A crash: every survivor must mark it down.
    let victim = n / 2;
    sim.crashed[victim] = true;
    let crashed_at = sim.now;
    let all_down = |s: &Sim| s.live().all(|i| s.downs[i].contains_key(&victim));
    let detected = sim.run(crashed_at + Duration::from_secs(60), all_down);
    assert!(
        all_down(&sim),
        "the crash of node {victim} was not detected everywhere"
    );
    // No false deaths on the way.
    for i in sim.live() {
        assert_eq!(
            sim.downs[i].keys().copied().collect::<Vec<_>>(),
            vec![victim],
            "node {i} saw a false death"
        );
    }
    (converged, detected - crashed_at, idle)
}

#[test]
fn a_thousand_members_converge_detect_a_crash_and_cost_the_same_per_node() {
    let (small_conv, small_det, small_idle) = join_and_crash(50, Duration::from_secs(2));
    let big: usize = std::env::var("SIM_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (conv, det, idle) = join_and_crash(big, Duration::from_secs(5));
    eprintln!(
        "50 members: converged {small_conv:?} after the last join, crash seen everywhere after {small_det:?}, {small_idle:.1} packets/node/s idle"
    );
    eprintln!(
        "1000 members: converged {conv:?} after the last join, crash seen everywhere after {det:?}, {idle:.1} packets/node/s idle"
    );
    assert!(conv <= Duration::from_secs(5), "converged after {conv:?}");
    assert!(
        det <= Duration::from_secs(10),
        "crash detected after {det:?}"
    );
    // Constant cost per node: twenty times the members, about the same packets per node.
    assert!(idle < small_idle * 1.5 + 1.0, "{idle} vs {small_idle}");
}

#[test]
fn ten_percent_packet_loss_kills_nobody() {
    let n = 1000;
    let seed = std::env::var("SIM_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut sim = Sim::new(n, seed);
    for i in 1..n {
        sim.join(i, 0);
    }
    sim.run(Duration::from_secs(60), Sim::converged);
    assert!(sim.converged());
    sim.loss = 0.10;
    let start = sim.now;
    sim.run(start + Duration::from_secs(60), |_| false);
    let false_deaths: usize = (0..n).map(|i| sim.downs[i].len()).sum();
    eprintln!("false deaths {false_deaths}");
    assert_eq!(false_deaths, 0, "members declared down under 10% loss");
    sim.loss = 0.0;
    sim.run(sim.now + Duration::from_secs(10), |_| false);
    assert!(sim.converged());
}

#[test]
fn a_short_partition_is_refuted_and_a_long_one_heals() {
    let n = 1000;
    let mut sim = Sim::new(n, 5);
    for i in 1..n {
        sim.join(i, 0);
    }
    sim.run(Duration::from_secs(60), Sim::converged);
    assert!(sim.converged());
    // Cut off for less than the suspicion timeout: suspected at most, never down.
    let victim = 42;
    sim.cut[victim] = true;
    let start = sim.now;
    sim.run(start + Duration::from_millis(1500), |_| false);
    sim.cut[victim] = false;
    sim.run(sim.now + Duration::from_secs(20), |_| false);
    for i in 0..n {
        assert!(
            !sim.downs[i].contains_key(&victim),
            "node {i} declared {victim} down after a short cut"
        );
    }
    assert!(sim.converged());
    // Cut off for long: declared down, then back by itself once the cut heals.
    sim.cut[victim] = true;
    sim.run(sim.now + Duration::from_secs(30), |_| false);
    let others_saw_it_down = (0..n)
        .filter(|&i| i != victim)
        .filter(|&i| sim.downs[i].contains_key(&victim))
        .count();
    assert!(others_saw_it_down > n / 2, "{others_saw_it_down}");
    sim.cut[victim] = false;
    let cut_ended = sim.now;
    let healed = sim.run(sim.now + Duration::from_secs(120), |s| {
        s.converged() && (0..n).all(|i| s.downs[i].is_empty())
    });
    eprintln!(
        "{n} members: healed {:?} after a 30 s partition ended",
        healed - cut_ended
    );
    assert!(
        sim.converged(),
        "the partitioned member did not rejoin ({healed:?})"
    );
}

#[test]
fn packets_naming_members_beyond_the_cap_are_dropped() {
    // A sender that knows 200 members gossips to a receiver with a cap of 100.
    let mut sim = Sim::new(201, 9);
    let mut fx = Effects::default();
    let members: Vec<_> = (1..201).map(|i| foca::Member::alive(sim.ids[i])).collect();
    sim.nodes[0]
        .apply_many(members.into_iter(), true, &mut fx)
        .unwrap();
    let mut fx = Effects::default();
    sim.nodes[0].gossip(&mut fx).unwrap();
    let (to, packet) = fx.sends.first().cloned().unwrap();
    let receiver = sim.by_addr[&to.addr];
    assert!(!super::swim::overflows(&sim.nodes[receiver], &packet, 4096));
    assert!(super::swim::overflows(&sim.nodes[receiver], &packet, 10));
    // Handling it under a small cap would indeed grow the table past it.
    let before = sim.nodes[receiver].iter_membership_state().len();
    let mut fx = Effects::default();
    sim.nodes[receiver].handle_data(&packet, &mut fx).unwrap();
    assert!(sim.nodes[receiver].iter_membership_state().len() > before.max(10));
}
