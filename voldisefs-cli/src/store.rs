//! The CLI's object store: a node's object API over HTTP, with every `--node` as a source.
//!
//! Only sealed objects, stripe descriptors and delete keys cross the wire: the password, the
//! names, the plaintext and the link keys stay in this process (see `voldisefs_crypto::client`).
//! Writes go to the first node that answers; reads try the nodes in order, and the pipeline
//! verifies every answer, so a node that serves wrong bytes is named on stderr and the object
//! is taken from the next one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};
use voldisefs_node::NodeInfo;
use voldisefs_node::crypto::client::{
    BoxFuture, Client, DeleteScope, Fetched, Object, ObjectKind, ObjectStore, Settings, StoreError,
    StoreErrorKind, Stored, Threads,
};
use voldisefs_node::crypto::{ChunkSize, DeleteKey, EncodedStripe, KdfParams};
use voldisefs_node::proto::objects::{encode_batch, encode_entry};

use crate::error::CliError;

/// How long to wait for a TCP connection to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one object request may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest error body read from a node.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Ids per delete request (the node takes up to `max_delete_ids`).
const DELETE_GROUP: usize = 4096;

/// One node of the store.
struct Source {
    base: Url,
    /// Set once it served wrong bytes: asked last from then on.
    distrusted: AtomicBool,
}

/// The object API of one or more nodes, as an [`ObjectStore`].
pub(crate) struct HttpStore {
    http: reqwest::Client,
    sources: Vec<Source>,
}

impl HttpStore {
    /// A store over `nodes` (at least one), sending `token` as a bearer token if given.
    pub(crate) fn new(
        nodes: &[Url],
        token: Option<zeroize::Zeroizing<String>>,
    ) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.as_str()))
                .map_err(|_| anyhow::anyhow!("the API token is not valid in an HTTP header"))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .user_agent(concat!("voldisefs/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot set up the HTTP client")?;
        anyhow::ensure!(!nodes.is_empty(), "no node given");
        Ok(Self {
            http,
            sources: nodes
                .iter()
                .map(|base| Source {
                    base: base.clone(),
                    distrusted: AtomicBool::new(false),
                })
                .collect(),
        })
    }

    fn url(&self, source: usize, path: &str) -> Result<Url, StoreError> {
        let base = &self.sources[source.min(self.sources.len() - 1)].base;
        base.join(path)
            .map_err(|e| StoreError::new(StoreErrorKind::Other, format!("bad URL: {e}")))
    }

    /// Sources in the order writes try them: trusted ones first.
    fn order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.sources.len()).collect();
        order.sort_by_key(|&i| self.sources[i].distrusted.load(Ordering::Relaxed));
        order
    }

    /// Sends a request built by `build` to the first source that can be reached.
    async fn to_any(
        &self,
        build: impl Fn(&reqwest::Client, usize) -> Result<reqwest::RequestBuilder, StoreError>,
    ) -> Result<reqwest::Response, StoreError> {
        let mut last = None;
        for source in self.order() {
            match self.send(source, build(&self.http, source)?).await {
                Err(e) if e.kind == StoreErrorKind::Unreachable => last = Some(e),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| StoreError::new(StoreErrorKind::Unreachable, "no node")))
    }

    async fn send(
        &self,
        source: usize,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, StoreError> {
        let node = &self.sources[source].base;
        let response = request.send().await.map_err(|e| {
            let kind = if e.is_connect() || e.is_timeout() {
                StoreErrorKind::Unreachable
            } else {
                StoreErrorKind::Other
            };
            StoreError::new(kind, format!("cannot reach node at {node}: {}", reason(&e)))
        })?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            return Ok(response);
        }
        let status = response.status();
        let body = read_limited(response).await;
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let code = parsed["error"].as_str().unwrap_or_default();
        let message = parsed["message"].as_str().map_or_else(
            || String::from_utf8_lossy(&body).chars().take(200).collect(),
            str::to_owned,
        );
        let kind = match (status, code) {
            (StatusCode::INSUFFICIENT_STORAGE, _) => StoreErrorKind::Full,
            (StatusCode::SERVICE_UNAVAILABLE, _) => StoreErrorKind::Unavailable,
            (s, _) if s.is_client_error() => StoreErrorKind::Refused,
            _ => StoreErrorKind::Other,
        };
        Err(StoreError::new(kind, message))
    }

    async fn stored(response: reqwest::Response) -> Result<Stored, StoreError> {
        let receipt: serde_json::Value = response.json().await.map_err(|e| {
            StoreError::new(StoreErrorKind::Other, format!("the node's receipt: {e}"))
        })?;
        let n = |k: &str| receipt[k].as_u64().unwrap_or(0) as usize;
        Ok(Stored {
            copies: n("copies"),
            wanted: n("replicas"),
        })
    }

    /// What the first reachable node says about the network.
    pub(crate) async fn info(&self) -> Result<NodeInfo, StoreError> {
        let response = self
            .to_any(|http, s| Ok(http.get(self.url(s, "api/v1/info")?)))
            .await?;
        response
            .json()
            .await
            .map_err(|e| StoreError::new(StoreErrorKind::Other, format!("the node's info: {e}")))
    }
}

/// A few words on why a request failed.
fn reason(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".into();
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut last = err.to_string();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                _ => io.to_string(),
            };
        }
        last = e.to_string();
        source = e.source();
    }
    last
}

async fn read_limited(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    body
}

fn hex(id: &[u8; 32]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn octets() -> HeaderValue {
    HeaderValue::from_static("application/octet-stream")
}

impl ObjectStore for HttpStore {
    fn put(&self, objects: Vec<Object>) -> BoxFuture<'_, Result<Stored, StoreError>> {
        Box::pin(async move {
            let response = if let [one] = &objects[..] {
                let path = format!("api/v1/objects/{}", hex(&one.id));
                self.to_any(|http, s| {
                    Ok(http
                        .put(self.url(s, &path)?)
                        .header(CONTENT_TYPE, octets())
                        .body(one.bytes.clone()))
                })
                .await?
            } else {
                let body = Bytes::from(
                    encode_batch(objects.iter().map(|o| (&o.id, &o.bytes[..])))
                        .map_err(|e| StoreError::new(StoreErrorKind::Other, e.to_string()))?,
                );
                self.to_any(|http, s| {
                    Ok(http
                        .post(self.url(s, "api/v1/objects")?)
                        .header(CONTENT_TYPE, octets())
                        .body(body.clone()))
                })
                .await?
            };
            Self::stored(response).await
        })
    }

    fn put_stripe(&self, stripe: EncodedStripe) -> BoxFuture<'_, Result<Stored, StoreError>> {
        Box::pin(async move {
            let mut body = Vec::new();
            let framing = |e: voldisefs_node::proto::objects::BatchError| {
                StoreError::new(StoreErrorKind::Other, e.to_string())
            };
            encode_entry(&mut body, &stripe.id, &stripe.descriptor).map_err(framing)?;
            for shard in &stripe.shards {
                let id = voldisefs_node::crypto::content_id(shard);
                encode_entry(&mut body, &id, shard).map_err(framing)?;
            }
            let body = Bytes::from(body);
            let path = format!("api/v1/stripes/{}", hex(&stripe.id));
            let response = self
                .to_any(|http, s| {
                    Ok(http
                        .put(self.url(s, &path)?)
                        .header(CONTENT_TYPE, octets())
                        .body(body.clone()))
                })
                .await?;
            Self::stored(response).await
        })
    }

    fn get(
        &self,
        source: usize,
        id: [u8; 32],
        kind: ObjectKind,
    ) -> BoxFuture<'_, Result<Fetched, StoreError>> {
        Box::pin(async move {
            let what = match kind {
                ObjectKind::Object => "objects",
                ObjectKind::Stripe => "stripes",
            };
            let url = self.url(source, &format!("api/v1/{what}/{}", hex(&id)))?;
            let response = self.send(source, self.http.get(url)).await?;
            if response.status() == StatusCode::NOT_FOUND {
                return Ok(Fetched::Missing);
            }
            let bytes = response.bytes().await.map_err(|e| {
                StoreError::new(
                    StoreErrorKind::Unreachable,
                    format!("reading from {}: {}", self.sources[source].base, reason(&e)),
                )
            })?;
            Ok(Fetched::Found(bytes))
        })
    }

    fn delete(
        &self,
        key: DeleteKey,
        ids: Vec<[u8; 32]>,
        scope: DeleteScope,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let (everywhere, spread) = match scope {
                DeleteScope::Everywhere => (true, 0),
                DeleteScope::Holders { nodes } => (false, nodes),
            };
            let key = zeroize::Zeroizing::new(hex(key.as_bytes()));
            for group in ids.chunks(DELETE_GROUP) {
                let body = zeroize::Zeroizing::new(
                    serde_json::json!({
                        "delete_key": key.as_str(),
                        "ids": group.iter().map(hex).collect::<Vec<_>>(),
                        "everywhere": everywhere,
                        "spread": spread,
                    })
                    .to_string(),
                );
                self.to_any(|http, s| {
                    Ok(http
                        .post(self.url(s, "api/v1/objects/delete")?)
                        .header(CONTENT_TYPE, "application/json")
                        .body(body.as_bytes().to_vec()))
                })
                .await?;
            }
            Ok(())
        })
    }

    fn sources(&self) -> usize {
        self.sources.len()
    }

    fn source_name(&self, source: usize) -> String {
        self.sources
            .get(source)
            .map_or_else(|| format!("source {source}"), |s| s.base.to_string())
    }

    fn report_bad(&self, source: usize, id: [u8; 32]) {
        if let Some(s) = self.sources.get(source) {
            s.distrusted.store(true, Ordering::Relaxed);
            eprintln!(
                "warning: node {} served wrong bytes for object {}; taking it from another node",
                s.base,
                hex(&id)
            );
        }
    }
}

/// A client that seals and opens on this machine, over the nodes `--node` names, with the
/// network's settings.
pub(crate) struct Session {
    pub(crate) client: Client,
    pub(crate) info: NodeInfo,
}

impl Session {
    /// Connects to the nodes (the first reachable one tells the network's settings).
    pub(crate) async fn open(node: &crate::cli::NodeArg) -> anyhow::Result<Self> {
        Self::over(&node.node, node).await
    }

    /// Like [`Session::open`], over `nodes` (a share link's node first).
    pub(crate) async fn over(nodes: &[Url], node: &crate::cli::NodeArg) -> anyhow::Result<Self> {
        let store = Arc::new(HttpStore::new(nodes, node.api_token()?)?);
        let info = store.info().await.map_err(store_error)?;
        let kdf = KdfParams::new(info.kdf_m_kib, info.kdf_t, info.kdf_p)
            .context("the node asks for Argon2id parameters this client refuses")?;
        let chunk_size = ChunkSize::from_bytes(info.chunk_size)
            .context("the node asks for a chunk size this client does not support")?;
        let settings = Settings {
            kdf,
            kdf_ceiling: KdfParams::default().max(&kdf),
            chunk_size,
            ..Settings::default()
        };
        let client = Client::new(store, Arc::new(Threads::per_core()?), settings)?;
        Ok(Self { client, info })
    }
}

/// The CLI error (and so the exit code) for a store failure.
pub(crate) fn store_error(e: StoreError) -> anyhow::Error {
    match e.kind {
        StoreErrorKind::Unreachable => {
            let (node, reason) = e
                .message
                .strip_prefix("cannot reach node at ")
                .and_then(|rest| rest.split_once(": "))
                .map_or((String::new(), e.message.clone()), |(n, r)| {
                    (n.to_string(), r.to_string())
                });
            CliError::Unreachable { node, reason }.into()
        }
        _ => CliError::Server {
            status: 0,
            code: String::new(),
            message: e.message,
        }
        .into(),
    }
}

/// The CLI error for a pipeline failure about file `id`.
pub(crate) fn crypto_error(e: voldisefs_node::crypto::Error, id: &str) -> anyhow::Error {
    use voldisefs_node::crypto::Error;
    match e {
        Error::Decrypt => CliError::WrongPassword.into(),
        Error::NotFound => CliError::NotFound {
            message: format!("file {id} not found"),
        }
        .into(),
        Error::Store(e) => store_error(e),
        e @ (Error::BadObject { .. }
        | Error::IdMismatch
        | Error::ChunkIdMismatch { .. }
        | Error::InvalidChunk { .. }
        | Error::InvalidManifest(_)
        | Error::InvalidCollection { .. }
        | Error::Unsupported { .. }
        | Error::MalformedHeader(_)) => CliError::Corrupt {
            message: e.to_string(),
        }
        .into(),
        e => anyhow::Error::new(e),
    }
}
