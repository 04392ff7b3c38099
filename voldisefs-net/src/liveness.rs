//! Keeping the membership table true: the probe loop (failure detection) and the discovery
//! loop (full membership even when joins raced).
//!
//! Both are shaped `loop { select!{ sleep(interval), cancelled } ; work }` and end with the
//! network's token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::task::JoinSet;
use voldisefs_proto::PeerInfo;

use crate::config::GossipConfig;
use crate::freeze::FreezeWatch;
use crate::gossip::{self, Command};
use crate::membership::PeerState;
use crate::pool;
use crate::shared::Shared;

/// Pings every known peer once per `probe_interval` and records the outcomes. Peers that
/// announced their leave are not probed; dead peers are probed every `dead_probe_every`
/// rounds so a healed partition is noticed; unverified peers get a verification dial of their
/// claimed address instead, within its own bounds (see [`pool::verify_claim`]). Each round first forgets the dead and left peers
/// older than `forget_after` ([`Membership::prune`](crate::Membership::prune)). A frozen node
/// starts no round until it is thawed.
pub(crate) async fn probe_loop(net: Arc<Shared>) {
    let config = net.config.clone();
    let token = net.token.clone();
    let mut freeze = net.freeze_watch();
    let mut round: u64 = 0;
    loop {
        if !next_round(&token, &mut freeze, config.probe_interval).await {
            return;
        }
        round += 1;
        let forgotten = net.membership.prune(Instant::now());
        if forgotten > 0 {
            tracing::debug!(forgotten, "forgot dead and left peers");
        }
        let mut probes = JoinSet::new();
        let gossip = net.gossip.get().is_some();
        for entry in net.membership.snapshot() {
            let due = match entry.state {
                // With gossip, SWIM probes the members (a few a second, whatever their number).
                PeerState::Alive | PeerState::Suspect | PeerState::Dead if gossip => false,
                PeerState::Left => false,
                // Not a probe: a bounded verification dial of the claimed address.
                PeerState::Unverified => {
                    pool::verify_claim(&net, entry.info.addr);
                    false
                }
                PeerState::Dead => round % u64::from(config.dead_probe_every.max(1)) == 0,
                PeerState::Alive | PeerState::Suspect => true,
            };
            if due {
                let net = net.clone();
                probes.spawn(async move {
                    let ok = pool::answers_ping(&net, entry.info).await;
                    let changed = net
                        .membership
                        .record_probe(entry.info.id, ok, config.dead_after);
                    if let Some(state) = changed {
                        tracing::info!(peer = %entry.info.id, addr = %entry.info.addr, %state, "peer state changed");
                    }
                });
            }
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = async { while probes.join_next().await.is_some() {} } => {}
        }
    }
}

/// Waits `pause`, then until the node is not frozen; false once the network's token is
/// cancelled (the loop ends).
async fn next_round(
    token: &tokio_util::sync::CancellationToken,
    freeze: &mut FreezeWatch,
    pause: std::time::Duration,
) -> bool {
    tokio::select! {
        () = token.cancelled() => return false,
        () = tokio::time::sleep(pause) => {}
    }
    tokio::select! {
        () = token.cancelled() => false,
        () = freeze.thawed() => true,
    }
}

/// Every `discovery_interval`, asks the next live peer (round robin) for its peers and says
/// `hello` to at most `discovery_fanout` of those this node does not know (nor knows to have
/// left), so nodes that joined at the same moment through different peers still find each
/// other. A frozen node starts no round until it is thawed.
pub(crate) async fn discovery_loop(net: Arc<Shared>) {
    if let Some(settings) = net.config.gossip.clone() {
        return anti_entropy_loop(net, settings).await;
    }
    let interval = net.config.discovery_interval;
    let fanout = net.config.discovery_fanout;
    let token = net.token.clone();
    let mut freeze = net.freeze_watch();
    let mut round: usize = 0;
    loop {
        if !next_round(&token, &mut freeze, interval).await {
            return;
        }
        let live = net.membership.live_peers();
        if live.is_empty() {
            continue;
        }
        let peer = live[round % live.len()];
        round = round.wrapping_add(1);
        let work = async {
            let Ok((_, peers)) = pool::discover(&net, peer.addr).await else {
                return;
            };
            // `discover` dropped invalid entries (this node among them).
            let membership = &net.membership;
            // Unverified ones too: dialling them is their verification.
            let new = peers.into_iter().filter(|p| {
                membership
                    .get(&p.id)
                    .is_none_or(|e| e.state == PeerState::Unverified)
                    && !membership.has_left(&p.id)
            });
            // At most `fanout` introductions per round; later rounds reach the rest.
            for candidate in new.take(fanout) {
                // Connecting says hello both ways: each side learns the other.
                match pool::conn(&net, candidate.addr).await {
                    Ok(_) => tracing::info!(peer = %candidate.id, "discovered peer"),
                    Err(e) => {
                        tracing::debug!(peer = %candidate.id, error = %e, "discovered peer unreachable")
                    }
                }
            }
        };
        tokio::select! {
            () = token.cancelled() => return,
            () = work => {}
        }
    }
}

/// With gossip: pulls the member list of one member over TCP (`get_peers`) and hands the
/// members this node did not know to the gossip, which probes them like any other (and, in
/// open mode, they count only once a dial verified their address).
///
/// A round pulls from a random live member every `sync_every` while rounds bring news,
/// backing off to 30 times that once they stop ([`gossip::sync_pause`]); and at once, at most
/// one per `pull_gap`, from the address of a [`PullHint`](crate::shared::PullHint) (a member
/// that knew more than this node, or a joiner: push-pull). A frozen node starts no round
/// until it is thawed.
async fn anti_entropy_loop(net: Arc<Shared>, settings: GossipConfig) {
    let token = net.token.clone();
    let mut freeze = net.freeze_watch();
    let mut pause = gossip::sync_pause(Duration::ZERO, false, &settings);
    // When the next timer round is due: hinted pulls do not postpone it, so a stream of hints
    // (a hostile peer's, say) cannot keep this node from asking a random member.
    let mut due = tokio::time::Instant::now() + pause;
    let mut last_pull: Option<tokio::time::Instant> = None;
    // The hinted address whose pull failed last (tried again once).
    let mut retried: Option<SocketAddr> = None;
    loop {
        let hinted = tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep_until(due) => None,
            addr = net.pull_hint.next() => Some(addr),
        };
        let hinted = match hinted {
            Some(addr) => {
                if let Some(at) = last_pull {
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = tokio::time::sleep_until(at + settings.pull_gap) => {}
                    }
                }
                // Hints that came meanwhile replaced this one: the newest is asked.
                Some(net.pull_hint.take().unwrap_or(addr))
            }
            None => None,
        };
        tokio::select! {
            () = token.cancelled() => return,
            () = freeze.thawed() => {}
        }
        last_pull = Some(tokio::time::Instant::now());
        let target = match hinted {
            Some(addr) => addr,
            None => {
                let live = net.membership.live_peers();
                if live.is_empty() {
                    pause = gossip::sync_pause(pause, false, &settings);
                    due = tokio::time::Instant::now() + pause;
                    continue;
                }
                // Any live member: four random bytes of a fresh UUID v4 (one byte would reach
                // only 256).
                let random = voldisefs_proto::NodeId::random();
                let bytes = random.as_bytes();
                let pick = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize
                    % live.len();
                live[pick].addr
            }
        };
        let Some(learned) = pull(&net, target).await else {
            // A hinted pull that failed (the member busy, a dial refused) is tried once more
            // after `pull_gap`, unless a newer hint is waiting; the timer rounds go on anyway.
            if hinted.is_none() {
                pause = gossip::sync_pause(pause, false, &settings);
                due = tokio::time::Instant::now() + pause;
            } else if retried != Some(target) {
                retried = Some(target);
                net.pull_hint.hint_if_none(target);
            }
            continue;
        };
        retried = None;
        if learned > 0 {
            tracing::debug!(learned, from = %target, hinted = hinted.is_some(), "anti-entropy learned members");
        }
        // Only a round that ran on its timer and learned nothing lengthens the pause; news
        // brings the next timer round forward to `sync_every`.
        if learned > 0 || hinted.is_none() {
            pause = gossip::sync_pause(pause, learned > 0, &settings);
            let next = tokio::time::Instant::now() + pause;
            due = if hinted.is_none() {
                next
            } else {
                due.min(next)
            };
        }
    }
}

/// One anti-entropy pull from `addr` (within `request_timeout`): the members it named that this
/// node did not know (nor knows to have left) go to the gossip. Returns how many, or `None`
/// when `addr` did not answer.
async fn pull(net: &Arc<Shared>, addr: SocketAddr) -> Option<usize> {
    let Ok(Ok((_, peers))) =
        tokio::time::timeout(net.config.request_timeout, pool::discover(net, addr)).await
    else {
        return None;
    };
    let membership = &net.membership;
    let new: Vec<PeerInfo> = peers
        .into_iter()
        .filter(|p| membership.get(&p.id).is_none() && !membership.has_left(&p.id))
        .collect();
    let count = new.len();
    if count > 0
        && let Some(gossip) = net.gossip.get()
    {
        gossip.send(Command::Learned(new));
    }
    Some(count)
}
