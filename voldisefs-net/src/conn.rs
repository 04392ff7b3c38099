//! Outbound connections: one TCP connection per peer carrying many requests in flight (opened
//! by `dial.rs`, pooled by `pool.rs`).
//!
//! A [`Conn`] owns a writer task fed by a channel and a reader task that routes each response
//! to the waiting request by its id. When either side fails, every waiting request gets
//! [`NetError::ConnectionClosed`] and the pool opens a fresh connection on next use (also when
//! the peer closed it, e.g. after its idle timeout). A frame that does not arrive whole within
//! the frame timeout of its first byte closes the connection.
//!
//! A request abandoned by its caller (a shorter deadline above, a cancelled transfer) leaves
//! nothing behind: its entry in the pending table goes with it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::socket::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voldisefs_proto::{Frame, Message, PeerInfo};

use crate::config::NetConfig;
use crate::error::NetError;
use crate::freeze::{FreezeWatch, wait_thawed};
use crate::link::{FrameReader, LinkWriter, next_frame};
use crate::payload::Payload;
use crate::stats::Counters;

type Pending = HashMap<u64, oneshot::Sender<Frame>>;

/// Frames queued for the writer task of one connection.
const WRITE_QUEUE: usize = 64;

/// A live, handshaken connection to one peer.
#[derive(Debug)]
pub(crate) struct Conn {
    remote: PeerInfo,
    next_id: AtomicU64,
    /// `None` once the connection is closed: no request may wait forever.
    pending: Mutex<Option<Pending>>,
    tx: mpsc::Sender<Frame>,
    closed: CancellationToken,
    request_timeout: Duration,
    /// Added before every request goes out ([`crate::NetConfig::drill_rtt`]).
    drill_rtt: Duration,
    /// Share of requests delayed a retransmission timeout more ([`crate::NetConfig::drill_loss`]).
    drill_loss: f64,
    /// Time allowed for a started frame to arrive whole.
    frame_timeout: Duration,
    counters: Arc<Counters>,
    /// While the node is frozen, no request is sent and no answer is read.
    freeze: FreezeWatch,
    /// When the last request was sent or the last answer received.
    last_used: Mutex<tokio::time::Instant>,
}

/// Removes a request's pending entry when the request ends, also when its caller drops it.
struct Forget<'a>(&'a Conn, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.forget(self.1);
    }
}

impl Conn {
    /// Starts the tasks of a connection to `remote` whose handshake is done on `link` (its
    /// reader and writer), and returns it. `closed` ends it (a child of the current connection
    /// generation); the timings come from `config`; the tasks run on `tracker`.
    pub(crate) fn start(
        remote: PeerInfo,
        link: (FrameReader<ReadHalf>, LinkWriter<WriteHalf>),
        config: &NetConfig,
        closed: CancellationToken,
        counters: Arc<Counters>,
        freeze: FreezeWatch,
        tracker: &TaskTracker,
    ) -> Arc<Conn> {
        let (reader, writer) = link;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let conn = Arc::new(Conn {
            remote,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(Some(HashMap::new())),
            tx,
            closed,
            request_timeout: config.request_timeout,
            drill_rtt: config.drill_rtt,
            drill_loss: config.drill_loss,
            frame_timeout: config.frame_timeout,
            counters,
            freeze,
            last_used: Mutex::new(tokio::time::Instant::now()),
        });
        tracker.spawn(write_loop(conn.clone(), writer, rx));
        tracker.spawn(read_loop(conn.clone(), reader));
        conn
    }

    /// The peer at the other end, as it introduced itself.
    pub(crate) fn remote(&self) -> PeerInfo {
        self.remote
    }

    /// Whether the connection can still carry requests.
    pub(crate) fn is_open(&self) -> bool {
        !self.closed.is_cancelled()
    }

    /// How long the connection has carried nothing: zero while a request waits for its
    /// answer, else the time since the last request or answer.
    pub(crate) fn idle_for(&self) -> Duration {
        let waiting = self.lock().as_ref().is_some_and(|p| !p.is_empty());
        if waiting {
            return Duration::ZERO;
        }
        self.last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    /// Requests waiting for their answer now.
    pub(crate) fn pending(&self) -> usize {
        self.lock().as_ref().map_or(0, HashMap::len)
    }

    /// Records a use now (a request sent, an answer received, or a caller taking it).
    pub(crate) fn touch(&self) {
        *self
            .last_used
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = tokio::time::Instant::now();
    }

    fn lock(&self) -> MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends one request and waits for its response, within the request timeout; counts it.
    pub(crate) async fn request(&self, request: Payload) -> Result<Payload, NetError> {
        let kind = request.message.kind();
        let result = self.exchange(request).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(NetError::Remote { .. }) => "error",
            Err(_) => "failed",
        };
        self.counters.request("out", kind, outcome);
        result
    }

    async fn exchange(&self, request: Payload) -> Result<Payload, NetError> {
        let addr = self.remote.addr;
        let kind = request.message.kind();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.touch();
        match self.lock().as_mut() {
            Some(pending) => pending.insert(id, tx),
            None => return Err(NetError::ConnectionClosed { addr }),
        };
        let _forget = Forget(self, id);
        let frame = Frame {
            envelope: voldisefs_proto::Envelope::new(id, request.message),
            body: request.body,
        };
        // One deadline covers a freeze of this node, the send and the answer.
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        wait_thawed(self.freeze.clone(), self.request_timeout).await?;
        let outcome = tokio::time::timeout_at(deadline, async {
            let delay = self.drill_delay(id);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            self.tx
                .send(frame)
                .await
                .map_err(|_| NetError::ConnectionClosed { addr })?;
            rx.await.map_err(|_| NetError::ConnectionClosed { addr })
        })
        .await;
        let frame = match outcome {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(NetError::Timeout {
                    addr,
                    what: "request",
                });
            }
        };
        match frame.envelope.message {
            Message::Error { code, message } => Err(NetError::Remote {
                addr,
                code,
                message,
            }),
            message if message.is_request() => Err(NetError::UnexpectedResponse {
                addr,
                request: kind,
                got: message.kind(),
            }),
            message => Ok(Payload {
                message,
                body: frame.body,
            }),
        }
    }

    /// What the drill settings add before request `id` goes out: the round trip, and for a
    /// `drill_loss` share of requests (picked by a keyed hash of the id) a retransmission
    /// timeout more.
    fn drill_delay(&self, id: u64) -> Duration {
        let mut delay = self.drill_rtt;
        if self.drill_loss > 0.0 {
            use std::hash::BuildHasher;
            let draw = std::collections::hash_map::RandomState::new().hash_one(id) as f64;
            if draw < self.drill_loss * u64::MAX as f64 {
                delay += (2 * self.drill_rtt).max(Duration::from_millis(200));
            }
        }
        delay
    }

    fn forget(&self, id: u64) {
        if let Some(pending) = self.lock().as_mut() {
            pending.remove(&id);
        }
    }

    /// Marks the connection closed and fails every waiting request.
    pub(crate) fn close(&self) {
        self.closed.cancel();
        // Dropping the senders wakes every waiter with an error.
        self.lock().take();
    }
}

async fn write_loop(
    conn: Arc<Conn>,
    mut writer: LinkWriter<WriteHalf>,
    mut rx: mpsc::Receiver<Frame>,
) {
    let addr = conn.remote.addr;
    loop {
        // No freeze check here: requests wait for the thaw before they are queued.
        let frame = tokio::select! {
            () = conn.closed.cancelled() => break,
            frame = rx.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
        };
        // Batch what is already queued into one flush.
        let mut result = writer.feed(frame).await;
        while result.is_ok() {
            match rx.try_recv() {
                Ok(next) => result = writer.feed(next).await,
                Err(_) => break,
            }
        }
        if let Err(e) = match result {
            Ok(()) => writer.flush().await,
            Err(e) => Err(e),
        } {
            tracing::debug!(%addr, error = %e, "write to peer failed; closing connection");
            break;
        }
    }
    conn.close();
}

async fn read_loop(conn: Arc<Conn>, mut reader: FrameReader<ReadHalf>) {
    let addr = conn.remote.addr;
    let mut freeze = conn.freeze.clone();
    loop {
        tokio::select! {
            () = conn.closed.cancelled() => break,
            () = freeze.thawed() => {}
        }
        let next = tokio::select! {
            () = conn.closed.cancelled() => break,
            // Reading is cancel-safe: a partly read frame stays buffered.
            () = freeze.frozen() => continue,
            next = next_frame(&mut reader, conn.frame_timeout, None) => next,
        };
        match next {
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(%addr, reason = %e, "closing connection to peer");
                break;
            }
            Ok(Some(frame)) => {
                conn.touch();
                let waiter = conn
                    .lock()
                    .as_mut()
                    .and_then(|p| p.remove(&frame.envelope.id));
                match waiter {
                    // The requester may have timed out meanwhile: nothing to do then.
                    Some(waiter) => drop(waiter.send(frame)),
                    None => {
                        tracing::debug!(%addr, id = frame.envelope.id, kind = frame.envelope.message.kind(), "response to no pending request");
                    }
                }
            }
        }
    }
    conn.close();
}
