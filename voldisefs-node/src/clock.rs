//! The node's clock for expiry: its own wall clock, moved forward to its peers' time when it
//! runs late, for judging expiry only.
//!
//! Two readings, for two purposes:
//!
//! - **Stamping** (a gateway upload's expiry, the `max_expiry` bound on objects clients seal)
//!   reads the node's *own* clock, never a correction: whatever peers say,
//!   an upload's stamp is at most the uploader's own time plus the expiry it asked for, and
//!   `max_expiry` bounds it by this node's own time. A node whose clock runs late stamps
//!   early expiries (a file lives shorter, never longer); it refuses an upload that would be
//!   expired on arrival, naming its clock.
//! - **Judging** (refusing or dropping an expired object, answering "not found" for an
//!   expired file) reads the judging clock: the own clock plus a correction. A node whose own
//!   clock runs late would otherwise keep and serve a file after its expiry by as much as its
//!   clock is off. So every `clock_check_interval` it takes the times of up to
//!   [`SAMPLE_PEERS`] live peers, each read from the peer's own uncorrected clock (so
//!   corrections never chain), and, when the median of at least [`MIN_SAMPLES`] is more than
//!   [`TOLERANCE_SECS`] ahead of its own clock, judges by that median, moved at most
//!   [`MAX_CORRECTION_SECS`] (and logs a warning once).
//!
//! Where the times come from: every membership datagram states its sender's own time, so a
//! node hears the time of a few members every second without asking
//! (`voldisefs_net::Network::peer_times`; the most recently heard [`SAMPLE_PEERS`] within
//! [`SAMPLE_AGE`], or the interval when longer, each moved on by the time since it arrived).
//! Only when those name fewer than [`MIN_SAMPLES`] live peers (a network of three, the classic
//! detector, which sends no datagrams) does it ask up to [`SAMPLE_PEERS`] of them (the `time`
//! of their `stats` answer). Asking cost a connection and a Noise handshake per peer asked,
//! most of a 200-node network's idle CPU (BENCHMARKS.md, "Idle CPU").
//!
//! The bounds this gives: as long as most of the peers a node asks have correct clocks, it
//! drops and stops serving an expired file at most [`TOLERANCE_SECS`] plus one sampling round
//! after the uploader's choice, for an own clock up to [`MAX_CORRECTION_SECS`] late. A node
//! whose clock runs *ahead* is not moved back: it drops files early, which costs one copy and
//! never extends a file. Peers lying about the time, as a majority of the ones asked, can only
//! make a node drop expiring files early, by at most [`MAX_CORRECTION_SECS`]; they can never
//! make it keep one longer nor stamp one later. A round with too few answers halves the
//! correction, so one left behind by peers that are gone fades within a few rounds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Most peers asked for their time per round.
pub const SAMPLE_PEERS: usize = 16;
/// Oldest a time heard in a membership datagram may be and still count in a round (when the
/// round's interval is shorter).
pub const SAMPLE_AGE: Duration = Duration::from_secs(30);
/// Fewest answers a round needs before it may move the clock.
pub const MIN_SAMPLES: usize = 3;
/// How far the peers' median may run ahead of this node's clock before the node follows it.
pub const TOLERANCE_SECS: u64 = 2;
/// The most a node's judging clock is moved forward (one hour): peers can make it drop
/// expiring files early by at most this much, and a node whose own clock runs later than
/// this keeps files that much too long (it warns; fix its clock).
pub const MAX_CORRECTION_SECS: u64 = 3600;

/// Where a node reads the time of day (the network crate's type: the node stamps its
/// datagrams with the same clock).
pub use voldisefs_net::WallClock;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Clock {
    /// Seconds added to the system clock (a drill setting: tests run a node whose clock is
    /// wrong on purpose).
    drill_offset: i64,
    /// The time of day the offset is added to.
    wall: WallClock,
    /// Seconds this node's time is moved forward to follow its peers (0: not moved).
    correction: AtomicU64,
}

impl Clock {
    /// A clock reading `wall` shifted by `drill_offset` seconds.
    pub(crate) fn new(drill_offset: i64, wall: WallClock) -> Self {
        Self {
            drill_offset,
            wall,
            correction: AtomicU64::new(0),
        }
    }

    /// This node's own unix time in seconds (what it tells peers that ask).
    pub(crate) fn own(&self) -> u64 {
        self.own_millis() / 1000
    }

    /// This node's own unix time in milliseconds (what its membership datagrams state).
    pub(crate) fn own_millis(&self) -> u64 {
        self.wall
            .millis()
            .saturating_add_signed(self.drill_offset.saturating_mul(1000))
    }

    /// The unix time expiry is judged by: [`own`](Self::own) plus the correction.
    pub(crate) fn now(&self) -> u64 {
        self.own()
            .saturating_add(self.correction.load(Ordering::Relaxed))
    }

    /// Seconds this node's time is moved forward now.
    pub(crate) fn correction(&self) -> u64 {
        self.correction.load(Ordering::Relaxed)
    }

    /// Takes one round of peers' times (`own` read just before asking; 0 answers are
    /// unknown and skipped): follows their median, up to [`MAX_CORRECTION_SECS`], when it
    /// runs more than [`TOLERANCE_SECS`] ahead, and drops any correction otherwise. A round
    /// with fewer than [`MIN_SAMPLES`] answers halves the correction. Returns the correction
    /// now.
    pub(crate) fn observe(&self, own: u64, peers: &[u64]) -> u64 {
        let mut times: Vec<u64> = peers.iter().copied().filter(|&t| t > 0).collect();
        let correction = if times.len() < MIN_SAMPLES {
            // Nobody left to confirm it: a correction fades instead of sticking.
            self.correction() / 2
        } else {
            times.sort_unstable();
            // The lower median: with an even count, the earlier of the two middle times.
            let median = times[(times.len() - 1) / 2];
            let ahead = median.saturating_sub(own);
            if ahead > TOLERANCE_SECS {
                ahead.min(MAX_CORRECTION_SECS)
            } else {
                0
            }
        };
        let before = self.correction.swap(correction, Ordering::Relaxed);
        if correction > 0 && before == 0 {
            tracing::warn!(
                behind_secs = correction,
                peers = times.len(),
                max_secs = MAX_CORRECTION_SECS,
                "this node's clock runs behind the median of its peers' clocks: expiry is judged by their time (moved at most max_secs); fix the clock (NTP)"
            );
        } else if correction == 0 && before > 0 {
            tracing::info!("this node judges expiry by its own clock again");
        }
        correction
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_clock_follows_the_median_and_nothing_else_moves_it() {
        let clock = Clock::new(-3600, WallClock::system());
        let own = clock.own();
        let right = own + 3600;
        // Too few answers: nothing moves.
        assert_eq!(clock.observe(own, &[right, right]), 0);
        // Most peers right, one liar far ahead, one unknown: the median wins.
        assert_eq!(
            clock.observe(own, &[right, right + 1, right - 1, own + 999_999, 0]),
            3600
        );
        assert!(clock.now() >= right && clock.now() <= right + 2);
        // A minority of liars far ahead moves nothing on a right clock.
        let fine = Clock::new(0, WallClock::system());
        let t = fine.own();
        assert_eq!(fine.observe(t, &[t, t + 1, t, u64::MAX, u64::MAX]), 0);
        // Peers behind never move a clock back, and small differences are noise.
        assert_eq!(fine.observe(t, &[1, 1, 1]), 0);
        assert_eq!(fine.observe(t, &[t + 2, t + 2, t + 2]), 0);
        // The correction goes once the peers agree with the clock again.
        assert_eq!(clock.observe(right, &[right, right, right]), 0);
        assert_eq!(clock.correction(), 0);
    }

    #[test]
    fn liars_move_a_clock_at_most_the_cap_and_a_lone_correction_fades() {
        let clock = Clock::new(0, WallClock::system());
        let t = clock.own();
        let year = 365 * 86_400;
        // A majority of liars a year ahead: moved by the cap, no more.
        assert_eq!(
            clock.observe(t, &[t, t, t + year, t + year, t + year]),
            MAX_CORRECTION_SECS
        );
        // The liars leave: too few answers to confirm it, and the correction fades.
        let mut rounds = 0;
        while clock.observe(t, &[t, t]) > 0 {
            rounds += 1;
            assert!(rounds < 16, "the correction did not fade");
        }
        assert_eq!(clock.correction(), 0);
    }
}
