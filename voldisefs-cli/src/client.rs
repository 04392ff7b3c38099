//! A small client for a node's HTTP API (DESIGN section 7).
//!
//! Every failure becomes an error whose exit code follows the contract: a node that cannot be
//! reached is [`CliError::Unreachable`], HTTP 401 is [`CliError::WrongPassword`], HTTP 404 on
//! a file is [`CliError::NotFound`], HTTP 422 on a file is [`CliError::Corrupt`], any other error status is [`CliError::Server`]. File
//! bytes are streamed both ways, never held whole in memory.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use reqwest::{Body, Response, StatusCode, Url};
use serde::Deserialize;
use voldisefs_node::{
    EXPIRES_HEADER, FILENAME_HEADER, LINK_HEADER, ONCE_HEADER, PASSWORD_HEADER, READ_KEY_HEADER,
    REDUNDANCY_HEADER,
};

use crate::error::CliError;
use crate::names::{encode_filename, filename_from_disposition};
use crate::password::Password;

/// How long to wait for a TCP connection to the node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a small JSON request (`ls`, `network`, `rm`) may take in total.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a download may go without receiving anything before it counts as stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest error body we read from a node.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What the node answers to an upload.
#[derive(Debug, Deserialize)]
pub(crate) struct UploadReceipt {
    /// The new file's id (64 hex digits).
    pub(crate) id: String,
    /// The file's size in bytes.
    pub(crate) size: u64,
    /// How many chunks the file was cut into.
    pub(crate) chunks: u64,
    /// Copies of each chunk the node wants (absent from older nodes).
    #[serde(default)]
    pub(crate) replicas: Option<u64>,
    /// Copies confirmed for the least-copied chunk (absent from older nodes).
    #[serde(default)]
    pub(crate) copies: Option<u64>,
    /// How the chunks are kept (`replicas:3`, `rs:4+2`); absent from older nodes.
    #[serde(default)]
    pub(crate) redundancy: Option<String>,
    /// When the file expires, unix seconds (absent: never).
    #[serde(default)]
    pub(crate) expires: Option<u64>,
    /// The file's read key, when a link was asked for (wiped when the receipt is dropped).
    #[serde(default)]
    pub(crate) read_key: Option<String>,
}

impl Drop for UploadReceipt {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.read_key);
    }
}

/// What opens a file or collection: its password, or a share link's read key.
#[derive(Clone, Copy)]
pub(crate) enum Auth<'a> {
    /// The password.
    Password(&'a Password),
    /// A read key (64 hex digits).
    ReadKey(&'a str),
}

impl Auth<'_> {
    /// The header that carries it, marked sensitive.
    fn header(&self) -> anyhow::Result<(&'static str, HeaderValue)> {
        match self {
            Auth::Password(password) => Ok((PASSWORD_HEADER, password_header(password)?)),
            Auth::ReadKey(key) => {
                let mut value = HeaderValue::from_str(key).map_err(|_| {
                    anyhow::anyhow!("the read key cannot be sent in an HTTP header")
                })?;
                value.set_sensitive(true);
                Ok((READ_KEY_HEADER, value))
            }
        }
    }
}

/// What an upload asks of the node besides storing the file.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UploadOptions {
    /// Answer with the file's read key, for a share link.
    pub(crate) link: bool,
    /// Delete the file everywhere after this long.
    pub(crate) expires: Option<Duration>,
    /// Delete it after its first complete download.
    pub(crate) once: bool,
    /// How the chunks are kept (`None`: the node's default).
    pub(crate) redundancy: Option<voldisefs_node::crypto::Redundancy>,
}

/// A collection as the node lists it (`GET /api/v1/collections/{id}`, and the answer to a
/// collection upload).
#[derive(Debug, Deserialize)]
pub(crate) struct Listing {
    /// The collection's id.
    pub(crate) id: String,
    /// Its name.
    pub(crate) name: String,
    /// Total size of its files.
    pub(crate) size: u64,
    /// Its files, sorted by path.
    pub(crate) files: Vec<ListedFile>,
}

/// One file of a collection.
#[derive(Debug, Deserialize)]
pub(crate) struct ListedFile {
    /// Relative path, `/`-separated.
    pub(crate) path: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// The file's own id.
    pub(crate) id: String,
    /// The file's read key (opens it without the password; absent from older nodes).
    #[serde(default)]
    pub(crate) read_key: Option<String>,
}

impl Drop for ListedFile {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.read_key);
    }
}

/// The JSON error body of a node.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    /// Machine-readable code (`wrong_password`, `not_found`, ...).
    #[serde(default)]
    error: String,
    /// Human-readable explanation.
    #[serde(default)]
    message: String,
}

/// A download whose headers arrived; the body is read with [`Download::next_chunk`].
pub(crate) struct Download {
    /// The node's response, body not yet read.
    response: Response,
    /// The node's URL, for error messages.
    node: Url,
    /// The file's original name from `Content-Disposition`, not yet made safe.
    pub(crate) filename: Option<String>,
    /// The body's size, when the node announced it.
    pub(crate) length: Option<u64>,
    /// The whole file's size, from `Content-Range` when a range was served.
    pub(crate) total: Option<u64>,
}

impl Download {
    /// The next piece of the body, `None` at its end. A node that sends nothing for a while
    /// counts as unreachable.
    pub(crate) async fn next_chunk(&mut self) -> anyhow::Result<Option<Bytes>> {
        match tokio::time::timeout(STALL_TIMEOUT, self.response.chunk()).await {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("the download was interrupted")),
            Err(_) => Err(CliError::Unreachable {
                node: self.node.to_string(),
                reason: "the download stalled".into(),
            }
            .into()),
        }
    }
}

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
        Self::for_url(node.node.clone(), node)
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

    /// Uploads `body` (`len` bytes when known, else sent chunked) under `filename`, encrypted
    /// with `password`.
    pub(crate) async fn upload(
        &self,
        body: Body,
        len: Option<u64>,
        filename: &str,
        password: &Password,
        options: UploadOptions,
    ) -> anyhow::Result<UploadReceipt> {
        let UploadOptions {
            link,
            expires,
            once,
            redundancy,
        } = options;
        let mut request = self
            .http
            .post(self.url("api/v1/files")?)
            .header(PASSWORD_HEADER, password_header(password)?)
            .header(FILENAME_HEADER, encode_filename(filename))
            .header(CONTENT_TYPE, "application/octet-stream");
        if link {
            request = request.header(LINK_HEADER, "true");
        }
        if let Some(expires) = expires {
            request = request.header(EXPIRES_HEADER, expires.as_secs());
        }
        if once {
            request = request.header(ONCE_HEADER, "true");
        }
        if let Some(redundancy) = redundancy {
            request = request.header(REDUNDANCY_HEADER, redundancy.to_string());
        }
        // Without a length (a pipe) the body goes chunked; the node streams it either way.
        if let Some(len) = len {
            request = request.header(CONTENT_LENGTH, len);
        }
        let request = request.body(body);
        let response = self.send(request, None).await?;
        response
            .json::<UploadReceipt>()
            .await
            .context("the node's answer to the upload is not what was expected")
    }

    /// Uploads several files as one collection named `name` (the node picks one if `None`):
    /// `form` holds a `path` part then a `file` part per file.
    pub(crate) async fn upload_collection(
        &self,
        form: reqwest::multipart::Form,
        name: Option<&str>,
        password: &Password,
        options: UploadOptions,
    ) -> anyhow::Result<serde_json::Value> {
        let UploadOptions {
            link,
            expires,
            redundancy,
            ..
        } = options;
        let mut request = self
            .http
            .post(self.url("api/v1/collections")?)
            .header(PASSWORD_HEADER, password_header(password)?);
        if let Some(name) = name {
            request = request.header(FILENAME_HEADER, encode_filename(name));
        }
        if let Some(expires) = expires {
            request = request.header(EXPIRES_HEADER, expires.as_secs());
        }
        if let Some(redundancy) = redundancy {
            request = request.header(REDUNDANCY_HEADER, redundancy.to_string());
        }
        if link {
            request = request.header(LINK_HEADER, "true");
        }
        let response = self.send(request.multipart(form), None).await?;
        response
            .json()
            .await
            .context("the node's answer to the upload is not what was expected")
    }

    /// Lists collection `id` (the node checks the password and every path).
    pub(crate) async fn collection(
        &self,
        id: &str,
        auth: Auth<'_>,
    ) -> anyhow::Result<serde_json::Value> {
        let (name, value) = auth.header()?;
        let request = self
            .http
            .get(self.url(&format!("api/v1/collections/{id}"))?)
            .header(name, value)
            .timeout(REQUEST_TIMEOUT);
        let response = self.send(request, Some(id)).await?;
        response
            .json()
            .await
            .context("the node's collection listing is not what was expected")
    }

    /// Starts downloading file `id`; fails before any body byte when the node refuses.
    pub(crate) async fn download(&self, id: &str, password: &Password) -> anyhow::Result<Download> {
        self.download_range(id, None, password).await
    }

    /// Like [`NodeClient::download`], asking only for `range` (a `Range` header value) if given.
    pub(crate) async fn download_range(
        &self,
        id: &str,
        range: Option<&str>,
        password: &Password,
    ) -> anyhow::Result<Download> {
        let url = self.url(&format!("api/v1/files/{id}"))?;
        self.download_from(url, id, range, password).await
    }

    /// Starts downloading file `id` with the read key of a share link instead of a password.
    pub(crate) async fn download_with_key(&self, id: &str, key: &str) -> anyhow::Result<Download> {
        let url = self.url(&format!("api/v1/files/{id}"))?;
        let mut value = HeaderValue::from_str(key)
            .map_err(|_| anyhow::anyhow!("the link's key cannot be sent in an HTTP header"))?;
        value.set_sensitive(true);
        self.start_download(self.http.get(url).header(READ_KEY_HEADER, value), id)
            .await
    }

    /// Starts downloading the file at `path` of collection `id`.
    pub(crate) async fn download_path(
        &self,
        id: &str,
        path: &str,
        password: &Password,
    ) -> anyhow::Result<Download> {
        let mut url = self.url(&format!("api/v1/collections/{id}/file"))?;
        url.query_pairs_mut().append_pair("path", path);
        self.download_from(url, id, None, password).await
    }

    /// Starts downloading collection `id` as one tar archive.
    pub(crate) async fn download_archive(
        &self,
        id: &str,
        auth: Auth<'_>,
    ) -> anyhow::Result<Download> {
        let url = self.url(&format!("api/v1/collections/{id}/archive"))?;
        let (name, value) = auth.header()?;
        self.start_download(self.http.get(url).header(name, value), id)
            .await
    }

    /// Starts a download from `url` (about file or collection `id`), of `range` if given.
    async fn download_from(
        &self,
        url: Url,
        id: &str,
        range: Option<&str>,
        password: &Password,
    ) -> anyhow::Result<Download> {
        let mut request = self
            .http
            .get(url)
            .header(PASSWORD_HEADER, password_header(password)?);
        if let Some(range) = range {
            request = request.header(reqwest::header::RANGE, range);
        }
        self.start_download(request, id).await
    }

    /// Sends a download request; fails before any body byte when the node refuses.
    async fn start_download(
        &self,
        request: reqwest::RequestBuilder,
        id: &str,
    ) -> anyhow::Result<Download> {
        let response = match tokio::time::timeout(STALL_TIMEOUT, self.send(request, Some(id))).await
        {
            Ok(result) => result?,
            Err(_) => return Err(self.unreachable("no answer in time").into()),
        };
        let filename = response
            .headers()
            .get(CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .and_then(filename_from_disposition);
        let length = response.content_length();
        // `bytes first-last/total`
        let total = response
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit_once('/'))
            .and_then(|(_, total)| total.parse().ok());
        Ok(Download {
            response,
            node: self.base.clone(),
            filename,
            length,
            total,
        })
    }

    /// Deletes file (or collection) `id` from the network; returns how many chunks went.
    pub(crate) async fn delete(&self, id: &str, password: &Password) -> anyhow::Result<u64> {
        let request = self
            .http
            .delete(self.url(&format!("api/v1/files/{id}"))?)
            .header(PASSWORD_HEADER, password_header(password)?)
            .timeout(REQUEST_TIMEOUT);
        let answer: serde_json::Value = self
            .send(request, Some(id))
            .await?
            .json()
            .await
            .context("the node's answer to the delete is not JSON")?;
        Ok(answer["chunks"].as_u64().unwrap_or(0))
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

/// The password as a header value, marked sensitive so it never shows in debug output.
fn password_header(password: &Password) -> anyhow::Result<HeaderValue> {
    let mut value = HeaderValue::from_bytes(password)
        .map_err(|_| anyhow::anyhow!("the password cannot be sent in an HTTP header"))?;
    value.set_sensitive(true);
    Ok(value)
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
        (StatusCode::UNAUTHORIZED, _) if body.error == "token_required" => CliError::Server {
            status: status.as_u16(),
            code: body.error,
            message:
                "the node's API needs a token: give --api-token-file or set $VOLDISEFS_API_TOKEN"
                    .into(),
        },
        (StatusCode::UNAUTHORIZED, _) if body.error == "bad_token" => CliError::Server {
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

    #[test]
    fn password_header_is_sensitive() {
        let password = zeroize::Zeroizing::new(b"hunter2".to_vec());
        let value = password_header(&password).unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("hunter2"));
        let bad = zeroize::Zeroizing::new(b"a\nb".to_vec());
        assert!(password_header(&bad).is_err());
    }
}
