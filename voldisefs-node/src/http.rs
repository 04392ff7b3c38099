//! The HTTP API (DESIGN section 7) and the web page, on axum.
//!
//! File bytes stream in both directions; everything else is JSON. Errors are JSON objects with
//! a stable `error` code and a human `message`.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use percent_encoding::{NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};
use serde_json::json;
use voldisefs_crypto::Password;
use voldisefs_proto::FileId;

use crate::{Node, NodeError};

mod error_code;
mod objects;
mod slow_readers;

pub use error_code::{ApiErrorCode, UnknownCode};

pub use objects::{BUDGET_STEP, BUDGET_WAIT, MIN_BODY_RATE, NodeInfo, OBJECT_BODY_BUDGET};
use slow_readers::{Budgeted, Guard, Lease};

/// Header of `DELETE`-style object requests carrying a file's delete key (64 hex digits).
pub const DELETE_KEY_HEADER: &str = "x-voldisefs-delete-key";

/// Header carrying the file's password.
pub const PASSWORD_HEADER: &str = "x-voldisefs-password";
/// Header carrying the uploaded file's name, percent-encoded UTF-8.
pub const FILENAME_HEADER: &str = "x-voldisefs-filename";
/// Header carrying a file's read key (64 hex digits, from a share link) instead of a password.
pub const READ_KEY_HEADER: &str = "x-voldisefs-read-key";
/// Upload header asking for the file (or collection) to expire this many seconds from now.
pub const EXPIRES_HEADER: &str = "x-voldisefs-expires";
/// Upload header asking for the file to be deleted after its first complete download (`true`).
pub const ONCE_HEADER: &str = "x-voldisefs-once";
/// Upload header choosing how the file's chunks are kept: `replicas:N` (N must be the
/// network's count) or `rs:K+M` (K data and M parity Reed-Solomon shards on K + M nodes).
pub const REDUNDANCY_HEADER: &str = "x-voldisefs-redundancy";
/// Upload header asking for the new file's read key in the answer (`true`), to make a link.
pub const LINK_HEADER: &str = "x-voldisefs-link";

/// Every route: method, path (axum syntax), handler. The router is built from this table and
/// [`api_routes`] lists it, so the OpenAPI document can be checked against what is served.
fn route_table() -> Vec<(&'static str, &'static str, MethodRouter<Node>)> {
    vec![
        ("GET", "/", get(page)),
        ("GET", "/favicon.ico", get(favicon)),
        ("GET", "/healthz", get(healthz)),
        ("GET", "/metrics", get(metrics)),
        ("GET", "/api/v1/files", get(list_files)),
        ("POST", "/api/v1/files", post(upload)),
        ("GET", "/api/v1/files/{id}", get(download)),
        ("POST", "/api/v1/files/{id}/ticket", post(issue_ticket)),
        ("GET", "/download/{ticket}", get(redeem_ticket)),
        ("DELETE", "/api/v1/files/{id}", delete(remove)),
        ("POST", "/api/v1/collections", post(upload_collection)),
        ("GET", "/api/v1/collections/{id}", get(list_collection)),
        ("GET", "/api/v1/collections/{id}/file", get(collection_file)),
        (
            "GET",
            "/api/v1/collections/{id}/archive",
            get(collection_archive),
        ),
        ("GET", "/api/v1/network", get(network)),
        ("GET", "/api/v1/info", get(objects::info)),
        ("POST", "/api/v1/objects", post(objects::put_batch)),
        ("PUT", "/api/v1/objects/{id}", put(objects::put_object)),
        ("GET", "/api/v1/objects/{id}", get(objects::get_object)),
        (
            "DELETE",
            "/api/v1/objects/{id}",
            delete(objects::delete_object),
        ),
        (
            "POST",
            "/api/v1/objects/delete",
            post(objects::delete_objects),
        ),
        ("PUT", "/api/v1/stripes/{id}", put(objects::put_stripe)),
        ("GET", "/api/v1/stripes/{id}", get(objects::get_stripe)),
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
fn refuse(
    guard: &Guard,
    connections: &mut tokio::task::JoinSet<()>,
    stream: tokio::net::TcpStream,
) {
    if let Some(answer) = guard.refuse(stream) {
        connections.spawn(answer);
    }
}

/// Whether `host` (a `Host` header's name, without port) is one this node answers to: an IP
/// address, `localhost`, or a name configured with `http_hosts`. A DNS-rebinding page always
/// comes with a name of its own, which is none of these.
fn allowed_host(host: &str, names: &[String]) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>().is_ok()
        || bare.eq_ignore_ascii_case("localhost")
        || names.iter().any(|n| n.eq_ignore_ascii_case(bare))
}

/// The name part of a `Host` value (`name`, `name:port`, `[v6]:port`).
fn host_name(value: &str) -> &str {
    if value.starts_with('[') {
        return value.split_once(']').map_or(value, |(name, _)| &name[1..]);
    }
    value.rsplit_once(':').map_or(value, |(name, _)| name)
}

/// DNS-rebinding and cross-site guard: the `Host` must be one of this node's names, and a
/// state-changing request that carries an `Origin` must come from the page's own origin.
async fn check_host(State(node): State<Node>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(host) = host {
        if !allowed_host(host_name(host), &node.config().http_hosts) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                ApiErrorCode::ForbiddenHost,
                "this node does not answer to that host name; start it with --http-host NAME to add one",
            )
            .into_response();
        }
    }
    let changes_state = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if changes_state {
        if let Some(origin) = headers.get(header::ORIGIN) {
            // The page's own origin: this host, over http (or https behind a TLS proxy); a
            // page of any other scheme (`evil://host`) is another site.
            let same = match (origin.to_str().ok(), host) {
                (Some(origin), Some(host)) => {
                    origin.split_once("://").is_some_and(|(scheme, rest)| {
                        (scheme.eq_ignore_ascii_case("http")
                            || scheme.eq_ignore_ascii_case("https"))
                            && rest.eq_ignore_ascii_case(host)
                    })
                }
                _ => false,
            };
            if !same {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    ApiErrorCode::ForbiddenOrigin,
                    "requests that change state must come from this node's own page",
                )
                .into_response();
            }
        }
    }
    next.run(request).await
}

/// The routes of one node, with `guard` bounding what responses hold for slow clients.
/// Everything under `/api/` is behind the token check.
fn router(node: Node, guard: Arc<Guard>) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in route_table() {
        let handler = if path.starts_with("/api/") {
            handler.route_layer(middleware::from_fn_with_state(node.clone(), require_token))
        } else {
            handler
        };
        router = router.route(path, handler);
    }
    router
        .layer(middleware::from_fn_with_state(node.clone(), check_host))
        .layer(axum::Extension(guard))
        .with_state(node)
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
                ApiErrorCode::TokenRequired,
                "this node's API needs a token: send `Authorization: Bearer <token>`",
            )),
            Some(candidate) if !token.matches(candidate) => {
                Some((ApiErrorCode::BadToken, "the API token is wrong"))
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
    code: ApiErrorCode,
    message: String,
    /// Seconds after which a retry may succeed (`Retry-After`).
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: ApiErrorCode, message: impl Into<String>) -> Self {
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
        let body = Json(json!({"error": self.code.as_str(), "message": self.message}));
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
            NodeError::Unavailable { .. } | NodeError::NoHolder { .. } => {
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

fn password(headers: &HeaderMap) -> Result<Password, ApiError> {
    match headers.get(PASSWORD_HEADER) {
        Some(value) if !value.as_bytes().is_empty() => Ok(Password::new(value.as_bytes())),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ApiErrorCode::PasswordRequired,
            format!("the {PASSWORD_HEADER} header must carry the file's password"),
        )),
    }
}

fn parse_id(id: Result<Path<String>, PathRejection>) -> Result<FileId, ApiError> {
    let bad =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, ApiErrorCode::BadRequest, message);
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

/// The page's icon (SVG, from the binary; browsers ask for `/favicon.ico` by default).
async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("favicon.svg"),
    )
        .into_response()
}

/// The OpenAPI 3.1 description of this API.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

/// Prometheus metrics (OpenMetrics text format): the node's, then the HTTP server's.
async fn metrics(
    State(node): State<Node>,
    axum::Extension(guard): axum::Extension<Arc<Guard>>,
) -> Response {
    let mut text = node.metrics_text();
    text.truncate(text.rfind("# EOF").unwrap_or(text.len()));
    text.push_str(&guard.metrics_text());
    text.push_str("# EOF\n");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// A response's share of the budget for bytes held ahead of slow clients (one chunk to
/// begin with); 503 busy when none frees up in time.
async fn lease(node: &Node, guard: &Arc<Guard>) -> Result<Arc<Lease>, ApiError> {
    let unit = node.config().chunk_size.bytes();
    Ok(guard.lease(unit).await?)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn list_files(State(node): State<Node>) -> Json<serde_json::Value> {
    Json(json!({ "files": node.files() }))
}

async fn network(State(node): State<Node>) -> Json<crate::NetworkStatus> {
    Json(node.network_status().await)
}

/// The name given in the file-name header (empty without one), percent-decoded; bytes that
/// are not UTF-8 become U+FFFD (a name is a label: an odd one is kept, not refused).
fn file_name(headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(match headers.get(FILENAME_HEADER) {
        Some(value) => percent_decode(value.as_bytes())
            .decode_utf8_lossy()
            .into_owned(),
        None => String::new(),
    })
}

/// A 201 answer of `value` with `read_key` added (an upload that asked for a share link).
fn created_with_key(
    value: &impl serde::Serialize,
    key: &voldisefs_crypto::ReadKey,
) -> Result<Response, ApiError> {
    let mut answer = serde_json::to_value(value).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ApiErrorCode::Internal,
            e.to_string(),
        )
    })?;
    answer["read_key"] = json!(key.to_hex().as_str());
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// A `true`/`false` header (absent: false).
fn flag(headers: &HeaderMap, name: &str) -> Result<bool, ApiError> {
    match headers.get(name).map(HeaderValue::as_bytes) {
        None | Some(b"false") => Ok(false),
        Some(b"true") => Ok(true),
        Some(_) => Err(bad_request(format!("{name} is `true` or `false`"))),
    }
}

/// The expiry an upload asks for in [`EXPIRES_HEADER`] (seconds from now), if any.
fn expires_after(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    let Some(value) = headers.get(EXPIRES_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&secs| secs >= crate::MIN_EXPIRY_SECS)
        .map(|secs| Some(Duration::from_secs(secs)))
        .ok_or_else(|| {
            bad_request(format!(
                "{EXPIRES_HEADER} is a number of seconds, at least {}",
                crate::MIN_EXPIRY_SECS
            ))
        })
}

/// The upload's `X-Voldisefs-Redundancy`, if given.
fn redundancy(headers: &HeaderMap) -> Result<Option<voldisefs_crypto::Redundancy>, ApiError> {
    let Some(value) = headers.get(REDUNDANCY_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| bad_request(format!("{REDUNDANCY_HEADER} is not ASCII")))?;
    match text.parse() {
        Ok(spec) => Ok(Some(spec)),
        // Well formed, past the bounds (K + M > 32): the network cannot keep it.
        Err(e) if well_formed_redundancy(text) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ApiErrorCode::RedundancyUnavailable,
            format!("{REDUNDANCY_HEADER}: {e}"),
        )),
        Err(e) => Err(bad_request(format!("{REDUNDANCY_HEADER}: {e}"))),
    }
}

/// `replicas:N` or `rs:K+M` with every number 1 to 32 (the document's pattern).
fn well_formed_redundancy(text: &str) -> bool {
    let number = |s: &str| {
        !s.is_empty()
            && s.len() <= 2
            && !s.starts_with('0')
            && s.parse::<u8>().is_ok_and(|n| (1..=32).contains(&n))
    };
    if let Some(n) = text.strip_prefix("replicas:") {
        return number(n);
    }
    text.strip_prefix("rs:")
        .and_then(|km| km.split_once('+'))
        .is_some_and(|(k, m)| number(k) && number(m))
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, ApiErrorCode::BadRequest, message)
}

/// Most of a refused upload's body read (and dropped) before the refusal is sent.
const REFUSED_DRAIN_BYTES: usize = 8 << 20;
/// Longest a refused upload's body is read before the refusal is sent.
const REFUSED_DRAIN_TIME: Duration = Duration::from_secs(1);

/// Reads and drops at most [`REFUSED_DRAIN_BYTES`] of `body`, for at most
/// [`REFUSED_DRAIN_TIME`]. A client still sending a body the node has already refused (a bad
/// header, an unavailable redundancy) then reads the refusal instead of a broken pipe; larger
/// or slower bodies are cut off as before.
async fn drain_refused(mut stream: axum::body::BodyDataStream) {
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
async fn refused_after_drain<T>(
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

async fn upload(
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
        return created_with_key(&receipt, &receipt.read_key);
    }
    Ok((StatusCode::CREATED, Json(receipt)).into_response())
}

/// `body`, failing with an error once it sends nothing for `idle` (a client that stalls an
/// upload cannot hold its buffers and chunks in flight forever).
fn idle_limited(
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

async fn download(
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

/// What opens the file a request names: `X-Voldisefs-Read-Key` if given, else the password.
fn access(headers: &HeaderMap) -> Result<crate::Access, ApiError> {
    Ok(match headers.get(READ_KEY_HEADER) {
        Some(key) => crate::Access::ReadKey(
            key.to_str()
                .ok()
                .and_then(|k| voldisefs_crypto::ReadKey::from_hex(k.trim()).ok())
                .ok_or_else(|| {
                    bad_request(format!("{READ_KEY_HEADER} must be 64 hexadecimal digits"))
                })?,
        ),
        None => crate::Access::Password(password(headers)?),
    })
}

/// Issues a download ticket for a file (or a collection's archive) after checking the
/// password or read key opens it: `GET /download/{ticket}` then serves it to a plain
/// navigation, which a browser hands to its download manager. Tickets count against the
/// quota of the connection's IP address (see [`crate::tickets`]).
async fn issue_ticket(
    State(node): State<Node>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    use crate::tickets::TicketKind;

    let id = parse_id(id)?;
    let access = access(&headers)?;
    // A plain open: the record and the key, no chunk fetched.
    let stat = node.stat(id, access).await?;
    let (kind, name) = match stat.kind {
        voldisefs_crypto::FileKind::File => (TicketKind::File, stat.name),
        voldisefs_crypto::FileKind::Collection => {
            (TicketKind::Archive, format!("{}.tar", stat.name))
        }
    };
    let client = peer.map_or(crate::tickets::Client::UNKNOWN, |p| {
        crate::tickets::Client::from_ip(p.0.0.ip())
    });
    let ticket =
        node.tickets()
            .issue(client, id, kind, stat.read_key, std::time::Instant::now())?;
    let body = json!({
        "ticket": ticket,
        "url": format!("/download/{ticket}"),
        "kind": if kind == TicketKind::File { "file" } else { "archive" },
        "name": name,
        "expires_in": crate::TICKET_TTL.as_secs(),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Serves the file (or archive) a ticket grants, `Range` included. Public, like the page: the
/// ticket is the capability.
async fn redeem_ticket(
    State(node): State<Node>,
    axum::Extension(guard): axum::Extension<Arc<Guard>>,
    method: axum::http::Method,
    ticket: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(ticket) = ticket.map_err(|e| bad_request(e.body_text()))?;
    let Some(grant) = node.tickets().redeem(&ticket, std::time::Instant::now()) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ApiErrorCode::NotFound,
            "this download link expired or is unknown: start the download again from the page",
        ));
    };
    match (grant.kind, crate::Access::ReadKey(grant.key)) {
        (crate::tickets::TicketKind::File, access) => {
            serve_file(
                &node,
                &guard,
                grant.id,
                access,
                &headers,
                method == axum::http::Method::HEAD,
            )
            .await
        }
        (crate::tickets::TicketKind::Archive, access) => {
            let listing = node.collection_with(grant.id, access).await?;
            let name = format!("{}.tar", listing.name);
            let lease = lease(&node, &guard).await?;
            let (len, body) = node.collection_archive(listing)?;
            Ok(streamed(
                body,
                Some(lease),
                len,
                "application/x-tar",
                &name,
                &grant.id,
            ))
        }
    }
}

/// Streams file `id` opened by `access`, honouring `Range` and `If-Range`. A `HEAD` (`head`)
/// gets the same headers from a plain open ([`Node::stat`]): no body is read, so it never
/// counts as the reading of a burn-after-reading file.
async fn serve_file(
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
async fn head_of(
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

/// A streamed attachment of `len` bytes, within `lease` if given.
fn streamed(
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

/// Uploads several files as one collection: a `multipart/form-data` body of `file` parts,
/// each preceded by a `path` part (its relative path, exact UTF-8) or else named by its own
/// file name. One Argon2id run for the whole batch; files stream through one at a time.
async fn upload_collection(
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
        return created_with_key(&listing, key);
    }
    Ok((StatusCode::CREATED, Json(listing)).into_response())
}

async fn list_collection(
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
struct PathQuery {
    path: String,
}

async fn collection_file(
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

async fn collection_archive(
    State(node): State<Node>,
    axum::Extension(guard): axum::Extension<Arc<Guard>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let access = access(&headers)?;
    let listing = node.collection_with(id, access).await?;
    let name = format!("{}.tar", listing.name);
    let lease = lease(&node, &guard).await?;
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
