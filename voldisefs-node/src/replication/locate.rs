//! Finding which nodes hold objects: the ranked holders first (one batched `has_chunks` per
//! node, hedged chunk by chunk), every other live peer only for what none of them confirms.

use std::collections::HashMap;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;
use voldisefs_proto::{ChunkId, NodeId};

use super::health::Failure;
use super::holder::Holder;
use super::layer::Layer;

impl Layer {
    /// For each of `ids`, the nodes that say they hold it (empty: no reachable node has it).
    ///
    /// Asks the best-ranked holder of each chunk first (one batched `has_chunks` per node);
    /// a chunk that holder does not confirm, whether it says no, fails, or has not answered
    /// within the hedging delay, is asked of its next-ranked holder, up to `replicas` of them.
    /// So a download costs about one such question per chunk however large the network, and a
    /// hung node costs one hedging delay. Chunks none of their ranked holders confirms are then
    /// looked for on every other live peer.
    pub(super) async fn locate(&self, ids: &[ChunkId]) -> Vec<Vec<NodeId>> {
        let nodes = self.nodes();
        let r = self.replicas();
        let ranked: Vec<Vec<Holder>> = ids
            .iter()
            .map(|id| {
                let mut ranked = self.rank(id, &nodes);
                ranked.truncate(r);
                ranked
            })
            .collect();
        let mut found: Vec<Vec<NodeId>> = vec![Vec::new(); ids.len()];
        // Per chunk: how many of its ranked holders were asked so far.
        let mut asked = vec![0usize; ids.len()];
        let mut running = FuturesUnordered::new();
        let ask =
            |wanted: Vec<usize>, asked: &mut Vec<usize>, running: &mut FuturesUnordered<_>| {
                let mut batches: HashMap<Holder, Vec<usize>> = HashMap::new();
                for i in wanted {
                    if let Some(holder) = ranked[i].get(asked[i]) {
                        asked[i] += 1;
                        batches.entry(*holder).or_default().push(i);
                    }
                }
                for (holder, indices) in batches {
                    running.push(async move {
                        let batch: Vec<ChunkId> = indices.iter().map(|&i| ids[i]).collect();
                        (holder, indices, self.has_on(holder, &batch).await)
                    });
                }
            };
        // What this node holds needs no question.
        let here = self.local.has(ids);
        let local = self.me().id;
        for (i, held) in here.iter().enumerate() {
            if *held {
                found[i].push(local);
            }
        }
        let wanted = (0..ids.len()).filter(|&i| found[i].is_empty()).collect();
        ask(wanted, &mut asked, &mut running);
        let hedge = self.hedge_delay(Failure::Get);
        let mut next_hedge = Instant::now() + hedge;
        while !running.is_empty() {
            tokio::select! {
                done = running.next() => {
                    let Some((holder, indices, answer)) = done else { break };
                    let present = match answer {
                        Ok(present) => present,
                        Err(e) => {
                            tracing::debug!(peer = %holder.id(), error = %e, "has_chunks failed");
                            vec![false; indices.len()]
                        }
                    };
                    let mut again = Vec::new();
                    for (&i, here) in indices.iter().zip(present) {
                        if here {
                            found[i].push(holder.id());
                        } else if found[i].is_empty() {
                            again.push(i);
                        }
                    }
                    ask(again, &mut asked, &mut running);
                }
                () = tokio::time::sleep_until(next_hedge) => {
                    // Slow answers: ask the next holder of every chunk still unconfirmed.
                    let slow: Vec<usize> = (0..ids.len()).filter(|&i| found[i].is_empty()).collect();
                    ask(slow, &mut asked, &mut running);
                    next_hedge = Instant::now() + hedge;
                }
            }
            if found.iter().all(|f| !f.is_empty()) {
                break;
            }
        }
        drop(running);
        let missing: Vec<usize> = (0..ids.len()).filter(|&i| found[i].is_empty()).collect();
        if !missing.is_empty() {
            let wanted: Vec<ChunkId> = missing.iter().map(|&i| ids[i]).collect();
            let others: Vec<Holder> = nodes
                .iter()
                .map(|p| self.holder(*p))
                .filter(|h| h.is_remote())
                .collect();
            let wide = self.locate_among(&wanted, &others).await;
            for (&i, holders) in missing.iter().zip(wide) {
                found[i] = holders.into_iter().map(|h| h.id()).collect();
            }
        }
        found
    }

    /// For each of `ids`, which of `holders` say they hold it (all asked at once, each with
    /// the per-attempt deadline), in the order of `holders`.
    pub(super) async fn locate_among(
        &self,
        ids: &[ChunkId],
        holders: &[Holder],
    ) -> Vec<Vec<Holder>> {
        let answers: Vec<(Holder, Vec<bool>)> = holders
            .iter()
            .map(|h| async move { (*h, self.has_on(*h, ids).await) })
            .collect::<FuturesUnordered<_>>()
            .filter_map(|(h, answer)| async move { answer.ok().map(|a| (h, a)) })
            .collect()
            .await;
        let mut found = vec![Vec::new(); ids.len()];
        for holder in holders {
            if let Some((_, present)) = answers.iter().find(|(h, _)| h == holder) {
                for (i, here) in present.iter().enumerate() {
                    if *here {
                        found[i].push(*holder);
                    }
                }
            }
        }
        found
    }
}
