//! The download pipeline: fetch the record by FileId and check its hash -> open it with the
//! password -> check every chunk is held somewhere (asking its ranked holders) -> stream the
//! chunks in order, fetching ahead in parallel from the ranked holders with hedging, verifying
//! each against its id (another holder on any failure) and decrypting on the blocking pool.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use voldisefs_crypto::{Error as CryptoError, FileKind, FileOpener, Password};
use voldisefs_proto::{ChunkId, FileId};
use zeroize::Zeroizing;

use crate::NodeError;
use crate::replication::{AttemptError, Cluster, Fetched, HolderError};
use crate::transfer::kdf_gate::KdfGate;

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
}

/// Fetches and opens the record of `id`: [`NodeError::NotFound`] if no node holds it (or it
/// was deleted), [`NodeError::WrongPassword`] if the password does not open it.
pub(crate) async fn open_record(
    cluster: &Cluster,
    gate: &KdfGate,
    id: FileId,
    password: Password,
) -> Result<OpenedFile, NodeError> {
    let record_id = id.record_chunk();
    let fetched = cluster
        .fetch(record_id, &[], move |bytes: Bytes| {
            if record_id.matches(&bytes) {
                Ok(bytes)
            } else {
                Err(AttemptError::Next(HolderError::Failed(
                    "served a forged record".into(),
                )))
            }
        })
        .await?;
    let Fetched::Found(record) = fetched else {
        return Err(NodeError::NotFound(id));
    };
    let ceiling = gate.ceiling();
    let cache = gate.cache();
    // A key cached by an earlier read with this password: no Argon2id, no slot needed.
    let cached = {
        let (record, password, cache) = (record.clone(), password.clone(), cache.clone());
        tokio::task::spawn_blocking(move || {
            FileOpener::open_cached(id.as_bytes(), &record, &password, &ceiling, &cache)
        })
        .await??
    };
    let opener = match cached {
        Some(opener) => {
            gate.hit();
            opener
        }
        None => {
            gate.run(move || {
                FileOpener::open_caching(id.as_bytes(), &record, &password, &ceiling, &cache)
            })
            .await??
        }
    };
    let chunk_ids = opener
        .manifest()
        .chunks()
        .iter()
        .map(|c| ChunkId::from_bytes(*c))
        .collect();
    Ok(OpenedFile {
        opener: Arc::new(opener),
        chunk_ids,
    })
}

/// Opens file `id` (refused unless its manifest says `kind`) and returns its streaming body,
/// after checking that every chunk is held by
/// some reachable node ([`NodeError::Unavailable`] says how many are not). Each chunk is then
/// fetched from its ranked holders with hedging (see [`Cluster::fetch`]) within `deadline`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn download(
    cluster: &Cluster,
    gate: &KdfGate,
    id: FileId,
    password: Password,
    kind: FileKind,
    read_ahead: usize,
    deadline: Duration,
) -> Result<Download, NodeError> {
    let OpenedFile { opener, chunk_ids } = open_record(cluster, gate, id, password).await?;
    match (kind, opener.manifest().kind()) {
        (FileKind::File, FileKind::Collection) => return Err(NodeError::IsCollection(id)),
        (FileKind::Collection, FileKind::File) => return Err(NodeError::NotACollection(id)),
        _ => {}
    }
    let holders = cluster.locate(&chunk_ids).await;
    let missing = holders.iter().filter(|h| h.is_empty()).count() as u64;
    let total = chunk_ids.len() as u64;
    if missing > 0 {
        // A delete may have run since the record was read: then the file is gone, not broken.
        if !matches!(
            cluster.fetch(id.record_chunk(), &[], Ok).await?,
            Fetched::Found(_)
        ) {
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
                let open = move |bytes: Bytes| open_chunk(&opener, index as u64, bytes);
                let fetch = cluster.fetch(chunk, &holders, open);
                match tokio::time::timeout(deadline, fetch).await {
                    Ok(Ok(Fetched::Found(plain))) => Ok(plain),
                    Ok(Ok(Fetched::Deleted)) => Err(NodeError::NotFound(id)),
                    Ok(Ok(Fetched::Missing)) | Err(_) => {
                        Err(NodeError::Unavailable { missing: 1, total })
                    }
                    Ok(Err(e)) => Err(e),
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

/// Verifies and decrypts chunk `index` (on the blocking pool). Bytes that do not match the
/// chunk's id are the holder's fault (try another); verified bytes that do not decrypt mean
/// the file itself is damaged.
fn open_chunk(opener: &FileOpener, index: u64, bytes: Bytes) -> Result<Bytes, AttemptError> {
    match opener.open_chunk(index, Vec::from(bytes)) {
        Ok(plain) => Ok(Bytes::from_owner(Plaintext(plain))),
        Err(e @ (CryptoError::ChunkIdMismatch { .. } | CryptoError::InvalidChunk { .. })) => Err(
            AttemptError::Next(HolderError::Failed(format!("served a corrupt chunk: {e}"))),
        ),
        Err(e) => Err(AttemptError::Stop(NodeError::Crypto(e))),
    }
}
