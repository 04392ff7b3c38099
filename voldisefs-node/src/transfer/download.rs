//! The download pipeline: fetch the record by FileId and check its hash -> open it with the
//! password -> check every chunk is held somewhere (asking its ranked holders) -> stream the
//! chunks in order, fetching ahead in parallel from the ranked holders with hedging, verifying
//! each against its id (another holder on any failure) and decrypting on the blocking pool.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio_util::task::AbortOnDropHandle;
use voldisefs_crypto::{Error as CryptoError, FileKind, FileOpener, Password, ReadKey};
use voldisefs_proto::{ChunkId, FileId, NodeId};

use crate::NodeError;
use crate::replication::{AttemptError, Cluster, Failure, Fetched, HolderError};
use crate::transfer::kdf_gate::KdfGate;

/// A stream of plaintext pieces of a file, in order.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, NodeError>> + Send>>;

/// One byte range of a file, as an HTTP `Range: bytes=...` header asks for it (RFC 9110).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last` (inclusive) or `first-` (to the end).
    From {
        /// First byte.
        first: u64,
        /// Last byte, inclusive (past the end: the end).
        last: Option<u64>,
    },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// Parses a `Range` header value. `None` for anything but one well-formed byte range
    /// (several ranges, other units, `last < first`): a server then sends the whole file.
    pub fn parse(value: &str) -> Option<Self> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| -> Option<u64> {
            let s = s.trim();
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        match (first.trim().is_empty(), last.trim().is_empty()) {
            (true, false) => Some(ByteRange::Suffix(number(last)?)),
            (false, true) => Some(ByteRange::From {
                first: number(first)?,
                last: None,
            }),
            (false, false) => {
                let (first, last) = (number(first)?, number(last)?);
                (last >= first).then_some(ByteRange::From {
                    first,
                    last: Some(last),
                })
            }
            (true, true) => None,
        }
    }

    /// The inclusive `(first, last)` bytes this range selects of a file of `size` bytes, or
    /// `None` when it selects nothing (unsatisfiable: HTTP 416).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        if size == 0 {
            return None;
        }
        match self {
            ByteRange::From { first, last } if first < size => {
                Some((first, last.map_or(size - 1, |l| l.min(size - 1))))
            }
            ByteRange::From { .. } | ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => Some((size - n.min(size), size - 1)),
        }
    }
}

/// An opened file, ready to stream.
pub struct Download {
    /// The original file name.
    pub name: String,
    /// Plaintext size in bytes (of the whole file, also when `range` is set).
    pub size: u64,
    /// The inclusive byte range `body` carries, when only part of the file was asked for.
    pub range: Option<(u64, u64)>,
    /// Number of chunks.
    pub chunks: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// The file's bytes. Each piece is wiped from memory when dropped. On a failure part-way
    /// (a holder vanished after the availability check) the stream ends with an error.
    pub body: ByteStream,
    /// For a "once" file downloaded whole: what to delete once the body was delivered.
    pub(crate) burn: Option<Burn>,
}

/// What deleting a "once" file takes: its delete key and every object (record first).
pub(crate) struct Burn {
    pub(crate) key: voldisefs_crypto::DeleteKey,
    pub(crate) record: ChunkId,
    pub(crate) chunks: Vec<ChunkId>,
    /// Nodes each chunk is spread over (K + M for stripes).
    pub(crate) spread: usize,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("size", &self.size)
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

/// Everything the holders of a file need to know, opened by [`open_record`].
pub(crate) struct OpenedFile {
    pub(crate) opener: Arc<FileOpener>,
    pub(crate) chunk_ids: Vec<ChunkId>,
}

impl OpenedFile {
    /// The opened file, or [`NodeError::NotFound`] once it expired at `now` (this node's
    /// time).
    fn checked(id: FileId, opener: FileOpener, now: u64) -> Result<Self, NodeError> {
        if voldisefs_crypto::expired(opener.expires(), now) {
            return Err(NodeError::NotFound(id));
        }
        Ok(Self::new(opener))
    }

    fn new(opener: FileOpener) -> Self {
        let chunk_ids = opener
            .manifest()
            .chunks()
            .iter()
            .map(|c| ChunkId::from_bytes(*c))
            .collect();
        Self {
            opener: Arc::new(opener),
            chunk_ids,
        }
    }
}

/// What opens a file: its password, or the read key a share link carries.
#[derive(Clone)]
pub enum Access {
    /// The password (Argon2id, or a key from the node's cache).
    Password(Password),
    /// The file's read key: opens that one file, with no Argon2id run and no right to delete.
    ReadKey(ReadKey),
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Password(_) => "Access::Password(..)",
            Access::ReadKey(_) => "Access::ReadKey(..)",
        })
    }
}

impl From<Password> for Access {
    fn from(password: Password) -> Self {
        Access::Password(password)
    }
}

/// Fetches and opens the record of `id`: [`NodeError::NotFound`] if no node holds it (or it
/// was deleted), [`NodeError::WrongPassword`] if the password (or read key) does not open it.
pub(crate) async fn open_record(
    cluster: &Cluster,
    gate: &KdfGate,
    id: FileId,
    access: Access,
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
    let password = match access {
        Access::Password(password) => password,
        Access::ReadKey(key) => {
            // No Argon2id: HKDF and one AES-GCM open of the manifest.
            let opener = tokio::task::spawn_blocking(move || {
                FileOpener::open_with_read_key(id.as_bytes(), &record, &key)
            })
            .await??;
            return OpenedFile::checked(id, opener, cluster.now());
        }
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
    OpenedFile::checked(id, opener, cluster.now())
}

/// Opens file `id` (refused unless its manifest says `kind`) and returns its streaming body
/// (only the chunks `range` touches, cut to it: [`NodeError::RangeNotSatisfiable`] when it
/// selects nothing), after checking that every chunk is held by
/// some reachable node ([`NodeError::Unavailable`] says how many are not). Each chunk is then
/// fetched from its ranked holders with hedging (see [`Cluster::fetch`]) within `deadline`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn download(
    cluster: &Cluster,
    gate: &KdfGate,
    id: FileId,
    access: Access,
    kind: FileKind,
    range: Option<ByteRange>,
    read_ahead: usize,
    deadline: Duration,
) -> Result<Download, NodeError> {
    let OpenedFile { opener, chunk_ids } = open_record(cluster, gate, id, access).await?;
    // "Once": only a whole download burns it (a range is not a reading of the file).
    let burn = match (opener.manifest().once(), range, opener.delete_key()) {
        (true, None, Some(key)) => Some(Burn {
            key: key.clone(),
            record: id.record_chunk(),
            chunks: chunk_ids.clone(),
            spread: opener
                .manifest()
                .redundancy()
                .map_or(0, voldisefs_crypto::Redundancy::nodes),
        }),
        _ => None,
    };
    match (kind, opener.manifest().kind()) {
        (FileKind::File, FileKind::Collection) => return Err(NodeError::IsCollection(id)),
        (FileKind::Collection, FileKind::File) => return Err(NodeError::NotACollection(id)),
        _ => {}
    }
    let size = opener.manifest().size();
    let range = match range {
        None => None,
        Some(r) => Some(
            r.resolve(size)
                .ok_or(NodeError::RangeNotSatisfiable { size })?,
        ),
    };
    // Only the chunks the range touches, and how much to cut off the first and the last.
    let chunk_len = opener.chunk_size().bytes() as u64;
    let (skip, first_chunk, last_chunk, keep_last) = match range {
        Some((first, last)) => (
            (first % chunk_len) as usize,
            first / chunk_len,
            last / chunk_len,
            (last % chunk_len) as usize + 1,
        ),
        None => (0, 0, chunk_ids.len() as u64 - 1, usize::MAX),
    };
    let chunk_ids: Vec<(u64, ChunkId)> = chunk_ids
        .into_iter()
        .enumerate()
        .map(|(i, c)| (i as u64, c))
        .filter(|(i, _)| (first_chunk..=last_chunk).contains(i))
        .collect();
    let ids: Vec<ChunkId> = chunk_ids.iter().map(|(_, c)| *c).collect();
    let total = opener.manifest().chunk_count();
    let manifest = opener.manifest();
    let (name, created) = (manifest.name().to_string(), manifest.created());
    let striped = manifest.is_striped();
    // A stripe takes a round trip more (its descriptor) in smaller pieces: read further ahead.
    let base = read_ahead.max(1) * if striped { 2 } else { 1 };
    let mut window = cluster.window(base, chunk_len as usize, Failure::Get);
    // One chunk's fetch, checked and decrypted, cut to the range; `holders` are the nodes
    // known to hold it (tried first), if any.
    let fetch_one = {
        let (cluster, opener) = (cluster.clone(), opener.clone());
        move |index: u64, chunk: ChunkId, holders: Vec<NodeId>| {
            let (cluster, opener) = (cluster.clone(), opener.clone());
            async move {
                let fetch = async {
                    if striped {
                        // Any K shards, joined; then checked and decrypted like a chunk.
                        return match cluster.fetch_stripe(chunk, &holders).await? {
                            Fetched::Found(sealed) => {
                                let opened = tokio::task::spawn_blocking(move || {
                                    open_chunk(&opener, index, Bytes::from(sealed))
                                })
                                .await
                                .map_err(|e| NodeError::Internal(e.to_string()))?;
                                match opened {
                                    Ok(plain) => Ok(Fetched::Found(plain)),
                                    Err(AttemptError::Stop(e)) => Err(e),
                                    Err(AttemptError::Next(e)) => {
                                        Err(NodeError::Internal(format!(
                                            "shards that match their ids gave a bad chunk: {e}"
                                        )))
                                    }
                                }
                            }
                            Fetched::Deleted => Ok(Fetched::Deleted),
                            Fetched::Missing => Ok(Fetched::Missing),
                        };
                    }
                    let open = move |bytes: Bytes| open_chunk(&opener, index, bytes);
                    cluster.fetch(chunk, &holders, open).await
                };
                match tokio::time::timeout(deadline, fetch).await {
                    Ok(Ok(Fetched::Found(plain))) => {
                        // Cut the range's ends out of its first and last chunk.
                        let end = if index == last_chunk {
                            keep_last.min(plain.len())
                        } else {
                            plain.len()
                        };
                        let start = if index == first_chunk {
                            skip.min(end)
                        } else {
                            0
                        };
                        Ok(plain.slice(start..end))
                    }
                    Ok(Ok(Fetched::Deleted)) => Err(NodeError::NotFound(id)),
                    Ok(Ok(Fetched::Missing)) | Err(_) => {
                        Err(NodeError::Unavailable { missing: 1, total })
                    }
                    Ok(Err(e)) => Err(e),
                }
            }
        }
    };
    // The first window's chunks are fetched while the holders of all of them are located
    // (from where placement put them), so a download waits one round trip less to start.
    let first = window.size().min(chunk_ids.len());
    let prefetched: Vec<_> = chunk_ids[..first]
        .iter()
        .map(|&(index, chunk)| {
            AbortOnDropHandle::new(tokio::spawn(fetch_one(index, chunk, Vec::new())))
        })
        .collect();
    let holders = cluster.locate(&ids).await;
    let missing = holders.iter().filter(|h| h.is_empty()).count() as u64;
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
    let early = futures_util::stream::iter(prefetched).map(|task| {
        async move {
            task.await
                .map_err(|e| NodeError::Internal(format!("a chunk fetch failed: {e}")))?
        }
        .boxed()
    });
    let rest = futures_util::stream::iter(chunk_ids.into_iter().zip(holders).skip(first))
        .map(move |((index, chunk), holders)| fetch_one(index, chunk, holders).boxed());
    let body = ordered_window(early.chain(rest), move || window.size());
    Ok(Download {
        name,
        size,
        range,
        chunks: total,
        created,
        body: Box::pin(body),
        burn,
    })
}

/// Runs the futures `source` yields with up to `limit()` of them in flight (asked again before
/// each start, so the window follows the latency as it is measured), yielding their outputs in
/// order: [`StreamExt::buffered`] with a window that may change.
fn ordered_window<S, L>(source: S, limit: L) -> impl Stream<Item = <S::Item as Future>::Output>
where
    S: Stream + Unpin,
    S::Item: Future,
    L: FnMut() -> usize,
{
    let queue = futures_util::stream::FuturesOrdered::new();
    futures_util::stream::unfold(
        (source, queue, false, limit),
        |(mut source, mut queue, mut exhausted, mut limit)| async move {
            while !exhausted && queue.len() < limit().max(1) {
                match source.next().await {
                    Some(work) => queue.push_back(work),
                    None => exhausted = true,
                }
            }
            let item = queue.next().await?;
            Some((item, (source, queue, exhausted, limit)))
        },
    )
}

/// Verifies and decrypts chunk `index` (on the blocking pool). Bytes that do not match the
/// chunk's id are the holder's fault (try another); verified bytes that do not decrypt mean
/// the file itself is damaged.
fn open_chunk(opener: &FileOpener, index: u64, bytes: Bytes) -> Result<Bytes, AttemptError> {
    match opener.open_chunk(index, Vec::from(bytes)) {
        // Wiped (in bulk) when the last reference to its `Bytes` goes.
        Ok(plain) => Ok(Bytes::from_owner(plain)),
        Err(e @ (CryptoError::ChunkIdMismatch { .. } | CryptoError::InvalidChunk { .. })) => Err(
            AttemptError::Next(HolderError::Failed(format!("served a corrupt chunk: {e}"))),
        ),
        Err(e) => Err(AttemptError::Stop(NodeError::Crypto(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_resolve_like_rfc_9110() {
        let from = |first, last| ByteRange::From { first, last };
        assert_eq!(ByteRange::parse("bytes=0-0"), Some(from(0, Some(0))));
        assert_eq!(ByteRange::parse("bytes= 5 - 9 "), Some(from(5, Some(9))));
        assert_eq!(ByteRange::parse("bytes=7-"), Some(from(7, None)));
        assert_eq!(ByteRange::parse("bytes=-3"), Some(ByteRange::Suffix(3)));
        for ignored in [
            "",
            "bytes=",
            "bytes=-",
            "bytes=9-5",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=1-2-3",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(ByteRange::parse(ignored), None, "{ignored:?}");
        }
        assert_eq!(from(0, Some(0)).resolve(10), Some((0, 0)));
        assert_eq!(from(3, None).resolve(10), Some((3, 9)));
        assert_eq!(from(3, Some(100)).resolve(10), Some((3, 9)));
        assert_eq!(from(10, None).resolve(10), None);
        assert_eq!(ByteRange::Suffix(4).resolve(10), Some((6, 9)));
        assert_eq!(ByteRange::Suffix(40).resolve(10), Some((0, 9)));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(from(0, None).resolve(0), None);
        assert_eq!(ByteRange::Suffix(1).resolve(0), None);
    }
}
