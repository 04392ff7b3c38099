//! A small client for what a node reports over its HTTP API (`ls`, `network`). Files never go
//! through here: the CLI seals and opens them itself (`crate::store`).
//!
//! Every failure becomes an error whose exit code follows the contract: a node that cannot be
//! reached is [`CliError::Unreachable`], HTTP 401 is [`CliError::WrongPassword`], any other
//! error status is [`CliError::Server`].

use std::time::Duration;

use anyhow::Context as _;
use reqwest::header::HeaderValue;
use reqwest::{Response, StatusCode, Url};
use voldisefs_node::api::{ApiErrorBody as ErrorBody, ApiErrorCode};

use crate::error::CliError;

/// How long to wait for a TCP connection to the node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a small JSON request (`ls`, `network`, `rm`) may take in total.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a download may go without receiving anything before it counts as stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest error body we read from a node.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A client for one node.
pub(crate) struct NodeClient {
    /// The HTTP client (connection pool).
    http: reqwest::Client,
    /// The node's base URL, ending in `/`.
    base: Url,
}

impl NodeClient {
    /// A client for the node `node` names (its URL, and its API token if one is given).
    pub(crate) fn new(node: &crate::cli::NodeArg) -> anyhow::Result<Self> {
        Self::for_url(node.first().clone(), node)
    }

    /// A client for the node at `base` (a share link's), with `node`'s API token if any.
    pub(crate) fn for_url(base: Url, node: &crate::cli::NodeArg) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = node.api_token()? {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.as_str()))
                .map_err(|_| anyhow::anyhow!("the API token is not valid in an HTTP header"))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(CONNECT_TIMEOUT)
            .no_proxy()
            .user_agent(concat!("voldisefs/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self { http, base })
    }

    /// `base` joined with an API path.
    fn url(&self, path: &str) -> anyhow::Result<Url> {
        self.base
            .join(path)
            .with_context(|| format!("cannot build a URL from {} and {path}", self.base))
    }

    /// `GET path` as JSON.
    pub(crate) async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let request = self.http.get(self.url(path)?).timeout(REQUEST_TIMEOUT);
        let response = self.send(request, None).await?;
        response
            .json()
            .await
            .with_context(|| format!("the node's answer to {path} is not JSON"))
    }

    /// Sends a request; connection failures and error statuses become [`CliError`]s. `file`
    /// names the file the request is about, so a 404 means that file is unknown.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        file: Option<&str>,
    ) -> anyhow::Result<Response> {
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_connect() || e.is_timeout() => {
                return Err(self.unreachable(&connect_reason(&e)).into());
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("the request to the node at {} failed", self.base)));
            }
        };
        if response.status().is_success() {
            return Ok(response);
        }
        Err(error_from_response(response, file).await.into())
    }

    /// An [`CliError::Unreachable`] for this node.
    fn unreachable(&self, reason: &str) -> CliError {
        CliError::Unreachable {
            node: self.base.to_string(),
            reason: reason.to_owned(),
        }
    }
}

/// A few words on why a connection failed (`connection refused`, `timed out`).
fn connect_reason(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".into();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut last = err.to_string();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                std::io::ErrorKind::TimedOut => "timed out".into(),
                _ => io.to_string(),
            };
        }
        last = e.to_string();
        source = e.source();
    }
    last
}

/// Turns an error response into the matching [`CliError`].
async fn error_from_response(response: Response, file: Option<&str>) -> CliError {
    let status = response.status();
    let body = read_limited(response).await;
    let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_else(|_| ErrorBody {
        error: String::new(),
        message: String::from_utf8_lossy(&body)
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect(),
    });
    classify(status, file, parsed)
}

/// The [`CliError`] for an error status and body.
fn classify(status: StatusCode, file: Option<&str>, body: ErrorBody) -> CliError {
    match (status, file) {
        (StatusCode::UNAUTHORIZED, _) if body.code() == Some(ApiErrorCode::TokenRequired) => CliError::Server {
            status: status.as_u16(),
            code: body.error,
            message:
                "the node's API needs a token: give --api-token-file or set $VOLDISEFS_API_TOKEN"
                    .into(),
        },
        (StatusCode::UNAUTHORIZED, _) if body.code() == Some(ApiErrorCode::BadToken) => CliError::Server {
            status: status.as_u16(),
            code: body.error,
            message: "the node refused the API token".into(),
        },
        (StatusCode::UNAUTHORIZED, _) => CliError::WrongPassword,
        (StatusCode::UNPROCESSABLE_ENTITY, Some(_)) => CliError::Corrupt {
            message: body.message,
        },
        (StatusCode::NOT_FOUND, Some(id)) => CliError::NotFound {
            message: if body.message.is_empty() {
                format!("file {id} not found")
            } else {
                body.message
            },
        },
        _ => CliError::Server {
            status: status.as_u16(),
            code: body.error,
            message: body.message,
        },
    }
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of a response body; errors end it early.
async fn read_limited(mut response: Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match tokio::time::timeout(STALL_TIMEOUT, response.chunk()).await {
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(error: &str, message: &str) -> ErrorBody {
        ErrorBody {
            error: error.into(),
            message: message.into(),
        }
    }

    #[test]
    fn statuses_map_to_exit_codes() {
        let id = Some("ab");
        let code = |status: u16, file| {
            let status = StatusCode::from_u16(status).unwrap();
            classify(status, file, body("x", "y")).exit_code()
        };
        assert_eq!(code(401, id), 3);
        assert_eq!(code(401, None), 3);
        assert_eq!(code(404, id), 4);
        assert_eq!(code(404, None), 1);
        assert_eq!(code(422, id), 3);
        for status in [400, 413, 500, 503, 507] {
            assert_eq!(code(status, id), 1, "{status}");
        }
    }

    #[test]
    fn server_messages_are_kept() {
        let err = classify(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("ab"),
            body("unavailable", "3 of 10 chunks unavailable"),
        );
        assert_eq!(
            err.to_string(),
            "node refused the request: 3 of 10 chunks unavailable"
        );
        let err = classify(StatusCode::NOT_FOUND, Some("ab"), ErrorBody::default());
        assert_eq!(err.to_string(), "file ab not found");
        let err = classify(StatusCode::INSUFFICIENT_STORAGE, None, body("full", ""));
        assert_eq!(err.to_string(), "node refused the request: full (HTTP 507)");
    }
}
