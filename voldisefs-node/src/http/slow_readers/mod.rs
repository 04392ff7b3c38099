//! Responses to slow readers: what a client that asks for files and does not read them can
//! make this node hold, and for how long.
//!
//! Bounds:
//!
//! - **Idle write deadline.** A connection whose client accepts no byte of a response for the
//!   node's `http_write_idle_timeout` (default 30 s) is closed: its response is dropped, its
//!   slot and every byte it held are freed. A client is waiting on this node (the body is
//!   still being fetched) does not count as idle; only a socket that refuses bytes does.
//! - **Node-wide budget.** File, collection-file and archive responses together hold at most
//!   [`RESPONSE_BUDGET`] (256 MiB) of bytes produced ahead of their clients: chunks a download
//!   has started to fetch and decrypt (each counted at its full chunk size) and pieces handed
//!   to the connection that its socket has not taken yet. A response reserves its share before
//!   its pipeline starts a chunk, so when the budget is spent producers stop fetching and
//!   decrypting instead of buffering.
//! - **Per connection.** One response (HTTP/1.1: one per connection at a time) reserves at most
//!   [`RESPONSE_READ_AHEAD`] (64 MiB); within it, a client that reads keeps the read-ahead its
//!   transfer window asks for. A download needs one chunk's share to start: it waits up to
//!   [`RESPONSE_BUDGET_WAIT`] (10 s) for it, then gets 503 `busy` with `Retry-After: 1`.
//! - **Under pressure.** When the budget or the connection cap is reached, the connection
//!   whose client has accepted nothing for the longest, at least [`STALL_EVICT_AFTER`] (5 s),
//!   is closed to make room. A client that reads is never chosen.
//! - **Refusals.** A connection beyond `http_max_connections` with nothing to make room gets
//!   `503 Service Unavailable` with `Retry-After: 1` and is closed; at most
//!   [`REFUSALS_AT_ONCE`] (64) such answers are written at once, each within
//!   [`REFUSAL_TIME`] (1 s), further connections are closed unanswered.
//!
//! Not counted: kernel socket buffers (the kernel bounds them per socket), and the read-ahead
//! of the task that builds a collection archive (its output is counted).
//!
//! `GET /metrics` shows `voldisefs_http_response_held_bytes` (reserved now),
//! `voldisefs_http_response_budget_bytes`, `voldisefs_http_connections`, and the counters
//! `voldisefs_http_stalled_closed_total`, `voldisefs_http_stalled_evicted_total` and
//! `voldisefs_http_refused_connections_total`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

mod lease;

pub(crate) use lease::{Budgeted, Lease};

use crate::NodeError;
use crate::api::{ApiErrorBody, ApiErrorCode};

/// Bytes all responses together may hold ahead of their clients (256 MiB).
pub(crate) const RESPONSE_BUDGET: usize = 256 << 20;
/// Bytes one response (one connection) may hold ahead of its client (64 MiB).
pub(crate) const RESPONSE_READ_AHEAD: usize = 64 << 20;
/// Longest a download waits for its first share of [`RESPONSE_BUDGET`] before 503 busy.
pub(crate) const RESPONSE_BUDGET_WAIT: Duration = Duration::from_secs(10);
/// How long a client must have accepted nothing before its connection may be closed to make
/// room for others (only when the budget or the connection cap is reached).
pub(crate) const STALL_EVICT_AFTER: Duration = Duration::from_secs(5);
/// Most 503 answers to connections beyond the cap being written at once.
pub(crate) const REFUSALS_AT_ONCE: usize = 64;
/// Longest one 503 answer to a connection beyond the cap may take.
pub(crate) const REFUSAL_TIME: Duration = Duration::from_secs(1);

/// How often a wait for the budget looks again for a stalled connection to close.
const EVICT_POLL: Duration = Duration::from_millis(250);

/// The node-wide state: the budget, the open connections and the counters.
#[derive(Debug)]
pub(crate) struct Guard {
    /// Free bytes of [`RESPONSE_BUDGET`], one permit a byte.
    budget: Semaphore,
    /// Open connections, for choosing one to close under pressure.
    connections: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    epoch: Instant,
    write_idle: Duration,
    stalled_closed: AtomicU64,
    evicted: AtomicU64,
    refused: AtomicU64,
    /// Slots for 503 answers being written.
    refusals: Arc<Semaphore>,
}

impl Guard {
    /// A guard closing connections idle for `write_idle`.
    pub(crate) fn new(write_idle: Duration) -> Arc<Self> {
        Arc::new(Self {
            budget: Semaphore::new(RESPONSE_BUDGET),
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
            write_idle: write_idle.max(Duration::from_millis(1)),
            stalled_closed: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            refusals: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
        })
    }

    /// Bytes reserved by responses now.
    pub(crate) fn held(&self) -> usize {
        RESPONSE_BUDGET.saturating_sub(self.budget.available_permits())
    }

    /// Registers a new connection; it is forgotten when the registration is dropped.
    pub(crate) fn register(self: &Arc<Self>) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            epoch: self.epoch,
            stalled_since: AtomicU64::new(0),
            cut: CancellationToken::new(),
        });
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, connection.clone());
        Registration {
            guard: self.clone(),
            id,
            connection,
        }
    }

    /// Closes the connection whose client has accepted nothing for the longest, if that is at
    /// least [`STALL_EVICT_AFTER`]. Whether one was closed.
    pub(crate) fn evict_one(&self) -> bool {
        let connections = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let longest = connections
            .values()
            .filter(|c| !c.cut.is_cancelled())
            .filter_map(|c| Some((c.stalled_for()?, c)))
            .filter(|(stalled, _)| *stalled >= STALL_EVICT_AFTER)
            .max_by_key(|(stalled, _)| *stalled);
        match longest {
            Some((stalled, connection)) => {
                connection.cut.cancel();
                self.evicted.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    stalled_ms = stalled.as_millis() as u64,
                    "HTTP: closing a connection that reads nothing, to make room"
                );
                true
            }
            None => false,
        }
    }

    /// Takes `n` bytes of the budget, closing stalled connections to make room, within
    /// [`RESPONSE_BUDGET_WAIT`]; [`NodeError::Busy`] after that.
    async fn reserve(self: Arc<Self>, n: usize) -> Result<usize, NodeError> {
        let n = n.min(RESPONSE_BUDGET);
        let wanted = u32::try_from(n).unwrap_or(u32::MAX);
        let deadline = tokio::time::Instant::now() + RESPONSE_BUDGET_WAIT;
        loop {
            if let Ok(permit) = self.budget.try_acquire_many(wanted) {
                permit.forget();
                return Ok(wanted as usize);
            }
            self.evict_one();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(NodeError::Busy(format!(
                    "responses to slow clients hold this node's {} MiB budget; retry shortly",
                    RESPONSE_BUDGET >> 20
                )));
            }
            let wait = tokio::time::timeout(left.min(EVICT_POLL), self.budget.acquire_many(wanted));
            if let Ok(Ok(permit)) = wait.await {
                permit.forget();
                return Ok(wanted as usize);
            }
        }
    }

    /// Answers a connection beyond the cap with 503 and `Retry-After` (or closes it when too
    /// many answers are being written already). Returns the task writing it, if any.
    pub(crate) fn refuse(
        &self,
        stream: tokio::net::TcpStream,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let slot = self.refusals.clone().try_acquire_owned().ok()?;
        Some(async move {
            let _ = tokio::time::timeout(REFUSAL_TIME, write_refusal(stream)).await;
            drop(slot);
        })
    }

    /// The idle write deadline.
    pub(crate) fn write_idle(&self) -> Duration {
        self.write_idle
    }

    /// Counts a connection closed by the idle write deadline.
    pub(crate) fn count_stalled(&self) {
        self.stalled_closed.fetch_add(1, Ordering::Relaxed);
    }

    /// This guard's metrics, in the OpenMetrics text format (no `# EOF`).
    pub(crate) fn metrics_text(&self) -> String {
        let open = self
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, sample: &str, value: u64| {
            out.push_str(&format!(
                "# TYPE {name} {kind}\n# HELP {name} {help}\n{sample} {value}\n"
            ));
        };
        metric(
            "voldisefs_http_response_held_bytes",
            "gauge",
            "Bytes responses hold ahead of their clients (reserved from the budget)",
            "voldisefs_http_response_held_bytes",
            self.held() as u64,
        );
        metric(
            "voldisefs_http_response_budget_bytes",
            "gauge",
            "Bytes all responses together may hold ahead of their clients",
            "voldisefs_http_response_budget_bytes",
            RESPONSE_BUDGET as u64,
        );
        metric(
            "voldisefs_http_connections",
            "gauge",
            "Open HTTP connections",
            "voldisefs_http_connections",
            open as u64,
        );
        metric(
            "voldisefs_http_stalled_closed",
            "counter",
            "HTTP connections closed because their client accepted nothing for the write deadline",
            "voldisefs_http_stalled_closed_total",
            self.stalled_closed.load(Ordering::Relaxed),
        );
        metric(
            "voldisefs_http_stalled_evicted",
            "counter",
            "HTTP connections reading nothing closed to make room for others",
            "voldisefs_http_stalled_evicted_total",
            self.evicted.load(Ordering::Relaxed),
        );
        metric(
            "voldisefs_http_refused_connections",
            "counter",
            "HTTP connections refused (503) because the connection cap was reached",
            "voldisefs_http_refused_connections_total",
            self.refused.load(Ordering::Relaxed),
        );
        out
    }
}

/// Reads what the refused client sent (so closing does not reset the connection before it
/// reads the answer), answers 503 and closes.
async fn write_refusal(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await;
    let body = serde_json::to_string(&ApiErrorBody::new(
        ApiErrorCode::Busy,
        "this node serves as many connections as it may; retry shortly",
    ))
    .unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    // Until the client closes too (or the time is up): what it still sends is dropped.
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// One open connection, as the guard sees it.
#[derive(Debug)]
pub(crate) struct Connection {
    epoch: Instant,
    /// Milliseconds since `epoch`, plus 1, of the first write the socket refused since the
    /// last one it took; 0 when it is taking bytes.
    stalled_since: AtomicU64,
    /// Cancelled to close the connection.
    cut: CancellationToken,
}

impl Connection {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// How long the socket has refused bytes, if it does.
    fn stalled_for(&self) -> Option<Duration> {
        match self.stalled_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_millis(self.now_ms().saturating_sub(since))),
        }
    }

    fn took_bytes(&self) {
        self.stalled_since.store(0, Ordering::Relaxed);
    }

    fn refused_bytes(&self) {
        let now = self.now_ms();
        let _ = self
            .stalled_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Returns once the client has accepted nothing for `idle`.
    pub(crate) async fn write_deadline(&self, idle: Duration) {
        loop {
            match self.stalled_for() {
                Some(stalled) if stalled >= idle => return,
                Some(stalled) => tokio::time::sleep(idle - stalled).await,
                // A stall beginning now ends `idle` from now at the earliest.
                None => tokio::time::sleep(idle).await,
            }
        }
    }

    /// Returns when the guard closes this connection to make room.
    pub(crate) async fn cut(&self) {
        self.cut.cancelled().await;
    }
}

/// A registered connection; dropping it forgets the connection.
#[derive(Debug)]
pub(crate) struct Registration {
    guard: Arc<Guard>,
    id: u64,
    connection: Arc<Connection>,
}

impl Registration {
    /// The connection's state.
    pub(crate) fn connection(&self) -> Arc<Connection> {
        self.connection.clone()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.guard
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// A socket that tells its [`Connection`] whether the client is taking bytes.
#[derive(Debug)]
pub(crate) struct Watched<S> {
    inner: S,
    connection: Arc<Connection>,
}

impl<S> Watched<S> {
    /// `inner`, reporting to `connection`.
    pub(crate) fn new(inner: S, connection: Arc<Connection>) -> Self {
        Self { inner, connection }
    }

    fn note(&self, written: &Poll<std::io::Result<usize>>) {
        match written {
            Poll::Ready(Ok(n)) if *n > 0 => self.connection.took_bytes(),
            Poll::Pending => self.connection.refused_bytes(),
            _ => {}
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
