//! Gateway uploads: a body and a password (or a batch's key) in, a receipt out. The sealing
//! pipeline is the client's (`voldisefs_crypto::client`), run here over this node's cluster
//! ([`ClusterStore`]): body -> chunks -> seal (blocking pool, in parallel) -> holders ->
//! sealed manifest record -> holders of the record.
//!
//! Memory per upload is bounded by the chunk size times the chunks in flight, never by the
//! file size: the body is read only as fast as chunks are sealed and stored.
//!
//! An upload that fails or is cancelled (its token: the client went away, or the node shuts
//! down) deletes what it stored: every object it sealed is deleted, with tombstones, on its
//! ranked holders, so even a put still on its way when the upload stopped is refused when it
//! lands.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio_util::sync::CancellationToken;
use voldisefs_crypto::client::{Keying as Keying2, PutOptions, Settings as ClientSettings};
use voldisefs_crypto::{
    ChunkSize, DeleteKey, FileKind, KdfParams, MAX_NAME_LEN, Password, PasswordKey, ReadKey,
    Redundancy,
};
use voldisefs_proto::{ChunkId, FileId};

use crate::NodeError;
use crate::replication::Cluster;
use crate::transfer::kdf_gate::KdfGate;
use crate::transfer::store::ClusterStore;

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

/// A finished upload: its receipt, everything it stored (chunks and record) and the key that
/// deletes it.
pub(crate) struct Uploaded {
    pub(crate) receipt: UploadReceipt,
    pub(crate) ids: Vec<ChunkId>,
    pub(crate) key: DeleteKey,
}

/// Runs a whole upload of `body` as `request` says, until it ends or `token` is cancelled,
/// and returns its receipt, the ids of everything it stored (chunks and record) and its
/// delete key. The key derivation goes through the node's gate; sealing and storing are the
/// client pipeline's (`voldisefs_crypto::client`) over this node's cluster
/// ([`ClusterStore`]), so on failure or cancellation everything stored is deleted again.
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
        gate,
        kdf,
        chunk_size,
        parallelism,
    } = settings;
    let key = match keying {
        Keying::Password(password) => {
            if password.as_bytes().is_empty() {
                return Err(NodeError::InvalidRequest("empty password".into()));
            }
            Arc::new(
                gate.run(move || PasswordKey::derive(&password, kdf))
                    .await??,
            )
        }
        Keying::Key(key) => key,
    };
    let client_settings = ClientSettings {
        kdf,
        kdf_ceiling: kdf,
        chunk_size,
        parallelism: parallelism.max(1),
        ..ClientSettings::default()
    };
    let (client, store) = ClusterStore::client(cluster, client_settings, Duration::MAX)?;
    let options = PutOptions {
        name,
        kind,
        expires: expires.stamp(cluster.own_time()),
        once,
        redundancy,
    };
    let receipt = client
        .put_until(Keying2::Key(key), options, body, token.cancelled())
        .await
        .map_err(|e| match e {
            voldisefs_crypto::Error::Input(message) => NodeError::Body(message),
            e => store.error(e),
        })?;
    let id = FileId::from_bytes(receipt.id);
    Ok(Uploaded {
        receipt: UploadReceipt {
            id,
            size: receipt.size,
            chunks: receipt.chunks,
            created: receipt.created,
            replicas: cluster.replicas() as u64,
            copies: receipt.stored.copies as u64,
            redundancy: redundancy.to_string(),
            expires: (receipt.expires != 0).then_some(receipt.expires),
            read_key: receipt.read_key,
        },
        ids: receipt
            .objects
            .iter()
            .map(|id| ChunkId::from_bytes(*id))
            .collect(),
        key: receipt.delete_key,
    })
}
