//! Where a node runs its CPU work (hashing bodies, proofs, erasure coding, opening and sealing
//! objects): on tokio's blocking pool, so that it never holds up a runtime worker; or, in the
//! whole-node simulation, inline on the calling task.
//!
//! Inline is for the simulation only: there every node runs on one thread under simulated
//! time, and work on the blocking pool would finish after however many simulated steps the
//! machine's real threads happen to take, so a seed would not replay exactly. A node started
//! on a simulated listener ([`voldisefs_net::Listener::is_simulated`]) switches its thread to
//! inline; no other node can.

use std::cell::Cell;

thread_local! {
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// Runs CPU work inline on this thread from now on (a simulated node's thread).
pub(crate) fn run_inline_on_this_thread() {
    INLINE.set(true);
}

/// Whether CPU work runs inline on this thread.
pub(crate) fn inline() -> bool {
    INLINE.get()
}

/// Runs `f` on the blocking pool (or inline, see the module docs) and returns its result.
pub(crate) async fn run<R, F>(f: F) -> Result<R, tokio::task::JoinError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    if inline() {
        return Ok(f());
    }
    tokio::task::spawn_blocking(f).await
}
