//! The accept loop: connections within `http_max_connections` (a stalled one evicted, else 503
//! with `Retry-After`), header and write-idle timeouts per connection, and the grace transfers
//! in progress get at shutdown.

use std::sync::Arc;
use std::time::Duration;

use crate::Node;

use super::router;
use super::slow_readers::{self, Guard};

/// How long, after `token` is cancelled, transfers in progress may go on before they are cut.
pub(super) const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves `node`'s HTTP API and page on `listener` until `token` is cancelled; requests in
/// progress then get a few seconds to finish.
///
/// Bounds: at most `http_max_connections` connections (one more first closes a connection
/// whose client has read nothing for [`slow_readers::STALL_EVICT_AFTER`] (5 s), else gets 503 with `Retry-After`),
/// request headers within `http_header_timeout` (which also closes idle keep-alive
/// connections), upload bodies never idle longer than `http_body_idle_timeout`, responses
/// closed once their client accepts nothing for `http_write_idle_timeout`, and the bytes
/// responses hold ahead of slow clients within [`slow_readers::RESPONSE_BUDGET`] (256 MiB).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    node: Node,
    token: tokio_util::sync::CancellationToken,
) {
    let config = node.config();
    let limit = Arc::new(tokio::sync::Semaphore::new(
        config.http_max_connections.max(1),
    ));
    let header_timeout = config.http_header_timeout;
    let guard = Guard::new(config.http_write_idle_timeout);
    let service =
        hyper_util::service::TowerToHyperService::new(router(node.clone(), guard.clone()));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            () = token.cancelled() => break,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let permit = match limit.clone().try_acquire_owned() {
            Ok(permit) => permit,
            // Full: a connection whose client reads nothing gives way, if there is one (its
            // slot frees as soon as its task sees the cut).
            Err(_) if guard.evict_one() => {
                let freed =
                    tokio::time::timeout(Duration::from_secs(1), limit.clone().acquire_owned())
                        .await;
                match freed {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        refuse(&guard, &mut connections, stream);
                        continue;
                    }
                }
            }
            Err(_) => {
                tracing::debug!("HTTP connection limit reached; refusing a new connection");
                refuse(&guard, &mut connections, stream);
                continue;
            }
        };
        // Handlers that account per client (download tickets) read the peer's address.
        let service = service.clone();
        let with_peer = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            hyper::service::Service::call(&service, request)
        });
        let registration = guard.register();
        let watched = registration.connection();
        let io = slow_readers::Watched::new(stream, watched.clone());
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(io), with_peer);
        let connection = graceful.watch(connection);
        let guard = guard.clone();
        connections.spawn(async move {
            tokio::select! {
                ended = connection => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                }
                () = watched.write_deadline(guard.write_idle()) => {
                    guard.count_stalled();
                    tracing::debug!(
                        idle_s = guard.write_idle().as_secs(),
                        "HTTP: closing a connection whose client accepted nothing"
                    );
                }
                () = watched.cut() => {}
            }
            drop(registration);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(GRACE) => {
            tracing::warn!("HTTP transfers still running after {GRACE:?}; cutting them off");
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// Answers `stream` (beyond the connection cap) with 503, in a task of `connections`.
pub(super) fn refuse(
    guard: &Guard,
    connections: &mut tokio::task::JoinSet<()>,
    stream: tokio::net::TcpStream,
) {
    if let Some(answer) = guard.refuse(stream) {
        connections.spawn(answer);
    }
}
