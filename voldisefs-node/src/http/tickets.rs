//! Download tickets: `POST /api/v1/files/{id}/ticket` checks the password or read key and
//! issues one; `GET /download/{ticket}` serves the file (or archive) it grants.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::Node;
use crate::api::{self, Ticket};

use super::ApiErrorCode;
use super::collections::serve_archive;
use super::errors::{ApiError, bad_request};
use super::files::serve_file;
use super::headers::{access, parse_id};
use super::slow_readers::Guard;

/// Issues a download ticket for a file (or a collection's archive) after checking the
/// password or read key opens it: `GET /download/{ticket}` then serves it to a plain
/// navigation, which a browser hands to its download manager. Tickets count against the
/// quota of the connection's IP address (see [`crate::tickets`]).
pub(super) async fn issue_ticket(
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
    let body = Ticket {
        url: format!("/download/{ticket}"),
        ticket,
        kind: if kind == TicketKind::File {
            api::TicketKind::File
        } else {
            api::TicketKind::Archive
        },
        name,
        expires_in: crate::TICKET_TTL.as_secs(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Serves the file (or archive) a ticket grants, `Range` included. Public, like the page: the
/// ticket is the capability.
pub(super) async fn redeem_ticket(
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
            serve_archive(&node, &guard, grant.id, access).await
        }
    }
}
