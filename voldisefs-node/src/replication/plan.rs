//! Repair decisions as a pure function: given what this node knows about each ranked node's
//! copy of one chunk, whom to ask next, whom to push to, and whether to drop the local copy.
//!
//! Rules:
//! * The *window* is the first `replicas` nodes in rendezvous order that can hold the chunk
//!   (nodes that failed or keep a tombstone are skipped).
//! * Only the best-ranked node known to hold the chunk pushes it (to window nodes missing it).
//!   A node that merely *claims* a copy is not trusted: only a proof counts.
//! * A copy is dropped only when the whole window consists of nodes ranked above this one
//!   that proved possession, so `replicas` proven copies remain. The order is the same on
//!   every node, so two nodes can never each count the other and both drop.
//! * A copy this node holds is dropped as deleted as soon as one node keeps a tombstone whose
//!   delete key fits it (statuses report `Deleted` only then; see `RemoteHolder::prove_checked`):
//!   only a holder of the file's delete key can make one, so it is the owner's word, and it
//!   outweighs copies elsewhere, which are dropped the same way when their holders ask.
//! * Before it pushes a copy to a node that lacks it, a node asks the rest of the first
//!   `2 * replicas` ranked nodes too (where deletes leave tombstones): a node that restarted
//!   and lost its tombstones must not get back what was deleted while others remember it.
//! * Handing off (this node holds no copy to check a key against), a chunk counts as deleted
//!   when enough nodes keep a tombstone for it (two, or one when `replicas` is at most 2) and
//!   no node proved a copy: one lying peer cannot erase a chunk.

/// What this node knows about one ranked node's copy of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// This node, which holds the chunk.
    Local,
    /// Not asked yet.
    Unknown,
    /// Proved possession for a fresh challenge.
    Proven,
    /// Said it does not hold the chunk: a push target.
    Missing,
    /// Accepted a push in this sweep (an acknowledgement, not a proof).
    Pushed,
    /// Keeps a tombstone: the chunk was deleted.
    Deleted,
    /// Failed to answer or to prove, refused a push, or is not trusted as a target now.
    Failed,
}

/// What to do next about one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Ask these nodes (indices into the ranking) for proofs first.
    Ask(Vec<usize>),
    /// Keep the local copy (if any); push it to these nodes.
    Keep {
        /// Nodes to push to (indices into the ranking).
        push: Vec<usize>,
    },
    /// Drop the local copy: `replicas` better-ranked nodes proved theirs.
    Drop,
    /// Drop the local copy and keep a tombstone: the chunk was deleted.
    DropDeleted,
}

/// Unchecked tombstones needed to believe a chunk was deleted (hand-off).
fn deleted_quorum(replicas: usize) -> usize {
    replicas.saturating_sub(1).clamp(1, 2)
}

/// Whether the chunk was deleted: one tombstone checked against the local copy, or without one
/// (hand-off) a quorum of tombstones and no proven copy.
fn deleted(statuses: &[Status], replicas: usize) -> bool {
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    let tombstones = count(Status::Deleted);
    if statuses.contains(&Status::Local) {
        tombstones > 0
    } else {
        tombstones >= deleted_quorum(replicas) && count(Status::Proven) == 0
    }
}

/// Nodes among the first `2 * replicas` ranked, outside `window`, not asked yet: asked before
/// any push (see the module docs).
fn unasked_beyond(statuses: &[Status], window: &[usize], replicas: usize) -> Vec<usize> {
    statuses
        .iter()
        .enumerate()
        .take(2 * replicas)
        .filter(|(i, s)| **s == Status::Unknown && !window.contains(i))
        .map(|(i, _)| i)
        .collect()
}

/// Keeps the copy and pushes to `missing`, unless nodes beyond the window are to be asked
/// first.
fn keep_or_ask(
    statuses: &[Status],
    window: &[usize],
    replicas: usize,
    missing: Vec<usize>,
) -> Plan {
    if !missing.is_empty() {
        let beyond = unasked_beyond(statuses, window, replicas);
        if !beyond.is_empty() {
            return Plan::Ask(beyond);
        }
    }
    Plan::Keep { push: missing }
}

/// Decides about one chunk. `statuses` follow rendezvous order; this node appears as
/// [`Status::Local`] when it keeps the chunk (upkeep) and not at all when it is leaving
/// (hand-off: it always pushes and never needs to drop).
pub(crate) fn plan(statuses: &[Status], replicas: usize) -> Plan {
    let replicas = replicas.max(1);
    let mut window = Vec::with_capacity(replicas);
    for (i, s) in statuses.iter().enumerate() {
        if window.len() == replicas {
            break;
        }
        if !matches!(s, Status::Deleted | Status::Failed) {
            window.push(i);
        }
    }
    let is = |i: &&usize, s: Status| statuses[**i] == s;
    let unknown: Vec<usize> = window
        .iter()
        .filter(|i| is(i, Status::Unknown))
        .copied()
        .collect();
    let missing: Vec<usize> = window
        .iter()
        .filter(|i| is(i, Status::Missing))
        .copied()
        .collect();
    let gone = deleted(statuses, replicas);
    let local = statuses.iter().position(|s| *s == Status::Local);
    let Some(local) = local else {
        // Hand-off: learn the window, then push to whoever misses the chunk.
        if !unknown.is_empty() {
            return Plan::Ask(unknown);
        }
        return if gone {
            Plan::DropDeleted
        } else {
            keep_or_ask(statuses, &window, replicas, missing)
        };
    };
    if gone {
        // A tombstone checked against this copy: nothing else to learn.
        return Plan::DropDeleted;
    }
    let above = |i: &&usize| **i < local;
    let proven_above = window
        .iter()
        .filter(above)
        .any(|i| statuses[*i] == Status::Proven);
    if window.contains(&local) {
        if proven_above {
            // A better holder proved its copy: it pushes; this one keeps its place.
            return Plan::Keep { push: Vec::new() };
        }
        let unknown_above: Vec<usize> = unknown.iter().filter(above).copied().collect();
        if !unknown_above.is_empty() {
            return Plan::Ask(unknown_above);
        }
    }
    // This node is outside the window, or the best holder inside it: it needs to know
    // the whole window.
    if !unknown.is_empty() {
        return Plan::Ask(unknown);
    }
    if !window.contains(&local) {
        if window.len() == replicas && window.iter().all(|i| statuses[*i] == Status::Proven) {
            return Plan::Drop;
        }
        if proven_above {
            return Plan::Keep { push: Vec::new() };
        }
    }
    keep_or_ask(statuses, &window, replicas, missing)
}

/// Decides about one chunk of a fresh upload this node holds ([`Repairer::settle`](super::repair::Repairer::settle)):
/// like [`plan`], except that this node does not leave a missing copy to the best-ranked
/// holder's next sweep. It asks every holder in the window that has not answered yet and pushes
/// to every one that lacks the chunk, wherever it ranks itself, so a holder that acknowledged
/// the put and kept nothing (or cannot prove it) is replaced within one round of proofs.
pub(crate) fn plan_settling(statuses: &[Status], replicas: usize) -> Plan {
    let replicas = replicas.max(1);
    let window: Vec<usize> = statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| !matches!(s, Status::Deleted | Status::Failed))
        .map(|(i, _)| i)
        .take(replicas)
        .collect();
    let with = |status: Status| -> Vec<usize> {
        window
            .iter()
            .filter(|i| statuses[**i] == status)
            .copied()
            .collect()
    };
    let unknown = with(Status::Unknown);
    if !unknown.is_empty() {
        return Plan::Ask(unknown);
    }
    if deleted(statuses, replicas) {
        return Plan::DropDeleted;
    }
    let missing = with(Status::Missing);
    if !missing.is_empty() {
        return keep_or_ask(statuses, &window, replicas, missing);
    }
    let local = statuses.iter().position(|s| *s == Status::Local);
    match local {
        Some(local)
            if !window.contains(&local)
                && window.len() == replicas
                && window.iter().all(|i| statuses[*i] == Status::Proven) =>
        {
            Plan::Drop
        }
        _ => Plan::Keep { push: Vec::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::Status::{Deleted, Failed, Local, Missing, Proven, Pushed, Unknown};
    use super::*;

    fn keep(push: &[usize]) -> Plan {
        Plan::Keep {
            push: push.to_vec(),
        }
    }

    #[test]
    fn best_holder_learns_the_window_then_pushes() {
        assert_eq!(
            plan(&[Local, Unknown, Unknown, Unknown], 3),
            Plan::Ask(vec![1, 2])
        );
        // Before pushing, the rest of the first 2 * replicas are asked for tombstones.
        assert_eq!(
            plan(&[Local, Proven, Missing, Unknown], 3),
            Plan::Ask(vec![3])
        );
        assert_eq!(plan(&[Local, Proven, Missing, Missing], 3), keep(&[2]));
        assert_eq!(plan(&[Local, Pushed, Pushed, Unknown], 3), keep(&[]));
    }

    #[test]
    fn settling_asks_the_whole_window_and_replaces_a_failed_holder_itself() {
        // A holder ranked below a proven one leaves the rest to the sweep; settling does not.
        assert_eq!(
            plan_settling(&[Unknown, Unknown, Local, Unknown], 3),
            Plan::Ask(vec![0, 1])
        );
        assert_eq!(
            plan_settling(&[Proven, Failed, Local, Unknown], 3),
            Plan::Ask(vec![3])
        );
        assert_eq!(
            plan_settling(&[Proven, Failed, Local, Missing, Unknown], 3),
            Plan::Ask(vec![4])
        );
        assert_eq!(
            plan_settling(&[Proven, Failed, Local, Missing], 3),
            keep(&[3])
        );
        assert_eq!(
            plan_settling(&[Proven, Failed, Local, Pushed], 3),
            keep(&[])
        );
        // The gateway's extra copy goes once the window proved; not before.
        assert_eq!(
            plan_settling(&[Proven, Failed, Proven, Proven, Local], 3),
            Plan::Drop
        );
        assert_eq!(
            plan_settling(&[Proven, Failed, Proven, Pushed, Local], 3),
            keep(&[])
        );
        // Deleted elsewhere: dropped.
        assert_eq!(
            plan_settling(&[Deleted, Deleted, Local], 3),
            Plan::DropDeleted
        );
        assert_eq!(
            plan_settling(&[Proven, Deleted, Local], 3),
            Plan::DropDeleted
        );
        // Too few nodes: keeps.
        assert_eq!(plan_settling(&[Proven, Local], 3), keep(&[]));
    }

    #[test]
    fn a_holder_below_a_proven_one_just_keeps() {
        assert_eq!(plan(&[Unknown, Local, Unknown], 3), Plan::Ask(vec![0]));
        assert_eq!(plan(&[Proven, Local, Unknown], 3), keep(&[]));
    }

    #[test]
    fn claims_that_fail_proof_make_this_node_the_pusher() {
        // The best-ranked node claims the chunk but cannot prove it: this node pushes.
        assert_eq!(
            plan(&[Failed, Local, Unknown, Unknown], 3),
            Plan::Ask(vec![2, 3])
        );
        assert_eq!(
            plan(&[Failed, Local, Proven, Missing, Missing], 3),
            keep(&[3])
        );
    }

    #[test]
    fn drop_only_when_the_whole_window_above_proved() {
        assert_eq!(
            plan(&[Unknown, Unknown, Unknown, Local], 3),
            Plan::Ask(vec![0, 1, 2])
        );
        assert_eq!(plan(&[Proven, Proven, Proven, Local], 3), Plan::Drop);
        // A liar in the window: its failed proof widens the window to include this node.
        assert_eq!(plan(&[Proven, Failed, Proven, Local], 3), keep(&[]));
        // Pushed copies are not proof yet.
        assert_eq!(plan(&[Proven, Pushed, Proven, Local], 3), keep(&[]));
        // Missing copies above: the proven holder above pushes; keep meanwhile.
        assert_eq!(plan(&[Proven, Missing, Missing, Local], 3), keep(&[]));
        // Nobody above proved: this node is the best holder and pushes.
        assert_eq!(
            plan(&[Missing, Missing, Missing, Local], 3),
            keep(&[0, 1, 2])
        );
        assert_eq!(
            plan(
                &[Missing, Missing, Missing, Local, Unknown, Unknown, Unknown],
                3
            ),
            Plan::Ask(vec![4, 5])
        );
    }

    #[test]
    fn never_fewer_than_replicas_proven_copies() {
        // Exhaustive over small rankings: whenever the plan drops, `replicas` other nodes
        // proved their copies.
        let all = [Unknown, Proven, Missing, Pushed, Deleted, Failed];
        for replicas in 1..=3 {
            for n in 1..=4usize {
                let total = all.len().pow(n as u32);
                for code in 0..total {
                    let mut others: Vec<Status> = (0..n)
                        .map(|k| all[(code / all.len().pow(k as u32)) % all.len()])
                        .collect();
                    for pos in 0..=n {
                        let mut statuses = others.clone();
                        statuses.insert(pos, Local);
                        let p = plan(&statuses, replicas);
                        let proven = statuses.iter().filter(|s| **s == Proven).count();
                        match p {
                            Plan::Drop => assert!(proven >= replicas, "{statuses:?} -> {p:?}"),
                            Plan::DropDeleted => {
                                assert!(statuses.contains(&Deleted), "{statuses:?}")
                            }
                            Plan::Ask(ask) => {
                                assert!(!ask.is_empty());
                                assert!(ask.iter().all(|i| statuses[*i] == Unknown));
                            }
                            Plan::Keep { push } => {
                                assert!(push.iter().all(|i| statuses[*i] == Missing));
                                assert!(push.len() <= replicas);
                            }
                        }
                    }
                    others.clear();
                }
            }
        }
    }

    #[test]
    fn a_tombstone_whose_key_fits_the_local_copy_outweighs_copies_elsewhere() {
        // Statuses say `Deleted` only for a key checked against the local copy: the owner's
        // word, which no peer without the key can forge.
        assert_eq!(
            plan(&[Local, Deleted, Missing, Missing], 3),
            Plan::DropDeleted
        );
        assert_eq!(
            plan(&[Local, Deleted, Deleted, Proven, Missing], 3),
            Plan::DropDeleted
        );
        assert_eq!(
            plan(&[Proven, Proven, Local, Deleted], 3),
            Plan::DropDeleted
        );
        assert_eq!(plan(&[Local, Deleted], 2), Plan::DropDeleted);
    }

    #[test]
    fn a_restarted_node_gets_no_push_while_tombstones_may_be_unasked() {
        // Two fresh nodes rank first; the node that remembers the delete ranks fourth.
        let before = [Missing, Missing, Local, Unknown, Unknown];
        assert_eq!(plan(&before, 3), Plan::Ask(vec![3, 4]));
        assert_eq!(
            plan(&[Missing, Missing, Local, Deleted, Missing], 3),
            Plan::DropDeleted
        );
    }

    #[test]
    fn handing_off_unchecked_tombstones_need_a_quorum_and_no_proof() {
        assert_eq!(
            plan(&[Deleted, Missing, Missing, Missing], 3),
            keep(&[1, 2, 3])
        );
        assert_eq!(plan(&[Deleted, Deleted, Proven, Missing], 3), keep(&[3]));
        assert_eq!(
            plan(&[Deleted, Deleted, Missing, Missing], 3),
            Plan::DropDeleted
        );
    }

    #[test]
    fn hand_off_asks_then_pushes_to_the_window() {
        assert_eq!(
            plan(&[Unknown, Unknown, Unknown, Unknown], 3),
            Plan::Ask(vec![0, 1, 2])
        );
        assert_eq!(plan(&[Proven, Failed, Missing, Missing], 3), keep(&[2, 3]));
        assert_eq!(plan(&[Deleted, Deleted, Missing], 3), Plan::DropDeleted);
        assert_eq!(plan(&[], 3), keep(&[]));
    }
}
