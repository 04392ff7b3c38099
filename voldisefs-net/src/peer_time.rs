//! Members' clocks as their membership datagrams state them.
//!
//! Every gossip datagram carries its sender's own time (see [`crate::datagram`]). A member
//! hears from a few others every second (probes, their acks, gossip), so it learns the time of
//! many members at no cost: no request, no connection, no handshake. A node that wants to
//! compare its clock with its peers' (the node crate follows its peers when its own clock runs
//! late) reads [`Network::peer_times`](crate::Network::peer_times) instead of asking them.
//!
//! Only a sender that the gossip screen accepted and that is a member counts: in keyed mode
//! its datagrams are authenticated under the network key, in open mode it sent from its own
//! address. A member can state any time it likes, as it could in answer to a question; what
//! the reader makes of the times (a median, bounded moves) is where lies are contained.
//!
//! Bounded: the latest time of at most [`MAX_PEER_TIMES`] members is kept; a new member's time
//! replaces the least recently heard one's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use voldisefs_proto::NodeId;

/// Most members whose latest stated time is kept.
pub const MAX_PEER_TIMES: usize = 64;

/// Where a node reads the time of day: the system clock (the default), or a function given
/// by a program that runs nodes under simulated time, or shifts a node's clock for a drill.
/// The network stamps it on the datagrams it sends; the node crate judges expiry by it.
#[derive(Clone, Default)]
pub struct WallClock(Option<Arc<dyn Fn() -> Duration + Send + Sync>>);

impl std::fmt::Debug for WallClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            None => "WallClock(system)",
            Some(_) => "WallClock(custom)",
        })
    }
}

impl WallClock {
    /// The system clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock reading `now`: the time since the unix epoch.
    pub fn from_fn(now: impl Fn() -> Duration + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(now)))
    }

    /// The time since the unix epoch (zero for a system clock set before 1970).
    pub fn since_epoch(&self) -> Duration {
        match &self.0 {
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            Some(now) => now(),
        }
    }

    /// [`since_epoch`](Self::since_epoch) in whole milliseconds.
    pub fn millis(&self) -> u64 {
        u64::try_from(self.since_epoch().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The latest time each of at most [`MAX_PEER_TIMES`] members stated, with when it arrived.
#[derive(Debug, Default)]
pub(crate) struct PeerTimes {
    samples: Mutex<HashMap<NodeId, Sample>>,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// The member's time as stated, milliseconds since the unix epoch.
    time: u64,
    /// When it arrived here.
    at: Instant,
}

impl PeerTimes {
    /// Keeps `time` as `member`'s latest, heard `at`.
    pub(crate) fn record(&self, member: NodeId, time: u64, at: Instant) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if !samples.contains_key(&member) && samples.len() >= MAX_PEER_TIMES {
            let oldest = samples.iter().min_by_key(|(_, s)| s.at).map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                samples.remove(&oldest);
            }
        }
        samples.insert(member, Sample { time, at });
    }

    /// Each member's time now (its stated time plus what has elapsed here since), for the
    /// members heard within `max_age` before `now` that `keep` accepts, most recently heard
    /// first.
    pub(crate) fn recent(
        &self,
        now: Instant,
        max_age: Duration,
        keep: impl Fn(&NodeId) -> bool,
    ) -> Vec<(NodeId, u64)> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let mut fresh: Vec<(NodeId, Sample)> = samples
            .iter()
            .filter(|(id, s)| now.saturating_duration_since(s.at) <= max_age && keep(id))
            .map(|(id, s)| (*id, *s))
            .collect();
        drop(samples);
        fresh.sort_by_key(|(_, s)| std::cmp::Reverse(s.at));
        fresh
            .into_iter()
            .map(|(id, s)| {
                let elapsed = u64::try_from(now.saturating_duration_since(s.at).as_millis())
                    .unwrap_or(u64::MAX);
                (id, s.time.saturating_add(elapsed))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> NodeId {
        NodeId::from_uuid(uuid::Uuid::from_bytes([b; 16]))
    }

    #[tokio::test(start_paused = true)]
    async fn times_age_with_the_local_clock_and_old_ones_are_left_out() {
        let times = PeerTimes::default();
        let start = Instant::now();
        times.record(id(1), 1_000_000, start);
        tokio::time::advance(Duration::from_secs(5)).await;
        times.record(id(2), 2_000_000, Instant::now());
        tokio::time::advance(Duration::from_millis(1500)).await;
        let now = Instant::now();
        // Newest first; each moved on by the time since it arrived.
        assert_eq!(
            times.recent(now, Duration::from_secs(60), |_| true),
            vec![(id(2), 2_001_500), (id(1), 1_006_500)]
        );
        // Too old, or not accepted: left out.
        assert_eq!(
            times.recent(now, Duration::from_secs(2), |_| true),
            vec![(id(2), 2_001_500)]
        );
        assert_eq!(
            times.recent(now, Duration::from_secs(60), |m| *m == id(1)),
            vec![(id(1), 1_006_500)]
        );
        // A member's newer statement replaces its older one.
        times.record(id(1), 5, now);
        assert_eq!(
            times.recent(now, Duration::ZERO, |_| true),
            vec![(id(1), 5)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_max_samples_members_are_kept_the_least_recently_heard_goes() {
        let times = PeerTimes::default();
        let total = u8::try_from(MAX_PEER_TIMES + 10).unwrap();
        for b in 0..total {
            times.record(id(b), u64::from(b), Instant::now());
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        let kept = times.recent(Instant::now(), Duration::from_secs(60), |_| true);
        assert_eq!(kept.len(), MAX_PEER_TIMES);
        assert!(
            kept.iter().all(|(m, _)| m.as_bytes()[0] >= 10),
            "the first ten went"
        );
    }

    #[test]
    fn the_system_clock_reads_milliseconds_and_a_function_overrides_it() {
        let system = WallClock::system().millis();
        assert!(system > 1_700_000_000_000, "{system}");
        let custom = WallClock::from_fn(|| Duration::from_millis(42_007));
        assert_eq!(custom.millis(), 42_007);
        assert_eq!(custom.since_epoch().as_secs(), 42);
    }
}
