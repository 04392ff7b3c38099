//! Error answers: [`ApiError`] (status, [`ApiErrorCode`], message, `Retry-After`), its JSON body
//! (`crate::api::ApiErrorBody`), and the mapping of every [`NodeError`] to one.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::NodeError;
use crate::api::ApiErrorBody;

use super::ApiErrorCode;

/// An error answer: status, stable code, human message.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    code: ApiErrorCode,
    message: String,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub(super) retry_after: Option<u64>,
}

impl ApiError {
    /// An answer with `status`, `code` and `message`, no `Retry-After`.
    pub(super) fn new(status: StatusCode, code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(ApiErrorBody::new(self.code, self.message));
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let (status, code) = match &e {
            NodeError::WrongPassword => (StatusCode::UNAUTHORIZED, ApiErrorCode::WrongPassword),
            NodeError::NotFound(_) | NodeError::NoSuchPath(_) | NodeError::NoSuchObject(_) => {
                (StatusCode::NOT_FOUND, ApiErrorCode::NotFound)
            }
            NodeError::Unavailable { .. }
            | NodeError::NoHolder { .. }
            | NodeError::NoDeleteQuorum { .. }
            | NodeError::NoHolderQuorum { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, ApiErrorCode::Unavailable)
            }
            // The request is fine; the network cannot honour it as it is now.
            NodeError::TooFewNodes { .. } => (StatusCode::CONFLICT, ApiErrorCode::TooFewNodes),
            NodeError::RedundancyUnavailable(_) => {
                (StatusCode::CONFLICT, ApiErrorCode::RedundancyUnavailable)
            }
            NodeError::ShuttingDown | NodeError::Cancelled => {
                (StatusCode::SERVICE_UNAVAILABLE, ApiErrorCode::Unavailable)
            }
            NodeError::Busy(_) => {
                let mut busy = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ApiErrorCode::Busy,
                    e.to_string(),
                );
                busy.retry_after = Some(1);
                return busy;
            }
            NodeError::Full(_) => (StatusCode::INSUFFICIENT_STORAGE, ApiErrorCode::Full),
            NodeError::ObjectDeleted(_) => (StatusCode::GONE, ApiErrorCode::Deleted),
            NodeError::IsCollection(_) => (StatusCode::CONFLICT, ApiErrorCode::Collection),
            NodeError::NotACollection(_) => (StatusCode::CONFLICT, ApiErrorCode::NotCollection),
            NodeError::InvalidRequest(_) | NodeError::Body(_) | NodeError::Config(_) => {
                (StatusCode::BAD_REQUEST, ApiErrorCode::BadRequest)
            }
            NodeError::Crypto(_) => (StatusCode::UNPROCESSABLE_ENTITY, ApiErrorCode::Corrupt),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, ApiErrorCode::Internal),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// A 400 `bad_request` answer with `message`.
pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ApiErrorCode::BadRequest, message)
}
