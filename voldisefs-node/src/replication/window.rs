//! A transfer's window of chunks in flight, sized by the latency this node observes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::health::Failure;
use super::layer::Layer;

/// The rate a transfer window is sized for (bytes a second): see [`Window`].
pub(crate) const WINDOW_RATE: f64 = 2.0 * 1024.0 * 1024.0 * 1024.0;
/// Most bytes of chunks one transfer keeps in flight when its window grows with latency.
pub(crate) const WINDOW_MAX_BYTES: usize = 128 * 1024 * 1024;

/// One transfer's window of chunks in flight: `base`, plus what covers the median latency
/// of this node's recent puts or gets at [`WINDOW_RATE`] bytes a second (the
/// bandwidth-delay product), at most [`WINDOW_MAX_BYTES`] of chunks (or `base`, if more).
/// On a fast link that adds a chunk or two; over 80 ms it keeps the pipe full instead of
/// waiting a round trip per window. The growth beyond `base` is drawn from a node-wide pool
/// (`NodeConfig::transfer_window_budget`, 512 MiB by default) and given back when the window
/// shrinks or is dropped, so many slow transfers at once cannot make a node hold more than
/// that beyond their base windows.
#[derive(Debug)]
pub(crate) struct Window {
    layer: Arc<Layer>,
    base: usize,
    chunk_len: usize,
    what: Failure,
    /// Bytes of growth held from the pool.
    held: usize,
}

impl Window {
    /// A window of `base` chunks of `chunk_len` bytes to begin with, growing with the latency
    /// of puts (`Failure::Put`) or gets; its growth is drawn from `layer`'s pool.
    pub(super) fn new(layer: Arc<Layer>, base: usize, chunk_len: usize, what: Failure) -> Self {
        Window {
            layer,
            base: base.max(1),
            chunk_len: chunk_len.max(1),
            what,
            held: 0,
        }
    }

    /// Chunks that may be in flight now (asked before each chunk starts).
    pub(crate) fn size(&mut self) -> usize {
        let health = &self.layer.health;
        let latency = match self.what {
            Failure::Put => health.put_latency(),
            _ => health.get_latency(),
        };
        // The chunks' own latency, or the round trip while they have not been timed enough
        // (one round trip timed is enough: a download times its record's before it starts).
        let median = match (latency.median(), health.rtt().median_of(1)) {
            (Some(chunks), Some(rtt)) => Some(chunks.max(rtt)),
            (chunks, rtt) => chunks.or(rtt),
        };
        let want = (window_for(self.base, self.chunk_len, median) - self.base)
            .saturating_mul(self.chunk_len);
        let pool = &self.layer.window_pool;
        if want > self.held {
            let asked = want - self.held;
            let took = pool
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                    Some(free - free.min(asked))
                })
                .map_or(0, |free| free.min(asked));
            self.held += took;
        } else if want < self.held {
            pool.fetch_add(self.held - want, Ordering::AcqRel);
            self.held = want;
        }
        self.base + self.held / self.chunk_len
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        self.layer
            .window_pool
            .fetch_add(self.held, Ordering::AcqRel);
    }
}

/// The window for a median latency of `median` (`None`: not measured yet).
fn window_for(base: usize, chunk_len: usize, median: Option<Duration>) -> usize {
    let base = base.max(1);
    let Some(median) = median else {
        return base;
    };
    let chunk_len = chunk_len.max(1);
    let extra = (median.as_secs_f64() * WINDOW_RATE / chunk_len as f64).ceil() as usize;
    let cap = base.max(WINDOW_MAX_BYTES / chunk_len);
    base.saturating_add(extra).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_covers_the_latency_within_its_cap() {
        const MIB: usize = 1 << 20;
        assert_eq!(
            window_for(4, MIB, None),
            4,
            "nothing measured: the configured window"
        );
        assert_eq!(window_for(4, MIB, Some(Duration::ZERO)), 4);
        // A MiB takes 1/2048 s at 2 GiB/s: a latency of about two of those, two chunks more.
        assert_eq!(
            window_for(4, MIB, Some(Duration::from_nanos(2 * 488_281))),
            6
        );
        assert_eq!(window_for(4, MIB, Some(Duration::from_millis(1))), 7);
        // 20 ms is 41 chunks more; 80 ms would be 164 more: capped at 128 MiB of chunks.
        assert_eq!(window_for(4, MIB, Some(Duration::from_millis(20))), 45);
        assert_eq!(window_for(4, MIB, Some(Duration::from_millis(80))), 128);
        // Small chunks: many more of them, the same bytes at most.
        assert_eq!(window_for(4, 64 << 10, Some(Duration::from_secs(1))), 2048);
        // A configured window above the cap stays as configured.
        assert_eq!(window_for(200, MIB, Some(Duration::from_secs(1))), 200);
        assert_eq!(window_for(0, MIB, None), 1, "never no window at all");
    }
}
