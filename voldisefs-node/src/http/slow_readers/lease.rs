//! One response's share of the budget ([`Lease`]) and the body that keeps within it
//! ([`Budgeted`]): a response reserves before its pipeline starts a chunk, and gives back what its
//! pieces held once its client has taken them.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use futures_util::{Stream, StreamExt};

use super::{Guard, RESPONSE_READ_AHEAD};
use crate::transfer::download::{READ_AHEAD, ReadAhead};
use crate::{ByteStream, NodeError};

impl Guard {
    /// A share of the budget for one response, starting with `unit` bytes (one chunk):
    /// waits for them as [`Guard::reserve`] does.
    pub(crate) async fn lease(self: &Arc<Self>, unit: usize) -> Result<Arc<Lease>, NodeError> {
        let unit = unit.clamp(1, RESPONSE_READ_AHEAD);
        let reserved = self.clone().reserve(unit).await?;
        Ok(Arc::new(Lease {
            guard: self.clone(),
            reserved: AtomicUsize::new(reserved),
            downstream: AtomicUsize::new(0),
            unit: AtomicUsize::new(unit),
            waker: AtomicWaker::new(),
        }))
    }
}

/// One response's share of the budget: what it reserved, and what of it the pieces handed to
/// the connection hold. Returned to the budget when the response and its last piece are gone.
#[derive(Debug)]
pub(crate) struct Lease {
    guard: Arc<Guard>,
    /// Bytes reserved from the budget.
    reserved: AtomicUsize,
    /// Bytes of pieces handed out and not yet dropped (written).
    downstream: AtomicUsize,
    /// The largest chunk size seen: what the body must have free before it polls its source.
    unit: AtomicUsize,
    /// Woken when a piece is dropped.
    waker: AtomicWaker,
}

impl Lease {
    fn free(&self) -> usize {
        self.reserved
            .load(Ordering::Acquire)
            .saturating_sub(self.downstream.load(Ordering::Acquire))
    }

    /// Bytes to reserve before the source may be polled.
    fn need(&self) -> usize {
        self.unit
            .load(Ordering::Relaxed)
            .saturating_sub(self.free())
    }

    /// Takes `n` more bytes of the budget if they are free now and within the per-response cap.
    fn try_reserve(&self, n: usize) -> bool {
        let reserved = self.reserved.load(Ordering::Acquire);
        if n == 0 || reserved.saturating_add(n) > RESPONSE_READ_AHEAD {
            return false;
        }
        let Ok(wanted) = u32::try_from(n) else {
            return false;
        };
        match self.guard.budget.try_acquire_many(wanted) {
            Ok(permit) => {
                permit.forget();
                self.reserved.fetch_add(n, Ordering::AcqRel);
                true
            }
            Err(_) => false,
        }
    }
}

impl ReadAhead for Lease {
    fn window(&self, wanted: usize, chunk_len: usize) -> usize {
        let chunk_len = chunk_len.max(1);
        self.unit.fetch_max(chunk_len, Ordering::Relaxed);
        let want = wanted.saturating_mul(chunk_len);
        let free = self.free();
        if free < want {
            let room = RESPONSE_READ_AHEAD.saturating_sub(self.reserved.load(Ordering::Acquire));
            let more = (want - free).min(room);
            // All it wants, else one more chunk.
            let _ = self.try_reserve(more) || self.try_reserve(chunk_len.min(more));
        }
        (self.free() / chunk_len).min(wanted)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.guard.budget.add_permits(*self.reserved.get_mut());
    }
}

/// A piece handed to the connection, counted against its lease until dropped.
struct Held {
    piece: Bytes,
    lease: Arc<Lease>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.piece
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.lease
            .downstream
            .fetch_sub(self.piece.len(), Ordering::AcqRel);
        self.lease.waker.wake();
    }
}

/// A wait for bytes of the budget.
type Reserving = Pin<Box<dyn std::future::Future<Output = Result<usize, NodeError>> + Send>>;

/// A response body within its [`Lease`]: polled only when a chunk's worth of its share is
/// free (else it waits for its pieces to be written or for the budget), with the lease as the
/// read-ahead bound of the downloads it opens.
pub(crate) struct Budgeted {
    inner: ByteStream,
    lease: Arc<Lease>,
    waiting: Option<Reserving>,
}

impl Budgeted {
    /// `inner` within `lease`.
    pub(crate) fn new(inner: ByteStream, lease: Arc<Lease>) -> Self {
        Self {
            inner,
            lease,
            waiting: None,
        }
    }
}

impl Stream for Budgeted {
    type Item = Result<Bytes, NodeError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let need = this.lease.need();
            if need == 0 || this.lease.try_reserve(need) {
                // A wait no longer needed gives back what it was given.
                this.waiting = None;
                break;
            }
            // Woken when a piece is written, or when the budget has room.
            this.lease.waker.register(cx.waker());
            if this.lease.need() == 0 {
                this.waiting = None;
                break;
            }
            let guard = this.lease.guard.clone();
            let waiting = this
                .waiting
                .get_or_insert_with(|| Box::pin(guard.reserve(need)));
            match waiting.as_mut().poll(cx) {
                Poll::Ready(Ok(n)) => {
                    this.waiting = None;
                    this.lease.reserved.fetch_add(n, Ordering::AcqRel);
                }
                Poll::Ready(Err(e)) => {
                    this.waiting = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        let read_ahead: Arc<dyn ReadAhead> = this.lease.clone();
        let inner = &mut this.inner;
        let next = READ_AHEAD.sync_scope(read_ahead, || inner.poll_next_unpin(cx));
        match next {
            Poll::Ready(Some(Ok(piece))) if !piece.is_empty() => {
                this.lease
                    .downstream
                    .fetch_add(piece.len(), Ordering::AcqRel);
                let held = Held {
                    piece,
                    lease: this.lease.clone(),
                };
                Poll::Ready(Some(Ok(Bytes::from_owner(held))))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::RESPONSE_BUDGET;
    use super::*;

    #[tokio::test]
    async fn a_lease_bounds_read_ahead_and_returns_its_share() {
        let guard = Guard::new(Duration::from_secs(30));
        let lease = guard.lease(1 << 20).await.unwrap();
        assert_eq!(guard.held(), 1 << 20);
        // A reader's window gets what it asks for, within the per-response cap.
        assert_eq!(lease.window(16, 1 << 20), 16);
        assert_eq!(guard.held(), 16 << 20);
        assert_eq!(lease.window(1000, 1 << 20), RESPONSE_READ_AHEAD >> 20);
        assert_eq!(guard.held(), RESPONSE_READ_AHEAD);
        // Pieces handed out and not written take from the window.
        let body: ByteStream = Box::pin(futures_util::stream::iter(vec![Ok(Bytes::from(
            vec![7u8; 3 << 20],
        ))]));
        let mut body = Budgeted::new(body, lease.clone());
        let piece = body.next().await.unwrap().unwrap();
        assert_eq!(lease.window(1000, 1 << 20), (RESPONSE_READ_AHEAD >> 20) - 3);
        drop(piece);
        assert_eq!(lease.window(1000, 1 << 20), RESPONSE_READ_AHEAD >> 20);
        drop((body, lease));
        assert_eq!(guard.held(), 0);
    }

    #[tokio::test]
    async fn a_spent_budget_stops_the_window_and_refuses_new_leases() {
        let guard = Guard::new(Duration::from_secs(30));
        let leases: Vec<_> = futures_util::future::join_all(
            (0..RESPONSE_BUDGET / RESPONSE_READ_AHEAD).map(|_| guard.lease(RESPONSE_READ_AHEAD)),
        )
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
        assert_eq!(guard.held(), RESPONSE_BUDGET);
        // No room: a reader's window has no more than its lease.
        assert_eq!(leases[0].window(1000, 1 << 20), RESPONSE_READ_AHEAD >> 20);
        tokio::time::pause();
        let refused = guard.lease(1 << 20).await;
        assert!(matches!(refused, Err(NodeError::Busy(_))));
        drop(leases);
        assert_eq!(guard.held(), 0);
    }
}
