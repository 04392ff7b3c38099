//! How answers are built: streamed attachments within a share of the response budget, their
//! `Content-Disposition`, and the 201 answer of an upload that asked for a share link.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use voldisefs_proto::FileId;

use crate::Node;
use crate::api::Created;

use super::errors::ApiError;
use super::slow_readers::{Budgeted, Guard, Lease};

/// A response's share of the budget for bytes held ahead of slow clients (one chunk to
/// begin with); 503 busy when none frees up in time.
pub(super) async fn lease(node: &Node, guard: &Arc<Guard>) -> Result<Arc<Lease>, ApiError> {
    let unit = node.config().chunk_size.bytes();
    Ok(guard.lease(unit).await?)
}

/// A 201 answer of `answer` with `read_key` added (an upload that asked for a share link).
pub(super) fn created_with_key(
    answer: &impl serde::Serialize,
    key: &voldisefs_crypto::ReadKey,
) -> Response {
    let created = Created {
        answer,
        read_key: Some(key.to_hex().as_str().to_owned()),
    };
    (StatusCode::CREATED, Json(created)).into_response()
}

/// A streamed attachment of `len` bytes, within `lease` if given.
pub(super) fn streamed(
    body: crate::ByteStream,
    lease: Option<Arc<Lease>>,
    len: u64,
    content_type: &'static str,
    name: &str,
    id: &FileId,
) -> Response {
    let disposition = content_disposition(name, id);
    let body: crate::ByteStream = match lease {
        Some(lease) => Box::pin(Budgeted::new(body, lease)),
        None => body,
    };
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / 5987).
pub(super) fn content_disposition(name: &str, id: &FileId) -> String {
    let name = if name.is_empty() {
        id.to_string()
    } else {
        name.to_string()
    };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact = utf8_percent_encode(&name, NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_is_safe_ascii_with_exact_utf8() {
        let id = FileId::digest(b"x");
        let d = content_disposition("r\u{e9}sum\u{e9} \"final\".pdf", &id);
        assert_eq!(
            d,
            "attachment; filename=\"r_sum_ _final_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%2Epdf"
        );
        assert!(HeaderValue::from_str(&d).is_ok());
        let d = content_disposition("evil\r\nX-Injected: 1", &id);
        assert!(HeaderValue::from_str(&d).is_ok());
        assert!(content_disposition("", &id).contains(&id.to_string()));
    }
}
