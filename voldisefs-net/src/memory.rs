//! The node-wide budget of memory for incoming frames not yet complete.
//!
//! Every peer connection (inbound and outbound, open and keyed mode, before and after its
//! `hello`) reads through a [`Lease`] on the node's [`FrameBudget`]. Each buffer it holds for an
//! incomplete frame (the read buffer; in keyed mode also the decrypted bytes) is granted before
//! it is allocated, at its exact size. A grant is refused when it would take the connection's
//! address (an IPv4 address, or an IPv6 /64) beyond its share
//! ([`NetConfig::frame_memory_per_ip`](crate::NetConfig)) or the node beyond the budget
//! ([`NetConfig::frame_memory`](crate::NetConfig)); the connection then reads nothing more
//! (TCP pushes back on the sender) until memory frees, and the frame timeout closes it if its
//! frame does not complete in time. When the budget is spent and the address holding the most
//! holds more than the refused address would with its grant, that address's largest
//! connection is closed ([`CodecError::MemoryReclaimed`](voldisefs_proto::CodecError)), so
//! memory is shared out fairly between addresses (max-min): a peer gets at least
//! `min(per-address share, budget / addresses holding frame memory)`.
//!
//! Complete frames handed to the node are no longer counted: they are the handler's.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Context;

use futures_util::task::AtomicWaker;
use voldisefs_proto::codec::FrameMemory;

/// What a connection's address counts as: an IPv4 address, or the /64 of an IPv6 one.
fn group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// The buffers of one connection that hold incomplete frames.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Buffer {
    /// The bytes read from the socket.
    Wire = 0,
    /// Keyed mode: decrypted bytes of the frame being read.
    Plain = 1,
}

/// Frame memory of the node now, and the most it held at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameMemoryStats {
    /// Bytes of buffers now held for incoming frames not yet complete, all connections
    /// together.
    pub buffered: usize,
    /// The most `buffered` has been since the network started.
    pub peak: usize,
    /// The budget ([`NetConfig::frame_memory`](crate::NetConfig)); `buffered` never exceeds it.
    pub budget: usize,
    /// Connections closed to give their frame memory to an address holding less.
    pub reclaimed: u64,
}

/// What wakes a connection and tells it it must give its memory back.
#[derive(Debug, Default)]
struct Signal {
    task: AtomicWaker,
    reclaimed: AtomicBool,
}

#[derive(Debug)]
struct Entry {
    group: IpAddr,
    held: [usize; 2],
    signal: Arc<Signal>,
}

impl Entry {
    fn total(&self) -> usize {
        self.held.iter().sum()
    }
}

#[derive(Debug, Default)]
struct State {
    used: usize,
    per_group: HashMap<IpAddr, usize>,
    leases: HashMap<u64, Entry>,
    next_id: u64,
    /// Leases refused since memory was last freed: woken when some is.
    starved: HashSet<u64>,
    /// Leases told to give their memory back that have not yet.
    reclaiming: HashSet<u64>,
    /// Memory set aside for the lease it was reclaimed for: (lease, bytes) others may not take.
    earmark: Option<(u64, usize)>,
    reclaimed: u64,
}

#[derive(Debug)]
struct Inner {
    budget: usize,
    per_group: usize,
    state: Mutex<State>,
    buffered: AtomicUsize,
    peak: AtomicUsize,
}

/// The node's budget of memory for incomplete incoming frames (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct FrameBudget(Arc<Inner>);

impl FrameBudget {
    /// A budget of `budget` bytes, at most `per_ip` of them for one address.
    pub(crate) fn new(budget: usize, per_ip: usize) -> Self {
        Self(Arc::new(Inner {
            budget,
            per_group: per_ip.min(budget),
            state: Mutex::new(State::default()),
            buffered: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }))
    }

    /// A lease for one connection with a peer at `ip`.
    pub(crate) fn lease(&self, ip: IpAddr) -> Arc<Lease> {
        let signal = Arc::new(Signal::default());
        let mut state = self.0.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.leases.insert(
            id,
            Entry {
                group: group(ip),
                held: [0; 2],
                signal: signal.clone(),
            },
        );
        Arc::new(Lease {
            budget: self.0.clone(),
            id,
            signal,
        })
    }

    /// Memory held now and at most.
    pub(crate) fn stats(&self) -> FrameMemoryStats {
        let reclaimed = self.0.lock().reclaimed;
        FrameMemoryStats {
            buffered: self.0.buffered.load(Ordering::Acquire),
            peak: self.0.peak.load(Ordering::Acquire),
            budget: self.0.budget,
            reclaimed,
        }
    }
}

/// Wakes every lease refused since memory was last freed (or set aside), to ask again.
fn wake_starved(state: &mut State) {
    for id in state.starved.drain() {
        if let Some(entry) = state.leases.get(&id) {
            entry.signal.task.wake();
        }
    }
}

/// Drops what is set aside for `id`, if anything: the others may ask for it again.
fn release_earmark(state: &mut State, id: u64) {
    if state.earmark.is_some_and(|(holder, _)| holder == id) {
        state.earmark = None;
        wake_starved(state);
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives `bytes` of `group` back and wakes every refused lease.
    fn free(&self, state: &mut State, group: IpAddr, bytes: usize) {
        if bytes == 0 {
            return;
        }
        state.used -= bytes;
        if let Some(held) = state.per_group.get_mut(&group) {
            *held -= bytes;
            if *held == 0 {
                state.per_group.remove(&group);
            }
        }
        self.buffered.store(state.used, Ordering::Release);
        wake_starved(state);
    }

    /// The budget is spent and `group` would hold `wanted`: tells the largest connection of
    /// the address holding the most to give its memory back, if that address holds more than
    /// `wanted` and no connection is already doing so; `more` of what it frees is set aside
    /// for `asker`'s next grant (so other waiting connections do not take it first).
    fn reclaim_for(
        &self,
        state: &mut State,
        asker: u64,
        group: IpAddr,
        wanted: usize,
        more: usize,
    ) {
        if !state.reclaiming.is_empty() || state.earmark.is_some() {
            return;
        }
        let Some((&top, &most)) = state.per_group.iter().max_by_key(|&(_, &held)| held) else {
            return;
        };
        if top == group || most <= wanted {
            return;
        }
        let victim = state
            .leases
            .iter()
            .filter(|(_, e)| e.group == top)
            .max_by_key(|(_, e)| e.total())
            .map(|(&id, e)| (id, e.signal.clone()));
        if let Some((id, signal)) = victim {
            let bytes = state.leases.get(&id).map_or(0, Entry::total);
            state.earmark = Some((asker, bytes.min(more)));
            state.reclaiming.insert(id);
            state.reclaimed += 1;
            signal.reclaimed.store(true, Ordering::Release);
            signal.task.wake();
        }
    }
}

/// One connection's share of the [`FrameBudget`]; gives everything back when dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    budget: Arc<Inner>,
    id: u64,
    signal: Arc<Signal>,
}

impl Lease {
    /// Lets `buffer` hold `bytes` (see [`FrameMemory::hold`]).
    fn hold(&self, buffer: Buffer, bytes: usize) -> bool {
        let inner = &*self.budget;
        let mut guard = inner.lock();
        let state = &mut *guard;
        let Some(entry) = state.leases.get(&self.id) else {
            return false;
        };
        let old = entry.held[buffer as usize];
        let group = entry.group;
        if bytes <= old {
            if let Some(entry) = state.leases.get_mut(&self.id) {
                entry.held[buffer as usize] = bytes;
            }
            // Its frame is done (or shrinking): what was set aside is everyone's again.
            release_earmark(state, self.id);
            inner.free(state, group, old - bytes);
            return true;
        }
        if self.is_reclaimed() {
            return false;
        }
        let more = bytes - old;
        // Set aside for one grant only, and dropped if refused once the reclaimed memory is
        // free: a connection that then stalls (or meets its address's share) keeps nothing
        // from the others.
        let granted = self.grant(inner, state, group, more);
        if granted || state.reclaiming.is_empty() {
            release_earmark(state, self.id);
        }
        if let (true, Some(entry)) = (granted, state.leases.get_mut(&self.id)) {
            entry.held[buffer as usize] = bytes;
        }
        granted
    }

    /// Takes `more` bytes for `group` if its share and the budget (less what is set aside
    /// for another connection) allow; else enrols this lease to be woken when memory frees.
    fn grant(&self, inner: &Inner, state: &mut State, group: IpAddr, more: usize) -> bool {
        let group_held = state.per_group.get(&group).copied().unwrap_or(0);
        if group_held + more > inner.per_group {
            state.starved.insert(self.id);
            return false;
        }
        let set_aside = match state.earmark {
            Some((id, bytes)) if id != self.id => bytes,
            _ => 0,
        };
        if state.used + set_aside + more > inner.budget {
            state.starved.insert(self.id);
            inner.reclaim_for(state, self.id, group, group_held + more, more);
            return false;
        }
        state.used += more;
        *state.per_group.entry(group).or_insert(0) += more;
        inner.buffered.store(state.used, Ordering::Release);
        inner.peak.fetch_max(state.used, Ordering::AcqRel);
        true
    }

    /// The [`FrameMemory`] of one of this connection's buffers.
    pub(crate) fn memory(self: &Arc<Self>, buffer: Buffer) -> Arc<dyn FrameMemory> {
        Arc::new(BufferMemory {
            lease: self.clone(),
            buffer,
        })
    }

    /// Whether the connection must give its memory back (close).
    pub(crate) fn is_reclaimed(&self) -> bool {
        self.signal.reclaimed.load(Ordering::Acquire)
    }

    /// Wakes the task of `cx` when memory frees or the lease is reclaimed.
    pub(crate) fn register(&self, cx: &Context<'_>) {
        self.signal.task.register(cx.waker());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let inner = &*self.budget;
        let mut guard = inner.lock();
        let state = &mut *guard;
        state.starved.remove(&self.id);
        state.reclaiming.remove(&self.id);
        release_earmark(state, self.id);
        if let Some(entry) = state.leases.remove(&self.id) {
            inner.free(state, entry.group, entry.total());
        }
    }
}

/// One buffer of a [`Lease`], as the codec sees it.
#[derive(Debug)]
struct BufferMemory {
    lease: Arc<Lease>,
    buffer: Buffer,
}

impl FrameMemory for BufferMemory {
    fn hold(&self, bytes: usize) -> bool {
        self.lease.hold(self.buffer, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn grants_stay_within_the_address_share_and_the_budget() {
        let budget = FrameBudget::new(100, 60);
        let a = budget.lease(ip("192.0.2.1"));
        let a2 = budget.lease(ip("192.0.2.1"));
        let b = budget.lease(ip("198.51.100.7"));
        assert!(a.hold(Buffer::Wire, 40));
        assert!(!a2.hold(Buffer::Wire, 30), "beyond the address's share");
        assert!(a2.hold(Buffer::Plain, 20));
        assert!(b.hold(Buffer::Wire, 40));
        assert!(!b.hold(Buffer::Plain, 1), "beyond the budget");
        assert_eq!(budget.stats().buffered, 100);
        // 192.0.2.1 holds more than 198.51.100.7 would: its largest connection gives back.
        assert!(a.is_reclaimed() && !a2.is_reclaimed() && !b.is_reclaimed());
        // Shrinking is never refused and frees.
        assert!(a.hold(Buffer::Wire, 10));
        assert!(b.hold(Buffer::Plain, 20));
        assert!(!b.hold(Buffer::Plain, 21), "beyond the address's share");
        drop((a, a2));
        assert_eq!(budget.stats().buffered, 60);
        assert_eq!(budget.stats().peak, 100);
        drop(b);
        assert_eq!(budget.stats().buffered, 0);
        assert!(budget.0.lock().per_group.is_empty());
    }

    #[test]
    fn a_spent_budget_is_taken_back_from_the_address_holding_the_most() {
        let budget = FrameBudget::new(100, 60);
        let big = budget.lease(ip("192.0.2.1"));
        let bigger = budget.lease(ip("192.0.2.1"));
        let other = budget.lease(ip("192.0.2.2"));
        assert!(big.hold(Buffer::Wire, 20));
        assert!(bigger.hold(Buffer::Wire, 40));
        assert!(other.hold(Buffer::Wire, 40));
        // An IPv6 /64 is one address.
        let v6 = budget.lease(ip("2001:db8::1"));
        let v6_same = budget.lease(ip("2001:db8::ffff"));
        assert!(!v6.hold(Buffer::Wire, 10));
        assert!(bigger.is_reclaimed(), "the largest of the largest address");
        assert!(!other.is_reclaimed());
        // Only one at a time.
        assert!(!v6_same.hold(Buffer::Wire, 10));
        assert_eq!(budget.stats().reclaimed, 1);
        drop(bigger);
        // What `bigger` freed is set aside for the connection it was reclaimed for, and no
        // more is reclaimed meanwhile.
        assert!(!v6_same.hold(Buffer::Wire, 35));
        assert!(!other.is_reclaimed());
        // Set aside for one grant: the rest is everyone's again.
        assert!(v6.hold(Buffer::Wire, 10));
        assert!(v6_same.hold(Buffer::Wire, 20));
        // 192.0.2.2 (40) holds the most and wants more: nobody holds more than it would,
        // nothing is reclaimed.
        assert!(!other.hold(Buffer::Plain, 30));
        assert!(!big.is_reclaimed() && !v6.is_reclaimed() && !v6_same.is_reclaimed());
        assert_eq!(budget.stats().reclaimed, 1);
    }
}
