//! Checks every request passes before a handler runs: the `Host` and `Origin` guard against DNS
//! rebinding and cross-site requests, and the API token of `/api/...` routes.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Node;

use super::ApiErrorCode;
use super::errors::ApiError;

/// Whether `host` (a `Host` header's name, without port) is one this node answers to: an IP
/// address, `localhost`, or a name configured with `http_hosts`. A DNS-rebinding page always
/// comes with a name of its own, which is none of these.
pub(super) fn allowed_host(host: &str, names: &[String]) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>().is_ok()
        || bare.eq_ignore_ascii_case("localhost")
        || names.iter().any(|n| n.eq_ignore_ascii_case(bare))
}

/// The name part of a `Host` value (`name`, `name:port`, `[v6]:port`).
pub(super) fn host_name(value: &str) -> &str {
    if value.starts_with('[') {
        return value.split_once(']').map_or(value, |(name, _)| &name[1..]);
    }
    value.rsplit_once(':').map_or(value, |(name, _)| name)
}

/// DNS-rebinding and cross-site guard: the `Host` must be one of this node's names, and a
/// state-changing request that carries an `Origin` must come from the page's own origin.
pub(super) async fn check_host(State(node): State<Node>, request: Request, next: Next) -> Response {
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

/// With an API token configured, every `/api/...` request must carry
/// `Authorization: Bearer <token>`; the page and `/healthz` stay public.
pub(super) async fn require_token(
    State(node): State<Node>,
    request: Request,
    next: Next,
) -> Response {
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

/// The token of an `Authorization: Bearer <token>` header (the scheme name is
/// case-insensitive, RFC 9110).
pub(super) fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
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
}
