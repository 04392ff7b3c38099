//! The HTTP API (`src/openapi.json`) and the web page, on axum.
//!
//! File bytes stream in both directions; everything else is JSON, of the types in
//! [`crate::api`]. Errors are JSON objects with a stable `error` code ([`ApiErrorCode`]) and a
//! human `message`.
//!
//! Layout: this file holds the header names, the route table and the router; `server.rs` the
//! accept loop and connection limits; `guards.rs` the host, origin and token checks;
//! `errors.rs` error answers (`error_code.rs` their codes); `headers.rs` what requests ask for;
//! `bodies.rs` and `responses.rs` how upload bodies are read and answers built; `files.rs`,
//! `collections.rs` and `tickets.rs` gateway mode; `objects.rs` the object API; `assets.rs`
//! the page and what it loads (with its Content-Security-Policy); `reports.rs` health,
//! metrics and status; `slow_readers/` what slow clients can make the node hold.

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{MethodRouter, delete, get, post, put};

use crate::Node;

mod assets;
mod bodies;
mod collections;
mod error_code;
mod errors;
mod files;
mod guards;
mod headers;
mod objects;
mod reports;
mod responses;
mod server;
mod slow_readers;
mod tickets;

pub use crate::api::NodeInfo;
pub use error_code::{ApiErrorCode, UnknownCode};
pub use objects::{BUDGET_STEP, BUDGET_WAIT, MIN_BODY_RATE, OBJECT_BODY_BUDGET};
pub(crate) use server::serve;

use slow_readers::Guard;

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
        ("GET", "/", get(assets::page)),
        ("GET", "/assets/{name}", get(assets::asset)),
        ("GET", "/sw.js", get(assets::service_worker)),
        ("GET", "/favicon.ico", get(reports::favicon)),
        ("GET", "/healthz", get(reports::healthz)),
        ("GET", "/metrics", get(reports::metrics)),
        ("GET", "/api/v1/files", get(reports::list_files)),
        ("POST", "/api/v1/files", post(files::upload)),
        ("GET", "/api/v1/files/{id}", get(files::download)),
        (
            "POST",
            "/api/v1/files/{id}/ticket",
            post(tickets::issue_ticket),
        ),
        ("GET", "/download/{ticket}", get(tickets::redeem_ticket)),
        ("DELETE", "/api/v1/files/{id}", delete(files::remove)),
        (
            "POST",
            "/api/v1/collections",
            post(collections::upload_collection),
        ),
        (
            "GET",
            "/api/v1/collections/{id}",
            get(collections::list_collection),
        ),
        (
            "GET",
            "/api/v1/collections/{id}/file",
            get(collections::collection_file),
        ),
        (
            "GET",
            "/api/v1/collections/{id}/archive",
            get(collections::collection_archive),
        ),
        ("GET", "/api/v1/network", get(reports::network)),
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
        ("GET", "/api/v1/openapi.json", get(reports::openapi)),
    ]
}

/// Every (method, path) this node's HTTP server answers, paths in `{param}` syntax.
pub fn api_routes() -> Vec<(&'static str, &'static str)> {
    route_table()
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect()
}

/// The routes of one node, with `guard` bounding what responses hold for slow clients.
/// Everything under `/api/` is behind the token check.
fn router(node: Node, guard: Arc<Guard>) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in route_table() {
        let handler = if path.starts_with("/api/") {
            handler.route_layer(middleware::from_fn_with_state(
                node.clone(),
                guards::require_token,
            ))
        } else {
            handler
        };
        router = router.route(path, handler);
    }
    router
        .layer(middleware::from_fn_with_state(
            node.clone(),
            guards::check_host,
        ))
        .layer(axum::Extension(guard))
        .with_state(node)
}
