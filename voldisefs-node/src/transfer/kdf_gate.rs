//! Admission control for Argon2id, the one thing a single request can make expensive: every
//! key derivation of this node runs through one [`KdfGate`].
//!
//! Bounds: at most `kdf_concurrency` derivations run at once (so their memory is at most that
//! many times the largest accepted `m`); a request waits for its turn at most
//! `kdf_queue_timeout` and is then refused as busy (HTTP 503 with `Retry-After`); a record
//! whose parameters exceed the reader ceiling (`kdf_max`, raised to the node's own writer
//! parameters if those are higher) is refused before anything runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::Semaphore;
use voldisefs_crypto::{KdfParams, KekCache};

use crate::NodeError;

/// The node's gate for key derivations.
#[derive(Debug)]
pub(crate) struct KdfGate {
    permits: Semaphore,
    queue_timeout: Duration,
    ceiling: KdfParams,
    running: AtomicU64,
    refused: AtomicU64,
    cache: Arc<KekCache>,
    hits: AtomicU64,
    runs: AtomicU64,
}

impl KdfGate {
    /// A gate letting `concurrency` derivations run at once, each waiting at most
    /// `queue_timeout` for its turn, reading records up to `ceiling`, with `cache` for the
    /// keys of recent reads.
    pub(crate) fn new(
        concurrency: usize,
        queue_timeout: Duration,
        ceiling: KdfParams,
        cache: KekCache,
    ) -> Self {
        Self {
            permits: Semaphore::new(concurrency.max(1)),
            queue_timeout,
            ceiling,
            running: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cache: Arc::new(cache),
            hits: AtomicU64::new(0),
            runs: AtomicU64::new(0),
        }
    }

    /// The cache of recently derived password keys.
    pub(crate) fn cache(&self) -> Arc<KekCache> {
        self.cache.clone()
    }

    /// Counts a read served from the cache (no derivation).
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads served from the cache so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// The costliest parameters a record may ask of this node.
    pub(crate) fn ceiling(&self) -> KdfParams {
        self.ceiling
    }

    /// Runs `derive` (a blocking key derivation) on the blocking pool once a slot is free, or
    /// fails with [`NodeError::Busy`] if none frees up within the queue timeout.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        derive: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NodeError> {
        let permit = match tokio::time::timeout(self.queue_timeout, self.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(NodeError::Busy(format!(
                    "too many password checks in progress; none finished within {} ms",
                    self.queue_timeout.as_millis()
                )));
            }
        };
        self.running.fetch_add(1, Ordering::Relaxed);
        self.runs.fetch_add(1, Ordering::Relaxed);
        let result = crate::transfer::store::scrubbed(derive).await;
        self.running.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
        Ok(result?)
    }

    /// Derivations started so far.
    pub(crate) fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Derivations running now.
    pub(crate) fn running(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Requests refused as busy so far.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_its_turn_then_gives_up() {
        let gate = std::sync::Arc::new(KdfGate::new(
            1,
            Duration::from_millis(50),
            KdfParams::default(),
            KekCache::new(0, Duration::ZERO).unwrap(),
        ));
        let (entered, release) = (
            std::sync::Arc::new(std::sync::Barrier::new(2)),
            std::sync::Arc::new(std::sync::Barrier::new(2)),
        );
        let holder = {
            let (gate, entered, release) = (gate.clone(), entered.clone(), release.clone());
            tokio::spawn(async move {
                gate.run(move || {
                    entered.wait();
                    release.wait();
                })
                .await
            })
        };
        // The one slot is taken: a second derivation waits 50 ms, then is refused.
        tokio::task::spawn_blocking({
            let entered = entered.clone();
            move || entered.wait()
        })
        .await
        .unwrap();
        assert_eq!(gate.running(), 1);
        let second = gate.run(|| ()).await;
        assert!(matches!(second, Err(NodeError::Busy(_))), "{second:?}");
        assert_eq!(gate.refused(), 1);
        tokio::task::spawn_blocking(move || release.wait())
            .await
            .unwrap();
        holder.await.unwrap().unwrap();
        // Free again: the next one runs.
        assert_eq!(gate.run(|| 7).await.unwrap(), 7);
        assert_eq!(gate.running(), 0);
    }
}
