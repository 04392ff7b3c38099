//! Collections in gateway mode: a multipart upload of several files under one password, the
//! listing, one member file, and the whole collection as a streamed tar archive.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::Node;

use super::bodies::{idle_limited, refused_after_drain};
use super::errors::{ApiError, bad_request};
use super::headers::{access, expires_after, file_name, flag, parse_id, password, redundancy};
use super::responses::{created_with_key, lease, streamed};
use super::slow_readers::Guard;
use super::{LINK_HEADER, ONCE_HEADER};

/// Uploads several files as one collection: a `multipart/form-data` body of `file` parts,
/// each preceded by a `path` part (its relative path, exact UTF-8) or else named by its own
/// file name. One Argon2id run for the whole batch; files stream through one at a time.
pub(super) async fn upload_collection(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    use multer::{Constraints, Multipart, SizeLimit};

    // Everything that can refuse the upload on its headers, checked before the body is read.
    let early = || -> Result<_, ApiError> {
        let password = password(&headers)?;
        let name = file_name(&headers)?;
        let boundary = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| multer::parse_boundary(v).ok())
            .ok_or_else(|| {
                bad_request("a collection upload is multipart/form-data: a `path` field, then a `file` field, for each file")
            })?;
        if flag(&headers, ONCE_HEADER)? {
            return Err(bad_request(format!(
                "{ONCE_HEADER} works for single files: a collection's files are read one by one"
            )));
        }
        let asked = redundancy(&headers)?;
        if let Some(asked) = asked {
            node.redundancy(Some(asked))?;
        }
        Ok((password, name, boundary, asked, expires_after(&headers)?))
    };
    let ((password, name, boundary, asked, expires), body) =
        refused_after_drain(early(), body).await?;
    let idle = node.config().http_body_idle_timeout;
    let constraints = Constraints::new()
        .allowed_fields(vec!["path", "file"])
        .size_limit(SizeLimit::new().for_field("path", voldisefs_crypto::MAX_PATH_LEN as u64));
    let body = idle_limited(body.into_data_stream(), idle);
    let mut multipart = Multipart::with_constraints(body, boundary, constraints);
    let bad_part = |e: multer::Error| bad_request(format!("bad multipart body: {e}"));
    let mut batch = node.batch_expiring(password, expires).await?;
    if let Some(asked) = asked {
        batch.set_redundancy(asked)?;
    }
    let mut path: Option<String> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_part)? {
        if field.name() == Some("path") {
            path = Some(field.text().await.map_err(bad_part)?);
            continue;
        }
        // Its path: the `path` part just before it, else its own file name.
        let file_path = match (path.take(), field.file_name()) {
            (Some(path), _) => path,
            (None, Some(name)) if !name.is_empty() => name.to_string(),
            (None, _) => {
                return Err(bad_request(
                    "each `file` part needs its path: a `path` part before it, or a file name",
                ));
            }
        };
        // The part borrows the body; hand its bytes to the upload task through a channel.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, String>>(2);
        let pump = async move {
            loop {
                let piece = match field.chunk().await {
                    Ok(Some(piece)) => Ok(piece),
                    Ok(None) => break,
                    Err(e) => Err(e.to_string()),
                };
                let failed = piece.is_err();
                if tx.send(piece).await.is_err() || failed {
                    break;
                }
            }
        };
        let file = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let ((), added) = tokio::join!(pump, batch.add(&file_path, file));
        added?;
    }
    if path.is_some() {
        return Err(bad_request(
            "a `path` part must be followed by its `file` part",
        ));
    }
    if batch.is_empty() {
        return Err(bad_request("a collection needs at least one file"));
    }
    let name = if name.is_empty() {
        format!("{} files", batch.len())
    } else {
        name
    };
    let want_link = flag(&headers, LINK_HEADER)?;
    let listing = batch.finish(&name).await?;
    if let (true, Some(key)) = (want_link, &listing.read_key) {
        return Ok(created_with_key(&listing, key));
    }
    Ok((StatusCode::CREATED, Json(listing)).into_response())
}

/// `GET /api/v1/collections/{id}`: the listing, opened by the password or read key.
pub(super) async fn list_collection(
    State(node): State<Node>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<crate::CollectionListing>, ApiError> {
    let id = parse_id(id)?;
    let access = access(&headers)?;
    Ok(Json(node.collection_with(id, access).await?))
}

/// The query of `GET /api/v1/collections/{id}/file`.
#[derive(serde::Deserialize)]
pub(super) struct PathQuery {
    path: String,
}

/// `GET /api/v1/collections/{id}/file?path=`: one member file, streamed.
pub(super) async fn collection_file(
    State(node): State<Node>,
    axum::Extension(guard): axum::Extension<Arc<Guard>>,
    id: Result<Path<String>, PathRejection>,
    query: Result<axum::extract::Query<PathQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let axum::extract::Query(query) = query.map_err(|e| bad_request(e.body_text()))?;
    voldisefs_crypto::check_path(&query.path)
        .map_err(|reason| bad_request(format!("path refused: {reason}")))?;
    let access = access(&headers)?;
    let lease = lease(&node, &guard).await?;
    let read_ahead: Arc<dyn crate::transfer::download::ReadAhead> = lease.clone();
    let file = crate::transfer::download::READ_AHEAD
        .scope(read_ahead, node.collection_file(id, access, &query.path))
        .await?;
    Ok(streamed(
        file.body,
        Some(lease),
        file.size,
        "application/octet-stream",
        &file.name,
        &id,
    ))
}

/// `GET /api/v1/collections/{id}/archive`: every member file in one streamed tar archive.
pub(super) async fn collection_archive(
    State(node): State<Node>,
    axum::Extension(guard): axum::Extension<Arc<Guard>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    serve_archive(&node, &guard, id, access(&headers)?).await
}

/// Collection `id`, opened by `access`, as one streamed tar archive within the slow-reader
/// budget (for the archive route and for archive tickets).
pub(super) async fn serve_archive(
    node: &Node,
    guard: &Arc<Guard>,
    id: voldisefs_proto::FileId,
    access: crate::Access,
) -> Result<Response, ApiError> {
    let listing = node.collection_with(id, access).await?;
    let name = format!("{}.tar", listing.name);
    let lease = lease(node, guard).await?;
    let (len, body) = node.collection_archive(listing)?;
    Ok(streamed(
        body,
        Some(lease),
        len,
        "application/x-tar",
        &name,
        &id,
    ))
}
