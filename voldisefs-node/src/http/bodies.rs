//! Reading upload bodies: each piece within the node's `http_body_idle_timeout`, and the body of
//! a refused upload drained (within bounds) so its client reads the refusal.

use std::time::Duration;

use axum::body::Body;

use super::errors::ApiError;

/// Most of a refused upload's body read (and dropped) before the refusal is sent.
pub(super) const REFUSED_DRAIN_BYTES: usize = 8 << 20;
/// Longest a refused upload's body is read before the refusal is sent.
pub(super) const REFUSED_DRAIN_TIME: Duration = Duration::from_secs(1);

/// Reads and drops at most [`REFUSED_DRAIN_BYTES`] of `body`, for at most
/// [`REFUSED_DRAIN_TIME`]. A client still sending a body the node has already refused (a bad
/// header, an unavailable redundancy) then reads the refusal instead of a broken pipe; larger
/// or slower bodies are cut off as before.
pub(super) async fn drain_refused(mut stream: axum::body::BodyDataStream) {
    use futures_util::StreamExt as _;
    let mut left = REFUSED_DRAIN_BYTES;
    let _ = tokio::time::timeout(REFUSED_DRAIN_TIME, async {
        while left > 0 {
            match stream.next().await {
                Some(Ok(piece)) => left = left.saturating_sub(piece.len()),
                _ => break,
            }
        }
    })
    .await;
}

/// What the headers gave (`checked`) with the body to read, or their refusal once the body
/// was drained (see [`drain_refused`]).
pub(super) async fn refused_after_drain<T>(
    checked: Result<T, ApiError>,
    body: Body,
) -> Result<(T, Body), ApiError> {
    match checked {
        Ok(checked) => Ok((checked, body)),
        Err(refused) => {
            drain_refused(body.into_data_stream()).await;
            Err(refused)
        }
    }
}

/// `body`, failing with an error once it sends nothing for `idle` (a client that stalls an
/// upload cannot hold its buffers and chunks in flight forever).
pub(super) fn idle_limited(
    body: axum::body::BodyDataStream,
    idle: Duration,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, String>> + Send + Unpin + 'static {
    use futures_util::StreamExt;
    Box::pin(futures_util::stream::unfold(
        Some(body),
        move |body| async move {
            let mut body = body?;
            match tokio::time::timeout(idle, body.next()).await {
                Ok(Some(Ok(piece))) => Some((Ok(piece), Some(body))),
                Ok(Some(Err(e))) => Some((Err(e.to_string()), None)),
                Ok(None) => None,
                Err(_) => Some((
                    Err(format!("the client sent nothing for {} s", idle.as_secs())),
                    None,
                )),
            }
        },
    ))
}
