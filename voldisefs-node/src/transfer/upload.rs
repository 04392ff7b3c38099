//! The upload pipeline: body -> chunks -> seal (blocking pool, in parallel) -> holders
//! (concurrently) -> sealed manifest record -> holders of the record.
//!
//! Memory per upload is bounded by the chunk size times the chunks in flight, never by the
//! file size: the body is read only as fast as chunks are sealed and stored.
//!
//! An upload that fails or is cancelled (its token: the client went away, or the node shuts
//! down) deletes what it stored: every chunk it sealed is deleted, with tombstones, on the
//! holders that confirmed it and on its ranked holders, so even a put still on its way when the
//! upload stopped is refused when it lands.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use voldisefs_crypto::{
    CHUNK_OVERHEAD, ChunkSize, DeleteKey, FileKind, FileSealer, KdfParams, MAX_FILE_SIZE,
    MAX_NAME_LEN, ManifestInfo, Password, PasswordKey, ReadKey, Redundancy, Stripe,
};
use voldisefs_proto::{ChunkId, FileId, NodeId};
use zeroize::Zeroizing;

use crate::NodeError;
use crate::replication::{Cluster, StripeUpload};
use crate::transfer::kdf_gate::KdfGate;

/// What an upload produced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UploadReceipt {
    /// The new file's id.
    pub id: FileId,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// Upload time recorded in the manifest, seconds since the Unix epoch.
    pub created: u64,
    /// Copies of each chunk wanted (the node's `replicas`).
    pub replicas: u64,
    /// Copies confirmed for the least-copied chunk (or record): below `replicas` when fewer
    /// nodes were live (or took the chunk) than copies wanted. Repair adds the missing copies
    /// when nodes join.
    pub copies: u64,
    /// How the chunks are kept: `replicas:N` or `rs:K+M`.
    pub redundancy: String,
    /// When the file expires, unix seconds (absent: never).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// The file's read key: with its id, what a share link needs to read it without the
    /// password (and not to delete it). Not serialized: the HTTP API sends it only when asked.
    #[serde(skip)]
    pub read_key: ReadKey,
}

/// Upload settings taken from the node's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UploadSettings<'a> {
    pub(crate) gate: &'a KdfGate,
    pub(crate) kdf: KdfParams,
    pub(crate) chunk_size: ChunkSize,
    pub(crate) parallelism: usize,
}

/// Where an upload's password key comes from.
pub(crate) enum Keying {
    /// A password: one Argon2id run (through the node's gate) for this file.
    Password(Password),
    /// A key derived once for a whole batch: no Argon2id.
    Key(Arc<PasswordKey>),
}

/// What to upload, besides the bytes.
pub(crate) struct UploadRequest {
    /// The name sealed into the manifest.
    pub(crate) name: String,
    /// What the content is.
    pub(crate) kind: FileKind,
    /// The password or batch key.
    pub(crate) keying: Keying,
    /// When the file's objects expire.
    pub(crate) expires: Expiry,
    /// Delete it after its first complete download.
    pub(crate) once: bool,
    /// How the chunks are kept (checked by the caller, [`crate::Node::redundancy`]).
    pub(crate) redundancy: Redundancy,
}

/// When an upload's objects expire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Never.
    Never,
    /// This many seconds after sealing starts (after the key derivation), rounded up.
    After(u64),
    /// At this unix time (a batch's files and collection share one).
    At(u64),
}

impl Expiry {
    /// The unix time to stamp now (0: never): an `After` counts from the next whole second,
    /// so at least that many seconds remain.
    pub(crate) fn stamp(self, now: u64) -> u64 {
        match self {
            Expiry::Never => 0,
            Expiry::At(at) => at,
            Expiry::After(secs) => now.saturating_add(1).saturating_add(secs),
        }
    }
}

/// Whether an object stamped to expire at `expires` must not be stored any more.
fn too_late(expires: u64, now: u64) -> Result<(), NodeError> {
    if voldisefs_crypto::expired(expires, now) {
        return Err(NodeError::InvalidRequest(
            "the file's expiry passed before it was stored; ask for a longer one".into(),
        ));
    }
    Ok(())
}

/// A finished upload: its receipt, everything it stored (chunks and record) and the key that
/// deletes it.
pub(crate) struct Uploaded {
    pub(crate) receipt: UploadReceipt,
    pub(crate) ids: Vec<ChunkId>,
    pub(crate) key: DeleteKey,
}

/// Chunks sealed and stored concurrently, their ids collected in file order.
struct InFlight {
    running: FuturesOrdered<AbortOnDropHandle<Result<ChunkId, NodeError>>>,
    /// Handles to stop the tasks in `running` without giving them up.
    aborts: Vec<tokio::task::AbortHandle>,
    ids: Vec<ChunkId>,
    /// Chunks in flight at most now.
    max: usize,
    /// The window that sets `max`, once the chunk size is known.
    window: Option<crate::replication::Window>,
}

impl InFlight {
    /// Sizes the window for the next chunk of `chunk_len` bytes by the latency of this node's
    /// recent puts (see [`Cluster::window`]).
    fn resize(&mut self, cluster: &Cluster, chunk_len: usize) {
        let base = self.max;
        self.max = self
            .window
            .get_or_insert_with(|| {
                cluster.window(base, chunk_len, crate::replication::Failure::Put)
            })
            .size();
    }

    /// Starts one chunk's work, first waiting for room if `max` chunks are in flight.
    async fn push(
        &mut self,
        work: impl std::future::Future<Output = Result<ChunkId, NodeError>> + Send + 'static,
    ) -> Result<(), NodeError> {
        while self.running.len() >= self.max {
            self.next().await?;
        }
        let task = tokio::spawn(work);
        self.aborts.retain(|a| !a.is_finished());
        self.aborts.push(task.abort_handle());
        self.running.push_back(AbortOnDropHandle::new(task));
        Ok(())
    }

    /// Stops every chunk still in flight and waits until each has really stopped, so none
    /// can store anything after this returns (a task being polled on another thread when it
    /// is aborted finishes that poll first).
    async fn cancel(&mut self) {
        for abort in self.aborts.drain(..) {
            abort.abort();
        }
        while self.running.next().await.is_some() {}
    }

    async fn next(&mut self) -> Result<(), NodeError> {
        if let Some(done) = self.running.next().await {
            self.ids.push(done??);
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<Vec<ChunkId>, NodeError> {
        while !self.running.is_empty() {
            self.next().await?;
        }
        Ok(std::mem::take(&mut self.ids))
    }
}

/// What an upload stored so far, shared with the chunk tasks, for cleanup after a failure.
#[derive(Debug, Default)]
struct Stored {
    /// Every chunk sealed (stored or on its way).
    ids: Vec<ChunkId>,
    /// Every node that confirmed one of them.
    holders: Vec<NodeId>,
    /// The fewest holders that confirmed any one chunk so far.
    min_copies: Option<usize>,
    /// The file's delete key, once the sealer exists (to delete what a failed upload stored).
    key: Option<DeleteKey>,
}

type Sealed = Arc<Mutex<Stored>>;

fn lock(sealed: &Sealed) -> std::sync::MutexGuard<'_, Stored> {
    sealed.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stores a sealed chunk on its holders and notes who confirmed it.
async fn store(
    cluster: &Cluster,
    id: ChunkId,
    bytes: Bytes,
    sealed: &Sealed,
) -> Result<(), NodeError> {
    lock(sealed).ids.push(id);
    let holders = cluster.put(id, bytes).await?;
    let mut stored = lock(sealed);
    stored.min_copies = Some(
        stored
            .min_copies
            .map_or(holders.len(), |m| m.min(holders.len())),
    );
    for holder in holders {
        if !stored.holders.contains(&holder) {
            stored.holders.push(holder);
        }
    }
    Ok(())
}

/// Seals chunk `index` and stores it on its holders.
async fn seal_and_store(
    cluster: Cluster,
    sealer: Arc<FileSealer>,
    index: u64,
    is_final: bool,
    mut plaintext: Zeroizing<Vec<u8>>,
    sealed_ids: Sealed,
) -> Result<ChunkId, NodeError> {
    let plaintext = std::mem::take(&mut *plaintext);
    let expires = sealer.expires();
    if let Some(spec @ Redundancy::ErasureCoded { data, parity }) = sealer.redundancy() {
        let encoded = tokio::task::spawn_blocking(move || {
            let sealed = sealer.seal_chunk_owned(index, is_final, plaintext)?;
            Stripe::encode(data, parity, &sealed.bytes)
        })
        .await??;
        too_late(expires, cluster.now())?;
        let id = ChunkId::from_bytes(encoded.id);
        let ids = encoded
            .shards
            .iter()
            .map(|s| ChunkId::from_bytes(voldisefs_crypto::content_id(s)))
            .collect();
        lock(&sealed_ids).ids.push(id);
        cluster
            .put_stripe(StripeUpload {
                redundancy: spec,
                id,
                descriptor: Bytes::from(encoded.descriptor),
                ids,
                shards: encoded.shards.into_iter().map(Bytes::from).collect(),
            })
            .await?;
        return Ok(id);
    }
    let sealed =
        tokio::task::spawn_blocking(move || sealer.seal_chunk_owned(index, is_final, plaintext))
            .await??;
    too_late(expires, cluster.now())?;
    let id = ChunkId::from_bytes(sealed.id);
    let mut bytes = sealed.bytes;
    // Stored as is on this node: do not pin the spare capacity of a short final chunk.
    bytes.shrink_to_fit();
    store(&cluster, id, Bytes::from(bytes), &sealed_ids).await?;
    Ok(id)
}

/// Runs a whole upload of `body` as `request` says, until it ends or `token` is cancelled,
/// and returns the ids of everything it stored (chunks and record) with its delete key. On
/// failure or cancellation, everything it stored is deleted again (see the module docs), so a
/// failed upload leaves no garbage.
pub(crate) async fn upload<S, E>(
    cluster: &Cluster,
    settings: UploadSettings<'_>,
    request: UploadRequest,
    body: S,
    token: CancellationToken,
) -> Result<Uploaded, NodeError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut in_flight = InFlight {
        running: FuturesOrdered::new(),
        aborts: Vec::new(),
        ids: Vec::new(),
        max: settings.parallelism.max(1),
        window: None,
    };
    let sealed = Sealed::default();
    let spread = request.redundancy.nodes();
    let result = tokio::select! {
        result = run(cluster, settings, request, body, &mut in_flight, &sealed) => result,
        () = token.cancelled() => Err(NodeError::Cancelled),
    };
    // Stop the chunks still in flight (after a failure) before reading what they stored; a put
    // already on the wire meets a tombstone.
    in_flight.cancel().await;
    let Stored {
        ids,
        holders,
        min_copies,
        key,
    } = std::mem::take(&mut *lock(&sealed));
    match (result, key) {
        (Ok(mut receipt), Some(key)) => {
            receipt.copies = min_copies.unwrap_or(0) as u64;
            receipt.replicas = cluster.replicas() as u64;
            Ok(Uploaded { receipt, ids, key })
        }
        (Ok(_), None) => Err(NodeError::Internal(
            "an upload ended without its key".into(),
        )),
        (Err(e), key) => {
            if let (Some(key), false) = (key, ids.is_empty()) {
                let confirmed = cluster
                    .delete_spread(&key, &ids, &holders, false, spread)
                    .await;
                tracing::info!(
                    chunks = ids.len(),
                    nodes = confirmed,
                    "removed the chunks of a failed upload"
                );
            }
            Err(e)
        }
    }
}

async fn run<S, E>(
    cluster: &Cluster,
    settings: UploadSettings<'_>,
    request: UploadRequest,
    mut body: S,
    in_flight: &mut InFlight,
    sealed: &Sealed,
) -> Result<UploadReceipt, NodeError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let UploadRequest {
        name,
        kind,
        keying,
        expires,
        once,
        redundancy,
    } = request;
    if name.len() > MAX_NAME_LEN {
        return Err(NodeError::InvalidRequest(format!(
            "file name longer than {MAX_NAME_LEN} bytes"
        )));
    }
    let UploadSettings {
        kdf,
        chunk_size,
        gate,
        ..
    } = settings;
    let sealer = match keying {
        Keying::Password(password) => {
            if password.as_bytes().is_empty() {
                return Err(NodeError::InvalidRequest("empty password".into()));
            }
            gate.run(move || FileSealer::new(&password, kdf, chunk_size))
                .await??
        }
        Keying::Key(key) => FileSealer::with_key(&key, chunk_size)?,
    }
    .with_expiry(expires.stamp(cluster.now()))
    .with_redundancy(redundancy);
    let sealer = Arc::new(if once { sealer.once() } else { sealer });
    lock(sealed).key = Some(sealer.delete_key().clone());
    let chunk_len = chunk_size.bytes();
    let new_buffer = || Zeroizing::new(Vec::with_capacity(chunk_len + CHUNK_OVERHEAD));
    let mut current = new_buffer();
    let (mut index, mut size) = (0u64, 0u64);
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| NodeError::Body(e.to_string()))?;
        size += piece.len() as u64;
        if size > MAX_FILE_SIZE {
            return Err(NodeError::InvalidRequest(format!(
                "file larger than the {MAX_FILE_SIZE}-byte limit"
            )));
        }
        let mut rest = &piece[..];
        while !rest.is_empty() {
            if current.len() == chunk_len {
                // More data follows, so this full chunk is not the final one.
                let full = std::mem::replace(&mut current, new_buffer());
                let work = seal_and_store(
                    cluster.clone(),
                    sealer.clone(),
                    index,
                    false,
                    full,
                    sealed.clone(),
                );
                in_flight.resize(cluster, chunk_len);
                in_flight.push(work).await?;
                index += 1;
            }
            let take = rest.len().min(chunk_len - current.len());
            current.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
    }
    // Whatever is buffered is the final chunk (empty only for an empty file).
    let work = seal_and_store(
        cluster.clone(),
        sealer.clone(),
        index,
        true,
        current,
        sealed.clone(),
    );
    in_flight.push(work).await?;
    let ids = in_flight.finish().await?;

    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let info = ManifestInfo {
        name,
        size,
        created,
        kind,
        chunks: ids.iter().map(|id| *id.as_bytes()).collect(),
    };
    let read_key = sealer.read_key().clone();
    let sealer_expires = sealer.expires();
    too_late(sealer_expires, cluster.now())?;
    let record = tokio::task::spawn_blocking(move || sealer.finish(&info)).await??;
    let id = FileId::from_bytes(record.id);
    store(
        cluster,
        id.record_chunk(),
        Bytes::from(record.bytes),
        sealed,
    )
    .await?;
    Ok(UploadReceipt {
        id,
        size,
        chunks: ids.len() as u64,
        created,
        // Filled in by `upload` from what every chunk's store confirmed.
        replicas: 0,
        copies: 0,
        redundancy: redundancy.to_string(),
        read_key,
        expires: (sealer_expires != 0).then_some(sealer_expires),
    })
}
