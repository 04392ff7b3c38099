//! Fetching one object from its holders: this node first, then the ranked holders, hedging
//! past slow ones, and only on a miss everywhere the other live peers.

use bytes::Bytes;
use voldisefs_proto::{ChunkId, NodeId};
use voldisefs_store::ChunkStore;

use super::health::Failure;
use super::hedge::{self, AttemptError};
use super::holder::{Holder, HolderError};
use super::layer::Layer;
use super::scrub::scrubbed;
use crate::NodeError;

/// What a fetch found.
#[derive(Debug)]
pub(crate) enum Fetched<T> {
    /// A holder served bytes that `open` accepted.
    Found(T),
    /// Holders answered that the chunk was deleted.
    Deleted,
    /// No reachable node has it.
    Missing,
}

impl<T> Fetched<T> {
    /// What was found, changed by `f`.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Fetched<U> {
        match self {
            Fetched::Found(found) => Fetched::Found(f(found)),
            Fetched::Deleted => Fetched::Deleted,
            Fetched::Missing => Fetched::Missing,
        }
    }
}

impl Layer {
    /// This node's own copy of `id`, if it holds one (checked against the id when it was
    /// stored, so it needs no second hash; an expired one is dropped and not returned).
    pub(super) fn local_copy(&self, id: &ChunkId) -> Option<Bytes> {
        self.local.get(id).ok()
    }

    /// Fetches chunk `id` and passes the bytes to `open` (run on the blocking pool, which
    /// verifies and decodes them). Asks this node first when it holds the chunk, then the
    /// ranked holders (`claimed` ones first within a class), hedging past slow ones; only
    /// when all of those miss are the other live peers asked. Bytes `open` rejects as corrupt
    /// demote their holder and the next one is tried.
    ///
    /// [`Fetched::Deleted`] when holders answered that the chunk was deleted and none served
    /// it, [`Fetched::Missing`] when no reachable node has it.
    pub(super) async fn fetch<T, F>(
        &self,
        id: ChunkId,
        claimed: &[NodeId],
        open: F,
    ) -> Result<Fetched<T>, NodeError>
    where
        T: Send + 'static,
        F: Fn(Bytes) -> Result<T, AttemptError> + Clone + Send + Sync + 'static,
    {
        let nodes = self.nodes();
        let mut ranked = self.rank(&id, &nodes);
        // Within each class of the ranking, known holders first; this node first of all when
        // it holds the chunk.
        let here = self.local.store.contains(&id);
        ranked.sort_by_cached_key(|h| match h {
            Holder::Local(_) => (0, !here),
            Holder::Remote(p) => (self.class_of(h), !claimed.contains(&p.id)),
        });
        let window = self.replicas() + 2;
        let (first, rest): (Vec<Holder>, Vec<Holder>) = {
            let mut first = ranked;
            let rest = first.split_off(window.min(first.len()));
            (first, rest)
        };
        let mut deleted = 0usize;
        if let Some(found) = self.fetch_from(id, first, &open, &mut deleted).await? {
            return Ok(Fetched::Found(found));
        }
        // A miss on every ranked holder: ask everyone else which has it.
        let wide = self
            .locate_among(&[id], &rest)
            .await
            .pop()
            .unwrap_or_default();
        if let Some(found) = self.fetch_from(id, wide, &open, &mut deleted).await? {
            return Ok(Fetched::Found(found));
        }
        Ok(if deleted > 0 {
            Fetched::Deleted
        } else {
            Fetched::Missing
        })
    }

    async fn fetch_from<T, F>(
        &self,
        id: ChunkId,
        candidates: Vec<Holder>,
        open: &F,
        deleted: &mut usize,
    ) -> Result<Option<T>, NodeError>
    where
        T: Send + 'static,
        F: Fn(Bytes) -> Result<T, AttemptError> + Clone + Send + Sync + 'static,
    {
        if candidates.is_empty() {
            return Ok(None);
        }
        let hedge = self.hedge_delay(Failure::Get);
        let run = hedge::hedged(candidates, 1, hedge, |holder| async move {
            let bytes = self.get_from(holder, id).await?;
            let open = open.clone();
            let opened = scrubbed(move || open(bytes))
                .await
                .map_err(|e| AttemptError::Stop(e.into()))?;
            if let (Err(AttemptError::Next(e)), Holder::Remote(peer)) = (&opened, holder) {
                tracing::warn!(peer = %peer.id, chunk = %id, error = %e, "holder served a corrupt chunk");
                self.health.failure(peer.id, Failure::Get);
            }
            opened
        })
        .await?;
        *deleted += run
            .failed
            .iter()
            .filter(|(_, e)| *e == HolderError::Deleted)
            .count();
        Ok(run.ok.into_iter().next().map(|(_, value)| value))
    }
}
