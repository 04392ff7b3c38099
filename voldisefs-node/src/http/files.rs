//! Single files in gateway mode: upload (`POST /api/v1/files`), download with `Range` and
//! `HEAD` (`GET /api/v1/files/{id}`), and delete.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use voldisefs_proto::FileId;

use crate::api::DeleteReceipt;
use crate::{Node, NodeError};

use super::bodies::{idle_limited, refused_after_drain};
use super::errors::ApiError;
use super::headers::{access, expires_after, file_name, flag, parse_id, password, redundancy};
use super::responses::{created_with_key, lease, streamed};
use super::slow_readers::Guard;
use super::{ApiErrorCode, LINK_HEADER, ONCE_HEADER};

/// `POST /api/v1/files`: the body, sealed by this node under the password header (gateway
/// mode), answered with its receipt (and read key, when asked for a link).
pub(super) async fn upload(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Everything that can refuse the upload before its body is read, checked first.
    let early = || -> Result<_, ApiError> {
        let password = password(&headers)?;
        let name = file_name(&headers)?;
        let want_link = flag(&headers, LINK_HEADER)?;
        let options = crate::UploadOptions {
            expires_after: expires_after(&headers)?,
            once: flag(&headers, ONCE_HEADER)?,
            redundancy: Some(node.redundancy(redundancy(&headers)?)?),
        };
        Ok((password, name, want_link, options))
    };
    let ((password, name, want_link, options), body) = refused_after_drain(early(), body).await?;
    let idle = node.config().http_body_idle_timeout;
    let body = idle_limited(body.into_data_stream(), idle);
    let receipt = node
        .upload_with_options(
            &name,
            password,
            voldisefs_crypto::FileKind::File,
            options,
            body,
        )
        .await?;
    if want_link {
        return Ok(created_with_key(&receipt, &receipt.read_key));
    }
    Ok((StatusCode::CREATED, Json(receipt)).into_response())
}

/// `GET` (and `HEAD`) `/api/v1/files/{id}`: the file, `Range` honoured (see [`serve_file`]).
pub(super) async fn download(
    State(node): State<Node>,
    axum::Extension(guard): axum::Extension<Arc<Guard>>,
    method: axum::http::Method,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let access = access(&headers)?;
    serve_file(
        &node,
        &guard,
        id,
        access,
        &headers,
        method == axum::http::Method::HEAD,
    )
    .await
}

/// Streams file `id` opened by `access`, honouring `Range` and `If-Range`. A `HEAD` (`head`)
/// gets the same headers from a plain open ([`Node::stat`]): no body is read, so it never
/// counts as the reading of a burn-after-reading file.
pub(super) async fn serve_file(
    node: &Node,
    guard: &Arc<Guard>,
    id: FileId,
    access: crate::Access,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, ApiError> {
    let etag = format!("\"{id}\"");
    // A file never changes (its id is its record's hash): `If-Range` holds for our own ETag.
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::ByteRange::parse)
        .filter(|_| {
            headers
                .get(header::IF_RANGE)
                .is_none_or(|v| v.as_bytes() == etag.as_bytes())
        });
    let (opened, lease) = if head {
        (head_of(node, id, access, range).await, None)
    } else {
        // The download's read-ahead answers to the response's share of the budget.
        let lease = lease(node, guard).await?;
        let read_ahead: Arc<dyn crate::transfer::download::ReadAhead> = lease.clone();
        let opened = crate::transfer::download::READ_AHEAD
            .scope(read_ahead, node.download_with(id, access, range))
            .await;
        (opened, Some(lease))
    };
    let file = match opened {
        Err(NodeError::RangeNotSatisfiable { size }) => {
            let mut refused = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ApiErrorCode::RangeNotSatisfiable,
                format!("the range asked for is not within the file's {size} bytes"),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                refused.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(refused);
        }
        other => other?,
    };
    let len = file
        .range
        .map_or(file.size, |(first, last)| last - first + 1);
    let mut response = streamed(
        file.body,
        lease,
        len,
        "application/octet-stream",
        &file.name,
        &id,
    );
    let h = response.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    if let Some((first, last)) = file.range {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {first}-{last}/{}", file.size);
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// What a `GET` of file `id` would answer, without its body (see [`serve_file`]).
pub(super) async fn head_of(
    node: &Node,
    id: FileId,
    access: crate::Access,
    range: Option<crate::ByteRange>,
) -> Result<crate::Download, NodeError> {
    let stat = node.stat(id, access).await?;
    if stat.kind == voldisefs_crypto::FileKind::Collection {
        return Err(NodeError::IsCollection(id));
    }
    let size = stat.size;
    let range = match range {
        None => None,
        Some(r) => Some(
            r.resolve(size)
                .ok_or(NodeError::RangeNotSatisfiable { size })?,
        ),
    };
    Ok(crate::Download {
        name: stat.name,
        size,
        range,
        chunks: 0,
        created: stat.created,
        body: Box::pin(futures_util::stream::empty()),
        burn: None,
    })
}

/// `DELETE /api/v1/files/{id}`: deletes the file its password opens.
pub(super) async fn remove(
    State(node): State<Node>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<DeleteReceipt>, ApiError> {
    let id = parse_id(id)?;
    let password = password(&headers)?;
    let chunks = node.delete(id, password).await?;
    Ok(Json(DeleteReceipt {
        id,
        deleted: true,
        chunks,
    }))
}
