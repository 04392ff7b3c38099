//! The bounded set of node ids that announced their leave.

use std::collections::{HashSet, VecDeque};

use voldisefs_proto::NodeId;

/// Ids of nodes that announced their leave, remembered so they are never revived.
///
/// Cap: `cap` ids. Eviction: when full, the id recorded first is forgotten.
#[derive(Debug)]
pub(super) struct LeftIds {
    cap: usize,
    /// Insertion order, oldest first; holds exactly the ids in `set`.
    order: VecDeque<NodeId>,
    set: HashSet<NodeId>,
}

impl LeftIds {
    /// An empty set holding at most `cap` ids (at least one).
    pub(super) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// Remembers `id`, forgetting the oldest id if the set is full.
    pub(super) fn insert(&mut self, id: NodeId) {
        if !self.set.insert(id) {
            return;
        }
        self.order.push_back(id);
        while self.order.len() > self.cap {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
    }

    /// Whether `id` is remembered.
    pub(super) fn contains(&self, id: &NodeId) -> bool {
        self.set.contains(id)
    }

    /// Number of remembered ids.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.set.len()
    }
}
