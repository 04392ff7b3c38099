//! The download pipeline: fetch the record by FileId and check its hash -> open it with the
//! password -> check every chunk is available somewhere -> stream the chunks in order, fetching
//! ahead in parallel, verifying each against its id (another holder on any failure) and
//! decrypting on the blocking pool.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use voldisefs_crypto::{Error as CryptoError, FileOpener, Password};
use voldisefs_proto::{ChunkId, FileId, PeerInfo};
use zeroize::Zeroizing;

use crate::NodeError;
use crate::cluster::Cluster;

/// A stream of plaintext pieces of a file, in order.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, NodeError>> + Send>>;

/// An opened file, ready to stream.
pub struct Download {
    /// The original file name.
    pub name: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// The file's bytes. Each piece is wiped from memory when dropped. On a failure part-way
    /// (a holder vanished after the availability check) the stream ends with an error.
    pub body: ByteStream,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("size", &self.size)
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

/// Plaintext that is wiped when the last reference to its `Bytes` goes.
struct Plaintext(Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for Plaintext {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Everything the holders of a file need to know, opened by [`open_record`].
pub(crate) struct OpenedFile {
    pub(crate) opener: Arc<FileOpener>,
    pub(crate) chunk_ids: Vec<ChunkId>,
    pub(crate) record_holders: Vec<PeerInfo>,
}

/// Fetches and opens the record of `id`: [`NodeError::NotFound`] if no node holds it,
/// [`NodeError::WrongPassword`] if the password does not open it.
pub(crate) async fn open_record(
    cluster: &Cluster,
    id: FileId,
    password: Password,
) -> Result<OpenedFile, NodeError> {
    let record_id = id.record_chunk();
    let record_holders = cluster.locate(&[record_id]).await.pop().unwrap_or_default();
    if record_holders.is_empty() {
        return Err(NodeError::NotFound(id));
    }
    let mut record = None;
    for holder in &record_holders {
        match cluster.get_from(*holder, record_id).await {
            Ok(bytes) if record_id.matches(&bytes) => {
                record = Some(bytes);
                break;
            }
            Ok(_) => tracing::warn!(peer = %holder.id, file = %id, "holder served a forged record"),
            Err(e) => tracing::debug!(peer = %holder.id, error = %e, "record fetch failed"),
        }
    }
    let record = record.ok_or(NodeError::Unavailable {
        missing: 1,
        total: 1,
    })?;
    let opener =
        tokio::task::spawn_blocking(move || FileOpener::open(id.as_bytes(), &record, &password))
            .await??;
    let chunk_ids = opener
        .manifest()
        .chunks()
        .iter()
        .map(|c| ChunkId::from_bytes(*c))
        .collect();
    Ok(OpenedFile {
        opener: Arc::new(opener),
        chunk_ids,
        record_holders,
    })
}

/// Opens file `id` and returns its streaming body, after checking that every chunk is held by
/// some reachable node ([`NodeError::Unavailable`] says how many are not).
pub(crate) async fn download(
    cluster: &Cluster,
    id: FileId,
    password: Password,
    read_ahead: usize,
    deadline: Duration,
) -> Result<Download, NodeError> {
    let OpenedFile {
        opener, chunk_ids, ..
    } = open_record(cluster, id, password).await?;
    let holders = cluster.locate(&chunk_ids).await;
    let missing = holders.iter().filter(|h| h.is_empty()).count() as u64;
    let total = chunk_ids.len() as u64;
    if missing > 0 {
        // A delete may have run since the record was read: then the file is gone, not broken.
        if cluster.locate(&[id.record_chunk()]).await[0].is_empty() {
            return Err(NodeError::NotFound(id));
        }
        return Err(NodeError::Unavailable { missing, total });
    }
    let manifest = opener.manifest();
    let (name, size, created) = (
        manifest.name().to_string(),
        manifest.size(),
        manifest.created(),
    );
    let cluster = cluster.clone();
    let body = futures_util::stream::iter(chunk_ids.into_iter().zip(holders).enumerate())
        .map(move |(index, (chunk, holders))| {
            let (cluster, opener) = (cluster.clone(), opener.clone());
            async move {
                let fetch = fetch_chunk(&cluster, &opener, index as u64, chunk, &holders);
                match tokio::time::timeout(deadline, fetch).await {
                    Ok(result) => result,
                    Err(_) => Err(NodeError::Unavailable { missing: 1, total }),
                }
            }
        })
        .buffered(read_ahead.max(1));
    Ok(Download {
        name,
        size,
        chunks: total,
        created,
        body: Box::pin(body),
    })
}

/// Fetches chunk `index` from the first holder that serves bytes matching its id, and opens it.
async fn fetch_chunk(
    cluster: &Cluster,
    opener: &Arc<FileOpener>,
    index: u64,
    chunk: ChunkId,
    holders: &[PeerInfo],
) -> Result<Bytes, NodeError> {
    let mut last_error = None;
    for holder in holders {
        let bytes = match cluster.get_from(*holder, chunk).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::debug!(peer = %holder.id, %chunk, error = %e, "chunk fetch failed; trying the next holder");
                last_error = Some(e);
                continue;
            }
        };
        let opener = opener.clone();
        let opened =
            tokio::task::spawn_blocking(move || opener.open_chunk(index, Vec::from(bytes))).await?;
        match opened {
            Ok(plain) => return Ok(Bytes::from_owner(Plaintext(plain))),
            Err(e @ (CryptoError::ChunkIdMismatch { .. } | CryptoError::InvalidChunk { .. })) => {
                tracing::warn!(peer = %holder.id, %chunk, error = %e, "holder served a corrupt chunk; trying the next holder");
                last_error = Some(NodeError::Crypto(e));
            }
            // The bytes match the manifest's id yet do not decrypt: the file itself is damaged.
            Err(e) => return Err(NodeError::Crypto(e)),
        }
    }
    Err(last_error.unwrap_or(NodeError::Unavailable {
        missing: 1,
        total: 1,
    }))
}
