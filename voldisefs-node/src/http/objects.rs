//! The object API over HTTP: sealed bytes in and out, for clients that seal and open files
//! themselves (the CLI by default, programs using `voldisefs_crypto::client`). Nothing here
//! ever sees a password, a name, a read key or a plaintext byte.
//!
//! - `GET /api/v1/info`: what a client needs to seal for this network ([`NodeInfo`]).
//! - `PUT /api/v1/objects/{id}`: one object (a sealed chunk or record) as the body.
//! - `POST /api/v1/objects`: a batch of objects (`voldisefs_proto::objects`).
//! - `GET /api/v1/objects/{id}`: the object's bytes.
//! - `PUT /api/v1/stripes/{id}`: a stripe's descriptor and its shards, as a batch body.
//! - `GET /api/v1/stripes/{id}`: the stripe's sealed chunk, joined.
//! - `POST /api/v1/objects/delete`: `{"delete_key", "ids", "everywhere", "spread"}`; one
//!   object: `DELETE /api/v1/objects/{id}?everywhere=&spread=` with `X-Voldisefs-Delete-Key`.
//!
//! Bounds: a body is at most [`MAX_OBJECT_LEN`] (one object) or [`MAX_BATCH_BYTES`] (a batch,
//! a stripe) and [`MAX_BATCH_OBJECTS`] objects; the bytes bodies hold while they are read and
//! stored come out of a node-wide [`OBJECT_BODY_BUDGET`] as they arrive, waited for at most
//! [`BUDGET_WAIT`] (then 503 busy); a body that sends nothing for the node's
//! `http_body_idle_timeout`, or arrives slower than [`MIN_BODY_RATE`] on average after twice
//! that timeout, is refused (408); a delete names at most [`MAX_DELETE_IDS`] ids.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;
use voldisefs_crypto::DeleteKey;
use voldisefs_proto::objects::decode_batch;

use super::errors::{ApiError, bad_request};
use super::{ApiErrorCode, DELETE_KEY_HEADER};
use crate::api::{NodeInfo, ObjectDeleteReceipt, ObjectDeleteRequest};
use crate::{MAX_BATCH_BYTES, MAX_BATCH_OBJECTS, MAX_DELETE_IDS, MAX_OBJECT_LEN, Node};

/// Bytes of object API bodies all requests together may hold while they are read (256 MiB).
pub const OBJECT_BODY_BUDGET: usize = 256 << 20;
/// How long a request waits for its share of [`OBJECT_BODY_BUDGET`] before 503.
pub const BUDGET_WAIT: Duration = Duration::from_secs(10);
/// Bodies take their share of [`OBJECT_BODY_BUDGET`] in steps of this many bytes.
pub const BUDGET_STEP: usize = 1 << 20;
/// The slowest average rate a body may arrive at, after a grace of twice the idle timeout.
pub const MIN_BODY_RATE: usize = 1 << 20;

/// `GET /api/v1/info`.
pub(super) async fn info(State(node): State<Node>) -> Result<Json<NodeInfo>, ApiError> {
    let config = node.config();
    let redundancy = node.redundancy(None)?;
    Ok(Json(NodeInfo {
        chunk_size: config.chunk_size.bytes() as u64,
        kdf_m_kib: config.kdf.m_kib(),
        kdf_t: config.kdf.t(),
        kdf_p: config.kdf.p(),
        replicas: node.cluster().replicas(),
        redundancy: redundancy.to_string(),
        live_nodes: node.live_nodes().len(),
        default_expiry: config.default_expiry.map(|d| d.as_secs()),
        max_expiry: config.max_expiry.map(|d| d.as_secs()),
        max_object: MAX_OBJECT_LEN,
        max_batch_bytes: MAX_BATCH_BYTES,
        max_batch_objects: MAX_BATCH_OBJECTS,
        max_delete_ids: MAX_DELETE_IDS,
    }))
}

fn parse_object_id(id: Result<Path<String>, PathRejection>) -> Result<[u8; 32], ApiError> {
    let Path(id) = id.map_err(|e| bad_request(e.body_text()))?;
    parse_hex_id(&id)
}

fn parse_hex_id(text: &str) -> Result<[u8; 32], ApiError> {
    text.parse::<voldisefs_proto::ChunkId>()
        .map(|id| *id.as_bytes())
        .map_err(|_| bad_request("an id is 64 hexadecimal digits"))
}

/// Reads a body of at most `limit` bytes. The bytes it holds come out of the node-wide
/// [`OBJECT_BODY_BUDGET`] as they arrive (in steps of [`BUDGET_STEP`]), so a body that
/// announces much and sends little holds little; waiting more than [`BUDGET_WAIT`] for a share
/// is 503. A body must keep coming: nothing for the node's `http_body_idle_timeout` is 408,
/// and so is a body still incomplete after twice that timeout plus its length at
/// [`MIN_BODY_RATE`] (a client trickling bytes cannot hold its share for long). The share is
/// returned with the bytes and held until they are stored.
async fn read_body(
    node: &Node,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ApiErrorCode::TooLarge,
            format!("this body may be at most {limit} bytes"),
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|n| n > limit) {
        // A client still sending reads the refusal instead of a broken pipe once a bounded
        // part of its body is read off; one waiting for `100 Continue` gets the refusal at once.
        let waits = headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waits {
            super::bodies::drain_refused(body.into_data_stream()).await;
        }
        return Err(too_large());
    }
    let idle = node.config().http_body_idle_timeout;
    let expected = announced.unwrap_or(limit);
    let deadline = tokio::time::Instant::now()
        + 2 * idle
        + Duration::from_secs_f64(expected as f64 / MIN_BODY_RATE as f64);
    let timeout = |message: String| {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, ApiErrorCode::Timeout, message)
    };
    let mut stream = body.into_data_stream();
    let mut out = BytesMut::new();
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    loop {
        let wait_until = deadline.min(tokio::time::Instant::now() + idle);
        match tokio::time::timeout_at(wait_until, stream.next()).await {
            Err(_) if tokio::time::Instant::now() >= deadline => {
                return Err(timeout(format!(
                    "the body came slower than {} KiB/s",
                    MIN_BODY_RATE >> 10
                )));
            }
            Err(_) => {
                return Err(timeout(format!(
                    "the client sent nothing for {:.1} s",
                    idle.as_secs_f64()
                )));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(bad_request(format!("reading the body failed: {e}"))),
            Ok(Some(Ok(piece))) => {
                let len = out.len() + piece.len();
                if len > limit {
                    return Err(too_large());
                }
                reserve(node, &mut held, len, limit).await?;
                out.extend_from_slice(&piece);
            }
        }
    }
    Ok((out.freeze(), held))
}

/// Grows `held` to cover `len` bytes (rounded up to [`BUDGET_STEP`], at most `limit`).
async fn reserve(
    node: &Node,
    held: &mut Option<tokio::sync::OwnedSemaphorePermit>,
    len: usize,
    limit: usize,
) -> Result<(), ApiError> {
    let have = held.as_ref().map_or(0, |p| p.num_permits());
    let want_bytes = len
        .div_ceil(BUDGET_STEP)
        .saturating_mul(BUDGET_STEP)
        .min(limit.max(len));
    let want = want_bytes.div_ceil(1024);
    if want <= have {
        return Ok(());
    }
    let more = u32::try_from(want - have).map_err(|_| bad_request("body too large"))?;
    let permit = tokio::time::timeout(
        BUDGET_WAIT,
        node.object_budget().clone().acquire_many_owned(more),
    )
    .await
    .map_err(|_| {
        let mut busy = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiErrorCode::Busy,
            "the node holds as many object bodies in memory as it may; try again",
        );
        busy.retry_after = Some(1);
        busy
    })?
    .map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiErrorCode::Unavailable,
            "stopping",
        )
    })?;
    match held {
        Some(held) => held.merge(permit),
        None => *held = Some(permit),
    }
    Ok(())
}

fn created(receipt: crate::ObjectReceipt) -> Response {
    (StatusCode::CREATED, Json(receipt)).into_response()
}

/// `PUT /api/v1/objects/{id}`: one object as the body.
pub(super) async fn put_object(
    State(node): State<Node>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = parse_object_id(id)?;
    let (bytes, _permit) = read_body(&node, &headers, body, MAX_OBJECT_LEN).await?;
    Ok(created(node.put_objects(vec![(id, bytes)]).await?))
}

/// `POST /api/v1/objects`: a batch of objects.
pub(super) async fn put_batch(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (bytes, _permit) = read_body(&node, &headers, body, MAX_BATCH_BYTES).await?;
    let objects = decode_batch(&bytes, MAX_BATCH_OBJECTS, MAX_OBJECT_LEN)
        .map_err(|e| bad_request(e.to_string()))?;
    Ok(created(node.put_objects(objects).await?))
}

/// `PUT /api/v1/stripes/{id}`: a stripe's descriptor and shards, as a batch.
pub(super) async fn put_stripe(
    State(node): State<Node>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = parse_object_id(id)?;
    let (bytes, _permit) = read_body(&node, &headers, body, MAX_BATCH_BYTES).await?;
    let objects = decode_batch(&bytes, voldisefs_crypto::MAX_SHARDS + 1, MAX_OBJECT_LEN)
        .map_err(|e| bad_request(e.to_string()))?;
    Ok(created(node.put_stripe(id, objects).await?))
}

fn octets(bytes: Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(bytes),
    )
        .into_response()
}

/// `GET /api/v1/objects/{id}`: the object's bytes.
pub(super) async fn get_object(
    State(node): State<Node>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = parse_object_id(id)?;
    Ok(octets(node.get_object(id).await?))
}

/// `GET /api/v1/stripes/{id}`: the stripe's sealed chunk, joined from its shards.
pub(super) async fn get_stripe(
    State(node): State<Node>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = parse_object_id(id)?;
    Ok(octets(node.get_stripe(id).await?))
}

/// Query of `DELETE /api/v1/objects/{id}`.
#[derive(Debug, Deserialize)]
pub(super) struct DeleteQuery {
    #[serde(default)]
    everywhere: bool,
    #[serde(default)]
    spread: usize,
}

/// `DELETE /api/v1/objects/{id}` with the delete key in [`DELETE_KEY_HEADER`].
pub(super) async fn delete_object(
    State(node): State<Node>,
    id: Result<Path<String>, PathRejection>,
    query: Result<axum::extract::Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_object_id(id)?;
    let axum::extract::Query(query) = query.map_err(|e| bad_request(e.body_text()))?;
    let key = headers
        .get(DELETE_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_hex_id(v.trim()).ok())
        .map(DeleteKey::from_bytes)
        .ok_or_else(|| bad_request(format!("{DELETE_KEY_HEADER} must be 64 hexadecimal digits")))?;
    let nodes = node
        .delete_objects(&key, &[id], query.everywhere, query.spread)
        .await?;
    Ok(Json(ObjectDeleteReceipt { nodes }).into_response())
}

/// Most bytes of a delete request's JSON.
const MAX_DELETE_BODY: usize = MAX_DELETE_IDS * 70 + 4096;

/// `POST /api/v1/objects/delete`: deletes objects with their file's delete key.
pub(super) async fn delete_objects(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (bytes, _permit) = read_body(&node, &headers, body, MAX_DELETE_BODY).await?;
    let request: ObjectDeleteRequest = serde_json::from_slice(&bytes)
        .map_err(|e| bad_request(format!("a delete is {{\"delete_key\", \"ids\"}}: {e}")))?;
    if request.ids.len() > MAX_DELETE_IDS {
        return Err(bad_request(format!(
            "at most {MAX_DELETE_IDS} ids per delete"
        )));
    }
    let key = DeleteKey::from_bytes(
        parse_hex_id(&request.delete_key)
            .map_err(|_| bad_request("delete_key is 64 hexadecimal digits"))?,
    );
    let ids = request
        .ids
        .iter()
        .map(|id| parse_hex_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    let nodes = node
        .delete_objects(&key, &ids, request.everywhere, request.spread)
        .await?;
    Ok(Json(ObjectDeleteReceipt { nodes }).into_response())
}
