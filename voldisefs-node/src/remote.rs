//! A client of other nodes' object API: [`RemoteStore`] is an [`ObjectStore`] over HTTP, with
//! every node given as a source, and [`remote_client`] a client pipeline over it with the
//! network's settings. What the `voldisefs` CLI uses, and any program that seals and opens
//! files itself and wants no node to see its secrets.
//!
//! Only sealed objects, stripe descriptors and delete keys cross the wire. Writes go to the
//! first node that answers; reads try the nodes in order, and the pipeline verifies every
//! answer, so a node that serves wrong bytes is reported and the object taken from the next.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
pub use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use voldisefs_crypto::client::{
    BoxFuture, Client, DeleteScope, Fetched, Object, ObjectKind, ObjectStore, Settings, StoreError,
    StoreErrorKind, Stored, Threads,
};
use voldisefs_crypto::{ChunkSize, DeleteKey, EncodedStripe, KdfParams};
use voldisefs_proto::objects::{encode_batch, encode_entry};

use crate::{NodeError, NodeInfo};

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

/// The object API of one or more nodes, as an [`ObjectStore`]: what a program that seals
/// and opens files itself (`voldisefs_crypto::client`) talks to.
pub struct RemoteStore {
    http: reqwest::Client,
    sources: Vec<Source>,
    report: Reporter,
}

/// Told which node served wrong bytes for which object.
type Reporter = Box<dyn Fn(&Url, &[u8; 32]) + Send + Sync>;

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field(
                "nodes",
                &self
                    .sources
                    .iter()
                    .map(|s| s.base.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl RemoteStore {
    /// A store over `nodes` (at least one: their API's base URLs), sending `token` as a
    /// bearer token if given. A node that serves wrong bytes is logged (WARN) and asked last
    /// from then on; [`RemoteStore::on_bad_bytes`] reports it elsewhere.
    pub fn new(nodes: &[Url], token: Option<&str>) -> Result<Self, NodeError> {
        let bad = |m: &str| NodeError::Config(m.to_string());
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| bad("the API token is not valid in an HTTP header"))?;
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
            .map_err(|e| bad(&format!("cannot set up the HTTP client: {e}")))?;
        if nodes.is_empty() {
            return Err(bad("no node given"));
        }
        Ok(Self {
            report: Box::new(|node, id| {
                tracing::warn!(%node, object = %hex(id), "a node served wrong bytes; taking the object from another node");
            }),
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

    /// Reports a node that served wrong bytes with `report` (its URL and the object's id)
    /// instead of logging it.
    pub fn on_bad_bytes(
        mut self,
        report: impl Fn(&Url, &[u8; 32]) + Send + Sync + 'static,
    ) -> Self {
        self.report = Box::new(report);
        self
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
        // The error body's message (`crate::api::ApiErrorBody`), else the body's start.
        let message = serde_json::from_slice::<crate::api::ApiErrorBody>(&body)
            .ok()
            .filter(|parsed| !parsed.message.is_empty())
            .map_or_else(
                || String::from_utf8_lossy(&body).chars().take(200).collect(),
                |parsed| parsed.message,
            );
        let kind = match status {
            StatusCode::INSUFFICIENT_STORAGE => StoreErrorKind::Full,
            StatusCode::SERVICE_UNAVAILABLE => StoreErrorKind::Unavailable,
            s if s.is_client_error() => StoreErrorKind::Refused,
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

    /// What the first reachable node says about the network (chunk size, key derivation,
    /// redundancy and expiry rules).
    pub async fn info(&self) -> Result<NodeInfo, StoreError> {
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
    voldisefs_proto::ChunkId::from_bytes(*id).to_string()
}

fn octets() -> HeaderValue {
    HeaderValue::from_static("application/octet-stream")
}

impl ObjectStore for RemoteStore {
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
            let framing = |e: voldisefs_proto::objects::BatchError| {
                StoreError::new(StoreErrorKind::Other, e.to_string())
            };
            encode_entry(&mut body, &stripe.id, &stripe.descriptor).map_err(framing)?;
            for shard in &stripe.shards {
                let id = voldisefs_crypto::content_id(shard);
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
                let request = crate::api::ObjectDeleteRequest {
                    delete_key: key.as_str().to_owned(),
                    ids: group.iter().map(hex).collect(),
                    everywhere,
                    spread,
                };
                let body =
                    zeroize::Zeroizing::new(serde_json::to_string(&request).map_err(|e| {
                        StoreError::new(StoreErrorKind::Other, format!("the delete request: {e}"))
                    })?);
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
            (self.report)(&s.base, &id);
        }
    }
}

/// A client pipeline that seals and opens on this machine over `store`, with the settings a
/// node reported ([`RemoteStore::info`]): its chunk size and Argon2id parameters (readers
/// accept records up to the default parameters or the network's, whichever is higher). CPU
/// work runs on one thread per core.
pub fn remote_client(store: RemoteStore, info: &NodeInfo) -> Result<Client, NodeError> {
    let kdf = KdfParams::new(info.kdf_m_kib, info.kdf_t, info.kdf_p)?;
    let chunk_size = ChunkSize::from_bytes(info.chunk_size)?;
    let settings = Settings {
        kdf,
        kdf_ceiling: KdfParams::default().max(&kdf),
        chunk_size,
        ..Settings::default()
    };
    Ok(Client::new(
        Arc::new(store),
        Arc::new(Threads::per_core()?),
        settings,
    )?)
}
