//! What the node shows about itself: the page's icon, the OpenAPI document, health,
//! metrics, the index of uploads and the network status.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::Node;
use crate::api::{FileList, Health, NetworkStatus};

use super::slow_readers::Guard;

/// The page's icon (SVG, from the binary; browsers ask for `/favicon.ico` by default).
pub(super) async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../favicon.svg"),
    )
        .into_response()
}

/// The OpenAPI 3.1 description of this API.
pub(super) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
        .into_response()
}

/// Prometheus metrics (OpenMetrics text format): the node's, then the HTTP server's.
pub(super) async fn metrics(
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

/// `GET /healthz`: `{"status": "ok"}` while the node serves.
pub(super) async fn healthz() -> Json<Health> {
    Json(Health::ok())
}

/// `GET /api/v1/files`: the index of files uploaded through this node.
pub(super) async fn list_files(State(node): State<Node>) -> Json<FileList> {
    Json(FileList {
        files: node.files(),
    })
}

/// `GET /api/v1/network`: this node, its peers (with what they store), store and repair.
pub(super) async fn network(State(node): State<Node>) -> Json<NetworkStatus> {
    Json(node.network_status().await)
}
