//! Joining: [`Network::bootstrap`] (one attempt) and [`Network::join`] (retried until a seed
//! answers), over the `get_peers` exchange of the pool (`pool::discover`).

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinSet;
use voldisefs_proto::PeerInfo;

use crate::error::NetError;
use crate::gossip::Command;
use crate::network::Network;
use crate::pool;

/// Longest a gossip bootstrap waits for the members its seeds named to be taken in (probed by
/// the gossip and, in open mode, their addresses verified by a dial), so that a node that has
/// just started already knows its network, as with the classic bootstrap.
const GOSSIP_SETTLE: Duration = Duration::from_secs(5);

/// Shortest pause between two join attempts, whatever the configuration says.
const MIN_JOIN_PAUSE: Duration = Duration::from_millis(1);

/// The pause after `pause` between two join attempts: doubled, at most `max` (and never
/// below [`MIN_JOIN_PAUSE`]).
fn next_pause(pause: Duration, max: Duration) -> Duration {
    pause.saturating_mul(2).min(max).max(MIN_JOIN_PAUSE)
}

/// What a bootstrap found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootstrapReport {
    /// Peers reached and now in the membership table.
    pub reached: Vec<PeerInfo>,
    /// Addresses that could not be reached (or whose answer was refused), with the reason.
    pub unreachable: Vec<(SocketAddr, String)>,
}

impl Network {
    /// Joins the network through `seeds`, once: asks each for its peers, then every newly
    /// learned peer in turn, until no new peer appears (with gossip, [`NetConfig::gossip`](crate::NetConfig::gossip),
    /// only the seeds are asked: this node is announced to them and their members are handed
    /// to the gossip, which probes them). Every contacted node learns this one
    /// from its `hello`. Peers are contacted in parallel with timeouts, so an unreachable one
    /// does not stall the rest. Fails only if seeds were given and none of the contacted peers
    /// answered; [`Network::join`] retries.
    ///
    /// Bounded against hostile peers: a `peers` answer longer than
    /// [`MAX_PEERS_PER_ANSWER`](voldisefs_proto::MAX_PEERS_PER_ANSWER) is refused (that peer counts as unreachable), invalid entries
    /// are dropped, and at most [`NetConfig::max_peers`](crate::NetConfig::max_peers) learned
    /// addresses are contacted besides the seeds.
    pub async fn bootstrap(&self, seeds: &[SocketAddr]) -> Result<BootstrapReport, NetError> {
        let local = self.local();
        let config = self.config();
        // Every address queued or contacted, so none is asked twice. Cap: the seeds, this node
        // and `max_peers` learned addresses; learned ones beyond are dropped.
        let mut seen: HashSet<SocketAddr> = HashSet::from([local.addr]);
        let mut queue: VecDeque<SocketAddr> =
            seeds.iter().copied().filter(|a| seen.insert(*a)).collect();
        let (mut learned, mut dropped, mut tried) = (0usize, 0usize, 0usize);
        // With gossip: the members the seeds named, to wait for (at most `max_peers`).
        let mut named: HashSet<voldisefs_proto::NodeId> = HashSet::new();
        let mut report = BootstrapReport::default();
        let mut running = JoinSet::new();
        let parallelism = config.bootstrap_parallelism.max(1);
        loop {
            while running.len() < parallelism {
                let Some(addr) = queue.pop_front() else { break };
                tried += 1;
                let net = self.clone();
                running.spawn(async move { (addr, pool::discover(&net.shared, addr).await) });
            }
            let Some(done) = running.join_next().await else {
                break;
            };
            match done {
                Ok((_, Ok((peer, peers)))) => {
                    report.reached.push(peer);
                    seen.insert(peer.addr);
                    if let Some(gossip) = self.gossip() {
                        // With gossip a seed is enough: announce this node to it, hand its
                        // members to the gossip (which probes them), and dial nobody else.
                        gossip.send(Command::Announce(peer));
                        let mut peers = peers;
                        peers.truncate(config.max_peers);
                        for p in &peers {
                            if named.len() < config.max_peers {
                                named.insert(p.id);
                            }
                        }
                        gossip.send(Command::Learned(peers));
                        continue;
                    }
                    for p in peers {
                        if seen.contains(&p.addr) {
                            continue;
                        }
                        if learned >= config.max_peers {
                            dropped += 1;
                            continue;
                        }
                        seen.insert(p.addr);
                        queue.push_back(p.addr);
                        learned += 1;
                    }
                }
                Ok((addr, Err(e))) => {
                    tracing::warn!(%addr, error = %e, "bootstrap: peer unreachable");
                    report.unreachable.push((addr, e.to_string()));
                }
                Err(e) => tracing::error!(error = %e, "bootstrap task failed"),
            }
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                max_peers = config.max_peers,
                "bootstrap: too many addresses learned; the rest are left to discovery"
            );
        }
        if !seeds.is_empty() && report.reached.is_empty() {
            return Err(NetError::BootstrapFailed { tried });
        }
        if !named.is_empty() {
            self.settle(named).await;
        }
        tracing::info!(
            reached = report.reached.len(),
            unreachable = report.unreachable.len(),
            "bootstrap complete"
        );
        Ok(report)
    }

    /// Waits, at most [`GOSSIP_SETTLE`], until every member in `named` is live in the
    /// membership table (a member that is dead by now only costs the wait).
    async fn settle(&self, mut named: HashSet<voldisefs_proto::NodeId>) {
        let membership = self.membership();
        let mut changes = membership.subscribe();
        let token = self.shared_token();
        let deadline = tokio::time::Instant::now() + GOSSIP_SETTLE;
        loop {
            named.retain(|id| !membership.get(id).is_some_and(|e| e.state.is_live()));
            if named.is_empty() {
                return;
            }
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep_until(deadline) => {
                    tracing::info!(missing = named.len(), "bootstrap: some members the seeds named are not answering");
                    return;
                }
                changed = changes.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Joins the network through `seeds` like Consul's retry-join: runs
    /// [`Network::bootstrap`] and, while no seed answers, tries again after a pause that
    /// starts at [`NetConfig::join_retry_initial`](crate::NetConfig::join_retry_initial) and
    /// doubles up to [`NetConfig::join_retry_max`](crate::NetConfig::join_retry_max), until an
    /// attempt succeeds. Returns that attempt's report, or [`NetError::Shutdown`] once the
    /// network's token is cancelled. [`Network::is_joining`] is true from the call until the
    /// first success.
    pub async fn join(&self, seeds: &[SocketAddr]) -> Result<BootstrapReport, NetError> {
        self.shared.joining.store(true, Ordering::SeqCst);
        let token = self.shared_token();
        let config = self.config();
        let mut pause = config.join_retry_initial.max(MIN_JOIN_PAUSE);
        let mut attempt: u64 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let outcome = tokio::select! {
                () = token.cancelled() => return Err(NetError::Shutdown),
                outcome = self.bootstrap(seeds) => outcome,
            };
            match outcome {
                Ok(report) => {
                    self.shared.joining.store(false, Ordering::SeqCst);
                    tracing::info!(attempt, "joined the network");
                    return Ok(report);
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, retry_in = ?pause, "join: no seed answered; retrying");
                }
            }
            tokio::select! {
                () = token.cancelled() => return Err(NetError::Shutdown),
                () = tokio::time::sleep(pause) => {}
            }
            pause = next_pause(pause, config.join_retry_max);
        }
    }

    /// Whether [`Network::join`] was called and has not succeeded yet.
    pub fn is_joining(&self) -> bool {
        self.shared.joining.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_backoff_doubles_up_to_the_cap() {
        let ms = Duration::from_millis;
        let mut pause = ms(500);
        let mut seen = vec![pause];
        for _ in 0..7 {
            pause = next_pause(pause, ms(10_000));
            seen.push(pause);
        }
        let expected = [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000].map(ms);
        assert_eq!(seen, expected);
        assert_eq!(next_pause(Duration::ZERO, Duration::ZERO), MIN_JOIN_PAUSE);
        assert_eq!(next_pause(Duration::MAX, Duration::MAX), Duration::MAX);
    }
}
