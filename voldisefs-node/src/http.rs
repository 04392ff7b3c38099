//! The HTTP API (DESIGN section 7) and the web page, on axum.
//!
//! File bytes stream in both directions; everything else is JSON. Errors are JSON objects with
//! a stable `error` code and a human `message`.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};
use serde_json::json;
use voldisefs_crypto::Password;
use voldisefs_proto::FileId;

use crate::{Node, NodeError};

/// Header carrying the file's password.
pub const PASSWORD_HEADER: &str = "x-voldisefs-password";
/// Header carrying the uploaded file's name, percent-encoded UTF-8.
pub const FILENAME_HEADER: &str = "x-voldisefs-filename";

/// Every route: method, path (axum syntax), handler. The router is built from this table and
/// [`api_routes`] lists it, so the OpenAPI document can be checked against what is served.
fn route_table() -> Vec<(&'static str, &'static str, MethodRouter<Node>)> {
    vec![
        ("GET", "/", get(page)),
        ("GET", "/healthz", get(healthz)),
        ("GET", "/metrics", get(metrics)),
        ("GET", "/api/v1/files", get(list_files)),
        ("POST", "/api/v1/files", post(upload)),
        ("GET", "/api/v1/files/{id}", get(download)),
        ("DELETE", "/api/v1/files/{id}", delete(remove)),
        ("GET", "/api/v1/network", get(network)),
        ("GET", "/api/v1/openapi.json", get(openapi)),
    ]
}

/// Every (method, path) this node's HTTP server answers, paths in `{param}` syntax.
pub fn api_routes() -> Vec<(&'static str, &'static str)> {
    route_table()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// How long, after `token` is cancelled, transfers in progress may go on before they are cut.
const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves `node`'s HTTP API and page on `listener` until `token` is cancelled; requests in
/// progress then get a few seconds to finish.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    node: Node,
    token: tokio_util::sync::CancellationToken,
) {
    let served =
        axum::serve(listener, router(node)).with_graceful_shutdown(token.clone().cancelled_owned());
    let cut_off = async {
        token.cancelled().await;
        tokio::time::sleep(GRACE).await;
    };
    tokio::select! {
        result = served => {
            if let Err(e) = result {
                tracing::error!(error = %e, "HTTP server failed");
            }
        }
        () = cut_off => tracing::warn!("HTTP transfers still running after {GRACE:?}; cutting them off"),
    }
}

/// The routes of one node. Everything under `/api/` is behind the token check.
pub(crate) fn router(node: Node) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in route_table() {
        let handler = if path.starts_with("/api/") {
            handler.route_layer(middleware::from_fn_with_state(node.clone(), require_token))
        } else {
            handler
        };
        router = router.route(path, handler);
    }
    router.with_state(node)
}

/// With an API token configured, every `/api/...` request must carry
/// `Authorization: Bearer <token>`; the page and `/healthz` stay public.
async fn require_token(State(node): State<Node>, request: Request, next: Next) -> Response {
    if let Some(token) = &node.config().api_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| bearer_token(v.as_bytes()));
        let refusal = match given {
            None => Some((
                "token_required",
                "this node's API needs a token: send `Authorization: Bearer <token>`",
            )),
            Some(candidate) if !token.matches(candidate) => {
                Some(("bad_token", "the API token is wrong"))
            }
            Some(_) => None,
        };
        if let Some((code, message)) = refusal {
            return ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
        }
    }
    next.run(request).await
}

/// An error answer: status, stable code, human message.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.code, "message": self.message}));
        (self.status, body).into_response()
    }
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let (status, code) = match &e {
            NodeError::WrongPassword => (StatusCode::UNAUTHORIZED, "wrong_password"),
            NodeError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            NodeError::Unavailable { .. } | NodeError::NoHolder { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            NodeError::ShuttingDown | NodeError::Cancelled => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            NodeError::Full(_) => (StatusCode::INSUFFICIENT_STORAGE, "full"),
            NodeError::InvalidRequest(_) | NodeError::Body(_) | NodeError::Config(_) => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
            NodeError::Crypto(_) => (StatusCode::UNPROCESSABLE_ENTITY, "corrupt"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

fn password(headers: &HeaderMap) -> Result<Password, ApiError> {
    match headers.get(PASSWORD_HEADER) {
        Some(value) if !value.as_bytes().is_empty() => Ok(Password::new(value.as_bytes())),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "password_required",
            format!("the {PASSWORD_HEADER} header must carry the file's password"),
        )),
    }
}

fn parse_id(id: Result<Path<String>, PathRejection>) -> Result<FileId, ApiError> {
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message);
    let Path(id) = id.map_err(|e| bad(e.body_text()))?;
    id.parse().map_err(|e| bad(format!("{e}")))
}

/// The token of an `Authorization: Bearer <token>` header (the scheme name is
/// case-insensitive, RFC 9110).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

/// The OpenAPI 3.1 description of this API.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

/// Prometheus metrics (OpenMetrics text format).
async fn metrics(State(node): State<Node>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        node.metrics_text(),
    )
        .into_response()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn list_files(State(node): State<Node>) -> Json<serde_json::Value> {
    Json(json!({ "files": node.files() }))
}

async fn network(State(node): State<Node>) -> Json<crate::NetworkStatus> {
    Json(node.status())
}

async fn upload(
    State(node): State<Node>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let password = password(&headers)?;
    let name = match headers.get(FILENAME_HEADER) {
        Some(value) => percent_decode(value.as_bytes())
            .decode_utf8()
            .map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "file name is not percent-encoded UTF-8",
                )
            })?
            .into_owned(),
        None => String::new(),
    };
    let receipt = node
        .upload(&name, password, body.into_data_stream())
        .await?;
    Ok((StatusCode::CREATED, Json(receipt)).into_response())
}

async fn download(
    State(node): State<Node>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let password = password(&headers)?;
    let file = node.download(id, password).await?;
    let disposition = content_disposition(&file.name, &id);
    let mut response = Response::new(Body::from_stream(file.body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

async fn remove(
    State(node): State<Node>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(id)?;
    let password = password(&headers)?;
    let chunks = node.delete(id, password).await?;
    Ok(Json(json!({"id": id, "deleted": true, "chunks": chunks})))
}

/// `attachment` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / 5987).
fn content_disposition(name: &str, id: &FileId) -> String {
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
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"BEARER abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bear"), None);
    }

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
